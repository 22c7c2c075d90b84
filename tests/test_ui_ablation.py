"""Ablation from the viewer (headless, ImGui Test Engine) on a real run of ``cnnvis train``:
select a cluster, open the Cluster panel's Ablate tab, zero it; the bars are the real model's
per-class accuracy lost, equal to :func:`cnnvis_gl.stats.ablation.ablate` run directly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ui_driver import drive, wait

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _needs_egl(headless_gl) -> None:
    """The real viewer on headless OpenGL."""


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cifar_dir) -> Path:
    from cnnvis_gl.cli import main

    out = tmp_path_factory.mktemp("ablate") / "run"
    args = ["train", "basecnn-x0.25", "--data", f"cifar10:{cifar_dir}", "--epochs", "1"]
    args += [
        "--limit",
        "512",
        "--test-limit",
        "100",
        "--analyze-limit",
        "200",
        "-q",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    return out


def test_ablate_a_cluster_from_the_cluster_panel(trained_run: Path, tmp_path: Path):
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    from cnnvis_gl import open_run
    from cnnvis_gl.run.rebuild import rebuild_model, rebuild_probe
    from cnnvis_gl.stats.ablation import ablate
    from cnnvis_gl.ui import App
    from cnnvis_gl.ui.loaders import Ablations

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    app = App(run_dir, headless=True)
    seen: dict = {}

    def test(ctx):
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        ctx.yield_(2)
        s = app.state.scene
        row = next(k for k, r in enumerate(s.rows) if r.name == "conv4")
        ci = max(np.flatnonzero(s.clusters.row == row), key=lambda c: int(s.clusters.size[c]))
        x, y, w, h = (float(v) for v in s.clusters.rect[ci])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x + w / 2, y + 2)))  # its frame
        ctx.yield_(2)
        ctx.mouse_click(0)
        ctx.yield_(3)
        seen["selected"] = app.state.selection.cluster
        seen["cid"] = int(s.clusters.id[ci])
        n = s.neurons
        seen["expected"] = (
            s.units[int(n.unit[n.cluster == ci][0])],
            sorted(int(v) for v in n.index[n.cluster == ci]),
        )
        ctx.item_click("//Cluster/cluster_tabs/Ablate")
        ctx.yield_(2)
        ctx.item_click("//Cluster/**/###ablate")
        ctx.yield_(2)
        want = app.state.debug.ablation_want
        seen["want"] = want
        wait(ctx, lambda: want in app.state.debug.ablations, timeout=300)
        ctx.yield_(3)
        seen["result"] = app.state.debug.ablations[want]
        # the network tinted by it: the renderer's per-cluster emphasis
        from cnnvis_gl.render.state import EMPHASIS

        seen["tint"] = app.renderer.shared.cluster[:, EMPHASIS].copy()
        testing.capture(ctx, str(tmp_path / "ablation.png"))
        print(f"ablation screenshot: {tmp_path / 'ablation.png'}")
        # the downstream cluster whose responses moved most: listed; a click goes there
        from cnnvis_gl.layout.selection import downstream_clusters

        moved = downstream_clusters(s, seen["result"].change, seen["expected"][0])
        seen["moved"] = moved
        top = moved[0][0]
        ctx.item_click(f"//Cluster/**/{app.state.cluster_name(top)}: {moved[0][1]:.0%}##moved{top}")
        ctx.yield_(2)
        seen["went"] = (app.state.selection.cluster, int(s.clusters.id[top]), s.rows[int(s.clusters.row[top])].name)
        seen["untinted"] = app.renderer.shared.cluster[:, EMPHASIS].copy()  # (another cluster)

    drive(app, test, (1280, 860))
    assert seen["selected"] == seen["cid"]
    step, ((unit, channels),) = seen["want"]
    assert (unit, list(channels)) == seen["expected"]  # the selected cluster's channels
    assert step == max(open_run(run_dir).steps())
    got = seen["result"]
    assert not isinstance(got, str), got
    # the same numbers from the library, on the same model, images and channels
    model, why = rebuild_model(run_dir, 10)
    data = rebuild_probe(run_dir, Ablations.PROBE)
    (direct,) = ablate(model, data.batches(250), [{unit: list(channels)}], 10)
    assert int(got.count.sum()) == min(Ablations.PROBE, 10000)
    np.testing.assert_array_equal(got.correct, direct.correct)
    np.testing.assert_array_equal(got.correct_base, direct.correct_base)
    np.testing.assert_allclose(got.loss, direct.loss, rtol=1e-6)
    # downstream: only the layers after conv4 (fc1, fc2), most moved first, then selected
    assert seen["moved"] and [v for _, v in seen["moved"]] == sorted((v for _, v in seen["moved"]), reverse=True)
    selected, top_id, top_row = seen["went"]
    assert selected == top_id and top_row in ("fc1", "fc2")
    # the tint: the ablated cluster full, the moved ones by how much, every other dim
    from cnnvis_gl.ui.panels.cluster import ablation_tint

    tint = seen["tint"]
    ci = int(np.flatnonzero(app.state.scene.clusters.id == seen["cid"])[0])
    np.testing.assert_allclose(tint, ablation_tint(app.state.scene, seen["moved"], [ci]), atol=1e-6)
    assert tint[ci] == 1.0 and tint[seen["moved"][0][0]] == pytest.approx(1.0)
    moved = {c for c, _ in seen["moved"]}
    assert all(tint[c] == 0 for c in range(len(tint)) if c not in moved and c != ci)
    assert (seen["untinted"] == 1.0).all()  # another cluster selected: the usual look


def test_ablate_a_set_of_clusters_of_two_layers(trained_run: Path, tmp_path: Path):
    """Two clusters (conv3's and conv4's largest) added to the set and zeroed together: one
    ablation of both layers' channels, equal to the library's; both tinted as ablated."""
    from cnnvis_gl.render.state import EMPHASIS
    from cnnvis_gl.run.rebuild import rebuild_model, rebuild_probe
    from cnnvis_gl.stats.ablation import ablate
    from cnnvis_gl.ui import App
    from cnnvis_gl.ui.loaders import Ablations

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    app = App(run_dir, headless=True)
    seen: dict = {}

    def test(ctx):
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        ctx.yield_(2)
        s = app.state.scene
        picked = []
        for name in ("conv3", "conv4"):
            row = next(k for k, r in enumerate(s.rows) if r.name == name)
            ci = max(np.flatnonzero(s.clusters.row == row), key=lambda c: int(s.clusters.size[c]))
            picked.append(ci)
            app.actions.select_cluster(int(s.clusters.id[ci]))
            ctx.yield_(2)
            ctx.item_click("//Cluster/cluster_tabs/Ablate")
            ctx.yield_(2)
            ctx.item_click("//Cluster/**/###ablate_set")  # "Add it to the set"
            ctx.yield_(2)
        seen["set"] = list(app.state.debug.ablation_set)
        ctx.item_click("//Cluster/**/###ablate")  # zero the set (conv4's cluster selected)
        want = app.state.debug.ablation_want
        seen["want"] = want
        wait(ctx, lambda: want in app.state.debug.ablations, timeout=300)
        ctx.yield_(3)
        seen["result"] = app.state.debug.ablations[want]
        seen["tint"] = app.renderer.shared.cluster[:, EMPHASIS].copy()
        n = s.neurons
        seen["parts"] = [
            (
                s.units[int(n.unit[n.cluster == ci][0])],
                sorted(int(v) for v in n.index[n.cluster == ci]),
            )
            for ci in picked
        ]
        seen["picked"] = picked
        # the first of the set, selected: the tab is about the set too (same result shown)
        app.actions.select_cluster(int(s.clusters.id[picked[0]]))
        ctx.yield_(3)
        seen["same_key"] = app.state.ablation_key(app.state.ablation_set()) == want
        ctx.item_click("//Cluster/**/###ablate_set")  # "Remove it from the set"
        ctx.yield_(2)
        seen["after_remove"] = list(app.state.debug.ablation_set)

    drive(app, test, (1280, 860))
    s_ids = [int(app.state.scene.clusters.id[c]) for c in seen["picked"]]
    assert seen["set"] == s_ids
    step, parts = seen["want"]
    assert [(u, list(ch)) for u, ch in parts] == seen["parts"]  # conv3's, then conv4's
    assert seen["same_key"] and seen["after_remove"] == s_ids[1:]
    got = seen["result"]
    assert not isinstance(got, str), got
    model, _ = rebuild_model(run_dir, 10)
    data = rebuild_probe(run_dir, Ablations.PROBE)
    (direct,) = ablate(model, data.batches(250), [dict(seen["parts"])], 10)
    np.testing.assert_array_equal(got.correct, direct.correct)
    np.testing.assert_allclose(got.loss, direct.loss, rtol=1e-6)
    # both layers were zeroed: conv3's responses moved (they do not with conv4's cluster alone)
    conv3 = seen["parts"][0][0]
    assert float(np.asarray(got.change[conv3]).max()) > 0
    watch = {conv3: conv3}
    (alone,) = ablate(model, data.batches(250), [dict(seen["parts"][1:])], 10, watch=watch)
    assert float(np.asarray(alone.change[conv3]).max()) == 0
    tint = seen["tint"]
    assert all(tint[c] == 1.0 for c in seen["picked"])


def test_a_run_without_its_model_says_why(small_run: Path, tmp_path: Path):
    from imgui_bundle import imgui

    from cnnvis_gl.ui import App

    run_dir = tmp_path / "run"
    shutil.copytree(small_run, run_dir)
    app = App(run_dir, headless=True)
    seen: dict = {}

    def test(ctx):
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        ctx.yield_(2)
        ci = int(np.argmax(app.state.scene.clusters.size))
        x, y, w, h = (float(v) for v in app.state.scene.clusters.rect[ci])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x + w / 2, y + 2)))  # its frame
        ctx.yield_(2)
        ctx.mouse_click(0)
        ctx.yield_(3)
        ctx.item_click("//Cluster/cluster_tabs/Ablate")
        ctx.yield_(2)
        ctx.item_click("//Cluster/**/###ablate")
        wait(ctx, lambda: app.state.debug.ablation_want in app.state.debug.ablations)
        seen["result"] = app.state.debug.ablations[app.state.debug.ablation_want]

    drive(app, test, (1280, 860))
    assert isinstance(seen["result"], str)
    assert "does not say how to rebuild its model (no train.json + weights.pt" in seen["result"]


def test_cnnvis_ablate_rebuilds_the_model_of_a_train_run(trained_run: Path, capsys):
    """No --model, --weights or --data: the run's train.json and weights.pt say them."""
    from cnnvis_gl.cli import main
    from cnnvis_gl.run.rebuild import rebuild_model, rebuild_probe
    from cnnvis_gl.stats.ablation import ablate

    assert main(["ablate", str(trained_run), "--neurons", "conv4", "--limit", "300"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("300 images of cifar10-test, 1 ablation(s)")
    model, _ = rebuild_model(trained_run, 10)
    data = rebuild_probe(trained_run, 300)
    unit = out[1].split("zeroed ")[1].split(":")[0]
    (r,) = ablate(model, data.batches(256), [{unit: list(range(128))}], 10)
    b, ab = r.overall
    assert out[-2].split() == ["all", "300", f"{b:.1%}", f"{ab:.1%}", f"{b - ab:+.1%}"]
    # how far it reaches: the zeroed layer and the ones after it, nothing before
    moved = dict(part.rsplit(" ", 1) for part in out[-1].split(": ", 1)[1].split(", "))
    assert unit == "features.30" and set(moved) == {"features.30", "classifier.1", "classifier.3"}
