"""The content of one neuron cluster: packed patches (features facet) and matrix row order.

:func:`cluster_content` computes it from scratch (``pack_cluster`` + ``order_rows``;
:func:`cluster_contents` several of one unit at once);
:func:`remove_neuron` and :func:`insert_neuron` update an existing content by one neuron in
O(n) (used when the user moves a neuron, so the rest of the cluster stays where it was).
Contents are immutable and cached by the layout state per member set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..analysis import cosine_similarity, pack_cluster, path_score, row_normalize
from ..analysis.ordering import order_rows_many
from ..analysis.packing import image_sides
from .options import LayoutOptions

__all__ = [
    "UnitData",
    "ClusterContent",
    "unit_data",
    "cluster_content",
    "cluster_contents",
    "draft_content",
    "draft_labels",
    "remove_neuron",
    "insert_neuron",
]

_EPS = 1e-9


@dataclass(frozen=True)
class UnitData:
    """Per-unit inputs of the layout (from ``snapshot.activations``)."""

    A: np.ndarray  # float64 [C, K] class means (max response)
    activation: np.ndarray  # float32 [C, K] A normalised over the unit to [0, 1]
    importance: np.ndarray  # float64 [C] largest class mean, normalised over the unit to [0, 1]
    unit_vectors: np.ndarray  # float64 [C, K] row-normalised A (cosine geometry)


def unit_data(A: np.ndarray) -> UnitData:
    """Normalised activations and importances of one unit's neuron × class matrix."""
    A = np.nan_to_num(np.asarray(A, dtype=np.float64))
    lo, hi = (float(A.min()), float(A.max())) if A.size else (0.0, 0.0)
    act = (A - lo) / (hi - lo) if hi > lo else np.zeros_like(A)
    peak = A.max(axis=1) if A.shape[1] else np.zeros(A.shape[0])
    plo, phi = (float(peak.min()), float(peak.max())) if peak.size else (0.0, 0.0)
    imp = (peak - plo) / (phi - plo) if phi > plo else np.ones_like(peak)
    return UnitData(A, act.astype(np.float32), imp, np.asarray(row_normalize(A)))


@dataclass(frozen=True)
class ClusterContent:
    """Layout of one cluster's neurons, in local coordinates (origin at the content's corner).

    Attributes
    ----------
    members : ndarray[int64]
        Sorted neuron indices (channels of the unit); every other array follows this order.
    rects : ndarray[n, 4] float64
        Patch rectangles ``(x, y, w, h)`` inside ``[0, fw] x [0, fh]``, non-overlapping.
    fw, fh : float
        Size of the packed block (the features facet).
    matrix_row : ndarray[int32]
        Row of each member in the activation matrix (a permutation of ``range(n)``).
    density, score, score_greedy, score_random : float
        Packing density; sum of adjacent cosine similarities of the matrix order, of a greedy
        nearest-neighbour order and of a (seeded) random order.
    """

    members: np.ndarray
    rects: np.ndarray
    fw: float
    fh: float
    matrix_row: np.ndarray
    density: float
    score: float
    score_greedy: float
    score_random: float


def _greedy_score(S: np.ndarray) -> float:
    """Score of the greedy nearest-neighbour order starting at the first row."""
    n = S.shape[0]
    if n < 2:
        return 0.0
    free = np.ones(n, dtype=bool)
    cur, total = 0, 0.0
    free[0] = False
    for _ in range(n - 1):
        row = np.where(free, S[cur], -np.inf)
        nxt = int(np.argmax(row))
        total += float(S[cur, nxt])
        free[nxt] = False
        cur = nxt
    return total


def _random_score(S: np.ndarray, members: np.ndarray) -> float:
    seed = int(members[0]) * 7919 + members.size if members.size else 0
    return path_score(S, np.random.default_rng(seed).permutation(S.shape[0]))


def _scores(S: np.ndarray, members: np.ndarray) -> tuple[float, float]:
    return _greedy_score(S), _random_score(S, members)


def cluster_content(
    data: UnitData,
    members: np.ndarray,
    options: LayoutOptions,
    timings: dict[str, float] | None = None,
    exact_max: int | None = None,
) -> ClusterContent:
    """Pack and order one cluster from scratch.

    Parameters
    ----------
    data : UnitData
        The unit's normalised statistics.
    members : ndarray[int]
        Neuron indices of the cluster.
    options : LayoutOptions
        Patch sizes, aspect, Held–Karp / 2-opt limits.
    timings : dict or None
        Seconds spent packing (``"pack"``) and ordering (``"order"``) are added here.
    exact_max : int or None
        Overrides ``options.exact_max`` (interactive edits use a smaller one).
    """
    return cluster_contents(data, [members], options, timings, exact_max)[0]


def cluster_contents(
    data: UnitData,
    members_of: list[np.ndarray],
    options: LayoutOptions,
    timings: dict[str, float] | None = None,
    exact_max: int | None = None,
) -> list[ClusterContent]:
    """:func:`cluster_content` of several clusters of one unit (their matrix orders in one
    batch: :func:`~cnnvis_gl.analysis.ordering.order_rows_many`; the same contents)."""
    members_of = [np.sort(np.asarray(m, dtype=np.int64)) for m in members_of]
    t0 = time.perf_counter()
    packs = [
        pack_cluster(
            data.A[m],
            data.importance[m],
            min_size=options.patch_min,
            max_size=options.patch_max,
            aspect=options.aspect,
            seed=options.seed,
            importance_range=(0.0, 1.0),
        )
        for m in members_of
    ]
    t1 = time.perf_counter()
    Ss = [np.asarray(cosine_similarity(data.A[m])) for m in members_of]
    exact = options.exact_max if exact_max is None else exact_max
    refine = [m.size <= options.refine_max for m in members_of]
    orders = order_rows_many(Ss, exact_max=exact, refine=refine)
    t2 = time.perf_counter()
    out = []
    for m, p, S, order in zip(members_of, packs, Ss, orders, strict=True):
        matrix_row = np.empty(m.size, dtype=np.int32)
        matrix_row[order] = np.arange(m.size, dtype=np.int32)
        greedy, rand = _scores(S, m)
        out.append(
            ClusterContent(
                members=m,
                rects=np.asarray(p.rects, dtype=np.float64),
                fw=float(p.width),
                fh=float(p.height),
                matrix_row=matrix_row,
                density=float(p.density),
                score=path_score(S, order),
                score_greedy=greedy,
                score_random=rand,
            )
        )
    if timings is not None:
        timings["pack"] = timings.get("pack", 0.0) + t1 - t0
        timings["order"] = timings.get("order", 0.0) + t2 - t1
        timings["baselines"] = timings.get("baselines", 0.0) + time.perf_counter() - t2
    return out


def draft_content(data: UnitData, members: np.ndarray, options: LayoutOptions) -> ClusterContent:
    """A quick content (the draft layout of a big network, shown while the real one is made):
    the patches, sized by importance as :func:`cluster_content` sizes them, on shelves
    strongest first; the matrix rows by strongest class, then by response.  No similarity
    matrix, no ordering search: O(n log n)."""
    members = np.sort(np.asarray(members, dtype=np.int64))
    n = members.size
    sides = image_sides(data.importance[members], options.patch_min, options.patch_max, (0.0, 1.0))
    rects = np.zeros((n, 4), dtype=np.float64)
    width = float(np.sqrt((sides.astype(np.float64) ** 2).sum() * options.aspect)) if n else 0.0
    by_size = np.argsort(-sides, kind="stable")
    s_sorted = sides[by_size].astype(np.float64)
    ends = np.cumsum(s_sorted)  # (integer sides: exact)
    starts = [0]
    while starts[-1] < n:  # one shelf at a time: as many as fit the width (at least one)
        i = starts[-1]
        base = float(ends[i - 1]) if i else 0.0
        starts.append(max(int(np.searchsorted(ends, base + width, side="right")), i + 1))
    first = np.asarray(starts[:-1], dtype=np.int64)
    shelf = np.repeat(np.arange(len(first)), np.diff(starts))
    before = np.where(first > 0, ends[np.maximum(first - 1, 0)], 0.0)  # the sides left of each shelf
    tops = np.concatenate([[0.0], np.cumsum(s_sorted[first])[:-1]])  # a shelf: its tallest (the first)
    rects[by_size, 0] = ends - s_sorted - before[shelf]
    rects[by_size, 1] = tops[shelf]
    rects[by_size, 2] = rects[by_size, 3] = s_sorted
    A = data.A[members]
    order = np.lexsort((-A.max(axis=1), A.argmax(axis=1))) if n and A.shape[1] else np.arange(n)
    matrix_row = np.empty(n, dtype=np.int32)
    matrix_row[order] = np.arange(n, dtype=np.int32)
    fw = float((rects[:, 0] + rects[:, 2]).max()) if n else 0.0
    fh = float((rects[:, 1] + rects[:, 3]).max()) if n else 0.0
    density = float((rects[:, 2] * rects[:, 3]).sum() / max(fw * fh, _EPS)) if n else 0.0
    return ClusterContent(members, rects, fw, fh, matrix_row, density, 0.0, 0.0, 0.0)


def draft_labels(A: np.ndarray, most: int) -> np.ndarray:
    """Quick cluster labels (the draft layout): each neuron by its strongest class, the
    ``most - 1`` largest such groups kept and the rest pooled into one."""
    n = A.shape[0]
    if n == 0 or A.shape[1] == 0:
        return np.zeros(n, dtype=np.int64)
    top = A.argmax(axis=1)
    counts = np.bincount(top, minlength=A.shape[1])
    keep = np.argsort(-counts, kind="stable")[: max(most - 1, 1)]
    keep = keep[counts[keep] > 0]
    label = np.full(A.shape[1], len(keep), dtype=np.int64)
    label[keep] = np.arange(len(keep))
    out = label[top]
    _, canon = np.unique(out, return_inverse=True)
    return canon.ravel().astype(np.int64)


def _finish(
    data: UnitData, members: np.ndarray, rects: np.ndarray, order: np.ndarray
) -> ClusterContent:
    """Content from placed rects and a matrix order (translates the block to the origin)."""
    n = members.size
    if n:
        rects = rects.copy()
        rects[:, 0] -= rects[:, 0].min()
        rects[:, 1] -= rects[:, 1].min()
        fw = float((rects[:, 0] + rects[:, 2]).max())
        fh = float((rects[:, 1] + rects[:, 3]).max())
        density = float((rects[:, 2] * rects[:, 3]).sum() / max(fw * fh, _EPS))
    else:
        fw = fh = density = 0.0
    matrix_row = np.empty(n, dtype=np.int32)
    matrix_row[order] = np.arange(n, dtype=np.int32)
    X = data.unit_vectors[members]
    S = np.clip(X @ X.T, -1.0, 1.0)
    greedy, rand = _scores(S, members)
    return ClusterContent(
        members, rects, fw, fh, matrix_row, density, path_score(S, order), greedy, rand
    )


def remove_neuron(data: UnitData, content: ClusterContent, neuron: int) -> ClusterContent:
    """The content without ``neuron``: its patch leaves a hole, its matrix row is spliced out."""
    i = int(np.searchsorted(content.members, neuron))
    if i >= content.members.size or content.members[i] != neuron:
        raise KeyError(f"neuron {neuron} is not in the cluster")
    keep = np.ones(content.members.size, dtype=bool)
    keep[i] = False
    members = content.members[keep]
    order = np.argsort(content.matrix_row, kind="stable")  # member positions, matrix top-down
    order = order[order != i]
    order = order - (order > i)  # positions in the new member array
    return _finish(data, members, content.rects[keep], order)


def _place(rects: np.ndarray, side: float, near: np.ndarray | None) -> tuple[float, float]:
    """Bottom-left-fill position for a square of ``side`` among ``rects`` (no overlap).

    Candidates are the corners right of and below every rectangle (and the origin).  Among the
    free ones, those that keep the bounding box win, nearest to ``near`` (a point: the most
    similar neuron's patch); otherwise the smallest bounding box.
    """
    if rects.shape[0] == 0:
        return 0.0, 0.0
    x, y, w, h = rects.T
    cand = np.concatenate(
        [
            np.zeros((1, 2)),
            np.stack([x + w, y], axis=1),
            np.stack([x, y + h], axis=1),
            np.stack([x + w, np.zeros_like(y)], axis=1),
            np.stack([np.zeros_like(x), y + h], axis=1),
        ]
    )
    cx, cy = cand[:, :1], cand[:, 1:]
    hit = (
        (cx < (x + w) - _EPS)
        & (x < cx + side - _EPS)
        & (cy < (y + h) - _EPS)
        & (y < cy + side - _EPS)
    )
    free = ~hit.any(axis=1)
    W, H = float((x + w).max()), float((y + h).max())
    cand = cand[free]
    area = np.maximum(W, cand[:, 0] + side) * np.maximum(H, cand[:, 1] + side)
    inside = area <= W * H + _EPS
    if inside.any() and near is not None:
        c = cand[inside]
        d = ((c + side / 2 - near) ** 2).sum(axis=1)
        k = np.lexsort((c[:, 0], c[:, 1], d))[0]
        return float(c[k, 0]), float(c[k, 1])
    k = np.lexsort((cand[:, 0], cand[:, 1], area))[0]
    return float(cand[k, 0]), float(cand[k, 1])


def insert_neuron(
    data: UnitData, content: ClusterContent, neuron: int, options: LayoutOptions
) -> ClusterContent:
    """The content with ``neuron`` added: its patch fills a free spot (next to its most similar
    member when the block need not grow), its matrix row goes where it adds the most similarity.
    """
    members = content.members
    if np.any(members == neuron):
        raise KeyError(f"neuron {neuron} is already in the cluster")
    side = float(
        image_sides(data.importance[[neuron]], options.patch_min, options.patch_max, (0.0, 1.0))[0]
    )
    X = data.unit_vectors[members]
    sim = X @ data.unit_vectors[neuron]
    near = None
    if members.size:
        j = int(np.argmax(sim))
        near = content.rects[j, :2] + content.rects[j, 2:] / 2
    px, py = _place(content.rects, side, near)
    # matrix order: best insertion position (ends count one junction)
    order = np.argsort(content.matrix_row, kind="stable")
    s = sim[order]
    n = order.size
    if n == 0:
        pos = 0
    else:
        X_o = X[order]
        adj = (X_o[:-1] * X_o[1:]).sum(axis=1) if n > 1 else np.zeros(0)
        gains = np.concatenate([[s[0]], s[:-1] + s[1:] - adj, [s[-1]]])
        pos = int(np.argmax(gains))
    i = int(np.searchsorted(members, neuron))
    new_members = np.insert(members, i, neuron)
    rects = np.insert(content.rects, i, [px, py, side, side], axis=0)
    order = order + (order >= i)
    order = np.insert(order, pos, i)
    return _finish(data, new_members, rects, order)
