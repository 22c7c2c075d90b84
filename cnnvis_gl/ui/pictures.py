"""Pictures of the inspectors, computed off the UI thread (numpy + Pillow, no GL, no imgui).

* :func:`topk_grid` — a neuron's top-k patches in a grid, large;
* :func:`packing_image` — a cluster's learned-features packing, as the view draws it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from ..layout.scene import Scene

__all__ = ["topk_grid", "packing_image"]


def topk_grid(
    source: Any,
    unit: str,
    neuron: int,
    k: int = 9,
    size: int = 64,
    gap: int = 4,
    background: tuple[int, int, int] = (40, 42, 48),
) -> np.ndarray:
    """The top-``k`` patches of ``neuron`` of ``unit`` as one RGB image (a near-square grid).

    ``source`` is a Snapshot (anything with ``patches(unit, k, size, neurons)``).
    """
    pix = np.asarray(source.patches(unit, k, size, neurons=[int(neuron)]))[0]  # [k, s, s, 3]
    return image_grid(pix, size, gap, background)


def image_grid(
    pix: np.ndarray,
    size: int,
    gap: int = 4,
    background: tuple[int, int, int] = (40, 42, 48),
    cols: int | None = None,
) -> np.ndarray:
    """Square pictures ``[k, size, size, 3]`` as one RGB image: ``cols`` per row (default: a
    near-square grid), ``gap`` pixels of ``background`` between them."""
    k = len(pix)
    cols = cols or max(math.ceil(math.sqrt(k)), 1)
    rows = max(math.ceil(k / cols), 1)
    out = np.empty((rows * size + (rows - 1) * gap, cols * size + (cols - 1) * gap, 3), np.uint8)
    out[:] = background
    for i in range(k):
        r, c = divmod(i, cols)
        y, x = r * (size + gap), c * (size + gap)
        out[y : y + size, x : x + size] = pix[i]
    return out


def packing_image(
    source: Any,
    scene: Scene,
    cluster: int,
    max_side: int = 420,
    background: tuple[int, int, int] = (40, 42, 48),
) -> np.ndarray:
    """The packed patches of ``scene.clusters[cluster]`` (features facet), scaled to fit.

    ``source`` serves top-1 patches (a :class:`~cnnvis_gl.ui.jobs.PatchCache` or Snapshot).
    """
    x0, y0, w, h = (float(v) for v in scene.clusters.features_rect[cluster])
    scale = min(max_side / max(w, 1.0), max_side / max(h, 1.0), 4.0)
    W, H = max(int(math.ceil(w * scale)), 1), max(int(math.ceil(h * scale)), 1)
    out = np.empty((H, W, 3), np.uint8)
    out[:] = background
    n = scene.neurons
    idx = np.flatnonzero(n.cluster == cluster)
    if not len(idx):
        return out
    size = int(getattr(source, "size", 28))
    for u in np.unique(n.unit[idx]):
        sel = idx[n.unit[idx] == u]
        pix = np.asarray(
            source.patches(scene.units[int(u)], 1, size, neurons=n.index[sel].astype(np.int64))
        )[:, 0]
        for j, i in enumerate(sel):
            rx, ry, rw, rh = (float(v) for v in n.rect[i])
            px0 = int(round((rx - x0) * scale))
            py0 = int(round((ry - y0) * scale))
            pw = max(int(round(rw * scale)), 1)
            ph = max(int(round(rh * scale)), 1)
            px1, py1 = min(px0 + pw, W), min(py0 + ph, H)
            if px1 <= px0 or py1 <= py0:
                continue
            img = Image.fromarray(pix[j]).resize((pw, ph), Image.BILINEAR)
            out[py0:py1, px0:px1] = np.asarray(img)[: py1 - py0, : px1 - px0]
    return out
