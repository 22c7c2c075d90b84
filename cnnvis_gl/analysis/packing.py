"""Hierarchical rectangle packing of a cluster's neuron images (SPEC §5.1).

1. Each neuron's image is a square whose integer side grows linearly with its importance,
   between ``min_size`` and ``max_size`` (:func:`image_sides`).
2. Average-linkage cosine dendrogram of the neurons' feature vectors, flattened into a tree of
   at most ``branching`` children per node; subtrees of at most ``leaf_size`` neurons are leaf
   groups.
3. Top-down, every node's cell is split among its children in proportion to their image area by
   an *ordered* squarified treemap (the children keep their dendrogram order, so similar groups
   stay side by side).  The root cell has the target aspect ratio and ``1 / fill`` times the
   image area.
4. Each leaf group's images are packed into its cell by rectpack (MaxRectsBssf, no rotation);
   the cell grows by 8 % steps until all fit.  The packed block is trimmed to its bounding box.
5. Bottom-up, blocks are composed along the treemap's guillotine cuts (strips side by side,
   cells along a strip), so blocks never overlap even where a cell grew or shrank.
6. Compaction: rectangles slide up, then left, into the gaps the composition left, until nothing
   moves; the result is translated to the origin and trimmed to its bounding box.

Everything is deterministic; ``seed`` is accepted for API stability and unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnvis_gl.xp import to_numpy

__all__ = ["Packing", "pack_cluster", "image_sides"]

#: Target ratio of image area to the root cell's area before packing.
DEFAULT_FILL = 0.85
#: Children per node of the flattened dendrogram (treemap fan-out).
DEFAULT_BRANCHING = 6
#: Largest group of neurons packed by one rectpack call.
DEFAULT_LEAF_SIZE = 12
_GROW = 1.08


@dataclass(frozen=True)
class Packing:
    """Placement of a cluster's neuron images.

    Attributes
    ----------
    rects : ndarray[n, 4] float64
        ``(x, y, w, h)`` of each neuron's image, in the order of the input neurons, inside
        ``[0, width] x [0, height]`` (y grows downwards, as on screen); no two overlap.
    width, height : float
        The enclosing rectangle.
    density : float
        Sum of the image areas / ``width * height`` (1.0 is perfect; 0.0 for no neurons).
    """

    rects: np.ndarray
    width: float
    height: float
    density: float
    sides: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def image_sides(
    importance: Any,
    min_size: int = 16,
    max_size: int = 48,
    importance_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Integer image sides, linear in importance between ``min_size`` and ``max_size``.

    Parameters
    ----------
    importance : ndarray[n]
        E.g. each neuron's largest class mean.
    importance_range : (lo, hi) or None
        The values mapped to ``min_size`` and ``max_size`` (e.g. the whole layer's range, so
        sizes compare across clusters); default: the min and max of ``importance``.  Values
        outside are clipped.  A zero-width range maps every neuron to ``max_size``.

    Returns
    -------
    ndarray[int64]
        ``round(min_size + (imp - lo) / (hi - lo) * (max_size - min_size))``.
    """
    imp = np.asarray(to_numpy(importance), dtype=np.float64).ravel()
    if min_size < 1 or max_size < min_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
    if imp.size == 0:
        return np.zeros(0, dtype=np.int64)
    imp = np.where(np.isfinite(imp), imp, 0.0)  # (as nan_to_num, much faster on small arrays)
    lo, hi = (float(imp.min()), float(imp.max())) if importance_range is None else importance_range
    if not hi > lo:
        return np.full(imp.size, int(max_size), dtype=np.int64)
    t = np.minimum(np.maximum((imp - lo) / (hi - lo), 0.0), 1.0)  # (np.clip: slow on small arrays)
    return np.rint(min_size + t * (max_size - min_size)).astype(np.int64)


def pack_cluster(
    features: Any,
    importance: Any,
    *,
    min_size: int = 16,
    max_size: int = 48,
    aspect: float = 1.0,
    seed: int = 0,
    importance_range: tuple[float, float] | None = None,
    fill: float = DEFAULT_FILL,
    leaf_size: int = DEFAULT_LEAF_SIZE,
    branching: int = DEFAULT_BRANCHING,
) -> Packing:
    """Pack the neuron images of one cluster, similar neurons next to each other.

    Parameters
    ----------
    features : ndarray[n, c]
        Feature vectors (class means) for the cosine dendrogram; NumPy or CuPy.
    importance : ndarray[n]
        Drives the image sides, see :func:`image_sides`.
    min_size, max_size : int
        Image side range in layout units (pixels at zoom 1).
    aspect : float
        Target width / height of the enclosing rectangle.
    seed : int
        Unused (the algorithm is deterministic); kept so callers can pass one uniformly.
    importance_range : (lo, hi) or None
        See :func:`image_sides`.
    fill, leaf_size, branching : tuning, see the module docstring.

    Returns
    -------
    Packing
    """
    del seed
    F = np.asarray(to_numpy(features), dtype=np.float64)
    sides = image_sides(importance, min_size, max_size, importance_range)
    n = sides.size
    if F.ndim != 2 or F.shape[0] != n:
        raise ValueError(f"features {F.shape} and importance ({n},) disagree")
    if n == 0:
        return Packing(np.zeros((0, 4)), 0.0, 0.0, 0.0, sides)
    if n == 1:
        s = float(sides[0])
        return Packing(np.array([[0.0, 0.0, s, s]]), s, s, 1.0, sides)
    aspect = float(aspect) if aspect > 0 else 1.0
    areas = sides.astype(np.float64) ** 2

    tree, groups = _group_tree(F, max(2, branching), max(1, leaf_size), sides)
    node_area = {v: float(areas[idx].sum()) for v, idx in groups.items()}
    total = node_area[_ROOT] / max(min(fill, 1.0), 0.05)
    W = math.sqrt(total * aspect)
    H = total / W

    rects = np.zeros((n, 4), dtype=np.float64)
    rects[:, 2] = sides
    rects[:, 3] = sides
    _layout(tree, groups, node_area, sides, W, H, rects, max(1, leaf_size))
    _compact(rects)
    rects[:, 0] -= rects[:, 0].min()
    rects[:, 1] -= rects[:, 1].min()
    width = float((rects[:, 0] + rects[:, 2]).max())
    height = float((rects[:, 1] + rects[:, 3]).max())
    density = float(areas.sum() / (width * height))
    return Packing(rects, width, height, density, sides)


# --------------------------------------------------------------------------- grouping

_ROOT = -1
#: Dendrogram merges at or below this cosine distance join alike neurons.
_TIED = 1e-9


def _group_tree(
    F: np.ndarray, branching: int, leaf_size: int, sides: np.ndarray
) -> tuple[dict[int, list[int]], dict[int, np.ndarray]]:
    """Flattened dendrogram: ``tree[node] = children`` (ordered), ``groups[node] = neurons``.

    Leaf groups are the keys of ``groups`` missing from ``tree``: at most ``leaf_size``
    neurons, or alike neurons (tied at distance 0) whose images are all one size, packed as a
    grid.  The root is ``_ROOT``.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    from cnnvis_gl.analysis.similarity import cosine_similarity

    n = F.shape[0]
    if n <= leaf_size:
        return {}, {_ROOT: np.arange(n)}
    D = np.clip(1.0 - cosine_similarity(F), 0.0, 2.0)
    zero = ~F.any(axis=1)  # no direction (a neuron that never responds): alike each other
    if zero.sum() > 1:
        D[np.ix_(zero, zero)] = 0.0
    np.fill_diagonal(D, 0.0)
    Z = linkage(squareform(0.5 * (D + D.T), checks=False), method="average")
    # Node v < n is neuron v, node v >= n the merge Z[v - n] (left child first).
    left, right = Z[:, 0].astype(np.int64).tolist(), Z[:, 1].astype(np.int64).tolist()
    height = Z[:, 2].tolist()
    count = [1] * n + Z[:, 3].astype(np.int64).tolist()
    # The leaves below a node are a slice of the dendrogram's leaf order: where each starts.
    root = 2 * n - 2
    start = [0] * (2 * n - 1)
    leaves = np.empty(n, dtype=np.int64)
    for v in range(root, n - 1, -1):  # a merge comes after both of its children
        lc, rc = left[v - n], right[v - n]
        start[lc], start[rc] = start[v], start[v] + count[lc]
    for v in range(n):
        leaves[start[v]] = v

    def kids_of(v: int) -> list[int]:
        if height[v - n] > _TIED:
            return [left[v - n], right[v - n]]
        # Its neurons are all alike: the order of their merges means nothing, and its chain
        # would pack as thin strips.  Halves of its slice instead (new nodes, ids from 2n - 1).
        half = count[v] // 2
        out = []
        for s, c in ((start[v], half), (start[v] + half, count[v] - half)):
            if c == 1:
                out.append(int(leaves[s]))
                continue
            out.append(len(count))
            count.append(c)
            start.append(s)
            height.append(0.0)
        return out

    def leaf(v: int) -> bool:
        if v < n or count[v] <= leaf_size:
            return True
        if height[v - n] > _TIED:
            return False
        s = sides[leaves[start[v] : start[v] + count[v]]]
        return bool(np.all(s == s[0]))  # alike and one size: a grid (_layout)

    tree: dict[int, list[int]] = {}
    groups: dict[int, np.ndarray] = {}
    todo = [(root, _ROOT)]
    while todo:
        v, key = todo.pop()
        groups[key] = leaves[start[v] : start[v] + count[v]]
        if leaf(v):
            continue
        kids = kids_of(v)
        while len(kids) < branching:
            big = [c for c in kids if not leaf(c)]
            if not big:
                break
            u = max(big, key=lambda c: (height[c - n], c))
            i = kids.index(u)
            kids[i : i + 1] = kids_of(u)
        tree[key] = kids
        todo.extend((c, c) for c in kids)
    return tree, groups


# --------------------------------------------------------------------------- treemap + packing


def _squarify(areas: list[float], W: float, H: float) -> list[tuple[bool, list[int], float]]:
    """Ordered squarified treemap of ``areas`` (summing to ``W * H``).

    Returns the strips in placement order: ``(vertical, child indices, thickness)``; a vertical
    strip is a column at the left of the remaining rectangle, a horizontal one a row at its top.
    """
    strips: list[tuple[bool, list[int], float]] = []
    i, m = 0, len(areas)
    while i < m:
        vertical = W >= H
        side = max(H if vertical else W, 1e-9)

        def worst(s: float, lo: float, hi: float, side: float = side) -> float:
            t = s / side
            return max(max(t * t / lo, lo / (t * t)), max(t * t / hi, hi / (t * t)))

        row = [i]
        s, lo, hi = areas[i], areas[i], areas[i]
        j = i + 1
        while j < m:
            a = areas[j]
            if worst(s + a, min(lo, a), max(hi, a)) > worst(s, lo, hi):
                break
            row.append(j)
            s, lo, hi = s + a, min(lo, a), max(hi, a)
            j += 1
        t = s / side
        strips.append((vertical, row, t))
        if vertical:
            W = max(W - t, 1e-9)
        else:
            H = max(H - t, 1e-9)
        i = j
    return strips


def _pack_leaf(sides: np.ndarray, cw: float, ch: float) -> np.ndarray:
    """rectpack MaxRectsBssf into a cell of about ``cw x ch`` (grown until all fit).

    The images go in by decreasing area (as rectpack's offline packer with ``SORT_AREA``
    feeds them; its one-bin packer is left out: the same placements without its overhead).
    Returns local ``(x, y)`` per image, the block starting at (0, 0).
    """
    k = sides.size
    if k == 1:
        return np.zeros((1, 2))
    from rectpack import MaxRectsBssf

    side = sides.tolist()
    by_area = sorted(range(k), key=lambda i: side[i], reverse=True)  # (stable, as SORT_AREA)
    smax = side[by_area[0]]
    w = max(int(math.ceil(cw)), smax)
    h = max(int(math.ceil(ch)), smax)
    while True:
        box = MaxRectsBssf(w, h, rot=False)
        if all(box.add_rect(side[i], side[i], rid=i) is not None for i in by_area):
            break  # (the first image that does not fit: a bigger cell)
        w = max(int(math.ceil(w * _GROW)), w + 1)
        h = max(int(math.ceil(h * _GROW)), h + 1)
    xy = np.zeros((k, 2))
    for r in box:
        # rectpack's y axis points up; flip it so the layout reads top-down like the screen.
        xy[r.rid] = (r.x, h - r.y - r.height)
    xy -= xy.min(axis=0)
    return xy


def _grid(k: int, side: float, cw: float, ch: float) -> np.ndarray:
    """``k`` squares of one ``side`` in rows, the block's aspect nearest the cell's ``cw / ch``:
    local ``(x, y)`` per image, row by row."""
    cols = int(np.clip(round(math.sqrt(k * cw / max(ch, 1e-9))), 1, k))
    i = np.arange(k)
    return np.stack([(i % cols) * side, (i // cols) * side], axis=1).astype(np.float64)


def _layout(
    tree: dict[int, list[int]],
    groups: dict[int, np.ndarray],
    node_area: dict[int, float],
    sides: np.ndarray,
    W: float,
    H: float,
    rects: np.ndarray,
    leaf_size: int,
) -> dict[int, tuple[float, float]]:
    """Top-down cells, leaf packing, bottom-up guillotine composition; fills ``rects``.

    Positions are accumulated as offsets: each block's members are shifted by the block's
    position inside its parent, so every neuron ends in root coordinates.
    """
    # Top-down: cell size of every node, and the strip structure of every internal node.
    cell: dict[int, tuple[float, float]] = {_ROOT: (W, H)}
    strips_of: dict[int, list[tuple[bool, list[int], float]]] = {}
    order: list[int] = []
    todo = [_ROOT]
    while todo:
        v = todo.pop()
        order.append(v)
        if v not in tree:
            continue
        kids = tree[v]
        cw, ch = cell[v]
        tot = sum(node_area[c] for c in kids)
        scaled = [node_area[c] / tot * cw * ch for c in kids]
        strips = _squarify(scaled, cw, ch)
        strips_of[v] = strips
        for vertical, row, t in strips:
            for i in row:
                length = scaled[i] / max(t, 1e-9)
                cell[kids[i]] = (t, length) if vertical else (length, t)
        todo.extend(kids)

    # Bottom-up: block size of every node; members' positions relative to the node's block.
    block: dict[int, tuple[float, float]] = {}
    for v in reversed(order):
        idx = groups[v]
        if v not in tree:
            if idx.size == 1:  # (most leaves: one image at the block's corner)
                s = float(sides[idx[0]])
                block[v] = (s, s)
                continue
            if idx.size > leaf_size:  # alike neurons, one size (_group_tree)
                xy = _grid(idx.size, float(sides[idx[0]]), *cell[v])
            else:
                xy = _pack_leaf(sides[idx], *cell[v])
            rects[idx, 0] = xy[:, 0]
            rects[idx, 1] = xy[:, 1]
            block[v] = (
                float((xy[:, 0] + sides[idx]).max()),
                float((xy[:, 1] + sides[idx]).max()),
            )
            continue
        kids = tree[v]
        # Compose strips from the last (innermost remaining rectangle) outwards.
        bw = bh = 0.0
        first = True
        for vertical, row, _t in reversed(strips_of[v]):
            # The strip: its cells stacked (vertical strip) or side by side (horizontal).
            sw = sh = 0.0
            for i in row:
                c = kids[i]
                cw, ch = block[c]
                if vertical:
                    _shift(rects, groups[c], 0.0, sh)
                    sw, sh = max(sw, cw), sh + ch
                else:
                    _shift(rects, groups[c], sw, 0.0)
                    sw, sh = sw + cw, max(sh, ch)
            members = np.concatenate([groups[kids[i]] for i in row])
            if first:
                bw, bh, first = sw, sh, False
                rest = members
                continue
            # The strip goes left of (vertical) or above (horizontal) the rest.
            if vertical:
                _shift(rects, rest, sw, 0.0)
                bw, bh = bw + sw, max(bh, sh)
            else:
                _shift(rects, rest, 0.0, sh)
                bw, bh = max(bw, sw), bh + sh
            rest = np.concatenate([members, rest])
        block[v] = (bw, bh)
    return block


def _shift(rects: np.ndarray, idx: np.ndarray, dx: float, dy: float) -> None:
    if dx:
        rects[idx, 0] += dx
    if dy:
        rects[idx, 1] += dy


def _compact(rects: np.ndarray, max_rounds: int = 20) -> None:
    """Slide rectangles up, then left, into free space until nothing moves (in place)."""
    eps = 1e-9
    for _ in range(max_rounds):
        moved = False
        for axis in (1, 0):  # y first, then x
            # Sliding along one axis leaves the other fixed: who overlaps whom across it is
            # known for the whole pass.
            opos = rects[:, 1 - axis]
            ohi = opos + rects[:, 3 - axis] - eps
            near = (opos[None, :] < ohi[:, None]) & (opos[:, None] < ohi[None, :])
            np.fill_diagonal(near, False)
            pos, size = rects[:, axis], rects[:, axis + 2]
            end = pos + size
            # Where each could slide to as things stand: when none can, the pass moves none.
            can = np.zeros(len(rects), dtype=bool)
            for a in range(0, len(rects), 1024):  # (bounded temporaries for a big cluster)
                s = slice(a, a + 1024)
                below = np.where(near[s] & (end[None, :] <= pos[s, None] + eps), end[None, :], 0.0)
                can[s] = below.max(axis=1) < pos[s] - eps
            if not can.any():
                continue
            order = np.argsort(pos, kind="stable")
            first = int(np.argmax(can[order]))  # those before it stay where they are
            rows, cols = np.nonzero(near)
            ends = np.searchsorted(rows, np.arange(len(rects) + 1)).tolist()
            cols = cols.tolist()
            pos, size = pos.tolist(), size.tolist()
            end = [p + s for p, s in zip(pos, size, strict=True)]
            for i in order[first:].tolist():
                lim = pos[i] + eps
                target = max((end[j] for j in cols[ends[i] : ends[i + 1]] if end[j] <= lim), default=0.0)
                if target < pos[i] - eps:
                    pos[i], end[i] = target, target + size[i]
                    moved = True
            rects[:, axis] = pos
        if not moved:
            break
