"""Stable cluster identities across snapshots (and edits): match clusters by neuron overlap.

When a new snapshot is laid out, its clusters are matched to the previous snapshot's clusters of
the same layer group so that colours and positions do not jump.  Matching maximises the total
overlap (Jaccard index of the member sets) with a linear assignment; a cluster that matches
nothing well enough (Jaccard < ``min_jaccard``) gets a fresh id.  On a split, the part that keeps
most of the old members keeps the old id; on a merge, the merged cluster keeps the id of the
parent it overlaps most.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def overlap_matrix(old: Sequence[np.ndarray], new: Sequence[np.ndarray]) -> np.ndarray:
    """Jaccard index ``|a ∩ b| / |a ∪ b|`` of every (old, new) pair of member sets."""
    out = np.zeros((len(old), len(new)))
    sets_new = [set(np.asarray(b).tolist()) for b in new]
    for i, a in enumerate(old):
        sa = set(np.asarray(a).tolist())
        for j, sb in enumerate(sets_new):
            inter = len(sa & sb)
            if inter:
                out[i, j] = inter / len(sa | sb)
    return out


def match_clusters(
    old_members: Sequence[np.ndarray],
    old_ids: Sequence[int],
    new_members: Sequence[np.ndarray],
    next_id: int,
    min_jaccard: float = 0.2,
) -> tuple[list[int], int]:
    """Ids for ``new_members`` that keep ``old_ids`` where the clusters overlap.

    Parameters
    ----------
    old_members, old_ids:
        The previous clusters (arrays of neuron indices) and their ids.
    new_members:
        The new clusters of the same neurons.
    next_id:
        The first unused id (fresh ids count up from it).

    Returns
    -------
    (ids, next_id)
        One id per new cluster, and the next unused id.
    """
    ids = [-1] * len(new_members)
    if len(old_members) and len(new_members):
        J = overlap_matrix(old_members, new_members)
        rows, cols = linear_sum_assignment(-J)
        for r, c in zip(rows, cols, strict=True):
            if J[r, c] >= min_jaccard:
                ids[c] = int(old_ids[r])
    for j, v in enumerate(ids):
        if v < 0:
            ids[j] = next_id
            next_id += 1
    return ids, next_id
