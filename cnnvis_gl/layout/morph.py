"""A scene between two layouts of the same network (the time-lapse's morph between snapshots).

:func:`morph` takes the *structure* of the later scene ``b`` (its clusters, their members, rows
and labels) and places every part between where it was in ``a`` and where it is in ``b``: a
neuron moves from its patch rectangle in ``a`` to the one in ``b`` (so neurons that changed
cluster fly across), a cluster's frame from the frame of the cluster with the same id in ``a``
(or, for a new cluster, from the box around its members' old places), rows and their labels
with their bands.  Edges and bundle nodes are left out: their topology changes between the two
layouts, so the time-lapse fades them out and back in around the motion.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .scene import Bundles, Edges, Label, Scene

__all__ = ["morph"]


def _lerp(p: np.ndarray, q: np.ndarray, t: float) -> np.ndarray:
    return (p + (q - p) * t).astype(np.float32)


def _remap(rects: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rectangles inside frames ``src`` carried along to frames ``dst`` (scale + translate)."""
    sx = dst[:, 2] / np.maximum(src[:, 2], 1e-9)
    sy = dst[:, 3] / np.maximum(src[:, 3], 1e-9)
    out = np.empty_like(rects, dtype=np.float32)
    out[:, 0] = dst[:, 0] + (rects[:, 0] - src[:, 0]) * sx
    out[:, 1] = dst[:, 1] + (rects[:, 1] - src[:, 1]) * sy
    out[:, 2] = rects[:, 2] * sx
    out[:, 3] = rects[:, 3] * sy
    return out


def _neuron_starts(a: Scene, b: Scene) -> np.ndarray:
    """Each neuron of ``b``'s rectangle in ``a`` (its own in ``b`` when ``a`` lacks it)."""
    na, nb = a.neurons, b.neurons
    where = {(a.units[int(u)], int(i)): k for k, (u, i) in enumerate(zip(na.unit, na.index, strict=True))}
    start = np.array(nb.rect, dtype=np.float64, copy=True)
    for k, (u, i) in enumerate(zip(nb.unit, nb.index, strict=True)):
        j = where.get((b.units[int(u)], int(i)))
        if j is not None:
            start[k] = na.rect[j]
    return start


def _cluster_starts(a: Scene, b: Scene, neuron_start: np.ndarray) -> np.ndarray:
    """Each cluster of ``b``'s frame in ``a``: the same id's, else its members' old box."""
    ca, cb = a.clusters, b.clusters
    by_id = {int(c): k for k, c in enumerate(ca.id)}
    start = np.array(cb.rect, dtype=np.float64, copy=True)
    for k, cid in enumerate(cb.id):
        j = by_id.get(int(cid))
        if j is not None:
            start[k] = ca.rect[j]
            continue
        r = neuron_start[np.asarray(b.neurons.cluster) == k]
        if len(r):
            x0, y0 = r[:, 0].min(), r[:, 1].min()
            start[k] = (x0, y0, (r[:, 0] + r[:, 2]).max() - x0, (r[:, 1] + r[:, 3]).max() - y0)
    return start


def morph(a: Scene, b: Scene, t: float) -> Scene:
    """``b``'s parts placed ``t`` of the way from where they were in ``a`` (0) to ``b`` (1),
    without edges (see the module docstring)."""
    t = float(min(max(t, 0.0), 1.0))
    cb, nb = b.clusters, b.neurons
    n_start = _neuron_starts(a, b)
    c_start = _cluster_starts(a, b, n_start)
    frames = _lerp(c_start, np.asarray(cb.rect, np.float64), t)
    b_frames = np.asarray(cb.rect, np.float64)
    clusters = replace(
        cb,
        rect=frames,
        features_rect=_remap(np.asarray(cb.features_rect, np.float64), b_frames, frames),
        matrix_rect=_remap(np.asarray(cb.matrix_rect, np.float64), b_frames, frames),
    )
    neurons = replace(nb, rect=_lerp(n_start, np.asarray(nb.rect, np.float64), t))
    rows_a = {r.name: r for r in a.rows}
    units_a = {r.unit: r for r in a.rows if r.unit}  # a collapsed stage comes from its last group
    rows = []
    for r in b.rows:
        old = rows_a.get(r.name) or units_a.get(r.unit, r)
        rows.append(replace(r, y=old.y + (r.y - old.y) * t, height=old.height + (r.height - old.height) * t))
    labels = _labels(b, rows, b_frames, frames)
    ax0, ay0, ax1, ay1 = a.bounds
    bx0, by0, bx1, by1 = b.bounds
    bounds = tuple(float(p + (q - p) * t) for p, q in ((ax0, bx0), (ay0, by0), (ax1, bx1), (ay1, by1)))
    return replace(b, rows=rows, clusters=clusters, neurons=neurons, edges=_no_edges(),
                   bundles=_no_bundles(), labels=labels, bounds=bounds)  # fmt: skip


def _labels(b: Scene, rows: list, b_frames: np.ndarray, frames: np.ndarray) -> list[Label]:
    """``b``'s labels moved with their cluster (scaled) or their row (its band's centre)."""
    index = {int(c): k for k, c in enumerate(b.clusters.id)}
    out = []
    for lab in b.labels:
        k = index.get(int(lab.cluster), -1) if lab.cluster >= 0 else -1
        if k >= 0:
            src, dst = b_frames[k], frames[k]
            sx, sy = dst[2] / max(src[2], 1e-9), dst[3] / max(src[3], 1e-9)
            out.append(replace(lab, x=float(dst[0] + (lab.x - src[0]) * sx), y=float(dst[1] + (lab.y - src[1]) * sy)))
            continue
        row = next((k for k, r in enumerate(b.rows) if r.y <= lab.y <= r.y + r.height), None)
        if row is None:
            out.append(lab)
            continue
        old, new = b.rows[row], rows[row]
        dy = (new.y + new.height / 2) - (old.y + old.height / 2)
        out.append(replace(lab, y=float(lab.y + dy)))
    return out


def _no_edges() -> Edges:
    i32 = np.zeros(0, np.int32)
    return Edges(ctrl=np.zeros((0, 4, 2), np.float32), weight=np.zeros(0, np.float32),
                 sign=np.zeros(0, np.int8), src=i32, dst=i32, bundle=i32)  # fmt: skip


def _no_bundles() -> Bundles:
    i32 = np.zeros(0, np.int32)
    return Bundles(pos=np.zeros((0, 2), np.float32), sign=np.zeros(0, np.int8), n_in=i32, n_out=i32, row=i32)
