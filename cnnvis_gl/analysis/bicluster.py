"""Biclustering-based edge bundling between two layer rows (SPEC §6).

Biclusters are mined greedily on the dense 0/1 matrix of the kept edges of one sign, on the
input's array backend (NumPy or CuPy): every candidate is a *maximal* biclique (a formal concept:
rows = all rows adjacent to every column, and vice versa), grown from every row's and every
column's neighbourhood by best-improvement moves (add the row or column that gives the most
edges, then close), all candidates of one round scored at once by matrix products.  The
largest is taken, its edges are removed, and the search repeats on what is left, so biclusters
are edge-disjoint, fully connected and come largest first.  Edge counts are integers, so both
backends give identical biclusters.

Geometry (:func:`bundle_edges`): inputs sit on ``y = in_y``, outputs on ``y = out_y``; a
bicluster's node sits half-way between the rows, at the barycentre of its ends.  A bundled edge
is two cubic Bézier pieces, input → node → output, each leaving and entering vertically, so all
edges of one input into one node share the same first piece (that is what saves ink).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from cnnvis_gl.analysis._blas import single_thread_blas
from cnnvis_gl.xp import get_xp, to_numpy

__all__ = [
    "Bicluster",
    "Bundling",
    "find_biclusters",
    "threshold_for_top",
    "bundle_edges",
    "ink_and_crossings",
    "bezier_points",
]

#: Candidates grown by local search in each round (the best seeds by edge count).
SEEDS_GROWN = 16
#: Fraction of the row gap from a row to its control point (vertical tangents).
CURVE_TENSION = 1.0 / 3.0


class Bicluster(NamedTuple):
    """A fully connected set of inputs × outputs with weights of one sign."""

    rows: np.ndarray  # int64, sorted input indices
    cols: np.ndarray  # int64, sorted output indices
    sign: int  # +1 or -1


def threshold_for_top(weights: Any, fraction: float = 0.25) -> float:
    """|w| threshold that keeps about the top ``fraction`` of the edges by magnitude.

    Returns the ``1 - fraction`` quantile of ``|w|`` (``inf`` for no weights or
    ``fraction <= 0``, so nothing is kept).
    """
    a = np.abs(np.asarray(to_numpy(weights), dtype=np.float64)).ravel()
    if a.size == 0 or fraction <= 0:
        return float("inf")
    return float(np.quantile(a, 1.0 - min(float(fraction), 1.0)))


def _edge_mask(weights: Any, threshold: float, sign: int) -> Any:
    """0/1 float32 matrix of the edges of one sign at ``|w| >= threshold`` (zero never counts)."""
    xp = get_xp(weights)
    W = xp.asarray(weights, dtype=xp.float64)
    if sign > 0:
        m = (W >= threshold) & (W > 0)
    else:
        m = (W <= -threshold) & (W < 0)
    return m.astype(xp.float32)


def find_biclusters(weights: Any, threshold: float, min_size: int = 2) -> list[Bicluster]:
    """Greedy edge-disjoint maximal bicliques of the thresholded signed weight matrix.

    Parameters
    ----------
    weights : ndarray[m, n]
        Signed weights from ``m`` inputs to ``n`` outputs (NumPy or CuPy).
    threshold : float
        Edges with ``w >= threshold`` (positive) or ``w <= -threshold`` (negative) are kept.
    min_size : int
        A bicluster is kept when it has at least ``min_size`` rows or ``min_size`` columns (and
        at least 2 edges).

    Returns
    -------
    list of Bicluster
        Positive ones first, then negative ones; within a sign by decreasing edge count (the
        order they were mined).  Each edge is in at most one bicluster; every bicluster is fully
        connected in the thresholded matrix of its sign.  Deterministic.
    """
    xp = get_xp(weights)
    W = xp.asarray(weights, dtype=xp.float64)
    if W.ndim != 2:
        raise ValueError(f"weights must be 2-D, got shape {W.shape}")
    out: list[Bicluster] = []
    if W.size == 0:
        return out
    with single_thread_blas(xp, int(W.size)):
        for sign in (1, -1):
            R = _edge_mask(W, threshold, sign)
            seeds = _Seeds(R)
            while True:
                found = seeds.best(min_size)
                if found is None:
                    break
                out.append(Bicluster(found[0], found[1], sign))
                seeds.remove(*found)
    return out


class _Seeds:
    """Candidate bicliques grown from every column's and every row's neighbourhood.

    Seed ``j < n`` (column j): rows = N(j), cols = every column adjacent to all those rows.
    Seed ``n + i`` (row i): cols = N(i), rows = every row adjacent to all those columns.
    Every qualifying biclique contains a qualifying seed (a column of it has all its rows as
    neighbours), so no seed qualifying means none exists.  After a biclique ``r x c`` is
    removed, only the seeds of its own rows and columns are recomputed; the others lose at
    most the columns ``c`` (rows ``r``) from their closure, an O((m + n)(|r| + |c|)) update.
    Scores are exact integer edge counts and ties go to the lowest index, so the result is
    deterministic and the same on every backend.
    """

    def __init__(self, R: Any) -> None:
        xp = get_xp(R)
        self.xp, self.R = xp, R
        self.m, self.n = (int(s) for s in R.shape)
        rows_c = R.T.copy()
        cols_r = R.copy()
        self.rows = xp.concatenate([rows_c, _close_rows(R, cols_r)], axis=0)  # [n + m, m]
        self.cols = xp.concatenate([_close_cols(R, rows_c), cols_r], axis=0)  # [n + m, n]

    def best(self, min_size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The largest qualifying biclique among the seeds and the best seeds grown."""
        xp = self.xp
        nr = to_numpy(self.rows.sum(axis=1))
        nc = to_numpy(self.cols.sum(axis=1))
        sc = nr * nc
        order = np.argsort(-sc, kind="stable")
        order = order[sc[order] >= 2][: 4 * SEEDS_GROWN]
        if order.size == 0:
            return None
        # Grow the best few distinct seeds (many columns of one block give the same seed).
        sel = xp.asarray(order)
        hr, hc = to_numpy(self.rows[sel]), to_numpy(self.cols[sel])
        picked: list[int] = []
        seen: set[bytes] = set()
        for t in range(order.size):
            key = hr[t].tobytes() + hc[t].tobytes()
            if key not in seen:
                seen.add(key)
                picked.append(int(order[t]))
            if len(picked) >= SEEDS_GROWN:
                break
        sel = xp.asarray(np.asarray(picked, dtype=np.int64))
        gr, gc = _grow(self.R, self.rows[sel], self.cols[sel])
        gnr, gnc = to_numpy(gr.sum(axis=1)), to_numpy(gc.sum(axis=1))
        # Grown candidates first, then every seed; ties to the earliest.
        nr_all = np.concatenate([gnr, nr])
        nc_all = np.concatenate([gnc, nc])
        edges = nr_all * nc_all
        ok = (edges >= 2) & ((nr_all >= min_size) | (nc_all >= min_size))
        if not ok.any():
            return None
        b = int(np.argmax(np.where(ok, edges, -1.0)))
        if b < len(picked):
            r_b, c_b = gr[b], gc[b]
        else:
            r_b, c_b = self.rows[b - len(picked)], self.cols[b - len(picked)]
        rr = np.flatnonzero(to_numpy(r_b) > 0.5).astype(np.int64)
        cc = np.flatnonzero(to_numpy(c_b) > 0.5).astype(np.int64)
        return rr, cc

    def remove(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Delete the edges ``rows x cols`` and update the seeds."""
        xp, R, n = self.xp, self.R, self.n
        ri, ci = xp.asarray(rows), xp.asarray(cols)
        R[ri[:, None], ci[None, :]] = 0.0
        # Column seeds: their closure keeps a column d of c only if their rows avoid r (N(d)
        # lost r).  Row seeds: their closure keeps a row of r only if their columns avoid c.
        hit_c = (self.rows[:n][:, ri].sum(axis=1) > 0.5).astype(xp.float32)  # [n]
        self.cols[:n, ci] *= (1.0 - hit_c)[:, None]
        hit_r = (self.cols[n:][:, ci].sum(axis=1) > 0.5).astype(xp.float32)  # [m]
        self.rows[n:, ri] *= (1.0 - hit_r)[:, None]
        # Seeds of the touched columns and rows: recompute from their new neighbourhoods.
        rc = R[:, ci].T.copy()
        self.rows[ci] = rc
        self.cols[ci] = _close_cols(R, rc)
        cr = R[ri].copy()
        self.cols[n + ri] = cr
        self.rows[n + ri] = _close_rows(R, cr)


def _close_cols(R: Any, rows: Any) -> Any:
    """For row sets ``rows`` [k, m] (0/1): the columns adjacent to all of them, [k, n]."""
    xp = get_xp(R)
    cnt = rows @ R  # [k, n]
    return (cnt >= rows.sum(axis=1, keepdims=True) - 0.5).astype(xp.float32) * (
        rows.sum(axis=1, keepdims=True) > 0
    )


def _close_rows(R: Any, cols: Any) -> Any:
    """For column sets ``cols`` [k, n] (0/1): the rows adjacent to all of them, [k, m]."""
    xp = get_xp(R)
    cnt = cols @ R.T  # [k, m]
    return (cnt >= cols.sum(axis=1, keepdims=True) - 0.5).astype(xp.float32) * (
        cols.sum(axis=1, keepdims=True) > 0
    )


def _grow(R: Any, r: Any, c: Any, max_steps: int = 64) -> tuple[Any, Any]:
    """Best-improvement ascent over maximal bicliques, for k candidates at once.

    Moves from (rows, cols): add column j (rows ∩ N(j), then close the columns) or add row i
    (cols ∩ N(i), then close the rows).  A candidate stops when no move adds edges.
    """
    xp = get_xp(R)
    for _ in range(max_steps):
        cur = r.sum(axis=1) * c.sum(axis=1)  # [k]
        # Add column j: new rows = r & R[:, j]; |new rows| = (r @ R)[j]; new cols = closure.
        # Scoring every (candidate, j) closure exactly costs k·n·m·n; instead score by the
        # lower bound |rows ∩ N(j)| · (|cols| + 1) and close only the best move per candidate.
        rn = r @ R  # [k, n] rows kept by adding column j
        gain_c = rn * (c.sum(axis=1, keepdims=True) + 1.0)
        gain_c = xp.where(c > 0.5, -1.0, gain_c)
        cn = c @ R.T  # [k, m] cols kept by adding row i
        gain_r = cn * (r.sum(axis=1, keepdims=True) + 1.0)
        gain_r = xp.where(r > 0.5, -1.0, gain_r)
        jc = gain_c.argmax(axis=1)
        ir = gain_r.argmax(axis=1)
        # Candidate A: add column jc.
        rA = r * R[:, jc].T
        cA = _close_cols(R, rA)
        eA = rA.sum(axis=1) * cA.sum(axis=1)
        # Candidate B: add row ir.
        cB = c * R[ir, :]
        rB = _close_rows(R, cB)
        eB = rB.sum(axis=1) * cB.sum(axis=1)
        takeA = (eA > cur) & (eA >= eB)
        takeB = (eB > cur) & ~takeA
        if not bool((takeA | takeB).any()):
            break
        r = xp.where(takeA[:, None], rA, xp.where(takeB[:, None], rB, r))
        c = xp.where(takeA[:, None], cA, xp.where(takeB[:, None], cB, c))
    return r, c


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Bundling:
    """Bundled drawing of the edges between two rows.

    Attributes
    ----------
    biclusters : list of Bicluster
    nodes : ndarray[k, 2]
        Position of each bicluster's node (barycentre of its ends in x, half-way in y).
    curves : ndarray[e, 7, 2]
        One per bundled edge: control points of two cubic Bézier pieces
        ``input → node → output`` (points 0-3 and 3-6).
    curve_edges : ndarray[e, 2] int64
        ``(input, output)`` of each bundled edge; ``curve_weights`` (float64), ``curve_signs``
        (int8) and ``curve_bicluster`` (index into ``biclusters``) run alongside.
    direct : ndarray[d, 2, 2]
        Straight segments of the kept edges that are in no bicluster, with ``direct_edges``,
        ``direct_weights`` and ``direct_signs`` alongside.
    in_x, out_x, in_y, out_y : the positions the geometry was built from.
    """

    biclusters: list[Bicluster]
    nodes: np.ndarray
    curves: np.ndarray
    curve_edges: np.ndarray
    curve_weights: np.ndarray
    curve_signs: np.ndarray
    curve_bicluster: np.ndarray
    direct: np.ndarray
    direct_edges: np.ndarray
    direct_weights: np.ndarray
    direct_signs: np.ndarray
    in_x: np.ndarray = field(repr=False)
    out_x: np.ndarray = field(repr=False)
    in_y: float = 0.0
    out_y: float = 1.0

    @property
    def node_signs(self) -> np.ndarray:
        return np.array([b.sign for b in self.biclusters], dtype=np.int8)


def _half_curves(p0: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Cubic Bézier control points ``[k, 4, 2]`` from points ``p0`` to ``p3`` (``[k, 2]``, or
    ``[1, 2]`` broadcast), vertical at both ends."""
    p0, p3 = np.broadcast_arrays(np.asarray(p0, np.float64), np.asarray(p3, np.float64))
    dy = (p3[:, 1] - p0[:, 1]) * CURVE_TENSION
    p1 = np.stack([p0[:, 0], p0[:, 1] + dy], 1)
    p2 = np.stack([p3[:, 0], p3[:, 1] - dy], 1)
    return np.stack([p0, p1, p2, p3], 1)


def bundle_edges(
    weights: Any,
    threshold: float,
    in_x: Any,
    out_x: Any,
    in_y: float,
    out_y: float,
    min_size: int = 2,
    bundle: bool = True,
) -> Bundling:
    """Bundle the kept edges between an input row and an output row through bicluster nodes.

    Parameters
    ----------
    weights : ndarray[m, n]
        Signed weights (inputs × outputs).
    threshold : float
        Keep edges with ``|w| >= threshold`` (see :func:`threshold_for_top`).
    in_x, out_x : ndarray[m], ndarray[n]
        x of the inputs (on ``y = in_y``) and of the outputs (on ``y = out_y``).
    min_size : int
        Passed to :func:`find_biclusters`.
    bundle : bool
        ``False``: no biclusters, every kept edge direct (a draft layout).

    Returns
    -------
    Bundling
    """
    W = np.asarray(to_numpy(weights), dtype=np.float64)
    in_x = np.asarray(to_numpy(in_x), dtype=np.float64).ravel()
    out_x = np.asarray(to_numpy(out_x), dtype=np.float64).ravel()
    m, n = W.shape
    if in_x.size != m or out_x.size != n:
        raise ValueError(f"positions ({in_x.size}, {out_x.size}) do not match weights {W.shape}")
    bics = find_biclusters(weights, threshold, min_size=min_size) if bundle else []
    node_y = 0.5 * (in_y + out_y)
    nodes = np.zeros((len(bics), 2))
    covered = np.zeros((m, n), dtype=bool)
    curves: list[np.ndarray] = []
    cedges: list[np.ndarray] = []
    cb: list[np.ndarray] = []
    for b, bc in enumerate(bics):
        rows, cols = np.asarray(bc.rows, np.int64), np.asarray(bc.cols, np.int64)
        x = (in_x[rows].sum() + out_x[cols].sum()) / (len(rows) + len(cols))
        nodes[b] = (x, node_y)
        node = np.broadcast_to(nodes[b], (1, 2))
        first = _half_curves(np.stack([in_x[rows], np.full(len(rows), in_y)], 1), node)
        second = _half_curves(node, np.stack([out_x[cols], np.full(len(cols), out_y)], 1))
        r, c = len(rows), len(cols)  # every (row, col) pair: row-major, as the edges below
        curves.append(
            np.concatenate(
                [np.repeat(first, c, axis=0), np.tile(second[:, 1:], (r, 1, 1))], axis=1
            )
        )
        cedges.append(np.stack([np.repeat(rows, c), np.tile(cols, r)], 1))
        cb.append(np.full(r * c, b, dtype=np.int64))
        covered[np.ix_(rows, cols)] = True
    ce = np.concatenate(cedges).astype(np.int64) if cedges else np.zeros((0, 2), np.int64)
    cw = W[ce[:, 0], ce[:, 1]] if ce.size else np.zeros(0)
    kept = ((W >= threshold) & (W > 0)) | ((W <= -threshold) & (W < 0))
    de = np.argwhere(kept & ~covered).astype(np.int64).reshape(-1, 2)
    dw = W[de[:, 0], de[:, 1]] if de.size else np.zeros(0)
    direct = np.zeros((len(de), 2, 2))
    if len(de):
        direct[:, 0, 0] = in_x[de[:, 0]]
        direct[:, 0, 1] = in_y
        direct[:, 1, 0] = out_x[de[:, 1]]
        direct[:, 1, 1] = out_y
    return Bundling(
        biclusters=bics,
        nodes=nodes,
        curves=np.concatenate(curves) if curves else np.zeros((0, 7, 2)),
        curve_edges=ce,
        curve_weights=cw,
        curve_signs=np.sign(cw).astype(np.int8),
        curve_bicluster=np.concatenate(cb) if cb else np.zeros(0, dtype=np.int64),
        direct=direct,
        direct_edges=de,
        direct_weights=dw,
        direct_signs=np.sign(dw).astype(np.int8),
        in_x=in_x,
        out_x=out_x,
        in_y=float(in_y),
        out_y=float(out_y),
    )


# --------------------------------------------------------------------------- quality figures


def bezier_points(ctrl: np.ndarray, samples: int = 16) -> np.ndarray:
    """Points of a piecewise cubic Bézier (control points 0-3, 3-6, ...), ``samples`` per piece."""
    t = np.linspace(0.0, 1.0, samples + 1)[:, None]
    pts = [ctrl[:1]]
    for s in range(0, len(ctrl) - 1, 3):
        p0, p1, p2, p3 = ctrl[s : s + 4]
        b = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        pts.append(b[1:])
    return np.concatenate(pts)


def _unique_pieces(bundling: Bundling) -> list[np.ndarray]:
    """Distinct Bézier pieces (input→node and node→output are shared by several edges)."""
    cv = np.asarray(bundling.curves, dtype=np.float64).reshape(-1, 7, 2)
    if not len(cv):
        return []
    pieces = np.concatenate([cv[:, :4], cv[:, 3:]]).reshape(-1, 8)
    return list(np.unique(pieces, axis=0).reshape(-1, 4, 2))


def _polyline_length(p: np.ndarray) -> float:
    return float(np.sqrt((np.diff(p, axis=0) ** 2).sum(axis=1)).sum())


def _count_crossings(seg: np.ndarray, chunk: int = 2048) -> int:
    """Proper crossings among segments ``seg[k] = ((x0, y0), (x1, y1))``.

    Touching at an endpoint, collinear overlaps and identical segments do not count.
    """
    k = len(seg)
    if k < 2:
        return 0
    a, b = seg[:, 0], seg[:, 1]
    scale = max(float(np.abs(seg).max()), 1.0)
    eps = 1e-9 * scale * scale

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
            r[..., 0] - p[..., 0]
        )

    total = 0
    for s in range(0, k, chunk):
        A, B = a[s : s + chunk, None, :], b[s : s + chunk, None, :]
        C, D = a[None, :, :], b[None, :, :]
        o1, o2 = orient(A, B, C), orient(A, B, D)
        o3, o4 = orient(C, D, A), orient(C, D, B)
        cross = ((o1 > eps) & (o2 < -eps) | (o1 < -eps) & (o2 > eps)) & (
            (o3 > eps) & (o4 < -eps) | (o3 < -eps) & (o4 > eps)
        )
        total += int(cross.sum())
    return total // 2


def _polygon_segments(polys: list[np.ndarray]) -> np.ndarray:
    segs = [np.stack([p[:-1], p[1:]], axis=1) for p in polys if len(p) > 1]
    if not segs:
        return np.zeros((0, 2, 2))
    s = np.concatenate(segs)
    keep = np.abs(s[:, 0] - s[:, 1]).sum(axis=1) > 0  # drop zero-length pieces
    return s[keep]


def ink_and_crossings(bundling: Bundling) -> dict[str, float]:
    """Ink (total drawn length) and crossings, bundled vs. all kept edges drawn straight.

    Bundled ink counts every distinct Bézier piece once (sampled arc length) plus the direct
    leftovers.  Crossings are counted between straight segments of this layer pair, curves
    approximated by their control polygons (shared pieces once).

    Returns
    -------
    dict
        ``ink_bundled``, ``ink_direct``, ``crossings_bundled``, ``crossings_direct``.
    """
    pieces = _unique_pieces(bundling)
    ink_b = sum(_polyline_length(bezier_points(p)) for p in pieces)
    ink_b += float(np.sqrt(((bundling.direct[:, 1] - bundling.direct[:, 0]) ** 2).sum(-1)).sum())
    # All kept edges straight: the bundled ones plus the leftovers.
    e = bundling.curve_edges
    straight = np.zeros((len(e), 2, 2))
    if len(e):
        straight[:, 0, 0] = bundling.in_x[e[:, 0]]
        straight[:, 0, 1] = bundling.in_y
        straight[:, 1, 0] = bundling.out_x[e[:, 1]]
        straight[:, 1, 1] = bundling.out_y
    all_direct = np.concatenate([straight, bundling.direct])
    ink_d = float(np.sqrt(((all_direct[:, 1] - all_direct[:, 0]) ** 2).sum(-1)).sum())
    seg_b = np.concatenate([_polygon_segments(pieces), bundling.direct])
    return {
        "ink_bundled": float(ink_b),
        "ink_direct": ink_d,
        "crossings_bundled": float(_count_crossings(seg_b)),
        "crossings_direct": float(_count_crossings(all_direct)),
    }
