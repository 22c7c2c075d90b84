"""Level of detail: what the view draws at a zoom, from a few screen-pixel thresholds.

Patches fade in as they grow past a few pixels (below, a cluster shows its summary colour),
matrix rows likewise; edges are tessellated to about ``px_per_segment`` pixels per segment,
and capped by a vertex budget, a far-out cap and an "ink" budget of on-screen ribbon area;
zoomed in, neuron-level edges get what the cluster edges leave of the vertex budget.
Plain numbers in, plain numbers out (no GL): :func:`level_of_detail`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .camera import Camera, Viewport

__all__ = ["LodSettings", "level_of_detail"]


@dataclass(frozen=True)
class LodSettings:
    """Level-of-detail thresholds (screen pixels).

    Attributes
    ----------
    patch_px
        Patches fade in as their median on-screen side grows from the first value to the
        second; below it the cluster frames show summary colours instead.
    matrix_row_px
        Same for the matrix rows' on-screen height.
    px_per_segment
        Target on-screen length of one Bézier segment; ``segments`` bounds the count.
    far_chord_px
        When the median edge spans fewer pixels than this, only ``far_edges`` strongest edges
        are drawn.
    max_edges
        Cap on drawn edges at any zoom (``None``: all that pass the threshold).
    edge_ink
        Budget of on-screen ribbon area, in viewports: the strongest edges are kept so that
        (visible edges × their on-screen length × 2 px) stays under ``edge_ink`` × the viewport.
    edge_vertices
        Budget of ribbon vertices per redraw of the edge layer (tessellation cost).
    edge_width
        Ribbon width at the largest ``|w|``, in scene units (clamped to ``edge_px``).
    edge_floor_px
        …but never below this many pixels: zoomed out, widths keep their proportions from this
        floor, so the strongest bundles stay readable at every zoom (others thinner by weight).
    neuron_edges_px
        Zoomed in so that a patch is at least this many pixels, the neuron-level edges (when
        set, :meth:`SceneRenderer.set_neuron_edges`) replace the cluster edges, which stay as
        context at ``context_edge_alpha``; their bundle nodes are hidden.
    still
        A still picture (``cnnvis render``): the semantic zoom does not stop half-way, the
        clusters show either their mosaics or their packed patches, whichever is nearer, each
        opaque (a half-faded mosaic over the summary colours reads as a grey veil).
    """

    patch_px: tuple[float, float] = (3.0, 6.0)
    matrix_row_px: tuple[float, float] = (0.6, 1.5)
    px_per_segment: float = 10.0
    segments: tuple[int, int] = (3, 24)
    far_chord_px: float = 48.0
    far_edges: int = 4000
    max_edges: int | None = None
    edge_ink: float = 6.0
    edge_vertices: int = 400_000
    edge_width: float = 5.0
    edge_px: tuple[float, float] = (0.8, 22.0)
    edge_floor_px: float = 5.0
    neuron_edges_px: float = 10.0
    context_edge_alpha: float = 0.3
    still: bool = False


def _smoothstep(lo: float, hi: float, x: float) -> float:
    t = min(max((x - lo) / max(hi - lo, 1e-9), 0.0), 1.0)
    return t * t * (3 - 2 * t)


def level_of_detail(
    lod: LodSettings,
    camera: Camera,
    viewport: Viewport,
    *,
    patch_side: float,
    row_height: float,
    chord: float,
    bounds: Any,
    edge_count: Callable[[int], int],
    detail_chord: float = 0.0,
    detail_count: int = 0,
) -> dict[str, Any]:
    """What is drawn at ``camera`` in a ``viewport``.

    Parameters
    ----------
    patch_side, row_height, chord
        Median patch side, matrix row height and edge chord, in scene units.
    bounds
        The scene's ``(x0, y0, x1, y1)`` (``None``: no scene).
    edge_count
        How many of the strongest edges pass the threshold, at most the given cap.
    detail_chord, detail_count
        Median chord and number of the neuron-level edges wanted here (0: none).

    Returns
    -------
    dict
        ``patch_alpha`` (how large patches are, 0..1), ``mosaic_alpha`` and
        ``patches_drawn`` (the opacity of the clusters' mosaics and of their packed patches),
        ``summary`` (patch and matrix summary mixes), ``matrix`` (rows visible), ``segments``, ``edges`` (count drawn), ``neuron_edges`` (count drawn),
        ``neuron_segments``.
    """
    z = camera.zoom
    w, h = float(viewport[0]), float(viewport[1])
    patch_alpha = _smoothstep(*lod.patch_px, patch_side * z)
    matrix_alpha = _smoothstep(*lod.matrix_row_px, row_height * z)
    chord_px = chord * z
    segments = int(np.clip(round(chord_px / lod.px_per_segment), *lod.segments))
    caps = [lod.edge_vertices // (2 * (segments + 1))]
    if lod.max_edges is not None:
        caps.append(lod.max_edges)
    if chord_px < lod.far_chord_px:
        caps.append(lod.far_edges)
    if bounds is not None and chord_px > 0:
        vis = _visible_fraction(bounds, camera, (w, h))
        seen = vis * min(chord_px, float(np.hypot(w, h))) * 2.0
        caps.append(int(lod.edge_ink * w * h / max(seen, 1e-9)))
    count = edge_count(max(min(caps), 1))
    detail = 0
    detail_segments = segments
    if detail_count and count:
        detail_segments = int(np.clip(round(detail_chord * z / lod.px_per_segment), *lod.segments))
        # one tessellation budget: the neuron edges get what the cluster edges leave (≥ ¼)
        left = max(lod.edge_vertices - count * 2 * (segments + 1), lod.edge_vertices // 4)
        budget = left // (2 * (detail_segments + 1))
        detail = min(int(detail_count), max(budget, 1))
    # semantic zoom: the mosaic fades out, then the packed patches fade in (never both)
    mosaic, patches = 1.0 - _smoothstep(0.25, 0.5, patch_alpha), _smoothstep(0.5, 0.75, patch_alpha)
    if lod.still:
        mosaic, patches = float(patch_alpha < 0.5), float(patch_alpha >= 0.5)
    return {
        "patch_alpha": patch_alpha,
        "mosaic_alpha": mosaic,
        "patches_drawn": patches,
        "summary": (1.0 - patch_alpha, 1.0 - matrix_alpha),
        "matrix": matrix_alpha > 0.0,
        "segments": segments,
        "edges": count,
        "neuron_edges": detail,
        "neuron_segments": detail_segments,
    }


def _visible_fraction(bounds: Any, camera: Camera, viewport: Viewport) -> float:
    x0, y0, x1, y1 = (float(v) for v in bounds)
    vx0, vy0, vx1, vy1 = camera.visible_rect(viewport)
    iw = max(min(x1, vx1) - max(x0, vx0), 0.0)
    ih = max(min(y1, vy1) - max(y0, vy0), 0.0)
    area = max((x1 - x0) * (y1 - y0), 1e-9)
    return min(max(iw * ih / area, 1e-6), 1.0)
