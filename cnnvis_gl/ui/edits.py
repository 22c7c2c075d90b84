"""The user's edits of a layout as plain, immutable data: capture, restore, save, load.

A :class:`LayoutEdits` is the editable part of a :class:`~cnnvis_gl.layout.LayoutState`: the
clusters of every row (members and left-to-right order), the clustering setting of every group,
the expanded groups, the edge filter and the facets.  It serves three purposes:

* **undo / redo** — an edit is recorded as ``(before, after)``; undoing restores ``before`` onto
  the live state.  Restoring whole memberships (instead of replaying inverse moves) survives
  clusters that vanish and reappear with other ids, and re-composing is cheap because the state
  caches every cluster's packing and matrix order by member set;
* **persistence** — saved as ``RUN/layout.json`` (JSON, pickle-free, written atomically) and
  restored when the run is opened again;
* **follow mode** — the same edits are applied to every new snapshot of the run (a run's
  neurons are the same in every snapshot), so the user's picture stays put.

No imgui or OpenGL here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SnapshotError
from ..layout import LayoutOptions, LayoutState
from ..layout.edit import Changed, recompose
from ..layout.options import GroupClustering
from ..layout.scene import Scene
from ..layout.state import blas_threads, row_specs
from ..run.store import loads_json, write_json_atomic

if TYPE_CHECKING:
    from ..run.snapshot import Snapshot

__all__ = [
    "LAYOUT_FILE",
    "FORMAT",
    "VERSION",
    "LayoutEdits",
    "capture",
    "restore",
    "build_with_edits",
    "save_edits",
    "load_edits",
]

LAYOUT_FILE = "layout.json"
FORMAT = "cnnvis-layout"
VERSION = 1


@dataclass(frozen=True)
class LayoutEdits:
    """Immutable memento of a layout's editable state.

    Attributes
    ----------
    rows : Mapping[str, tuple[tuple[int, tuple[int, ...]], ...]]
        Per row name, its clusters left to right as ``(cluster id, sorted member neurons)``.
        Empty when the clustering is not pinned (each snapshot is clustered afresh).
    clustering : Mapping[str, tuple[str, int | None]]
        Per group name, ``(method, k)`` overrides.
    expanded : frozenset[str]
        Expanded group names.
    collapsed : frozenset[str]
        Collapsed stages (module paths, :mod:`cnnvis_gl.layout.hierarchy`).
    edge_fraction : float
        Fraction of the cluster edges kept per pair of rows.
    facet : int
        Facet of every cluster without an override.
    facets : Mapping[int, int]
        Per-cluster facet overrides by cluster id.
    step : int or None
        Step of the snapshot the edits were made on (informative).
    class_order : tuple of int
        The matrices' class (column) order of a pinned layout, kept when it is laid out again
        (unless clearly worse for that snapshot); empty when not pinned.
    """

    rows: Mapping[str, tuple[tuple[int, tuple[int, ...]], ...]] = field(default_factory=dict)
    clustering: Mapping[str, tuple[str, int | None]] = field(default_factory=dict)
    expanded: frozenset[str] = frozenset()
    collapsed: frozenset[str] = frozenset()
    edge_fraction: float = 0.25
    facet: int = 0
    facets: Mapping[int, int] = field(default_factory=dict)
    step: int | None = None
    class_order: tuple[int, ...] = ()

    @property
    def pinned(self) -> bool:
        """Whether the clustering itself is part of the edits (not only options)."""
        return bool(self.rows)

    def options(self, base: LayoutOptions | None = None) -> LayoutOptions:
        """``base`` (default options) with these edits' option values."""
        from dataclasses import replace

        base = base or LayoutOptions()
        return replace(
            base,
            clustering={g: GroupClustering(m, k) for g, (m, k) in self.clustering.items()},
            expanded=frozenset(self.expanded),
            collapsed=frozenset(self.collapsed),
            edge_fraction=float(self.edge_fraction),
            edge_threshold=None,
            facet=int(self.facet),
        )

    def unpinned(self) -> LayoutEdits:
        """The same options without the pinned clustering."""
        from dataclasses import replace

        return replace(self, rows={}, facets={}, class_order=())

    def cluster_sizes(self) -> dict[int, int]:
        """``{cluster id: size}`` of the pinned clustering."""
        return {cid: len(m) for clusters in self.rows.values() for cid, m in clusters}

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict (see :func:`save_edits`)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "step": self.step,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": {
                "edge_fraction": float(self.edge_fraction),
                "facet": int(self.facet),
                "expanded": sorted(self.expanded),
                "collapsed": sorted(self.collapsed),
                "clustering": {g: {"method": m, "k": k} for g, (m, k) in self.clustering.items()},
            },
            "facets": {str(c): int(f) for c, f in self.facets.items()},
            "class_order": [int(k) for k in self.class_order],
            "rows": {
                name: [{"id": int(cid), "members": [int(n) for n in m]} for cid, m in clusters]
                for name, clusters in self.rows.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LayoutEdits:
        """Parse :meth:`to_json` output; raises ``ValueError`` on anything malformed."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        version = data.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"version {version!r} is not an integer")
        if version > VERSION:
            raise ValueError(f"{FORMAT} version {version} is newer than this program ({VERSION})")
        try:
            opts = data.get("options", {})
            clustering = {}
            for g, c in dict(opts.get("clustering", {})).items():
                k = c.get("k")
                setting = GroupClustering(
                    str(c.get("method", "kmeans")), None if k is None else int(k)
                )
                clustering[str(g)] = (setting.method, setting.k)
            rows = {
                str(name): tuple(
                    (int(c["id"]), tuple(sorted(int(n) for n in c["members"]))) for c in clusters
                )
                for name, clusters in dict(data.get("rows", {})).items()
            }
            fraction = float(opts.get("edge_fraction", 0.25))
            if not 0.0 <= fraction <= 1.0:  # (NaN too)
                raise ValueError(f"edge_fraction {fraction} not in [0, 1]")
            step = data.get("step")
            return cls(
                rows=rows,
                clustering=clustering,
                expanded=frozenset(str(g) for g in opts.get("expanded", [])),
                collapsed=frozenset(str(g) for g in opts.get("collapsed", [])),
                edge_fraction=fraction,
                facet=int(opts.get("facet", 0)) & 1,
                facets={int(c): int(f) & 1 for c, f in dict(data.get("facets", {})).items()},
                step=None if step is None else int(step),
                class_order=tuple(int(k) for k in data.get("class_order", [])),
            )
        except (KeyError, TypeError, AttributeError, OverflowError) as e:
            raise ValueError(f"malformed {FORMAT} file: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------- state <-> edits


def capture(state: LayoutState, pinned: bool = True) -> LayoutEdits:
    """The edits of ``state`` (call on the thread that owns it)."""
    o = state.options
    rows: dict[str, tuple] = {}
    if pinned:
        for r in state.rows:
            rows[r.name] = tuple(
                (int(cid), tuple(int(n) for n in state.members[r.name][cid]))
                for cid in state.order[r.name]
            )
    return LayoutEdits(
        rows=rows,
        clustering={g: (c.method, c.k) for g, c in o.clustering.items()},
        expanded=frozenset(o.expanded),
        collapsed=frozenset(o.collapsed),
        edge_fraction=float(o.edge_fraction),
        facet=int(o.facet),
        facets=dict(state.facets) if pinned else {},
        step=state.snapshot.step,
        class_order=tuple(int(k) for k in state.class_order) if pinned else (),
    )


def _valid_row(clusters: tuple, channels: int) -> bool:
    """Whether saved clusters partition ``range(channels)`` (a saved file may be stale)."""
    seen = np.zeros(channels, dtype=np.int64)
    for _, members in clusters:
        if not members:
            return False
        m = np.asarray(members, dtype=np.int64)
        if m.min() < 0 or m.max() >= channels:
            return False
        np.add.at(seen, m, 1)
    return bool(len(clusters)) and bool((seen == 1).all())


def _apply_rows(state: LayoutState, edits: LayoutEdits) -> set[str]:
    """Set the pinned clusters of every row that has valid saved ones; returns the others."""
    fresh: set[str] = set()
    for r in state.rows:
        saved = edits.rows.get(r.name)
        channels = state.snapshot.graph.unit(r.unit).channels
        if saved is None or not _valid_row(saved, channels):
            fresh.add(r.name)
            continue
        for cid in list(state.members.get(r.name, {})):
            state.facets.pop(cid, None)
        state.members[r.name] = {}
        state.order[r.name] = []
        for cid, members in saved:
            state.set_cluster(r.name, int(cid), np.asarray(members, dtype=np.int64))
            state.order[r.name].append(int(cid))
    return fresh


def restore(state: LayoutState, edits: LayoutEdits) -> tuple[Scene, Changed]:
    """Put ``edits`` onto ``state`` (undo / redo) and re-compose.

    Rows without valid pinned clusters are clustered afresh.  Facets and the edge filter are
    restored too.  Returns the new scene and what changed, like the edits of
    :mod:`cnnvis_gl.layout.edit`.
    """
    state.timings = {}
    options = edits.options(state.options)
    old_rows = {r.name for r in state.rows}
    state.replace_options(
        clustering=options.clustering,
        expanded=options.expanded,
        collapsed=options.collapsed,
        edge_fraction=options.edge_fraction,
        edge_threshold=None,
        facet=options.facet,
    )
    with blas_threads(state.options.blas_threads):
        new_rows = row_specs(state.snapshot, state.options.expanded, state.options.collapsed)
        for name in old_rows - {r.name for r in new_rows}:
            for cid in state.members.pop(name, {}):
                state.facets.pop(cid, None)
            state.order.pop(name, None)
        state.rows = new_rows
        fresh = _apply_rows(state, edits) if edits.pinned else set()
        state.recluster(r for r in new_rows if r.name in fresh or r.name not in state.members)
        _restore_facets(state, edits)
        return recompose(state)


def _restore_facets(state: LayoutState, edits: LayoutEdits) -> None:
    """The edits' per-cluster facets, for the clusters the state has (ids may be stale)."""
    ids = state.all_ids()
    state.facets = {c: f for c, f in edits.facets.items() if c in ids}


def build_with_edits(
    snapshot: Snapshot,
    edits: LayoutEdits,
    base: LayoutOptions | None = None,
    class_order: np.ndarray | None = None,
) -> LayoutState:
    """Lay out ``snapshot`` with ``edits`` (pinned rows are not clustered again).

    Equivalent to :func:`cnnvis_gl.layout.build_state` followed by :func:`restore`, without
    clustering the pinned rows first.  ``class_order``: the column order on screen (default:
    the edits' own), kept unless clearly worse (see ``LayoutState.compute_class_order``).
    """
    options = edits.options(base)
    if class_order is None and edits.class_order:
        class_order = np.asarray(edits.class_order, dtype=np.int64)
    if not edits.pinned:
        state = LayoutState(snapshot, options)
        state.build(class_order=class_order)
        if edits.facets:
            _restore_facets(state, edits)
            state.scene = state.compose()
        return state
    state = LayoutState(snapshot, options)
    state.timings = {}
    with blas_threads(options.blas_threads):
        state.rows = row_specs(snapshot, options.expanded, options.collapsed)
        with state.timed("class_order"):
            state.compute_class_order(class_order)
        fresh = _apply_rows(state, edits)
        state.recluster(r for r in state.rows if r.name in fresh)
        _restore_facets(state, edits)
        with state.timed("compose"):
            state.scene = state.compose()
    return state


# ---------------------------------------------------------------------------- files


def save_edits(run_dir: str | Path, edits: LayoutEdits) -> Path:
    """Write ``RUN/layout.json`` atomically (temporary file + rename); returns its path."""
    return write_json_atomic(Path(run_dir) / LAYOUT_FILE, edits.to_json(), prefix=".layout-")


def load_edits(run_dir: str | Path) -> LayoutEdits | None:
    """Read ``RUN/layout.json``; ``None`` when there is none.  Raises ``ValueError`` if corrupt."""
    path = Path(run_dir) / LAYOUT_FILE
    if not path.exists():
        return None
    try:
        data = loads_json(path.read_bytes(), path, LAYOUT_FILE)
        return LayoutEdits.from_json(data)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except SnapshotError as e:  # damaged JSON: the message names the file
        raise ValueError(str(e)) from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
