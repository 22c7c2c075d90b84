"""Neuron clustering: planted clusters, automatic k, MeanShift, determinism, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score

from cnnvis_gl.analysis import cluster_neurons, row_normalize
from cnnvis_gl.analysis.clustering import canonical_labels
from cnnvis_gl.analysis.clustering import silhouette_score as our_silhouette


def _planted(k: int, n: int, seed: int, noise: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative 'class mean' vectors in k directions, with random magnitudes."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(k, 10)))
    centres[rng.random((k, 10)) < 0.5] = 0.0
    centres[np.arange(k), rng.permutation(10)[:k]] += 2.0  # distinct dominant classes
    labels = rng.integers(0, k, n)
    X = centres[labels] * rng.uniform(0.5, 3.0, (n, 1)) + noise * np.abs(rng.normal(size=(n, 10)))
    return X, labels


@pytest.mark.parametrize("k", [3, 5, 8])
def test_kmeans_recovers_planted_clusters(k: int) -> None:
    X, truth = _planted(k, 300, seed=k)
    assert adjusted_rand_score(truth, cluster_neurons(X, k=k)) >= 0.95
    auto = cluster_neurons(X)
    assert adjusted_rand_score(truth, auto) >= 0.95
    assert len(np.unique(auto)) == k


def test_meanshift_recovers_planted_clusters() -> None:
    X, truth = _planted(3, 300, seed=1, noise=0.01)
    labels = cluster_neurons(X, method="meanshift")
    assert adjusted_rand_score(truth, labels) >= 0.95


def test_meanshift_quantile_for_many_clusters() -> None:
    # The default quantile 0.3 merges clusters holding < ~30 % of the rows (6 -> 2 here).
    X, truth = _planted(6, 300, seed=4, noise=0.01)
    assert len(np.unique(cluster_neurons(X, method="meanshift"))) < 6
    labels = cluster_neurons(X, method="meanshift", bandwidth_quantile=0.15)
    assert adjusted_rand_score(truth, labels) >= 0.95


@pytest.mark.parametrize("method", ["kmeans", "meanshift"])
def test_deterministic_and_canonical(method: str) -> None:
    X, _ = _planted(4, 150, seed=9)
    a = cluster_neurons(X, method=method, seed=3)
    b = cluster_neurons(X.copy(), method=method, seed=3)
    assert np.array_equal(a, b)
    assert a.dtype == np.int64 and a[0] == 0
    # Canonical: first appearances are 0, 1, 2, ...
    _, first = np.unique(a, return_index=True)
    assert np.array_equal(a[np.sort(first)], np.arange(len(first)))


def test_scale_invariance_cosine() -> None:
    X, _ = _planted(4, 120, seed=2)
    scaled = X * np.random.default_rng(0).uniform(0.1, 10.0, (120, 1))
    assert np.array_equal(cluster_neurons(X, k=4), cluster_neurons(scaled, k=4))


def test_edge_cases() -> None:
    assert cluster_neurons(np.zeros((0, 4))).shape == (0,)
    assert cluster_neurons(np.ones((1, 4))).tolist() == [0]
    assert cluster_neurons(np.eye(2)).tolist() == [0, 0]  # n <= 2: one cluster
    same = np.tile([1.0, 2.0, 3.0], (10, 1))
    assert cluster_neurons(same).tolist() == [0] * 10
    assert cluster_neurons(same, k=4).tolist() == [0] * 10  # fewer distinct rows than k
    assert cluster_neurons(same, method="meanshift").tolist() == [0] * 10
    assert set(cluster_neurons(np.eye(3), k=3).tolist()) == {0, 1, 2}
    assert cluster_neurons(np.eye(3), k=10).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        cluster_neurons(np.eye(3), method="dbscan")


def test_meanshift_zero_bandwidth_guard() -> None:
    # 90 % identical rows: the 0.3 quantile of the distances is 0.
    X = np.concatenate([np.tile([1.0, 0.0, 0.0], (27, 1)), np.eye(3)[1:].repeat([2, 1], axis=0)])
    labels = cluster_neurons(X, method="meanshift")
    assert labels[:27].tolist() == [0] * 27
    assert len(set(labels.tolist())) == 3


def test_silhouette_matches_sklearn() -> None:
    X, _ = _planted(4, 200, seed=6, noise=0.3)
    Xn = row_normalize(X)
    labels = cluster_neurons(X, k=4)
    assert our_silhouette(Xn, labels) == pytest.approx(silhouette_score(Xn, labels), abs=1e-9)


def test_canonical_labels() -> None:
    assert canonical_labels(np.array([5, 5, 2, 7, 2])).tolist() == [0, 0, 1, 2, 1]
    assert canonical_labels(np.array([], dtype=int)).tolist() == []
