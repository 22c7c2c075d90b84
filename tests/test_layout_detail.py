"""Neuron-level edges of a zoomed-in view (``cnnvis_gl.layout.detail``) on a real BaseCNN snapshot.

Every kept neuron edge is drawn once (bundled or direct), the kept set is exactly the top
fraction of the neuron weights of the row pair, bundles are fully connected, pieces join the
right neurons' frames, and a request is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_layout import basecnn_snapshot

from cnnvis_gl.layout import FACET_MATRIX, ROW_BETWEEN, Scene, build_state
from cnnvis_gl.layout.detail import (
    NeuronEdges,
    clusters_for_view,
    clusters_in_rect,
    neuron_edges,
)
from cnnvis_gl.layout.edges import PIECE_DIRECT, PIECE_IN, PIECE_OUT, RowSpec, row_weights
from cnnvis_gl.layout.edit import set_facet
from cnnvis_gl.run.snapshot import Snapshot


@pytest.fixture(scope="module")
def snapshot(cifar_dir: Path) -> Snapshot:
    return basecnn_snapshot(cifar_dir)


@pytest.fixture(scope="module")
def scene(snapshot: Snapshot) -> Scene:
    return build_state(snapshot).scene


def _layer_rows(scene: Scene) -> list[int]:
    return [k for k, r in enumerate(scene.rows) if r.kind != ROW_BETWEEN]


def _two_rows(scene: Scene, pair: int) -> np.ndarray:
    """All clusters of the ``pair``-th and next layer rows."""
    rows = _layer_rows(scene)[pair : pair + 2]
    return np.flatnonzero(np.isin(np.asarray(scene.clusters.row), rows))


def _weights(snapshot: Snapshot, scene: Scene, up: int, lo: int) -> np.ndarray:
    """The stored group weights into row ``lo`` from row ``up``, read by key (not through
    ``row_weights``; BaseCNN's groups are a chain, so each has one source)."""
    lower = snapshot.graph.groups[scene.rows[lo].group].name
    (key,) = [k for k in snapshot.keys() if k.startswith(f"weights/group/{lower}/")]
    W = np.asarray(snapshot[key], dtype=np.float64)
    spec = [RowSpec(r.name, r.kind, r.group, r.unit) for r in (scene.rows[up], scene.rows[lo])]
    assert np.array_equal(W, row_weights(snapshot, *spec))  # and the library finds the same
    return W


def _drawn_pairs(ne: NeuronEdges) -> list[tuple[int, int]]:
    """Every neuron edge the pieces draw: direct pieces, and in × out of each bundle node."""
    e = ne.edges
    pairs = [
        (int(s), int(d)) for s, d, p in zip(e.src, e.dst, e.piece, strict=True) if p == PIECE_DIRECT
    ]
    for b in range(len(ne.bundles.pos)):
        ins = e.src[(e.bundle == b) & (e.piece == PIECE_IN)]
        outs = e.dst[(e.bundle == b) & (e.piece == PIECE_OUT)]
        pairs += [(int(s), int(d)) for s in ins for d in outs]
    return pairs


@pytest.mark.parametrize("pair", [0, 2, 4])
def test_kept_edges_drawn_once_and_bundles_fully_connected(
    snapshot: Snapshot, scene: Scene, pair: int
) -> None:
    cl = _two_rows(scene, pair)
    ne = neuron_edges(snapshot, scene, cl, fraction=0.25, max_neurons=4096, max_edges=None)
    up, lo = _layer_rows(scene)[pair : pair + 2]
    nc, nrow = np.asarray(scene.neurons.cluster), np.asarray(scene.clusters.row)
    upper = np.flatnonzero(nrow[nc] == up)
    lower = np.flatnonzero(nrow[nc] == lo)
    W = _weights(snapshot, scene, up, lo)
    index = np.asarray(scene.neurons.index)
    M = W[np.ix_(index[lower], index[upper])].T  # upper × lower neurons
    thr = ne.thresholds[(up, lo)]
    keep = np.abs(M) >= thr
    assert 0.2 < keep.mean() <= 0.26  # the top quarter (ties aside)
    expected = {(int(upper[i]), int(lower[j])) for i, j in np.argwhere(keep)}
    drawn = _drawn_pairs(ne)
    assert len(drawn) == len(set(drawn)) == ne.kept  # each kept edge once
    assert set(drawn) == expected
    assert ne.weights == M.size
    # bundles: one sign, all of their edges kept with that sign
    e = ne.edges
    pos = {u: k for k, u in enumerate(upper)}, {v: k for k, v in enumerate(lower)}
    for b in range(len(ne.bundles.pos)):
        ins = e.src[(e.bundle == b) & (e.piece == PIECE_IN)]
        outs = e.dst[(e.bundle == b) & (e.piece == PIECE_OUT)]
        sub = M[np.ix_([pos[0][s] for s in ins], [pos[1][d] for d in outs])]
        assert len(ins) >= 2 or len(outs) >= 2
        assert np.all(np.sign(sub) == ne.bundles.sign[b]) and np.all(np.abs(sub) >= thr)
    # every node in the pair's in-between row
    assert len(ne.bundles.row) > 0
    row = scene.rows[up + 1]
    assert row.kind == ROW_BETWEEN and np.all(np.asarray(ne.bundles.row) == up + 1)
    assert np.all((ne.bundles.pos[:, 1] >= row.y) & (ne.bundles.pos[:, 1] <= row.y + row.height))


def test_pieces_leave_and_enter_the_neurons_frames(snapshot: Snapshot, scene: Scene) -> None:
    ne = neuron_edges(snapshot, scene, _two_rows(scene, 2))
    e, n, c = ne.edges, scene.neurons, scene.clusters
    assert len(e.weight) > 0
    for k in np.flatnonzero(e.src >= 0):
        f = c.rect[n.cluster[e.src[k]]]
        r = n.rect[e.src[k]]
        p0 = e.ctrl[k, 0]
        assert p0[1] == pytest.approx(f[1] + f[3], abs=1e-3)  # bottom of its frame
        assert p0[0] == pytest.approx(r[0] + r[2] / 2, abs=1e-3)  # below its patch
    for k in np.flatnonzero(e.dst >= 0):
        f = c.rect[n.cluster[e.dst[k]]]
        p3 = e.ctrl[k, 3]
        assert p3[1] == pytest.approx(f[1], abs=1e-3)  # top of its frame
        assert f[0] - 1e-3 <= p3[0] <= f[0] + f[2] + 1e-3
    # colours follow the sign of the (mean) weight
    assert np.all((e.weight >= 0) == (e.sign > 0))


def test_matrix_facet_spreads_ports_by_matrix_row(snapshot: Snapshot, cifar_dir: Path) -> None:
    state = build_state(snapshot)
    scene, _ = set_facet(state, FACET_MATRIX)
    ne = neuron_edges(snapshot, scene, _two_rows(scene, 1))
    e, n, c = ne.edges, scene.neurons, scene.clusters
    k = np.flatnonzero(e.src >= 0)
    s = e.src[k]
    f = c.rect[n.cluster[s]]
    expect = f[:, 0] + f[:, 2] * (n.matrix_row[s] + 0.5) / c.size[n.cluster[s]]
    np.testing.assert_allclose(e.ctrl[k, 0, 0], expect, atol=1e-3)


def test_visible_subset_cap_and_determinism(snapshot: Snapshot, scene: Scene) -> None:
    # a view rectangle around the first cluster of row pair 4: only clusters it meets take part
    up = _layer_rows(scene)[4]
    first = int(np.flatnonzero(np.asarray(scene.clusters.row) == up)[0])
    x, y, w, h = (float(v) for v in scene.clusters.rect[first])
    view = (x - 10, y - 10, x + w + 10, y + h + 400)
    cl = clusters_in_rect(scene, view)
    assert first in cl and len(cl) < len(scene.clusters.id)
    r = np.asarray(scene.clusters.rect)[cl]
    assert np.all((r[:, 0] < view[2]) & (r[:, 0] + r[:, 2] > view[0]))
    a = neuron_edges(snapshot, scene, cl)
    b = neuron_edges(snapshot, scene, cl[::-1])
    assert a.kept > 0
    np.testing.assert_array_equal(a.edges.ctrl, b.edges.ctrl)
    np.testing.assert_array_equal(a.edges.src, b.edges.src)
    ends = np.concatenate([a.edges.src[a.edges.src >= 0], a.edges.dst[a.edges.dst >= 0]])
    assert set(np.unique(np.asarray(scene.neurons.cluster)[ends])) <= set(cl.tolist())
    # the neuron cap keeps whole clusters, nearest the request's centre first, and says which
    asked = _two_rows(scene, 3)
    capped = neuron_edges(snapshot, scene, asked, max_neurons=40)
    covered = set(capped.clusters.tolist())
    assert covered < set(asked.tolist())  # some left out, and not reported as covered
    e = capped.edges
    ends = np.unique(np.concatenate([e.src[e.src >= 0], e.dst[e.dst >= 0]]))
    assert set(np.unique(np.asarray(scene.neurons.cluster)[ends]).tolist()) <= covered
    c = scene.clusters
    centre = (c.rect[asked, :2] + c.rect[asked, 2:] / 2).mean(axis=0)
    dist = np.hypot(*(c.rect[:, :2] + c.rect[:, 2:] / 2 - centre).T)
    for row in np.unique(c.row[asked]):
        mine = [k for k in asked if c.row[k] == row]
        took = [k for k in mine if k in covered]
        assert took and (sum(c.size[took]) <= 40 or len(took) == 1)
        assert max(dist[took]) <= min([dist[k] for k in mine if k not in covered] or [np.inf])


def test_edge_cap_keeps_the_strongest(snapshot: Snapshot, scene: Scene) -> None:
    """Between two wide rows the kept edges are capped (level of detail): the strongest ones."""
    cl = _two_rows(scene, 3)
    full = neuron_edges(snapshot, scene, cl, max_edges=None)
    capped = neuron_edges(snapshot, scene, cl, max_edges=500)
    assert full.kept > 500 >= capped.kept > 450  # ties aside
    (pair, thr_full), (_, thr_capped) = *full.thresholds.items(), *capped.thresholds.items()
    assert thr_capped > thr_full
    drawn = set(_drawn_pairs(capped))
    assert drawn <= set(_drawn_pairs(full))  # a subset of the same edges …
    up, lo = pair
    W = _weights(snapshot, scene, *pair)
    n = scene.neurons
    w = {(int(i), int(j)): abs(W[n.index[j], n.index[i]]) for i, j in _drawn_pairs(full)}
    weakest_kept = min(w[e] for e in drawn)
    strongest_dropped = max(v for e, v in w.items() if e not in drawn)
    assert weakest_kept >= strongest_dropped  # … the strongest of them


def test_a_view_asks_for_its_clusters_and_the_rows_around(scene: Scene) -> None:
    """Zoomed on one cluster: its visible row-mates, and all of the layer rows above and below
    (where its edges go); a view of only an in-between band: the two rows it joins."""
    layer = _layer_rows(scene)
    c = scene.clusters
    row = layer[2]
    first = int(np.flatnonzero(c.row == row)[0])
    x, y, w, h = (float(v) for v in c.rect[first])
    got = set(clusters_for_view(scene, (x, y, x + w, y + h)).tolist())
    assert first in got
    for k in (layer[1], layer[3]):
        assert set(np.flatnonzero(c.row == k).tolist()) <= got
    assert not any(c.row[g] in (layer[0], layer[4]) for g in got)
    own = {g for g in got if c.row[g] == row}
    assert own == set(clusters_in_rect(scene, (x - w / 4, y, x + 1.25 * w, y + h)).tolist())
    band = scene.rows[row + 1]  # the in-between row under it
    mid = band.y + band.height / 2
    got = clusters_for_view(scene, (x, mid - 5, x + w, mid + 5))
    assert set(c.row[got].tolist()) == {row, layer[3]}


def test_bad_requests_are_named(snapshot: Snapshot, scene: Scene) -> None:
    with pytest.raises(IndexError, match="cluster indices"):
        neuron_edges(snapshot, scene, [len(scene.clusters.id)])
    with pytest.raises(ValueError, match="fraction"):
        neuron_edges(snapshot, scene, [0], fraction=1.5)
    with pytest.raises(ValueError, match="max_edges"):
        neuron_edges(snapshot, scene, [0], max_edges=0)
    empty = neuron_edges(snapshot, scene, [])
    assert empty.kept == 0 and len(empty.edges.weight) == 0 and len(empty.bundles.pos) == 0
