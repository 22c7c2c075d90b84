"""Finding your way in a Scene: search by name, and the neighbours of a cluster.

:func:`search` matches a query against what the view shows — layer rows (group names), module
paths (every unit of a group, e.g. ``features.5``), cluster names (``conv2 #3``), neurons
(``conv2:17`` or ``features.7:17``) and class names — and ranks exact matches before prefixes
before substrings.  :func:`neighbour` is the cluster an arrow key goes to; :func:`shown_groups`
and :func:`groups_frame` say which layer groups a view shows and frame groups (a second run
follows the first with them); :func:`breadcrumbs` says where a view is in the module tree.  Plain Python and
NumPy on the Scene: the viewer (the Find box, the arrow keys) and tests use them alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..remember import Remembered
from .scene import ROW_BETWEEN, ROW_GROUP, Scene

__all__ = [
    "Crumb", "Hit", "breadcrumbs", "cluster_at", "groups_frame", "groups_under", "matrix_class_at", "module_prefix",
    "neighbour", "neuron_at", "row_clusters", "search", "shown_groups",
]  # fmt: skip

_NEURON = re.compile(r"^(.+?)\s*:\s*(\d+)$")  # conv2:17
_CLUSTER = re.compile(r"^(.+?)\s*#\s*(\d+)$")  # conv2 #3


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes
    ----------
    kind
        ``"module"`` (a module holding several layer groups, e.g. ``layer3`` of a ResNet),
        ``"row"``, ``"cluster"``, ``"neuron"`` or ``"class"``.
    index
        Into ``scene.rows`` (a module: its first group's row), ``scene.clusters``,
        ``scene.neurons``, or the snapshot's classes.
    label
        What the result list shows.
    groups
        A module's layer groups.
    """

    kind: str
    index: int
    label: str
    groups: tuple[str, ...] = ()


def row_clusters(scene: Scene, row: int) -> np.ndarray:
    """Indices of the clusters of scene row ``row``, left to right (``conv3 #1`` is the first)."""
    c = scene.clusters
    idx = np.flatnonzero(c.row == row)
    return idx[np.argsort(c.rect[idx, 0], kind="stable")]


def row_frame(scene: Scene, row: int) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)``: what framing scene row ``row`` shows — its clusters and its name
    on the left, the row's height, a margin (the viewer's zoom-to-row and ``--zoom-to``)."""
    r = scene.rows[row]
    band = r.span(scene.bounds)
    idx = np.flatnonzero(scene.clusters.row == row)
    if len(idx):
        rect = scene.clusters.rect[idx]
        x0, x1 = float(rect[:, 0].min()), float((rect[:, 0] + rect[:, 2]).max())
    else:
        x0, x1 = band
    for lab in scene.labels:  # the row's name, left of its clusters (in the row's column)
        if lab.kind == "row" and r.y <= lab.y <= r.y + r.height and band[0] <= lab.x <= band[1]:
            x0 = min(x0, lab.left)
    pad = max(r.height * 0.15, 4.0)
    return (x0 - pad, r.y - pad, x1 + pad * 6, r.y + r.height + pad)


def shown_groups(
    scene: Scene, groups: list[str], visible: tuple[float, float, float, float]
) -> list[str]:
    """Names of the groups a view of ``visible`` (x0, y0, x1, y1) shows: a layer row whose band
    meets the view and of which at least half the height is in it (or which fills at least
    half the view's height) — rows merely peeking in at an edge do not count.  A collapsed
    stage's row shows all of its groups."""
    x0, y0, x1, y1 = visible
    rows, y, h, bx0, bx1 = _group_rows(scene, len(groups))
    inside = np.minimum(y + h, y1) - np.maximum(y, y0)
    hit = (bx0 < x1) & (bx1 > x0) & (inside > 0.5 * np.minimum(h, y1 - y0))
    out: list[str] = []
    for k in np.flatnonzero(hit):
        r = rows[k]
        for g in r.groups or (r.group,):
            if groups[g] not in out:
                out.append(groups[g])
    return out


_rows: Remembered[tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = Remembered()


def _group_rows(scene: Scene, n_groups: int) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The layer rows of ``scene`` (not in-between rows) with their tops, heights and bands'
    x extents — the breadcrumbs ask every frame (remembered for the last scene)."""

    def make() -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = [r for r in scene.rows if r.kind != ROW_BETWEEN and 0 <= r.group < n_groups]
        spans = np.array([r.span(scene.bounds) for r in rows], dtype=np.float64).reshape(-1, 2)
        return (rows, np.array([r.y for r in rows], dtype=np.float64),
                np.array([r.height for r in rows], dtype=np.float64), spans[:, 0], spans[:, 1])  # fmt: skip

    return _rows.get((scene,), n_groups, make)


def groups_frame(
    scene: Scene, groups: list[str], names: list[str]
) -> tuple[float, float, float, float] | None:
    """The rectangle of ``scene`` framing the rows of the groups ``names`` (``None``: none; a
    collapsed stage's row stands for each of its groups)."""
    rects = [
        row_frame(scene, k)
        for k, r in enumerate(scene.rows)
        if r.kind != ROW_BETWEEN
        and 0 <= r.group < len(groups)
        and any(groups[g] in names for g in r.groups or (r.group,))
    ]
    if not rects:
        return None
    a = np.asarray(rects, dtype=np.float64)
    return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max()))


@dataclass(frozen=True)
class Crumb:
    """One step of the breadcrumbs: its label and the layer groups it covers."""

    label: str
    groups: tuple[str, ...]


def module_prefix(units: Sequence[str]) -> tuple[str, ...]:
    """The module path shared by all of a group's units, as components: ``layer3.1.conv1`` and
    ``layer3.1.conv3`` share ``("layer3", "1")``; a group of one unit is that unit's path."""
    paths = [u.split(".") for u in units]
    if not paths:
        return ()
    if len(paths) == 1:
        return tuple(paths[0])
    out = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        out.append(parts[0])
    return tuple(out)


def groups_under(groups: Mapping[str, Sequence[str]], path: str) -> list[str]:
    """The groups whose units all live under module ``path`` (e.g. ``layer3`` of a ResNet: its
    blocks), in network order — what a breadcrumb of that module frames."""
    want = tuple(p for p in path.strip().split(".") if p)
    if not want:
        return []
    return [g for g, units in groups.items() if module_prefix(units)[: len(want)] == want]


def breadcrumbs(
    model: str,
    groups: Mapping[str, Sequence[str]],
    shown: Sequence[str],
    stages: Mapping[str, Sequence[str]] | None = None,
) -> list[Crumb]:
    """Where a view showing the layer groups ``shown`` is in the network's module tree: the
    model (every group), then each module that holds all the shown groups and fewer groups than
    the crumb before (e.g. ``layer3`` of a ResNet, then ``layer3.1``), then the group itself when
    one is shown.  ``groups``: every group's units (module paths), in network order; ``stages``:
    stage → its groups (a stage that is no module, such as GoogLeNet's ``inception4``, gets a
    crumb where its size puts it)."""
    names = list(groups)
    out = [Crumb(model, tuple(names))]
    want = set(shown)
    shown = [g for g in names if g in want]
    if not shown or len(shown) == len(names):
        return out
    paths = {g: module_prefix(groups[g]) for g in names}
    common = list(paths[shown[0]])
    for g in shown[1:]:
        p = paths[g]
        n = 0
        while n < min(len(common), len(p)) and common[n] == p[n]:
            n += 1
        common = common[:n]
    for depth in range(1, len(common) + 1):
        prefix = tuple(common[:depth])
        inside = tuple(g for g in names if paths[g][:depth] == prefix)
        if len(inside) < len(out[-1].groups):
            out.append(Crumb(".".join(prefix), inside))
    seen = {c.groups for c in out}
    for path, members in (stages or {}).items():  # a series of modules: no prefix names it
        member = set(members)
        inside = tuple(g for g in names if g in member)
        if inside not in seen and set(shown) <= set(inside) and len(inside) < len(names):
            out.append(Crumb(path, inside))
            seen.add(inside)
    out[1:] = sorted(out[1:], key=lambda c: -len(c.groups))
    if len(shown) == 1:  # the group, named with its module when that says more
        g, path = shown[0], ".".join(paths[shown[0]])
        plain = path in ("", g) or (len(out) > 1 and out[-1].groups != (g,) and path == out[-1].label)
        crumb = Crumb(g if plain else f"{g} ({path})", (g,))
        out[-1:] = [crumb] if out[-1].groups == (g,) else [out[-1], crumb]
    return out


def neuron_at(scene: Scene, unit: str, channel: int) -> int | None:
    """Index into ``scene.neurons`` of channel ``channel`` of layer ``unit`` (``None`` when the
    scene does not show it)."""
    if unit not in scene.units:
        return None
    n = scene.neurons
    hit = np.flatnonzero((n.unit == scene.units.index(unit)) & (n.index == int(channel)))
    return int(hit[0]) if len(hit) else None


def cluster_at(scene: Scene, cid: int) -> int | None:
    """Index into ``scene.clusters`` of the cluster of id ``cid`` (``None`` when absent)."""
    hit = np.flatnonzero(np.asarray(scene.clusters.id) == int(cid))
    return int(hit[0]) if len(hit) else None


def matrix_class_at(scene: Scene, neuron: int, x: float) -> int:
    """The class (snapshot index) of the matrix column under scene x in ``neuron``'s row."""
    ci = int(scene.neurons.cluster[neuron])
    x0, _, w, _ = (float(v) for v in scene.clusters.matrix_rect[ci])
    k = len(scene.class_order)
    col = int(np.clip(np.floor((x - x0) / max(w, 1e-9) * k), 0, k - 1))
    return int(scene.class_order[col])


def _rank(text: str, q: str) -> int | None:
    """0 exact, 1 prefix, 2 substring, ``None`` no match (case-insensitive)."""
    t = text.lower()
    if t == q:
        return 0
    if t.startswith(q):
        return 1
    return 2 if q in t else None


def _layer_rows(scene: Scene) -> list[int]:
    return [i for i, r in enumerate(scene.rows) if r.kind != ROW_BETWEEN]


def _rows_of(scene: Scene, name: str, group_units: Mapping[str, Sequence[str]]) -> list[int]:
    """Layer rows named ``name``, showing unit ``name``, or of the group holding unit ``name``."""
    q = name.lower()
    out = []
    for i in _layer_rows(scene):
        r = scene.rows[i]
        units = [u.lower() for u in group_units.get(r.name.split("/")[0], ())]
        if r.name.lower() == q or r.unit.lower() == q or (r.kind == ROW_GROUP and q in units):
            out.append(i)
    return out


def search(
    scene: Scene,
    query: str,
    classes: Sequence[str] = (),
    group_units: Mapping[str, Sequence[str]] | None = None,
    limit: int = 12,
    stages: Mapping[str, Sequence[str]] | None = None,
) -> list[Hit]:
    """What ``query`` finds in ``scene``, best first (at most ``limit``).

    Parameters
    ----------
    scene
        The scene shown.
    query
        A layer or module name (or part of one), ``LAYER:CHANNEL`` for a neuron,
        ``LAYER #N`` for the N-th cluster of a row (as the Cluster panel names it), or a
        class name.
    classes
        The snapshot's class names (class hits index them).
    group_units
        Group name → the module paths of its layers (a collapsed group's row answers for
        each of them).
    stages
        Stage → its groups' names (:func:`~cnnvis_gl.layout.hierarchy.stage_groups`): a stage
        that is no module (a numbered series such as GoogLeNet's ``inception4``) is found too.
    """
    q = " ".join(query.split()).lower()
    if not q:
        return []
    units = group_units or {}
    m = _NEURON.match(q)
    if m:
        return _neuron_hits(scene, m.group(1), int(m.group(2)), units)[:limit]
    m = _CLUSTER.match(q)
    if m:
        return _cluster_hits(scene, m.group(1), int(m.group(2)), units)[:limit]
    ranked: list[tuple[int, int, Hit]] = []
    path = query.strip()
    stage = groups_under(units, path) if path not in units else []
    if len(stage) < 2 and stages and path in stages:
        stage = list(stages[path])
    if len(stage) > 1:  # a module holding several groups: frame them all, as its breadcrumb
        first = next((i for i in _layer_rows(scene) if scene.rows[i].name == stage[0]), 0)
        label = f"module {path}: {stage[0]} … {stage[-1]} ({len(stage)} groups)"
        ranked.append((-1, 0, Hit("module", first, label, tuple(stage))))
    expanded = [i for i in _layer_rows(scene) if scene.rows[i].name.split("/")[0] == path]
    if len(expanded) > 1:  # an expanded group: frame all its layers (its branches side by side)
        label = f"group {path}: {len(expanded)} layers"
        ranked.append((-1, 0, Hit("module", expanded[0], label, (path,))))
    for i in _layer_rows(scene):
        r = scene.rows[i]
        names = [r.name, *units.get(r.name, ())]
        best = min((k for k in (_rank(n, q) for n in names) if k is not None), default=None)
        if best is not None:
            ranked.append((best, len(ranked), Hit("row", i, f"layer {r.name}")))
    for k, name in enumerate(classes):
        rank = _rank(name, q)
        if rank is not None:
            ranked.append((rank, len(ranked), Hit("class", k, f"class {name}")))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [h for _, _, h in ranked[:limit]]


def _neuron_hits(
    scene: Scene, layer: str, ch: int, units: Mapping[str, Sequence[str]]
) -> list[Hit]:
    out = []
    for i in _rows_of(scene, layer, units):
        u = scene.rows[i].unit
        k = neuron_at(scene, u, ch)
        if k is not None:
            out.append(Hit("neuron", k, f"neuron {ch} of {scene.rows[i].name} ({u})"))
    return out


def _cluster_hits(
    scene: Scene, layer: str, pos: int, units: Mapping[str, Sequence[str]]
) -> list[Hit]:
    c = scene.clusters
    out = []
    for i in _rows_of(scene, layer, units):
        idx = row_clusters(scene, i)  # left to right, as numbered
        if 1 <= pos <= len(idx):
            name = scene.rows[i].name
            ci = int(idx[pos - 1])
            out.append(Hit("cluster", ci, f"cluster {name} #{pos} · {int(c.size[ci])} neurons"))
    return out


def _band(scene: Scene, rows: list[int], p: int) -> list[int]:
    """The layer rows side by side with ``rows[p]`` (same top, next to it in row order: the
    lanes of parallel branches), ``rows[p]`` alone otherwise."""
    y = scene.rows[rows[p]].y
    a = b = p
    while a > 0 and scene.rows[rows[a - 1]].y == y:
        a -= 1
    while b + 1 < len(rows) and scene.rows[rows[b + 1]].y == y:
        b += 1
    return rows[a : b + 1]


def neighbour(scene: Scene, ci: int, direction: str) -> int | None:
    """The cluster an arrow key goes to from cluster ``ci``: ``"left"`` / ``"right"`` in its
    band (its row, then the lanes of parallel branches beside it), ``"up"`` / ``"down"`` the
    cluster of the previous / next band nearest in x (``None`` at an end)."""
    c = scene.clusters
    row = int(c.row[ci])
    cx = c.rect[:, 0] + c.rect[:, 2] / 2
    rows = _layer_rows(scene)
    band = _band(scene, rows, rows.index(row))
    if direction in ("left", "right"):
        idx = np.concatenate([row_clusters(scene, k) for k in band])
        idx = idx[np.argsort(c.rect[idx, 0], kind="stable")]
        k = int(np.flatnonzero(idx == ci)[0]) + (1 if direction == "right" else -1)
        return int(idx[k]) if 0 <= k < len(idx) else None
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be left, right, up or down, not {direction!r}")
    p = rows.index(band[-1]) + 1 if direction == "down" else rows.index(band[0]) - 1
    if not 0 <= p < len(rows):
        return None
    idx = np.flatnonzero(np.isin(c.row, _band(scene, rows, p)))
    if not len(idx):
        return None
    return int(idx[np.argmin(np.abs(cx[idx] - cx[ci]))])
