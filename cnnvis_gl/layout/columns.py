"""Wrapping a long chain of rows into columns that fill a view (issue 11's screen-filling layout).

A deep network laid out one row per group is a tall thin column: fitted to a 16:10 screen it
covers a fifth of the width and every cluster is a few pixels tall.  :func:`plan_columns` cuts
the chain of layer rows into contiguous columns read top-to-bottom, left-to-right, choosing the
number of columns that lets the whole network be drawn largest in a view of the given aspect
(width / height).  A network that a single column already shows well keeps one column (the cut
must enlarge the fitted picture by ``min_gain``, and the chain have ``min_rows`` rows), so small
networks keep their look.

Where the chain continues in the next column, the in-between row of that pair of rows moves to
the top of the next column (its edges start at the upper row's clusters' x positions, mapped
into the new column), and ``continue_height`` of room is kept under the last row of a column
for a "continues" label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ColumnPlan", "continued_x", "plan_columns"]


@dataclass(frozen=True)
class ColumnPlan:
    """Where every layer row goes.

    ``column[i]``, ``dx[i]`` (added to the row's x, rows being centred on ``x = 0``) and
    ``y[i]`` (top) of layer row ``i``; ``between_y[i]`` the top of the in-between row before
    row ``i + 1`` (at the top of row ``i + 1``'s column when ``i + 1`` starts a column);
    ``spans[c]`` the ``(x0, x1)`` of column ``c``; ``height`` of the tallest column.
    """

    column: np.ndarray
    dx: np.ndarray
    y: np.ndarray
    between_y: np.ndarray
    spans: list[tuple[float, float]]
    height: float

    @property
    def columns(self) -> int:
        return len(self.spans)

    def continued_ports(self, x: np.ndarray, i: int, pad: float = 24.0) -> np.ndarray:
        """The x of upper row ``i - 1``'s ports ``x`` where its edges restart at the top of
        row ``i``'s column: shifted with the column, squeezed into the column if wider."""
        return continued_x(x, self.dx[i] - self.dx[i - 1], self.spans[int(self.column[i])], pad)

    def starts_column(self, i: int) -> bool:
        """Whether layer row ``i`` (> 0) is the first row of a column after the first."""
        return i > 0 and int(self.column[i]) != int(self.column[i - 1])


def continued_x(
    x: np.ndarray, shift: float, span: tuple[float, float], pad: float = 24.0
) -> np.ndarray:
    """Ports ``x`` of a column's last row moved to the next column (``shift``) where their
    edges restart, squeezed into that column's ``span`` (less ``pad`` each side) if wider."""
    x = np.asarray(x, dtype=np.float64) + shift
    lo, hi = span[0] + pad, span[1] - pad
    if len(x) and (x.min() < lo or x.max() > hi) and hi > lo:
        a, b = float(x.min()), float(x.max())
        mid = (lo + hi) / 2
        k = min(1.0, (hi - lo) / max(b - a, 1e-9))
        x = mid + (x - (a + b) / 2) * k
    return x


def _greedy(
    heights: np.ndarray, between: float, extra: float, limit: float, breakable: np.ndarray
) -> np.ndarray:
    """Column of each row, filling each column up to ``limit`` (a row taller than the limit
    gets a column of its own); a column ends only before a ``breakable`` row."""
    col = np.zeros(len(heights), dtype=np.int64)
    c, h = 0, float(heights[0]) if len(heights) else 0.0
    for i in range(1, len(heights)):
        add = between + float(heights[i])
        if h + add + extra > limit and breakable[i]:
            c, h = c + 1, between + float(heights[i])
        else:
            h += add
        col[i] = c
    if c > 0 and h < 0.35 * limit:  # a short last column joins the one before (balance)
        col[col == c] = c - 1
    return col


def _place(
    column: np.ndarray,
    heights: np.ndarray,
    lefts: np.ndarray,
    rights: np.ndarray,
    between: float,
    gap: float,
    extra: float,
) -> ColumnPlan:
    n = len(heights)
    dx = np.zeros(n)
    spans: list[tuple[float, float]] = []
    # every row i > 0 has an in-between row above it (the first row of a column too: the edges
    # continued from the previous column); a column restarts at 0
    step = np.asarray(heights, dtype=np.float64) + np.where(np.arange(n) > 0, between, 0.0)
    first = np.flatnonzero(np.r_[True, column[1:] != column[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.cumsum(step)
    base = np.repeat(np.r_[0.0, ends[first[1:] - 1]], np.diff(np.r_[first, n])) if n else ends
    y = ends - heights - base  # the row's top within its column
    between_y = (y - between)[1:] if n else np.zeros(0)
    height, x = 0.0, 0.0
    last = int(column.max()) if n else -1
    for c, (a, b) in enumerate(zip(first, np.r_[first[1:], n], strict=True)):
        lo, hi = float(lefts[a:b].min()), float(rights[a:b].max())
        shift = 0.0 if c == 0 else x - lo  # the first column keeps its x (a one-column plan moves nothing)
        dx[a:b] = shift
        spans.append((lo + shift, hi + shift))
        x = hi + shift + gap
        height = max(height, float(ends[b - 1] - base[b - 1]) + (extra if c < last else 0.0))
    return ColumnPlan(column, dx, y, between_y, spans, height)


def plan_columns(
    heights: np.ndarray,
    lefts: np.ndarray,
    rights: np.ndarray,
    between: float,
    view_aspect: float | None,
    gap: float = 120.0,
    continue_height: float = 40.0,
    min_gain: float = 1.25,
    min_rows: int = 8,
    tries: int = 64,
    breakable: np.ndarray | None = None,
) -> ColumnPlan:
    """Cut the chain of layer rows into columns filling a view of ``view_aspect``.

    Parameters
    ----------
    heights : ndarray[R]
        Height of every layer row, top to bottom.
    lefts, rights : ndarray[R]
        Each row's x extent, labels included (rows centred on ``x = 0``).
    between : float
        Height of an in-between row.
    view_aspect : float or None
        Width / height of the view to fill; ``None`` (or ``<= 0``): one column.
    gap : float
        Space between columns.
    continue_height : float
        Room under the last row of a column (for the "continues" label).
    min_gain : float
        Wrap only when it draws the network at least this many times larger than one column.
    min_rows : int
        …and only chains of at least this many rows (a network of a few rows reads as the
        paper draws it: one column).
    tries : int
        Column-height limits tried (geometric from the tallest row to the whole chain).
    breakable : ndarray[R] of bool, optional
        Where a column may end (before row ``i``); default everywhere.  Rows side by side
        (:mod:`~cnnvis_gl.layout.lanes`) come here as one band and are never cut apart.

    Returns
    -------
    ColumnPlan
    """
    heights = np.asarray(heights, dtype=np.float64)
    lefts, rights = np.asarray(lefts, np.float64), np.asarray(rights, np.float64)
    breakable = np.ones(len(heights), bool) if breakable is None else np.asarray(breakable, bool)
    single = _place(np.zeros(len(heights), np.int64), heights, lefts, rights, between, gap, 0.0)
    if not view_aspect or view_aspect <= 0 or len(heights) < max(min_rows, 2):
        return single

    def scale(p: ColumnPlan) -> float:  # fitted zoom for a view of height 1
        w = p.spans[-1][1] - p.spans[0][0]
        return min(view_aspect / max(w, 1e-9), 1.0 / max(p.height, 1e-9))

    best, best_s = single, scale(single)
    total, tallest = single.height, float(heights.max())
    if total <= tallest * 1.01:
        return single
    seen: set[bytes] = set()
    for limit in np.geomspace(tallest + continue_height, total, tries):
        col = _greedy(heights, between, continue_height, float(limit), breakable)
        key = col.tobytes()
        if key in seen or col.max() == 0:
            continue
        seen.add(key)
        p = _place(col, heights, lefts, rights, between, gap, continue_height)
        s = scale(p)
        if s > best_s:
            best, best_s = p, s
    return best if best_s >= min_gain * scale(single) else single
