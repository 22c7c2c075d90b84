"""Layout options: every knob of :func:`cnnvis_gl.layout.build_scene` in one frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .scene import FACET_FEATURES, FACET_MATRIX

__all__ = ["LayoutOptions", "GroupClustering"]

METHODS = ("kmeans", "meanshift")


@dataclass(frozen=True)
class GroupClustering:
    """Clustering of one layer group: ``method`` (kmeans | meanshift) and ``k`` (None = silhouette)."""

    method: str = "kmeans"
    k: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"unknown clustering method {self.method!r} (use {', '.join(METHODS)})"
            )
        if self.k is not None and int(self.k) < 1:
            raise ValueError(f"k must be >= 1 or None, got {self.k}")


@dataclass(frozen=True)
class LayoutOptions:
    """Options of the DAG layout.  Immutable: derive variants with :func:`dataclasses.replace`.

    Parameters
    ----------
    method, k
        Default clustering of every group (``k=None``: chosen by silhouette over ``k_range``).
    clustering
        Per-group overrides, ``{group name: GroupClustering}``.  An expanded group's unit rows
        use their group's setting.
    k_range
        Range searched by the silhouette choice of k (inclusive).
    expanded
        Names of the groups shown as one row per unit (level of detail).
    collapsed
        Module paths of the stages shown as one row: the stage's output, its last group's
        neurons (:mod:`~cnnvis_gl.layout.hierarchy`; a stage inside a collapsed one is hidden
        with it, names that are no stage are ignored).
    facet
        Initial facet of every cluster (:data:`~cnnvis_gl.layout.scene.FACET_FEATURES` or
        :data:`~cnnvis_gl.layout.scene.FACET_MATRIX`); per-cluster facets are set by
        :func:`cnnvis_gl.layout.edit.set_facet`.
    edge_fraction, edge_threshold
        Edge filter per pair of rows: keep the top ``edge_fraction`` of the cluster→cluster
        edges by ``|w|`` (default 25 %), or, when ``edge_threshold`` is set, the edges with
        ``|w| >= edge_threshold`` (absolute; it wins over the fraction).
    patch_min, patch_max
        Side range of a neuron's patch (scene units), grown with the neuron's importance.
    aspect
        Target width / height of a cluster's packed patches.
    view_size
        ``(width, height)`` in pixels of the view the network is shown in (the viewer's canvas,
        the render's picture).  A long chain of rows then wraps into columns (top-to-bottom,
        left-to-right) when that draws the network at least 1.25× larger fitted to such a view
        (:func:`cnnvis_gl.layout.columns.plan_columns`), leaving the row labels the room they
        take at that fit (never drawn under 11 px).  ``None``: always one column.
    seed
        Seed of the clustering (the rest is deterministic).
    exact_max, refine_max
        Matrix row order: Held–Karp up to ``exact_max`` rows; the hierarchical order is refined
        by 2-opt up to ``refine_max`` rows (2-opt costs O(n³) in the worst case: ~2.6 s at
        1,000 rows, ~47 s at 2,048 on this CPU, for a gain below 0.1 %).
    move_exact_max
        A move re-lays out a cluster smaller than ``incremental_min`` from scratch, with
        Held–Karp only up to this many rows (13–16 exact rows cost 30–100 ms on this CPU).
    incremental_min
        Moving a neuron updates a cluster of at least this many neurons incrementally (the
        patch is removed from / inserted into the existing packing and matrix order) instead
        of re-packing it: O(n) instead of O(n log n) rectpack + dendrogram, and the rest of the
        cluster stays where the user saw it.  ``0`` disables (always re-pack).
    sweeps
        Barycentre sweeps (down + up) ordering the clusters in each row.
    padding, cluster_label, class_label, cluster_gap, row_padding, row_quantum, between_height
        Geometry in scene units: frame padding, label bands of a cluster (its size; the class
        names over its matrix), gap between clusters of a row, padding of a row, the step row
        heights are rounded up to (so most edits leave the rows below in place), height of
        an in-between row.
    matrix_cell, labelled_cell, matrix_row
        Matrix cell width range (it follows the features' width; at least ``labelled_cell``
        when class names are shown, i.e. at most ``max_class_labels`` classes) and cell height
        range (it follows the features' height).
    draft
        A quick layout of a big network, shown while the real one is made (the viewer's
        progressive opening): each row's neurons grouped by their strongest class (at most
        ``k_range[1]`` clusters), patches on shelves, matrix rows by strongest class — no
        clustering, packing or ordering search.
    draft_edges
        With ``draft``: order the clusters in their rows and bundle the edges.  ``False``: the
        clusters only, in class order — a big network's first frame, which then needs none of
        its layers' weights (:func:`cnnvis_gl.layout.build.finish_draft` adds them).
    workers
        Processes that cluster the rows and pack and order the clusters
        (:mod:`cnnvis_gl.layout.parallel`; the same scene on any number): ``1`` this process,
        ``k > 1`` that many; ``None``: every core for a network of at least 20,000 neurons,
        ``-n``: all cores but ``n - 1`` for such a network, this process for a smaller one.
        The workers run at a lower priority than the process that starts them (the viewer's
        window stays responsive while they use every core).
    blas_threads
        BLAS threads during layout, in this process and in the workers (``None``: leave as
        is).  The matrices are small: on shared CPUs a multi-threaded BLAS is up to 20x
        *slower* here (its threads busy-wait), so the default is 1.
    """

    method: str = "kmeans"
    k: int | None = None
    clustering: Mapping[str, GroupClustering] = field(default_factory=dict)
    k_range: tuple[int, int] = (2, 8)
    expanded: frozenset[str] = frozenset()
    collapsed: frozenset[str] = frozenset()
    facet: int = FACET_FEATURES
    edge_fraction: float = 0.25
    edge_threshold: float | None = None
    patch_min: int = 16
    patch_max: int = 48
    aspect: float = 1.6
    view_size: tuple[int, int] | None = None
    seed: int = 0
    exact_max: int = 16
    move_exact_max: int = 12
    refine_max: int = 256
    incremental_min: int = 32
    sweeps: int = 4
    blas_threads: int | None = 1
    draft: bool = False
    draft_edges: bool = True
    workers: int | None = None
    # geometry (scene units)
    padding: float = 6.0
    cluster_label: float = 14.0
    class_label: float = 12.0
    cluster_gap: float = 24.0
    row_padding: float = 12.0
    row_quantum: float = 32.0
    between_height: float = 140.0
    matrix_cell: tuple[float, float] = (2.0, 20.0)
    labelled_cell: float = 10.0
    matrix_row: tuple[float, float] = (0.25, 8.0)
    max_class_labels: int = 20

    def __post_init__(self) -> None:
        GroupClustering(self.method, self.k)  # validates
        if self.facet not in (FACET_FEATURES, FACET_MATRIX):
            raise ValueError(f"facet must be FACET_FEATURES or FACET_MATRIX, got {self.facet}")
        if not 0.0 <= self.edge_fraction <= 1.0:
            raise ValueError(f"edge_fraction must be in [0, 1], got {self.edge_fraction}")
        if not 1 <= self.patch_min <= self.patch_max:
            raise ValueError(
                f"need 1 <= patch_min <= patch_max, got {self.patch_min}, {self.patch_max}"
            )
        object.__setattr__(self, "expanded", frozenset(self.expanded))
        object.__setattr__(self, "collapsed", frozenset(self.collapsed))
        object.__setattr__(self, "clustering", dict(self.clustering))

    def clustering_for(self, group: str) -> GroupClustering:
        """The clustering setting of ``group`` (its override or the default)."""
        return self.clustering.get(group) or GroupClustering(self.method, self.k)
