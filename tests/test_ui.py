"""The viewer, driven through its real GUI by the ImGui Test Engine (headless: null GLFW + EGL).

Each test starts the real app on a real run directory (BaseCNN×¼ on real CIFAR-10 images),
clicks through the panels and drags in the network view, and checks the Scene, the renderer's
upload counters and the files on disk.  Software GL is slow: the tests keep to few frames.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ui_driver import drive, wait

pytestmark = pytest.mark.gui

SIZE = (1280, 800)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template_run(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    """A real run directory: one snapshot of BaseCNN×¼ on 200 CIFAR-10 test images."""
    import torch

    import cnnvis_gl
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    snap = cnnvis_gl.analyze(
        build_model("basecnn-x0.25"), f"cifar10:{cifar_dir}", limit=200, progress=False
    )
    run = tmp_path_factory.mktemp("uirun") / "run"
    snap.save(run, 0)
    return run


@pytest.fixture
def run_dir(template_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run (the viewer writes layout.json into it)."""
    dst = tmp_path / "run"
    shutil.copytree(template_run, dst)
    return dst


@pytest.fixture(autouse=True)
def _needs_egl(headless_gl) -> None:
    """Every test here runs the real viewer on headless OpenGL."""


def ready(app) -> Callable[[], bool]:
    return lambda: app.state.scene is not None and not app.feed.pending


def geometry(counts: dict, before: dict) -> dict:
    """Uploads of geometry buffers since ``before``."""
    return {
        k: v - before.get(k, 0)
        for k, v in counts.items()
        if k.endswith(".geometry") and v != before.get(k, 0)
    }


def diff(counts: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in counts.items() if v != before.get(k, 0)}


def centre(rect) -> tuple[float, float]:
    x, y, w, h = (float(v) for v in rect)
    return x + w / 2, y + h / 2


def fill_with_row(st, name: str) -> None:
    """Move the camera (animated) so that scene row ``name`` fills the view's height."""
    from cnnvis_gl.render.camera import Camera

    row = next(r for r in st.scene.rows if r.name == name)
    cx = (st.scene.bounds[0] + st.scene.bounds[2]) / 2
    st.camera.go(Camera((cx, row.y + row.height / 2), st.camera.viewport[1] / (1.2 * row.height)))


def make_app(run_dir: Path, **kw):
    from cnnvis_gl.ui import App

    return App(run_dir, headless=True, **kw)


# ---------------------------------------------------------------------------- tests


def test_panels_switch_facet_select_classes_threshold_theme(run_dir: Path, tmp_path: Path):
    """Appearance changes upload small state only; the threshold re-bundles edges only."""
    from imgui_bundle.immapp import testing

    from cnnvis_gl.layout.scene import FACET_MATRIX

    app = make_app(run_dir)
    seen: dict = {}

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        r = app.renderer
        # facet for all: one small state upload, no geometry
        before = dict(r.upload_count)
        ctx.item_click("//Controls/**/Activation matrix")
        wait(ctx, ready(app))
        ctx.yield_(2)
        seen["facets"] = app.state.scene.clusters.facet.copy()
        seen["facet_uploads"] = diff(r.upload_count, before)
        # class selection
        before = dict(r.upload_count)
        ctx.item_click("//Controls/**/airplane##class0")
        ctx.item_click("//Controls/**/cat##class3")
        ctx.yield_(2)
        seen["classes"] = set(app.state.selection.classes)
        seen["class_geometry"] = geometry(r.upload_count, before)
        # theme (colours): uniforms only
        before = dict(r.upload_count)
        ctx.item_click("//Controls/##theme")
        ctx.item_click("//$FOCUSED/light")
        ctx.yield_(2)
        seen["theme"] = r.theme.name
        seen["theme_uploads"] = diff(r.upload_count, before)
        # edge threshold: edges and bundles re-uploaded, never the cluster / neuron geometry
        old_edges = app.state.scene.edges
        before = dict(r.upload_count)
        ctx.item_input_value("//Controls/##edges", 60)
        wait(ctx, ready(app))
        ctx.yield_(2)
        seen["fraction"] = app.state.edits.edge_fraction
        seen["edges_changed"] = app.state.scene.edges is not old_edges
        seen["threshold_geometry"] = geometry(r.upload_count, before)
        testing.capture(ctx, str(tmp_path / "panels.png"))

    drive(app, test, SIZE)
    assert (seen["facets"] == FACET_MATRIX).all()
    assert seen["facet_uploads"] == {"clusters.state": 1}
    assert seen["classes"] == {0, 3}
    assert seen["class_geometry"] == {}
    assert seen["theme"] == "light"
    assert seen["theme_uploads"] == {}
    assert seen["fraction"] == pytest.approx(0.6)
    assert seen["edges_changed"]
    assert set(seen["threshold_geometry"]) <= {"edges.geometry", "bundles.geometry"}
    assert (tmp_path / "panels.png").stat().st_size > 10_000


def _movable(scene) -> tuple[int, int, int]:
    """(neuron index, its cluster, another cluster of the row) in the row with the most room."""
    c = scene.clusters
    best = None
    for row in np.unique(c.row):
        idx = np.flatnonzero(c.row == row)
        if len(idx) < 2:
            continue
        src = int(idx[np.argmax(c.size[idx])])
        if c.size[src] < 2:
            continue
        dst = int(next(i for i in idx if i != src))
        if best is None or c.size[src] > c.size[best[1]]:
            n = int(np.flatnonzero(scene.neurons.cluster == src)[0])
            best = (n, src, dst)
    assert best is not None, "no row with two clusters"
    return best


def test_drag_neuron_to_cluster_undo_redo_and_layout_json(run_dir: Path):
    """A drag moves a neuron (sizes and edges change), Ctrl+Z / Ctrl+Shift+Z undo and redo it,
    and the edited clustering is saved in layout.json and restored on reopening."""
    from imgui_bundle import imgui

    app = make_app(run_dir)
    seen: dict = {}

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        s = app.state.scene
        n, src, dst = _movable(s)
        seen["key"] = app.state.neuron_key(n)
        seen["ids"] = (int(s.clusters.id[src]), int(s.clusters.id[dst]))
        seen["sizes0"] = dict(zip(s.clusters.id.tolist(), s.clusters.size.tolist(), strict=True))
        seen["edges0"] = s.edges.weight.copy()
        a = imgui.ImVec2(*app.view.screen_pos(*centre(s.neurons.rect[n])))
        x, y, w, h = (float(v) for v in s.clusters.rect[dst])
        b = imgui.ImVec2(*app.view.screen_pos(x + w / 2, y + 3))  # the target frame's label band
        ctx.mouse_move_to_pos(a)
        ctx.mouse_down(0)
        ctx.mouse_move_to_pos(imgui.ImVec2((a.x + b.x) / 2, (a.y + b.y) / 2))
        ctx.mouse_move_to_pos(b)
        ctx.yield_(1)
        seen["dragging"] = app.state.drag is not None and app.state.drag.active
        ctx.mouse_up(0)
        wait(ctx, ready(app))
        s = app.state.scene
        seen["sizes1"] = dict(zip(s.clusters.id.tolist(), s.clusters.size.tolist(), strict=True))
        seen["edges1"] = s.edges.weight.copy()
        seen["json1"] = json.loads((run_dir / "layout.json").read_text())
        seen["undo_label"] = app.state.history.undo[-1].label if app.state.history.undo else ""
        # an undo whose layout job fails (fault injected) leaves the history as it was
        real = app.session.restore

        def failing(edits, label):
            raise OSError("injected failure")

        h = app.state.history
        seen["history0"] = (len(h.undo), len(h.redo))
        app.session.restore = failing
        ctx.key_press(imgui.Key.mod_ctrl | imgui.Key.z)
        wait(ctx, ready(app))
        ctx.yield_(1)
        seen["failed"] = ((len(h.undo), len(h.redo)), app.state.jobs.error)
        app.session.restore = real
        ctx.key_press(imgui.Key.mod_ctrl | imgui.Key.z)
        wait(ctx, ready(app))
        ctx.yield_(1)
        s = app.state.scene
        seen["sizes2"] = dict(zip(s.clusters.id.tolist(), s.clusters.size.tolist(), strict=True))
        ctx.key_press(imgui.Key.mod_ctrl | imgui.Key.mod_shift | imgui.Key.z)
        wait(ctx, ready(app))
        ctx.yield_(1)
        s = app.state.scene
        seen["sizes3"] = dict(zip(s.clusters.id.tolist(), s.clusters.size.tolist(), strict=True))

    drive(app, test, SIZE, job_errors=1)  # the injected failure of one undo
    src_id, dst_id = seen["ids"]
    s0, s1 = seen["sizes0"], seen["sizes1"]
    assert seen["dragging"]
    assert s1[src_id] == s0[src_id] - 1 and s1[dst_id] == s0[dst_id] + 1
    assert not np.array_equal(seen["edges0"], seen["edges1"])  # cluster edges follow the move
    assert seen["undo_label"].startswith("move neuron")
    assert seen["history0"] == (1, 0)
    assert seen["failed"][0] == (1, 0)  # nothing lost: the edit can still be undone
    assert "undo move neuron" in seen["failed"][1] and "injected failure" in seen["failed"][1]
    assert seen["sizes2"] == s0  # undo
    assert seen["sizes3"] == s1  # redo
    # layout.json: pickle-free JSON naming the moved neuron in its new cluster
    unit, ch = seen["key"]
    saved = seen["json1"]
    assert saved["format"] == "cnnvis-layout"
    moved = [c for row in saved["rows"].values() for c in row if c["id"] == dst_id]
    assert moved and ch in moved[0]["members"]
    assert not list(run_dir.glob(".layout-*"))  # atomic write left no temporary file

    # reopening the run restores the edited (redone) clustering
    app2 = make_app(run_dir)
    restored: dict = {}

    def test2(ctx):
        wait(ctx, ready(app2))
        s = app2.state.scene
        restored["sizes"] = dict(zip(s.clusters.id.tolist(), s.clusters.size.tolist(), strict=True))
        restored["pinned"] = app2.session.restored

    drive(app2, test2, SIZE)
    assert restored["pinned"]
    assert restored["sizes"] == s1


def test_select_in_view_move_from_inspector_zoom_and_screenshot(run_dir: Path, tmp_path: Path):
    """Click a neuron (inspectors fill), move it into a new cluster with the inspector's
    command, zoom with the wheel and by double-click, and save a screenshot of the app."""
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    app = make_app(run_dir)
    seen: dict = {}
    shot = tmp_path / "cnnvis_ui.png"

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        s = app.state.scene
        n, src, _ = _movable(s)
        row = int(s.clusters.row[src])
        seen["row_clusters0"] = int((s.clusters.row == row).sum())
        pos = imgui.ImVec2(*app.view.screen_pos(*centre(s.neurons.rect[n])))
        ctx.mouse_move_to_pos(pos)
        ctx.yield_(2)
        seen["hover"] = app.state.hover
        seen["tooltip"] = app.view.hover_text()
        ctx.mouse_click(0)
        ctx.yield_(2)
        seen["selected"] = app.state.selection.neuron
        seen["src_id"] = int(s.clusters.id[src])
        seen["cluster_selected"] = app.state.selection.cluster == seen["src_id"]
        # let the inspector pictures arrive, then screenshot the whole app
        wait(ctx, lambda: app.inspect.topk_picture(seen["selected"]) is not None)
        ctx.item_click("//Controls/**/bird##class2")
        ctx.yield_(3)
        testing.capture(ctx, str(shot))
        win = imgui.internal.find_window_by_name("Neuron")
        seen["neuron_window"] = (win.pos.x, win.pos.y, win.size.x, win.size.y)
        unit, ch = seen["selected"]
        seen["class_means"] = app.inspect.class_means(unit)[ch].copy()
        # the Cluster panel's other tabs: a click in the matrix selects the neuron of the row
        # under the pointer, a click in the table the neuron of that line
        rows = app.state.cluster_neurons(src)
        ctx.item_click("//Cluster/**/Matrix")
        ctx.yield_(2)
        ctx.item_click("//Cluster/**/##matrix")
        ctx.yield_(2)
        box = ctx.item_info("//Cluster/**/##matrix").rect_full  # one band per neuron row
        y = imgui.get_io().mouse_pos.y
        r = int((y - box.min.y) / ((box.max.y - box.min.y) / len(rows)))
        seen["matrix_pick"] = (app.state.selection.neuron, app.state.neuron_key(int(rows[r])))
        j = int((imgui.get_io().mouse_pos.x - box.min.x) / ((box.max.x - box.min.x) / 10))
        seen["matrix_class"] = (app.state.selection.neuron_class, int(app.state.scene.class_order[j]))
        ctx.item_click("//Cluster/**/Neurons")
        ctx.yield_(2)
        second = app.state.neuron_key(int(rows[1]))
        ctx.item_click(f"//Cluster/**/{second[0]} · {second[1]}##n{int(rows[1])}")
        ctx.yield_(2)
        seen["table_pick"] = (app.state.selection.neuron, second)
        app.actions.select_neuron(seen["selected"])
        ctx.yield_(2)
        # move with the inspector's command (default target: a new cluster)
        ctx.item_click("//Neuron/**/Move")
        wait(ctx, ready(app))
        s2 = app.state.scene
        seen["row_clusters1"] = int((s2.clusters.row == row).sum())
        seen["still_selected"] = app.state.neuron_index(seen["selected"]) is not None
        # wheel zoom at the cursor, then double-click: zoom to the cluster
        ci = app.state.cluster_index(seen["src_id"])
        z0 = app.state.camera.target.zoom
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(*centre(s2.clusters.rect[ci]))))
        ctx.mouse_wheel_y(2.0)
        ctx.yield_(2)
        seen["zoomed"] = app.state.camera.target.zoom / z0
        wait(ctx, lambda: not app.state.camera.animating, 10.0)
        x, y, w, h = (float(v) for v in s2.clusters.rect[ci])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x + w / 2, y + 3)))
        ctx.mouse_double_click(0)
        ctx.yield_(1)
        wait(ctx, lambda: not app.state.camera.animating, 10.0)
        cam = app.state.camera.current
        seen["framed"] = cam.visible_rect(app.state.camera.viewport)
        seen["cluster"] = (x, y, x + w, y + h)

    drive(app, test, (1600, 1000))
    assert seen["hover"][0] == "neuron"
    assert seen["tooltip"] and "layer" in seen["tooltip"][0]
    assert seen["selected"] is not None and seen["cluster_selected"]
    assert seen["matrix_pick"][0] == seen["matrix_pick"][1]
    assert seen["matrix_class"][0] == seen["matrix_class"][1]  # the cell's class: drill-down
    assert seen["table_pick"][0] == seen["table_pick"][1]
    assert seen["row_clusters1"] == seen["row_clusters0"] + 1
    assert seen["still_selected"]
    assert seen["zoomed"] == pytest.approx(1.25**2, rel=1e-3)
    fx0, fy0, fx1, fy1 = seen["framed"]
    cx0, cy0, cx1, cy1 = seen["cluster"]
    assert fx0 <= cx0 and fy0 <= cy0 and fx1 >= cx1 and fy1 >= cy1  # the cluster fills the view
    assert (fx1 - fx0) < 3 * (cx1 - cx0) or (fy1 - fy0) < 3 * (cy1 - cy0)
    assert shot.stat().st_size > 50_000
    # the Neuron panel's class bars, measured in the screenshot: one bar per class, top to
    # bottom in class order, each as long as the neuron's class mean
    lengths = _bar_lengths(shot, seen["neuron_window"])
    vals = seen["class_means"]
    shown = vals > 0.02 * vals.max()  # shorter bars are under a pixel or two
    assert len(lengths) == int(shown.sum()), (lengths, vals)
    np.testing.assert_allclose(
        np.array(lengths) / max(lengths), vals[shown] / vals.max(), atol=0.03 + 2 / max(lengths)
    )
    print(f"screenshot: {shot}")


def _bar_lengths(png: Path, window: tuple[float, float, float, float]) -> list[int]:
    """Lengths in pixels of the horizontal class bars (fill colour (0.33, 0.62, 0.95)) in the
    right half of a window, top to bottom."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    x, y, w, h = (int(round(v)) for v in window)
    part = img[y : y + h, x + w // 2 : x + w]
    bar = (np.abs(part - np.array([84, 158, 242])) <= 8).all(axis=2)
    rows = bar.sum(axis=1) >= 2
    lengths, start = [], None
    for r in range(len(rows) + 1):
        on = r < len(rows) and rows[r]
        if on and start is None:
            start = r
        elif not on and start is not None:
            cols = np.nonzero(bar[start:r].any(axis=0))[0]
            lengths.append(int(cols.max() - cols.min() + 1))
            start = None
    return lengths


def test_follow_mode_switches_to_new_snapshot_without_freezing(run_dir: Path):
    """A snapshot written while the viewer runs is loaded and laid out in the background;
    frames keep coming meanwhile, and the view switches to it."""
    from cnnvis_gl.run.snapshot import open_run

    app = make_app(run_dir, follow=True)
    seen: dict = {}

    def test(ctx):
        wait(ctx, lambda: app.state.step == 0 and not app.feed.pending)
        open_run(run_dir).snapshot(0).save(run_dir, 7)  # "the trainer" writes step 7
        f0, t0 = app.state.frames, time.monotonic()
        busy = 0  # frames drawn while the new snapshot's layout was in flight
        while not (app.state.step == 7 and not app.feed.pending):
            busy += bool(app.feed.pending or (app.follower is not None and app.follower.working))
            ctx.yield_()
            assert time.monotonic() - t0 < 120, "timed out waiting for step 7"
        seen["frames"], seen["busy"] = app.state.frames - f0, busy
        seen["seconds"] = time.monotonic() - t0
        seen["steps"] = list(app.state.steps)

    drive(app, test, SIZE)
    assert seen["steps"] == [0, 7]
    # the UI kept drawing while the new snapshot was verified and laid out (frozen, it would
    # draw one frame before the job and one after)
    assert seen["busy"] >= 3
    assert seen["frames"] / seen["seconds"] > 5


def test_run_app_headless_saves_a_screenshot(run_dir: Path, tmp_path: Path, capsys):
    """`run_app` without a display: null platform + EGL, a clear message, one screenshot."""
    from PIL import Image

    from cnnvis_gl.ui import run_app

    app = run_app(run_dir, headless=True, size=(1024, 700), screenshot_dir=tmp_path / "shots")
    out = capsys.readouterr().out
    assert "running headless" in out and str(tmp_path / "shots") in out
    assert len(app.shots.saved) == 1
    img = np.asarray(Image.open(app.shots.saved[0]))
    assert img.shape == (700, 1024, 3)
    assert img.std() > 10  # not a blank frame


def test_groups_k_method_expand_collapse_and_undo(run_dir: Path):
    """Per-group clustering controls re-cluster that group; expand / collapse change the rows;
    Ctrl+Z undoes a collapse."""
    from imgui_bundle import imgui

    app = make_app(run_dir)
    seen: dict = {}

    def rows() -> list[str]:
        return [r.name for r in app.state.scene.rows if not r.name.startswith("between:")]

    def clusters_of(name: str) -> int:
        s = app.state.scene
        k = [r.name for r in s.rows].index(name)
        return int((s.clusters.row == k).sum())

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        ctx.item_input_value("//Controls/**/conv1/##k", 3)
        wait(ctx, ready(app))
        seen["conv1"] = (dict(app.state.edits.clustering).get("conv1"), clusters_of("conv1"))
        ctx.item_click("//Controls/groups/conv2/##method")
        ctx.item_click("//$FOCUSED/MeanShift")
        wait(ctx, ready(app))
        seen["conv2"] = dict(app.state.edits.clustering).get("conv2")
        ctx.item_click("//Controls/**/conv3/##expand")
        wait(ctx, ready(app))
        seen["expanded"] = rows()
        ctx.item_click("//Controls/**/conv3/##expand")
        wait(ctx, ready(app))
        seen["collapsed"] = rows()
        ctx.key_press(imgui.Key.mod_ctrl | imgui.Key.z)
        wait(ctx, ready(app))
        seen["undone"] = rows()
        seen["checkbox"] = app.state.groups["conv3"].expanded

    drive(app, test, SIZE)
    assert seen["conv1"] == (("kmeans", 3), 3)
    assert seen["conv2"] == ("meanshift", None)
    units = [f"conv3/{u}" for u in ("features.14", "features.17", "features.20")]
    assert all(u in seen["expanded"] for u in units) and "conv3" not in seen["expanded"]
    assert "conv3" in seen["collapsed"] and not any(u in seen["collapsed"] for u in units)
    assert seen["undone"] == seen["expanded"] and seen["checkbox"]


def test_collapse_a_stage_animates_refits_saves_and_undoes(run_dir: Path):
    """The Controls panel's stage line collapses ``features`` (conv1–conv4) into one row: the
    view morphs into it (rows in between), the whole network stays fitted, layout.json keeps
    it, the label says so; Ctrl+Z brings the groups back.  "Collapse all stages" shows BaseCNN as
    its two stages, "Expand all" as its groups again."""
    from imgui_bundle import imgui

    from cnnvis_gl.render.camera import Camera

    app = make_app(run_dir)
    seen: dict = {"drawn": []}

    def rows() -> list[str]:
        return [r.name for r in app.state.scene.rows if not r.name.startswith("between:")]

    def watch(a) -> None:  # what the renderer draws during the morph
        if a.feed.morphing is not None and a.renderer is not None:
            seen["drawn"].append(next((r.y for r in a.renderer.scene.rows if r.name == "features"), None))

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(3)
        seen["before"] = rows()
        conv4 = next(r for r in app.state.scene.rows if r.name == "conv4")
        seen["conv4_y"] = conv4.y
        app.on_frame.append(watch)
        ctx.item_click("//Controls/**/stage:features/##stage")
        wait(ctx, lambda: ready(app)() and app.feed.morphing is None and not app.state.camera.animating)
        seen["collapsed"] = rows()
        seen["labels"] = [lab.text for lab in app.state.scene.labels if lab.kind == "row"]
        seen["drawn_final"] = app.renderer.scene is app.state.scene
        cam, st = app.state.camera, app.state
        whole = Camera().fit(st.scene.bounds, cam.viewport, margin=0.03)
        seen["fitted"] = (cam.current.zoom / whole.zoom, cam.current.center, whole.center)
        seen["saved"] = json.loads((run_dir / "layout.json").read_text())["options"]["collapsed"]
        ctx.key_press(imgui.Key.mod_ctrl | imgui.Key.z)
        wait(ctx, lambda: ready(app)() and app.feed.morphing is None)
        seen["undone"] = rows()
        seen["state"] = set(app.state.collapsed)
        ctx.item_click("//Controls/**/Collapse all stages")
        wait(ctx, lambda: ready(app)() and app.feed.morphing is None)
        seen["all"] = rows()
        ctx.item_click("//Controls/**/Expand all")
        wait(ctx, lambda: ready(app)() and app.feed.morphing is None)
        seen["none"] = rows()

    drive(app, test, SIZE)
    assert seen["collapsed"][0] == "features" and not {"conv1", "conv2", "conv3", "conv4"} & set(seen["collapsed"])
    assert any(t.startswith("features (4 groups)") for t in seen["labels"])
    ys = [y for y in seen["drawn"] if y is not None]
    assert len(ys) >= 2, "the morph drew frames in between"
    assert any(0.0 < y < seen["conv4_y"] for y in ys), "the stage row moved from conv4's place towards the top"
    assert seen["drawn_final"]
    zoom, c, w = seen["fitted"]
    assert zoom == pytest.approx(1.0, rel=0.02) and np.allclose(c, w, atol=2.0 / max(zoom, 1e-9))
    assert seen["saved"] == ["features"]
    assert seen["undone"] == seen["before"] and seen["state"] == set()
    assert seen["all"] == ["features", "classifier"] and seen["none"] == seen["before"]


def test_breadcrumb_collapses_and_expands_a_stage(run_dir: Path):
    """A stage's breadcrumb has a - beside it: it collapses ``features`` into one row; on that
    row the breadcrumbs say the stage, with a + that expands it again."""

    app = make_app(run_dir)
    seen: dict = {}

    def rows() -> list[str]:
        return [r.name for r in app.state.scene.rows if not r.name.startswith("between:")]

    def settle(ctx) -> None:
        wait(ctx, lambda: ready(app)() and app.feed.morphing is None and not app.state.camera.animating)
        ctx.yield_(3)

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        st = app.state
        app.actions.zoom_to_groups(["conv1", "conv2", "conv3", "conv4"])
        settle(ctx)
        seen["before"] = (list(st.panels.crumbs), rows())
        ctx.item_click("//Network/-##stage1")
        settle(ctx)
        seen["collapsed"] = rows()
        fill_with_row(st, "features")  # the stage row
        settle(ctx)
        seen["on_stage"] = list(st.panels.crumbs)
        ctx.item_click("//Network/+##stage1")
        settle(ctx)
        seen["back"] = rows()
        seen["model"] = str(st.snapshot.meta.get("model"))

    drive(app, test, SIZE)
    model = seen["model"]
    crumbs, before = seen["before"]
    assert crumbs == [model, "features"]
    assert seen["collapsed"][0] == "features" and "conv2" not in seen["collapsed"]
    assert seen["on_stage"] == [model, "features"]
    assert seen["back"] == before


def test_run_app_refuses_a_missing_run(tmp_path: Path):
    from cnnvis_gl.errors import SnapshotError
    from cnnvis_gl.ui import run_app

    with pytest.raises(SnapshotError):
        run_app(tmp_path / "nothing", headless=True)


def test_neuron_edges_when_zoomed_in_and_render_command_matches_the_window(
    run_dir: Path, tmp_path: Path
):
    """Zoomed in, the view asks for the neuron-level edges of the clusters in view (uploading
    only their buffers) and draws them; the checkbox turns them off; zoomed out they give way
    to the cluster edges.  `Copy render command` gives a `cnnvis render` line whose PNG has the
    view's pixels."""
    import shlex

    from PIL import Image

    from cnnvis_gl.cli import main as cli_main

    app = make_app(run_dir)
    seen: dict = {}
    out = tmp_path / "view.png"

    def grab(a) -> None:
        seen["view"] = a.target.read()
        a.on_frame.remove(grab)

    def test(ctx):
        wait(ctx, ready(app))
        # an edit first: the command must draw the viewer's saved layout, not a fresh one
        s = app.state.scene
        n, _, _ = _movable(s)
        app.actions.move_neuron((s.units[s.neurons.unit[n]], int(s.neurons.index[n])), None)
        wait(ctx, ready(app))
        wait(ctx, lambda: (run_dir / "layout.json").exists())
        s = app.state.scene
        r = app.renderer
        layer_rows = [k for k, row in enumerate(s.rows) if row.kind != 2]
        ci = int(np.flatnonzero(s.clusters.row == layer_rows[1])[0])
        before = dict(r.upload_count)
        app.actions.zoom_to_cluster(ci)
        wait(ctx, lambda: r.neuron_edges is not None)
        ctx.yield_(3)
        seen["uploads"] = geometry(r.upload_count, before)
        seen["lod"] = dict(r.last_frame)
        seen["covered"] = set(r.neuron_edges.clusters.tolist())
        seen["cluster"] = ci
        seen["info"] = app.state.debug.neuron_edges_info
        app.on_frame.append(grab)  # GL only on the GUI thread (tests run on a coroutine)
        wait(ctx, lambda: "view" in seen)
        seen["cmd"] = app.shots.render_command(out)
        ctx.item_click("//Controls/**/Neuron edges when zoomed in")
        ctx.yield_(3)
        seen["off"] = (r.neuron_edges, r.last_frame["neuron_edges"], app.state.neuron_edges)
        ctx.item_click("//Controls/**/Neuron edges when zoomed in")
        app.actions.fit_all(animate=False)
        ctx.yield_(5)
        seen["fit"] = r.last_frame["neuron_edges"], r.last_frame["edges"]

    drive(app, test, SIZE)
    assert set(seen["uploads"]) == {"detail.edges.geometry", "detail.bundles.geometry"}
    assert seen["lod"]["neuron_edges"] > 0 and seen["lod"]["edges"] > 0
    assert seen["cluster"] in seen["covered"]
    assert "neuron weights" in seen["info"]
    assert seen["off"] == (None, 0, False)
    assert seen["fit"][0] == 0 and seen["fit"][1] > 0
    # the same view through the command line, in this process
    argv = shlex.split(seen["cmd"])
    assert argv[:2] == ["cnnvis", "render"] and any(a.startswith("--camera=") for a in argv)
    assert cli_main(argv[1:]) == 0
    png = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    view = seen["view"][..., :3].astype(np.int16)
    assert png.shape == view.shape
    d = np.abs(png - view).max(axis=2)
    print(f"render vs window: max diff {d.max()}, {np.mean(d > 2):.5f} of pixels differ by > 2")
    assert np.mean(d > 2) < 1e-3


def test_find_arrow_keys_and_minimap(run_dir: Path):
    """The Find box flies to a layer and (Enter) to a cluster; the arrow keys walk to the next
    cluster; zoomed in, a click in the minimap flies the view to that point."""
    from imgui_bundle import imgui

    from cnnvis_gl.layout.search import neighbour
    from cnnvis_gl.ui.panels.minimap import MINIMAP_ID, minimap_box

    app = make_app(run_dir)
    seen: dict = {}

    def settle(ctx) -> None:
        ctx.yield_(2)
        wait(ctx, lambda: not app.state.camera.animating, 10.0)

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        st = app.state
        s = st.scene
        rows = {s.rows[i].name: i for i in st.layer_rows()}
        ctx.item_input_value("//Controls/##find", "conv3")
        ctx.yield_(2)
        ctx.item_click("//Controls/**/layer conv3##hit0")
        settle(ctx)
        seen["row_view"] = st.camera.current.visible_rect(st.camera.viewport)
        r = s.rows[rows["conv3"]]
        seen["row"] = (r.y, r.y + r.height)
        ctx.item_input_value("//Controls/##find", "conv2 #2")  # typed, then Enter
        settle(ctx)
        seen["found"] = st.selection.cluster
        seen["want"] = int(s.clusters.id[st.row_clusters(rows["conv2"])[1]])
        # the arrow keys, over the view
        ci = st.cluster_index(st.selection.cluster)
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(*centre(s.clusters.rect[ci]))))
        ctx.key_press(imgui.Key.right_arrow)
        ctx.yield_(2)
        seen["right"] = (st.cluster_index(st.selection.cluster), neighbour(s, ci, "right"))
        ctx.key_press(imgui.Key.down_arrow)
        settle(ctx)
        cur = st.cluster_index(st.selection.cluster)
        seen["down"] = (cur, neighbour(s, seen["right"][1], "down"))
        x, y, w, h = (float(v) for v in s.clusters.rect[cur])
        cx, cy = st.camera.current.center
        seen["centred"] = (cx - (x + w / 2), cy - (y + h / 2))
        # the minimap: a click at the point standing for the first layer's middle
        target = s.rows[rows["conv1"]]
        tx = (s.bounds[0] + s.bounds[2]) / 2
        ty = target.y + target.height / 2
        vw, vh = st.camera.viewport
        x0, y0, _x1, _y1, k = minimap_box(s.bounds, app.view.origin, (vw, vh))
        seen["minimap_drawn"] = ctx.item_exists(f"//{'Network'}/{MINIMAP_ID}")
        ctx.mouse_move_to_pos(imgui.ImVec2(x0 + (tx - s.bounds[0]) * k, y0 + (ty - s.bounds[1]) * k))
        ctx.mouse_click(0)
        settle(ctx)
        seen["flown"] = (st.camera.current.center, (tx, ty), 1.0 / k)

    drive(app, test, SIZE)
    vx0, vy0, vx1, vy1 = seen["row_view"]
    r0, r1 = seen["row"]
    assert vy0 <= r0 and vy1 >= r1 and (vy1 - vy0) < 3 * (r1 - r0)  # framed on conv3
    assert seen["found"] == seen["want"]
    assert seen["right"][0] == seen["right"][1] is not None
    assert seen["down"][0] == seen["down"][1] is not None
    assert abs(seen["centred"][0]) < 1.0 and abs(seen["centred"][1]) < 1.0
    assert seen["minimap_drawn"]
    (cx, cy), (tx, ty), unit = seen["flown"]
    assert abs(cx - tx) <= 2 * unit and abs(cy - ty) <= 2 * unit  # within two minimap pixels


def test_an_expanded_module_shows_its_branches_side_by_side(tmp_path: Path, cifar_dir: Path):
    """Expand an Inception module: its four branches come side by side (one band), the Find box
    frames the whole module, the right arrow walks from one branch into the next."""
    import torch
    from imgui_bundle import imgui
    from test_lanes import Net

    import cnnvis_gl
    from cnnvis_gl.layout.search import neighbour

    torch.manual_seed(0)
    cnnvis_gl.analyze(Net(), f"cifar10:{cifar_dir}", limit=96, progress=False).save(tmp_path / "run", 0)
    app = make_app(tmp_path / "run")
    seen: dict = {}
    first = [f"mixed1/inc.branch{b}" for b in ("1.0", "2.0.0", "3.0.0", "4.1.0")]

    def settle(ctx) -> None:
        ctx.yield_(2)
        wait(ctx, lambda: app.feed.morphing is None and not app.state.camera.animating, 10.0)

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        app.actions.set_expanded("mixed1", True)  # (what its box does: test_groups_k_method_…)
        wait(ctx, lambda: not app.feed.pending and any(r.name == first[0] for r in app.state.scene.rows))
        settle(ctx)
        st = app.state
        s = st.scene
        rows = {s.rows[i].name: i for i in st.layer_rows()}
        seen["tops"] = {s.rows[rows[n]].y for n in first}
        seen["lanes"] = [(s.rows[rows[n]].x, s.rows[rows[n]].x + s.rows[rows[n]].width) for n in first]
        ctx.item_input_value("//Controls/##find", "mixed1")
        ctx.yield_(2)
        ctx.item_click("//Controls/**/group mixed1: 8 layers##hit0")
        settle(ctx)
        seen["view"] = st.camera.current.visible_rect(st.camera.viewport)
        b1 = st.row_clusters(rows[first[0]])
        ci = int(b1[-1])
        st.selection.cluster = int(s.clusters.id[ci])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(*centre(s.clusters.rect[ci]))))
        ctx.key_press(imgui.Key.right_arrow)
        settle(ctx)
        seen["right"] = (st.cluster_index(st.selection.cluster), neighbour(s, ci, "right"))
        seen["right_row"] = s.rows[int(s.clusters.row[seen["right"][0]])].name

    drive(app, test, SIZE)
    assert len(seen["tops"]) == 1  # one band
    lanes = seen["lanes"]
    assert all(a[1] < b[0] for a, b in zip(lanes[:-1], lanes[1:], strict=True))
    vx0, _, vx1, _ = seen["view"]
    assert vx0 <= lanes[0][0] + 1 and vx1 >= lanes[-1][1] - 1  # every lane in view
    assert seen["right"][0] == seen["right"][1] and seen["right_row"] == first[1]


def test_bookmarks_panel_saves_and_recalls_a_view(run_dir: Path):
    """Save the view (zoomed on a cluster, a class highlighted) as a bookmark, move away,
    click the bookmark: the camera and the highlight come back; delete it."""
    app = make_app(run_dir)
    seen: dict = {}

    def settle(ctx) -> None:
        ctx.yield_(2)
        wait(ctx, lambda: not app.state.camera.animating and not app.feed.pending, 10.0)

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        st = app.state
        ctx.item_click("//Controls/**/cat##class3")
        app.actions.zoom_to_cluster(2)
        settle(ctx)
        seen["camera"] = st.camera.target
        ctx.window_focus("//Bookmarks")
        ctx.yield_(2)
        ctx.item_input_value("//Bookmarks/##bookmark_name", "close up")  # typed, then Enter
        ctx.yield_(2)
        seen["file"] = json.loads((run_dir / "bookmarks.json").read_text())
        app.actions.select_classes(set())
        app.actions.fit_all()
        settle(ctx)
        seen["moved"] = st.camera.target != seen["camera"]
        ctx.item_click("//Bookmarks/close up##go0")
        settle(ctx)
        seen["back"] = (st.camera.target, set(st.selection.classes))
        ctx.item_click("//Bookmarks/x##del0")
        ctx.yield_(2)
        seen["after_delete"] = json.loads((run_dir / "bookmarks.json").read_text())

    drive(app, test, SIZE)
    (mark,) = seen["file"]["bookmarks"]
    cam = seen["camera"]
    assert mark["name"] == "close up" and mark["classes"] == ["cat"]
    assert mark["camera"] == pytest.approx([cam.center[0], cam.center[1], cam.zoom])
    assert seen["moved"]
    back, classes = seen["back"]
    assert back.center == pytest.approx(cam.center) and back.zoom == pytest.approx(cam.zoom)
    assert classes == {3}
    assert seen["after_delete"]["bookmarks"] == []


def test_tour_panel_builds_a_tour_and_presents_it_full_screen(run_dir: Path, tmp_path: Path):
    """Build a tour of two bookmarks in the Tour panel (the file follows every edit), present it
    (F5): the view covers the window, the caption is drawn in it, → flies to the next stop and
    applies its look, ← goes back, Esc leaves; the tour survives reopening the run."""
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing
    from PIL import Image

    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.run.bookmarks import Bookmark, save_bookmarks
    from cnnvis_gl.run.tours import load_tour, tour_path

    scene = build_scene(open_run(run_dir).latest())
    x0, y0, x1, y1 = scene.bounds
    x, y, w, h = (float(v) for v in scene.clusters.rect[2])
    save_bookmarks(run_dir, [
        Bookmark("all", ((x0 + x1) / 2, (y0 + y1) / 2, 0.3), size=SIZE),
        Bookmark("close", (x + w / 2, y + h / 2, 2.5), size=SIZE, classes=("cat",), facet="matrix"),
    ])  # fmt: skip
    app = make_app(run_dir)
    seen: dict = {}

    def test(ctx):
        wait(ctx, ready(app))
        st = app.state
        ctx.window_focus("//Tour")
        ctx.yield_(2)
        for name in ("all", "close"):  # the "+ add a stop" combo
            ctx.item_click("//Tour/##add_stop")
            ctx.item_click(f"//$FOCUSED/{name}")
        ctx.item_input_value("//Tour/**/stop0/##caption", "The whole network")
        ctx.item_input_value("//Tour/**/stop1/##caption", "One cluster, cat highlighted")
        ctx.yield_(2)
        seen["file"] = load_tour(tour_path(run_dir, "tour"))
        ctx.key_press(imgui.Key.f5)
        ctx.yield_(3)
        wait(ctx, lambda: not app.feed.pending, 30.0)
        ctx.yield_(3)
        p = st.tour.present
        seen["first"] = (p.stop, st.camera.current, st.camera.viewport, st.facet)
        testing.capture(ctx, str(tmp_path / "present0.png"))
        ctx.key_press(imgui.Key.right_arrow)
        ctx.yield_(2)
        seen["moving"] = (p.stop, p.moving, st.facet, set(st.selection.classes))
        wait(ctx, lambda: p.look == p.stop, 30.0)  # half way: the next look
        ctx.yield_(1)
        seen["mid"] = (p.moving, app.tours.fade(), st.camera.viewport)
        wait(ctx, lambda: not p.moving and not app.feed.pending, 30.0)
        ctx.yield_(3)
        seen["second"] = (st.camera.current, st.facet, set(st.selection.classes))
        testing.capture(ctx, str(tmp_path / "present1.png"))
        # a third stop: a fade back to the whole network (keys drive it: GL work happens on
        # the GUI thread, in the frame)
        app.tours.add_stop("all")
        app.tours.set_stop(2, transition="fade", move=1.5)
        ctx.key_press(imgui.Key.escape)
        ctx.yield_(2)
        ctx.key_press(imgui.Key.f5)
        ctx.yield_(2)
        p2 = st.tour.present
        ctx.key_press(imgui.Key.right_arrow)
        ctx.yield_(1)
        ctx.key_press(imgui.Key.right_arrow)  # a second press finishes the move at once
        ctx.yield_(2)
        seen["finished"] = (p2.stop, p2.moving)
        wait(ctx, lambda: not app.feed.pending, 30.0)
        ctx.key_press(imgui.Key.right_arrow)
        ctx.yield_(2)
        seen["fade"] = (p2.stop, p2.fading, app.view.frozen_texture != 0, st.facet, st.camera.current)
        wait(ctx, lambda: not p2.moving, 30.0)
        ctx.yield_(2)
        seen["faded"] = p2.fading
        ctx.key_press(imgui.Key.left_arrow)
        ctx.yield_(1)
        ctx.key_press(imgui.Key.left_arrow)
        ctx.yield_(2)
        seen["back"] = (p2.stop, st.camera.current)
        ctx.key_press(imgui.Key.escape)
        ctx.yield_(2)
        seen["left"] = st.tour.present is None

    drive(app, test, SIZE)
    print(f"present mode: {tmp_path / 'present0.png'}, {tmp_path / 'present1.png'}")
    tour = seen["file"]
    assert [s.bookmark for s in tour.stops] == ["all", "close"]
    assert [s.caption for s in tour.stops] == ["The whole network", "One cluster, cat highlighted"]
    stop, cam, viewport, facet = seen["first"]
    assert stop == 0 and viewport == SIZE  # the view fills the whole window
    assert cam.zoom == pytest.approx(0.3) and cam.center == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2))
    stop, moving, facet, classes = seen["moving"]
    assert stop == 1 and moving and facet == 0 and classes == set()  # flying: the look half way
    moving, fade, (vw, vh) = seen["mid"]
    if moving:  # (a slow frame may have ended the flight already)
        alpha, rect = fade
        assert 0.0 < alpha <= 1.0  # the last frame before the switch, fading out …
        assert rect != pytest.approx((0.0, 0.0, vw, vh))  # … carried along with the camera
    cam, facet, classes = seen["second"]
    assert facet == 1 and classes == {3}  # arrived: the stop's look
    assert cam.zoom == pytest.approx(2.5) and cam.center == pytest.approx((x + w / 2, y + h / 2))
    stop, fading, frozen, facet, cam = seen["fade"]
    assert stop == 2 and fading and frozen  # the view before fades out over the next one
    assert facet == 0 and cam.zoom == pytest.approx(0.3)  # which is shown at once
    assert not seen["faded"] and seen["finished"] == (1, False)
    assert seen["back"][0] == 0 and seen["back"][1].zoom == pytest.approx(0.3)
    assert seen["left"]
    # the screenshots: no panel or menu over the view; the caption box at the bottom centre
    shot = np.asarray(Image.open(tmp_path / "present0.png").convert("RGB")).astype(int)
    assert shot.shape[:2] == (SIZE[1], SIZE[0])
    menu = shot[:20, :400]  # where the menu bar was: the view's background now
    bg = np.array([19, 21, 25])
    assert np.abs(menu - bg).max() <= 12, np.abs(menu - bg).max()
    band = shot[int(SIZE[1] * 0.8) : int(SIZE[1] * 0.94), SIZE[0] // 3 : 2 * SIZE[0] // 3]
    assert (band.min(axis=2) > 200).mean() > 0.01  # light caption text on the dark box
    # reopening the run: the tour is there
    app2 = make_app(run_dir)
    app2.tours.load()
    assert [s.bookmark for s in app2.state.tour.tour.stops] == ["all", "close", "all"]
    assert app2.state.tour.tour.stops[2].transition == "fade"


def test_notes_added_from_the_view_edited_drawn_and_kept(run_dir: Path, tmp_path: Path):
    """Right-click a cluster, "Add a note": the Notes panel shows it, its text is typed there,
    the callout is drawn over the view pointing at the cluster (in the screenshot's pixels),
    the file follows, and reopening the run brings it back."""
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing
    from PIL import Image

    from cnnvis_gl.run.annotations import load_annotations

    app = make_app(run_dir)
    seen: dict = {}

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        s = app.state.scene
        ci = int(np.argmax(s.clusters.size))
        x, y, w, h = (float(v) for v in s.clusters.rect[ci])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x + w / 2, y + 2)))  # its frame
        ctx.yield_(2)
        ctx.mouse_click(1)  # right: select it and open the context menu
        ctx.yield_(2)
        ctx.item_click("//$FOCUSED/Add a note")
        ctx.yield_(3)
        seen["added"] = list(app.state.notes)
        seen["cid"] = int(s.clusters.id[ci])
        ctx.item_input_value("//Notes/**/note0/##text", "dogs and cats")
        ctx.yield_(3)
        seen["file"] = load_annotations(run_dir)
        seen["callouts"] = list(app.state.panels.callouts)
        seen["origin"] = app.view.origin
        testing.capture(ctx, str(tmp_path / "notes.png"))
        print(f"notes screenshot: {tmp_path / 'notes.png'}")

    drive(app, test, SIZE)
    (note,) = seen["added"]
    assert note.kind == "cluster" and note.target == seen["cid"]
    (saved,) = seen["file"]
    assert saved.text == "dogs and cats" and saved.target == seen["cid"]
    (c,) = seen["callouts"]
    assert c.text == "dogs and cats"
    shot = np.asarray(Image.open(tmp_path / "notes.png").convert("RGB")).astype(int)
    yellow = (shot[..., 0] > 220) & (shot[..., 1] > 170) & (shot[..., 2] < 100)
    ox, oy = seen["origin"]
    tx, ty = int(ox + c.tip[0]), int(oy + c.tip[1])
    cx, cy = int(ox + c.center[0]), int(oy + c.center[1])
    assert yellow[ty - 8 : ty + 9, tx - 8 : tx + 9].any()  # the arrow reaches the cluster
    assert yellow[cy - 40 : cy + 41, cx - 120 : cx + 121].sum() > 50  # the box's border
    app2 = make_app(run_dir)
    app2.notes.load()
    assert [n.text for n in app2.state.notes] == ["dogs and cats"]


def test_a_matrix_cell_click_shows_the_neurons_top_images_of_that_class(run_dir: Path, tmp_path: Path):
    """The matrix drill-down: a click on a cell (neuron × class) selects the neuron and shows
    its top images of that class in the Neuron panel; the class can be changed there."""
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    from cnnvis_gl.layout.search import matrix_class_at

    app = make_app(run_dir)
    seen: dict = {}

    def test(ctx):
        wait(ctx, ready(app))
        ctx.item_click("//Controls/**/Activation matrix")
        wait(ctx, ready(app))
        s = app.state.scene
        ci = int(np.argmax(s.clusters.size))  # the largest cluster, framed
        app.actions.zoom_to_cluster(ci)
        ctx.yield_(2)
        wait(ctx, lambda: not app.state.camera.animating, 10.0)
        i = int(np.flatnonzero(s.neurons.cluster == ci)[0])
        x, y, w, h = (float(v) for v in s.clusters.matrix_rect[ci])
        rh = h / int(s.clusters.size[ci])
        col = 3
        cx = x + (col + 0.5) * w / len(s.class_order)
        cy = y + rh * (int(s.neurons.matrix_row[i]) + 0.5)
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(cx, cy)))
        ctx.yield_(2)
        ctx.mouse_click(0)
        ctx.yield_(2)
        seen["picked"] = (app.state.selection.neuron, app.state.selection.neuron_class)
        seen["expected"] = (app.state.neuron_key(i), matrix_class_at(s, i, cx))
        seen["class_order"] = int(s.class_order[col])
        key = app.state.selection.neuron
        wait(ctx, lambda: app.inspect.class_topk_picture(key, seen["expected"][1]) is not None)
        ctx.yield_(2)
        seen["texture"] = app.inspect.class_topk_picture(key, seen["expected"][1]).size
        testing.capture(ctx, str(tmp_path / "drill.png"))
        # another class, chosen in the panel
        ctx.item_click("//Neuron/##drillclass")
        ctx.item_click("//$FOCUSED/frog")
        ctx.yield_(2)
        seen["chosen"] = app.state.selection.neuron_class

    drive(app, test, SIZE)
    assert seen["picked"] == seen["expected"]
    assert seen["expected"][1] == seen["class_order"]  # the column's class, in the scene's order
    assert tuple(seen["texture"]) == (3 * 64 + 2 * 4, 64)  # three crops in a row
    assert seen["chosen"] == 6  # CIFAR-10's frog


def test_a_big_network_opens_with_a_draft_then_the_real_layout(run_dir: Path, monkeypatch):
    """Progressive opening: above ``DRAFT_NEURONS`` (lowered here to this run's size) the
    first scene on screen is the draft's clusters (by strongest class, no edges: no weights
    read yet) with a status saying the real layout is on its way, drawn at once with grey
    clusters; the draft with its edges (unbundled) and its mosaics' pictures comes next; then
    the real layout replaces it — the same scene as opening without a draft.  Meanwhile the
    window, left alone, draws few frames (the layout gets the CPU)."""
    from cnnvis_gl.layout import LayoutOptions
    from cnnvis_gl.ui import App, jobs
    from cnnvis_gl.ui.app import BACKGROUND_FRAME

    monkeypatch.setattr(jobs, "DRAFT_NEURONS", 100)
    prepare = jobs.LayoutSession.prepare

    def slower(self, snapshot):  # a real layout as long as a big network's, to watch the window
        time.sleep(1.5)
        return prepare(self, snapshot)

    monkeypatch.setattr(jobs.LayoutSession, "prepare", slower)
    app = App(run_dir, headless=True)
    applied: list[tuple] = []  # every layout result, as it reaches the screen
    status: list[str] = []
    apply = app.feed.apply

    sizes: list[tuple] = []  # (the size the layout was made for, the canvas's) at each result

    def record(update) -> None:
        apply(update)
        sizes.append((app.session.base.view_size, app.state.camera.viewport))
        r = app.renderer
        s = update.scene
        applied.append((update.label, len(s.bundles.pos), r.pixels_pending, r.mosaic.count, len(s.edges.weight)))

    app.feed.apply = record

    def watch(a) -> None:  # the status line while the draft is on screen (with its pictures or not)
        if applied and applied[-1][0].startswith("draft"):
            status.append(a.state.jobs.message)

    app.on_frame.append(watch)
    quiet: list[float] = []  # when a frame found that only the layout runs and nothing moves
    only = app._only_layout_runs

    def spy() -> bool:
        if only():
            quiet.append(time.perf_counter())
            return True
        return False

    app._only_layout_runs = spy

    def test(ctx):
        app.frame_period = 1.0 / 60.0  # frames paced as in use (the driver unpaced them)
        wait(ctx, lambda: len(applied) >= 3 and not app.feed.pending)
        ctx.yield_(2)

    drive(app, test, SIZE)
    n = int(app.state.scene.stats["neurons"])
    # while only the real layout ran, the window drew a frame every BACKGROUND_FRAME seconds
    # (the worker processes get the CPU), waking early only when a job ended
    assert len(quiet) >= 3 and np.median(np.diff(quiet)) >= 0.9 * BACKGROUND_FRAME
    (draft, bundles, pending, tiles, edges), pictures, real = applied[:3]
    # laid out for the docked canvas, not the 32 x 11 px its first frames report
    assert sizes[0][0] == sizes[0][1] and min(sizes[0][0]) >= 64
    assert draft == f"draft layout of {n:,} neurons" and bundles == 0 and edges == 0
    assert pending and tiles == 0  # drawn before its pictures are fetched: grey clusters
    assert pictures[0] == f"{draft} with its edges and pictures" and not pictures[2] and pictures[3] > 0
    assert pictures[1] == 0 and pictures[4] > 0  # its edges, unbundled
    assert any("laying it out for real in the background" in m for m in status)
    assert real[0] == "open step 0" and not real[2]
    # the real layout: what opening without a draft lays out for the same canvas
    session = jobs.LayoutSession(run_dir, LayoutOptions(view_size=app.state.camera.viewport))
    ref = session.open().scene
    got = app.state.scene
    assert np.array_equal(got.clusters.id, ref.clusters.id)
    assert np.array_equal(got.neurons.cluster, ref.neurons.cluster)
    assert len(got.bundles.pos) == len(ref.bundles.pos)


def test_breadcrumbs_say_where_the_view_is_and_go_up(run_dir: Path):
    """On conv3's row, the breadcrumbs read model › features › conv3 (BaseCNN's conv groups
    live in its ``features`` module); a click on "features" frames conv1–conv4; Backspace goes
    up to the whole network."""
    from imgui_bundle import imgui

    from cnnvis_gl.layout.search import groups_frame

    app = make_app(run_dir)
    seen: dict = {}

    def settle(ctx) -> None:
        ctx.yield_(2)
        wait(ctx, lambda: not app.state.camera.animating, 10.0)
        ctx.yield_(2)

    def test(ctx):
        wait(ctx, ready(app))
        ctx.yield_(2)
        st = app.state
        seen["fitted"] = list(st.panels.crumbs)
        fill_with_row(st, "conv3")
        settle(ctx)
        seen["conv3"] = list(st.panels.crumbs)
        ctx.item_click("//Network/features##crumb1")
        settle(ctx)
        seen["features"] = (list(st.panels.crumbs), st.camera.current.visible_rect(st.camera.viewport))
        groups = [g.name for g in st.snapshot.graph.groups]
        seen["frame"] = groups_frame(st.scene, groups, ["conv1", "conv2", "conv3", "conv4"])
        vx0, vy0, vx1, vy1 = seen["features"][1]
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos((vx0 + vx1) / 2, (vy0 + vy1) / 2)))
        ctx.key_press(imgui.Key.backspace)
        settle(ctx)
        seen["up"] = list(st.panels.crumbs)
        seen["model"] = str(st.snapshot.meta.get("model"))

    drive(app, test, SIZE)
    model = seen["model"]
    assert seen["fitted"] == [model]
    assert seen["conv3"] == [model, "features", "conv3"]
    crumbs, (vx0, vy0, vx1, vy1) = seen["features"]
    fx0, fy0, fx1, fy1 = seen["frame"]
    assert vy0 <= fy0 and fy1 <= vy1 and vx0 <= fx0 and fx1 <= vx1  # conv1–conv4 framed
    assert crumbs[:2] == [model, "features"]
    assert seen["up"] == [model]


def test_a_dead_neuron_says_so_instead_of_showing_arbitrary_images(run_dir: Path, tmp_path: Path):
    """A neuron that never responds (random-init BaseCNN×¼ has dozens in fc1): its tooltip and
    the Neuron panel say so; no top-k picture is made for it; its patch is the grey tile."""
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    from cnnvis_gl.run.snapshot import silent_tile

    app = make_app(run_dir)
    seen: dict = {}

    def test(ctx):
        wait(ctx, ready(app))
        s, snap = app.state.scene, app.state.snapshot
        units = [s.units[int(u)] for u in s.neurons.unit]
        dead = [i for i in range(len(units)) if snap.silent(units[i])[int(s.neurons.index[i])]]
        seen["dead"] = len(dead)
        i = dead[0]
        key = app.state.neuron_key(i)
        app.actions.zoom_to_cluster(int(s.neurons.cluster[i]))
        ctx.yield_(2)
        wait(ctx, lambda: not app.state.camera.animating, 10.0)
        x, y, w, h = (float(v) for v in s.neurons.rect[i])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x + w / 2, y + h / 2)))
        ctx.yield_(3)
        seen["hover"] = app.view.hover_text()
        ctx.mouse_click(0)
        ctx.yield_(3)
        seen["selected"] = app.state.selection.neuron == key
        t = app.inspect.textures
        seen["pictures"] = [k for k in [*t._tex, *t._making] if k[0] == "topk"]
        seen["patch"] = snap.patches(key[0], 1, 20, neurons=[key[1]])[0, 0]
        testing.capture(ctx, str(tmp_path / "dead.png"))

    drive(app, test, SIZE)
    assert seen["dead"] > 10 and seen["selected"]
    assert any("never responds above 0" in line for line in seen["hover"])
    assert seen["pictures"] == []  # no top-k picture is made for it
    assert np.array_equal(seen["patch"], silent_tile(20))
