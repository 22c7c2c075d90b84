"""The debugging view (R5): Training panel, flags on the DAG, compare two steps.

The run is recorded by :class:`cnnvis_gl.Recorder` from a real (tiny) training loop of BaseCNN×¼
on 48 real CIFAR-10 images, with a planted fault: conv2's bias is −100, so its ReLU never fires
and ``diagnose`` flags the layer ``dead``.  The GUI test drives the real app headless through
the ImGui Test Engine (see tests/test_ui.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from ui_driver import drive, wait

SIZE = (1600, 1000)
DEAD_LAYER = "features.5"  # BaseCNN's second conv (group conv2)
DEAD_GROUP = "conv2"


# ---------------------------------------------------------------------------- the recorded run


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    import torch
    import torch.nn.functional as F

    import cnnvis_gl
    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    data = open_data(f"cifar10:{cifar_dir}", "test").subset(48)
    model = build_model("basecnn-x0.25", norm=False)  # as docs/CASES.md's failing run
    mods = dict(model.named_modules())
    with torch.no_grad():
        mods[DEAD_LAYER].bias.fill_(-100.0)  # the planted fault: a dead layer
    run = tmp_path_factory.mktemp("debugrun") / "run"
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = list(data.batches(16, shuffle=True, seed=0))
    with cnnvis_gl.Recorder(model, data, run, every=2, k=4, max_images=48) as rec:
        for step in range(7):
            x, y, _ = batches[step % len(batches)]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.step(step, train_loss=loss.item())
            if step % 3 == 0:
                rec.log(step, test_loss=loss.item() * 1.1, test_error=0.9 - 0.01 * step)
    return run


@pytest.fixture
def run_dir(template_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(template_run, dst)
    return dst


# ---------------------------------------------------------------------------- data (no GUI)


def test_training_data_curves_and_layer_stats(run_dir: Path):
    from cnnvis_gl.run.snapshot import open_run
    from cnnvis_gl.ui.training import STATS, load_training

    run = open_run(run_dir)
    steps = run.steps()
    assert steps == [0, 2, 4, 6]
    units = [(u.name, run.graph.groups[u.group].name) for u in run.graph.units]
    td = load_training(run_dir, steps, units)
    assert td.steps == tuple(steps)
    xs, ys = td.curves["train_loss"]
    assert xs.tolist() == list(range(7)) and np.isfinite(ys).all()
    assert td.curves["test_error"][0].tolist() == [0, 3, 6]
    assert td.curves["probe error"][0].tolist() == steps
    assert set(td.stats) == set(STATS)
    for key in STATS:
        assert set(td.stats[key]) == {u for u, _ in units}, key
        for xs, _ys in td.stats[key].values():
            assert xs.tolist() == steps
    dead = td.stats["dead_fraction"][DEAD_LAYER][1]
    assert (dead == 1.0).all()
    # what the plots draw, against the files read as plain JSON (not through the loader)
    from cnnvis_gl.ui.training import layer_lines, learning_lines

    raw = [json.loads(x) for x in (run_dir / "scalars.jsonl").read_text().splitlines() if x]
    lines = {line.label: line for line in learning_lines(td)}
    loss = [(r["step"], r["train_loss"]) for r in raw if "train_loss" in r]
    assert lines["train loss"].xs.tolist() == [s for s, _ in loss]
    assert lines["train loss"].ys.tolist() == pytest.approx([v for _, v in loss])
    assert not lines["train loss"].right
    assert lines["test error"].ys.tolist() == pytest.approx([0.9, 0.87, 0.84])  # as logged
    assert lines["test error"].right and lines["probe error"].right
    docs = [run_dir / "snapshots" / f"step_{s:09d}" / "snapshot.json" for s in steps]
    metas = [json.loads(d.read_text())["meta"] for d in docs]
    assert lines["probe error"].ys.tolist() == pytest.approx([m["probe_error"] for m in metas])
    # per group: the group's own unit, as the snapshots recorded it
    groups = run.graph.groups
    per_group = layer_lines(td, "dead_fraction", False, False, {g.unit for g in groups})
    assert [line.label for line in per_group] == [g.name for g in groups]
    for g, line in zip(groups, per_group, strict=True):
        want = [m["units"][g.unit]["dead_fraction"] for m in metas]
        assert line.xs.tolist() == steps and line.ys.tolist() == pytest.approx(want), g.name
    # per layer: the dead layer is dead at every step
    per_layer = {line.label: line for line in layer_lines(td, "dead_fraction", True, False, set())}
    assert per_layer[f"{DEAD_GROUP} · {DEAD_LAYER}"].ys.tolist() == [1.0] * len(steps)
    norms = layer_lines(td, "weight_norm", True, True, set())
    assert len(norms) == len(td.stats["weight_norm"])
    assert all((line.ys > 0).all() for line in norms)  # norms: nothing hidden by the log
    # a refresh reuses what it read: only the new step is opened
    td2 = load_training(run_dir, steps, units, known={s: td.metas[s] for s in steps[:2]})
    assert (
        td2.stats["weight_norm"][DEAD_LAYER][1].tolist()
        == td.stats["weight_norm"][DEAD_LAYER][1].tolist()
    )


def test_flag_rows_and_difference(run_dir: Path):
    from cnnvis_gl.analysis.diagnose import diagnose
    from cnnvis_gl.layout import LayoutState
    from cnnvis_gl.run.snapshot import open_run
    from cnnvis_gl.ui.training import activation_difference, flag_rows

    run = open_run(run_dir)
    snap, first = run.snapshot(6), run.snapshot(0)
    flags = diagnose(snap)
    dead = [f for f in flags if f.kind == "dead"]
    assert dead and dead[0].unit == DEAD_LAYER and dead[0].group == "conv2"
    scene = LayoutState(snap).build()
    names = [g.name for g in snap.graph.groups]
    rows = flag_rows(scene, names, flags)
    (row,) = [r for r, fl in rows.items() if dead[0] in fl]
    assert scene.rows[row].name == "conv2"
    diff, info = activation_difference(scene, snap, first)
    assert diff.shape == scene.neurons.activation.shape
    assert np.abs(diff).max() <= 1.0 + 1e-6 and info["max_abs"] > 0
    same, _ = activation_difference(scene, snap, snap)
    assert not same.any()


# ---------------------------------------------------------------------------- GUI


def _geometry(counts: dict, before: dict) -> dict:
    return {
        k: v - before.get(k, 0)
        for k, v in _scene_buffers(counts).items()
        if k.endswith(".geometry") and v != before.get(k, 0)
    }


def _scene_buffers(counts: dict) -> dict:
    """Upload counts of the Scene's buffers: zooming in on a flag also fetches the neuron-level
    edges of the clusters in view (``detail.*``), which is not the flags' doing."""
    return {k: v for k, v in counts.items() if not k.startswith("detail.")}


@pytest.mark.gui
def test_training_panel_flags_compare(run_dir: Path, tmp_path: Path, headless_gl):
    """Curves and statistics load; the dead layer's badge is drawn with the flag's message as
    tooltip and zooms to its row; a click in the statistics plot opens that step; compare
    mode draws the difference in the matrices; flags and compare never re-upload geometry."""
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    from cnnvis_gl.ui import App

    TestRef = imgui.test_engine.TestRef

    app = App(run_dir, headless=True)
    seen: dict = {}
    shot = tmp_path / "training_flags.png"

    def loaded() -> bool:
        return (
            app.state.scene is not None
            and not app.feed.pending
            and app.state.debug.training is not None
            and app.state.debug.training.steps == (0, 2, 4, 6)
            and app.state.debug.flags_step == app.state.step
        )

    def test(ctx):
        wait(ctx, loaded)
        ctx.yield_(3)
        st = app.state
        seen["step0"] = st.step
        seen["curves"] = sorted(app.state.debug.training.curves)
        seen["plotted"] = {k: list(v) for k, v in app.state.panels.plotted.items()}
        seen["td"] = app.state.debug.training
        seen["groups"] = app.state.snapshot.graph.groups
        seen["points"] = dict(app.state.panels.plot_points.get("layerstat", {}))
        # the dead layer's badge
        dead = [(f, rect) for f, rect in app.state.panels.flag_badges if f.kind == "dead"]
        seen["dead"] = dead
        seen["flag"] = next(f for f in app.state.debug.flags if f.kind == "dead")
        r = app.renderer
        before = dict(r.upload_count)
        x0, y0, x1, y1 = dead[0][1]
        ctx.mouse_move_to_pos(imgui.ImVec2((x0 + x1) / 2, (y0 + y1) / 2))
        ctx.yield_(2)
        seen["tooltip"] = app.state.panels.flag_tooltip
        seen["hover"] = app.state.hover
        testing.capture(ctx, str(shot))
        zoom0 = st.camera.target
        ctx.mouse_click(0)
        ctx.yield_(2)
        seen["zoomed"] = st.camera.target != zoom0
        seen["zoom_selection"] = st.selection.cluster  # a badge click selects nothing
        wait(ctx, lambda: not st.camera.animating, 10.0)
        # hide and show the badges (a checkbox in the Training panel)
        ctx.item_click("//Training/**/on the view")
        ctx.yield_(2)
        seen["hidden"] = list(app.state.panels.flag_badges)
        ctx.item_click("//Training/**/on the view")
        ctx.yield_(2)
        seen["flag_uploads"] = _geometry(r.upload_count, before)
        seen["flag_all_uploads"] = {
            k: v - before.get(k, 0)
            for k, v in _scene_buffers(r.upload_count).items()
            if v != before.get(k, 0)
        }
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.origin))  # away from the badges
        # zoomed far out the rows are closer than a badge: no badge covers another
        shown = len(app.state.panels.flag_badges)
        cam = st.camera.current
        st.camera.jump(type(cam)(cam.center, cam.zoom * 0.04))
        ctx.yield_(2)
        seen["far_badges"] = (shown, [rect for _, rect in app.state.panels.flag_badges])
        app.actions.fit_all(animate=False)
        ctx.yield_(2)
        # compare with step 2 (combo in the Training panel)
        before = dict(r.upload_count)
        ctx.item_click(TestRef(app.state.panels.widget_ids["compare"]))
        ctx.item_click("//$FOCUSED/step 2")
        wait(ctx, lambda: app.state.debug.compare_diff is not None and not app.feed.pending)
        ctx.yield_(3)
        seen["compare"] = st.debug.compare
        app.actions.fit_all()
        wait(ctx, lambda: not st.camera.animating, 10.0)
        ctx.yield_(2)
        testing.capture(ctx, str(tmp_path / "training_compare.png"))
        seen["diff_max"] = float(np.abs(app.state.debug.compare_diff).max())
        seen["diverging"] = r.matrix_diverging
        seen["facets"] = st.scene.clusters.facet.copy()
        seen["compare_geometry"] = _geometry(r.upload_count, before)
        seen["compare_uploads"] = {
            k: v - before.get(k, 0)
            for k, v in _scene_buffers(r.upload_count).items()
            if v != before.get(k, 0)
        }
        ctx.item_click(TestRef(app.state.panels.widget_ids["compare"]))
        ctx.item_click("//$FOCUSED/off")
        ctx.yield_(2)
        seen["off"] = (r.matrix_diverging, app.state.debug.compare_diff)
        seen["off_geometry"] = _geometry(r.upload_count, before)
        # click the statistics plot at step 2: the snapshot of step 2 opens
        ctx.item_click(TestRef(app.state.panels.widget_ids["compare"]))
        ctx.item_click("//$FOCUSED/step 2")
        wait(ctx, lambda: app.state.debug.compare_diff is not None)
        px = app.state.panels.plot_points["layerstat"][2]
        ctx.mouse_move_to_pos(imgui.ImVec2(*px))
        ctx.mouse_click(0)
        wait(ctx, lambda: st.step == 2 and not app.feed.pending)
        wait(ctx, lambda: app.state.debug.flags_step == 2)
        ctx.yield_(2)
        seen["step1"] = st.step
        seen["compare_same"] = st.debug.compare
        seen["flags_step"] = app.state.debug.flags_step

    drive(app, test, SIZE)
    assert seen["step0"] == 6
    shown, far = seen["far_badges"]
    assert 1 <= len(far) < shown  # (some rows' badges left out)
    a = np.asarray(far)
    over = (a[:, None, 0] < a[None, :, 2]) & (a[None, :, 0] < a[:, None, 2]) & (a[:, None, 1] < a[None, :, 3]) & (a[None, :, 1] < a[:, None, 3])
    np.fill_diagonal(over, False)
    assert not over.any()
    assert {"train_loss", "test_loss", "test_error", "probe loss"} <= set(seen["curves"])
    # the panel drew exactly the lines of the pure functions (checked by value above)
    from cnnvis_gl.ui.training import learning_lines

    drawn = {line.label: line for line in seen["plotted"]["learning"]}
    for line in learning_lines(seen["td"]):
        assert drawn[line.label].ys.tolist() == line.ys.tolist()
        assert drawn[line.label].right == line.right
    assert {line.label for line in seen["plotted"]["layerstat"]} == {
        g.name for g in seen["groups"]
    }
    assert set(seen["points"]) == {0, 2, 4, 6}
    assert seen["dead"], "no badge for the dead layer"
    assert seen["tooltip"] is not None and seen["flag"].message in seen["tooltip"].split("\n")
    assert seen["tooltip"] == seen["flag"].message  # one dead flag on that row
    assert seen["hover"] == ("none", -1)  # the badge, not the view, has the pointer
    assert seen["zoomed"]
    assert seen["hidden"] == []
    assert seen["flag_uploads"] == {} and seen["flag_all_uploads"] == {}
    assert seen["compare"] == 2
    assert seen["diff_max"] > 0 and seen["diverging"]
    assert (seen["facets"] == 1).all()  # compare shows the matrix facet
    assert seen["compare_geometry"] == {}
    assert set(seen["compare_uploads"]) <= {"matrix.activation", "clusters.state"}
    assert seen["compare_uploads"].get("matrix.activation", 0) >= 1
    assert seen["off"] == (False, None) and seen["off_geometry"] == {}
    assert seen["step1"] == 2 and seen["flags_step"] == 2
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("CNNVIS_TEST_SHOTS")  # to look at it: CNNVIS_TEST_SHOTS=/some/dir
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for p in (shot, tmp_path / "training_compare.png"):
            shutil.copy(p, Path(keep) / p.name)


def _hover_note(model, note: str, cifar_dir: Path, tmp_path: Path) -> tuple[str, dict]:
    """Analyse ``model`` on 24 CIFAR images, open the run, hover the Snapshots panel's line
    ``note`` (``left_out``, ``attention`` or ``per_sample``); its tooltip and the panel's notes'
    rects."""
    import torch
    from imgui_bundle import imgui

    import cnnvis_gl
    from cnnvis_gl.data import open_data
    from cnnvis_gl.ui import App

    torch.manual_seed(0)
    snap = cnnvis_gl.analyze(
        model.eval(), open_data(f"cifar10:{cifar_dir}").subset(24), progress=False
    )
    snap.save(tmp_path, 0)
    app = App(tmp_path, headless=True)
    seen: dict = {}

    def test(ctx):
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        app.actions.show_panel("Snapshots")
        wait(ctx, lambda: getattr(app.state.panels, note) is not None)
        x0, y0, x1, y1 = getattr(app.state.panels, note)
        ctx.mouse_move_to_pos(imgui.ImVec2((x0 + x1) / 2, (y0 + y1) / 2))
        ctx.yield_(3)
        seen["tip"] = getattr(app.state.panels, note + "_tooltip")
        names = ("left_out", "attention", "per_sample")
        seen["notes"] = {n: getattr(app.state.panels, n) for n in names}

    drive(app, test, SIZE)
    return seen["tip"], seen["notes"]


@pytest.mark.gui
def test_the_snapshots_panel_names_the_gates_left_out(cifar_dir: Path, tmp_path: Path, headless_gl):
    """A run of a model whose coordinate-attention gates are left out: the Snapshots panel says
    how many, and lists them with why on hover."""
    from test_graph_collections import Attended, CoordAtt

    tip, notes = _hover_note(Attended(CoordAtt(4)), "left_out", cifar_dir, tmp_path)
    assert tip.endswith("\n\natt.sigmoid_1 → att.mul\natt.sigmoid → att.mul_1"), tip
    assert "count as 1: the gated maps keep their channels" in tip
    assert notes["per_sample"] is None  # (no dynamic convolutions: no such line)
    assert notes["attention"] is None


@pytest.mark.gui
def test_the_snapshots_panel_names_the_attention_layers(cifar_dir: Path, tmp_path: Path, headless_gl):
    """A run of a model with a transformer block on a map's tokens: the Snapshots panel names
    its attention (not as a gate) and says how it is read on hover."""
    from test_graph_attention import TokenAttention
    from test_graph_collections import Attended

    tip, notes = _hover_note(Attended(TokenAttention(4)), "attention", cifar_dir, tmp_path)
    assert tip.startswith("Attention (non-local blocks, transformer blocks on a map's tokens)")
    assert tip.endswith("\n\natt.softmax → att.matmul_1"), tip
    assert notes["left_out"] is None and notes["per_sample"] is None


@pytest.mark.gui
def test_the_snapshots_panel_names_the_per_sample_convolutions(
    cifar_dir: Path, tmp_path: Path, headless_gl
):
    """A run of a model with a dynamic convolution: the Snapshots panel says so, and how its
    units and weights are read on hover."""
    from test_graph_dynamic import Dynamic

    tip, notes = _hover_note(Dynamic(), "per_sample", cifar_dir, tmp_path)
    assert tip.startswith("Dynamic convolutions (CondConv, DynamicConv, ODConv)"), tip
    assert tip.endswith("\n\natt.conv2d") and notes["left_out"] is None
