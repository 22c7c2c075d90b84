"""Neuron clustering on row-normalised feature vectors (cosine geometry), SPEC §4.

* K-Means: a vectorised Lloyd iteration with k-means++ seeding and ``n_init`` restarts, on the
  input's array backend (NumPy or CuPy).  Random choices are drawn on the host from
  ``numpy.random.default_rng(seed)``, so both backends pick the same seeds and give the same
  labels (up to float ties).  ``k=None`` picks k by the silhouette score over ``k_range``.
* MeanShift: :class:`sklearn.cluster.MeanShift` with a bandwidth from
  :func:`sklearn.cluster.estimate_bandwidth` (quantile 0.3), on the host.

Labels are always a NumPy ``int64`` array relabelled in order of first appearance
(the first neuron is in cluster 0, the next new cluster is 1, ...), so equal partitions give
equal label arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnvis_gl.analysis._blas import single_thread_blas
from cnnvis_gl.analysis.similarity import row_normalize
from cnnvis_gl.xp import get_xp, to_numpy

__all__ = ["cluster_neurons", "kmeans", "silhouette_score", "canonical_labels"]

_IDENTICAL_TOL = 1e-9
#: Above this many rows the silhouette is computed on a fixed random subsample (O(n²) memory).
SILHOUETTE_MAX_ROWS = 3000


def cluster_neurons(
    features: Any,
    method: str = "kmeans",
    k: int | None = None,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    *,
    n_init: int = 8,
    max_iter: int = 100,
    bandwidth_quantile: float = 0.3,
) -> np.ndarray:
    """Cluster neurons by the direction of their feature vectors.

    Parameters
    ----------
    features : ndarray[n, c]
        One feature vector per neuron (e.g. the class means ``A[n, :]``); NumPy or CuPy.
    method : {"kmeans", "meanshift"}
    k : int or None
        K-Means: number of clusters (clamped to ``[1, n]``; fewer come back when the data has
        fewer distinct directions).  ``None``: chosen by the silhouette score over ``k_range``
        (inclusive, capped at ``n - 1``; ``n <= 2`` or all-identical rows give one cluster).
        Ignored by MeanShift.
    k_range : (int, int)
        Inclusive range searched when ``k`` is ``None``.
    seed : int
        Seed of the k-means++ draws and restarts; a fixed seed gives identical labels.
    n_init, max_iter : int
        K-Means restarts (the lowest inertia wins) and Lloyd iterations per restart.
    bandwidth_quantile : float
        MeanShift: quantile of the pairwise distances used as bandwidth (SPEC choice 0.3).  It
        merges clusters that hold less than about that fraction of the rows each; lower it for
        many small clusters.

    Returns
    -------
    ndarray[int64] of shape (n,)
        Cluster labels, canonical: numbered in order of first appearance.
    """
    X = row_normalize(features)
    n = int(X.shape[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if method == "kmeans":
        with single_thread_blas(get_xp(X), n * 16):
            if k is not None:
                kk = max(1, min(int(k), n))
                labels = kmeans(X, kk, seed=seed, n_init=n_init, max_iter=max_iter)
            else:
                labels = _kmeans_auto(X, k_range, seed, n_init, max_iter)
    elif method == "meanshift":
        labels = _meanshift(X, seed, bandwidth_quantile)
    else:
        raise ValueError(f"unknown clustering method {method!r} (use 'kmeans' or 'meanshift')")
    return canonical_labels(labels)


def canonical_labels(labels: Any) -> np.ndarray:
    """Relabel so that clusters are numbered in order of first appearance."""
    lab = np.asarray(to_numpy(labels)).ravel()
    if lab.size == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, first, inv = np.unique(lab, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    return rank[inv.ravel()]


def _all_identical(X: Any) -> bool:
    xp = get_xp(X)
    return bool(xp.abs(X - X[:1]).max() <= _IDENTICAL_TOL)


def _kmeans_auto(
    X: Any, k_range: tuple[int, int], seed: int, n_init: int, max_iter: int
) -> np.ndarray:
    n = int(X.shape[0])
    lo, hi = max(2, int(k_range[0])), min(int(k_range[1]), n - 1)
    if n <= 2 or lo > hi or _all_identical(X):
        return np.zeros(n, dtype=np.int64)
    sample = None
    if n > SILHOUETTE_MAX_ROWS:
        sample = np.sort(np.random.default_rng(seed).choice(n, SILHOUETTE_MAX_ROWS, replace=False))
    best_score, best = -np.inf, np.zeros(n, dtype=np.int64)
    D = _distances(X if sample is None else X[get_xp(X).asarray(sample)])  # (once for every k)
    for kk in range(lo, hi + 1):
        labels = kmeans(X, kk, seed=seed, n_init=n_init, max_iter=max_iter)
        if len(np.unique(labels)) < 2:
            continue
        score = _silhouette(D, labels if sample is None else labels[sample])
        if score > best_score + 1e-12:  # ties: the smaller k
            best_score, best = score, labels
    return best


def kmeans(
    X: Any, k: int, *, seed: int = 0, n_init: int = 8, max_iter: int = 100, tol: float = 1e-10
) -> np.ndarray:
    """Lloyd's K-Means with k-means++ seeding and restarts, on ``X``'s backend.

    Parameters
    ----------
    X : ndarray[n, c]
        Points (already normalised when used for cosine clustering).
    k : int
        Number of clusters, ``1 <= k <= n``.

    Returns
    -------
    ndarray[int64]
        Labels (not canonicalised) of the restart with the lowest inertia.
    """
    xp = get_xp(X)
    X = xp.asarray(X, dtype=xp.float64)
    n = int(X.shape[0])
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    x2 = (X * X).sum(axis=1)
    best_inertia, best_labels = np.inf, np.zeros(n, dtype=np.int64)
    for _ in range(max(1, n_init)):
        centres = _kmeanspp(X, x2, k, rng)
        labels, inertia = _lloyd(X, x2, centres, max_iter, tol)
        if inertia < best_inertia - 1e-12:
            best_inertia, best_labels = inertia, labels
    return best_labels


def _sq_dist(X: Any, x2: Any, C: Any) -> Any:
    xp = get_xp(X)
    d = x2[:, None] - 2.0 * (X @ C.T) + (C * C).sum(axis=1)[None, :]
    return xp.maximum(d, 0.0)


def _kmeanspp(X: Any, x2: Any, k: int, rng: np.random.Generator) -> Any:
    """k-means++ seeding (greedy with 2 + log k trials, as scikit-learn), host-side draws.

    Stops early when every point coincides with a chosen centre (fewer distinct points than k).
    """
    xp = get_xp(X)
    n = int(X.shape[0])
    trials = 2 + int(np.log(k))
    first = int(rng.integers(n))
    idx = [first]
    closest = _sq_dist(X, x2, X[first : first + 1])[:, 0]
    for _ in range(1, k):
        pot = float(closest.sum())
        if pot <= 1e-18:
            break
        cum = np.cumsum(to_numpy(closest))
        cand = np.searchsorted(cum, rng.uniform(size=trials) * cum[-1], side="right")
        cand = np.minimum(cand, n - 1)
        d = _sq_dist(X, x2, X[xp.asarray(cand)])  # [n, trials]
        d = xp.minimum(d, closest[:, None])
        pots = to_numpy(d.sum(axis=0))
        b = int(np.argmin(pots))
        idx.append(int(cand[b]))
        closest = d[:, b]
    return X[xp.asarray(np.asarray(idx, dtype=np.int64))].copy()


def _lloyd(X: Any, x2: Any, centres: Any, max_iter: int, tol: float) -> tuple[np.ndarray, float]:
    xp = get_xp(X)
    n = int(X.shape[0])
    k = int(centres.shape[0])
    labels = None
    means = False  # whether ``centres`` are the means of ``labels`` (no cluster re-seeded)
    for _ in range(max_iter):
        d = _sq_dist(X, x2, centres)
        new = d.argmin(axis=1)
        if means and bool((new == labels).all()):
            # Converged: the means of these labels are ``centres`` again (shift 0), and ``d``
            # is the distance to them.
            return to_numpy(new).astype(np.int64), float(d[xp.arange(n), new].sum())
        onehot = (new[:, None] == xp.arange(k)[None, :]).astype(xp.float64)
        counts = onehot.sum(axis=0)
        sums = onehot.T @ X
        empty = counts == 0
        means = not bool(empty.any())
        if not means:
            # Re-seed an empty cluster at the point farthest from its centre (deterministic).
            far = to_numpy(d[xp.arange(n), new])
            order = np.argsort(-far, kind="stable")
            for j, i in zip(np.flatnonzero(to_numpy(empty)), order, strict=False):
                sums[int(j)] = X[int(i)]
                counts[int(j)] = 1.0
        newc = sums / counts[:, None]
        shift = float(((newc - centres) ** 2).sum())
        centres = newc
        if labels is not None and bool((new == labels).all()) and shift <= tol:
            labels = new
            break
        labels = new
    d = _sq_dist(X, x2, centres)
    labels = d.argmin(axis=1)
    inertia = float(d[xp.arange(n), labels].sum())
    return to_numpy(labels).astype(np.int64), inertia


def silhouette_score(X: Any, labels: Any, sample: np.ndarray | None = None) -> float:
    """Mean silhouette (Euclidean; on unit rows it ranks like cosine), on ``X``'s backend.

    Matches :func:`sklearn.metrics.silhouette_score`: a point alone in its cluster scores 0.
    """
    xp = get_xp(X)
    lab = np.asarray(to_numpy(labels), dtype=np.int64)
    if sample is not None:
        X = X[xp.asarray(sample)]
        lab = lab[sample]
    return _silhouette(_distances(X), lab)


def _distances(X: Any) -> Any:
    """Euclidean distances between the rows of ``X``, on its backend."""
    return get_xp(X).sqrt(_sq_dist(X, (X * X).sum(axis=1), X))


def _silhouette(D: Any, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` over the points of the distance matrix ``D``."""
    xp = get_xp(D)
    uniq, lab = np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)
    k = len(uniq)
    n = int(D.shape[0])
    if k < 2 or k >= n:
        return 0.0
    L = xp.asarray(lab.ravel())
    onehot = (L[:, None] == xp.arange(k)[None, :]).astype(xp.float64)
    counts = onehot.sum(axis=0)
    sums = D @ onehot  # [n, k]: total distance to each cluster
    own = counts[L]
    a = sums[xp.arange(n), L] / xp.maximum(own - 1.0, 1.0)
    mean_other = sums / counts[None, :]
    mean_other[xp.arange(n), L] = xp.inf
    b = mean_other.min(axis=1)
    s = (b - a) / xp.maximum(xp.maximum(a, b), 1e-300)
    s = xp.where(own > 1, s, 0.0)
    return float(s.mean())


def _meanshift(X: Any, seed: int, quantile: float) -> np.ndarray:
    from sklearn.cluster import MeanShift, estimate_bandwidth

    Xh = to_numpy(X)
    n = Xh.shape[0]
    if n <= 1 or _all_identical(Xh):
        return np.zeros(n, dtype=np.int64)
    bw = float(estimate_bandwidth(Xh, quantile=quantile, random_state=seed))
    if not np.isfinite(bw) or bw <= 1e-9:
        # Zero bandwidth: more than 30 % of the rows coincide.  Fall back to the mean distance
        # to the nearest distinct row, which still separates distinct groups.
        x2 = (Xh * Xh).sum(axis=1)
        d = np.sqrt(_sq_dist(Xh, x2, Xh))
        pos = d[d > 1e-6]
        bw = float(pos.min()) if pos.size else 1.0
    # Bin seeding: seeds on a grid of the bandwidth instead of every row (~10x faster, the
    # same modes on clustered data); cluster_all keeps every neuron in a cluster.
    ms = MeanShift(bandwidth=bw, bin_seeding=True, min_bin_freq=1, cluster_all=True)
    return ms.fit(Xh).labels_.astype(np.int64)
