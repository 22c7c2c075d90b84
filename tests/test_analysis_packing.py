"""Hierarchical rectangle packing: invariants (hypothesis), size mapping, density, adjacency."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cnnvis_gl.analysis import Packing, pack_cluster
from cnnvis_gl.analysis.packing import image_sides


def _check_invariants(p: Packing, n: int) -> None:
    r = p.rects
    assert r.shape == (n, 4)
    if n == 0:
        assert p.width == 0 and p.height == 0 and p.density == 0
        return
    x0, y0, x1, y1 = r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]
    eps = 1e-9
    assert (x0 >= -eps).all() and (y0 >= -eps).all()
    assert (x1 <= p.width + eps).all() and (y1 <= p.height + eps).all()
    # Tight bounding box.
    assert x1.max() == pytest.approx(p.width) and y1.max() == pytest.approx(p.height)
    over = (
        (x0[:, None] < x1[None, :] - eps)
        & (x0[None, :] < x1[:, None] - eps)
        & (y0[:, None] < y1[None, :] - eps)
        & (y0[None, :] < y1[:, None] - eps)
    )
    np.fill_diagonal(over, False)
    assert not over.any(), "overlapping rectangles"
    assert p.density == pytest.approx((r[:, 2] * r[:, 3]).sum() / (p.width * p.height))
    assert 0 < p.density <= 1 + 1e-12


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 200),
    c=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    aspect=st.sampled_from([0.5, 1.0, 2.0]),
    sizes=st.sampled_from([(16, 48), (8, 8), (10, 64)]),
)
@example(n=200, c=10, seed=1, aspect=1.0, sizes=(16, 48))
@example(n=173, c=3, seed=2, aspect=2.0, sizes=(10, 64))
@example(n=1, c=1, seed=0, aspect=0.5, sizes=(8, 8))
@example(n=0, c=4, seed=0, aspect=1.0, sizes=(16, 48))
def test_packing_invariants(n: int, c: int, seed: int, aspect: float, sizes) -> None:
    rng = np.random.default_rng(seed)
    F = np.maximum(rng.normal(size=(n, c)), 0.0)  # zero rows included
    imp = rng.uniform(0, 5, n) if rng.random() < 0.8 else np.full(n, 1.0)
    lo, hi = sizes
    p = pack_cluster(F, imp, min_size=lo, max_size=hi, aspect=aspect)
    _check_invariants(p, n)
    # Every neuron placed once, with the side its importance maps to (linear, rounded half to
    # even; a constant importance gives the largest side), computed here in plain Python.
    i0, i1 = (float(min(imp)), float(max(imp))) if n else (0.0, 0.0)
    expected = np.array(
        [hi if i1 == i0 else round(lo + (float(v) - i0) / (i1 - i0) * (hi - lo)) for v in imp],
        dtype=np.int64,
    )
    assert np.array_equal(p.rects[:, 2], expected) and np.array_equal(p.rects[:, 3], expected)
    assert ((p.rects[:, 2] >= lo) & (p.rects[:, 2] <= hi)).all()


def test_image_sides_mapping() -> None:
    imp = np.array([0.0, 0.5, 1.0, 0.25])
    assert image_sides(imp, 16, 48).tolist() == [16, 32, 48, 24]
    assert image_sides(np.array([3.0, 3.0]), 16, 48).tolist() == [48, 48]
    # A layer-wide range: this cluster's values sit in the middle of it; outside is clipped.
    assert image_sides(np.array([1.0, 2.0, 9.0]), 10, 20, importance_range=(0.0, 4.0)).tolist() == [
        12,
        15,
        20,
    ]
    assert image_sides(np.zeros(0)).shape == (0,)
    with pytest.raises(ValueError):
        image_sides(imp, 10, 5)


def test_small_cases() -> None:
    p0 = pack_cluster(np.zeros((0, 3)), np.zeros(0))
    _check_invariants(p0, 0)
    p1 = pack_cluster(np.ones((1, 3)), np.ones(1), max_size=40)
    assert p1.rects.tolist() == [[0.0, 0.0, 40.0, 40.0]] and p1.density == 1.0
    p2 = pack_cluster(np.eye(2), np.array([0.0, 1.0]))
    _check_invariants(p2, 2)
    with pytest.raises(ValueError):
        pack_cluster(np.ones((3, 2)), np.ones(4))


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(5, 10)))
    centres[rng.random((5, 10)) < 0.5] = 0.01
    labels = rng.integers(0, 5, n)
    return centres[labels] + 0.05 * np.abs(rng.normal(size=(n, 10))), labels


def _touching(r: np.ndarray, gap: float = 1.0) -> np.ndarray:
    x0, y0, x1, y1 = r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]
    gx = np.maximum(x0[:, None] - x1[None, :], x0[None, :] - x1[:, None])
    gy = np.maximum(y0[:, None] - y1[None, :], y0[None, :] - y1[:, None])
    nb = np.maximum(gx, gy) <= gap
    np.fill_diagonal(nb, False)
    return nb


@pytest.mark.parametrize("n", [60, 200])
def test_similar_neurons_are_adjacent(n: int) -> None:
    F, labels = _planted(n, seed=n)
    p = pack_cluster(F, F.max(axis=1))
    _check_invariants(p, n)
    Fn = F / np.linalg.norm(F, axis=1, keepdims=True)
    D = 1.0 - Fn @ Fn.T
    nb = _touching(p.rects)
    assert nb.any()
    neighbour_mean = D[nb].mean()
    random_mean = D[np.triu_indices(n, 1)].mean()
    assert neighbour_mean < 0.5 * random_mean
    same = labels[:, None] == labels[None, :]
    assert same[nb].mean() > 2 * same[np.triu_indices(n, 1)].mean()


def test_density_on_typical_inputs() -> None:
    """Class-mean-like features, importance = largest class mean: report and bound density."""
    rng = np.random.default_rng(0)
    dens = []
    for n in (16, 64, 128, 256):
        F = np.maximum(rng.normal(size=(n, 10)), 0.0) + 0.01
        p = pack_cluster(F, F.max(axis=1))
        _check_invariants(p, n)
        dens.append(p.density)
    print("packing density", [round(d, 3) for d in dens])
    assert min(dens) >= 0.6


@pytest.mark.parametrize("aspect", [0.5, 2.0])
def test_aspect_is_followed(aspect: float) -> None:
    rng = np.random.default_rng(1)
    F = np.abs(rng.normal(size=(150, 8)))
    p = pack_cluster(F, F.max(axis=1), aspect=aspect)
    ratio = p.width / p.height
    assert aspect / 1.6 <= ratio <= aspect * 1.6


def test_deterministic() -> None:
    F, _ = _planted(80, seed=3)
    a = pack_cluster(F, F.max(axis=1), seed=0)
    b = pack_cluster(F.copy(), F.max(axis=1), seed=5)
    assert np.array_equal(a.rects, b.rects)


def _compact_reference(rects: np.ndarray) -> None:
    """The compaction of ``packing._compact`` written plainly (one rectangle at a time)."""
    eps = 1e-9
    for _ in range(20):
        moved = False
        for axis in (1, 0):
            pos, size = rects[:, axis], rects[:, axis + 2]
            opos, osize = rects[:, 1 - axis], rects[:, 3 - axis]
            for i in np.argsort(pos, kind="stable"):
                overlap = (opos < opos[i] + osize[i] - eps) & (opos[i] < opos + osize - eps)
                before = overlap & (pos + size <= pos[i] + eps)
                before[i] = False
                target = float((pos + size)[before].max()) if before.any() else 0.0
                if target < pos[i] - eps:
                    pos[i], moved = target, True
        if not moved:
            return


def test_compaction_matches_a_plain_reference() -> None:
    from cnnvis_gl.analysis.packing import _compact

    rng = np.random.default_rng(5)
    for n in (1, 7, 60, 150, 1100):  # (1100: the movable rectangles found in chunks)
        side = rng.integers(4, 20, n).astype(np.float64)
        span = 300 * max(1.0, np.sqrt(n / 150))
        rects = np.stack([rng.uniform(0, span, n), rng.uniform(0, span, n), side, side], axis=1)
        rects[:, :2] = np.round(rects[:, :2])  # (touching edges: the eps cases)
        want = rects.copy()
        _compact_reference(want)
        _compact(rects)
        assert np.array_equal(rects, want)


def _leaf_reference(sides: np.ndarray, w: int, h: int) -> np.ndarray | None:
    """rectpack's offline one-bin packer (MaxRectsBssf, by area, no rotation), as a leaf
    was packed before: the images' corners, top-down, or None when one does not fit."""
    from rectpack import SORT_AREA, MaxRectsBssf, PackingBin, PackingMode, newPacker

    packer = newPacker(mode=PackingMode.Offline, bin_algo=PackingBin.BFF, pack_algo=MaxRectsBssf,
                       sort_algo=SORT_AREA, rotation=False)  # fmt: skip
    packer.add_bin(w, h)
    for i, s in enumerate(sides.tolist()):
        packer.add_rect(s, s, rid=i)
    packer.pack()
    placed = packer.rect_list()
    if len(placed) < len(sides):
        return None
    xy = np.zeros((len(sides), 2))
    for _b, x, y, _w, _h, rid in placed:
        xy[rid] = (x, h - y - _h)
    return xy - xy.min(axis=0)


def test_leaf_packing_places_images_as_rectpacks_packer() -> None:
    """A leaf is packed by MaxRectsBssf directly: the placements of rectpack's offline packer,
    equal sides (ties) and cells too small to start with (grown) included."""
    from cnnvis_gl.analysis.packing import _GROW, _pack_leaf

    rng = np.random.default_rng(8)
    for k in (2, 3, 7, 12):
        for _ in range(4):
            sides = rng.choice([16, 16, 20, 27, 33, 48], size=k)
            cw = ch = float(np.sqrt((sides.astype(float) ** 2).sum()) * rng.uniform(0.7, 1.2))
            w, h = max(int(np.ceil(cw)), int(sides.max())), max(int(np.ceil(ch)), int(sides.max()))
            while (want := _leaf_reference(sides, w, h)) is None:
                w, h = max(int(np.ceil(w * _GROW)), w + 1), max(int(np.ceil(h * _GROW)), h + 1)
            assert np.array_equal(_pack_leaf(sides, cw, ch), want)


def test_alike_neurons_pack_as_a_block_not_a_staircase() -> None:
    """Neurons that never respond have all-zero feature vectors (no direction): alike each
    other.  Their dendrogram is a chain of tied merges; they must still pack densely at the
    target aspect (the chain packed 422 equal squares 6:1 at density 0.69), and next to each
    other when mixed with others."""
    from cnnvis_gl.analysis.packing import pack_cluster

    rng = np.random.default_rng(0)
    for A in (np.zeros((422, 10)), np.repeat(rng.random((1, 10)), 300, axis=0)):
        p = pack_cluster(A, np.zeros(len(A)), min_size=16, max_size=48, aspect=1.6)
        assert p.density >= 0.8, p.density
        assert 1.6 / 1.4 <= p.width / p.height <= 1.6 * 1.4, (p.width, p.height)
    A = np.zeros((300, 10))
    A[:150] = rng.random((150, 10))
    p = pack_cluster(A, np.r_[rng.random(150), np.zeros(150)], min_size=16, max_size=48, aspect=1.6)
    assert p.density >= 0.7
    r = p.rects
    x0, y0 = r[150:, 0].min(), r[150:, 1].min()
    x1, y1 = (r[150:, 0] + r[150:, 2]).max(), (r[150:, 1] + r[150:, 3]).max()
    cx, cy = r[:150, 0] + r[:150, 2] / 2, r[:150, 1] + r[:150, 3] / 2
    inside = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
    assert inside.sum() <= 15  # the silent ones form one block; others stay outside it
