"""Renderer tests on a real headless OpenGL context (EGL; Mesa llvmpipe on CI).

Every test that touches GL uses the ``ctx`` fixture, which fails the test when a GL error is
pending before or after it.  Golden images are in ``test_render_golden.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import gl_context_or_missing

from cnnvis_gl.layout.scene import FACET_FEATURES, FACET_MATRIX
from cnnvis_gl.render import Camera, LodSettings, PatchAtlas, SceneRenderer, render_image
from cnnvis_gl.render.camera import mat3_bytes
from cnnvis_gl.render.edge_layer import NO_WARP, EdgeLayer
from cnnvis_gl.render.gl import Uploads, shader_source
from cnnvis_gl.render.synthetic import SyntheticPatches, synthetic_scene

W, H = 640, 480


@pytest.fixture(scope="module")
def gl_context():
    ctx = gl_context_or_missing()
    yield ctx
    ctx.release()


@pytest.fixture
def ctx(gl_context):
    """The module's GL context; fails the test if a GL error is pending before or after it."""
    assert gl_context.error == "GL_NO_ERROR", "GL error pending before the test"
    yield gl_context
    assert gl_context.error == "GL_NO_ERROR", "GL error raised by the test"


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(n_neurons=90, n_edges=90, seed=3)


@pytest.fixture
def renderer(ctx, scene):
    r = SceneRenderer(ctx, SyntheticPatches())
    r.set_scene(scene)
    yield r
    r.release()


def _target(ctx, size=(W, H)):
    return ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4)])


def _release(renderer, fbo):
    renderer.park()
    for a in fbo.color_attachments:
        a.release()
    fbo.release()


# ---------------------------------------------------------------------------- no GL needed
def test_camera_math():
    cam = Camera().fit((0, 0, 200, 100), (400, 400), margin=0.0)
    assert cam.zoom == pytest.approx(2.0)
    assert cam.scene_to_screen(0, 50, (400, 400)) == pytest.approx((0, 200))
    m = cam.matrix((400, 400))
    assert m @ np.array([0, 0, 1]) == pytest.approx([-1, 0.5, 1])  # y down → clip y up
    # zoom about a pixel keeps the scene point under it
    z = cam.zoom_at(3.0, 100, 50, (400, 400))
    assert z.screen_to_scene(100, 50, (400, 400)) == pytest.approx(
        cam.screen_to_scene(100, 50, (400, 400))
    )
    # a tile camera maps its pixels as the full view does
    t = cam.tile(100, 200, (50, 50), (400, 400))
    assert t.scene_to_screen(*cam.screen_to_scene(110, 230, (400, 400)), (50, 50)) == (
        pytest.approx((10, 30))
    )
    assert cam.pan(20, 0).scene_to_screen(0, 50, (400, 400))[0] == pytest.approx(20)
    assert len(mat3_bytes(m)) == 36
    mid = cam.lerp(Camera((10, 10), 8.0), 0.5)
    assert mid.zoom == pytest.approx(4.0)


def test_shader_includes_and_defines():
    src = shader_source("edge.vert", {"PICK": 1})
    assert src.startswith("#version 330 core\n#define PICK 1\n")
    assert "cluster_state(int i)" in src and "#include" not in src


# ---------------------------------------------------------------------------- uploads
GEOMETRY = (
    "patches.geometry",
    "matrix.geometry",
    "matrix.activation",
    "frames.geometry",
    "rows.geometry",
    "edges.geometry",
    "bundles.geometry",
    "labels.geometry",
    "atlas",
)


@pytest.mark.gl
def test_appearance_changes_do_not_reupload_geometry(ctx, renderer, scene):
    fbo = _target(ctx)
    cam = Camera().fit(scene.bounds, (W, H))
    renderer.draw(cam, (W, H), target=fbo)
    before = Uploads(renderer.upload_count)
    for name in GEOMETRY:
        assert before[name] >= 1, name

    def step(action, expect):
        prev = Uploads(renderer.upload_count)
        action()
        renderer.draw(cam, (W, H), target=fbo)
        diff = {k: v - prev.get(k, 0) for k, v in renderer.upload_count.items()}
        diff = {k: v for k, v in diff.items() if v}
        assert diff == expect, action

    step(lambda: renderer.set_facet(FACET_MATRIX), {"clusters.state": 1})
    step(lambda: renderer.set_facet(FACET_FEATURES, clusters=[0, 2]), {"clusters.state": 1})
    sel = {"neurons.state": 1, "clusters.state": 1, "classes.state": 1, "bundles.state": 1}
    step(lambda: renderer.set_selection(classes=[2, 7]), sel)
    step(lambda: renderer.set_selection(neurons=[3], clusters=[1]), sel)
    step(lambda: renderer.set_theme("light"), {})
    step(lambda: renderer.set_edge_threshold(0.5), {})
    step(lambda: renderer.set_edge_quantile(0.25), {})
    step(lambda: renderer.set_edges_visible(False), {})
    step(lambda: renderer.set_hover("neuron", 4), {})
    step(lambda: renderer.pick(W / 2, H / 2), {})
    # a new scene object whose only new part is the labels re-uploads only the labels
    moved = [dataclasses.replace(lab, x=lab.x + 1) for lab in scene.labels]
    step(lambda: renderer.set_scene(dataclasses.replace(scene, labels=moved)),
         {"labels.geometry": 1})  # fmt: skip
    _release(renderer, fbo)


@pytest.mark.gl
def test_edge_layer_cache(ctx, renderer, scene):
    fbo = _target(ctx)
    cam = Camera().fit(scene.bounds, (W, H))
    renderer.draw(cam, (W, H), target=fbo)
    assert renderer.last_frame["edge_cache"] == "redraw"
    renderer.draw(cam, (W, H), target=fbo)
    assert renderer.last_frame["edge_cache"] == "hit"
    moved = cam.zoom_at(1.1, 100, 100, (W, H))
    renderer.draw(moved, (W, H), target=fbo, moving=True)
    assert renderer.last_frame["edge_cache"] == "warp"
    renderer.draw(moved, (W, H), target=fbo)
    assert renderer.last_frame["edge_cache"] == "redraw"
    renderer.set_selection(clusters=[0])
    renderer.draw(moved, (W, H), target=fbo, moving=True)
    assert renderer.last_frame["edge_cache"] == "redraw"  # data changed: no stale warp
    _release(renderer, fbo)


@pytest.mark.gl
def test_warped_edge_layer_matches_redraw(ctx, renderer, scene, monkeypatch):
    """While moving, the warped cache approximates a real redraw (same pixels, roughly)."""
    renderer.set_edges_visible(True)
    cam = Camera().fit(scene.bounds, (W, H))
    moved = cam.zoom_at(1.05, W / 2, H / 2, (W, H)).pan(12, -8)
    fbo = _target(ctx)
    renderer.draw(cam, (W, H), target=fbo)
    renderer.draw(moved, (W, H), target=fbo, moving=True)
    warped = np.frombuffer(fbo.read(components=4), np.uint8).astype(float)
    renderer.draw(moved, (W, H), target=fbo)
    exact = np.frombuffer(fbo.read(components=4), np.uint8).astype(float)
    # planted defect: the cached layer shown where it was drawn, without its warp
    real_get = EdgeLayer.get

    def unwarped(self, *args, **kwargs):
        tex, _warp, how = real_get(self, *args, **kwargs)
        return tex, NO_WARP, how

    monkeypatch.setattr(EdgeLayer, "get", unwarped)
    renderer.draw(cam, (W, H), target=fbo)
    renderer.draw(moved, (W, H), target=fbo, moving=True)
    stale = np.frombuffer(fbo.read(components=4), np.uint8).astype(float)
    err, stale_err = np.abs(warped - exact).mean(), np.abs(stale - exact).mean()
    assert err < 3.0 and err < stale_err / 2, (err, stale_err)
    _release(renderer, fbo)


@pytest.mark.gl
def test_level_of_detail(ctx, scene):
    r = SceneRenderer(ctx, SyntheticPatches(), lod=LodSettings(far_edges=10))
    r.set_scene(scene)
    near = r.level_of_detail(Camera((300, 270), 4.0), (W, H))
    far = r.level_of_detail(Camera((300, 270), 0.1), (W, H))
    assert near["patch_alpha"] == 1.0 and near["summary"] == (0.0, 0.0)
    assert far["patch_alpha"] == 0.0 and far["summary"] == (1.0, 1.0)
    assert far["segments"] < near["segments"]
    assert far["edges"] == 10 and near["edges"] == len(scene.edges.weight)
    # the strongest edges are the ones kept
    assert r.edges.abs_sorted[:10].min() >= np.sort(np.abs(scene.edges.weight))[-10]
    fbo = _target(ctx, (200, 150))
    r.draw(Camera((300, 270), 0.1), (200, 150), target=fbo)  # summary colours only
    assert r.last_frame["patch_alpha"] == 0.0
    # budgets: a tiny ink budget keeps only the strongest few edges in the fit-all view
    tight = SceneRenderer(ctx, None, lod=LodSettings(edge_ink=0.02))
    tight.set_scene(scene)
    fit = Camera().fit(scene.bounds, (W, H))
    assert 1 <= tight.level_of_detail(fit, (W, H))["edges"] < len(scene.edges.weight) // 2
    tight.release()
    _release(r, fbo)
    r.release()


@pytest.mark.gl
def test_compare_mode_zoomed_out_fills_show_the_difference(ctx, scene):
    """Zoomed out in the matrix facet a cluster is filled with the colour of its mean cell; in
    compare mode (signed differences) that is the diverging colour of its mean difference, not
    of its activations, and turning compare off restores it; only state is uploaded."""
    from cnnvis_gl.render.theme import diverging_colormap

    # matrix rows count as too small to draw at any zoom: the fill shows
    r = SceneRenderer(ctx, SyntheticPatches(), lod=LodSettings(matrix_row_px=(1e3, 2e3)))
    r.set_scene(scene)
    r.set_facet(FACET_MATRIX)
    size = (320, 240)
    cam = Camera().fit(scene.bounds, size)
    assert r.level_of_detail(cam, size)["summary"][1] == 1.0  # matrices drawn as a fill
    fbo = _target(ctx, size)

    def centre_colours() -> np.ndarray:
        r.draw(cam, size, target=fbo)
        img = np.frombuffer(fbo.read(components=3), np.uint8).reshape(size[1], size[0], 3)
        out = []
        for x, y, w, h in scene.clusters.rect[:2]:
            px, py = cam.scene_to_screen(float(x + w / 2), float(y + h * 0.6), size)
            out.append(img[size[1] - 1 - int(py), int(px)].astype(int))
        return np.array(out)

    plain = centre_colours()
    diff = np.zeros_like(scene.neurons.activation)
    diff[scene.neurons.cluster == 0] = 1.0  # cluster 0 gained everywhere, cluster 1 lost
    diff[scene.neurons.cluster == 1] = -1.0
    before = Uploads(r.upload_count)
    r.set_matrix_values(diff)
    compare = centre_colours()
    ups = {k: v - before.get(k, 0) for k, v in r.upload_count.items() if v != before.get(k, 0)}
    assert ups == {"matrix.activation": 1, "clusters.state": 1}
    div = diverging_colormap("dark").astype(int)
    assert np.abs(compare[0] - div[255]).max() <= 3  # most positive
    assert np.abs(compare[1] - div[0]).max() <= 3  # most negative
    r.set_matrix_values(None)
    assert np.abs(centre_colours() - plain).max() <= 1
    _release(r, fbo)
    r.release()


@pytest.mark.gl
def test_neuron_edges_layer_only_when_zoomed_in_and_not_empty(ctx, renderer, scene):
    """Neuron-level edges replace the bundle nodes (cluster edges fade) only zoomed in, and an
    empty result draws nothing instead (the cluster edges stay as they are)."""
    from cnnvis_gl.layout.detail import NeuronEdges

    near = Camera((300, 270), 4.0)
    far = Camera((300, 270), 0.3)  # patches of 6 px
    assert renderer.wants_neuron_edges(near) and not renderer.wants_neuron_edges(far)
    some = NeuronEdges(scene.edges, scene.bundles, np.arange(3), 9, 99, {})
    empty = NeuronEdges(
        dataclasses.replace(
            scene.edges, **{f.name: getattr(scene.edges, f.name)[:0] for f in
                            dataclasses.fields(scene.edges)}),
        dataclasses.replace(
            scene.bundles, **{f.name: getattr(scene.bundles, f.name)[:0] for f in
                              dataclasses.fields(scene.bundles)}),
        np.arange(3), 0, 99, {})  # fmt: skip
    renderer.set_neuron_edges(some)
    assert renderer.level_of_detail(near, (W, H))["neuron_edges"] > 0
    assert renderer.level_of_detail(far, (W, H))["neuron_edges"] == 0
    renderer.set_neuron_edges(empty)
    assert renderer.level_of_detail(near, (W, H))["neuron_edges"] == 0
    fbo = _target(ctx)
    renderer.draw(near, (W, H), target=fbo)
    renderer.set_neuron_edges(None)
    assert renderer.neuron_edges is None
    _release(renderer, fbo)


# ---------------------------------------------------------------------------- picking
def _screen(cam, x, y):
    return cam.scene_to_screen(float(x), float(y), (W, H))


@pytest.mark.gl
def test_pick_clusters_neurons_bundles(ctx, renderer, scene):
    cam = Camera().fit(scene.bounds, (W, H))
    renderer.set_facet(FACET_FEATURES)
    fbo = _target(ctx)
    renderer.draw(cam, (W, H), target=fbo)
    n = scene.neurons
    for i in (0, 17, len(n.cluster) - 1):
        x, y, w, h = n.rect[i]
        assert renderer.pick(*_screen(cam, x + w / 2, y + h / 2)) == ("neuron", i)
    c = scene.clusters
    for ci in (0, 5):
        x, y, w, h = c.rect[ci]
        # inside the frame, in the padding below the packed patches
        fx, fy, fw, fh = c.features_rect[ci]
        py = (fy + fh + y + h) / 2 if y + h - (fy + fh) > 2 else y + 2
        assert renderer.pick(*_screen(cam, x + 2, py)) == ("cluster", ci)
    b = scene.bundles.pos
    d = np.linalg.norm(b[:, None] - b[None], axis=-1) + np.eye(len(b)) * 1e9
    lone = int(np.argmax(d.min(axis=1)))  # a node no other node overlaps
    assert renderer.pick(*_screen(cam, *b[lone])) == ("bundle", lone)
    renderer.set_edge_threshold(1e9)  # no edge passes: their nodes hide with them
    renderer.draw(cam, (W, H), target=fbo)
    assert renderer.pick(*_screen(cam, *b[lone]))[0] != "bundle"
    renderer.set_edge_threshold(0.0)
    assert renderer.pick(2, 2) == ("none", -1)  # background, outside the bounds
    # matrix facet: the rows of cluster 0's matrix are its neurons
    renderer.set_facet(FACET_MATRIX)
    renderer.draw(cam, (W, H), target=fbo)
    members = np.flatnonzero(n.cluster == 0)
    mx, my, mw, mh = c.matrix_rect[0]
    rh = mh / c.size[0]
    for i in members[:3]:
        sx, sy = _screen(cam, mx + mw / 2, my + (n.matrix_row[i] + 0.5) * rh)
        assert renderer.pick(sx, sy) == ("neuron", int(i))
    col = renderer.matrix_class_at(mx + mw * 0.05, int(members[0]))
    assert col == int(scene.class_order[0])
    _release(renderer, fbo)


@pytest.mark.gl
def test_pick_edges(ctx, renderer, scene):
    cam = Camera((300, 215), 3.0)
    fbo = _target(ctx)
    renderer.draw(cam, (W, H), target=fbo)
    e = scene.edges
    t = np.array([0.125, 0.375, 0.375, 0.125])  # Bernstein weights at t = 0.5
    hits = 0
    for i in np.argsort(-np.abs(e.weight))[:12]:
        mid = t @ e.ctrl[i]
        sx, sy = _screen(cam, *mid)
        if not (0 <= sx < W and 0 <= sy < H):
            continue
        kind, idx = renderer.pick(sx, sy)
        if kind != "edge":
            continue  # a node or another element lies on top there
        hits += 1
        # the picked edge passes through that pixel (the strongest one drawn last may differ)
        ts = np.linspace(0, 1, 201)[:, None]
        c = e.ctrl[idx]
        curve = (
            (1 - ts) ** 3 * c[0] + 3 * (1 - ts) ** 2 * ts * c[1] + 3 * (1 - ts) * ts**2 * c[2]
            + ts**3 * c[3]
        )  # fmt: skip
        d_px = np.min(np.linalg.norm(curve - mid, axis=1)) * cam.zoom
        assert d_px < 12.0
    assert hits >= 3
    _release(renderer, fbo)


# ---------------------------------------------------------------------------- atlas
@pytest.mark.gl
def test_atlas_pages_and_pixels(ctx):
    uploads = Uploads()
    atlas = PatchAtlas(ctx, cell=32, gutter=2, page=128, uploads=uploads)  # 16 patches a page
    src = SyntheticPatches()
    keys = np.array([[0, i] for i in range(40)])
    uv, layer = atlas.ensure(src, ["conv1"], keys)
    assert atlas.layers >= 3 and len(atlas) == 40
    assert set(layer.tolist()) == {0.0, 1.0, 2.0}
    assert len({tuple(r) for r in np.c_[uv, layer]}) == 40  # all distinct
    # stored pixels equal the source's
    i = 21
    data = np.frombuffer(atlas.texture.read(), np.uint8).reshape(atlas.layers, 128, 128, 4)
    u0, v0 = int(round(uv[i, 0] * 128)), int(round(uv[i, 1] * 128))
    stored = data[int(layer[i]), v0 : v0 + 28, u0 : u0 + 28, :3]
    assert np.array_equal(stored, src.patches("conv1", 1, 28, neurons=[21])[0, 0])
    # asking again uploads nothing; new keys append
    n_up = uploads["atlas"]
    atlas.ensure(src, ["conv1"], keys[:5])
    assert uploads["atlas"] == n_up
    atlas.ensure(src, ["conv1", "conv2"], np.array([[1, 0]]))
    assert len(atlas) == 41 and uploads["atlas"] > n_up
    atlas.release()


# ---------------------------------------------------------------------------- offscreen
@pytest.mark.gl
def test_render_8k_wide(ctx, scene):
    img = render_image(SyntheticPatches(), scene, size=(7680, 4320), ctx=ctx)
    assert img.shape == (4320, 7680, 4)
    assert img[..., :3].std() > 5  # something was drawn


@pytest.mark.gl
def test_tiled_render_matches_single(ctx, scene):
    kw = dict(size=(600, 420), ctx=ctx, theme="light")
    single = render_image(SyntheticPatches(), scene, **kw).astype(float)
    tiled = render_image(SyntheticPatches(), scene, max_tile=256, **kw).astype(float)
    assert tiled.shape == single.shape
    assert np.abs(tiled - single).mean() < 1.0


@pytest.mark.gl
def test_msaa_render(ctx, scene):
    plain = render_image(SyntheticPatches(), scene, size=(320, 240), ctx=ctx).astype(float)
    msaa = render_image(SyntheticPatches(), scene, size=(320, 240), ctx=ctx, msaa=4)
    d = np.abs(msaa.astype(float) - plain).max(axis=-1)
    assert d.mean() < 6.0  # the same picture …
    assert (d > 24).mean() > 0.002  # … with smoother edges (no MSAA: nothing differs)


@pytest.mark.gl
def test_render_png_writes_file(ctx, scene, tmp_path):
    from PIL import Image

    from cnnvis_gl.render import render_png

    path = render_png(None, scene, tmp_path / "out" / "s.png", size=(200, 120), ctx=ctx)
    with Image.open(path) as im:
        assert im.size == (200, 120) and im.mode == "RGB"


def test_a_big_scene_uploads_its_patches_when_first_drawn_large(ctx, scene, monkeypatch):
    """Above ``PatchesVisual.lazy_above`` neurons (lowered here), set_scene puts only the
    mosaic tiles' patches in the atlas (the frames' summary colour: their mean); far out the
    picture is the mosaic as a renderer that uploads everything draws it; zoomed in, the
    first frame that draws the patches uploads them all, and draws what the eager one draws."""
    from cnnvis_gl.layout.mosaic import mosaic_tiles
    from cnnvis_gl.render.patches import PatchesVisual

    eager = SceneRenderer(ctx, SyntheticPatches())
    eager.set_scene(scene)
    monkeypatch.setattr(PatchesVisual, "lazy_above", 10)
    lazy = SceneRenderer(ctx, SyntheticPatches())
    lazy.set_scene(scene)
    tiles = mosaic_tiles(scene)
    n = scene.neurons
    assert lazy.patches.pending is scene and lazy.patches.count == 0
    assert len(lazy.atlas) == len({(int(n.unit[i]), int(n.index[i])) for i in tiles.neuron})
    want = np.zeros((len(scene.clusters.id), 3))
    for ci in range(len(want)):
        keys = np.stack([n.unit, n.index], 1)[tiles.neuron[tiles.cluster == ci]]
        want[ci] = eager.atlas.mean_colors(keys).mean(0)
    np.testing.assert_allclose(lazy.mosaic.cluster_colors, want, atol=1e-6)
    fbo = _target(ctx)
    far = Camera().fit(scene.bounds, (W, H)).zoom_at(0.15, W / 2, H / 2, (W, H))
    near = Camera((300, 270), 4.0)
    pictures = []
    for cam in (far, near):
        for r in (eager, lazy):
            assert r.level_of_detail(cam, (W, H))["patches_drawn"] == (cam is near)
            r.draw(cam, (W, H), target=fbo)
            pictures.append(np.frombuffer(fbo.read(components=3), np.uint8).astype(int))
        if cam is far:
            assert lazy.patches.pending is scene  # nothing drawn needed the patches yet
    assert lazy.patches.pending is None and lazy.patches.count == len(n.unit) == len(lazy.atlas)
    assert np.abs(pictures[2] - pictures[3]).max() == 0  # zoomed in: the same patches
    # far out: the mosaics alike; the frames' summary colour is the tiles' mean (not every
    # patch's), so the two differ by at most that
    assert np.abs(pictures[0] - pictures[1]).mean() < 2.0
    _release(lazy, fbo)
    lazy.release()
    eager.release()


def test_glyph_atlas_disk_cache(tmp_path, monkeypatch) -> None:
    """The SDF glyph atlas is cached on disk: the cached atlas equals a fresh one; a damaged
    cache file is rebuilt (and rewritten), an unwritable cache folder only costs the time."""
    from cnnvis_gl.render import font

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    build = font.build_glyph_atlas.__wrapped__  # past the per-process cache
    fresh = build("abc·×")
    files = list((tmp_path / "cache" / "cnnvis_gl" / "glyphs").glob("*.npz"))
    assert len(files) == 1

    def same(a, b) -> bool:
        fields = ("em", "spread", "ascent", "descent", "cap_height", "advance", "box", "uv", "kerning")
        return np.array_equal(a.image, b.image) and all(getattr(a, f) == getattr(b, f) for f in fields)

    assert same(build("abc·×"), fresh)
    files[0].write_bytes(b"not a zip")
    assert same(build("abc·×"), fresh)
    assert np.load(files[0], allow_pickle=False)["image"].shape == fresh.image.shape  # rewritten
    (tmp_path / "ro").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "ro"))
    assert same(build("abc·×"), fresh)


def test_a_draft_drawn_before_its_pictures_then_with_them(ctx, scene, monkeypatch):
    """``set_snapshot(pending=True)`` (a draft shown before its pictures are fetched): no mosaic
    tiles, nothing in the atlas, grey clusters; drawn fitted it shows frames only.  The pictures'
    ``set_snapshot`` and the same scene again: the mosaics are drawn as an eager renderer's."""
    from cnnvis_gl.render.patches import PatchesVisual

    monkeypatch.setattr(PatchesVisual, "lazy_above", 10)
    eager = SceneRenderer(ctx, SyntheticPatches())
    eager.set_scene(scene)
    r = SceneRenderer(ctx, None)
    r.set_snapshot(SyntheticPatches(), pending=True)
    r.set_scene(scene)
    assert r.pixels_pending and r.mosaic.count == 0 and len(r.atlas) == 0
    assert np.allclose(r.mosaic.cluster_colors, 0.32)
    fbo = _target(ctx)
    far = Camera().fit(scene.bounds, (W, H)).zoom_at(0.15, W / 2, H / 2, (W, H))
    r.draw(far, (W, H), target=fbo)
    grey = np.frombuffer(fbo.read(components=3), np.uint8).astype(int)
    r.set_snapshot(SyntheticPatches())
    r.set_scene(scene)
    assert not r.pixels_pending and r.mosaic.count == eager.mosaic.count > 0
    pictures = []
    for x in (r, eager):
        x.draw(far, (W, H), target=fbo)
        pictures.append(np.frombuffer(fbo.read(components=3), np.uint8).astype(int))
    assert np.abs(pictures[0] - pictures[1]).max() == 0 and np.abs(grey - pictures[0]).max() > 40
    _release(r, fbo)
    eager.release()


def _same_picture(got: np.ndarray, want: np.ndarray) -> None:
    """Equal but for rounding on anti-aliased edges (the view drawn larger puts them a few
    ULPs elsewhere in clip space): under 0.5 % of the pixels, by a few levels."""
    d = np.abs(got - want).max(axis=2)
    assert d.max() <= 8 and (d > 0).mean() < 0.005


def test_panning_shows_the_view_drawn_with_a_margin_shifted(ctx, renderer, scene):
    """While the camera pans (same zoom, same content key), frames are the scene drawn once
    with a margin and shifted: the full drawing of each view.  Past the margin
    the texture is drawn again; a zoom, a new key or a still frame draws in full."""
    fbo = _target(ctx)
    cam = Camera().fit(scene.bounds, (W, H)).zoom_at(2.5, W / 2, H / 2, (W, H))

    def frame(c, moving=True, key="v1"):
        if not moving or renderer.panned_view(c, (W, H), key) is None:
            renderer.draw(c, (W, H), target=fbo, moving=moving)
        else:  # (the viewer shows the texture; painted here to read it back)
            renderer.pan_cache.paint(fbo)
        return np.frombuffer(fbo.read(components=3), np.uint8).reshape(H, W, 3).astype(int)

    def full(c):
        return frame(c, moving=False, key=None)

    pc = renderer.pan_cache
    frame(cam)  # the drag's first frame: drawn as always (nothing to shift yet)
    assert "pan_cache" not in renderer.last_frame and pc.redraws == 0
    views = [cam.pan(-7.0 * i, 3.0 * i) for i in range(1, 4)]
    shifted = [frame(v) for v in views]
    assert [pc.redraws, renderer.last_frame["pan_cache"]] == [1, "hit"]
    for v, got in zip(views, shifted, strict=True):
        want = full(v)
        assert want.std() > 10  # (something is drawn)
        _same_picture(got, want)
    # the viewer shows the texture itself: its part in view is the full drawing too
    frame(views[0])
    glo, uv0, uv1 = renderer.panned_view(views[1], (W, H), "v1")
    tex = pc._tex
    tw, th = tex.size
    assert glo == tex.glo and (uv1[0] - uv0[0]) * tw == pytest.approx(W) and (uv0[1] - uv1[1]) * th == pytest.approx(H)
    img = np.frombuffer(tex.read(), np.uint8).reshape(th, tw, 4)[::-1, :, :3].astype(int)
    x0, y0 = round(uv0[0] * tw), round((1.0 - uv0[1]) * th)
    _same_picture(img[y0 : y0 + H, x0 : x0 + W], full(views[1])[::-1])  # (fbo rows go up)
    far = views[-1].pan(-W, 0.0)  # past the margin: drawn again around the new view
    frame(far)
    assert [pc.redraws, renderer.last_frame["pan_cache"]] == [2, "redraw"]
    got = frame(far.pan(-5.0, 0.0))
    assert renderer.last_frame["pan_cache"] == "hit" and pc.redraws == 2
    _same_picture(got, full(far.pan(-5.0, 0.0)))
    frame(far)
    frame(far.zoom_at(1.3, W / 2, H / 2, (W, H)))  # a zoom: drawn in full
    assert "pan_cache" not in renderer.last_frame
    frame(far, key="v2")  # something else changed: drawn in full
    assert "pan_cache" not in renderer.last_frame
    _release(renderer, fbo)
