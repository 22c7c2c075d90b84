"""The Lineage panel, driven through the real viewer (headless, ImGui Test Engine), on a real
recorded training run: the Sankey shows the lineage that ``cnnvis info --lineage`` prints, bar
heights follow the neuron counts, and a click on a bar opens that step with that cluster
selected and framed in the network view."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ui_driver import drive, wait

pytestmark = pytest.mark.gui

SIZE = (1280, 860)


@pytest.fixture(autouse=True)
def _needs_egl(headless_gl) -> None:
    """The real viewer on headless OpenGL."""


def test_lineage_panel_draws_the_lineage_and_clicks_through(recorded_run: Path, tmp_path: Path):
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    from cnnvis_gl import open_run
    from cnnvis_gl.layout.lineage import cluster_lineage
    from cnnvis_gl.layout.state import previous_clusters
    from cnnvis_gl.ui import App

    run_dir = tmp_path / "run"
    shutil.copytree(recorded_run, run_dir)
    run = open_run(run_dir)
    group = run.graph.groups[-2].name  # the panel's default: the last hidden group
    expected = cluster_lineage(run, group)
    app = App(run_dir, headless=True)
    seen: dict = {}

    def test(ctx):
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        app.actions.show_panel("Lineage")
        ctx.yield_(3)
        wait(ctx, lambda: app.state.debug.lineage is not None and app.state.panels.lineage_bars)
        ctx.yield_(2)
        seen["bars"] = list(app.state.panels.lineage_bars)
        seen["lineage"] = app.state.debug.lineage
        testing.capture(ctx, str(tmp_path / "lineage.png"))
        print(f"lineage screenshot: {tmp_path / 'lineage.png'}")
        # hover, then click the largest cluster of the first step
        first = [b for b in seen["bars"] if b[0] == expected.steps[0]]
        step, name, (x0, y0, x1, y1) = max(first, key=lambda b: b[2][3] - b[2][1])
        ctx.mouse_move_to_pos(imgui.ImVec2((x0 + x1) / 2, (y0 + y1) / 2))
        ctx.yield_(2)
        ctx.mouse_click(0)
        seen["clicked"] = (step, name)
        wait(ctx, lambda: app.state.step == step and not app.feed.pending)
        ctx.yield_(3)
        seen["step"] = app.state.step
        seen["selected"] = app.state.selection.cluster
        seen["scene"] = app.state.scene

    drive(app, test, SIZE)
    lin = seen["lineage"]
    assert lin.group == group and lin.steps == expected.steps
    assert lin.text() == expected.text()  # the panel shows what cnnvis info --lineage prints
    bars = seen["bars"]
    assert len(bars) == sum(len(ids) for ids in lin.ids)
    # bar heights are proportional to the neuron counts (same scale in every column)
    by_name = {(s, n): r for s, n, r in bars}
    heights, sizes = [], []
    for t, step in enumerate(lin.steps):
        for cid, members in zip(lin.ids[t], lin.members[t], strict=True):
            r = by_name[(step, lin.names[cid])]
            heights.append(r[3] - r[1])
            sizes.append(len(members))
    ratio = np.asarray(heights) / np.asarray(sizes)
    assert ratio.max() - ratio.min() < 0.02 * ratio.max()
    # columns left to right in step order
    xs = [np.mean([r[0] for s, _, r in bars if s == step]) for step in lin.steps]
    assert xs == sorted(xs)
    # the click opened that step and selected the view's cluster that shares most neurons
    step, name = seen["clicked"]
    assert seen["step"] == step
    t = lin.steps.index(step)
    members = lin.members[t][[lin.names[c] for c in lin.ids[t]].index(name)]
    _, ids, clusters = previous_clusters(seen["scene"])[group]
    shared = [len(set(members.tolist()) & set(m.tolist())) for m in clusters]
    assert seen["selected"] == ids[int(np.argmax(shared))]
    assert max(shared) == len(members)  # the same clustering as the lineage's
