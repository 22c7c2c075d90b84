"""Incremental edits of a layout (SPEC §7): each returns ``(new_scene, changed)``.

``changed`` (:class:`Changed`) tells a renderer what to re-upload: clusters by *id* whose
content changed (patches, matrix) or that only moved (a translation), rows and in-between rows
(edges) by index in the new scene, facets that changed (appearance only), and whether the row
list itself changed.  It is computed by comparing the old and the new Scene, so it is exact
whatever an edit did.  Parts of the Scene an edit leaves equal are the *same objects* as in the
old Scene (``new.neurons is old.neurons`` after a facet switch or a threshold change).

Edits work on a :class:`~cnnvis_gl.layout.state.LayoutState` (from
:func:`~cnnvis_gl.layout.build.build_state`), update it in place and recompute only what they
touch: a move re-lays out two clusters (incrementally for clusters of ``incremental_min``
neurons or more), their row and the edges on both sides of it.
A move keeps the ids (and so the colours) of the source and target clusters.  Unlike a fresh
build, edits do not re-run the barycentre sweeps over untouched rows: the picture the user is
editing stays where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from .content import ClusterContent, cluster_content, insert_neuron, remove_neuron
from .edges import RowSpec
from .hierarchy import stages
from .ids import unique_id
from .options import GroupClustering
from .scene import ROW_BETWEEN, Scene
from .state import LayoutState, blas_threads, row_specs

__all__ = [
    "Changed",
    "diff_scenes",
    "move_neuron",
    "set_clustering",
    "set_collapsed",
    "set_collapsed_stages",
    "set_expanded",
    "set_threshold",
    "set_facet",
]

_KEEP = object()


@dataclass(frozen=True)
class Changed:
    """What an edit changed, for partial re-upload.

    Attributes
    ----------
    clusters : frozenset[int]
        Ids of clusters that are new or whose content changed (size, patches, matrix order).
    removed : frozenset[int]
        Ids of clusters that no longer exist.
    moved : frozenset[int]
        Ids of clusters whose content is unchanged but whose frame moved or changed height
        (the row got taller or shorter): update the frame instance, translate the content.
    appearance : frozenset[int]
        Ids of clusters whose facet changed (no geometry).
    rows : frozenset[int]
        Indices (in the new Scene) of layer rows whose geometry or clusters changed.
    edges : frozenset[int]
        Indices (in the new Scene) of in-between rows whose edge pieces or bundles changed.
    structure : bool
        The list of rows changed (expand / collapse): indices of the old Scene are void.
    """

    clusters: frozenset[int] = frozenset()
    removed: frozenset[int] = frozenset()
    moved: frozenset[int] = frozenset()
    appearance: frozenset[int] = frozenset()
    rows: frozenset[int] = frozenset()
    edges: frozenset[int] = frozenset()
    structure: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.clusters
            or self.removed
            or self.moved
            or self.appearance
            or self.rows
            or self.edges
            or self.structure
        )


# ---------------------------------------------------------------------------- diff


def _signatures(scene: Scene) -> dict[int, tuple]:
    """Per cluster id: everything about the cluster except its position (relative geometry)."""
    c, n = scene.clusters, scene.neurons
    starts = np.concatenate([[0], np.cumsum(c.size, dtype=np.int64)])
    origin = np.zeros((len(c.id), 4))
    origin[:, :2] = c.rect[:, :2]
    # Relative coordinates, rounded: float32 absolute positions carry rounding noise.
    feat = np.round(c.features_rect - origin, 2)
    mat = np.round(c.matrix_rect - origin, 2)
    rel = np.round(n.rect - origin[n.cluster], 2) if len(n.cluster) else np.zeros((0, 4))
    out = {}
    for i, cid in enumerate(c.id.tolist()):
        sl = slice(int(starts[i]), int(starts[i + 1]))
        out[cid] = (
            int(c.size[i]),
            c.rect[i, 2].tobytes(),  # the height follows the row: a change is a move
            c.color[i].tobytes(),
            feat[i].tobytes(),
            mat[i, :3].tobytes(),  # the matrix height follows the row too
            float(c.density[i]),
            float(c.order_score[i]),
            n.unit[sl].tobytes(),
            n.index[sl].tobytes(),
            rel[sl].tobytes(),
            n.matrix_row[sl].tobytes(),
        )
    return out


def _edge_signature(scene: Scene, row: int) -> tuple:
    e, b, ids = scene.edges, scene.bundles, scene.clusters.id
    m = e.row == row
    mb = b.row == row

    def cid(idx: np.ndarray) -> bytes:
        return np.where(idx >= 0, ids[np.maximum(idx, 0)], -1).tobytes()

    return (
        e.ctrl[m].tobytes(),
        e.weight[m].tobytes(),
        e.sign[m].tobytes(),
        e.piece[m].tobytes(),
        e.count[m].tobytes(),
        cid(e.src[m]),
        cid(e.dst[m]),
        b.pos[mb].tobytes(),
        b.sign[mb].tobytes(),
        b.n_in[mb].tobytes(),
        b.n_out[mb].tobytes(),
    )


def diff_scenes(old: Scene, new: Scene) -> Changed:
    """What differs between two Scenes of the same snapshot (see :class:`Changed`)."""
    oi = {int(c): i for i, c in enumerate(old.clusters.id)}
    ni = {int(c): i for i, c in enumerate(new.clusters.id)}
    so, sn = _signatures(old), _signatures(new)
    content, moved, appearance = set(), set(), set()
    for cid, j in ni.items():
        i = oi.get(cid)
        if i is None or so[cid] != sn[cid]:
            content.add(cid)
        elif not np.array_equal(old.clusters.rect[i], new.clusters.rect[j]):
            moved.add(cid)
        if i is not None and old.clusters.facet[i] != new.clusters.facet[j]:
            appearance.add(cid)
    removed = set(oi) - set(ni)
    old_rows = {r.name: (k, r) for k, r in enumerate(old.rows)}
    touched = content | moved | removed
    rows, edges = set(), set()
    for k, r in enumerate(new.rows):
        prev = old_rows.get(r.name)
        if r.kind == ROW_BETWEEN:
            if prev is None or _edge_signature(old, prev[0]) != _edge_signature(new, k):
                edges.add(k)
            continue
        ids_new = [int(c) for c in new.clusters.id[new.clusters.row == k]]
        ids_old = (
            [] if prev is None else [int(c) for c in old.clusters.id[old.clusters.row == prev[0]]]
        )
        if (
            prev is None
            or (prev[1].y, prev[1].height) != (r.y, r.height)
            or ids_new != ids_old
            or touched.intersection(ids_new)
        ):
            rows.add(k)
    return Changed(
        clusters=frozenset(content),
        removed=frozenset(removed),
        moved=frozenset(moved),
        appearance=frozenset(appearance),
        rows=frozenset(rows),
        edges=frozenset(edges),
        structure=[r.name for r in old.rows] != [r.name for r in new.rows],
    )


def _equal(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    for f in fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _share(old: Scene, new: Scene) -> Scene:
    """``new`` with every part equal to ``old``'s replaced by the old object (no re-upload)."""
    kw = {}
    for name in ("clusters", "neurons", "edges", "bundles"):
        if _equal(getattr(old, name), getattr(new, name)):
            kw[name] = getattr(old, name)
    for name in ("rows", "labels", "classes", "units"):
        if getattr(old, name) == getattr(new, name):
            kw[name] = getattr(old, name)
    if np.array_equal(old.class_order, new.class_order):
        kw["class_order"] = old.class_order
    return replace(new, **kw)


def recompose(state: LayoutState) -> tuple[Scene, Changed]:
    """Compose ``state`` after a change; share unchanged parts with the old scene; diff them."""
    old = state.scene
    with state.timed("compose"):
        new = state.compose()
    if old is None:
        state.scene = new
        return new, Changed(clusters=frozenset(int(c) for c in new.clusters.id), structure=True)
    new = _share(old, new)
    state.scene = new
    with state.timed("diff"):
        changed = diff_scenes(old, new)
    return new, changed


# ---------------------------------------------------------------------------- edits


def _cluster_of(state: LayoutState, row: str, neuron: int) -> int:
    for cid, m in state.members[row].items():
        k = int(np.searchsorted(m, neuron))
        if k < m.size and m[k] == neuron:
            return cid
    raise KeyError(f"neuron {neuron} is in no cluster of row {row!r}")


def move_neuron(
    state: LayoutState, unit: str, neuron: int, to: int | None = None
) -> tuple[Scene, Changed]:
    """Move a neuron to another cluster of its row, or (``to=None``) into a new cluster.

    Parameters
    ----------
    state : LayoutState
    unit : str
        The neuron's unit (``scene.units[scene.neurons.unit[i]]``).
    neuron : int
        Its channel (``scene.neurons.index[i]``).
    to : int or None
        Id of the target cluster (same row), or None for a new cluster placed right of the
        source cluster.  An emptied source cluster disappears.

    Returns
    -------
    (Scene, Changed)
    """
    state.timings = {}
    row = state.row_of_unit(unit)
    src = _cluster_of(state, row.name, int(neuron))
    if to is not None and to not in state.members[row.name]:
        raise KeyError(f"cluster {to} is not in row {row.name!r}")
    if to == src:
        assert state.scene is not None
        return state.scene, Changed()
    o = state.options
    data = state.data(row.unit)
    with blas_threads(o.blas_threads), state.timed("content"):
        old = state.members[row.name][src]
        rest = old[old != neuron]
        if rest.size == 0:
            pos = state.order[row.name].index(src)
            state.drop_cluster(row.name, src)
        else:
            pos = state.order[row.name].index(src) + 1
            if o.incremental_min and old.size >= o.incremental_min:
                _put_if_new(state, row, remove_neuron(data, state.content(row, old), int(neuron)))
            else:
                _relayout(state, row, rest)
            state.set_cluster(row.name, src, rest)
        if to is None:
            members = np.array([int(neuron)], dtype=np.int64)
            cid = unique_id(row.name, members, state.all_ids())
            state.set_cluster(row.name, cid, members)
            state.order[row.name].insert(pos, cid)
        else:
            tgt = state.members[row.name][to]
            grown = np.sort(np.append(tgt, int(neuron)))
            if o.incremental_min and tgt.size >= o.incremental_min:
                _put_if_new(
                    state, row, insert_neuron(data, state.content(row, tgt), int(neuron), o)
                )
            else:
                _relayout(state, row, grown)
            state.set_cluster(row.name, to, grown)
    with blas_threads(o.blas_threads):
        return recompose(state)


def _relayout(state: LayoutState, row: RowSpec, members: np.ndarray) -> None:
    """Re-pack a small cluster from scratch, with Held–Karp only up to ``move_exact_max`` rows
    (exact orders of 13–16 rows cost 30–100 ms here, too slow for a drag)."""
    if not state.has_content(row, members):
        o = state.options
        exact = min(o.exact_max, o.move_exact_max)
        content = cluster_content(state.data(row.unit), members, o, state.timings, exact)
        state.put_content(row, content)


def _put_if_new(state: LayoutState, row: RowSpec, content: ClusterContent) -> None:
    """Cache an incremental content unless that member set already has one (e.g. moving a
    neuron back restores the cluster's earlier layout exactly)."""
    if not state.has_content(row, content.members):
        state.put_content(row, content)


def set_clustering(
    state: LayoutState, group: str, method: str | None = None, k: object = _KEEP
) -> tuple[Scene, Changed]:
    """Re-cluster one layer group with another algorithm and/or k.

    Parameters
    ----------
    group : str
        Group name (all its rows when it is expanded).
    method : {"kmeans", "meanshift"} or None
        None keeps the group's current method.
    k : int or None
        Number of clusters (K-Means), None for the silhouette choice; omitted keeps it.
    """
    state.timings = {}
    cur = state.options.clustering_for(group)
    setting = GroupClustering(method or cur.method, cur.k if k is _KEEP else k)  # type: ignore[arg-type]
    names = [g.name for g in state.snapshot.graph.groups]
    if group not in names:
        raise KeyError(f"no group {group!r}")
    state.replace_options(clustering={**state.options.clustering, group: setting})
    gi = names.index(group)
    rows = [r for r in state.rows if r.group == gi]
    graph = state.snapshot.graph
    for name, (unit, _, _) in list(state.hidden.items()):  # its hidden rows: clustered afresh
        if graph.unit(unit).group == gi:  # by the new setting when they come back
            del state.hidden[name]
    with blas_threads(state.options.blas_threads):
        state.recluster(rows)
        return recompose(state)


def set_expanded(
    state: LayoutState, group: str, expanded: bool | None = None
) -> tuple[Scene, Changed]:
    """Expand a group into one row per unit, or collapse it (``expanded=None`` toggles).

    Rows that stay keep their clusters; the row of a unit that is shown before and after
    (the group's last unit) keeps its clusters too, ids included.
    """
    state.timings = {}
    names = [g.name for g in state.snapshot.graph.groups]
    if group not in names:
        raise KeyError(f"no group {group!r}")
    return _toggle(state, "expanded", group, expanded)


def set_collapsed(
    state: LayoutState, stage: str, collapsed: bool | None = None
) -> tuple[Scene, Changed]:
    """Collapse a stage (a module holding several groups, :func:`~cnnvis_gl.layout.hierarchy.stages`)
    into one row, or expand it back into its groups (``collapsed=None`` toggles).

    As with :func:`set_expanded`, the rows that stay keep their clusters, and the stage's output
    row keeps the clusters of its last group's row (and back).
    """
    state.timings = {}
    if stage not in stages(state.snapshot.graph):
        raise KeyError(f"no stage {stage!r}")
    return _toggle(state, "collapsed", stage, collapsed)


def set_collapsed_stages(state: LayoutState, collapsed: frozenset[str]) -> tuple[Scene, Changed]:
    """Show exactly the stages ``collapsed`` as one row each (e.g. every innermost stage: the
    network's overview; none: every group), the rows that stay keeping their clusters."""
    state.timings = {}
    known = stages(state.snapshot.graph)
    unknown = sorted(set(collapsed) - set(known))
    if unknown:
        raise KeyError(f"no stage {unknown[0]!r}")
    if frozenset(collapsed) == state.options.collapsed:
        assert state.scene is not None
        return state.scene, Changed()
    state.replace_options(collapsed=frozenset(collapsed))
    return _new_rows(state)


def _toggle(state: LayoutState, option: str, name: str, on: bool | None) -> tuple[Scene, Changed]:
    """Put ``name`` into the set option ``option`` (``expanded`` / ``collapsed``) or take it out
    (``on=None``: toggle); the new rows are clustered, the others keep their clusters."""
    now_set = getattr(state.options, option)
    want = (name not in now_set) if on is None else bool(on)
    if want == (name in now_set):
        assert state.scene is not None
        return state.scene, Changed()
    state.replace_options(**{option: frozenset(now_set | {name} if want else now_set - {name})})
    return _new_rows(state)


def _new_rows(state: LayoutState) -> tuple[Scene, Changed]:
    """The rows of the state's ``expanded`` / ``collapsed`` options: the new ones clustered (or
    as they were when an earlier edit hid them), the others keep their clusters (a row showing
    the same unit under another name too)."""
    old_rows = {r.name: r for r in state.rows}
    new_rows = row_specs(state.snapshot, state.options.expanded, state.options.collapsed)
    kept = {r.name for r in new_rows if r.name in old_rows and old_rows[r.name] == r}
    by_unit = {r.unit: r for r in state.rows if r.name not in kept}
    fresh = []
    with blas_threads(state.options.blas_threads):
        for r in new_rows:
            if r.name in kept:
                continue
            prev = by_unit.get(r.unit)
            if prev is not None:  # same neurons, another row name: keep its clusters
                state.members[r.name] = state.members.pop(prev.name)
                state.order[r.name] = state.order.pop(prev.name)
                continue
            fresh.append(r)
        for gone in set(old_rows) - kept:
            if gone in state.members:  # not transferred: kept aside, to come back as it was
                state.hidden[gone] = (old_rows[gone].unit, state.members.pop(gone), state.order.pop(gone))
        taken = state.all_ids()
        for r in list(fresh):
            unit, members, order = state.hidden.pop(r.name, ("", {}, []))
            if unit == r.unit and order and not taken & set(members):
                state.members[r.name], state.order[r.name] = members, order
                taken |= set(members)
                fresh.remove(r)
        state.rows = new_rows
        state.recluster(fresh)
        return recompose(state)


def set_threshold(
    state: LayoutState, fraction: float | None = None, value: float | None = None
) -> tuple[Scene, Changed]:
    """Change the edge filter: keep the top ``fraction`` by |w|, or ``|w| >= value``.

    Only edges and bundles change (cluster order is independent of the threshold).
    """
    state.timings = {}
    if fraction is None and value is None:
        raise ValueError("give fraction or value")
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    changes: dict[str, object] = {"edge_threshold": value}
    if fraction is not None:
        changes["edge_fraction"] = float(fraction)
    state.replace_options(**changes)
    with blas_threads(state.options.blas_threads):
        return recompose(state)


def set_view_size(state: LayoutState, size: tuple[int, int] | None) -> tuple[Scene, Changed]:
    """Lay the rows out for a view of ``size`` pixels (see ``LayoutOptions.view_size``): a long
    network wraps into columns filling it.  Geometry only: clusters, orders and bundles are
    cached, so this costs a re-composition (plus re-bundling the pairs of rows that wrap)."""
    state.timings = {}
    state.replace_options(view_size=None if size is None else (int(size[0]), int(size[1])))
    with blas_threads(state.options.blas_threads):
        return recompose(state)


def set_facet(
    state: LayoutState, facet: int, clusters: list[int] | None = None
) -> tuple[Scene, Changed]:
    """Switch the facet of some clusters (by id) or, with ``clusters=None``, of all.

    Appearance only: the new Scene shares every array but ``clusters.facet`` with the old one.
    """
    scene = state.scene
    assert scene is not None
    if clusters is None:
        state.replace_options(facet=facet)
        state.facets.clear()
    else:
        known = set(int(c) for c in scene.clusters.id)
        for cid in clusters:
            if int(cid) not in known:
                raise KeyError(f"no cluster {cid}")
            state.facets[int(cid)] = int(facet)
    f = np.asarray(
        [state.facets.get(int(c), state.options.facet) for c in scene.clusters.id], dtype=np.int8
    )
    changed_ids = frozenset(int(c) for c in scene.clusters.id[f != scene.clusters.facet])
    if not changed_ids:
        return scene, Changed()
    new = replace(scene, clusters=replace(scene.clusters, facet=f))
    state.scene = new
    return new, Changed(appearance=changed_ids)
