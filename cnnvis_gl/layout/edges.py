"""Cluster → cluster edges between two consecutive rows (SPEC §4, §6).

* :func:`row_weights` — the signed neuron → neuron weights between two rows, from the snapshot
  (``group_weights`` between collapsed groups, ``unit_weights`` where a row is one unit of an
  expanded group, group weights chained through a collapsed stage);
* :func:`cluster_weights` — the cluster → cluster weight: the mean of the neuron weights
  between the two clusters;
* :func:`edge_threshold` — the ``|w|`` threshold of the options (top fraction or absolute);
* :func:`edge_pieces` — the bundled drawing (:func:`cnnvis_gl.analysis.bundle_edges`) turned
  into Scene edge pieces whose ends sit on the clusters' frames.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import Bundling, threshold_for_top
from ..analysis.bicluster import CURVE_TENSION
from .hierarchy import stage_weights
from .options import LayoutOptions
from .scene import ROW_GROUP, ROW_STAGE, Bundles, Edges

if TYPE_CHECKING:  # torch-free at run time: the layout never needs torch
    from ..model.graph import NeuronGraph
    from ..run.snapshot import Snapshot


__all__ = [
    "with_stems",
    "RowSpec",
    "row_weights",
    "cluster_weights",
    "edge_threshold",
    "EdgePieces",
    "edge_pieces",
    "PIECE_IN",
    "PIECE_OUT",
    "PIECE_DIRECT",
    "SceneEdgesBuilder",
]

PIECE_IN = 0  # input cluster → bundle node
PIECE_OUT = 1  # bundle node → output cluster
PIECE_DIRECT = 2  # input cluster → output cluster (edge in no bicluster)


@dataclass(frozen=True)
class RowSpec:
    """A layer row: a collapsed group (``kind == ROW_GROUP``), one unit of an expanded group
    (``ROW_LAYER``) or a collapsed stage (``ROW_STAGE``: ``groups`` are the group indices it
    stands for, ``group`` and ``unit`` its last group's)."""

    name: str
    kind: int
    group: int
    unit: str
    groups: tuple[int, ...] = ()

    @classmethod
    def of(cls, row: Any) -> RowSpec:
        """The spec of a Scene :class:`~cnnvis_gl.layout.scene.Row`."""
        return cls(row.name, row.kind, row.group, row.unit, tuple(row.groups))


def _source_name(graph: NeuronGraph, upper: RowSpec, lower: RowSpec) -> str | None:
    """Name of ``upper`` as a source in ``lower``'s weight dictionary."""
    if lower.kind in (ROW_GROUP, ROW_STAGE):
        g = graph.groups[upper.group]
        # A group's neurons are its last unit: an upper unit row stands for its group only then.
        return g.name if upper.unit == g.unit else None
    return upper.unit


def row_weights(snapshot: Snapshot, upper: RowSpec, lower: RowSpec) -> np.ndarray | None:
    """Signed neuron weights from ``upper`` into ``lower``, ``[C_lower, C_upper]`` (or None).

    Parameters
    ----------
    snapshot : Snapshot
    upper, lower : RowSpec
        Consecutive rows (``upper`` nearer the input).

    Returns
    -------
    ndarray[C_lower, C_upper] (the snapshot's dtype, usually float32), or None when the snapshot holds no such weights (e.g. the
    rows are not connected directly).
    """
    src = _source_name(snapshot.graph, upper, lower)
    if src is None:
        return None
    if lower.kind == ROW_STAGE:
        return stage_weights(snapshot, src, lower.groups)
    if lower.kind == ROW_GROUP:
        key = f"weights/group/{snapshot.graph.groups[lower.group].name}/{src}"
    else:
        key = f"weights/unit/{lower.unit}/{src}"
    try:
        W = snapshot[key]
    except KeyError:
        return None
    return np.asarray(W)


def _membership(labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Row-stochastic membership ``P[c, i] = 1 / |c|`` for ``i`` in cluster ``c``."""
    P = np.zeros((n_clusters, labels.size))
    P[labels, np.arange(labels.size)] = 1.0
    P /= np.maximum(P.sum(axis=1, keepdims=True), 1.0)
    return P


def cluster_weights(
    W: np.ndarray, upper_labels: np.ndarray, lower_labels: np.ndarray
) -> np.ndarray:
    """Cluster → cluster weights: mean of the neuron weights between the two clusters.

    Parameters
    ----------
    W : ndarray[C_lower, C_upper]
        Neuron weights into the lower row (rows) from the upper row (columns).
    upper_labels, lower_labels : ndarray[int]
        Cluster index (0 … m-1, 0 … n-1) of each neuron of the upper and lower rows.

    Returns
    -------
    ndarray[m, n] float64
        ``M[a, b]`` = mean over upper neurons ``i`` in ``a`` and lower neurons ``j`` in ``b`` of
        ``W[j, i]`` (inputs × outputs, as :func:`cnnvis_gl.analysis.bundle_edges` expects).
    """
    m = int(upper_labels.max()) + 1 if upper_labels.size else 0
    n = int(lower_labels.max()) + 1 if lower_labels.size else 0
    Pu = _membership(np.asarray(upper_labels), m)
    Pl = _membership(np.asarray(lower_labels), n)
    W = np.asarray(W)
    if W.dtype not in (np.float32, np.float64):
        W = W.astype(np.float64)
    # W's own precision for the big product (a float64 copy of a 2048² matrix is 32 MiB).
    return Pu @ (W.T @ Pl.T.astype(W.dtype)).astype(np.float64)


def edge_threshold(M: np.ndarray, options: LayoutOptions) -> float:
    """``|w|`` threshold of a cluster weight matrix: absolute, or keeping the top fraction."""
    if options.edge_threshold is not None:
        return float(options.edge_threshold)
    t = threshold_for_top(M, options.edge_fraction)
    # Zero weights are never edges: the quantile may be 0 for sparse matrices.
    return t if t > 0 else float(np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class EdgePieces:
    """Scene edge pieces of one row pair (cluster indices are local to the two rows)."""

    ctrl: np.ndarray  # float64 [E, 4, 2]
    weight: np.ndarray  # float64 [E]
    sign: np.ndarray  # int8 [E]
    src: np.ndarray  # int64 [E] upper cluster (local index) or -1 (node → output piece)
    dst: np.ndarray  # int64 [E] lower cluster (local index) or -1 (input → node piece)
    bundle: np.ndarray  # int64 [E] local bicluster index, -1 for a direct edge
    piece: np.ndarray  # int8 [E] PIECE_IN | PIECE_OUT | PIECE_DIRECT
    count: np.ndarray  # int32 [E] cluster → cluster edges the piece carries
    nodes: np.ndarray  # float64 [B, 2]
    node_sign: np.ndarray  # int8 [B]
    n_in: np.ndarray  # int32 [B]
    n_out: np.ndarray  # int32 [B]


def _cubic(p0: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Cubic Bézier pieces ``[k, 4, 2]`` from ``p0`` to ``p3`` leaving and entering vertically."""
    dy = (p3[:, 1] - p0[:, 1]) * CURVE_TENSION
    p1 = np.stack([p0[:, 0], p0[:, 1] + dy], axis=1)
    p2 = np.stack([p3[:, 0], p3[:, 1] - dy], axis=1)
    return np.stack([p0, p1, p2, p3], axis=1)


def edge_pieces(
    bundling: Bundling, M: np.ndarray, out_ports: np.ndarray, in_ports: np.ndarray
) -> EdgePieces:
    """Scene pieces of a bundling: a shared piece per (input, bicluster) and (bicluster, output),
    and one piece per leftover edge.

    Parameters
    ----------
    bundling : Bundling
        From ``bundle_edges(M, threshold, in_x, out_x, in_y, out_y)``.
    M : ndarray[m, n]
        The cluster weights it was computed from.
    out_ports : ndarray[m, 2]
        Where edges leave each upper cluster (bottom centre of its frame).
    in_ports : ndarray[n, 2]
        Where edges enter each lower cluster (top centre of its frame).

    Returns
    -------
    EdgePieces
        A shared piece's weight is the mean of the weights of the edges it carries.
    """
    ctrl, weight, src, dst, bund, piece, count = [], [], [], [], [], [], []
    nodes = np.asarray(bundling.nodes, dtype=np.float64).reshape(-1, 2)
    for b, bc in enumerate(bundling.biclusters):
        node = nodes[b]
        rows, cols = np.asarray(bc.rows), np.asarray(bc.cols)
        sub = M[np.ix_(rows, cols)]
        ctrl.append(_cubic(out_ports[rows], np.repeat(node[None], rows.size, axis=0)))
        weight.append(sub.mean(axis=1))
        src.append(rows)
        dst.append(np.full(rows.size, -1))
        piece.append(np.full(rows.size, PIECE_IN))
        count.append(np.full(rows.size, cols.size))
        ctrl.append(_cubic(np.repeat(node[None], cols.size, axis=0), in_ports[cols]))
        weight.append(sub.mean(axis=0))
        src.append(np.full(cols.size, -1))
        dst.append(cols)
        piece.append(np.full(cols.size, PIECE_OUT))
        count.append(np.full(cols.size, rows.size))
        bund.append(np.full(rows.size + cols.size, b))
    de = np.asarray(bundling.direct_edges, dtype=np.int64).reshape(-1, 2)
    if de.size:
        ctrl.append(_cubic(out_ports[de[:, 0]], in_ports[de[:, 1]]))
        weight.append(M[de[:, 0], de[:, 1]])
        src.append(de[:, 0])
        dst.append(de[:, 1])
        piece.append(np.full(len(de), PIECE_DIRECT))
        count.append(np.ones(len(de)))
        bund.append(np.full(len(de), -1))

    def cat(parts: list[np.ndarray], dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
        if not parts:
            return np.zeros((0, *shape), dtype=dtype)
        return np.concatenate(parts).astype(dtype)

    w = cat(weight, np.float64)
    return EdgePieces(
        ctrl=cat(ctrl, np.float64, (4, 2)),
        weight=w,
        sign=np.where(w >= 0, 1, -1).astype(np.int8),
        src=cat(src, np.int64),
        dst=cat(dst, np.int64),
        bundle=cat(bund, np.int64),
        piece=cat(piece, np.int8),
        count=cat(count, np.int32),
        nodes=nodes,
        node_sign=np.asarray([bc.sign for bc in bundling.biclusters], dtype=np.int8),
        n_in=np.asarray([len(bc.rows) for bc in bundling.biclusters], dtype=np.int32),
        n_out=np.asarray([len(bc.cols) for bc in bundling.biclusters], dtype=np.int32),
    )


class SceneEdgesBuilder:
    """Collects the :class:`EdgePieces` of several row pairs into one Scene ``Edges`` and
    ``Bundles`` (local cluster or neuron indices mapped to global ones, bundle indices offset)."""

    def __init__(self) -> None:
        self._e: dict[str, list[np.ndarray]] = {
            k: []
            for k in ("ctrl", "weight", "sign", "src", "dst", "bundle", "row", "piece", "count")
        }
        self._b: dict[str, list[np.ndarray]] = {
            k: [] for k in ("pos", "sign", "n_in", "n_out", "row")
        }
        self.n_bundles = 0

    def add(self, p: EdgePieces, src_index: np.ndarray, dst_index: np.ndarray, row: int) -> None:
        """Add one row pair: ``src_index[k]`` / ``dst_index[k]`` is the global index of the
        upper / lower item ``k``; ``row`` the in-between row of the pieces and nodes."""
        src_index, dst_index = np.asarray(src_index), np.asarray(dst_index)
        e, b = self._e, self._b
        e["ctrl"].append(p.ctrl)
        e["weight"].append(p.weight)
        e["sign"].append(p.sign)
        e["src"].append(np.where(p.src >= 0, src_index[np.maximum(p.src, 0)], -1))
        e["dst"].append(np.where(p.dst >= 0, dst_index[np.maximum(p.dst, 0)], -1))
        e["bundle"].append(np.where(p.bundle >= 0, p.bundle + self.n_bundles, -1))
        e["row"].append(np.full(len(p.weight), row))
        e["piece"].append(p.piece)
        e["count"].append(p.count)
        b["pos"].append(p.nodes)
        b["sign"].append(p.node_sign)
        b["n_in"].append(p.n_in)
        b["n_out"].append(p.n_out)
        b["row"].append(np.full(len(p.nodes), row))
        self.n_bundles += len(p.nodes)

    def build(self) -> tuple[Edges, Bundles]:
        def cat(d: dict, key: str, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
            return np.concatenate(d[key]).astype(dtype) if d[key] else np.zeros((0, *shape), dtype)

        e, b = self._e, self._b
        edges = Edges(
            ctrl=cat(e, "ctrl", np.float32, (4, 2)),
            weight=cat(e, "weight", np.float32),
            sign=cat(e, "sign", np.int8),
            src=cat(e, "src", np.int32),
            dst=cat(e, "dst", np.int32),
            bundle=cat(e, "bundle", np.int32),
            row=cat(e, "row", np.int32),
            piece=cat(e, "piece", np.int8),
            count=cat(e, "count", np.int32),
        )
        bundles = Bundles(
            pos=cat(b, "pos", np.float32, (2,)),
            sign=cat(b, "sign", np.int8),
            n_in=cat(b, "n_in", np.int32),
            n_out=cat(b, "n_out", np.int32),
            row=cat(b, "row", np.int32),
        )
        return edges, bundles


def with_stems(p: EdgePieces, ports: np.ndarray) -> EdgePieces:
    """``p`` (computed with its upper ports moved down, onto an in-between row far below them)
    with a straight stem down from each real upper port ``ports[k]`` to where its pieces now
    start: the edges of a branch's output run down the branch's empty lane to the join."""
    lead = np.flatnonzero(p.src >= 0)
    start = p.ctrl[lead, 0]
    top = np.asarray(ports, dtype=np.float64)[p.src[lead]]
    stem = np.stack([top, top + (start - top) / 3, top + 2 * (start - top) / 3, start], axis=1)
    return replace(
        p,
        ctrl=np.concatenate([p.ctrl, stem]),
        weight=np.concatenate([p.weight, p.weight[lead]]),
        sign=np.concatenate([p.sign, p.sign[lead]]),
        src=np.concatenate([p.src, p.src[lead]]),
        dst=np.concatenate([p.dst, p.dst[lead]]),
        bundle=np.concatenate([p.bundle, p.bundle[lead]]),
        piece=np.concatenate([p.piece, p.piece[lead]]),
        count=np.concatenate([p.count, p.count[lead]]),
    )
