"""Row ordering that maximises the sum of the similarities of adjacent rows (SPEC §5.2).

The objective is a maximum-weight Hamiltonian *path* with free endpoints.

* ``n <= exact_max``: exact Held–Karp dynamic programming, O(n² 2ⁿ), vectorised over all subsets
  of one size at a time, on the input's array backend (NumPy or CuPy).
* larger ``n``: hierarchical, on the host.  An average-linkage dendrogram on cosine distance
  ``1 - S`` is flattened into a tree of at most ``branching`` children per node (at each node
  the child with the largest merge height is expanded until there are ``branching`` children:
  this dissolves the long chains average linkage builds on curve-like data).  Bottom-up, the
  children's sub-orders are concatenated in the order *and* orientation (flip) that maximise
  the similarity across the junctions, exactly, by a Held–Karp over (child, orientation)
  states.  For a binary node this is the SPEC's "pick the child order and flips that maximise
  the junction similarity"; for a wider node it is the exact optimum of the same objective.
  A final 2-opt pass (segment reversals, endpoints free, neighbour lists) removes the
  remaining local defects.

Measured choices (sum of adjacent *distances* 1 - S, lower is better, n = 512; blocks / relu /
curve data): ordering wide nodes by centroid similarity, then flipping (the SPEC's wording)
gave 39.0 / 44.0 / 1.30 before 2-opt, the junction DP above 36.5 / 39.7 / 0.94; after 2-opt
both ~33.2 / 36.9 / 0.80 (a greedy nearest-neighbour chain: 38.6 / 40.6 / 2.52; scipy's
optimal leaf ordering 38.3 / 52.3 / 1.14).  Branching 8 was the best of 2, 4, 8, 12 for time
and quality.  2-opt restricted to the 32 most similar rows per row matched full 2-opt on all
of these and runs in O(n k) per round (n = 2048: 0.5 s instead of 40 s).

Discrete results (permutations) are always NumPy ``int64`` arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from cnnvis_gl.analysis.similarity import cosine_similarity
from cnnvis_gl.xp import get_xp, to_numpy

__all__ = ["order_rows", "order_columns", "path_score"]

#: Children per node of the flattened dendrogram (the junction DP is O(b² 2^b) per node).
DEFAULT_BRANCHING = 8
#: Upper bound on 2-opt rounds, per row (they stop much earlier: when no move gains).
MAX_2OPT_ROUNDS_PER_ROW = 4
#: 2-opt only scores moves that join a row to one of its most similar rows.
TWO_OPT_NEIGHBOURS = 32
_TOL = 1e-12


def path_score(similarity: Any, order: Any) -> float:
    """Sum of ``similarity[order[i], order[i + 1]]`` over consecutive positions.

    Parameters
    ----------
    similarity : ndarray[n, n]
    order : sequence of int
        A permutation (or any index sequence) of the rows.

    Returns
    -------
    float
        The objective that :func:`order_rows` maximises; 0.0 for fewer than two rows.
    """
    S = similarity
    xp = get_xp(S)
    o = np.asarray(to_numpy(order), dtype=np.int64)
    if o.shape[0] < 2:
        return 0.0
    if xp is not np:
        o = xp.asarray(o)
    return float(S[o[:-1], o[1:]].sum())


def order_rows(
    similarity: Any,
    exact_max: int = 16,
    *,
    branching: int = DEFAULT_BRANCHING,
    refine: bool = True,
) -> np.ndarray:
    """Permutation of the rows maximising the sum of adjacent similarities.

    Parameters
    ----------
    similarity : ndarray[n, n]
        Pairwise similarity (NumPy or CuPy), normally symmetric cosine similarity.  Held–Karp
        honours an asymmetric matrix (edge i -> j scores ``S[i, j]``); the hierarchical method
        uses ``(S + S.T) / 2``.
    exact_max : int
        Largest ``n`` solved exactly by Held–Karp (time and memory grow as n² 2ⁿ: 16 rows take
        ~0.15 s and 30 MiB, 20 rows ~4 s and 0.4 GiB).
    branching : int
        Larger ``n``: children per node of the flattened dendrogram (≤ ``exact_max``).
    refine : bool
        Larger ``n``: finish with 2-opt segment reversals.

    Returns
    -------
    ndarray[int64]
        A permutation of ``range(n)``; deterministic.  When the matrix is symmetric the path is
        oriented so that ``order[0] < order[-1]``.
    """
    S = similarity
    xp = get_xp(S)
    S = xp.asarray(S, dtype=xp.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"similarity must be square, got shape {S.shape}")
    n = int(S.shape[0])
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    symmetric = bool(xp.allclose(S, S.T))
    if n <= max(exact_max, 2):
        order = _held_karp(S)
    else:
        Sh = S if symmetric else 0.5 * (S + S.T)
        order = _hierarchical(Sh, max(2, min(branching, exact_max)))
        if refine:
            order = _two_opt(Sh, order)
    if symmetric and order[0] > order[-1]:
        order = order[::-1].copy()
    return order


def order_columns(A: Any, exact_max: int = 16) -> np.ndarray:
    """One global column (class) order: :func:`order_rows` on the cosine similarity of the columns.

    Parameters
    ----------
    A : ndarray[n_rows, n_cols]
        E.g. the class-mean activations ``A[neuron, class]`` of the last hidden group.

    Returns
    -------
    ndarray[int64]
        A permutation of ``range(n_cols)``.
    """
    xp = get_xp(A)
    A = xp.asarray(A, dtype=xp.float64)
    if A.ndim != 2:
        raise ValueError(f"order_columns expects a 2-D array, got shape {A.shape}")
    return order_rows(cosine_similarity(A.T), exact_max=exact_max)


# --------------------------------------------------------------------------- Held–Karp


def _dp_steps(groups: tuple[int, ...]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The Held–Karp steps over the subsets of groups, one per subset size 2, 3, …: every
    (subset, end state of a group in it) as ``(subset, end, subset without the end's group)``."""
    bits = np.left_shift(1, np.asarray(groups, dtype=np.int64))
    g = max(groups) + 1
    masks = np.arange(1 << g, dtype=np.int64)
    pop = np.zeros(masks.shape, dtype=np.int64)
    for b in range(g):
        pop += (masks >> b) & 1
    for size in range(2, g + 1):
        ms = masks[pop == size]
        i, to = np.nonzero((ms[:, None] & bits[None, :]) != 0)
        yield ms[i], to, ms[i] ^ bits[to]


#: Groups up to which the steps are kept for the next call (16 groups of one state: 12 MiB).
_CACHED_GROUPS = 16
_device_steps: dict[tuple[tuple[int, ...], int], Any] = {}


@functools.lru_cache(maxsize=64)
def _cached_steps(groups: tuple[int, ...]) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    return tuple(_dp_steps(groups))


def _steps_on(groups: tuple[int, ...], xp: Any) -> Any:
    if max(groups) >= _CACHED_GROUPS:  # one subset size at a time
        return (tuple(xp.asarray(a) for a in st) for st in _dp_steps(groups))
    if xp is np:
        return _cached_steps(groups)
    key = (groups, id(xp))
    if key not in _device_steps:
        _device_steps[key] = tuple(tuple(xp.asarray(a) for a in st) for st in _cached_steps(groups))
    return _device_steps[key]


def _held_karp_groups(W: Any, groups: np.ndarray) -> list[int]:
    """Max-weight path visiting every *group* once, through exactly one state per group.

    ``W[a, b]`` is the weight of going from state ``a`` to state ``b``; ``groups[k]`` the group of
    state ``k`` (plain Held–Karp: ``groups = arange(n)``).  Subsets are over groups; the DP is
    vectorised over all subsets of one size and all their end states at once.  Returns the
    state sequence.
    """
    xp = get_xp(W)
    K = int(W.shape[0])
    g = int(groups.max()) + 1
    full = (1 << g) - 1
    dp = xp.full((1 << g, K), -xp.inf, dtype=xp.float64)
    parent = xp.full((1 << g, K), -1, dtype=xp.int16)
    dp[xp.asarray(np.left_shift(1, groups).astype(np.int64)), xp.arange(K)] = 0.0
    WT = xp.asarray(W, dtype=xp.float64).T  # [to, from]
    chunk = max(1, (1 << 20) // K)  # steps at a time: [chunk, K] floats at most
    for ms, tos, befores in _steps_on(tuple(groups.tolist()), xp):
        for a in range(0, len(ms), chunk):
            m, to = ms[a : a + chunk], tos[a : a + chunk]
            cand = dp[befores[a : a + chunk]] + WT[to]  # [step, from]: any state of the rest
            dp[m, to] = cand.max(axis=1)
            parent[m, to] = cand.argmax(axis=1).astype(xp.int16)
    last = to_numpy(dp[full])
    par = to_numpy(parent)
    k = int(np.argmax(last))
    seq = [k]
    mask = full
    while True:
        p = int(par[mask, k])
        mask ^= 1 << int(groups[k])
        if p < 0 or mask == 0:
            break
        seq.append(p)
        k = p
    seq.reverse()
    return seq


def _held_karp(S: Any) -> np.ndarray:
    n = int(S.shape[0])
    if n == 2:
        return np.array([0, 1] if float(S[0, 1]) >= float(S[1, 0]) else [1, 0], dtype=np.int64)
    seq = _held_karp_groups(S, np.arange(n))
    return np.asarray(seq, dtype=np.int64)


# --------------------------------------------------------------------------- hierarchical


def _flattened_tree(Z: np.ndarray, n: int, branching: int) -> dict[int, list[int]]:
    """Children (≤ ``branching``) of every kept internal node of the dendrogram ``Z``."""
    left = Z[:, 0].astype(np.int64)
    right = Z[:, 1].astype(np.int64)
    height = Z[:, 2]
    tree: dict[int, list[int]] = {}
    stack = [2 * n - 2]
    while stack:
        v = stack.pop()
        kids = [int(left[v - n]), int(right[v - n])]
        while len(kids) < branching:
            internal = [c for c in kids if c >= n]
            if not internal:
                break
            # Expand the loosest child (largest merge height; ties: the later merge).
            u = max(internal, key=lambda c: (height[c - n], c))
            i = kids.index(u)
            kids[i : i + 1] = [int(left[u - n]), int(right[u - n])]
        tree[v] = kids
        stack.extend(c for c in kids if c >= n)
    return tree


def _join_children(S: Any, seqs: list[np.ndarray]) -> np.ndarray:
    """Concatenate sub-orders in the order and orientations maximising the junction similarity."""
    m = len(seqs)
    if m == 1:
        return seqs[0]
    xp = get_xp(S)
    # State 2c: child c as is (enter at first, leave at last); 2c+1: reversed.
    enter = np.array([e for s in seqs for e in (s[0], s[-1])], dtype=np.int64)
    leave = np.array([e for s in seqs for e in (s[-1], s[0])], dtype=np.int64)
    W = S[xp.asarray(leave)][:, xp.asarray(enter)]
    groups = np.repeat(np.arange(m), 2)
    states = _held_karp_groups(W, groups)
    parts = [seqs[k // 2] if k % 2 == 0 else seqs[k // 2][::-1] for k in states]
    return np.concatenate(parts)


def _hierarchical(S: Any, branching: int) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    n = int(S.shape[0])
    # The dendrogram and the small per-node DPs run on the host (thousands of tiny steps would
    # be launch-bound on a GPU); only the O(n²) 2-opt afterwards uses the input's backend.
    Sh = to_numpy(S)
    D = np.clip(1.0 - Sh, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    D = 0.5 * (D + D.T)
    Z = linkage(squareform(D, checks=False), method="average")
    tree = _flattened_tree(Z, n, branching)
    # Bottom-up: every child of a kept node is a leaf or a kept node with a smaller id.
    orders: dict[int, np.ndarray] = {}
    for v in sorted(tree):
        seqs = [orders.pop(c) if c >= n else np.array([c], dtype=np.int64) for c in tree[v]]
        orders[v] = _join_children(Sh, seqs)
    return orders[2 * n - 2]


def _two_opt(S: Any, order: np.ndarray, k: int = TWO_OPT_NEIGHBOURS) -> np.ndarray:
    """2-opt with neighbour lists on an open path (symmetric ``S``), on the host.

    Reversing ``path[p+1 .. q]`` swaps edges (p, p+1), (q, q+1) for (p, q), (p+1, q+1).  Only
    moves whose new edges join a row to one of its ``k`` most similar rows are scored (O(n k)
    per round instead of O(n²); on the benchmarks in the module docstring this finds the same
    optimum as scoring every move).  A virtual node of similarity 0 before the first and after
    the last row lets the endpoints move.  Each round applies the best moves greedily by gain
    as long as their edge ranges are disjoint (their gains then add up).
    """
    S = np.asarray(to_numpy(S), dtype=np.float64)
    n = S.shape[0]
    K = min(k, n - 1)
    if K < 1:
        return order
    Sd = S.copy()
    np.fill_diagonal(Sd, -np.inf)
    nbr = np.argpartition(-Sd, K - 1, axis=1)[:, :K]
    del Sd
    Sp = np.zeros((n + 1, n + 1))
    Sp[:n, :n] = S
    path = np.concatenate([[n], order, [n]]).astype(np.int64)
    N = n + 2
    src, dst = np.repeat(np.arange(n), K), nbr.ravel()
    s_fwd, s_bwd = S[src, dst], S[dst, src]
    pos = np.empty(n + 1, dtype=np.int64)
    for _ in range(MAX_2OPT_ROUNDS_PER_ROW * n):
        pos[path[1:-1]] = np.arange(1, N - 1)
        p, q = pos[src], pos[dst]
        fwd = p < q
        lo, hi = np.where(fwd, p, q), np.where(fwd, q, p)
        new = np.where(fwd, s_fwd, s_bwd)  # S[path[lo], path[hi]]: the pair itself
        w = Sp[path[:-1], path[1:]]
        # The pair as the move's first new edge (reverse lo+1 .. hi), or as its second one
        # (reverse lo .. hi-1).
        g1 = new + Sp[path[lo + 1], path[hi + 1]] - w[lo] - w[hi]
        g2 = Sp[path[lo - 1], path[hi - 1]] + new - w[lo - 1] - w[hi - 1]
        good1, good2 = g1 > _TOL, g2 > _TOL
        if not (good1.any() or good2.any()):
            break
        lo = np.concatenate([lo[good1], lo[good2] - 1])
        hi = np.concatenate([hi[good1], hi[good2] - 1])
        gain = np.concatenate([g1[good1], g2[good2]])
        by_gain = np.argsort(-gain, kind="stable")
        lo, hi = lo[by_gain], hi[by_gain]
        while lo.size:  # the best move left; the moves sharing an edge with it are dropped
            a, b = int(lo[0]), int(hi[0])
            path[a + 1 : b + 1] = path[a + 1 : b + 1][::-1].copy()
            apart = (hi < a) | (lo > b)
            lo, hi = lo[apart], hi[apart]
    return np.asarray(path[1:-1], dtype=np.int64)
