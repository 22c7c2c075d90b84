"""The selection rule in plain NumPy: what a class / neuron / cluster selection highlights.

A class selection keeps bright the neurons whose activation for any selected class is in the
top ``quantile`` of their layer (unit), dims the others and the clusters without such a neuron,
and emphasises the selected classes' matrix columns.  The renderer only uploads the result
(:meth:`cnnvis_gl.render.SceneRenderer.set_selection`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .scene import Bundles, Edges, Scene
from .search import cluster_at, neuron_at

__all__ = [
    "Highlight", "bundle_emphasis", "class_top_neurons", "downstream_clusters", "highlight",
    "saved_selection",
]  # fmt: skip


@dataclass(frozen=True)
class Highlight:
    """Per-element flags of a selection (float32, 1 = on).

    Attributes
    ----------
    neuron_bright, neuron_selected
        ``[N]``: kept bright by the class selection (or selected); outlined as selected.
    cluster_emphasis, cluster_selected
        ``[C]``: has a bright neuron (all 1 without a class selection); outlined as selected.
    class_column
        ``[K]`` in matrix-column order (``scene.class_order``): a selected class.
    """

    neuron_bright: np.ndarray
    neuron_selected: np.ndarray
    cluster_emphasis: np.ndarray
    cluster_selected: np.ndarray
    class_column: np.ndarray

    @property
    def any_class(self) -> bool:
        return bool(self.class_column.any())

    @property
    def any_cluster(self) -> bool:
        return bool(self.cluster_selected.any())


def highlight(
    scene: Scene,
    classes: Iterable[int] | None = None,
    neurons: Iterable[int] | None = None,
    clusters: Iterable[int] | None = None,
    quantile: float = 0.2,
) -> Highlight:
    """The flags of a selection of ``classes`` (snapshot class indices), ``neurons`` and
    ``clusters`` (indices into the scene's neurons and clusters) on ``scene``."""
    n = scene.neurons
    N, C = len(n.cluster), len(scene.clusters.rect)
    cls = np.asarray(sorted(set(classes or ())), dtype=np.int64)
    bright = np.ones(N, dtype=np.float32)
    column = np.zeros(len(scene.class_order), dtype=np.float32)
    emphasis = np.ones(C, dtype=np.float32)
    if len(cls) and N:
        score = np.asarray(n.activation, np.float32)[:, cls].max(axis=1)
        keep = np.zeros(N, dtype=bool)
        for u in np.unique(n.unit):
            m = n.unit == u
            keep[m] = score[m] >= np.quantile(score[m], 1.0 - float(quantile))
        bright = keep.astype(np.float32)
        column = np.isin(np.asarray(scene.class_order, dtype=np.int64), cls).astype(np.float32)
    selected = np.zeros(N, dtype=np.float32)
    if neurons is not None:
        idx = np.asarray(list(neurons), dtype=np.int64)
        selected[idx] = 1.0
        bright[idx] = 1.0
    if len(cls) and N:
        emphasis = (np.bincount(n.cluster, weights=bright, minlength=C) > 0).astype(np.float32)
    csel = np.zeros(C, dtype=np.float32)
    if clusters is not None:
        csel[np.asarray(list(clusters), dtype=np.int64)] = 1.0
    return Highlight(bright, selected, emphasis, csel, column)


def bundle_emphasis(
    e: Edges,
    bundles: Bundles,
    ends: tuple[np.ndarray, np.ndarray] | None,
    emph: np.ndarray,
    csel: np.ndarray,
) -> np.ndarray:
    """Per bundle node: the emphasis of the most emphasised cluster its pieces touch
    (``ends``: the clusters of the pieces' ends when ``e.src`` / ``e.dst`` are not)."""
    B = len(bundles.pos)
    if not B or not len(e.bundle):
        return np.ones(B, dtype=np.float32)
    ref = csel if csel.any() else emph
    val = np.zeros(len(e.bundle), dtype=np.float32)
    for end in ends or (e.src, e.dst):
        end = np.asarray(end)
        ok = end >= 0
        val[ok] = np.maximum(val[ok], ref[end[ok]])
    m = np.asarray(e.bundle) >= 0
    out = np.zeros(B, dtype=np.float32)
    np.maximum.at(out, np.asarray(e.bundle)[m], val[m])
    return out


def class_top_neurons(scene: Scene, cluster: int, klass: int, n: int = 3) -> list[tuple[int, float]]:
    """The ``n`` neurons of cluster ``cluster`` that class ``klass`` (snapshot order) activates
    most, as ``(index into scene.neurons, activation)``, strongest first (ties: lower index)."""
    members = np.flatnonzero(scene.neurons.cluster == cluster)
    a = np.asarray(scene.neurons.activation, np.float64)[members, int(klass)]
    order = np.lexsort((members, -a))[: max(int(n), 0)]
    return [(int(members[k]), float(a[k])) for k in order]


def saved_selection(
    scene: Scene,
    classes: Iterable[int] = (),
    cluster_id: int | None = None,
    neuron: tuple[str, int] | None = None,
) -> dict[str, list[int]] | None:
    """A saved view's selection (a bookmark's) as :meth:`SceneRenderer.set_selection`'s
    arguments for ``scene``: the class indices, the cluster of id ``cluster_id`` and the neuron
    ``(unit, channel)`` as indices into the scene (each left out when the scene lacks it);
    ``None`` when nothing is selected."""
    out: dict[str, list[int]] = {}
    if classes:
        out["classes"] = [int(c) for c in classes]
    ci = cluster_at(scene, cluster_id) if cluster_id is not None else None
    if ci is not None:
        out["clusters"] = [ci]
    ni = neuron_at(scene, *neuron) if neuron is not None else None
    if ni is not None:
        out["neurons"] = [ni]
    return out or None


def downstream_clusters(scene: Scene, change: dict[str, np.ndarray], unit: str) -> list[tuple[int, float]]:
    """``(cluster index, mean change)`` of the clusters of the layers after ``unit`` (an
    ablated layer), most moved first; ``change`` is :attr:`~cnnvis_gl.stats.ablation.
    Ablation.change` (per unit, per neuron).  Clusters of unwatched layers are left out."""
    n = scene.neurons
    after = scene.units[scene.units.index(unit) + 1 :] if unit in scene.units else []
    out = []
    for ci in range(len(scene.clusters.id)):
        members = np.flatnonzero(n.cluster == ci)
        if not len(members):
            continue
        u = scene.units[int(n.unit[members[0]])]
        if u in after and u in change:
            out.append((ci, float(np.asarray(change[u])[n.index[members]].mean())))
    return sorted(out, key=lambda t: -t[1])
