"""The order of the clusters in each row: barycentre sweeps against weighted crossings (SPEC §6).

Functions of a :class:`~cnnvis_gl.layout.state.LayoutState` (its rows, cluster → cluster
weight matrices and row extents); they change ``state.order`` and ``state.ordering_stats``.
Weights are ``w²`` of every cluster pair, independent of the edge threshold, so changing the
threshold never moves a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .edges import RowSpec
    from .state import LayoutState

__all__ = ["barycentre_order", "crossing_cost", "total_crossings"]


def crossing_cost(state: LayoutState, upper: RowSpec, lower: RowSpec, xu: np.ndarray, xl: np.ndarray) -> float:
    """Sum of ``w²·w'²`` (``w`` scaled by the pair's largest ``|w|``) over crossing pairs of the
    cluster edges between two rows drawn straight (cluster centres ``xu``, ``xl``)."""
    M = state.cluster_matrix(upper, lower)
    if M is None or M.size == 0:
        return 0.0
    peak = float(np.abs(M).max())
    if peak <= 0:
        return 0.0
    w = ((M / peak) ** 2).ravel()  # scale-free: pairs of rows compare
    a = np.repeat(xu, len(xl))
    b = np.tile(xl, len(xu))
    total = 0.0
    for s in range(0, len(w), 512):  # chunks bound the pairwise temporaries
        cross = ((a[s : s + 512, None] - a[None, :]) * (b[s : s + 512, None] - b[None, :])) < 0
        total += float((w[s : s + 512, None] * w[None, :] * cross).sum())
    return 0.5 * total


def total_crossings(state: LayoutState, centres: dict[str, np.ndarray] | None = None) -> float:
    """Weighted crossings of all cluster → cluster edges drawn straight (:func:`crossing_cost`
    of every pair of rows; ``centres``: the clusters' x by row name, default from the state)."""
    if centres is None:
        centres = {}
        for r in state.rows:
            x, w = state.row_extent(r)
            centres[r.name] = x + w / 2
    total = 0.0
    for s, i in state.bands().links():
        up, lo = state.rows[s], state.rows[i]
        total += crossing_cost(state, up, lo, centres[up.name], centres[lo.name])
    return total


def _reorder(state: LayoutState, row: RowSpec, other: RowSpec, below: bool) -> None:
    """Sort a row's clusters by the barycentre of their edges to ``other`` (weights w²)."""
    M = state.cluster_matrix(row, other) if below else state.cluster_matrix(other, row)
    if M is None or M.size == 0:
        return
    W = M * M if below else (M * M).T  # [clusters of row, clusters of other]
    xo, wo = state.row_extent(other)
    co = xo + wo / 2
    x, w = state.row_extent(row)
    cur = x + w / 2
    s = W.sum(axis=1)
    bary = np.where(s > 0, (W @ co) / np.where(s > 0, s, 1.0), cur)
    perm = np.lexsort((np.arange(len(cur)), bary))
    state.order[row.name] = [state.order[row.name][i] for i in perm]


def barycentre_order(state: LayoutState, free: set[str] | None = None) -> None:
    """Order the clusters of the ``free`` rows (all by default) to reduce crossings.

    ``options.sweeps`` times: a downward sweep (each free row by the row feeding it — its upper
    neighbour in a chain), then an upward one (by the row it feeds); the order with the least weighted crossings wins.
    Deterministic (ties keep the order).  A draft (``options.draft``) takes one downward sweep
    without counting crossings (no stats): each row follows a row above it, ordered before it,
    so further downward sweeps would change nothing.
    """
    rows = state.rows
    free = {r.name for r in rows} if free is None else set(free)
    sources = state.bands().sources  # rows side by side: a row's neighbours are what feeds it
    down = [(i, ss[0]) for i, ss in enumerate(sources) if ss and rows[i].name in free]
    up = [(s, i) for i, ss in reversed(list(enumerate(sources))) for s in ss[:1] if rows[s].name in free]
    if state.options.draft:
        if state.options.sweeps > 0:  # one sweep: a second would find every row in order
            for i, s in down:
                _reorder(state, rows[i], rows[s], below=False)
        state.ordering_stats = {}
        return
    before = total_crossings(state)
    best, best_order = before, {k: list(v) for k, v in state.order.items()}
    for _ in range(max(0, state.options.sweeps)):
        for i, s in down:
            _reorder(state, rows[i], rows[s], below=False)
        for s, i in up:
            _reorder(state, rows[s], rows[i], below=True)
        cost = total_crossings(state)
        if cost < best - 1e-12 * max(best, 1.0):
            best, best_order = cost, {k: list(v) for k, v in state.order.items()}
    state.order = best_order
    state.ordering_stats = {"crossings_initial": before, "crossings_ordered": best}
