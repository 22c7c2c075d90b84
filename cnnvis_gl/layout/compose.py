"""Composition of a :class:`~cnnvis_gl.layout.scene.Scene` from a layout state.

Frames, patches and matrices per cluster (from the cached contents), rows stacked top-down with
in-between rows, bundled edges per pair of consecutive rows, labels and quality figures.
Everything expensive comes from the state's caches, so composing after an edit costs
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import Bundling, bundle_edges, ink_and_crossings
from .columns import ColumnPlan, plan_columns
from .edges import RowSpec, SceneEdgesBuilder, edge_pieces, edge_threshold, with_stems
from .ids import id_color
from .lanes import Bands, lane_offsets
from .scene import (
    CHAR_WIDTH,
    ROW_BETWEEN,
    ROW_LABEL,
    Bundles,
    ClustersBuilder,
    Edges,
    Label,
    Row,
    Scene,
)
from .search import module_prefix

if TYPE_CHECKING:
    from .state import LayoutState

__all__ = ["compose_scene"]

#: Space between the lanes of parallel branches (scene units).
LANE_GAP = 60.0

#: The renderer never draws a row label under this many pixels (``render.text.MIN_PX``): the
#: columns leave fitted labels that room.
LABEL_FLOOR_PX = 11.0


def _bundle(
    state: LayoutState,
    upper: RowSpec,
    lower: RowSpec,
    M: np.ndarray,
    thr: float,
    in_x: np.ndarray,
    out_x: np.ndarray,
    in_y: float,
    out_y: float,
) -> tuple[Bundling, dict[str, float], tuple]:
    """The bundling of a pair of rows, cached by its ends' positions relative to the lower
    row's first port (moving both rows together, as wrapping into columns does, hits the
    cache); the Bundling returned is in those relative coordinates: its nodes are at
    ``nodes + origin``.  Also its ink figures and its cache key."""
    x0 = float(out_x[0]) if len(out_x) else 0.0
    in_x, out_x, out_y, in_y = in_x - x0, out_x - x0, out_y - in_y, 0.0
    key = (
        upper.name,
        lower.name,
        M.tobytes(),
        M.shape,
        thr,
        in_x.tobytes(),
        out_x.tobytes(),
        in_y,
        out_y,
    )
    hit = state.bundling_cache.get(key)
    if hit is None:
        b = bundle_edges(M, thr, in_x, out_x, in_y, out_y, bundle=not state.options.draft)
        hit = (b, ink_and_crossings(b))
        state.bundling_cache[key] = hit
    return hit[0], hit[1], key


@dataclass
class _Assembly:
    """What :func:`compose_scene` collects row by row."""

    rows: list[Row] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    row_index: dict[str, int] = field(default_factory=dict)
    between: dict[int, int] = field(default_factory=dict)  # layer row → its in-between row
    first_cluster: list[int] = field(default_factory=list)
    ports_out: list[np.ndarray] = field(default_factory=list)
    ports_in: list[np.ndarray] = field(default_factory=list)
    centres: dict[str, np.ndarray] = field(default_factory=dict)
    x_min: float = 0.0
    x_max: float = 0.0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(3))  # order: ours, greedy, random


def compose_scene(state: LayoutState) -> Scene:
    """The Scene of the current state (cache hits for everything the last edit left alone)."""
    o = state.options
    snap = state.snapshot
    classes = list(snap.classes)
    per_row = []
    for r in state.rows:
        items = []
        for cid in state.order[r.name]:
            c = state.content(r, state.members[r.name][cid])
            items.append((cid, c, state.geometry(c)))
        per_row.append(items)
    place = _plan(state, per_row)
    plan, bands = place.plan, place.bands
    asm = _Assembly()
    built = ClustersBuilder(len(classes))
    for i, (r, items) in enumerate(zip(state.rows, per_row, strict=True)):
        span = plan.spans[int(plan.column[i])] if plan.columns > 1 else (0.0, 0.0)
        if bands.lane[i] >= 0:  # a branch's row: its lane
            span = (float(place.lane_span[i, 0]), float(place.lane_span[i, 1]))
        y = float(plan.between_y[i - 1]) if i > 0 else 0.0
        if bands.sources[i]:  # one in-between row carries the edges from all its sources
            name = f"between:{state.rows[bands.sources[i][0]].name}|{r.name}"
            asm.row_index[name] = asm.between[i] = len(asm.rows)
            asm.rows.append(
                Row(name, ROW_BETWEEN, y, o.between_height, -1, "", span[0], span[1] - span[0])
            )
        if plan.starts_column(i):
            prev = asm.rows[asm.row_index[state.rows[i - 1].name]]
            asm.labels += _continuation_labels(prev, r.name, span[0], y, place.label_room)
        _add_row(state, r, items, asm, built, classes, plan, i, span)
    asm.first_cluster.append(len(built))

    with state.timed("edges"):
        edges, bundles, ink = _edges(state, asm, plan, bands)
    clusters, neurons = built.build()
    C = len(clusters.id)
    dens = clusters.density.astype(np.float64)
    area_img = float(
        sum(float((c.rects[:, 2] * c.rects[:, 3]).sum()) for it in per_row for _, c, _ in it)
    )
    area_box = float(sum(c.fw * c.fh for it in per_row for _, c, _ in it))
    stats = {
        "rows": float(len(state.rows)),
        "columns": float(plan.columns),
        "clusters": float(C),
        "neurons": float(len(neurons.unit)),
        "pieces": float(len(edges.weight)),
        "bundles": float(len(bundles.sign)),
        "density_mean": float(dens.mean()) if C else 0.0,
        "density_area": area_img / area_box if area_box > 0 else 0.0,
        "order_score": float(asm.scores[0]),
        "order_score_greedy": float(asm.scores[1]),
        "order_score_random": float(asm.scores[2]),
        **ink,
    }
    if not state.options.draft:  # (a draft counts no crossings: ~0.2 s at 100k neurons)
        stats["row_crossings_weighted"] = state.total_crossings(asm.centres)
    stats.update({f"row_{k}": v for k, v in state.ordering_stats.items()})
    margin = 40.0
    return Scene(
        rows=asm.rows,
        clusters=clusters,
        neurons=neurons,
        edges=edges,
        bundles=bundles,
        labels=asm.labels,
        classes=[classes[int(k)] for k in state.class_order],
        class_order=state.class_order.astype(np.int32),
        units=list(state.unit_names),
        bounds=(
            min(asm.x_min, plan.spans[0][0] if plan.spans else 0.0) - margin,
            -margin,
            asm.x_max + margin,
            plan.height + margin,
        ),
        step=snap.step,
        stats=stats,
        links=[
            (
                asm.row_index[state.rows[s].name],
                asm.row_index[state.rows[i].name],
                asm.between[i],
            )
            for s, i in bands.links()
        ],
    )


def _row_height(state: LayoutState, items: list[tuple[int, Any, Any]]) -> tuple[float, float]:
    """``(frame height, row height)`` of a layer row."""
    o = state.options
    hmax = max((g.h for _, _, g in items), default=0.0)
    # All frames of a row share its height (as in the paper's figures): edges leave every
    # frame at one y and never cross a neighbouring frame inside the row.
    frame_h = float(np.ceil(hmax / o.row_quantum) * o.row_quantum)
    return frame_h, frame_h + 2 * o.row_padding


def _row_label(state: LayoutState, r: Any, left: float, y: float, branch: bool = False) -> Label:
    """The row's name and size, right-aligned left of its first cluster (a ``branch`` row, in
    a lane of its group: its unit's module path after the path all the group's units share —
    ``branch2.0.conv`` rather than ``mixed1/inception3a.branch2.0.conv``, ``block.2.fc1``
    rather than a bare ``2.fc1``)."""
    n_neur = state.snapshot.graph.unit(r.unit).channels
    name = f"{r.name} ({len(r.groups)} groups)" if r.groups else r.name
    if branch:
        shared = len(module_prefix(state.snapshot.graph.groups[r.group].units))
        parts = r.unit.split(".")
        if shared and shared < len(parts) and parts[shared][:1].isdigit():
            shared -= 1  # a bare index reads badly: ``block.0.0`` rather than ``0.0``
        name = ".".join(parts[shared:]) or r.unit
    return Label(f"{name}  {n_neur} neurons", left - ROW_LABEL, y, ROW_LABEL, "right")


@dataclass(frozen=True)
class _Placement:
    """Where :func:`_plan` puts the rows: the columns (indexed by row), each row's lane span
    (``(x0, x1)`` after the move; its band's own extent for a row alone in its band), the
    row labels' height on screen (scene units) and the bands."""

    plan: ColumnPlan
    lane_span: np.ndarray
    label_room: float
    bands: Bands


def _plan(state: LayoutState, per_row: list[list[tuple[int, Any, Any]]]) -> _Placement:
    """Where the rows go: rows side by side in bands (:mod:`~cnnvis_gl.layout.lanes`), the
    bands in one column or in columns filling ``options.view_size``; and the height the row
    labels take on screen when the whole network is fitted to that view, in scene units (the
    renderer never draws them under ``LABEL_FLOOR_PX`` pixels: fitted, a label is larger than
    its ``ROW_LABEL`` units, and the columns leave it that room)."""
    o = state.options
    n = len(state.rows)
    heights, rights, anchors = np.zeros(n), np.zeros(n), np.zeros(n)
    chars = np.zeros(n)
    bands = state.bands()
    for i, (r, items) in enumerate(zip(state.rows, per_row, strict=True)):
        heights[i] = _row_height(state, items)[1]
        xs, ws = state.row_extent(r)
        if len(xs):
            lab = _row_label(state, r, float(xs[0]), 0.0, bands.lane[i] >= 0)
            anchors[i], chars[i], rights[i] = lab.x, len(lab.text), float(xs[-1] + ws[-1])
    groups = np.array([r.group for r in state.rows], dtype=np.int64)
    first = np.searchsorted(bands.band, np.arange(bands.count))  # first row of each band
    breakable = bands.breakable()[first]
    aspect = o.view_size[0] / o.view_size[1] if o.view_size else None
    room = ROW_LABEL
    for _ in range(4):
        lefts = anchors - CHAR_WIDTH * room * chars
        off, spans = lane_offsets(bands, groups, lefts, rights, LANE_GAP)
        bp = plan_columns(
            np.maximum.reduceat(heights, first) if n else heights,
            np.minimum.reduceat(lefts + off, first) if n else lefts,
            np.maximum.reduceat(rights + off, first) if n else rights,
            o.between_height,
            aspect,
            continue_height=2.5 * room,
            breakable=breakable,
        )
        if not o.view_size:
            break
        width = bp.spans[-1][1] - bp.spans[0][0] if bp.spans else 1.0
        zoom = min(o.view_size[0] / max(width, 1.0), o.view_size[1] / max(bp.height, 1.0))
        need = LABEL_FLOOR_PX / max(0.88 * zoom, 1e-6)  # fitted with the scene's and view's margins
        if need <= room * 1.02:
            break
        room = need
    b = bands.band
    between_y = np.where(b[1:] > 0, bp.between_y[np.maximum(b[1:] - 1, 0)], bp.y[b[1:]]) if n else b
    plan = ColumnPlan(bp.column[b], bp.dx[b] + off, bp.y[b], between_y, bp.spans, bp.height)
    return _Placement(plan, spans + bp.dx[b][:, None], room, bands)


def _continuation_labels(prev: Row, lower: str, x: float, y: float, room: float) -> list[Label]:
    """Where the chain wraps: "→ next column" under the column's last row ``prev`` (short: it
    must not reach into the next column), "from" over the in-between row at ``(x, y)``, the
    top of the next column (its edges start at ``prev``'s clusters, mapped into this column).
    ``room``: the row labels' height on screen."""
    x_prev = prev.x if prev.width > 0 else 0.0
    size = ROW_LABEL * 0.8
    return [
        Label(f"{lower} → next column", x_prev,
              prev.y + prev.height + room, size, "left"),
        Label(f"from {prev.name}", x, y + room, size, "left"),
    ]  # fmt: skip


def _add_row(
    state: LayoutState,
    r: Any,
    items: list[tuple[int, Any, Any]],
    asm: _Assembly,
    built: ClustersBuilder,
    classes: list[str],
    plan: ColumnPlan,
    i: int,
    span: tuple[float, float],
) -> None:
    """Layer row ``i``: its band, its clusters with their neurons and labels, its edge ports."""
    o = state.options
    frame_h, height = _row_height(state, items)
    y = float(plan.y[i])
    ri = len(asm.rows)
    asm.row_index[r.name] = ri
    asm.rows.append(Row(r.name, r.kind, y, height, r.group, r.unit, span[0], span[1] - span[0], r.groups))
    top = y + o.row_padding
    xs, ws = state.row_extent(r)
    xs = xs + float(plan.dx[i])
    asm.centres[r.name] = xs + ws / 2
    asm.first_cluster.append(len(built))
    outs, ins = [], []
    data = state.data(r.unit)
    u_index = state.unit_index[r.unit]
    K = len(classes)
    for (cid, c, g), x in zip(items, xs, strict=True):
        fx, fy = x + g.feat[0], top + g.feat[1]
        # the matrix fills the frame's height (frames of a row share the tallest's height)
        mat = (
            x + g.mat[0],
            top + g.mat[1],
            g.mat[2],
            max(g.mat[3], frame_h - g.mat[1] - o.padding),
        )
        built.add(
            id=cid,
            row=ri,
            rect=(x, top, g.w, frame_h),
            facet=state.facets.get(cid, o.facet),
            color=id_color(cid),
            features_rect=(fx, fy, g.feat[2], g.feat[3]),
            matrix_rect=mat,
            unit=u_index,
            index=c.members,
            neuron_rect=c.rects + np.array([fx, fy, 0.0, 0.0]),
            matrix_row=c.matrix_row,
            importance=data.importance[c.members],
            activation=data.activation[c.members],
            density=c.density,
            order_score=c.score,
        )
        asm.scores += (c.score, c.score_greedy, c.score_random)
        outs.append((x + g.w / 2, top + frame_h))
        ins.append((x + g.w / 2, top))
        asm.labels.append(
            Label(
                f"{c.members.size}",
                x + o.padding,
                top + o.padding + o.cluster_label / 2,
                o.cluster_label * 0.8,
                "left",
                "cluster",
                cid,
            )
        )
        if 0 < K <= o.max_class_labels:
            asm.labels += _class_labels(state, cid, mat, g.cell_w, classes)
    asm.ports_out.append(np.asarray(outs, dtype=np.float64).reshape(-1, 2))
    asm.ports_in.append(np.asarray(ins, dtype=np.float64).reshape(-1, 2))
    left = float(xs[0]) if len(xs) else 0.0
    if len(xs):
        asm.x_min = min(asm.x_min, left)
        asm.x_max = max(asm.x_max, float(xs[-1] + items[-1][2].w))
    row_label = _row_label(state, r, left, y + height / 2, state.bands().lane[i] >= 0)
    asm.labels.append(row_label)
    asm.x_min = min(asm.x_min, row_label.left)


def _class_labels(
    state: LayoutState,
    cid: int,
    mat: tuple[float, float, float, float],
    cell_w: float,
    classes: list[str],
) -> list[Label]:
    o = state.options
    size = min(o.class_label * 0.8, 10.0)
    chars = max(1, int(cell_w / (CHAR_WIDTH * size)))
    y = mat[1] - o.class_label / 2
    return [
        Label(
            classes[int(k)][:chars],
            mat[0] + (j + 0.5) * cell_w,
            y,
            size,
            "center",
            "class",
            cid,
        )
        for j, k in enumerate(state.class_order)
    ]


def _edges(
    state: LayoutState, asm: _Assembly, plan: ColumnPlan, bands: Bands
) -> tuple[Edges, Bundles, dict[str, float]]:
    builder = SceneEdgesBuilder()
    ink = {
        "ink_bundled": 0.0,
        "ink_direct": 0.0,
        "crossings_bundled": 0.0,
        "crossings_direct": 0.0,
        "edges": 0.0,
    }
    first, ports_in = asm.first_cluster, asm.ports_in
    links = bands.links() if state.options.draft_edges or not state.options.draft else []
    for s, i in links:  # (a draft without edges: none, and no weights read)
        up, lo = state.rows[s], state.rows[i]
        M = state.cluster_matrix(up, lo)
        if M is None or M.size == 0:
            continue
        thr = edge_threshold(M, state.options)
        between = asm.between[i]
        rb = asm.rows[between]
        in_y, out_y = rb.y, rb.y + rb.height
        ports_out = stems = asm.ports_out[s]
        if plan.starts_column(i):  # the edges start at the upper clusters' x, in lo's column
            ports_out = np.stack(
                [plan.continued_ports(ports_out[:, 0], i), np.full(len(ports_out), in_y)], 1
            )
        elif bands.band[i] - bands.band[s] > 1:  # down the source's lane, then bundled
            ports_out = np.stack([ports_out[:, 0], np.full(len(ports_out), in_y)], 1)
        b, figures, bkey = _bundle(
            state, up, lo, M, thr, ports_out[:, 0], ports_in[i][:, 0], in_y, out_y
        )
        for k, v in figures.items():
            ink[k] += v
        ink["edges"] += float(len(b.curve_edges) + len(b.direct_edges))
        pkey = (bkey, ports_out.tobytes(), ports_in[i].tobytes(), stems.tobytes())
        p = state.pieces_cache.get(pkey)
        if p is None:
            origin = np.array([ports_in[i][0, 0] if len(ports_in[i]) else 0.0, in_y])
            placed = replace(b, nodes=np.asarray(b.nodes, dtype=np.float64).reshape(-1, 2) + origin)
            p = edge_pieces(placed, M, ports_out, ports_in[i])
            if stems is not ports_out and not plan.starts_column(i):
                p = with_stems(p, stems)
            state.pieces_cache[pkey] = p
        m, n = M.shape
        builder.add(p, np.arange(m) + first[s], np.arange(n) + first[i], between)
    edges, bundles = builder.build()
    return edges, bundles, ink
