"""Golden-image tests of the renderer on a small deterministic synthetic Scene.

The scene and its patch pixels come from :mod:`cnnvis_gl.render.synthetic` (no analysis code),
rendered on a real headless OpenGL context (EGL; the references were made on Mesa llvmpipe).
Images are compared tightly, overall and in *regions* where small wrongs hide: every label's
box, the selected and highlighted elements, every activation matrix.  A check fails on a mean
absolute difference per channel over its tolerance, or on too many pixels where some channel
moved by more than ``PIXEL_DIFF``.  The tests of the tests at the bottom plant the defects these
checks exist for (a removed label, a moved highlight, activations scaled by 0.9, dropped edges,
no multisampling) and require each to fail.  On a mismatch the rendered image is written beside
the test's temporary directory for inspection.

One golden is a real analysed scene (a seeded BaseCNN on 200 CIFAR-10 test images, laid out
with a fixed k) drawn with its real patches; three are a big synthetic network (12,000 neurons in
48 layers, laid out for the picture: three columns) fitted, at 4× and framing one cluster.

Regenerate the references (then *look* at every PNG in ``tests/golden/``) with::

    CNNVIS_REGEN_GOLDEN=1 pytest tests/test_render*.py
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import gl_context_or_missing
from PIL import Image

from cnnvis_gl.render import Camera, SceneRenderer, render_image
from cnnvis_gl.render.synthetic import SyntheticPatches, synthetic_scene

GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("CNNVIS_REGEN_GOLDEN", "") not in ("", "0")
if REGEN and os.environ.get("CNNVIS_REQUIRE_ALL", "") == "1":
    raise RuntimeError("CNNVIS_REGEN_GOLDEN is refused under CI (CNNVIS_REQUIRE_ALL=1)")
SIZE = (960, 640)
PIXEL_DIFF = 24  # a pixel "differs" when some channel moves by more than this
MEAN_TOL = 0.5  # whole image: mean |difference| per channel, 0..255
FRACTION_TOL = 0.001  # whole image: at most 0.1 % of the pixels differ
REGION_MEAN_TOL = 1.5  # each region: mean |difference|
REGION_FRACTION_TOL = 0.005  # each region: at most 0.5 % of its pixels differ

SCENE = synthetic_scene(n_neurons=90, n_edges=90, seed=3)
_BX = SCENE.bounds[2]
EDGES_ZOOM = Camera((_BX * 0.55, 215.0), 2.6)

# name → render_image keyword arguments
VIEWS: dict[str, dict] = {
    # all clusters as learned features (patch atlas, frames, labels, bundled edges)
    "features_dark": dict(facet="features"),
    # all clusters as activation matrices (viridis)
    "matrix_dark": dict(facet="matrix"),
    # zoomed onto the first in-between row: ribbons, their widths and signs, bundle nodes
    "edges_zoom_dark": dict(camera=EDGES_ZOOM),
    # the same with 4× multisampling (edges and frames smoother than the shaders' own AA)
    "edges_zoom_msaa_dark": dict(camera=EDGES_ZOOM, msaa=4),
    # class 3 selected (other neurons dimmed), cluster 1 and neuron 5 selected
    "selection_dark": dict(selection=dict(classes=[3], clusters=[1], neurons=[5])),
    # light theme, the scene's mixed facets
    "mixed_light": dict(theme="light"),
    # light theme matrices with two classes selected (framed columns), top 40 % of edges
    "matrix_classes_light": dict(
        theme="light", facet="matrix", selection=dict(classes=[0, 5]), edge_quantile=0.4
    ),
    # zoomed far out: summary colours instead of patches, strongest edges only
    "lod_far_dark": dict(size=(360, 240), camera=Camera((_BX / 2, 268.0), 0.2)),
}
REAL = "real_basecnn_dark"  # the real analysed scene (its own test)
BIG = ("big_far_dark", "big_mid_dark", "big_near_dark")  # a big network at three zooms


@pytest.fixture(scope="module")
def gl_renderer():
    ctx = gl_context_or_missing()
    r = SceneRenderer(ctx, SyntheticPatches())
    r.set_scene(SCENE)
    yield r
    r.release()
    ctx.release()


@pytest.fixture
def renderer(gl_renderer):
    """The module's renderer, appearance reset; fails on a GL error pending before/after."""
    ctx = gl_renderer.ctx
    assert ctx.error == "GL_NO_ERROR", "GL error pending before the test"
    gl_renderer.set_scene(SCENE)
    gl_renderer.set_facet(SCENE.clusters.facet)
    gl_renderer.set_selection()
    gl_renderer.set_edge_threshold(0.0)
    gl_renderer.set_hover()
    yield gl_renderer
    assert ctx.error == "GL_NO_ERROR", "GL error raised by the test"


# ---------------------------------------------------------------------------- comparison


def _box(cam: Camera, size: tuple[int, int], x0, y0, x1, y1) -> tuple[int, int, int, int] | None:
    """Pixel box of a scene rectangle (clipped to the image; ``None`` when under 3 px)."""
    ax, ay = cam.scene_to_screen(x0, y0, size)
    bx, by = cam.scene_to_screen(x1, y1, size)
    px0, px1 = int(np.floor(max(min(ax, bx), 0))), int(np.ceil(min(max(ax, bx), size[0])))
    py0, py1 = int(np.floor(max(min(ay, by), 0))), int(np.ceil(min(max(ay, by), size[1])))
    if px1 - px0 < 3 or py1 - py0 < 3:
        return None
    return px0, py0, px1, py1


def regions(scene, kw: dict) -> dict[str, tuple[int, int, int, int]]:
    """Where small wrongs hide in a view: label boxes, selected neurons and clusters, the
    matrices (when shown), as pixel boxes by name."""
    size = kw.get("size", SIZE)
    cam = kw.get("camera") or Camera().fit(scene.bounds, size)
    out: dict[str, tuple[int, int, int, int] | None] = {}
    for k, lab in enumerate(scene.labels):
        h = lab.size * 0.75
        out[f"label {k} {lab.text!r}"] = _box(
            cam, size, lab.left, lab.y - h, lab.left + lab.width, lab.y + h
        )
    sel = kw.get("selection") or {}
    for n in sel.get("neurons", ()):
        x, y, w, h = (float(v) for v in scene.neurons.rect[n])
        out[f"neuron {n}"] = _box(cam, size, x - 2, y - 2, x + w + 2, y + h + 2)
    for c in sel.get("clusters", ()):
        x, y, w, h = (float(v) for v in scene.clusters.rect[c])
        out[f"cluster {c}"] = _box(cam, size, x - 2, y - 2, x + w + 2, y + h + 2)
    if kw.get("facet") == "matrix":
        for c, (x, y, w, h) in enumerate(scene.clusters.matrix_rect.tolist()):
            out[f"matrix {c}"] = _box(cam, size, x, y, x + w, y + h)
    return {k: v for k, v in out.items() if v is not None}


def _diff(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    d = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    return float(d.mean()), float((d.max(axis=-1) > PIXEL_DIFF).mean())


def mismatches(actual: np.ndarray, expected: np.ndarray, boxes: dict) -> list[str]:
    """What differs beyond the tolerances: the whole image, then each region."""
    if actual.shape != expected.shape:
        return [f"size {actual.shape} != {expected.shape}"]
    bad = []
    mean, frac = _diff(actual, expected)
    if mean > MEAN_TOL or frac > FRACTION_TOL:
        bad.append(f"whole image: mean diff {mean:.2f}, differing pixels {frac:.3%}")
    for name, (x0, y0, x1, y1) in boxes.items():
        mean, frac = _diff(actual[y0:y1, x0:x1], expected[y0:y1, x0:x1])
        if mean > REGION_MEAN_TOL or frac > REGION_FRACTION_TOL:
            bad.append(f"{name}: mean diff {mean:.2f}, differing pixels {frac:.2%}")
    return bad


def render_view(renderer: SceneRenderer, name: str, scene=SCENE) -> np.ndarray:
    kw = dict(VIEWS[name])
    quantile = kw.pop("edge_quantile", None)
    if quantile is not None:
        renderer.set_edge_quantile(quantile)
        kw["edge_threshold"] = renderer.edge_threshold
    kw.setdefault("size", SIZE)
    return render_image(None, scene, renderer=renderer, **kw)[..., :3]


def check_golden(name: str, image: np.ndarray, boxes: dict, tmp_path: Path) -> None:
    path = GOLDEN / f"{name}.png"
    if REGEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(path)
        return
    if not path.is_file():
        pytest.fail(f"missing golden image {path}; regenerate with CNNVIS_REGEN_GOLDEN=1")
    bad = mismatches(image, golden(name), boxes)
    if bad:
        out = tmp_path / f"{name}.actual.png"
        Image.fromarray(np.ascontiguousarray(image)).save(out)
        pytest.fail(f"{name} differs from its golden ({out}):\n  " + "\n  ".join(bad[:12]))


def golden(name: str) -> np.ndarray:
    return np.asarray(Image.open(GOLDEN / f"{name}.png").convert("RGB"))


# ---------------------------------------------------------------------------- the goldens


@pytest.mark.gl
@pytest.mark.parametrize("name", sorted(VIEWS))
def test_golden(name: str, renderer: SceneRenderer, tmp_path: Path) -> None:
    image = render_view(renderer, name)
    check_golden(name, image, regions(SCENE, VIEWS[name]), tmp_path)


@pytest.mark.gl
def test_golden_real_scene(cifar_dir: Path, renderer: SceneRenderer, tmp_path: Path) -> None:
    """A real analysed scene (seeded BaseCNN, 200 CIFAR-10 images, k = 5) with its patches."""
    from test_layout import OPTIONS, basecnn_snapshot

    from cnnvis_gl.layout import build_scene

    snap = basecnn_snapshot(cifar_dir)
    scene = build_scene(snap, OPTIONS)
    # its own renderer, in the module's context (a second context would unbind this one)
    image = render_image(snap, scene, size=SIZE, ctx=renderer.ctx)[..., :3]
    check_golden(REAL, image, regions(scene, {}), tmp_path)


@pytest.mark.gl
def test_golden_big_network_at_three_zooms(renderer: SceneRenderer, tmp_path: Path) -> None:
    """A big network (``cnnvis_gl.run.synthetic``: 12,000 neurons in 48 conv layers, class
    profiles from a few prototypes per layer, grating images) laid out for the picture's shape
    with k = 4: fitted (the rows wrap into columns; every cluster a mosaic of its
    representatives, edges at least 5 px), at 4× about the centre (packed patches), and framing
    one cluster (its patches, large)."""
    from cnnvis_gl.layout import LayoutOptions, build_scene
    from cnnvis_gl.run.synthetic import huge_channels, synthetic_snapshot

    snap = synthetic_snapshot(huge_channels(48, 12_000), 10, images=200)
    scene = build_scene(snap, LayoutOptions(view_size=SIZE, k=4))
    assert scene.stats["neurons"] >= 11_900 and scene.stats["columns"] >= 2
    fit = Camera().fit(scene.bounds, SIZE)
    x, y, w, h = (float(v) for v in scene.clusters.rect[len(scene.clusters.id) // 2])
    cameras = {
        "big_far_dark": fit,
        "big_mid_dark": fit.zoom_at(4.0, SIZE[0] / 2, SIZE[1] / 2, SIZE),
        "big_near_dark": Camera().zoom_to_rect((x, y, x + w, y + h), SIZE, 0.1),
    }
    r = SceneRenderer(renderer.ctx, snap)  # (one renderer: the patches are fetched once)
    r.set_scene(scene)
    try:
        for name in BIG:
            image = render_image(snap, scene, size=SIZE, camera=cameras[name], renderer=r)[..., :3]
            check_golden(name, image, regions(scene, {"camera": cameras[name]}), tmp_path)
    finally:
        r.release()


def test_golden_files_are_all_used() -> None:
    """No stale references: every PNG in tests/golden/ belongs to a view."""
    assert GOLDEN.is_dir(), f"{GOLDEN} is missing; regenerate with CNNVIS_REGEN_GOLDEN=1"
    stale = {p.stem for p in GOLDEN.glob("*.png")} - set(VIEWS) - {REAL, *BIG}
    assert not stale, f"golden images without a view: {sorted(stale)}"


# ---------------------------------------------------------------------------- tests of the tests
# Each plants a defect a reviewer would call a bug and requires the golden checks to see it.


def _planted(renderer: SceneRenderer, name: str, scene) -> list[str]:
    renderer.set_scene(scene)
    try:
        image = render_view(renderer, name, scene)
    finally:
        renderer.set_scene(SCENE)
    return mismatches(image, golden(name), regions(SCENE, VIEWS[name]))


@pytest.mark.gl
def test_a_removed_label_fails(renderer: SceneRenderer) -> None:
    k = next(i for i, lab in enumerate(SCENE.labels) if lab.kind == "cluster")
    scene = dataclasses.replace(SCENE, labels=SCENE.labels[:k] + SCENE.labels[k + 1 :])
    bad = _planted(renderer, "features_dark", scene)
    assert any(b.startswith(f"label {k} ") for b in bad), bad


@pytest.mark.gl
def test_a_moved_highlight_fails(renderer: SceneRenderer) -> None:
    renderer.set_selection(classes=[3], clusters=[1], neurons=[6])  # neuron 6 instead of 5
    kw = {k: v for k, v in VIEWS["selection_dark"].items() if k != "selection"}
    image = render_image(None, SCENE, renderer=renderer, size=SIZE, **kw)[..., :3]
    bad = mismatches(image, golden("selection_dark"), regions(SCENE, VIEWS["selection_dark"]))
    assert any(b.startswith("neuron 5") for b in bad), bad


@pytest.mark.gl
def test_activations_scaled_by_a_tenth_fail(renderer: SceneRenderer) -> None:
    renderer.set_facet("matrix")
    renderer.matrix.write_values(np.asarray(SCENE.neurons.activation) * 0.9)
    image = render_image(None, SCENE, renderer=renderer, size=SIZE)[..., :3]
    bad = mismatches(image, golden("matrix_dark"), regions(SCENE, VIEWS["matrix_dark"]))
    assert sum(b.startswith("matrix ") for b in bad) >= len(SCENE.clusters.id) // 2, bad


@pytest.mark.gl
def test_dropped_edges_fail(renderer: SceneRenderer) -> None:
    e = SCENE.edges
    keep = np.arange(len(e.weight)) % 2 == 0  # every other edge piece dropped
    edges = dataclasses.replace(
        e, **{f.name: getattr(e, f.name)[keep] for f in dataclasses.fields(e)
              if len(getattr(e, f.name)) == len(keep)}
    )  # fmt: skip
    bad = _planted(renderer, "edges_zoom_dark", dataclasses.replace(SCENE, edges=edges))
    assert any(b.startswith("whole image") for b in bad), bad


@pytest.mark.gl
def test_no_multisampling_fails(renderer: SceneRenderer) -> None:
    kw = dict(VIEWS["edges_zoom_msaa_dark"], msaa=0)
    image = render_image(None, SCENE, renderer=renderer, size=SIZE, **kw)[..., :3]
    bad = mismatches(image, golden("edges_zoom_msaa_dark"), {})
    assert bad, "the MSAA golden cannot tell multisampling from none"
