"""Semantic zoom, far out: each cluster as a mosaic of its most representative neurons.

Zoomed out, a cluster's packed patches shrink below a pixel and its frame shows only a summary
colour.  The mosaic keeps something recognisable: the cluster's neurons nearest its centroid
(in the class-profile space the clustering works in, ``Neurons.activation``) drawn large, in a
grid filling the cluster's features area, the nearest first.  The renderer cross-fades it with
the real patches (:class:`cnnvis_gl.render.mosaic.MosaicVisual`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .scene import Scene

__all__ = ["MosaicTiles", "mosaic_tiles", "representatives"]


@dataclass(frozen=True)
class MosaicTiles:
    """The mosaics of a scene's clusters (length M, clusters in order)."""

    neuron: np.ndarray  # int64 [M] index into scene.neurons
    rect: np.ndarray  # float32 [M, 4] tile x, y, w, h (scene units)
    cluster: np.ndarray  # int32 [M] index into scene.clusters


def representatives(profiles: np.ndarray, importance: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` rows of ``profiles`` nearest their mean (Euclidean), nearest
    first; ties go to the more important neuron."""
    X = np.asarray(profiles, dtype=np.float64)
    if len(X) == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    d = np.linalg.norm(X - X.mean(axis=0), axis=1)
    order = np.lexsort((-np.asarray(importance, dtype=np.float64), np.round(d, 9)))
    return order[:n].astype(np.int64)


def _grid(n: int, w: float, h: float) -> tuple[int, int, float]:
    """Columns, rows and the largest square side for ``n`` tiles in ``w`` × ``h``."""
    best = (1, n, 0.0)
    for cols in range(1, n + 1):
        rows = -(-n // cols)
        side = min(w / cols, h / rows)
        if side > best[2]:
            best = (cols, rows, side)
    return best


#: The tiles of the last scene asked for (the layout worker makes them for a draft's patches,
#: the renderer then asks again for the same scene).
_last: list = [None, None, None]  # weak reference to the scene, arguments, tiles


def mosaic_tiles(scene: Scene, max_tiles: int = 9, gap: float = 0.08) -> MosaicTiles:
    """Up to ``max_tiles`` representative neurons per cluster, as square tiles in a grid centred
    in the cluster's frame below its label (``gap``: the space between tiles, a fraction of a
    tile).  The last scene's tiles are remembered."""
    ref, args, tiles = _last
    if ref is not None and ref() is scene and args == (max_tiles, gap):
        return tiles
    tiles = _tiles(scene, max_tiles, gap)
    _last[:] = [weakref.ref(scene), (max_tiles, gap), tiles]
    return tiles


def _tiles(scene: Scene, max_tiles: int, gap: float) -> MosaicTiles:
    n, c = scene.neurons, scene.clusters
    order = np.argsort(n.cluster, kind="stable")
    starts = np.searchsorted(n.cluster[order], np.arange(len(c.id) + 1))
    neurons, rects, clusters = [], [], []
    for ci in range(len(c.id)):
        members = order[starts[ci] : starts[ci + 1]]
        if not len(members):
            continue
        k = min(len(members), max_tiles)
        pick = members[representatives(n.activation[members], n.importance[members], k)]
        # the frame below its label band, with the packing's margins (the features
        # rectangle is only as tall as the packing; frames of a row share the tallest height)
        fx, fy, fw, fh = (float(v) for v in c.rect[ci])
        px, py = (float(v) for v in c.features_rect[ci, :2])
        pad = max(px - fx, 0.0)
        x, y, w, h = px, py, max(fw - 2 * pad, 0.0), max(fy + fh - pad - py, 0.0)
        cols, rows, side = _grid(k, w, h)
        x0 = x + (w - cols * side) / 2
        y0 = y + (h - rows * side) / 2
        inset = side * gap / 2
        for j, ni in enumerate(pick):
            r, q = divmod(j, cols)
            neurons.append(int(ni))
            rects.append(
                (x0 + q * side + inset, y0 + r * side + inset, side - 2 * inset, side - 2 * inset)
            )
            clusters.append(ci)
    return MosaicTiles(
        np.asarray(neurons, dtype=np.int64),
        np.asarray(rects, dtype=np.float32).reshape(-1, 4),
        np.asarray(clusters, dtype=np.int32),
    )
