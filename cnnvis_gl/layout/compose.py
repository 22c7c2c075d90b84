"""Composition of a :class:`~cnnvis_gl.layout.scene.Scene` from a layout state.

Frames, patches and matrices per cluster (from the cached contents), rows stacked top-down with
in-between rows, bundled edges per pair of consecutive rows, labels and quality figures.
Everything expensive comes from the state's caches, so composing after an edit costs
milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..analysis import Bundling, bundle_edges, ink_and_crossings
from .edges import RowSpec, SceneEdgesBuilder, edge_pieces, edge_threshold
from .ids import id_color
from .scene import ROW_BETWEEN, Bundles, Clusters, Edges, Label, Neurons, Row, Scene

if TYPE_CHECKING:
    from .state import LayoutState

__all__ = ["compose_scene"]


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
) -> tuple[Bundling, dict[str, float]]:
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
        b = bundle_edges(M, thr, in_x, out_x, in_y, out_y)
        hit = (b, ink_and_crossings(b))
        state.bundling_cache[key] = hit
    return hit


def compose_scene(state: LayoutState) -> Scene:
    """The Scene of the current state (cache hits for everything the last edit left alone)."""
    o = state.options
    snap = state.snapshot
    classes = list(snap.classes)
    K = len(classes)
    per_row = []
    for r in state.rows:
        items = []
        for cid in state.order[r.name]:
            c = state.content(r, state.members[r.name][cid])
            items.append((cid, c, state.geometry(c)))
        per_row.append(items)

    rows: list[Row] = []
    labels: list[Label] = []
    row_index: dict[str, int] = {}
    c_id, c_row, c_rect, c_size, c_facet, c_color = [], [], [], [], [], []
    c_feat, c_mat, c_dens, c_score = [], [], [], []
    n_unit, n_index, n_cluster, n_rect, n_mrow, n_imp, n_act = [], [], [], [], [], [], []
    first_cluster: list[int] = []
    ports_out: list[np.ndarray] = []
    ports_in: list[np.ndarray] = []
    centres: dict[str, np.ndarray] = {}
    y = 0.0
    x_min, x_max = 0.0, 0.0
    stat_g = stat_r = stat_s = 0.0
    for i, (r, items) in enumerate(zip(state.rows, per_row, strict=True)):
        if i > 0:
            prev = state.rows[i - 1]
            name = f"between:{prev.name}|{r.name}"
            row_index[name] = len(rows)
            rows.append(Row(name, ROW_BETWEEN, y, o.between_height, -1, ""))
            y += o.between_height
        hmax = max((g.h for _, _, g in items), default=0.0)
        # All frames of a row share its height (as in the paper's figures): edges leave
        # every frame at one y and never cross a neighbouring frame inside the row.
        frame_h = float(np.ceil(hmax / o.row_quantum) * o.row_quantum)
        height = frame_h + 2 * o.row_padding
        ri = len(rows)
        row_index[r.name] = ri
        rows.append(Row(r.name, r.kind, y, float(height), r.group, r.unit))
        top = y + o.row_padding
        xs, ws = state.row_extent(r)
        centres[r.name] = xs + ws / 2
        first_cluster.append(len(c_id))
        outs, ins = [], []
        data = state.data(r.unit)
        u_index = state.unit_index[r.unit]
        for (cid, c, g), x in zip(items, xs, strict=True):
            ci = len(c_id)
            c_id.append(cid)
            c_row.append(ri)
            c_rect.append((x, top, g.w, frame_h))
            c_size.append(c.members.size)
            c_facet.append(state.facets.get(cid, o.facet))
            c_color.append(id_color(cid))
            fx, fy = x + g.feat[0], top + g.feat[1]
            c_feat.append((fx, fy, g.feat[2], g.feat[3]))
            # the matrix fills the frame's height (frames of a row share the tallest's height)
            c_mat.append(
                (
                    x + g.mat[0],
                    top + g.mat[1],
                    g.mat[2],
                    max(g.mat[3], frame_h - g.mat[1] - o.padding),
                )
            )
            c_dens.append(c.density)
            c_score.append(c.score)
            stat_s += c.score
            stat_g += c.score_greedy
            stat_r += c.score_random
            n_unit.append(np.full(c.members.size, u_index, dtype=np.int32))
            n_index.append(c.members)
            n_cluster.append(np.full(c.members.size, ci, dtype=np.int32))
            n_rect.append(c.rects + np.array([fx, fy, 0.0, 0.0]))
            n_mrow.append(c.matrix_row)
            n_imp.append(data.importance[c.members])
            n_act.append(data.activation[c.members])
            outs.append((x + g.w / 2, top + frame_h))
            ins.append((x + g.w / 2, top))
            labels.append(
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
                labels += _class_labels(state, cid, c_mat[-1], g.cell_w, classes)
        ports_out.append(np.asarray(outs, dtype=np.float64).reshape(-1, 2))
        ports_in.append(np.asarray(ins, dtype=np.float64).reshape(-1, 2))
        n_neur = snap.graph.unit(r.unit).channels
        if len(xs):
            left = float(xs[0])
            x_min = min(x_min, left)
            x_max = max(x_max, float(c_rect[-1][0] + c_rect[-1][2]))
        else:
            left = 0.0
        text = f"{r.name}  {n_neur} neurons"
        labels.append(Label(text, left - 16.0, y + height / 2, 16.0, "right", "row"))
        x_min = min(x_min, left - 16.0 - 0.6 * 16.0 * len(text))
        y += float(height)
    first_cluster.append(len(c_id))

    with state.timed("edges"):
        edges, bundles, ink = _edges(state, rows, row_index, first_cluster, ports_out, ports_in)

    C = len(c_id)
    clusters = Clusters(
        id=np.asarray(c_id, dtype=np.int64),
        row=np.asarray(c_row, dtype=np.int32),
        rect=np.asarray(c_rect, dtype=np.float32).reshape(C, 4),
        size=np.asarray(c_size, dtype=np.int32),
        facet=np.asarray(c_facet, dtype=np.int8),
        color=np.asarray(c_color, dtype=np.float32).reshape(C, 3),
        features_rect=np.asarray(c_feat, dtype=np.float32).reshape(C, 4),
        matrix_rect=np.asarray(c_mat, dtype=np.float32).reshape(C, 4),
        density=np.asarray(c_dens, dtype=np.float32),
        order_score=np.asarray(c_score, dtype=np.float32),
    )

    def cat(parts: list[np.ndarray], dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

    neurons = Neurons(
        unit=cat(n_unit, np.int32),
        index=cat(n_index, np.int32),
        cluster=cat(n_cluster, np.int32),
        rect=cat(n_rect, np.float32, (4,)),
        matrix_row=cat(n_mrow, np.int32),
        importance=cat(n_imp, np.float32),
        activation=cat(n_act, np.float32, (K,)),
    )
    dens = clusters.density.astype(np.float64)
    area_img = float(
        sum(float((c.rects[:, 2] * c.rects[:, 3]).sum()) for it in per_row for _, c, _ in it)
    )
    area_box = float(sum(c.fw * c.fh for it in per_row for _, c, _ in it))
    stats = {
        "rows": float(len(state.rows)),
        "clusters": float(C),
        "neurons": float(len(neurons.unit)),
        "pieces": float(len(edges.weight)),
        "bundles": float(len(bundles.sign)),
        "density_mean": float(dens.mean()) if C else 0.0,
        "density_area": area_img / area_box if area_box > 0 else 0.0,
        "order_score": stat_s,
        "order_score_greedy": stat_g,
        "order_score_random": stat_r,
        **ink,
        "row_crossings_weighted": state.total_crossings(centres),
    }
    stats.update({f"row_{k}": v for k, v in state.ordering_stats.items()})
    margin = 40.0
    bounds = (x_min - margin, -margin, x_max + margin, y + margin)
    scene = Scene(
        rows=rows,
        clusters=clusters,
        neurons=neurons,
        edges=edges,
        bundles=bundles,
        labels=labels,
        classes=[classes[int(k)] for k in state.class_order],
        class_order=state.class_order.astype(np.int32),
        units=list(state.unit_names),
        bounds=bounds,
        step=snap.step,
        stats=stats,
    )
    return scene


def _class_labels(
    state: LayoutState,
    cid: int,
    mat: tuple[float, float, float, float],
    cell_w: float,
    classes: list[str],
) -> list[Label]:
    o = state.options
    size = min(o.class_label * 0.8, 10.0)
    chars = max(1, int(cell_w / (0.6 * size)))
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
    state: LayoutState,
    rows: list[Row],
    row_index: dict[str, int],
    first: list[int],
    ports_out: list[np.ndarray],
    ports_in: list[np.ndarray],
) -> tuple[Edges, Bundles, dict[str, float]]:
    builder = SceneEdgesBuilder()
    ink = {
        "ink_bundled": 0.0,
        "ink_direct": 0.0,
        "crossings_bundled": 0.0,
        "crossings_direct": 0.0,
        "edges": 0.0,
    }
    for i in range(len(state.rows) - 1):
        up, lo = state.rows[i], state.rows[i + 1]
        M = state.cluster_matrix(up, lo)
        if M is None or M.size == 0:
            continue
        thr = edge_threshold(M, state.options)
        ru, rl = rows[row_index[up.name]], rows[row_index[lo.name]]
        in_y, out_y = ru.y + ru.height, rl.y
        b, figures = _bundle(
            state, up, lo, M, thr, ports_out[i][:, 0], ports_in[i + 1][:, 0], in_y, out_y
        )
        for k, v in figures.items():
            ink[k] += v
        ink["edges"] += float(len(b.curve_edges) + len(b.direct_edges))
        pkey = (id(b), ports_out[i].tobytes(), ports_in[i + 1].tobytes())
        p = state.pieces_cache.get(pkey)
        if p is None:
            p = edge_pieces(b, M, ports_out[i], ports_in[i + 1])
            state.pieces_cache[pkey] = p
        between = row_index[f"between:{up.name}|{lo.name}"]
        m, n = M.shape
        builder.add(p, np.arange(m) + first[i], np.arange(n) + first[i + 1], between)
    edges, bundles = builder.build()
    return edges, bundles, ink
