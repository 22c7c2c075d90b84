"""Where a layer graph's blocks are (docs/GRAPH.md, "Groups"): which layers lie *inside* a
residual block, a multi-branch module or a cell — some edge jumps over them — and where such
stretches end.

Layers come in forward order (the first is the input); each has ``name``, ``kind``,
``inputs``, ``shape`` and ``params`` (:class:`~cnnvis_gl.model.graph.Layer`).  Beside the edge
that jumps over a block, three rules find block ends inside what edges jump over:

- *cells* that read the two cells before them (NASNet, PNASNet, DARTS): :func:`_cells`;
- *nested residuals* (residual networks of residual networks): a shortcut around a chain of
  residual blocks does not make the chain one block (:func:`_outer_shortcuts`);
- *several streams* (octave convolutions' high and low frequencies, ResNet in ResNet's
  residual and transient streams, a dual path network's sum and concatenation): a block ends
  where every edge crossing the boundary starts at the output of a join made since the last
  block ended (:func:`_stream_ends`).
"""

from __future__ import annotations

from typing import Any

ELEMENTWISE = {"norm", "act", "dropout", "add", "identity", "mul"}

Edge = tuple[int, int]  # (source position, target position)


def is_join(layer: Any) -> bool:
    """Whether a layer joins branches: a residual add, a concatenation, a product of two maps."""
    if layer.kind in ("add", "cat") and len(layer.inputs) > 1:
        return True
    return layer.kind == "mul" and len(layer.params.get("carriers", [])) > 1


def stretches(layers: list[Any]) -> tuple[list[bool], set[str]]:
    """For each layer, whether it lies inside a block (a *spanned* stretch ends at the first
    layer after it that is not); and the joins that end cells (their own taps)."""
    order = {l.name: i for i, l in enumerate(layers)}
    edges = [(order[i], order[l.name]) for l in layers for i in l.inputs]
    root = _join_roots(layers, order)
    outer = _outer_shortcuts(layers, order, edges, root)
    edges = [e for e in edges if e not in outer]
    crossing = _crossing(len(layers), edges)
    spanned = [bool(c) for c in crossing]
    spanned, cells = _cells(layers, spanned, edges, crossing)
    return _stream_ends(layers, spanned, edges, root), cells


def _crossing(n: int, edges: list[Edge]) -> list[set[int]]:
    """For each of ``n`` layers in order, where the edges jumping over it start."""
    starts: list[list[int]] = [[] for _ in range(n + 1)]
    ends: list[list[int]] = [[] for _ in range(n + 1)]
    for s, d in edges:
        if s + 1 < d:
            starts[s + 1].append(s)
            ends[d].append(s)
    live: dict[int, int] = {}
    out = []
    for p in range(n):
        for s in ends[p]:
            live[s] -= 1
            if not live[s]:
                del live[s]
        for s in starts[p]:
            live[s] = live.get(s, 0) + 1
        out.append(set(live))
    return out


def _join_roots(layers: list[Any], order: dict[str, int]) -> dict[int, int]:
    """The join each layer is the output of: the join itself, or a norm, activation, … applied
    to it (a chain of one-input element-wise layers)."""
    root: dict[int, int] = {}
    for p, layer in enumerate(layers):
        if is_join(layer):
            root[p] = p
        elif layer.kind in ELEMENTWISE and len(layer.inputs) == 1:
            src = order[layer.inputs[0]]
            if src in root and layer.shape == layers[src].shape:
                root[p] = root[src]
    return root


def _cells(
    layers: list[Any], spanned: list[bool], edges: list[Edge], crossing: list[set[int]]
) -> tuple[list[bool], set[str]]:
    """``spanned`` with the joins that end *cells* taken out.  Cells that each read the outputs
    of the two cells before them (NASNet, PNASNet, DARTS) make one long spanned stretch.  A
    cell's join ends a block (as a residual add does) when every edge crossing it starts at
    another cell's join or at an *opening* of the stretch — where it opened, or a stem layer
    before its first join crossed by edges from openings only — and, if one starts at an
    opening (as the skip edge of a residual block around a join inside it does), when the join
    itself is read past a later cell's join that reads it (by the cell after next; not a join
    on the other side of a residual block, such as a shortcut's concatenation).  Also returns
    the names of those joins."""
    opening: dict[int, set[int]] = {}  # join -> the openings of its stretch
    candidates: list[int] = []
    openers: set[int] = set()
    joined = False
    for p, layer in enumerate(layers):
        if not spanned[p]:
            openers, joined = {p}, False
        elif is_join(layer):
            candidates.append(p)
            opening[p], joined = openers, True
        elif not joined and crossing[p] <= openers:
            openers = openers | {p}  # a stem layer: only the stretch's openings jump it
    reach = {c: max([d for s, d in edges if s == c], default=c) for c in candidates}
    after = _descendants(len(layers), edges)
    cuts = set(candidates)
    while True:
        kept = {
            c
            for c in cuts
            if crossing[c] - opening[c] <= cuts
            and (
                not crossing[c] & opening[c]
                or any(c < k < reach[c] and after[c] >> k & 1 for k in cuts)
            )
        }
        if kept == cuts:
            break
        cuts = kept
    return [sp and p not in cuts for p, sp in enumerate(spanned)], {layers[c].name for c in cuts}


def _descendants(n: int, edges: list[Edge]) -> list[int]:
    """For each of ``n`` layers in order, the layers that read it, directly or not (a bit
    set).  A later cell reads the cell before it; the two sides of a residual block (a shake-
    shake block's mixed branches and its shortcut's concatenation) do not read each other."""
    readers: list[list[int]] = [[] for _ in range(n)]
    for s, d in edges:
        readers[s].append(d)
    after = [0] * n
    for p in range(n - 1, -1, -1):
        for d in readers[p]:
            after[p] |= 1 << d | after[d]
    return after


def _outer_shortcuts(
    layers: list[Any], order: dict[str, int], edges: list[Edge], root: dict[int, int]
) -> set[Edge]:
    """Shortcuts around a chain of at least two residual blocks (RoR's stage and body
    shortcuts): the edge into an add whose branch starts at a layer *s* that a chain of residual
    blocks inside it continues — an add whose shortcut and body both start at *s*, then one
    whose both start at the output of the one before, …"""
    consumers: dict[int, int] = {}
    for s, _ in edges:
        consumers[s] = consumers.get(s, 0) + 1

    def origin(p: int) -> int:
        """Where the branch holding ``p`` starts: up one-input layers to a layer read twice."""
        while consumers.get(p, 0) < 2 and len(layers[p].inputs) == 1:
            p = order[layers[p].inputs[0]]
        return p

    adds = [p for p, l in enumerate(layers) if l.kind == "add" and len(l.inputs) > 1]
    starts = {p: [root.get(o, o) for o in map(origin, (order[i] for i in layers[p].inputs))]
              for p in adds}  # fmt: skip
    outer = set()
    for d in adds:
        for i in layers[d].inputs:
            s = order[i]
            if s + 1 >= d:
                continue
            head, chain = root.get(origin(s), origin(s)), 0
            for j in adds:
                if origin(s) < j < d and starts[j].count(head) > 1:
                    head, chain = j, chain + 1
            if chain >= 2:
                outer.add((s, d))
    return outer


def _stream_ends(
    layers: list[Any], spanned: list[bool], edges: list[Edge], root: dict[int, int]
) -> list[bool]:
    """``spanned`` with the ends of blocks of several streams taken out.  Layer *p* ends such a
    block when the edges from *p* or before to after it (the streams) are at least two, all
    start at outputs of joins made after the stretch opened or the last such end, each is read
    by some layer that is no join (not a shortcut waiting for its sum), and they do not all end
    at one join (a cell's concatenation of its nodes); of consecutive such layers, the last."""
    by_start: dict[int, list[int]] = {}
    for s, d in edges:
        by_start.setdefault(s, []).append(d)
    read = {s: {d for d in ds if not is_join(layers[d])} for s, ds in by_start.items()}
    leaving: dict[int, int] = {}  # source -> its edges still open after p
    ends_at: dict[int, list[int]] = {}
    out = list(spanned)
    last = -1
    run_end = None  # the last of consecutive layers found (their streams start after `last`)
    for p in range(len(spanned)):
        for s in ends_at.pop(p, []):
            leaving[s] -= 1
            if not leaving[s]:
                del leaving[s]
        for d in by_start.get(p, []):
            if d > p:
                leaving[p] = leaving.get(p, 0) + 1
                ends_at.setdefault(d, []).append(p)
        if not spanned[p]:
            last, run_end = p, None
        elif (
            len(leaving) > 1
            and all(root.get(s, -1) > last and read[s] for s in leaving)
            and not set.intersection(*(set(by_start[s]) for s in leaving))
        ):
            run_end = p
        elif run_end is not None:
            out[run_end] = False
            last, run_end = run_end, None
    if run_end is not None:
        out[run_end] = False
    return out
