"""Golden-image tests of the renderer on a small deterministic synthetic Scene.

The scene and its patch pixels come from :mod:`cnnvis_gl.render.synthetic` (no analysis code),
rendered on a real headless OpenGL context (EGL; the references were made on Mesa llvmpipe).
Images are compared with a tolerance: the mean absolute difference per channel, and the fraction
of pixels where some channel differs by more than ``PIXEL_DIFF``.  On a mismatch the rendered
image is written beside the test's temporary directory for inspection.

Regenerate the references (then *look* at every PNG in ``tests/golden/``) with::

    CNNVIS_REGEN_GOLDEN=1 pytest tests/test_render*.py
"""

from __future__ import annotations

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
MEAN_TOL = 1.5  # mean |difference| per channel, 0..255
PIXEL_DIFF = 40  # a pixel "differs" when some channel moves by more than this
FRACTION_TOL = 0.01  # at most this fraction of differing pixels

SCENE = synthetic_scene(n_neurons=90, n_edges=90, seed=3)
_BX = SCENE.bounds[2]

# name → render_image keyword arguments
VIEWS: dict[str, dict] = {
    # all clusters as learned features (patch atlas, frames, labels, bundled edges)
    "features_dark": dict(facet="features"),
    # all clusters as activation matrices (viridis)
    "matrix_dark": dict(facet="matrix"),
    # zoomed onto the first in-between row: ribbons, their widths and signs, bundle nodes
    "edges_zoom_dark": dict(camera=Camera((_BX * 0.55, 215.0), 2.6)),
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
    gl_renderer.set_facet(SCENE.clusters.facet)
    gl_renderer.set_selection()
    gl_renderer.set_edge_threshold(0.0)
    gl_renderer.set_hover()
    yield gl_renderer
    assert ctx.error == "GL_NO_ERROR", "GL error raised by the test"


def compare(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(mean absolute difference, fraction of pixels differing by more than PIXEL_DIFF)."""
    a = actual.astype(np.int16)
    b = expected.astype(np.int16)
    diff = np.abs(a - b)
    return float(diff.mean()), float((diff.max(axis=-1) > PIXEL_DIFF).mean())


@pytest.mark.gl
@pytest.mark.parametrize("name", sorted(VIEWS))
def test_golden(name: str, renderer: SceneRenderer, tmp_path: Path) -> None:
    kw = dict(VIEWS[name])
    quantile = kw.pop("edge_quantile", None)
    if quantile is not None:
        renderer.set_edge_quantile(quantile)
        kw["edge_threshold"] = renderer.edge_threshold
    kw.setdefault("size", SIZE)
    image = render_image(None, SCENE, renderer=renderer, **kw)[..., :3]
    path = GOLDEN / f"{name}.png"
    if REGEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(path)
        return
    if not path.is_file():
        pytest.fail(f"missing golden image {path}; regenerate with CNNVIS_REGEN_GOLDEN=1")
    expected = np.asarray(Image.open(path).convert("RGB"))
    assert expected.shape == image.shape, f"{name}: size {image.shape} != {expected.shape}"
    mean, frac = compare(image, expected)
    if mean > MEAN_TOL or frac > FRACTION_TOL:
        out = tmp_path / f"{name}.actual.png"
        Image.fromarray(np.ascontiguousarray(image)).save(out)
        pytest.fail(
            f"{name}: mean diff {mean:.2f} (tol {MEAN_TOL}), differing pixels {frac:.2%} "
            f"(tol {FRACTION_TOL:.0%}); rendered image: {out}"
        )


def test_golden_files_are_all_used() -> None:
    """No stale references: every PNG in tests/golden/ belongs to a view."""
    assert GOLDEN.is_dir(), f"{GOLDEN} is missing; regenerate with CNNVIS_REGEN_GOLDEN=1"
    stale = {p.stem for p in GOLDEN.glob("*.png")} - set(VIEWS)
    assert not stale, f"golden images without a view: {sorted(stale)}"
