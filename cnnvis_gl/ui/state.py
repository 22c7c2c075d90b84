"""The viewer's state: one typed :class:`AppState`, plain data, no imgui or OpenGL.

Panels read it and call the commands of :class:`cnnvis_gl.ui.actions.Actions`; background
results are applied to it between frames.  Selections are kept by *stable keys* (cluster ids,
``(unit, channel)`` of neurons, class indices), never by indices into the current Scene, so they
survive edits, re-layouts and snapshot switches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout.scene import FACET_FEATURES, ROW_BETWEEN, Scene
from ..layout.search import cluster_at, neuron_at, row_clusters
from ..render.camera import Camera
from .edits import LayoutEdits

if TYPE_CHECKING:
    from ..run.snapshot import Snapshot
    from .training import TrainingData

__all__ = [
    "NeuronKey",
    "Selection",
    "GroupSetting",
    "CameraState",
    "HistoryEntry",
    "History",
    "JobStatus",
    "DragState",
    "DebugState",
    "PanelState",
    "AppState",
]

NeuronKey = tuple[str, int]  # (unit name, channel)


@dataclass
class Selection:
    """What the user picked.

    Attributes
    ----------
    classes
        Class indices (snapshot order) whose strongly activated neurons are highlighted.
    quantile
        Fraction of each layer's neurons kept bright by a class selection.
    neuron
        The neuron in the neuron inspector, as ``(unit, channel)``.
    cluster
        Id of the cluster in the cluster inspector.
    neuron_class
        The class whose top images the neuron inspector shows (a clicked matrix cell).
    """

    classes: set[int] = field(default_factory=set)
    quantile: float = 0.2
    neuron: NeuronKey | None = None
    cluster: int | None = None
    neuron_class: int | None = None


@dataclass
class GroupSetting:
    """Clustering controls of one layer group (what the combo and the input show)."""

    method: str = "kmeans"
    k: int = 0  # 0 = automatic (silhouette)
    expanded: bool = False


@dataclass
class CameraState:
    """The animated camera: ``current`` eases towards ``target`` each frame."""

    current: Camera = field(default_factory=Camera)
    target: Camera = field(default_factory=Camera)
    viewport: tuple[int, int] = (1, 1)
    fitted: bool = False  # fitted to a scene at least once
    panning: bool = False  # the user drags the view (the edge layer is warped meanwhile)
    speed: float = 14.0  # 1/s: fraction of the way covered per second ~ 1 - exp(-speed * dt)

    @property
    def animating(self) -> bool:
        c, t = self.current, self.target
        if c == t:
            return False
        zoom_close = abs(np.log(max(c.zoom, 1e-12) / max(t.zoom, 1e-12))) < 1e-3
        px = max(abs(c.center[0] - t.center[0]), abs(c.center[1] - t.center[1])) * t.zoom
        return not (zoom_close and px < 0.25)

    anchor: tuple[float, float, float, float] | None = None  # scene x, y kept under pixel x, y

    def step(self, dt: float) -> bool:
        """Advance the animation by ``dt`` seconds; returns whether the camera moved."""
        if self.current == self.target:
            self.anchor = None
            return False
        if not self.animating:
            self.current = self.target
            self.anchor = None
            return True
        a = min(max(1.0 - float(np.exp(-self.speed * max(dt, 0.0))), 0.05), 1.0)
        nxt = self.current.lerp(self.target, a)
        if self.anchor is not None:  # zoom about the cursor: its scene point stays under it
            sx, sy, px, py = self.anchor
            w, h = self.viewport
            z = nxt.zoom
            nxt = Camera((sx - (px - w / 2.0) / z, sy - (py - h / 2.0) / z), z)
        self.current = nxt
        return True

    def zoom_at(self, factor: float, px: float, py: float) -> None:
        """Animate a zoom by ``factor`` about pixel ``(px, py)`` (the wheel).

        The scene point under the cursor *now* stays under it through the whole animation.
        """
        sx, sy = self.current.screen_to_scene(px, py, self.viewport)
        z = self.target.zoom * float(factor)
        w, h = self.viewport
        self.target = Camera((sx - (px - w / 2.0) / z, sy - (py - h / 2.0) / z), z)
        self.anchor = (sx, sy, px, py)

    def go(self, camera: Camera) -> None:
        """Animate to ``camera`` (fit all, zoom to a cluster)."""
        self.target = camera
        self.anchor = None

    def jump(self, camera: Camera) -> None:
        """Set both ends (no animation), e.g. while panning."""
        self.current = self.target = camera
        self.anchor = None


@dataclass(frozen=True)
class HistoryEntry:
    """One undoable edit: the layout edits before and after it."""

    label: str
    before: LayoutEdits
    after: LayoutEdits


@dataclass
class History:
    """Undo / redo stacks of layout edits."""

    undo: list[HistoryEntry] = field(default_factory=list)
    redo: list[HistoryEntry] = field(default_factory=list)
    limit: int = 200

    def push(self, entry: HistoryEntry) -> None:
        self.undo.append(entry)
        del self.undo[: max(0, len(self.undo) - self.limit)]
        self.redo.clear()


@dataclass
class JobStatus:
    """Background work as the status bar shows it."""

    pending: list[str] = field(default_factory=list)
    last: str = ""
    last_seconds: float = 0.0
    error: str | None = None
    message: str = ""


@dataclass
class DragState:
    """A neuron being dragged onto another cluster."""

    neuron: NeuronKey
    index: int  # index into the scene's neurons when the drag started
    start: tuple[float, float]  # screen position of the press
    active: bool = False  # moved past the drag threshold


@dataclass
class DebugState:
    """The debugging view (R5): Training panel choices and the compared step.

    Attributes
    ----------
    stat
        Per-layer statistic plotted (a key of :data:`cnnvis_gl.ui.training.STATS`).
    all_layers
        One line per layer (unit) instead of one per layer group.
    log_scale
        Log y axis for the statistic (``None``: the statistic's default).
    compare
        The other step of compare mode: the matrices show ``step − compare`` (``None``: off).
    show_flags
        Draw the flags' badges on the network view.

    What the background loaders (:mod:`.loaders`) brought:

    training
        Learning curves and per-layer statistics over the run (``None``: not loaded yet).
    flags, flags_step
        ``diagnose()`` of a snapshot, and the step they belong to.
    compare_diff, compare_info
        ``[N, K]`` current − compared class means scaled to [-1, 1], and its summary.
    neuron_edges_info
        What the neuron-level edges on the view show (Controls panel).
    lineage_group, lineage, lineage_key, lineage_progress
        The group the Lineage panel shows; its :class:`~cnnvis_gl.layout.lineage.Lineage`
        (``None``: not computed yet), the ``(group, steps)`` it was computed for, and the
        fraction of snapshots clustered so far.
    ablation_want, ablations
        The ablation the Cluster panel asks for, as ``(step, ((unit, channels), ...))`` (one
        entry per zeroed layer); the results by that key: an
        :class:`~cnnvis_gl.stats.ablation.Ablation`, or the reason there is none (a string).
    ablation_set
        Cluster ids to zero together (the Ablate tab's "Add to the set").
    """

    stat: str = "act_mean"
    all_layers: bool = False
    log_scale: bool | None = None
    compare: int | None = None
    show_flags: bool = True
    training: TrainingData | None = None
    flags: list[Any] = field(default_factory=list)
    flags_step: int | None = None
    compare_diff: np.ndarray | None = None
    compare_info: dict[str, Any] = field(default_factory=dict)
    neuron_edges_info: str = ""
    lineage_group: str | None = None
    lineage: Any = None
    lineage_key: tuple | None = None
    lineage_progress: float = 0.0
    ablation_want: tuple | None = None
    ablations: dict[tuple, Any] = field(default_factory=dict)
    ablation_set: list[int] = field(default_factory=list)
    ablation_tint: bool = True  # the Ablate tab tints the network by what the ablation moved
    tint: np.ndarray | None = None  # per-cluster emphasis drawn instead of the class rule's
    tint_key: tuple | None = None


@dataclass
class PanelState:
    """What panels keep between frames (and tests read: where things were drawn).

    Attributes
    ----------
    move_choice
        The cluster picked in the Neuron panel's "move to" combo.
    widget_ids
        ImGui ids of some widgets, by name (tests click them).
    plot_points
        Per plot, per step: the screen position of its point (tests click them).
    flag_badges
        The flag badges drawn on the network view this frame, with their screen rectangles.
    flag_tooltip
        The flag message shown in a tooltip this frame.
    plotted
        Per plot of the Training panel, the lines it drew this frame
        (:class:`~cnnvis_gl.ui.training.Line`).
    find
        The text of the Find box.
    bookmark_name, tour_name
        The names typed in the Bookmarks panel and the Tour panel.
    note_focus
        A note just added: the Notes panel shows it and puts the cursor in its text.
    callouts
        The annotations' callouts drawn over the network view this frame.
    lineage_bars
        The Lineage panel's cluster bars drawn this frame: ``(step, name, screen rect)``.
    other_path
        The run directory typed in the Two runs panel.
    other_view
        Where the Two runs panel drew run B's network this frame: ``(x, y, w, h)`` on screen.
    crumbs
        The breadcrumbs drawn over the network view this frame (their labels).
    left_out, left_out_tooltip
        Where the Snapshots panel said how many gate branches the graph leaves out this frame
        (screen rect), and the list it showed on hover.
    attention, attention_tooltip
        The same for the attention layers of the graph.
    per_sample, per_sample_tooltip
        The same for the per-sample (dynamic) convolutions of the graph.
    """

    move_choice: int | None = None
    widget_ids: dict[str, int] = field(default_factory=dict)
    plot_points: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    flag_badges: list[tuple[Any, tuple[float, float, float, float]]] = field(default_factory=list)
    flag_tooltip: str | None = None
    plotted: dict[str, list[Any]] = field(default_factory=dict)
    find: str = ""
    bookmark_name: str = ""
    tour_name: str = ""
    note_focus: int | None = None
    callouts: list[Any] = field(default_factory=list)
    lineage_bars: list[Any] = field(default_factory=list)
    other_path: str = ""
    other_view: tuple[float, float, float, float] | None = None
    crumbs: list[str] = field(default_factory=list)
    left_out: tuple[float, float, float, float] | None = None
    left_out_tooltip: str | None = None
    attention: tuple[float, float, float, float] | None = None
    attention_tooltip: str | None = None
    per_sample: tuple[float, float, float, float] | None = None
    per_sample_tooltip: str | None = None


@dataclass
class Presenting:
    """Present mode: the tour played full screen, one stop at a time.

    Attributes
    ----------
    timeline
        The tour laid out in time for the view's size (:class:`~cnnvis_gl.render.flight.Timeline`).
    stop
        The stop shown or being moved to.
    t, until
        The timeline's time now, and where it stops advancing (the arrival at ``stop``).
    look, fading, frozen_camera
        The stop whose look is applied (a flight switches looks half way, where the view is
        farthest out); whether the view as it was fades out over the new one (a fade: over
        the whole move; a flight: from half way, carried along with the camera from
        ``frozen_camera``).
    """

    timeline: Any
    stop: int = 0
    t: float = 0.0
    until: float = 0.0
    look: int = 0  # the stop whose look (theme, facet, classes …) is applied
    fading: bool = False  # the view as it was is drawn over the new one, fading out
    frozen_camera: Any = None  # a flight's: the camera of that view (it moves with the flight)

    @property
    def moving(self) -> bool:
        return self.t < self.until


@dataclass
class TourState:
    """The tour being edited in the Bookmarks panel, and present mode.

    Attributes
    ----------
    name
        Its name (``RUN/tours/NAME.json``).
    tour
        Its stops (:class:`~cnnvis_gl.run.tours.Tour`).
    names
        The tours saved in the run.
    damaged
        Its file could not be read (then it is never overwritten).
    present
        Present mode, when on.
    """

    name: str = "tour"
    tour: Any = None
    names: list[str] = field(default_factory=list)
    damaged: bool = False
    present: Presenting | None = None


@dataclass
class AppState:
    """Everything the viewer shows and edits.

    Attributes
    ----------
    run_dir
        The run directory.
    steps
        Steps of the run's snapshots (ascending, as far as known).
    step, snapshot, scene
        What is on screen.
    edits
        The layout's edits (clustering, expanded groups, edge filter, facets) as last reported
        by the layout worker.
    facet
        Facet of all clusters (the "for all" switch).
    edge_fraction
        Fraction of the cluster edges kept (the threshold slider); neuron-level edges keep the
        same fraction of the neuron weights.
    neuron_edges
        Zoomed in, show the edges between the neurons of the clusters in view.
    groups
        Clustering controls per group name.
    collapsed
        The stages the Controls panel shows collapsed (module paths; the edits say what the
        layout shows, this follows them and a click).
    selection, camera, history, jobs
        See their classes.
    theme
        ``"dark"`` or ``"light"``.
    follow
        Switch to each new snapshot as it arrives.
    hover
        What the pointer is over in the network view, ``(kind, index)``
        (kind: a :class:`~cnnvis_gl.render.pick.PickKind`).
    debug, panels
        The debugging view's choices and results; what panels keep between frames.
    bookmarks, bookmarks_damaged
        The run's saved views (:class:`~cnnvis_gl.run.bookmarks.Bookmark`); whether
        ``bookmarks.json`` could not be read (then it is never overwritten).
    tour
        The tour being edited, and present mode (:class:`TourState`).
    notes, notes_damaged
        The run's annotations (:class:`~cnnvis_gl.run.annotations.Annotation`); whether
        ``annotations.json`` could not be read (then it is never overwritten).
    """

    run_dir: Path
    steps: list[int] = field(default_factory=list)
    step: int | None = None
    snapshot: Snapshot | None = None
    scene: Scene | None = None
    scene_version: int = 0
    edits: LayoutEdits = field(default_factory=LayoutEdits)
    facet: int = FACET_FEATURES
    edge_fraction: float = 0.25
    neuron_edges: bool = True
    groups: dict[str, GroupSetting] = field(default_factory=dict)
    collapsed: set[str] = field(default_factory=set)
    selection: Selection = field(default_factory=Selection)
    camera: CameraState = field(default_factory=CameraState)
    history: History = field(default_factory=History)
    jobs: JobStatus = field(default_factory=JobStatus)
    theme: str = "dark"
    follow: bool = False
    headless: bool = False
    hover: tuple[str, int] = ("none", -1)
    drag: DragState | None = None
    debug: DebugState = field(default_factory=DebugState)
    bookmarks: list[Any] = field(default_factory=list)
    bookmarks_damaged: bool = False
    tour: TourState = field(default_factory=TourState)
    notes: list[Any] = field(default_factory=list)
    notes_damaged: bool = False
    panels: PanelState = field(default_factory=PanelState)
    frame_ms: deque[float] = field(default_factory=lambda: deque(maxlen=120))
    render_ms: deque[float] = field(default_factory=lambda: deque(maxlen=120))
    frames: int = 0

    # ------------------------------------------------------------------ scene look-ups
    def neuron_index(self, key: NeuronKey | None) -> int | None:
        """Index into ``scene.neurons`` of a neuron key (None when not shown)."""
        if key is None or self.scene is None:
            return None
        return neuron_at(self.scene, key[0], int(key[1]))

    def neuron_key(self, index: int) -> NeuronKey:
        """``(unit, channel)`` of ``scene.neurons[index]``."""
        s = self.scene
        assert s is not None
        return (s.units[int(s.neurons.unit[index])], int(s.neurons.index[index]))

    def cluster_index(self, cid: int | None) -> int | None:
        """Index into ``scene.clusters`` of a cluster id (None when absent)."""
        if cid is None or self.scene is None:
            return None
        return cluster_at(self.scene, cid)

    def cluster_neurons(self, ci: int) -> np.ndarray:
        """Indices into ``scene.neurons`` of cluster ``ci``, in matrix-row order."""
        s = self.scene
        assert s is not None
        idx = np.flatnonzero(s.neurons.cluster == ci)
        return idx[np.argsort(s.neurons.matrix_row[idx], kind="stable")]

    def ablation_key(self, clusters: list[int]) -> tuple:
        """What zeroing clusters (indices) asks of the model: ``(step, ((unit, channels), …))``,
        the units in network order (the key of :attr:`DebugState.ablations`)."""
        s = self.scene
        assert s is not None
        parts: dict[str, set[int]] = {}
        for ci in clusters:
            rows = np.flatnonzero(s.neurons.cluster == ci)
            if len(rows):
                unit = s.units[int(s.neurons.unit[rows[0]])]
                parts.setdefault(unit, set()).update(int(v) for v in s.neurons.index[rows])
        order = sorted(parts, key=s.units.index)
        return (self.step, tuple((u, tuple(sorted(parts[u]))) for u in order))

    def ablation_set(self) -> list[int]:
        """Indices of the clusters in the ablation set that this scene has, in set order."""
        found = (self.cluster_index(cid) for cid in self.debug.ablation_set)
        return [ci for ci in found if ci is not None]

    def row_clusters(self, row: int) -> np.ndarray:
        """Indices of the clusters of a scene row, left to right."""
        assert self.scene is not None
        return row_clusters(self.scene, row)

    def layer_rows(self) -> list[int]:
        """Indices of the scene's layer rows (not the in-between rows), top to bottom."""
        s = self.scene
        return [] if s is None else [i for i, r in enumerate(s.rows) if r.kind != ROW_BETWEEN]

    def cluster_name(self, ci: int) -> str:
        """``"conv2 #3"``: the row's name and the cluster's position in it (1-based)."""
        s = self.scene
        assert s is not None
        row = int(s.clusters.row[ci])
        pos = int(np.flatnonzero(self.row_clusters(row) == ci)[0]) + 1
        return f"{s.rows[row].name} #{pos}"
