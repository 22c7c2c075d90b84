"""Long networks wrap into columns that fill the view (layout/columns.py, issue 11).

The plan is checked on hand-made chains of rows; the composed scene on a real ResNet-20
(random init, real CIFAR-10): same clusters and edges as one column, every edge piece inside
its in-between band, no label over another or over a frame, and the rendered picture (real
EGL) filled by the drawing where one column leaves most of it empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnvis_gl.layout import LayoutOptions, build_scene, build_state, set_view_size
from cnnvis_gl.layout.columns import plan_columns
from cnnvis_gl.layout.compose import LABEL_FLOOR_PX
from cnnvis_gl.layout.scene import ROW_BETWEEN, Scene
from cnnvis_gl.render.camera import Camera
from cnnvis_gl.render.text import MIN_PX


def _chain(n: int, height: float = 100.0, half_width: float = 100.0):
    h = np.full(n, height)
    return h, np.full(n, -half_width), np.full(n, half_width)


def test_no_view_is_one_column_stacked_as_before() -> None:
    h = np.array([100.0, 60.0, 80.0, 40.0])
    p = plan_columns(h, -np.ones(4), np.ones(4), between=50.0, view_aspect=None)
    assert p.columns == 1
    # rows stacked top-down with an in-between row of 50 between each pair
    assert p.y.tolist() == [0.0, 150.0, 260.0, 390.0]
    assert p.between_y.tolist() == [100.0, 210.0, 340.0]
    assert p.height == 430.0 and p.dx.tolist() == [0.0] * 4


def test_a_long_chain_wraps_into_contiguous_columns_that_fill_the_view() -> None:
    h, lo, hi = _chain(24)
    p = plan_columns(h, lo, hi, between=50.0, view_aspect=1.6, gap=100.0, continue_height=40.0)
    assert p.columns > 1
    col = p.column
    assert col[0] == 0 and np.all(np.diff(col) >= 0) and np.all(np.diff(col) <= 1)  # contiguous
    one = plan_columns(h, lo, hi, between=50.0, view_aspect=None)

    def fitted(q):  # zoom of the whole in a 1.6 x 1 view
        return min(1.6 / (q.spans[-1][1] - q.spans[0][0]), 1.0 / q.height)

    assert fitted(p) >= 1.25 * fitted(one)
    for c in range(p.columns):
        idx = np.flatnonzero(col == c)
        # rows of a column: top-down, not overlapping, the first one under the band that
        # carries the edges from the previous column's last row
        tops, bottoms = p.y[idx], p.y[idx] + h[idx]
        assert np.all(tops[1:] >= bottoms[:-1] + 50.0 - 1e-9)
        assert tops[0] == (0.0 if c == 0 else 50.0)
        if c > 0:
            assert p.between_y[idx[0] - 1] == 0.0 and p.starts_column(int(idx[0]))
        # every row of the column lies inside its span, and the spans keep the gap
        x0, x1 = p.spans[c]
        assert np.all(lo[idx] + p.dx[idx] >= x0 - 1e-9) and np.all(hi[idx] + p.dx[idx] <= x1 + 1e-9)
        if c > 0:
            assert x0 - p.spans[c - 1][1] == pytest.approx(100.0)
        # the height includes the room for the "continues" label under every column but the last
        last_bottom = float(bottoms[-1]) + (40.0 if c < p.columns - 1 else 0.0)
        assert last_bottom <= p.height + 1e-9


def test_columns_end_only_where_the_chain_may_be_cut() -> None:
    h, lo, hi = _chain(24)
    free = plan_columns(h, lo, hi, between=50.0, view_aspect=1.6, gap=100.0)
    starts = [i for i in range(1, 24) if free.starts_column(i)]
    keep = np.ones(24, dtype=bool)
    keep[max(1, starts[0] - 3) : starts[0] + 4] = False  # rows side by side around the first cut
    p = plan_columns(h, lo, hi, between=50.0, view_aspect=1.6, gap=100.0, breakable=keep)
    cuts = [i for i in range(1, 24) if p.starts_column(i)]
    assert p.columns > 1 and cuts and all(keep[i] for i in cuts)


def test_a_short_wide_network_keeps_one_column() -> None:
    h, lo, hi = _chain(6, height=100.0, half_width=1500.0)
    assert plan_columns(h, lo, hi, between=140.0, view_aspect=1.6).columns == 1


def test_continued_ports_follow_the_column_and_fit_into_it() -> None:
    h, lo, hi = _chain(24)
    p = plan_columns(h, lo, hi, between=50.0, view_aspect=1.6, gap=100.0)
    i = int(np.flatnonzero(np.diff(p.column))[0]) + 1  # first row of the second column
    narrow = np.array([-50.0, 0.0, 50.0]) + p.dx[i - 1]
    assert np.allclose(p.continued_ports(narrow, i), [-50.0 + p.dx[i], p.dx[i], 50.0 + p.dx[i]])
    wide = np.array([-1000.0, 0.0, 1000.0]) + p.dx[i - 1]  # wider than the column: squeezed in
    got = p.continued_ports(wide, i, pad=10.0)
    x0, x1 = p.spans[int(p.column[i])]
    assert got.min() >= x0 + 10.0 - 1e-9 and got.max() <= x1 - 10.0 + 1e-9
    assert np.all(np.diff(got) > 0)  # order kept


# ---------------------------------------------------------------------------- a real network


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    """ResNet-20 (11 groups, random init, seed 0) analysed on 60 CIFAR-10 test images."""
    import torch

    import cnnvis_gl
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("resnet") / "run"
    snap = cnnvis_gl.analyze(build_model("resnet20"), f"cifar10:{cifar_dir}", limit=60, progress=False)
    snap.save(run, 0)
    return run


@pytest.fixture(scope="module")
def scenes(resnet_run: Path) -> tuple[Scene, Scene]:
    from cnnvis_gl import open_run

    snap = open_run(resnet_run).latest()
    return build_scene(snap), build_scene(snap, LayoutOptions(view_size=(1600, 1000)))


def test_wrapped_scene_keeps_clusters_and_edges(scenes: tuple[Scene, Scene]) -> None:
    one, wrapped = scenes
    assert one.stats["columns"] == 1 and wrapped.stats["columns"] >= 2
    assert [r.name for r in one.rows] == [r.name for r in wrapped.rows]
    assert np.array_equal(one.clusters.id, wrapped.clusters.id)
    assert np.array_equal(one.clusters.size, wrapped.clusters.size)
    assert np.array_equal(one.neurons.index, wrapped.neurons.index)
    # a cluster keeps its frame's size, only moves; its patches move with it
    assert np.allclose(one.clusters.rect[:, 2:], wrapped.clusters.rect[:, 2:])
    d_one = one.neurons.rect[:, :2] - one.clusters.rect[one.neurons.cluster, :2]
    d_wr = wrapped.neurons.rect[:, :2] - wrapped.clusters.rect[wrapped.neurons.cluster, :2]
    assert np.allclose(d_one, d_wr, atol=1e-3)
    # the same edges, weights and bundles: wrapping moves geometry only
    assert len(one.edges.weight) == len(wrapped.edges.weight) > 0
    def key(s: Scene) -> list:
        e = s.edges
        return sorted(zip(e.src.tolist(), e.dst.tolist(), np.round(e.weight, 6).tolist(), strict=True))

    assert key(one) == key(wrapped)
    assert len(one.bundles.sign) == len(wrapped.bundles.sign)


def _edges_in_bands(s: Scene, edges) -> None:
    ctrl = np.asarray(edges.ctrl, dtype=np.float64)
    pad = LayoutOptions().row_padding + 1e-3  # edges leave / enter frames, inside the rows' padding
    for k, ri in enumerate(edges.row):
        band = s.rows[int(ri)]
        assert band.kind == ROW_BETWEEN and band.width > 0
        pts = ctrl[k]
        assert np.all(pts[:, 1] >= band.y - pad) and np.all(pts[:, 1] <= band.y + band.height + pad)
        assert np.all(pts[:, 0] >= band.x - 1e-3) and np.all(pts[:, 0] <= band.x + band.width + 1e-3)


def test_wrapped_edges_stay_in_their_band_and_column(scenes: tuple[Scene, Scene], resnet_run: Path) -> None:
    _, s = scenes
    _edges_in_bands(s, s.edges)
    # the neuron-level edges (zoomed in) too: at a column's top they restart from the previous
    # column's last row (they ran diagonally across the picture, bundled in the gap)
    from cnnvis_gl import open_run
    from cnnvis_gl.layout.detail import neuron_edges

    ne = neuron_edges(open_run(resnet_run).latest(), s, np.arange(len(s.clusters.id)))
    starts = [i for i in range(1, len(s.rows)) if s.rows[i].kind == ROW_BETWEEN and s.rows[i].y == 0]
    assert starts and set(ne.edges.row.tolist()) >= set(starts)
    _edges_in_bands(s, ne.edges)
    # each layer row and its clusters lie in one column's band
    for i, r in enumerate(s.rows):
        idx = np.flatnonzero(s.clusters.row == i)
        if len(idx):
            rect = s.clusters.rect[idx]
            assert rect[:, 0].min() >= r.x - 1e-3
            assert (rect[:, 0] + rect[:, 2]).max() <= r.x + r.width + 1e-3


def _label_boxes(s: Scene, camera: Camera, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """Screen boxes of the labels drawn at ``camera``, with the renderer's minimum sizes."""
    out = []
    for lab in s.labels:
        if lab.kind != "row":
            continue
        px = max(lab.size * camera.zoom, MIN_PX[0])
        w = lab.width * px / lab.size
        ax, ay = camera.scene_to_screen(lab.x, lab.y, size)
        x0 = ax - {"right": w, "center": w / 2}.get(lab.anchor, 0.0)
        out.append((lab.text, np.array([x0, ay - px / 2, x0 + w, ay + px / 2])))
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_row_labels_are_readable_and_overlap_nothing(scenes: tuple[Scene, Scene]) -> None:
    _, s = scenes
    size = (1600, 1000)
    cam = Camera().fit(s.bounds, size)
    boxes = _label_boxes(s, cam, size)
    assert len(boxes) >= len([r for r in s.rows if r.kind != ROW_BETWEEN])
    assert LABEL_FLOOR_PX == MIN_PX[0]  # the layout leaves room for what the renderer draws
    for text, b in boxes:
        assert b[3] - b[1] >= MIN_PX[0] - 1e-6, text
        assert 0 <= b[0] and b[2] <= size[0], f"{text!r} leaves the picture"
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _overlap(boxes[i][1], boxes[j][1]), (boxes[i][0], boxes[j][0])
    frames = [
        np.array([*cam.scene_to_screen(x, y, size), *cam.scene_to_screen(x + w, y + h, size)])
        for x, y, w, h in s.clusters.rect
    ]
    for text, b in boxes:
        assert not any(_overlap(b, f) for f in frames), f"{text!r} over a cluster"


def test_changing_the_view_only_moves_rows(resnet_run: Path) -> None:
    from cnnvis_gl import open_run

    state = build_state(open_run(resnet_run).latest(), LayoutOptions(view_size=(1600, 1000)))
    first = state.scene
    assert first is not None and first.stats["columns"] >= 2
    scene, _ = set_view_size(state, None)
    assert scene.stats["columns"] == 1
    again, _ = set_view_size(state, (1600, 1000))
    assert np.allclose(again.clusters.rect, first.clusters.rect)
    assert np.allclose(again.edges.ctrl, first.edges.ctrl)
    assert "pack" not in state.timings and "cluster" not in state.timings  # nothing recomputed


def _coverage(png: Path) -> float:
    """Fraction of the picture inside the bounding box of what differs from the background."""
    from PIL import Image

    im = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    bg = im[0, 0]
    ys, xs = np.nonzero(np.abs(im - bg).sum(axis=2) > 12)
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    return float(box) / (im.shape[0] * im.shape[1])


def test_render_fills_the_picture(resnet_run: Path, tmp_path: Path, headless_gl: None) -> None:
    from cnnvis_gl.cli import main

    wrapped, column = tmp_path / "wrapped.png", tmp_path / "column.png"
    assert main(["render", str(resnet_run), "-o", str(wrapped), "--size", "1600x1000", "--msaa", "0"]) == 0
    assert main(["render", str(resnet_run), "-o", str(column), "--size", "1600x1000", "--msaa", "0",
                 "--one-column"]) == 0  # fmt: skip
    full, thin = _coverage(wrapped), _coverage(column)
    assert full >= 0.5, f"the drawing covers {full:.0%} of the picture"
    assert thin < 0.5 and full > 1.5 * thin


@pytest.mark.gui
def test_viewer_wraps_the_rows_to_fill_its_canvas(resnet_run: Path, tmp_path: Path, headless_gl: None):
    """The real viewer lays the rows out for its canvas once it has a size: columns, fitted."""
    import shutil

    from imgui_bundle.immapp import testing
    from ui_driver import drive, wait

    from cnnvis_gl.ui import App

    run_dir = tmp_path / "run"
    shutil.copytree(resnet_run, run_dir)
    app = App(run_dir, headless=True)
    seen: dict = {}

    def test(ctx):
        st = app.state

        def laid_out_for_canvas() -> bool:
            return (
                st.scene is not None
                and not app.feed.pending
                and app.session.base.view_size == st.camera.viewport
            )

        wait(ctx, laid_out_for_canvas)
        ctx.yield_(5)
        seen["viewport"] = st.camera.viewport
        seen["scene"] = st.scene
        seen["camera"] = st.camera.current
        testing.capture(ctx, str(tmp_path / "columns.png"))

    drive(app, test, (1600, 1000))
    s, vp, cam = seen["scene"], seen["viewport"], seen["camera"]
    assert s.stats["columns"] >= 2
    # the same layout as the library's for a view of that size, and the camera shows all of it
    from cnnvis_gl import open_run

    lib = build_scene(open_run(run_dir).latest(), LayoutOptions(view_size=vp))
    assert np.allclose(lib.clusters.rect, s.clusters.rect)
    x0, y0, x1, y1 = s.bounds
    assert cam.scene_to_screen(x0, y0, vp)[0] >= -1 and cam.scene_to_screen(x1, y1, vp)[0] <= vp[0] + 1
    assert (x1 - x0) * cam.zoom >= 0.8 * vp[0] or (y1 - y0) * cam.zoom >= 0.8 * vp[1]
    # the network shows in the window's capture (patches drawn, not an empty canvas)
    from PIL import Image

    im = np.asarray(Image.open(tmp_path / "columns.png").convert("RGB"))
    assert im.std() > 20
