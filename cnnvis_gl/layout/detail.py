"""Neuron-level edges for a zoomed-in view (SPEC §6: "input clusters (or neurons, when zoomed in)").

Zoomed out, the Scene's edges join *clusters* (the mean weight between two clusters).  Zoomed
in far enough to tell neurons apart, the viewer asks :func:`neuron_edges` for the edges between
the *neurons* of the clusters in view: for each pair of consecutive layer rows, the neuron ×
neuron weight sub-matrix of the visible clusters is thresholded (top ``fraction`` by ``|w|``,
per row pair), biclustered by sign and bundled through nodes in the in-between row, exactly as
the cluster edges are (:func:`cnnvis_gl.analysis.bundle_edges`).

Choices:

* An edge leaves its upper neuron at the bottom of the neuron's cluster frame, straight below
  the neuron's patch (features facet) or at the neuron's matrix-row rank spread across the frame
  (matrix facet), and enters the lower neuron at the top of its frame the same way, so the edges
  stay in the in-between row like the cluster edges.
* Between two wide layers the sub-matrix can hold hundreds of thousands of weights; the
  biclustering runs on the GPU (CuPy) when there is one (``backend``), else NumPy.
* At most ``max_neurons`` neurons per row take part (the ones of the clusters nearest the
  centre of the request first), so a request costs a bounded time on the CPU.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import bundle_edges, threshold_for_top
from ..xp import asarray
from ..xp import xp as default_xp
from .columns import continued_x
from .edges import RowSpec, SceneEdgesBuilder, edge_pieces, row_weights, with_stems
from .scene import FACET_MATRIX, ROW_BETWEEN, Bundles, Edges, Scene

if TYPE_CHECKING:
    from ..run.snapshot import Snapshot

__all__ = ["NeuronEdges", "neuron_edges", "clusters_in_rect", "clusters_for_view"]


@dataclass(frozen=True)
class NeuronEdges:
    """Bundled neuron → neuron edges among some clusters of a Scene.

    ``edges`` has the layout of :class:`~cnnvis_gl.layout.scene.Edges` except that ``src`` and
    ``dst`` index ``Scene.neurons`` (``-1`` at a bundle node) and ``weight`` is the neuron
    weight (a shared piece: the mean of the weights it carries); ``bundles`` are its in-between
    nodes.  ``clusters``: the Scene clusters covered (those asked for, less any that the
    ``max_neurons`` cap left out); ``kept``: neuron edges drawn (bundled or direct); ``weights``: neuron pairs considered; ``thresholds``: ``|w|`` threshold per row pair.
    """

    edges: Edges
    bundles: Bundles
    clusters: np.ndarray
    kept: int
    weights: int
    thresholds: dict[tuple[int, int], float]

    def neuron_clusters(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """Cluster of each piece's source and destination neuron (``-1`` at a bundle node)."""
        nc = np.asarray(scene.neurons.cluster)
        s, d = np.asarray(self.edges.src), np.asarray(self.edges.dst)
        return (
            np.where(s >= 0, nc[np.maximum(s, 0)], -1),
            np.where(d >= 0, nc[np.maximum(d, 0)], -1),
        )


def clusters_in_rect(scene: Scene, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Indices of the clusters whose frame meets ``rect = (x0, y0, x1, y1)`` (scene units)."""
    r = np.asarray(scene.clusters.rect, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = rect
    hit = (r[:, 0] < x1) & (r[:, 0] + r[:, 2] > x0) & (r[:, 1] < y1) & (r[:, 1] + r[:, 3] > y0)
    return np.flatnonzero(hit)


def clusters_for_view(scene: Scene, visible: tuple[float, float, float, float]) -> np.ndarray:
    """The clusters whose neuron edges a view of ``visible`` (scene ``x0, y0, x1, y1``) needs:
    those of the layer rows in view that it shows (with a quarter of a view-width to each side,
    so small pans reuse the request), and every cluster of the layer rows just above and just
    below, where the edges leaving the view go.  A view of only an in-between band asks for
    the two rows it joins."""
    x0, y0, x1, y1 = (float(v) for v in visible)
    w = x1 - x0
    layer = [k for k, r in enumerate(scene.rows) if r.kind != ROW_BETWEEN]
    if not layer:
        return np.zeros(0, dtype=np.int64)
    top = np.asarray([scene.rows[k].y for k in layer])
    bottom = top + np.asarray([scene.rows[k].height for k in layer])
    inside = np.flatnonzero((top < y1) & (bottom > y0))
    if inside.size:
        near = [int(inside[0]) - 1, int(inside[-1]) + 1]
    else:  # between two layer rows
        above = int(np.searchsorted(bottom, y0, side="right")) - 1
        near = [above, above + 1]
    rows = [layer[i] for i in near if 0 <= i < len(layer)]
    shown = clusters_in_rect(scene, (x0 - w / 4, y0, x1 + w / 4, y1))
    extra = np.flatnonzero(np.isin(np.asarray(scene.clusters.row), rows))
    return np.union1d(shown, extra).astype(np.int64)


def _ports(scene: Scene, neurons: np.ndarray, bottom: bool) -> np.ndarray:
    """``[len(neurons), 2]``: where the neurons' edges leave (``bottom``) / enter their frame."""
    c = scene.clusters
    ci = np.asarray(scene.neurons.cluster)[neurons]
    frame = np.asarray(c.rect, dtype=np.float64)[ci]
    nr = np.asarray(scene.neurons.rect, dtype=np.float64)[neurons]
    x = nr[:, 0] + 0.5 * nr[:, 2]
    matrix = np.asarray(c.facet)[ci] == FACET_MATRIX
    if matrix.any():
        rank = np.asarray(scene.neurons.matrix_row, dtype=np.float64)[neurons]
        size = np.asarray(c.size, dtype=np.float64)[ci]
        spread = frame[:, 0] + frame[:, 2] * (rank + 0.5) / np.maximum(size, 1.0)
        x = np.where(matrix, spread, x)
    y = frame[:, 1] + (frame[:, 3] if bottom else 0.0)
    return np.stack([x, y], axis=1)


def _starts(
    scene: Scene, up: int, lo: int, row: int, out_ports: np.ndarray
) -> tuple[np.ndarray, float, bool]:
    """Where the edges from row ``up`` to row ``lo`` start (their in-between row is ``row``,
    -1: none), the y their bundling starts at, and whether they first run down their
    source's lane (a stem to add)."""
    ru, rl = scene.rows[up], scene.rows[lo]
    rb = scene.rows[row] if row >= 0 else None
    if rb is not None and rb.y + rb.height <= ru.y:
        # the lower row starts the next column: the edges restart at its top (as the cluster
        # edges do), from the upper ports moved into that column
        shift = (rl.x + rl.width / 2) - (ru.x + ru.width / 2)
        x = continued_x(out_ports[:, 0], shift, (rb.x, rb.x + rb.width))
        return np.stack([x, np.full(len(x), rb.y)], 1), rb.y, False
    top = ru.y + ru.height
    if rb is not None and rb.y > top + 1.0:  # down the source's lane first
        return np.stack([out_ports[:, 0], np.full(len(out_ports), rb.y)], 1), rb.y, True
    return out_ports, top, False


def _row_neurons(
    scene: Scene, clusters: np.ndarray, row: int, centre: np.ndarray, max_neurons: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scene neuron indices of ``clusters`` on ``row`` (whole clusters, nearest the centre
    first, at most ``max_neurons``; a first cluster larger than that is cut), and the clusters
    left out."""
    c = scene.clusters
    mine = clusters[np.asarray(c.row)[clusters] == row]
    if not mine.size:
        return np.zeros(0, dtype=np.int64), mine
    rect = np.asarray(c.rect, dtype=np.float64)[mine]
    mid = rect[:, :2] + 0.5 * rect[:, 2:]
    mine = mine[np.argsort(np.hypot(*(mid - centre).T), kind="stable")]
    nc = np.asarray(scene.neurons.cluster)
    out: list[np.ndarray] = []
    total = 0
    for i, k in enumerate(mine):
        idx = np.flatnonzero(nc == k)
        if total + idx.size > max_neurons and out:
            return np.sort(np.concatenate(out)), mine[i:]
        out.append(idx[: max_neurons - total])
        total += min(idx.size, max_neurons - total)
    return np.sort(np.concatenate(out)), mine[:0]


def neuron_edges(
    snapshot: Snapshot,
    scene: Scene,
    clusters: Any,
    *,
    fraction: float = 0.25,
    max_neurons: int = 1024,
    max_edges: int | None = 3000,
    backend: ModuleType | None = None,
) -> NeuronEdges:
    """Bundled neuron-level edges among ``clusters`` of ``scene``.

    Parameters
    ----------
    snapshot
        The snapshot the Scene was built from (its neuron weights).
    scene
        The Scene on screen.
    clusters
        Indices into ``scene.clusters`` (e.g. :func:`clusters_in_rect` of the view).
    fraction
        Keep the top ``fraction`` of the neuron weights by ``|w|``, per pair of rows.
    max_neurons
        At most this many neurons per row (whole clusters, nearest the request's centre first).
    max_edges
        At most this many of the strongest kept edges per pair of rows (level of detail: more
        do not read, and on a CPU they cost seconds to bicluster); ``None``: no cap.
    backend
        ``numpy`` or ``cupy`` for the biclustering (default: CuPy when a GPU is usable).

    Returns
    -------
    NeuronEdges
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if max_neurons < 1:
        raise ValueError(f"max_neurons must be at least 1, got {max_neurons}")
    if max_edges is not None and max_edges < 1:
        raise ValueError(f"max_edges must be at least 1 (or None: no cap), got {max_edges}")
    xp = backend or default_xp
    cl = np.unique(np.asarray(clusters, dtype=np.int64).ravel())
    if cl.size and (cl[0] < 0 or cl[-1] >= len(scene.clusters.id)):
        raise IndexError(f"cluster indices out of range 0…{len(scene.clusters.id) - 1}")
    rect = np.asarray(scene.clusters.rect, dtype=np.float64)[cl]
    centre = (rect[:, :2] + 0.5 * rect[:, 2:]).mean(axis=0) if cl.size else np.zeros(2)
    links = scene.links
    if not links:  # a hand-made scene: consecutive layer rows
        layer_rows = [k for k, r in enumerate(scene.rows) if r.kind != ROW_BETWEEN]
        between = {r.name: k for k, r in enumerate(scene.rows) if r.kind == ROW_BETWEEN}
        links = [
            (up, lo, between.get(f"between:{scene.rows[up].name}|{scene.rows[lo].name}", -1))
            for up, lo in itertools.pairwise(layer_rows)
        ]
    builder = SceneEdgesBuilder()
    kept = considered = 0
    left_out: set[int] = set()
    thresholds: dict[tuple[int, int], float] = {}
    for up, lo, row in links:
        upper, left_up = _row_neurons(scene, cl, up, centre, max_neurons)
        lower, left_lo = _row_neurons(scene, cl, lo, centre, max_neurons)
        left_out.update(left_up.tolist())
        left_out.update(left_lo.tolist())
        if not upper.size or not lower.size:
            continue
        ru, rl = scene.rows[up], scene.rows[lo]
        W = row_weights(snapshot, RowSpec.of(ru), RowSpec.of(rl))
        if W is None:
            continue
        ch_u = np.asarray(scene.neurons.index, dtype=np.int64)[upper]
        ch_l = np.asarray(scene.neurons.index, dtype=np.int64)[lower]
        M = np.asarray(W, dtype=np.float64)[np.ix_(ch_l, ch_u)].T  # inputs × outputs
        thr = threshold_for_top(M, fraction)
        if max_edges is not None and max_edges < M.size:
            strongest = np.partition(np.abs(M).ravel(), M.size - max_edges)[M.size - max_edges]
            thr = max(thr, float(strongest))
        thr = thr if thr > 0 else float(np.finfo(np.float64).tiny)
        thresholds[(up, lo)] = thr
        out_ports, in_ports = _ports(scene, upper, True), _ports(scene, lower, False)
        starts, top, long = _starts(scene, up, lo, row, out_ports)
        b = bundle_edges(asarray(M, xp), thr, starts[:, 0], in_ports[:, 0], top, rl.y)
        p = edge_pieces(b, M, starts, in_ports)
        if long:
            p = with_stems(p, out_ports)
        considered += M.size
        kept += len(b.curve_edges) + len(b.direct_edges)
        builder.add(p, upper, lower, row)
    edges, bundles = builder.build()
    covered = np.asarray([c for c in cl.tolist() if c not in left_out], dtype=np.int64)
    return NeuronEdges(edges, bundles, covered, kept, considered, thresholds)
