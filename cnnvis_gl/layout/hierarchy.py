"""The hierarchy above layer groups: stages of the module tree (issue 11's stage → block → layer).

A *stage* is a module holding several consecutive layer groups — ``layer3`` of a ResNet (its
blocks), ``features.denseblock2`` of a DenseNet, ``features`` of a VGG.  Collapsed, a stage is
one row showing the stage's output: the neurons of its last group, clustered as usual, with the
edges into it composed through the groups it hides (see :func:`stage_weights`).  Expanded (the
default), it is its groups' rows; a group expands further into its layers.

Plain Python and NumPy on the snapshot's graph and weights: the layout, the viewer and
``cnnvis render --collapse`` use it alike.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .search import module_prefix

if TYPE_CHECKING:
    from ..model.graph import NeuronGraph
    from ..run.snapshot import Snapshot

__all__ = ["innermost_stages", "outermost", "stage_groups", "stage_weights", "stages"]


_last: list = [None, None]  # weak reference to the last graph asked about, its stages
_last_inner: list = [None, None]  # … and its innermost stages
_SERIES = re.compile(r"^(.*\d)[a-z]$")  # inception4b, Mixed_6c: a series' stem and letter


def stages(graph: NeuronGraph) -> dict[str, tuple[int, ...]]:
    """``{module path: indices of its groups}`` of every stage of ``graph``, in network order.

    A stage holds at least two groups and not all of them, consecutive in the network's order
    (a module whose groups are interleaved with others' is no stage), and its path is no group's
    name (a row is named after either).  Sibling modules numbered as a series are a stage too,
    named by their common stem: GoogLeNet's ``inception4a`` … ``inception4e`` are
    ``inception4``, Inception-v3's ``Mixed_6a`` … ``Mixed_6e`` are ``Mixed_6`` (no module holds
    them).  The last graph's stages are remembered (the viewer asks every frame); do not change
    the dict returned.
    """
    ref, found = _last
    if ref is not None and ref() is graph:
        return found
    found = _stages(graph)
    _last[:] = [weakref.ref(graph), found]
    return found


def _stages(graph: NeuronGraph) -> dict[str, tuple[int, ...]]:
    groups = graph.groups
    prefixes = [module_prefix(g.units) for g in groups]
    names = {g.name for g in groups}
    found: dict[str, list[int]] = {}
    for gi, p in enumerate(prefixes):
        for depth in range(1, len(p) + 1):
            found.setdefault(".".join(p[:depth]), []).append(gi)
    series: dict[str, list[int]] = {}
    for gi, p in enumerate(prefixes):
        m = _SERIES.match(p[-1]) if p else None
        if m is not None:
            series.setdefault(".".join((*p[:-1], m.group(1))), []).append(gi)
    for stem, idx in series.items():
        found.setdefault(stem, idx)  # (a module of that name is the stage already)
    out = {}
    for path, idx in found.items():
        consecutive = idx[-1] - idx[0] == len(idx) - 1
        if 2 <= len(idx) < len(groups) and consecutive and path not in names:
            out[path] = tuple(idx)
    return dict(sorted(out.items(), key=lambda kv: (kv[1][0], -len(kv[1]))))


def stage_groups(graph: NeuronGraph) -> dict[str, list[str]]:
    """``{stage: its groups' names}`` (what the breadcrumbs and the Find box take)."""
    return {p: [graph.groups[i].name for i in idx] for p, idx in stages(graph).items()}


def innermost_stages(graph: NeuronGraph) -> list[str]:
    """The stages holding no other stage (``layer1`` … ``layer4`` of a ResNet): what
    ``--collapse all`` collapses."""
    ref, found = _last_inner
    if ref is not None and ref() is graph:
        return list(found)
    st = {p: set(idx) for p, idx in stages(graph).items()}  # (the viewer asks every frame)
    found = [p for p, idx in st.items() if not any(q != p and j < idx for q, j in st.items())]
    _last_inner[:] = [weakref.ref(graph), found]
    return list(found)


def outermost(graph: NeuronGraph, collapsed: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """The collapsed stages not inside another collapsed stage: ``{path: group indices}``."""
    st = stages(graph)
    chosen = {p: st[p] for p in collapsed if p in st}
    return {
        p: idx for p, idx in chosen.items()
        if not any(q != p and set(idx) < set(j) for q, j in chosen.items())
    }  # fmt: skip


#: Composed weights by snapshot (a stage of a ResNet-50 chains six 1024² products: ~0.3 s).
_COMPOSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stage_weights(snapshot: Snapshot, source: str, span: tuple[int, ...]) -> np.ndarray | None:
    """Signed neuron weights from group ``source``'s neurons into the output of the stage made
    of groups ``span`` (its last group's neurons), ``[C_out, C_source]``, or None when no path
    leads from ``source`` into the stage.

    Group weights already chain the layers inside a group by matrix product (and sum the paths
    of a residual block); a stage chains its groups the same way: the map into each group is the
    sum over its sources of ``W[group][s] @ map[s]``, with the identity at ``source``.  Paths that
    leave the stage and come back in are not followed (there are none in a module tree).
    Computed once per snapshot (cached while the snapshot lives)."""
    cache = _COMPOSED.setdefault(snapshot, {})
    key = (source, tuple(span))
    if key not in cache:
        cache[key] = _compose(snapshot, source, key[1])
    return cache[key]


def _compose(snapshot: Snapshot, source: str, span: tuple[int, ...]) -> np.ndarray | None:
    graph = snapshot.graph
    maps: dict[str, np.ndarray | None] = {source: None}  # None: the identity
    for gi in span:
        name = graph.groups[gi].name
        acc = None
        for s, W in snapshot.group_weights(name).items():
            if s not in maps:
                continue
            W = np.asarray(W, dtype=np.float32)
            term = W if maps[s] is None else W @ maps[s]
            acc = term if acc is None else acc + term
        if acc is not None:
            maps[name] = acc
    return maps.get(graph.groups[span[-1]].name)
