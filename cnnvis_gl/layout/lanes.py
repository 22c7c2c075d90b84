"""Parallel branches side by side (issue 11): an expanded group's layers in bands and lanes.

Expanded, a group shows one row per unit.  Its units form a small DAG (the snapshot's unit
weights say which unit feeds which): an Inception module's branches, a dual-path block's two
paths, the gate branch of a squeeze-and-excitation block.  Each unit goes to a *level* (one more
than the deepest unit of the group feeding it) and the units of a level share a *band*, side by
side in *lanes*: a unit continues the lane of the unit feeding it, a branch that starts at the
group's input opens a lane.  A level holding a single unit (a chain, a concatenation joining
the branches) is centred, as rows always were, so a chain of layers keeps its look.

Edges: every row gets its edges from the rows feeding it (:attr:`Bands.sources`).  An edge that
skips bands is drawn only when its source's lane is empty in every band in between (a short
branch's output going down its own lane to the join); others (a residual block's shortcut
into its last layer) are left out, as they always were.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .scene import ROW_LAYER

if TYPE_CHECKING:
    from ..run.snapshot import Snapshot
    from .edges import RowSpec

__all__ = ["Bands", "bands", "group_units"]

_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def unit_sources(snapshot: Snapshot) -> dict[str, list[str]]:
    """``{unit: [units feeding it]}`` from the snapshot's unit weights (cached per snapshot)."""
    hit = _SOURCES.get(snapshot)
    if hit is None:
        hit = {}
        for key in snapshot.keys():
            parts = key.split("/")
            if len(parts) == 4 and parts[0] == "weights" and parts[1] == "unit":
                hit.setdefault(parts[2], []).append(parts[3])
        _SOURCES[snapshot] = hit
    return hit


def group_units(snapshot: Snapshot, gi: int) -> list[tuple[str, int, int]]:
    """The units of group ``gi`` as ``(unit, level, lane)`` in row order (level, then lane);
    lane ``-1``: alone in its level, centred."""
    g = snapshot.graph.groups[gi]
    units = list(g.units)
    src = unit_sources(snapshot)
    inside = {u: [v for v in src.get(u, []) if v in units and v != u] for u in units}
    level: dict[str, int] = {}

    def depth(u: str) -> int:  # (the units' order is not always the DAG's: a gated unit
        if u not in level:  # is ordered at its product, after its gate)
            level[u] = 1 + max((depth(v) for v in inside[u]), default=-1)
        return level[u]

    for u in units:
        depth(u)
    ancestors, todo = {g.unit}, [g.unit]
    while todo:
        for v in inside[todo.pop()]:
            if v not in ancestors:
                ancestors.add(v)
                todo.append(v)
    per_level: dict[int, list[str]] = {}
    for u in units:
        per_level.setdefault(level[u], []).append(u)
    side = any(u not in ancestors for u in units)  # a gate branch: every unit in a lane
    lane: dict[str, int] = {}
    last: dict[int, int] = {}  # lane → deepest level holding it
    out: list[tuple[str, int, int]] = []
    for lv in sorted(per_level):
        members = sorted(per_level[lv], key=lambda u: (u not in ancestors, units.index(u)))
        if len(members) == 1 and not side and (len(inside[members[0]]) > 1 or not last):
            lane[members[0]] = -1
            out.append((members[0], lv, -1))
            continue
        for u in members:
            k = next(
                (
                    lane[v]
                    for v in inside[u]
                    if lane.get(v, -1) >= 0
                    and last[lane[v]] < lv
                    and (v in ancestors) == (u in ancestors)  # a side branch opens its own lane
                ),
                -1,
            )
            if k < 0:
                k = len(last)
            lane[u], last[k] = k, lv
            out.append((u, lv, k))
    return out


@dataclass(frozen=True)
class Bands:
    """Where the layer rows go relative to each other.

    ``band[i]``: the band of row ``i`` (rows of a band sit side by side; non-decreasing);
    ``lane[i]``: its lane in its group's lanes (``-1``: centred, alone in its band);
    ``sources[i]``: the rows whose edges come into row ``i``.
    """

    band: np.ndarray
    lane: np.ndarray
    sources: list[list[int]]

    @property
    def count(self) -> int:
        return int(self.band.max()) + 1 if len(self.band) else 0

    def breakable(self) -> np.ndarray:
        """``[R]`` bool: whether a column may end before each row — a chain link (both rows
        alone in their bands, no edge but from the row just above crossing the cut)."""
        n = len(self.band)
        ok = np.zeros(n, dtype=bool)
        ok[1:] = (self.band[1:] != self.band[:-1]) & (self.lane[1:] < 0) & (self.lane[:-1] < 0)
        crossed = np.zeros(n + 1, dtype=np.int64)  # cuts before s + 1 … j are crossed by (s, j)
        for s, j in self.links():
            if j > s + 1:  # (the link to the next row is what a cut continues)
                crossed[s + 1] += 1
                crossed[j + 1] -= 1
        return ok & (np.cumsum(crossed)[:n] == 0)

    def links(self) -> list[tuple[int, int]]:
        """``(upper, lower)`` row pairs joined by edges."""
        return [(s, i) for i, ss in enumerate(self.sources) for s in ss]


def bands(snapshot: Snapshot, rows: list[RowSpec]) -> Bands:
    """Bands, lanes and edge sources of ``rows`` (from :func:`~cnnvis_gl.layout.state.row_specs`,
    an expanded group's rows in :func:`group_units` order)."""
    n = len(rows)
    band = np.zeros(n, dtype=np.int64)
    lane = np.full(n, -1, dtype=np.int64)
    sources: list[list[int]] = [[] for _ in range(n)]
    by_unit = {r.unit: i for i, r in enumerate(rows)}
    group_row: dict[int, int] = {}  # group → the row holding its neurons
    for i, r in enumerate(rows):
        if r.unit == snapshot.graph.groups[r.group].unit:
            group_row[r.group] = i
    src = unit_sources(snapshot)
    i, b = 0, 0
    while i < n:
        r = rows[i]
        if r.kind != ROW_LAYER:
            band[i] = b
            if i > 0:
                prev = rows[i - 1]
                s = group_row.get(prev.group, i - 1) if prev.kind == ROW_LAYER else i - 1
                sources[i] = [s] if _clear(band, lane, s, i) else []
            i, b = i + 1, b + 1
            continue
        j = i
        while j < n and rows[j].kind == ROW_LAYER and rows[j].group == r.group:
            j += 1
        base = b
        for k, (_, lv, ln) in enumerate(group_units(snapshot, r.group)[: j - i]):
            band[i + k], lane[i + k] = base + lv, ln
            b = max(b, base + lv + 1)
        for k in range(i, j):
            feeding = [by_unit[v] for v in src.get(rows[k].unit, []) if v in by_unit]
            sources[k] = [s for s in feeding if s < k and _clear(band, lane, s, k)]
        i = j
    return Bands(band, lane, sources)


def _clear(band: np.ndarray, lane: np.ndarray, s: int, t: int) -> bool:
    """Whether an edge from row ``s`` down to row ``t`` meets no row: the bands are adjacent,
    or ``s``'s lane is empty in every band in between."""
    if band[t] - band[s] <= 1:
        return band[t] > band[s]
    between = (band > band[s]) & (band < band[t])
    return lane[s] >= 0 and not np.any(between & ((lane == lane[s]) | (lane < 0)))


def lane_offsets(
    b: Bands, groups: np.ndarray, lefts: np.ndarray, rights: np.ndarray, gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where the lanes put each row: ``(dx, spans)`` — ``dx[i]`` added to row ``i``'s x (rows
    are centred on ``x = 0``; a centred row moves by 0), ``spans[i]`` the ``(x0, x1)`` of its
    lane after the move (its own extent for a centred row).  The lanes of a group are columns
    as wide as their widest row, ``gap`` apart, the group's lanes centred on ``x = 0``.

    ``groups[i]``: row ``i``'s group; ``lefts``, ``rights``: each row's extent, labels included.
    """
    dx = np.zeros(len(lefts))
    spans = np.stack([lefts, rights], 1).astype(np.float64)
    for g in np.unique(groups[b.lane >= 0]):
        rows = np.flatnonzero((groups == g) & (b.lane >= 0))
        n = int(b.lane[rows].max()) + 1
        width = np.zeros(n)
        for i in rows:
            width[b.lane[i]] = max(width[b.lane[i]], rights[i] - lefts[i])
        x0 = -(width.sum() + gap * (n - 1)) / 2 + np.concatenate([[0.0], np.cumsum(width + gap)[:-1]])
        for i in rows:
            k = int(b.lane[i])
            dx[i] = x0[k] + (width[k] - (rights[i] - lefts[i])) / 2 - lefts[i]
            spans[i] = (x0[k], x0[k] + width[k])
    return dx, spans
