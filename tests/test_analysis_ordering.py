"""Row ordering: exact Held–Karp against brute force, hierarchical against a greedy chain."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnvis_gl.analysis import cosine_similarity, order_columns, order_rows, path_score


def _random_symmetric(n: int, rng: np.random.Generator) -> np.ndarray:
    A = rng.normal(size=(n, n))
    return (A + A.T) / 2


def _brute_force(S: np.ndarray) -> float:
    n = len(S)
    return max(path_score(S, p) for p in itertools.permutations(range(n)))


def _is_perm(order: np.ndarray, n: int) -> bool:
    return order.dtype.kind == "i" and sorted(order.tolist()) == list(range(n))


def _greedy_chain(S: np.ndarray) -> np.ndarray:
    n = len(S)
    seen = np.zeros(n, dtype=bool)
    order = [0]
    seen[0] = True
    for _ in range(n - 1):
        j = int(np.argmax(np.where(seen, -np.inf, S[order[-1]])))
        order.append(j)
        seen[j] = True
    return np.array(order)


@pytest.mark.parametrize("n", range(2, 10))
def test_held_karp_equals_brute_force(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    for _ in range(3 if n < 9 else 1):
        S = _random_symmetric(n, rng)
        order = order_rows(S)
        assert _is_perm(order, n)
        assert path_score(S, order) == pytest.approx(_brute_force(S), abs=1e-9)


def test_held_karp_asymmetric_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    S = rng.normal(size=(7, 7))
    order = order_rows(S)
    assert _is_perm(order, 7)
    assert path_score(S, order) == pytest.approx(_brute_force(S), abs=1e-9)


def test_edge_cases() -> None:
    assert order_rows(np.zeros((0, 0))).tolist() == []
    assert order_rows(np.ones((1, 1))).tolist() == [0]
    assert order_rows(np.eye(2)).tolist() == [0, 1]
    assert path_score(np.ones((1, 1)), [0]) == 0.0
    assert path_score(np.zeros((0, 0)), []) == 0.0
    with pytest.raises(ValueError):
        order_rows(np.zeros((3, 4)))


def test_canonical_orientation_and_determinism() -> None:
    rng = np.random.default_rng(3)
    for n in (6, 12, 40):
        S = cosine_similarity(np.abs(rng.normal(size=(n, 5))))
        a, b = order_rows(S), order_rows(S.copy())
        assert np.array_equal(a, b)
        assert a[0] < a[-1]


def test_exact_for_up_to_16_rows() -> None:
    """order_rows is exact up to exact_max: never beaten by the hierarchical method."""
    rng = np.random.default_rng(11)
    for n in (10, 13, 16):
        S = cosine_similarity(np.abs(rng.normal(size=(n, 6))))
        exact = path_score(S, order_rows(S))
        hier = path_score(S, order_rows(S, exact_max=4))  # forced hierarchical
        assert exact >= hier - 1e-9
        # The hierarchical method comes close on small inputs.
        assert hier >= exact - 0.05 * abs(exact)


def _curve(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.sort(rng.uniform(0, 3 * np.pi, n))
    X = np.stack([np.cos(t), np.sin(t), np.cos(2 * t), 0.3 * t], axis=1)
    X = X + 0.05 * rng.normal(size=X.shape)
    return np.concatenate([X, np.abs(X)], axis=1)[rng.permutation(n)]


def _blocks(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(8, 10))
    return centres[rng.integers(0, 8, n)] + 0.4 * rng.normal(size=(n, 10))


@pytest.mark.parametrize("make", [_curve, _blocks], ids=["curve", "blocks"])
def test_hierarchical_beats_greedy_chain(make) -> None:
    rng = np.random.default_rng(5)
    S = cosine_similarity(make(200, rng))
    order = order_rows(S)
    assert _is_perm(order, 200)
    greedy = path_score(S, _greedy_chain(S))
    ours = path_score(S, order)
    assert ours > greedy
    # Also without the 2-opt finish (the dendrogram and junction DP alone).
    assert path_score(S, order_rows(S, refine=False)) > greedy - 0.02 * 200


def test_order_columns_groups_similar_classes() -> None:
    rng = np.random.default_rng(2)
    # Classes 0,2,4 respond alike, 1,3,5 alike: the order must not interleave them.
    base = np.abs(rng.normal(size=(30, 2)))
    A = np.concatenate([base[:, [0]], base[:, [1]]] * 3, axis=1) + 0.01 * rng.random((30, 6))
    order = order_columns(A)
    assert _is_perm(order, 6)
    groups = [int(c) % 2 for c in order]
    assert groups in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


def test_junction_dp_equals_brute_force_over_orders_and_flips() -> None:
    """The join of a wide dendrogram node: every child order and orientation tried."""
    from cnnvis_gl.analysis.ordering import _join_many

    rng = np.random.default_rng(3)
    for m in (2, 3, 5, 6):
        S = _random_symmetric(3 * m, rng)
        seqs = [np.arange(3 * c, 3 * c + 3) for c in range(m)]
        got = _join_many([S], [seqs])[0]
        best = max(
            path_score(S, np.concatenate([seqs[c][::f] for c, f in zip(p, flips, strict=True)]))
            for p in itertools.permutations(range(m))
            for flips in itertools.product((1, -1), repeat=m)
        )
        assert sorted(got.tolist()) == list(range(3 * m))
        assert path_score(S, got) == pytest.approx(best, abs=1e-9)


def _two_opt_reference(S: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """The 2-opt of ``ordering._two_opt`` written plainly: every move joining a row to one of
    its ``k`` most similar rows scored, the best ones taken greedily while disjoint."""
    n = len(S)
    k = min(k, n - 1)
    Sd = S.copy()
    np.fill_diagonal(Sd, -np.inf)
    nbr = np.argpartition(-Sd, k - 1, axis=1)[:, :k]
    Sp = np.zeros((n + 1, n + 1))
    Sp[:n, :n] = S
    path = [n, *order.tolist(), n]
    while True:
        pos = {v: i for i, v in enumerate(path)}
        moves = []  # (ties: the pair as first new edge before as second, then by row)
        for shift in (0, 1):
            for a in range(n):
                for b in nbr[a]:
                    p, q = (x - shift for x in sorted((pos[a], pos[int(b)])))
                    g = (Sp[path[p], path[q]] + Sp[path[p + 1], path[q + 1]]
                         - Sp[path[p], path[p + 1]] - Sp[path[q], path[q + 1]])  # fmt: skip
                    if g > 1e-12:
                        moves.append((-g, len(moves), p, q))
        if not moves:
            return np.array(path[1:-1])
        taken: set[int] = set()
        for _, _, p, q in sorted(moves):
            if taken.isdisjoint(range(p, q + 1)):
                taken.update(range(p, q + 1))
                path[p + 1 : q + 1] = path[p + 1 : q + 1][::-1]


def test_two_opt_matches_a_plain_reference() -> None:
    from cnnvis_gl.analysis.ordering import _two_opt

    rng = np.random.default_rng(11)
    for n in (5, 30, 80):
        X = np.abs(rng.normal(size=(n, 6)))
        X[: n // 5] = 0.0  # dead neurons: ties everywhere
        S = cosine_similarity(X)
        start = rng.permutation(n)
        got = _two_opt(S, start, k=8)
        assert got.tolist() == _two_opt_reference(S, start, 8).tolist()
        assert path_score(S, got) >= path_score(S, start)


def _junction_reference(S: np.ndarray, seqs: list[np.ndarray]) -> np.ndarray:
    """The junction DP written plainly: Held–Karp over (children visited, state) with the
    same tie rules (the first best predecessor, the first best end state)."""
    m = len(seqs)
    enter = [e for s in seqs for e in (s[0], s[-1])]
    leave = [e for s in seqs for e in (s[-1], s[0])]
    K = 2 * m
    best: dict[tuple[int, int], tuple[float, int]] = {(1 << (k // 2), k): (0.0, -1) for k in range(K)}
    for size in range(2, m + 1):
        for mask in range(1 << m):
            if bin(mask).count("1") != size:
                continue
            for to in range(K):
                if not mask >> (to // 2) & 1:
                    continue
                before = mask ^ (1 << (to // 2))
                cands = [(best[(before, f)][0] + S[leave[f], enter[to]], f)
                         for f in range(K) if (before, f) in best]  # fmt: skip
                value, frm = cands[0]
                for v, f in cands[1:]:
                    if v > value:
                        value, frm = v, f
                best[(mask, to)] = (value, frm)
    full = (1 << m) - 1
    k = max(range(K), key=lambda s: (best[(full, s)][0], -s))
    states, mask = [k], full
    while best[(mask, k)][1] >= 0:
        k, mask = best[(mask, k)][1], mask ^ (1 << (k // 2))
        states.append(k)
    states.reverse()
    return np.concatenate([seqs[k // 2] if k % 2 == 0 else seqs[k // 2][::-1] for k in states])


def _hierarchical_reference(S: np.ndarray, branching: int = 8) -> np.ndarray:
    """The hierarchical order one node at a time, each join by the plain DP, then 2-opt."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    from cnnvis_gl.analysis.ordering import TWO_OPT_NEIGHBOURS, _flattened_tree

    n = len(S)
    D = np.clip(1.0 - S, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    tree = _flattened_tree(linkage(squareform(0.5 * (D + D.T), checks=False), "average"), n, branching)
    orders: dict[int, np.ndarray] = {}
    for v in sorted(tree):
        orders[v] = _junction_reference(S, [orders[c] if c >= n else np.array([c]) for c in tree[v]])
    order = _two_opt_reference(S, orders[2 * n - 2], TWO_OPT_NEIGHBOURS)
    return order[::-1].copy() if order[0] > order[-1] else order


def test_many_orders_at_once_equal_a_plain_reference_one_at_a_time() -> None:
    """``order_rows_many`` joins the nodes of one height and width across every matrix in one
    batch of DPs: each order is the plain one-node-at-a-time order, ties included."""
    from cnnvis_gl.analysis.ordering import order_rows_many

    rng = np.random.default_rng(12)
    Ss = []
    for n in (40, 3, 25, 60, 1, 33, 0, 17):
        X = np.abs(rng.normal(size=(n, 5))) * rng.integers(1, 3, size=(n, 1))
        X[: n // 6] = X[:1]  # repeated neurons: ties in the DPs
        Ss.append(cosine_similarity(X))
    got = order_rows_many(Ss)
    assert len(got) == len(Ss)
    for S, order in zip(Ss, got, strict=True):
        assert order.tolist() == order_rows(S).tolist()
        if len(S) > 16:  # (up to 16: exact Held–Karp, tested above)
            assert order.tolist() == _hierarchical_reference(S).tolist()
