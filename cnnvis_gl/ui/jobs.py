"""Heavy work off the UI thread: a worker thread and the layout session it owns.

* :class:`Worker` runs submitted functions one after another on a daemon thread and hands back
  :class:`Done` records, which the UI collects between frames with :meth:`Worker.poll`;
  the UI never waits on it.
* :class:`LayoutSession` owns the :class:`~cnnvis_gl.layout.LayoutState` of the snapshot on
  screen (touched only by the worker thread) and turns each command (open a snapshot, move a
  neuron, re-cluster, undo …) into an immutable :class:`SceneUpdate` for the UI to apply.
* :class:`PatchCache` computes the neurons' patch pixels on the worker, so that the renderer's
  atlas upload on the UI thread only copies pixels.

No imgui or OpenGL here.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SnapshotError
from ..layout import LayoutOptions, LayoutState, build_state
from ..layout import edit as layout_edit
from ..layout.build import finish_draft
from ..layout.edit import Changed
from ..layout.mosaic import mosaic_tiles
from ..layout.scene import Scene
from ..layout.state import blas_threads
from ..run.snapshot import Run, Snapshot
from .edits import LayoutEdits, build_with_edits, capture, load_edits, restore, save_edits

__all__ = ["Done", "Worker", "SceneUpdate", "LayoutSession", "PatchCache"]


# ---------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class Done:
    """A finished job: its result or the error it raised, and who takes it.

    ``then`` (given to :meth:`Worker.submit`) is called with it on the UI thread when the
    frame loop polls the worker: each kind of job brings its own handler, so nothing
    dispatches on the shape of a result.
    """

    job: int
    label: str
    result: Any
    error: BaseException | None
    trace: str
    seconds: float
    then: Callable[[Done], None] | None = None


class Worker:
    """One background thread running jobs in submission order.

    Parameters
    ----------
    name
        Thread name (shows in debuggers and tracebacks).
    """

    def __init__(self, name: str = "cnnvis-worker") -> None:
        self._jobs: queue.Queue[tuple[int, str, Callable[[], Any], Any] | None] = queue.Queue()
        self._done: queue.Queue[Done] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}
        self.running: str | None = None
        self._finished = threading.Event()  # set when a job ends (cleared by `wait`)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, label: str, fn: Callable[[], Any], then: Callable[[Done], None] | None = None
    ) -> int:
        """Queue ``fn`` (runs on the worker thread); returns the job id.  ``then`` takes the
        :class:`Done` on the UI thread (:meth:`poll` hands it over)."""
        job = next(self._ids)
        with self._lock:
            self._pending[job] = label
        self._jobs.put((job, label, fn, then))
        return job

    def poll(self) -> list[Done]:
        """Jobs finished since the last call, in order (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    @property
    def pending(self) -> list[str]:
        """Labels of the queued and running jobs."""
        with self._lock:
            return list(self._pending.values())

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def wait(self, timeout: float) -> None:
        """Sleep until a job ends (now, if one ended since the last call) or ``timeout``
        seconds pass: the UI can idle while a job runs without waking late for its result."""
        self._finished.wait(timeout)
        self._finished.clear()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every job has finished (tests and shutdown only; never in a frame)."""
        end = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running job, drop the queued ones, end the thread."""
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v == self.running}
        self._jobs.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, label, fn, then = item
            self.running = label
            t = time.perf_counter()
            result, error, trace = None, None, ""
            try:
                result = fn()
            except BaseException as e:  # noqa: BLE001 - reported to the UI, never lost
                error, trace = e, traceback.format_exc()
            dt = time.perf_counter() - t
            self.running = None
            with self._lock:
                self._pending.pop(job, None)
            self._done.put(Done(job, label, result, error, trace, dt, then))
            self._finished.set()


# ---------------------------------------------------------------------------- patches


class PatchCache:
    """A :class:`~cnnvis_gl.render.PatchSource` serving pre-computed top-1 patches.

    :meth:`prefetch` (on the worker) computes the patches of whole units once; :meth:`patches`
    (called by the renderer's atlas on the UI thread) then only slices arrays.  Anything not
    prefetched falls through to the snapshot.
    """

    def __init__(self, snapshot: Snapshot, size: int) -> None:
        self.snapshot = snapshot
        self.size = int(size)
        self._units: dict[str, np.ndarray] = {}
        self._some: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # unit: (neurons, pixels)
        self._lock = threading.Lock()

    def prefetch_neurons(self, neurons: dict[str, np.ndarray]) -> None:
        """Compute the patches of some neurons of some units, ``{unit: neurons}`` (e.g. a
        draft's mosaic tiles), all at once."""
        idx = {u: np.unique(np.asarray(n, dtype=np.int64)) for u, n in neurons.items()}
        pix = self.snapshot.top_patches(idx, self.size)
        with self._lock:
            self._some.update({u: (idx[u], pix[u]) for u in idx})

    def prefetch(self, units: Iterable[str]) -> None:
        for u in units:
            if u in self._units:
                continue
            pix = np.asarray(self.snapshot.patches(u, 1, self.size))[:, 0]
            with self._lock:
                self._units[u] = pix

    def patches(self, name: str, k: int = 1, size: int = 32, neurons: Any = None) -> np.ndarray:
        with self._lock:
            pix, some = self._units.get(name), self._some.get(name)
        if pix is None and some is not None and neurons is not None and k == 1 and size == self.size:
            have, want = some[0], np.asarray(neurons, dtype=np.int64)
            at = np.minimum(np.searchsorted(have, want), max(len(have) - 1, 0))
            if len(have) and (have[at] == want).all():  # all of them fetched
                return some[1][at][:, None]
        if pix is None or k != 1 or size != self.size:
            return self.snapshot.patches(name, k, size, neurons)
        sel = pix if neurons is None else pix[np.asarray(neurons, dtype=np.int64)]
        return sel[:, None]


# ---------------------------------------------------------------------------- session


@dataclass(frozen=True)
class SceneUpdate:
    """What a layout command produced, for the UI to apply between frames.

    Attributes
    ----------
    label
        What was done ("move neuron 12 of conv2", …).
    snapshot, patches
        The snapshot on screen and its patch source.
    scene
        The new scene.
    changed
        What changed since the previous scene of the same snapshot; ``None`` for a new
        snapshot (everything).
    edits
        The layout's edits after the command.
    before
        The edits before the command, for commands that go on the undo stack (else ``None``).
    timings
        Seconds per layout stage.
    """

    label: str
    snapshot: Snapshot
    patches: PatchCache
    scene: Scene
    changed: Changed | None
    edits: LayoutEdits
    before: LayoutEdits | None = None
    timings: dict[str, float] = field(default_factory=dict)
    saved: str | None = None  # path of the written layout.json, or why it was not written
    pixels: bool = True  # False: ``patches`` has not fetched the pictures yet (a draft)


def _warm_glyphs(scene: Scene) -> None:
    """Rasterise the glyphs of ``scene``'s labels here, off the UI thread (the renderer's
    text finds them cached instead of building them while the window waits)."""
    from ..render.font import build_glyph_atlas
    from ..render.text import glyphs_for

    build_glyph_atlas(glyphs_for(scene.labels))


#: Networks with at least this many neurons open with a draft layout first (progressive opening).
DRAFT_NEURONS = 20_000


class LayoutSession:
    """The layout of the run on screen; every method runs on the worker thread.

    Parameters
    ----------
    run_dir
        The run directory (``layout.json`` is read from and written to it).
    options
        Base layout options (the saved edits override the editable ones; default: a big
        network laid out on worker processes, on all cores but one).
    patch_size
        Side of the patches the renderer's atlas asks for.
    save
        Write ``layout.json`` after each edit.
    cache
        Snapshots whose layouts are kept for fast switching.
    """

    def __init__(
        self,
        run_dir: str | Path,
        options: LayoutOptions | None = None,
        patch_size: int = 28,
        save: bool = True,
        cache: int = 4,
    ) -> None:
        self.run_dir = Path(run_dir)
        # a big network is laid out on worker processes, a core each, at a lower priority than
        # the window (it stays responsive; with one worker fewer the layout took 1.5x longer)
        self.base = options or LayoutOptions(workers=None)
        self.patch_size = int(patch_size)
        self.save = save
        self.run: Run | None = None
        self.state: LayoutState | None = None
        self.patches: PatchCache | None = None
        self.load_error: str | None = None
        try:
            self.edits = load_edits(self.run_dir) or LayoutEdits()
        except ValueError as e:  # a corrupt file is reported and ignored (not overwritten yet)
            self.load_error = str(e)
            self.edits = LayoutEdits()
        self.restored = self.edits.pinned
        self._states: OrderedDict[int | None, tuple[LayoutState, PatchCache]] = OrderedDict()
        self._cache = int(cache)
        self.drafted: Snapshot | None = None  # loaded by `draft`, laid out for real by `open`
        self._draft_pictures: tuple[SceneUpdate, LayoutState] | None = None  # the draft to finish

    # ------------------------------------------------------------------ helpers
    def _run(self) -> Run:
        if self.run is None:
            self.run = Run(self.run_dir)
        return self.run

    def _pinned(self) -> bool:
        return self.edits.pinned

    def _update(
        self,
        label: str,
        scene: Scene,
        changed: Changed | None,
        before: LayoutEdits | None,
        pinned: bool | None = None,
    ) -> SceneUpdate:
        """Record the edits after a command (pinned once anything was edited), save them."""
        assert self.state is not None and self.patches is not None
        if pinned is None:
            pinned = self._pinned() or before is not None
        self.edits = capture(self.state, pinned=pinned)
        saved = None
        if self.save and (before is not None or changed is not None):
            try:
                saved = str(save_edits(self.run_dir, self.edits))
            except OSError as e:
                saved = f"not saved: {e}"
        return SceneUpdate(
            label,
            self.state.snapshot,
            self.patches,
            scene,
            changed,
            self.edits,
            before,
            dict(self.state.timings),
            saved,
        )

    def prepare(self, snapshot: Snapshot) -> tuple[LayoutState, PatchCache]:
        """Lay out ``snapshot`` with the current edits and fetch its patches.

        Thread-safe with respect to the session (reads only immutable fields), so a
        :class:`~cnnvis_gl.run.follow.Follower` may call it on its own thread.
        """
        edits = self.edits
        shown = self.state.scene if self.state is not None else None  # immutable: safe to read
        if edits.pinned or edits.facets or shown is None:
            order = None if shown is None else shown.class_order  # columns stay put
            state = build_with_edits(snapshot, edits, self.base, order)
        else:  # clustered afresh: keep the ids (colours) and order of the clusters on screen
            state = build_state(snapshot, edits.options(self.base), previous=shown)
        patches = PatchCache(snapshot, self.patch_size)
        assert state.scene is not None
        patches.prefetch(state.scene.units[u] for u in np.unique(state.scene.neurons.unit))
        _warm_glyphs(state.scene)
        return state, patches

    def _adopt(self, step: int | None, state: LayoutState, patches: PatchCache) -> None:
        if self.state is not None:
            self._states[self.state.snapshot.step] = (self.state, self.patches)  # type: ignore[assignment]
        self._states.pop(step, None)
        while len(self._states) > self._cache:
            self._states.popitem(last=False)
        self.state, self.patches = state, patches

    # ------------------------------------------------------------------ commands
    def draft(self) -> SceneUpdate | None:
        """A quick layout of the latest snapshot of a big network (at least
        :data:`DRAFT_NEURONS` neurons) to show at once while :meth:`open` lays it out for real
        (progressive opening); ``None`` for a smaller one, or when the layout is pinned (the
        user's saved clustering is what they expect to see).  Not adopted: edits wait for
        :meth:`open`, which reuses the loaded snapshot (:meth:`take_drafted`)."""
        t = time.perf_counter()
        try:
            snapshot = self._run().latest()
        except SnapshotError:  # no snapshot yet, or a damaged one: `open` says which
            return None
        self.drafted = snapshot
        shown = {g.units[-1] for g in snapshot.graph.groups}  # a collapsed group shows its last
        neurons = sum(u.channels for u in snapshot.graph.units if u.name in shown)
        if neurons < DRAFT_NEURONS or self.edits.pinned:
            return None
        # the clusters only: ordering them and their edges need every layer's weights (~0.5 s
        # at 100k neurons), which `draft_pictures` reads after the first frame
        options = replace(self.edits.options(self.base), draft=True, sweeps=1, draft_edges=False)
        state = build_state(snapshot, options)
        assert state.scene is not None
        _warm_glyphs(state.scene)
        timings = {**state.timings, "open": time.perf_counter() - t}
        label = f"draft layout of {neurons:,} neurons"
        patches = PatchCache(snapshot, self.patch_size)  # filled by `draft_pictures`
        update = SceneUpdate(label, snapshot, patches, state.scene, None, self.edits, None, timings, pixels=False)
        self._draft_pictures = (update, state)
        return update

    def draft_pictures(self) -> SceneUpdate | None:
        """The rest of the draft on screen — its clusters ordered in their rows, its edges and
        its mosaic tiles' patches — made after it is shown (the first frame waits for the
        clusters only); ``None`` without a draft."""
        drafted, self._draft_pictures = self._draft_pictures, None
        if drafted is None:
            return None
        update, state = drafted
        t = time.perf_counter()
        scene = finish_draft(state)
        n, tiles = scene.neurons, mosaic_tiles(scene).neuron
        update.patches.prefetch_neurons(
            {scene.units[u]: n.index[tiles[n.unit[tiles] == u]] for u in np.unique(n.unit[tiles])}
        )
        label = f"{update.label} with its edges and pictures"
        return replace(update, label=label, scene=scene, timings={"open": time.perf_counter() - t}, pixels=True)

    def take_drafted(self) -> Snapshot | None:
        """The snapshot :meth:`draft` loaded (once)."""
        snapshot, self.drafted = self.drafted, None
        return snapshot

    def open(
        self,
        step: int | None = None,
        snapshot: Snapshot | None = None,
        prepared: tuple[LayoutState, PatchCache] | None = None,
    ) -> SceneUpdate:
        """Show snapshot ``step`` (default: the latest), laid out with the current edits.

        ``snapshot`` / ``prepared`` come from a follower that already loaded / laid it out.
        """
        t = time.perf_counter()
        if snapshot is None:
            run = self._run()
            if step is None:
                snapshot = run.latest()
                step = snapshot.step
            else:
                snapshot = run.snapshot(step)
        step = snapshot.step
        hit = self._states.get(step)
        if prepared is not None:
            state, patches = prepared
        elif hit is not None:
            state, patches = hit
        else:
            state, patches = self.prepare(snapshot)
        cur = capture(state, pinned=self._pinned())
        want = self.edits
        if state.options.view_size != self.base.view_size:  # laid out for another window size
            layout_edit.set_view_size(state, self.base.view_size)
        if _differs(cur, want):
            restore(state, want)
        self._adopt(step, state, patches)
        assert self.state is not None and self.state.scene is not None
        self.state.timings = {**self.state.timings, "open": time.perf_counter() - t}
        return self._update(f"open step {step}", self.state.scene, None, None)

    def move(self, unit: str, neuron: int, to: int | None) -> SceneUpdate:
        """Move a neuron to cluster ``to`` (an id) or, with ``None``, into a new cluster."""
        state = self._need()
        before = capture(state, pinned=True)
        scene, changed = layout_edit.move_neuron(state, unit, int(neuron), to)
        where = "a new cluster" if to is None else f"cluster {to}"
        return self._update(f"move neuron {neuron} of {unit} to {where}", scene, changed, before)

    def set_clustering(self, group: str, method: str, k: int | None) -> SceneUpdate:
        """Re-cluster one group with ``method`` and ``k`` (None: silhouette)."""
        state = self._need()
        before = capture(state, pinned=True)
        scene, changed = layout_edit.set_clustering(state, group, method, k)
        kk = "auto" if k is None else k
        return self._update(f"re-cluster {group} ({method}, k={kk})", scene, changed, before)

    def set_expanded(self, group: str, expanded: bool) -> SceneUpdate:
        """Expand a group into its layers, or collapse it."""
        state = self._need()
        before = capture(state, pinned=True)
        scene, changed = layout_edit.set_expanded(state, group, expanded)
        verb = "expand" if expanded else "collapse"
        return self._update(f"{verb} {group}", scene, changed, before)

    def set_collapsed_stages(self, stages: frozenset[str], label: str) -> SceneUpdate:
        """Show exactly these stages collapsed (one more or less, every innermost one, none)."""
        state = self._need()
        before = capture(state, pinned=True)
        scene, changed = layout_edit.set_collapsed_stages(state, frozenset(stages))
        return self._update(label, scene, changed, before)

    def set_threshold(self, fraction: float) -> SceneUpdate:
        """Keep the top ``fraction`` of the cluster edges of each pair of rows (not undoable)."""
        state = self._need()
        scene, changed = layout_edit.set_threshold(state, fraction=float(fraction))
        return self._update(f"edges: keep top {fraction:.0%}", scene, changed, None)

    def set_view_size(self, size: tuple[int, int]) -> SceneUpdate:
        """Lay the rows out for a canvas of ``size`` pixels (long networks wrap into columns);
        later snapshots are laid out for it too.  A view setting: not undoable, not saved."""
        self.base = replace(self.base, view_size=(int(size[0]), int(size[1])))
        state = self._need()
        scene, changed = layout_edit.set_view_size(state, self.base.view_size)
        return self._update(f"fit the rows to {size[0]}×{size[1]}", scene, changed, None)

    def set_facet(self, facet: int, clusters: list[int] | None = None) -> SceneUpdate:
        """Switch the facet of some clusters (ids) or of all (not undoable: a view setting)."""
        state = self._need()
        scene, changed = layout_edit.set_facet(state, int(facet), clusters)
        what = "all clusters" if clusters is None else f"{len(clusters)} cluster(s)"
        name = "activation matrix" if facet else "learned features"
        return self._update(f"{what}: {name}", scene, changed, None)

    def restore(self, edits: LayoutEdits, label: str) -> SceneUpdate:
        """Put back the clustering of earlier edits (undo / redo).

        View settings (edge filter, facets) are not part of the history: the current ones stay.
        """
        state = self._need()
        edits = replace(
            edits,
            edge_fraction=float(state.options.edge_fraction),
            facet=int(state.options.facet),
            facets={**edits.facets, **state.facets},
        )
        scene, changed = restore(state, edits)
        return self._update(label, scene, changed, None, pinned=edits.pinned)

    def reset(self) -> SceneUpdate:
        """Forget the pinned clustering: cluster every row afresh with the current options."""
        state = self._need()
        before = capture(state, pinned=True)
        self.edits = self.edits.unpinned()
        self._states.clear()
        with blas_threads(state.options.blas_threads):
            state.recluster(state.rows)
        state.facets.clear()
        scene, changed = restore(state, self.edits)
        return self._update("reset clustering", scene, changed, before, pinned=False)

    def _need(self) -> LayoutState:
        if self.state is None:
            raise RuntimeError("no snapshot is open")
        return self.state


def _differs(a: LayoutEdits, b: LayoutEdits) -> bool:
    """Whether two edits lay out differently (ignores the step)."""
    return (
        (b.pinned and dict(a.rows) != dict(b.rows))
        or dict(a.clustering) != dict(b.clustering)
        or a.expanded != b.expanded
        or a.collapsed != b.collapsed
        or a.edge_fraction != b.edge_fraction
        or a.facet != b.facet
        or (b.pinned and dict(a.facets) != dict(b.facets))
    )
