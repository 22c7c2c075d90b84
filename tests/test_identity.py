"""Cluster identities stay stable across snapshots: synthetic split and merge."""

from __future__ import annotations

import numpy as np

from cnnvis_gl.analysis.identity import match_clusters, overlap_matrix


def _m(*xs):
    return [np.array(x) for x in xs]


def test_same_clusters_in_another_order_keep_their_ids():
    old = _m([0, 1, 2], [3, 4], [5, 6, 7, 8])
    ids, nxt = match_clusters(old, [10, 11, 12], _m([5, 6, 7, 8], [0, 1, 2], [3, 4]), next_id=13)
    assert ids == [12, 10, 11] and nxt == 13


def test_split_keeps_the_id_on_the_larger_part():
    old = _m(list(range(10)), [10, 11])
    new = _m([0, 1, 2], list(range(3, 10)), [10, 11])
    ids, nxt = match_clusters(old, [1, 2], new, next_id=3)
    assert ids == [3, 1, 2] and nxt == 4


def test_merge_keeps_the_id_of_the_main_parent():
    old = _m([0, 1], list(range(2, 10)), [10, 11, 12])
    ids, _ = match_clusters(old, [5, 6, 7], _m(list(range(10)), [10, 11, 12]), next_id=8)
    assert ids == [6, 7]


def test_unrelated_cluster_gets_a_fresh_id():
    ids, nxt = match_clusters(_m([0, 1, 2, 3]), [4], _m([0], [1, 2, 3]), next_id=9, min_jaccard=0.5)
    assert ids == [9, 4] and nxt == 10


def test_overlap_matrix_is_jaccard():
    J = overlap_matrix(_m([0, 1, 2]), _m([1, 2, 3, 4]))
    assert J[0, 0] == 2 / 5
