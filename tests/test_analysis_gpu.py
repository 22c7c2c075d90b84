"""The CuPy path of the analysis algorithms gives the NumPy results (run on the device machine).

Skipped where CuPy is missing or has no working CUDA device (``cnnvis_gl.xp.backend_name``).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnvis_gl import xp as xpmod
from cnnvis_gl.analysis import (
    bundle_edges,
    cluster_neurons,
    cosine_similarity,
    find_biclusters,
    order_columns,
    order_rows,
    pack_cluster,
    path_score,
    row_normalize,
)
from cnnvis_gl.analysis.clustering import kmeans, silhouette_score

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    cupy = pytest.importorskip("cupy")
    if xpmod.backend_name != "cupy":
        pytest.skip("no working CUDA device for CuPy")
    return cupy


def _features(n: int, c: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(k, c)))
    return centres[rng.integers(0, k, n)] + 0.2 * np.abs(rng.normal(size=(n, c)))


def test_similarity_on_device(cp) -> None:
    A = _features(300, 10, 5, 0)
    S = cosine_similarity(cp.asarray(A))
    assert isinstance(S, cp.ndarray)
    assert np.allclose(cp.asnumpy(S), cosine_similarity(A), atol=1e-12)
    assert isinstance(row_normalize(cp.asarray(A)), cp.ndarray)


@pytest.mark.parametrize("n", [9, 14, 16])
def test_held_karp_on_device(cp, n: int) -> None:
    S = cosine_similarity(_features(n, 8, 3, n))
    ours = order_rows(cp.asarray(S))
    assert isinstance(ours, np.ndarray)
    assert path_score(S, ours) == pytest.approx(path_score(S, order_rows(S)), abs=1e-9)
    assert path_score(cp.asarray(S), ours) == pytest.approx(path_score(S, ours), abs=1e-9)


def test_hierarchical_on_device(cp) -> None:
    S = cosine_similarity(_features(400, 10, 8, 1))
    host = order_rows(S)
    dev = order_rows(cp.asarray(S))
    assert sorted(dev.tolist()) == list(range(400))
    assert path_score(S, dev) == pytest.approx(path_score(S, host), rel=1e-9)
    A = _features(50, 10, 3, 2)
    assert np.array_equal(order_columns(cp.asarray(A)), order_columns(A))


@pytest.mark.parametrize("k", [None, 4])
def test_kmeans_on_device(cp, k) -> None:
    X = _features(500, 10, 4, 3)
    host = cluster_neurons(X, k=k, seed=1)
    dev = cluster_neurons(cp.asarray(X), k=k, seed=1)
    assert isinstance(dev, np.ndarray)
    assert np.array_equal(host, dev)
    Xn = row_normalize(X)
    assert silhouette_score(cp.asarray(Xn), host) == pytest.approx(silhouette_score(Xn, host))
    assert np.array_equal(kmeans(cp.asarray(Xn), 6, seed=2), kmeans(Xn, 6, seed=2))


def test_meanshift_accepts_device_arrays(cp) -> None:
    X = _features(200, 10, 3, 4)
    assert np.array_equal(
        cluster_neurons(cp.asarray(X), method="meanshift"), cluster_neurons(X, method="meanshift")
    )


def test_biclusters_on_device(cp) -> None:
    rng = np.random.default_rng(5)
    W = rng.normal(size=(200, 150))
    W[:12, :9] = 3.0
    W[40:50, 100:120] = -3.0
    host = find_biclusters(W, 1.0)
    dev = find_biclusters(cp.asarray(W), 1.0)
    assert len(host) == len(dev) > 0
    for a, b in zip(host, dev, strict=True):
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
        assert a.sign == b.sign
    bd = bundle_edges(cp.asarray(W), 1.0, cp.arange(200.0), np.arange(150.0), 0.0, 1.0)
    assert len(bd.biclusters) == len(host)


def test_packing_accepts_device_arrays(cp) -> None:
    F = _features(120, 10, 4, 6)
    a = pack_cluster(cp.asarray(F), cp.asarray(F.max(axis=1)))
    b = pack_cluster(F, F.max(axis=1))
    assert np.array_equal(a.rects, b.rects)


def test_neuron_level_edges_on_device_equal_host(cp, cifar_dir) -> None:
    """Zoomed-in neuron edges between two whole rows of a real BaseCNN snapshot: the CuPy
    biclustering gives the NumPy pieces."""
    from test_layout import basecnn_snapshot

    from cnnvis_gl.layout import build_state
    from cnnvis_gl.layout.detail import neuron_edges

    snap = basecnn_snapshot(cifar_dir)
    scene = build_state(snap).scene
    rows = [k for k, r in enumerate(scene.rows) if r.kind != 2][3:5]  # two wide layers
    cl = np.flatnonzero(np.isin(scene.clusters.row, rows))
    host = neuron_edges(snap, scene, cl, max_neurons=4096, backend=np)
    dev = neuron_edges(snap, scene, cl, max_neurons=4096, backend=cp)
    assert host.kept == dev.kept > 1000
    for f in ("src", "dst", "bundle", "piece"):
        np.testing.assert_array_equal(getattr(host.edges, f), getattr(dev.edges, f))
    np.testing.assert_allclose(host.edges.ctrl, dev.edges.ctrl, atol=1e-3)
