"""Biclusters of thresholded signed weights and the bundled edge geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnvis_gl.analysis import (
    Bicluster,
    bundle_edges,
    find_biclusters,
    ink_and_crossings,
    threshold_for_top,
)
from cnnvis_gl.analysis.bicluster import bezier_points


def _check(weights: np.ndarray, threshold: float, bics: list[Bicluster], min_size: int) -> None:
    pos = (weights >= threshold) & (weights > 0)
    neg = (weights <= -threshold) & (weights < 0)
    used = np.zeros(weights.shape, dtype=int)
    for b in bics:
        assert b.sign in (1, -1)
        assert b.rows.dtype.kind == "i" and b.cols.dtype.kind == "i"
        assert np.array_equal(b.rows, np.unique(b.rows)) and np.array_equal(
            b.cols, np.unique(b.cols)
        )
        mask = pos if b.sign > 0 else neg
        assert mask[np.ix_(b.rows, b.cols)].all(), "bicluster not fully connected"
        assert len(b.rows) * len(b.cols) >= 2
        assert len(b.rows) >= min_size or len(b.cols) >= min_size
        used[np.ix_(b.rows, b.cols)] += 1
    assert used.max(initial=0) <= 1, "an edge is in two biclusters"


def _planted(seed: int, extra: float = 0.04):
    """40 x 30 weights: small noise, four planted blocks (two per sign), sparse strong noise."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 0.1, (40, 30))
    blocks = [
        (np.arange(0, 6), np.arange(0, 5), 1),
        (np.arange(6, 10), np.arange(5, 9), 1),
        (np.arange(12, 17), np.arange(20, 23), -1),
        (np.arange(3, 8), np.arange(10, 14), -1),  # shares rows with the first block
    ]
    for r, c, s in blocks:
        W[np.ix_(r, c)] = s * rng.uniform(0.8, 1.2, (len(r), len(c)))
    free = np.abs(W) < 0.5
    for r, c, _ in blocks:
        free[np.ix_(r, c)] = False
    noise = free & (rng.random(W.shape) < extra)
    W[noise] = rng.choice([-0.7, 0.7], noise.sum())
    return W, blocks


@pytest.mark.parametrize("seed", range(5))
def test_planted_biclusters_recovered_exactly(seed: int) -> None:
    W, blocks = _planted(seed)
    bics = find_biclusters(W, 0.5)
    _check(W, 0.5, bics, 2)
    found = {(tuple(b.rows), tuple(b.cols), b.sign) for b in bics}
    for r, c, s in blocks:
        assert (tuple(r), tuple(c), s) in found
    # Largest first within each sign; positives before negatives.
    signs = [b.sign for b in bics]
    assert signs == sorted(signs, reverse=True)
    for s in (1, -1):
        sizes = [len(b.rows) * len(b.cols) for b in bics if b.sign == s]
        assert sizes == sorted(sizes, reverse=True)


def test_recovered_despite_noise_edges_on_every_block_row_and_column() -> None:
    """Every seed neighbourhood is polluted: only the local search finds the block."""
    W = np.zeros((12, 12))
    W[:5, :4] = 1.0
    for i in range(5):
        W[i, 4 + i] = 1.0  # each block row has an extra column
    for j in range(4):
        W[5 + j, j] = 1.0  # each block column has an extra row
    bics = find_biclusters(W, 0.5)
    _check(W, 0.5, bics, 2)
    assert (tuple(range(5)), tuple(range(4)), 1) in {
        (tuple(b.rows), tuple(b.cols), b.sign) for b in bics
    }
    assert len(bics[0].rows) * len(bics[0].cols) == 20


def test_sign_separation_and_threshold() -> None:
    W = np.array([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [0.2, -0.3, -1.0]])
    bics = find_biclusters(W, 0.5)
    _check(W, 0.5, bics, 2)
    assert [(b.rows.tolist(), b.cols.tolist(), b.sign) for b in bics] == [
        ([0, 1], [0, 1], 1),
        ([0, 1, 2], [2], -1),
    ]
    # A higher threshold drops everything; weak edges are never used.
    assert find_biclusters(W, 1.5) == []
    # min_size: a 2 x 2 block qualifies with min_size 2, not with 3; the 3 x 1 fan does.
    assert [b.sign for b in find_biclusters(W, 0.5, min_size=3)] == [-1]


def test_zero_weights_never_edges_and_empty_input() -> None:
    assert find_biclusters(np.zeros((4, 4)), 0.0) == []
    assert find_biclusters(np.zeros((0, 3)), 0.5) == []
    assert find_biclusters(np.array([[1.0]]), 0.5) == []  # one edge is no bicluster


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 25),
    n=st.integers(1, 25),
    density=st.floats(0.05, 0.9),
    seed=st.integers(0, 2**31 - 1),
    min_size=st.integers(1, 4),
)
def test_invariants_random(m: int, n: int, density: float, seed: int, min_size: int) -> None:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, n)) * (rng.random((m, n)) < density)
    thr = threshold_for_top(W, 0.4)
    bics = find_biclusters(W, thr, min_size=min_size)
    _check(W, thr, bics, min_size)
    # Greedy is maximal in the sense that no qualifying biclique is left uncovered: no row or
    # column keeps >= max(min_size, 2) uncovered edges of one sign.
    used = np.zeros(W.shape, dtype=bool)
    for b in bics:
        used[np.ix_(b.rows, b.cols)] = True
    for mask in ((W >= thr) & (W > 0), (W <= -thr) & (W < 0)):
        left = mask & ~used
        k = max(min_size, 2)
        assert left.sum(axis=1).max(initial=0) < k and left.sum(axis=0).max(initial=0) < k


def test_deterministic() -> None:
    W, _ = _planted(1)
    a = find_biclusters(W, 0.5)
    b = find_biclusters(W.copy(), 0.5)
    assert [(x.rows.tolist(), x.cols.tolist(), x.sign) for x in a] == [
        (x.rows.tolist(), x.cols.tolist(), x.sign) for x in b
    ]


def test_threshold_for_top() -> None:
    W = np.arange(-50, 50, dtype=float).reshape(10, 10)
    t = threshold_for_top(W, 0.25)
    kept = (np.abs(W) >= t).mean()
    assert 0.24 <= kept <= 0.27
    assert threshold_for_top(np.zeros((0, 0))) == float("inf")
    assert threshold_for_top(W, 0.0) == float("inf")
    assert threshold_for_top(W, 1.0) == 0.0


def test_bundling_geometry_and_ink() -> None:
    W, blocks = _planted(2)
    m, n = W.shape
    in_x, out_x = np.arange(m) * 10.0, np.arange(n) * 13.0
    b = bundle_edges(W, 0.5, in_x, out_x, 0.0, 100.0)
    assert len(b.nodes) == len(b.biclusters)
    kept = (np.abs(W) >= 0.5).sum()
    assert len(b.curves) + len(b.direct) == kept  # every kept edge drawn once
    for k, bc in enumerate(b.biclusters):
        ends = np.concatenate([in_x[bc.rows], out_x[bc.cols]])
        assert b.nodes[k, 0] == pytest.approx(ends.mean())
        assert b.nodes[k, 1] == 50.0
    for cv, (i, j), w, s, k in zip(
        b.curves, b.curve_edges, b.curve_weights, b.curve_signs, b.curve_bicluster, strict=True
    ):
        assert cv.shape == (7, 2)
        assert tuple(cv[0]) == (in_x[i], 0.0) and tuple(cv[-1]) == (out_x[j], 100.0)
        assert tuple(cv[3]) == tuple(b.nodes[k])
        assert w == W[i, j] and s == np.sign(w) == b.biclusters[k].sign
    for seg, (i, j), w, s in zip(
        b.direct, b.direct_edges, b.direct_weights, b.direct_signs, strict=True
    ):
        assert tuple(seg[0]) == (in_x[i], 0.0) and tuple(seg[1]) == (out_x[j], 100.0)
        assert abs(w) >= 0.5 and s == np.sign(w)
    q = ink_and_crossings(b)
    assert set(q) == {"ink_bundled", "ink_direct", "crossings_bundled", "crossings_direct"}
    assert q["ink_bundled"] < 0.8 * q["ink_direct"]
    assert q["crossings_bundled"] < q["crossings_direct"]
    straight = np.hypot(out_x[b.direct_edges[:, 1]] - in_x[b.direct_edges[:, 0]], 100.0).sum()
    assert q["ink_direct"] == pytest.approx(
        straight + np.hypot(out_x[b.curve_edges[:, 1]] - in_x[b.curve_edges[:, 0]], 100.0).sum()
    )


def test_bundling_without_biclusters() -> None:
    W = np.diag([1.0, -1.0, 1.0])
    b = bundle_edges(W, 0.5, np.arange(3.0), np.arange(3.0), 0.0, 1.0)
    assert b.biclusters == [] and len(b.curves) == 0 and len(b.direct) == 3
    q = ink_and_crossings(b)
    assert q["ink_bundled"] == q["ink_direct"] == pytest.approx(3.0)
    assert q["crossings_bundled"] == q["crossings_direct"] == 0
    with pytest.raises(ValueError):
        bundle_edges(W, 0.5, np.arange(2.0), np.arange(3.0), 0.0, 1.0)


def test_crossings_counted() -> None:
    # Two straight edges 0->1 and 1->0 cross once; a fan from one input does not cross itself.
    W = np.array([[0.0, 1.0], [1.0, 0.0]])
    b = bundle_edges(W, 0.5, np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.0, 1.0, min_size=3)
    assert ink_and_crossings(b)["crossings_direct"] == 1
    fan = bundle_edges(np.ones((1, 4)), 0.5, np.array([1.5]), np.arange(4.0), 0.0, 1.0)
    assert len(fan.biclusters) == 1
    assert ink_and_crossings(fan)["crossings_bundled"] == 0


def test_bezier_points_ends() -> None:
    ctrl = np.array([[0, 0], [0, 1], [2, 2], [2, 3], [2, 4], [4, 5], [4, 6]], dtype=float)
    pts = bezier_points(ctrl, samples=8)
    assert pts.shape == (17, 2)
    assert (
        np.allclose(pts[0], ctrl[0])
        and np.allclose(pts[8], ctrl[3])
        and np.allclose(pts[-1], ctrl[6])
    )
