"""The Scene: everything the renderer draws, as plain dataclasses of NumPy arrays.

The Scene is the contract between analysis (``layout.build_scene``) and drawing (``render/``,
``ui/``).  It holds geometry and the data needed for appearance, never GL objects, and never
needs the snapshot again to be drawn except for the neuron *pixels* (patches), which the renderer
takes from the snapshot by ``(unit, neuron)`` key into its texture atlas.

Coordinates: scene units, x to the right, y **down** (row 0 at the top: the input side of the
network).  One scene unit is one pixel at zoom 1.  Rectangles are ``(x, y, w, h)``.

Facets (:data:`FACET_FEATURES`, :data:`FACET_MATRIX`) are per cluster.  Both facets' geometry is
always present so switching a facet is an appearance change (no re-layout): the cluster's
``rect`` is the larger of the two contents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACET_FEATURES = 0
FACET_MATRIX = 1

ROW_GROUP = 0  # a collapsed layer group
ROW_LAYER = 1  # one layer of an expanded group
ROW_BETWEEN = 2  # in-between row of bicluster nodes
ROW_STAGE = 3  # a collapsed stage: several groups shown as their output (the last group's neurons)

#: Advance of one character of the label font, as a fraction of the text height (the one rule
#: for how wide a label is: layout bounds, class-name truncation, the view's row framing).
CHAR_WIDTH = 0.6

#: Text height of a row's label (scene units).
ROW_LABEL = 16.0


@dataclass(frozen=True)
class Row:
    """A horizontal band of the DAG."""

    name: str  # group name, "group/unit" for an expanded layer, "between:<upper>|<lower>", a stage's module path
    kind: int  # ROW_GROUP | ROW_LAYER | ROW_BETWEEN | ROW_STAGE
    y: float  # top
    height: float
    group: int  # index in NeuronGraph.groups (-1 for between rows)
    unit: str  # the unit whose neurons the row shows ("" for between rows)
    x: float = 0.0  # left of the band, when the rows wrap into columns (``width > 0``) …
    width: float = 0.0  # … else the band spans the scene's width (0)
    groups: tuple[int, ...] = ()  # a collapsed stage: the groups it stands for (``group``: the last)

    def span(self, bounds: tuple[float, float, float, float]) -> tuple[float, float]:
        """``(x0, x1)`` of the row's band: its column's, or the scene's ``bounds``."""
        if self.width > 0:
            return self.x, self.x + self.width
        return float(bounds[0]), float(bounds[2])


@dataclass(frozen=True)
class Clusters:
    """All neuron clusters, struct-of-arrays (length C)."""

    id: np.ndarray  # int64 [C] stable identity (survives edits and snapshots where possible)
    row: np.ndarray  # int32 [C] index into Scene.rows
    rect: np.ndarray  # float32 [C, 4] frame in scene units
    size: np.ndarray  # int32 [C] number of neurons
    facet: np.ndarray  # int8 [C] FACET_FEATURES | FACET_MATRIX (appearance)
    color: np.ndarray  # float32 [C, 3] identity colour (stable with id)
    features_rect: np.ndarray  # float32 [C, 4] bounding box of the packed patches (features facet)
    matrix_rect: np.ndarray  # float32 [C, 4] the activation-matrix block (matrix facet)
    density: np.ndarray  # float32 [C] packing density of the features facet
    order_score: (
        np.ndarray
    )  # float32 [C] sum of adjacent-row cosine similarities of the matrix order


@dataclass(frozen=True)
class Neurons:
    """All neurons shown, struct-of-arrays (length N), grouped by cluster."""

    unit: np.ndarray  # int32 [N] index into NeuronGraph.units
    index: np.ndarray  # int32 [N] channel within the unit
    cluster: np.ndarray  # int32 [N] index into Scene.clusters
    rect: np.ndarray  # float32 [N, 4] patch rectangle (features facet), scene units
    matrix_row: np.ndarray  # int32 [N] row of the neuron in its cluster's matrix (Held–Karp order)
    importance: np.ndarray  # float32 [N] largest class mean, normalised per unit to [0, 1]
    activation: (
        np.ndarray
    )  # float32 [N, K] class means normalised per unit to [0, 1] (matrix cells, class highlighting)


@dataclass(frozen=True)
class Edges:
    """Bundled edges between consecutive rows, as cubic Bézier pieces (length E)."""

    ctrl: np.ndarray  # float32 [E, 4, 2] control points of each cubic piece
    weight: np.ndarray  # float32 [E] signed weight (cluster→cluster mean); width ∝ |w|
    sign: np.ndarray  # int8 [E] +1 green (excitatory) / -1 red (inhibitory)
    src: np.ndarray  # int32 [E] source cluster
    dst: np.ndarray  # int32 [E] destination cluster
    bundle: np.ndarray  # int32 [E] index into Scene.bundles, -1 for a direct edge
    # Added by layout.build (defaults keep older constructors working).  A bundled edge is drawn
    # as shared pieces: one input→node piece per (input cluster, bundle) with dst = -1, one
    # node→output piece per (bundle, output cluster) with src = -1; a direct edge has both ends.
    # row: int32 [E] the between row (index into Scene.rows) the piece lies in
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    # piece: int8 [E] 0 input→node, 1 node→output, 2 direct
    piece: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    # count: int32 [E] number of cluster→cluster edges the piece carries
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))


@dataclass(frozen=True)
class Bundles:
    """In-between nodes: one per bicluster with ≥ 2 inputs or ≥ 2 outputs (length B)."""

    pos: np.ndarray  # float32 [B, 2] node centre (barycentre of its ends, on a between row)
    sign: np.ndarray  # int8 [B]
    n_in: np.ndarray  # int32 [B]
    n_out: np.ndarray  # int32 [B]
    row: np.ndarray  # int32 [B] index into Scene.rows


@dataclass(frozen=True)
class Label:
    text: str
    x: float
    y: float
    size: float  # text height in scene units
    anchor: str = "left"  # left | center | right
    kind: str = "row"  # row | cluster | class
    cluster: int = -1  # id of the cluster a cluster/class label belongs to (-1: row label)

    @property
    def width(self) -> float:
        """Width of the text in scene units (:data:`CHAR_WIDTH` × size per character)."""
        return CHAR_WIDTH * self.size * len(self.text)

    @property
    def left(self) -> float:
        """The text's left edge, whatever its anchor."""
        return self.x - {"right": self.width, "center": self.width / 2}.get(self.anchor, 0.0)


@dataclass(frozen=True)
class Scene:
    rows: list[Row]
    clusters: Clusters
    neurons: Neurons
    edges: Edges
    bundles: Bundles
    labels: list[Label]
    classes: list[str]  # class names in matrix column order
    class_order: np.ndarray  # int32 [K] column j shows class class_order[j]
    units: list[str]  # NeuronGraph unit names (Neurons.unit indexes this)
    bounds: tuple[float, float, float, float]  # x0, y0, x1, y1
    step: int | None = None
    stats: dict[str, float] = field(
        default_factory=dict
    )  # quality figures (density, ink, crossings …)
    # (upper layer row, lower layer row, in-between row) of every pair of rows joined by edges,
    # indices into ``rows`` (empty: consecutive layer rows, as a hand-made scene has them)
    links: list[tuple[int, int, int]] = field(default_factory=list)


class ClustersBuilder:
    """Collects clusters, each with its neurons, into a Scene's ``Clusters`` and ``Neurons``
    (the one assembly path of :func:`~cnnvis_gl.layout.compose.compose_scene` and the
    synthetic scenes).  ``add`` returns the cluster's index; ``build`` makes the arrays."""

    def __init__(self, n_classes: int) -> None:
        self.n_classes = int(n_classes)
        self._c: dict[str, list] = {f: [] for f in Clusters.__dataclass_fields__}
        self._n: dict[str, list] = {f: [] for f in Neurons.__dataclass_fields__}

    def __len__(self) -> int:
        return len(self._c["id"])

    def add(
        self,
        *,
        id: int,  # noqa: A002 - the Clusters field
        row: int,
        rect: tuple[float, float, float, float],
        facet: int,
        color: tuple[float, float, float],
        features_rect: tuple[float, float, float, float],
        matrix_rect: tuple[float, float, float, float],
        unit: int,
        index: np.ndarray,
        neuron_rect: np.ndarray,
        matrix_row: np.ndarray,
        importance: np.ndarray,
        activation: np.ndarray | None = None,
        density: float = 0.0,
        order_score: float = 0.0,
    ) -> int:
        """One cluster: its frame and facets, then its neurons (``index`` in unit ``unit``;
        ``neuron_rect`` in scene units)."""
        ci, n = len(self), len(index)
        c, m = self._c, self._n
        for key, v in (
            ("id", id),
            ("row", row),
            ("rect", rect),
            ("size", n),
            ("facet", facet),
            ("color", color),
            ("features_rect", features_rect),
            ("matrix_rect", matrix_rect),
            ("density", density),
            ("order_score", order_score),
        ):
            c[key].append(v)
        m["unit"].append(np.full(n, unit, dtype=np.int32))
        m["index"].append(np.asarray(index))
        m["cluster"].append(np.full(n, ci, dtype=np.int32))
        m["rect"].append(np.asarray(neuron_rect, dtype=np.float64).reshape(n, 4))
        m["matrix_row"].append(np.asarray(matrix_row))
        m["importance"].append(np.asarray(importance))
        m["activation"].append(
            np.zeros((n, self.n_classes)) if activation is None else np.asarray(activation)
        )
        return ci

    def build(self) -> tuple[Clusters, Neurons]:
        c, m, C = self._c, self._n, len(self)

        def arr(key: str, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
            return np.asarray(c[key], dtype=dtype).reshape(C, *shape)

        def cat(key: str, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
            parts = m[key]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

        clusters = Clusters(
            id=arr("id", np.int64),
            row=arr("row", np.int32),
            rect=arr("rect", np.float32, (4,)),
            size=arr("size", np.int32),
            facet=arr("facet", np.int8),
            color=arr("color", np.float32, (3,)),
            features_rect=arr("features_rect", np.float32, (4,)),
            matrix_rect=arr("matrix_rect", np.float32, (4,)),
            density=arr("density", np.float32),
            order_score=arr("order_score", np.float32),
        )
        neurons = Neurons(
            unit=cat("unit", np.int32),
            index=cat("index", np.int32),
            cluster=cat("cluster", np.int32),
            rect=cat("rect", np.float32, (4,)),
            matrix_row=cat("matrix_row", np.int32),
            importance=cat("importance", np.float32),
            activation=cat("activation", np.float32, (self.n_classes,)),
        )
        return clusters, neurons
