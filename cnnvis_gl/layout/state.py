"""The layout state: the current clustering of every row and caches of everything derived.

A :class:`LayoutState` holds what the user can edit (the clusters of each row and their order,
facets, options) and caches what is expensive and keyed by content (per-cluster packing and
matrix order by member set, cluster weight matrices by the two rows' clusterings, bundlings
by weights and positions).  :meth:`LayoutState.compose` turns the state into a
:class:`~cnnvis_gl.layout.scene.Scene`; after an edit only what the edit touched misses the
caches.  A state is owned by one thread at a time (the layout worker); the Scenes it hands out
are immutable.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..analysis import Bundling, cluster_neurons, cosine_similarity, order_columns, path_score
from ..analysis._blas import blas_threads
from . import parallel, roworder
from .content import (
    ClusterContent,
    UnitData,
    cluster_content,
    draft_content,
    draft_labels,
    unit_data,
)
from .edges import EdgePieces, RowSpec, cluster_weights, row_weights
from .hierarchy import outermost
from .ids import inherit_ids, unique_id
from .lanes import Bands, bands, group_units
from .options import LayoutOptions
from .scene import (
    ROW_GROUP,
    ROW_LAYER,
    ROW_STAGE,
    Scene,
)

if TYPE_CHECKING:  # torch-free at run time: the layout never needs torch
    from ..run.snapshot import Snapshot


__all__ = ["LayoutState", "row_specs", "blas_threads", "previous_clusters", "class_order_gain"]

#: With a previous layout, the rows keep its cluster order unless the barycentre sweeps cut the
#: weighted crossings by more than this fraction.
KEEP_ORDER_GAIN = 0.1


#: With a previous layout, the class (column) order stays unless :func:`class_order_gain` of the
#: new order over it is larger than this.
KEEP_CLASS_ORDER_GAIN = 0.05


def class_order_gain(A: np.ndarray, new: np.ndarray, old: np.ndarray) -> float:
    """How much better the column order ``new`` is than ``old`` for ``A[neuron, class]``.

    The gain in the sum of adjacent cosine similarities, as a fraction of what ``new`` gains
    over a random order (``(K - 1)`` × the mean similarity of two classes).  Relative to the
    raw sum it would be meaningless early in training, when every pair of classes has a
    similarity of 0.9999.  ``0`` when ``new`` has no structure.
    """
    S = cosine_similarity(np.asarray(A, dtype=np.float64).T)
    K = len(S)
    if K < 3:
        return 0.0
    baseline = (S.sum() - np.trace(S)) / (K * (K - 1)) * (K - 1)
    s_new, s_old = path_score(S, np.asarray(new)), path_score(S, np.asarray(old))
    structure = s_new - baseline
    return float((s_new - s_old) / structure) if structure > 1e-12 else 0.0


def previous_clusters(
    previous: LayoutState | Scene,
) -> dict[str, tuple[str, list[int], list[np.ndarray]]]:
    """``{row name: (unit, ids left to right, members)}`` of a layout state or a Scene."""
    out: dict[str, tuple[str, list[int], list[np.ndarray]]] = {}
    if isinstance(previous, LayoutState):
        for r in previous.rows:
            ids = list(previous.order.get(r.name, []))
            out[r.name] = (r.unit, ids, [previous.members[r.name][c] for c in ids])
        return out
    sc = previous.clusters
    ci = np.asarray(previous.neurons.cluster)
    by_cluster = np.argsort(ci, kind="stable")
    bounds = np.searchsorted(ci[by_cluster], np.arange(len(sc.id) + 1))
    index = np.asarray(previous.neurons.index, dtype=np.int64)
    for k, row in enumerate(previous.rows):
        cs = np.flatnonzero(np.asarray(sc.row) == k)
        if not cs.size:
            continue
        cs = cs[np.argsort(np.asarray(sc.rect)[cs, 0], kind="stable")]  # left to right
        members = [np.sort(index[by_cluster[bounds[c] : bounds[c + 1]]]) for c in cs]
        out[row.name] = (row.unit, [int(sc.id[c]) for c in cs], members)
    return out


def row_specs(
    snapshot: Snapshot, expanded: frozenset[str], collapsed: frozenset[str] = frozenset()
) -> list[RowSpec]:
    """Layer rows from top (input side) to bottom: one per group, one per unit when expanded,
    one per collapsed stage (module path, see :mod:`~cnnvis_gl.layout.hierarchy`)."""
    rows: list[RowSpec] = []
    hidden: dict[int, str] = {}
    stages = outermost(snapshot.graph, collapsed) if collapsed else {}
    for path, idx in stages.items():
        hidden.update((gi, path) for gi in idx)
    for gi, g in enumerate(snapshot.graph.groups):
        if gi in hidden:
            idx = stages[hidden[gi]]
            if gi == idx[-1]:
                rows.append(RowSpec(hidden[gi], ROW_STAGE, gi, g.unit, idx))
        elif g.name in expanded and len(g.units) > 1:  # parallel branches: by level, then lane
            rows += [RowSpec(f"{g.name}/{u}", ROW_LAYER, gi, u) for u, _, _ in group_units(snapshot, gi)]
        else:
            rows.append(RowSpec(g.name, ROW_GROUP, gi, g.unit))
    return rows


# Options that leave cached contents and geometry valid.
_EDIT_OPTIONS = {
    "edge_fraction",
    "edge_threshold",
    "facet",
    "clustering",
    "expanded",
    "collapsed",
    "incremental_min",
    "move_exact_max",
    "sweeps",
    "blas_threads",
    "method",
    "k",
    "k_range",
    "seed",
    "view_size",  # where the rows go: contents and bundlings (cached by relative position) stay
}


@dataclass(frozen=True)
class _Geom:
    """Sizes of one cluster's frame and contents (local: origin at the frame's corner)."""

    w: float
    h: float
    feat: tuple[float, float, float, float]
    mat: tuple[float, float, float, float]
    cell_w: float


class LayoutState:
    """Editable layout of one snapshot.

    Parameters
    ----------
    snapshot : Snapshot
    options : LayoutOptions or None

    Attributes
    ----------
    rows : list of RowSpec
        The layer rows, top to bottom.
    members : dict
        ``{row name: {cluster id: sorted neuron indices}}``.
    order : dict
        ``{row name: [cluster id, ...]}`` left to right.
    facets : dict
        Per-cluster facet overrides ``{cluster id: facet}``.
    scene : Scene or None
        The last composed scene.
    timings : dict
        Seconds spent per stage by the last build or edit.
    """

    def __init__(self, snapshot: Snapshot, options: LayoutOptions | None = None) -> None:
        self.snapshot = snapshot
        self.options = options or LayoutOptions()
        self.rows: list[RowSpec] = []
        self.members: dict[str, dict[int, np.ndarray]] = {}
        self.order: dict[str, list[int]] = {}
        self.facets: dict[int, int] = {}
        # rows hidden by an expand / collapse, kept to come back as they were:
        # {row name: (unit, {cluster id: members}, order)}
        self.hidden: dict[str, tuple[str, dict[int, np.ndarray], list[int]]] = {}
        self.scene: Scene | None = None
        self.timings: dict[str, float] = {}
        self.ordering_stats: dict[str, float] = {}
        self.class_order = np.zeros(len(snapshot.classes), dtype=np.int32)
        self.unit_names = [u.name for u in snapshot.graph.units]
        self.unit_index = {n: i for i, n in enumerate(self.unit_names)}
        self._data: dict[str, UnitData] = {}
        self._content: dict[tuple, ClusterContent] = {}
        self._weights: dict[tuple[str, str], np.ndarray | None] = {}
        self._matrix: dict[tuple, np.ndarray] = {}
        self.bundling_cache: dict[tuple, tuple[Bundling, dict[str, float]]] = {}
        self._digest: dict[int, bytes] = {}  # cluster id -> digest of its members
        # Keyed by id() of cached contents and bundlings, which are never evicted.
        self._geom: dict[int, _Geom] = {}
        self.pieces_cache: dict[tuple, EdgePieces] = {}
        self._bands: tuple[tuple[RowSpec, ...], Bands] | None = None

    # ------------------------------------------------------------------ timing
    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t

    # ------------------------------------------------------------------ inputs
    def data(self, unit: str) -> UnitData:
        """Normalised statistics of a unit (cached)."""
        d = self._data.get(unit)
        if d is None:
            d = unit_data(np.asarray(self.snapshot.activations(unit)))
            self._data[unit] = d
        return d

    def bands(self) -> Bands:
        """Bands, lanes and edge sources of the rows (:mod:`~cnnvis_gl.layout.lanes`; cached)."""
        key = tuple(self.rows)
        if self._bands is None or self._bands[0] != key:
            self._bands = (key, bands(self.snapshot, self.rows))
        return self._bands[1]

    def row(self, name: str) -> RowSpec:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}")

    def row_of_unit(self, unit: str) -> RowSpec:
        """The row showing ``unit``'s neurons (a unit is shown in at most one row)."""
        for r in self.rows:
            if r.unit == unit:
                return r
        raise KeyError(
            f"unit {unit!r} is not shown (its group is collapsed and it is not the group's last unit)"
        )

    def content(self, row: RowSpec, members: np.ndarray) -> ClusterContent:
        """Packing and matrix order of a cluster, cached by (unit, member set)."""
        key = (row.unit, np.asarray(members, dtype=np.int64).tobytes())
        c = self._content.get(key)
        if c is None:
            if self.options.draft:
                c = draft_content(self.data(row.unit), members, self.options)
            else:
                c = cluster_content(self.data(row.unit), members, self.options, self.timings)
            self._content[key] = c
        return c

    def has_content(self, row: RowSpec, members: np.ndarray) -> bool:
        """Whether a content for this member set is cached."""
        return (row.unit, np.asarray(members, dtype=np.int64).tobytes()) in self._content

    def put_content(self, row: RowSpec, content: ClusterContent) -> None:
        """Store a content (e.g. an incremental update) for its member set."""
        self._content[(row.unit, content.members.tobytes())] = content

    # ------------------------------------------------------------------ clustering
    def set_cluster(self, row: str, cid: int, members: np.ndarray) -> None:
        members = np.sort(np.asarray(members, dtype=np.int64))
        self.members[row][cid] = members
        self._digest[cid] = hashlib.blake2b(members.tobytes(), digest_size=8).digest()

    def drop_cluster(self, row: str, cid: int) -> None:
        self.members[row].pop(cid, None)
        self.order[row].remove(cid)
        self.facets.pop(cid, None)

    def all_ids(self) -> set[int]:
        return {c for m in self.members.values() for c in m}

    def cluster_row(self, row: RowSpec, labels: np.ndarray | None = None) -> None:
        """Cluster a row's neurons (by its group's setting) into fresh clusters (``labels``:
        computed already, e.g. by a worker process)."""
        o = self.options
        if labels is None and o.draft:
            labels = draft_labels(self.data(row.unit).A, o.k_range[1])
        elif labels is None:
            A, method, k, k_range, seed = parallel.cluster_job(self, row)
            labels = cluster_neurons(A, method, k, k_range, seed=seed)
        for cid in list(self.members.get(row.name, {})):
            self.facets.pop(cid, None)
        self.members[row.name] = {}
        self.order[row.name] = []
        taken = self.all_ids()
        for lab in range(int(labels.max()) + 1 if labels.size else 0):
            members = np.flatnonzero(labels == lab)
            cid = unique_id(row.name, members, taken)
            taken.add(cid)
            self.set_cluster(row.name, cid, members)
            self.order[row.name].append(cid)

    def labels(self, row: RowSpec) -> np.ndarray:
        """Per-neuron position of its cluster in the row's order."""
        n = self.snapshot.graph.unit(row.unit).channels
        lab = np.full(n, -1, dtype=np.int64)
        for i, cid in enumerate(self.order[row.name]):
            lab[self.members[row.name][cid]] = i
        return lab

    # ------------------------------------------------------------------ weights
    def neuron_weights(self, upper: RowSpec, lower: RowSpec) -> np.ndarray | None:
        key = (upper.name, lower.name)
        if key not in self._weights:
            self._weights[key] = row_weights(self.snapshot, upper, lower)
        return self._weights[key]

    def cluster_matrix(self, upper: RowSpec, lower: RowSpec) -> np.ndarray | None:
        """Cluster → cluster weights ``[m, n]`` in the rows' current orders.

        Cached by the two rows' member sets, independent of the order (a reordering only
        permutes the cached matrix).
        """
        W = self.neuron_weights(upper, lower)
        if W is None:
            return None
        du = [self._digest[c] for c in self.order[upper.name]]
        dl = [self._digest[c] for c in self.order[lower.name]]
        cu = sorted(range(len(du)), key=du.__getitem__)
        cl = sorted(range(len(dl)), key=dl.__getitem__)
        key = (upper.name, lower.name, tuple(du[i] for i in cu), tuple(dl[i] for i in cl))
        M = self._matrix.get(key)
        if M is None:
            M = cluster_weights(
                W, self._canonical_labels(upper, cu), self._canonical_labels(lower, cl)
            )
            self._matrix[key] = M
        ru = np.empty(len(cu), dtype=np.int64)
        ru[cu] = np.arange(len(cu))
        rl = np.empty(len(cl), dtype=np.int64)
        rl[cl] = np.arange(len(cl))
        return M[np.ix_(ru, rl)]

    def _canonical_labels(self, row: RowSpec, canon: list[int]) -> np.ndarray:
        """Per-neuron rank of its cluster in ``canon`` (positions of the row's order)."""
        n = self.snapshot.graph.unit(row.unit).channels
        lab = np.full(n, -1, dtype=np.int64)
        ids = self.order[row.name]
        for rank, pos in enumerate(canon):
            lab[self.members[row.name][ids[pos]]] = rank
        return lab

    # ------------------------------------------------------------------ geometry
    def geometry(self, content: ClusterContent) -> _Geom:
        """Frame of a cluster: a label band, then the larger of the two facets, padded (cached)."""
        g = self._geom.get(id(content))
        if g is None:
            g = self._geometry(content)
            self._geom[id(content)] = g
        return g

    def _geometry(self, content: ClusterContent) -> _Geom:
        o = self.options
        K = len(self.snapshot.classes)
        n = max(content.members.size, 1)
        labelled = 0 < K <= o.max_class_labels
        class_h = o.class_label if labelled else 0.0
        lo, hi = o.matrix_cell
        if labelled:
            lo = max(lo, o.labelled_cell)
        cell_w = float(np.clip(content.fw / max(K, 1), lo, max(hi, lo)))
        rlo, rhi = o.matrix_row
        row_h = float(np.clip((content.fh - class_h) / n, rlo, rhi))
        mw, mh = K * cell_w, n * row_h
        inner_w = max(content.fw, mw)
        inner_h = max(content.fh, class_h + mh)
        x0, y0 = o.padding, o.padding + o.cluster_label
        feat = (x0 + (inner_w - content.fw) / 2, y0, content.fw, content.fh)
        mat = (x0 + (inner_w - mw) / 2, y0 + class_h, mw, mh)
        return _Geom(inner_w + 2 * o.padding, y0 + inner_h + o.padding, feat, mat, cell_w)

    def row_extent(self, row: RowSpec) -> tuple[np.ndarray, np.ndarray]:
        """Left x and width of every cluster of a row (row centred on x = 0)."""
        gap = self.options.cluster_gap
        w = np.array(
            [
                self.geometry(self.content(row, self.members[row.name][c])).w
                for c in self.order[row.name]
            ]
        )
        total = float(w.sum() + gap * max(len(w) - 1, 0))
        x = -total / 2 + np.concatenate([[0.0], np.cumsum(w[:-1] + gap)]) if len(w) else w
        return x, w

    # ------------------------------------------------------------------ row order
    def total_crossings(self, centres: dict[str, np.ndarray] | None = None) -> float:
        """Weighted crossings of all cluster → cluster edges drawn straight
        (:func:`~cnnvis_gl.layout.roworder.total_crossings`)."""
        return roworder.total_crossings(self, centres)

    def recluster(self, rows: Iterable[RowSpec]) -> None:
        """Cluster ``rows`` afresh and order their clusters (barycentre sweeps), timed."""
        rows = list(rows)
        with self.timed("cluster"):
            for r in rows:
                self.cluster_row(r)
        if rows:
            with self.timed("row_order"):
                self.barycentre_order({r.name for r in rows})

    def barycentre_order(self, free: set[str] | None = None) -> None:
        """Order the clusters of the ``free`` rows (all by default) to reduce crossings
        (:func:`~cnnvis_gl.layout.roworder.barycentre_order`)."""
        roworder.barycentre_order(self, free)

    # ------------------------------------------------------------------ compose
    def compose(self) -> Scene:
        """The Scene of the current state (cache hits for everything the last edit left alone)."""
        from .compose import compose_scene

        return compose_scene(self)

    # ------------------------------------------------------------------ whole builds
    def compute_class_order(self, previous: np.ndarray | None = None) -> None:
        """One class order for every matrix: ``order_columns`` on the last hidden group (§5.2).

        With the ``previous`` order (another snapshot of the run on screen) the columns stay
        put unless :func:`class_order_gain` of the new order exceeds
        :data:`KEEP_CLASS_ORDER_GAIN`, so a followed run's matrices do not reshuffle at every
        snapshot.
        """
        groups = self.snapshot.graph.groups
        g = groups[-2] if len(groups) >= 2 else groups[-1]
        A = self.data(g.unit).A
        order = order_columns(A, exact_max=self.options.exact_max).astype(np.int32)
        if previous is not None and sorted(np.asarray(previous).tolist()) == list(range(len(order))):
            if not class_order_gain(A, order, previous) > KEEP_CLASS_ORDER_GAIN:
                order = np.asarray(previous, dtype=np.int32).copy()
        self.class_order = order

    def inherit(self, previous: LayoutState | Scene) -> int:
        """Give the clusters the ids (so colours) and order of ``previous``'s clusters.

        ``previous`` is the layout of another snapshot of the same run (or of the same one).  In
        each row shown by both with the same unit, every cluster takes the id of the previous
        cluster it overlaps most (:func:`~cnnvis_gl.layout.ids.inherit_ids`), and the row's
        order follows the previous order (a new cluster stays right of the cluster it followed).
        Call between clustering and composing.  Returns the number of inherited ids.
        """
        prev = previous_clusters(previous)
        kept = 0
        remapped: dict[str, tuple[list[int], list[np.ndarray], list[int]]] = {}
        for r in self.rows:
            old = prev.get(r.name)
            if old is None or old[0] != r.unit or not old[1]:
                continue
            ids = list(self.order[r.name])
            members = [self.members[r.name][c] for c in ids]
            remapped[r.name] = (ids, members, [])
        taken = {c for name, m in self.members.items() if name not in remapped for c in m}
        for name, (_, members, new_ids) in remapped.items():
            _, old_ids, old_members = prev[name]
            new_ids += inherit_ids(name, old_members, old_ids, members, taken)
            taken.update(new_ids)
        for name, (ids, members, new_ids) in remapped.items():
            old_pos = {c: i for i, c in enumerate(prev[name][1])}
            for cid in ids:
                self.facets.pop(cid, None)
                self._digest.pop(cid, None)
            self.members[name] = {}
            keys, last = [], -1.0
            for j, (cid, m) in enumerate(zip(new_ids, members, strict=True)):
                self.set_cluster(name, cid, m)
                if cid in old_pos:
                    last = float(old_pos[cid])
                    kept += 1
                keys.append((last, cid not in old_pos, j))  # new ones after their left match
            self.order[name] = [new_ids[j] for *_, j in sorted(keys)]
        return kept

    def build(
        self, previous: LayoutState | Scene | None = None, class_order: np.ndarray | None = None
    ) -> Scene:
        """Cluster every row, order the rows and compose (the whole pipeline).

        With ``previous`` (the layout of another snapshot of the same run) clusters keep the
        ids of the previous clusters they overlap most, rows keep the previous cluster order
        unless re-ordering cuts the weighted crossings by more than :data:`KEEP_ORDER_GAIN`,
        and the class order is kept (see :meth:`compute_class_order`); ``class_order`` keeps
        that order without ``previous``.
        """
        if class_order is None and previous is not None:
            class_order = previous.class_order
        self.timings = {}
        with blas_threads(self.options.blas_threads):
            self.rows = row_specs(self.snapshot, self.options.expanded, self.options.collapsed)
            with self.timed("class_order"):
                self.compute_class_order(class_order)
            neurons = sum(self.snapshot.graph.unit(r.unit).channels for r in self.rows)
            workers = 0 if self.options.draft else parallel.workers_for(self.options, neurons)
            with self.timed("cluster"):
                labels = [None] * len(self.rows)
                if workers:
                    jobs = [parallel.cluster_job(self, r) for r in self.rows]
                    labels = parallel.cluster_rows(jobs, workers, self.options.blas_threads)
                for r, lab in zip(self.rows, labels, strict=True):
                    self.cluster_row(r, lab)
            if previous is not None:
                with self.timed("identity"):
                    self.inherit(previous)
            with self.timed("content"):
                if not self.options.draft:  # (a row's clusters at once: their orders in one batch)
                    parallel.fill_contents(self, workers)
                for r in self.rows:
                    for cid in self.order[r.name]:
                        self.content(r, self.members[r.name][cid])
            with self.timed("row_order"):
                kept = {k: list(v) for k, v in self.order.items()}
                if self.options.draft_edges or not self.options.draft:
                    self.barycentre_order()
                st = self.ordering_stats
                if (
                    previous is not None
                    and st
                    and st["crossings_ordered"] >= (1.0 - KEEP_ORDER_GAIN) * st["crossings_initial"]
                ):
                    self.order = kept
                    st["crossings_ordered"] = st["crossings_initial"]
            with self.timed("compose"):
                self.scene = self.compose()
        return self.scene

    def replace_options(self, **changes: object) -> None:
        """Swap in options with ``changes`` (the caller re-composes what they affect).

        Changing anything but the edit-level options (edge filter, facet, clustering, expanded
        groups) drops the cached contents and geometry.
        """
        self.options = replace(self.options, **changes)
        if set(changes) - _EDIT_OPTIONS:
            self._content.clear()
            self._geom.clear()
            self.pieces_cache.clear()
            self.bundling_cache.clear()
