"""Comparing two runs: linear CKA against its defining properties, group matching, and
``cnnvis compare`` on two real models trained by ``cnnvis train`` on CIFAR-10."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cnnvis_gl.compare import linear_cka, match_groups


def test_linear_cka_properties():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 12))
    assert linear_cka(X, X) == pytest.approx(1.0)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(X, 3.5 * X @ Q + 2.0) == pytest.approx(1.0)  # rotation, scale, shift
    Y = rng.normal(size=(200, 30))
    assert linear_cka(X, Y) < 0.2  # unrelated representations
    # a hand-computed case: one feature each, y = x² on centred x gives 0 (uncorrelated)
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[:, None]
    assert linear_cka(x, x**2) == pytest.approx(0.0, abs=1e-12)
    assert linear_cka(x, 2 * x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(X, Y[:10])


def test_groups_match_by_name_then_depth():
    assert match_groups(["conv1", "conv2", "fc"], ["conv1", "conv2", "fc"]) == [
        ("conv1", "conv1"), ("conv2", "conv2"), ("fc", "fc")
    ]  # fmt: skip
    # shallow vs deep: names that exist in both, the others by relative depth
    pairs = match_groups(["a", "b", "out"], ["x", "y", "z", "w", "out"])
    assert pairs == [("a", "x"), ("b", "z"), ("out", "out")]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, cifar_dir):
    from cnnvis_gl.cli import main

    root = tmp_path_factory.mktemp("compare")
    for name, model in (("narrow", "basecnn-x0.25"), ("wide", "basecnn-x0.5")):
        args = ["train", model, "--data", f"cifar10:{cifar_dir}", "--epochs", "1", "--limit", "256"]
        args += ["--test-limit", "100", "--analyze-limit", "100", "-q", "-o", str(root / name)]
        assert main(args) == 0
    return root / "narrow", root / "wide"


def test_cnnvis_compare_prints_the_table(two_runs, small_run, tmp_path, capsys):
    from cnnvis_gl import open_run
    from cnnvis_gl.analysis.diagnose import redundancy
    from cnnvis_gl.cli import main

    narrow, wide = two_runs
    capsys.readouterr()
    assert main(["compare", str(narrow), str(narrow), "--limit", "120"]) == 0
    same = capsys.readouterr().out.splitlines()
    rows = [ln.split() for ln in same if ln.startswith(("conv", "fc"))]
    assert [r[0] for r in rows] == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"]
    assert all(r[-1] == "1.000" for r in rows)  # CKA of a group with itself
    assert "CKA: linear, on each neuron's spatial-max response to 120 images" in same[-1]

    assert main(["compare", str(narrow), str(wide), "--limit", "120"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: ln.split() for ln in out if ln.startswith(("conv", "fc"))}
    assert rows["conv4"][2] == "128/256"  # neurons: ×¼ vs ×½
    ckas = [float(r[-1]) for r in rows.values()]
    assert all(0.0 < c < 1.0 for c in ckas)
    # the redundancy column is diagnose.redundancy of each run's class profiles
    snap = open_run(wide).latest()
    unit = next(g.unit for g in snap.graph.groups if g.name == "conv4")
    assert rows["conv4"][4].split("/")[1] == f"{redundancy(snap.activations(unit)):.0%}"

    # a run that cannot rebuild its model: the table without CKA, and why
    other = tmp_path / "other"
    shutil.copytree(small_run, other)
    assert main(["compare", str(narrow), str(other)]) == 0
    out = capsys.readouterr().out
    assert f"no CKA: {other} does not say how to rebuild its model" in out
    assert out.splitlines()[-1].split()[-1] == "—"


@pytest.mark.gui
def test_compare_figure_sets_matched_rows_side_by_side(two_runs, tmp_path, capsys, headless_gl):
    """``--figure``: both networks at one scale, each matched pair of rows next to each other
    under its numbers; a wider layer is drawn wider."""
    from PIL import Image

    from cnnvis_gl import open_run
    from cnnvis_gl.cli import main
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.render.comparison import CAPTION, HEAD, PAD

    narrow, wide = two_runs
    out = tmp_path / "side.png"
    assert main(["compare", str(narrow), str(wide), "--no-cka", "--figure", str(out), "--width", "1400"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape[1] == 1400
    scenes = [build_scene(open_run(r).latest()) for r in (narrow, wide)]
    half = (1400 - 3 * PAD) // 2
    zoom = min(half / (s.bounds[2] - s.bounds[0]) for s in scenes)
    heights = []
    for name in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2"):
        rows = [next(r for r in s.rows if r.name == name) for s in scenes]
        heights.append(max(r.height for r in rows) * zoom)
    want = HEAD + sum(CAPTION + h + PAD for h in heights)
    assert abs(img.shape[0] - want) <= 6 * len(heights)  # (2 px margins, rounding, per band)
    # the last band (fc2, 10 neurons each): both sides drawn; the first band's conv1 of the wide
    # model spans more columns than the narrow one's (same scale)
    y = HEAD
    spans = []
    for h in heights:
        band = img[y + CAPTION : y + CAPTION + int(h), :]
        left, right = band[:, PAD : PAD + half], band[:, 2 * PAD + half :]
        spans.append([int((np.abs(np.diff(side, axis=1)).sum(2) > 60).any(0).sum()) for side in (left, right)])
        y += CAPTION + int(round(h)) + PAD
    assert all(a > 0 and b > 0 for a, b in spans)
    assert spans[0][1] > spans[0][0]  # conv1: 16 vs 8 neurons


@pytest.mark.gui
def test_viewer_shows_a_second_run_beside_following_the_view(two_runs, tmp_path, headless_gl):
    """``cnnvis view NARROW --compare WIDE``: the Two runs panel holds the comparison of
    ``compare_runs`` (CKA on the same probe images as ``cnnvis compare``); the view on conv4's
    row, run B's view frames its conv4 row, drawn as a standalone render of it draws it; its
    hover names run B's cluster; a click on a table row frames that group in the network view."""
    from imgui_bundle import imgui
    from ui_driver import drive, wait

    from cnnvis_gl import open_run
    from cnnvis_gl.compare import compare_runs
    from cnnvis_gl.layout.search import groups_frame, row_frame
    from cnnvis_gl.render.camera import Camera
    from cnnvis_gl.render.lod import LodSettings
    from cnnvis_gl.render.offscreen import render_image
    from cnnvis_gl.run.rebuild import rebuild_model, rebuild_probe
    from cnnvis_gl.ui import App
    from cnnvis_gl.ui.other import CKA_PROBE

    narrow, wide = two_runs
    app = App(narrow, headless=True, compare=wide)
    seen: dict = {}

    def on_gl(ctx, fn):  # GL calls belong on the GUI thread (the test runs in a coroutine)
        box: list = []
        hook = lambda a: box.append(fn()) if not box else None  # noqa: E731
        app.on_frame.append(hook)
        ctx.yield_(2)
        app.on_frame.remove(hook)
        return box[0]

    def settle(ctx):
        ctx.yield_(3)
        wait(ctx, lambda: not app.state.camera.animating and not app.other.camera.animating)
        ctx.yield_(3)

    def test(ctx):
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        wait(ctx, lambda: app.other.run is not None and app.other.run.cka is not None, 300)
        wait(ctx, lambda: not app.feed.pending)  # (laid out again for the docked view's size)
        run = app.other.run
        seen["run"] = run
        # the view on conv4's row (its height and a tenth above and below): B frames its conv4
        s = app.state.scene
        r4 = next(r for r in s.rows if r.name == "conv4")
        zoom = app.state.camera.viewport[1] / (1.2 * r4.height)
        app.state.camera.go(Camera((float(s.clusters.rect[0][0]), r4.y + r4.height / 2), zoom))
        settle(ctx)
        seen["shown"] = list(app.other.shown)
        cam, size = app.other.camera.current, app.other.camera.viewport
        seen["b_view"] = (cam.visible_rect(size), size)
        seen["pixels"] = on_gl(ctx, app.other.target.read)
        seen["camera"] = cam
        # hover the middle of B's largest conv4 cluster
        b = run.scene
        brow = next(k for k, r in enumerate(b.rows) if r.name == "conv4")
        bci = max(np.flatnonzero(b.clusters.row == brow), key=lambda c: int(b.clusters.size[c]))
        x, y, w, h = (float(v) for v in b.clusters.rect[bci])
        px, py = cam.scene_to_screen(x + w / 2, y + h / 2, size)
        ox, oy, _, _ = app.state.panels.other_view
        ctx.mouse_move_to_pos(imgui.ImVec2(ox + px, oy + py))
        ctx.yield_(2)
        seen["hover"] = (
            on_gl(ctx, lambda: app.other.cluster_at(px, py)),
            bci,
            app.other.cluster_text(bci),
        )
        # a click on the table's fc1 row frames fc1 in the network view (and B follows)
        ctx.item_click("**/fc1##pair_fc1")
        settle(ctx)
        seen["a_rect"] = app.state.camera.current.visible_rect(app.state.camera.viewport)
        seen["fc1"] = groups_frame(s, [g.name for g in app.state.snapshot.graph.groups], ["fc1"])
        seen["shown_after"] = list(app.other.shown)

    drive(app, test, (1600, 1000))
    run = seen["run"]
    # the table: compare_runs of the two runs; CKA on cnnvis compare's probe images
    models = [rebuild_model(r, 10)[0] for r in (narrow, wide)]
    data = rebuild_probe(narrow, CKA_PROBE)
    want = compare_runs(open_run(narrow), open_run(wide), data=data, models=(models[0], models[1]))
    assert [(r.a, r.b, r.neurons, r.clusters, r.redundancy, r.positive) for r in run.rows] == [
        (r.a, r.b, r.neurons, r.clusters, r.redundancy, r.positive) for r in want
    ]
    assert run.cka == pytest.approx({r.a: r.cka for r in want}, abs=1e-9)
    # run B's view frames conv4's row, and conv1's row lies outside
    assert seen["shown"] == ["conv4"]
    (vx0, vy0, vx1, vy1), size = seen["b_view"]
    b = run.scene
    conv4 = row_frame(b, next(k for k, r in enumerate(b.rows) if r.name == "conv4"))
    conv1 = next(r for r in b.rows if r.name == "conv1")
    assert vx0 <= conv4[0] and vy0 <= conv4[1] and conv4[2] <= vx1 and conv4[3] <= vy1
    assert conv1.y + conv1.height < vy0
    # what the panel shows is run B drawn with that camera (a standalone render of its scene,
    # at the viewer's level of detail: not a still picture's)
    alone = render_image(
        run.patches, b, size, seen["camera"], "dark", neuron_edges=None, lod=LodSettings()
    )
    diff = np.abs(seen["pixels"][..., :3].astype(int) - alone[..., :3].astype(int))
    assert diff.mean() < 2.0, diff.mean()
    assert seen["pixels"][..., :3].std() > 20  # patches, not an empty view
    got, bci, text = seen["hover"]
    assert got == bci and text[0].startswith(
        f"conv4: a cluster of {int(b.clusters.size[bci])} neurons"
    )
    # the table's fc1 row: fc1 framed in the network view, and B frames fc1 (with what the
    # view's shape lets in around it)
    ax0, ay0, ax1, ay1 = seen["a_rect"]
    fx0, fy0, fx1, fy1 = seen["fc1"]
    assert ax0 <= fx0 and ay0 <= fy0 and fx1 <= ax1 and fy1 <= ay1
    assert "fc1" in seen["shown_after"]
