"""Stable cluster identities and the identity colours derived from them."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["cluster_id", "id_color", "inherit_ids", "unique_id"]

_MASK = (1 << 62) - 1


def cluster_id(row: str, members: np.ndarray, salt: int = 0) -> int:
    """A positive 62-bit id from the row name and the sorted member neurons.

    The same cluster (same row, same neurons) gets the same id in every build and snapshot.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(row.encode())
    h.update(b"\0")
    h.update(np.asarray(np.sort(members), dtype=np.int64).tobytes())
    if salt:
        h.update(salt.to_bytes(8, "little"))
    return int.from_bytes(h.digest(), "little") & _MASK


def unique_id(row: str, members: np.ndarray, taken: Iterable[int]) -> int:
    """:func:`cluster_id`, salted until it differs from every id in ``taken``."""
    taken = set(taken)
    salt = 0
    while True:
        cid = cluster_id(row, members, salt)
        if cid not in taken:
            return cid
        salt += 1


def id_color(cid: int) -> tuple[float, float, float]:
    """Identity colour of a cluster: a hue from the id, fixed saturation and lightness."""
    hue = ((cid >> 7) % 4096) / 4096.0
    light = 0.52 + 0.08 * ((cid >> 19) % 3 - 1)
    return colorsys.hls_to_rgb(hue, light, 0.55)


# Ids from :func:`cluster_id` are below 2**62: ``match_clusters`` numbers unmatched clusters from
# here, so they are told apart from the previous layout's ids.
_FRESH = 1 << 62


def inherit_ids(
    row: str,
    old_members: Sequence[np.ndarray],
    old_ids: Sequence[int],
    new_members: Sequence[np.ndarray],
    taken: Iterable[int] = (),
) -> list[int]:
    """Ids for a row's new clusters that keep the ids of the old clusters they overlap most.

    Matching is :func:`cnnvis_gl.analysis.identity.match_clusters` (Jaccard overlap of the member
    neurons, one-to-one): on a split the larger part keeps the id, on a merge the merged cluster
    keeps the id of the parent it overlaps most.  A cluster that matches nothing gets its own
    :func:`cluster_id` (salted away from ``taken`` and from every id handed out here).
    """
    from ..analysis.identity import match_clusters

    ids, _ = match_clusters(old_members, [int(i) for i in old_ids], new_members, _FRESH)
    used = set(taken) | {i for i in ids if i < _FRESH}
    out = []
    for cid, members in zip(ids, new_members, strict=True):
        if cid >= _FRESH:
            cid = unique_id(row, members, used)
            used.add(cid)
        out.append(int(cid))
    return out
