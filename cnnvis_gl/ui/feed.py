"""What brings a new scene to the view: layout jobs, their results, and the follower.

Every layout command runs as a job on the layout worker (:meth:`SceneFeed.submit`); its result,
a :class:`~cnnvis_gl.ui.jobs.SceneUpdate`, is applied between frames (:meth:`SceneFeed.apply`),
uploading to the renderer only the parts that changed.  An edit's ``on_success`` (undo / redo
moving an entry between the history's stacks) runs only when its job succeeded.  Following a
run, the follower lays out each new newest snapshot on its own thread (:meth:`_prepare`).
When the rows change (a group expanded, a stage collapsed, or undone) the view morphs from the
old scene into the new over :data:`MORPH_SECONDS` (:meth:`SceneFeed.tick`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout.morph import morph
from .jobs import Done, SceneUpdate
from .state import GroupSetting, HistoryEntry

if TYPE_CHECKING:
    from .app import App

__all__ = ["MORPH_MAX", "MORPH_SECONDS", "SceneFeed"]

#: A change of rows animates this long (seconds) …
MORPH_SECONDS = 0.4
#: … on scenes of up to this many neurons (each frame of the morph uploads the whole scene).
MORPH_MAX = 20_000
#: The first layout waits for a canvas at least this big each way (or one that keeps its size).
MIN_CANVAS = 64


class SceneFeed:
    """The layout jobs in flight and the application of their results."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.follower: Any = None
        self.last_update: SceneUpdate | None = None  # the last layout result applied
        self.shown_facets: np.ndarray | None = None  # per cluster, as drawn (set_facet is instant)
        self._jobs: set[int] = set()  # layout commands in flight
        self._canvas: tuple[tuple[int, int], float] = ((1, 1), 0.0)  # size, since when
        self._view_asked: tuple[int, int] | None = None  # the last canvas size laid out for
        self.open_when_sized = False  # open the latest snapshot once the canvas has a size
        self.morphing: tuple[Any, Any, float] | None = None  # old scene, new scene, start time

    @property
    def pending(self) -> bool:
        """A layout command is queued or running (edits wait for it)."""
        return bool(self._jobs)

    def submit(
        self,
        label: str,
        fn: Callable[[], SceneUpdate],
        on_success: Callable[[], None] | None = None,
    ) -> None:
        """Run a layout command on the layout worker; ``on_success`` once it succeeded."""
        worker = self.app.worker
        assert worker is not None
        self._jobs.add(worker.submit(label, fn, then=lambda done: self.finish(done, on_success)))
        self.app.state.jobs.pending = worker.pending

    def fit_rows_to_canvas(self, now: float) -> None:
        """Once the canvas has kept its size for 0.4 s and its shape differs from the one the
        layout was made for, lay the rows out for it (a long network wraps into columns that
        fill it; the camera, if it showed the whole network, shows the new whole)."""
        st, session = self.app.state, self.app.session
        size = st.camera.viewport
        if size != self._canvas[0]:
            self._canvas = (size, now)
        # The first layout: for this canvas at once — once the docking has given it its size
        # (its first frames report the undocked window's 32 × 11 px: a network laid out for
        # that is one long line), or once a small size has held for half a second.
        settled = min(size) >= MIN_CANVAS or (size != (1, 1) and now - self._canvas[1] >= 0.5)
        if self.open_when_sized and settled:
            self.open_when_sized = False
            self._view_asked = size
            session.base = replace(session.base, view_size=size)
            # a big network: a draft at once, then the real layout (progressive opening)
            self.submit("draft layout", session.draft, self._drafted)
            self.submit("draft pictures", session.draft_pictures, self._drafted)
            self.submit("open the latest snapshot", lambda: session.open(snapshot=session.take_drafted()))
            return
        if self.open_when_sized:
            return
        if size == (1, 1) or st.scene is None or self.pending or now - self._canvas[1] < 0.4:
            return
        if size == self._view_asked or not _view_differs(session.base.view_size, size):
            return
        self._view_asked = size
        was_whole = self._shows_whole(st.scene)

        def refit() -> None:
            if was_whole:
                self.app.actions.fit_all(animate=False)

        self.submit("fit the rows to the window", lambda: session.set_view_size(size), refit)

    def _shows_whole(self, scene: Any) -> bool:
        """Whether the camera shows the whole of ``scene`` (as fitted)."""
        from ..render.camera import Camera

        st = self.app.state
        if scene is None or st.camera.viewport == (1, 1):
            return False
        whole = Camera().fit(scene.bounds, st.camera.viewport, margin=0.03)
        cur = st.camera.current
        return abs(cur.zoom / whole.zoom - 1) < 0.02 and all(
            abs(a - b) * cur.zoom < 4 for a, b in zip(cur.center, whole.center, strict=True)
        )

    def _drafted(self) -> None:
        st = self.app.state
        if st.scene is not None and self.last_update is not None and self.last_update.label.startswith("draft"):
            st.jobs.message = (
                f"{self.last_update.label} (clusters by strongest class): laying it out for real in "
                "the background …"
            )

    def finish(self, done: Done, on_success: Callable[[], None] | None = None) -> None:
        """A job of the layout worker finished (on the UI thread)."""
        st = self.app.state
        self._jobs.discard(done.job)
        st.jobs.last, st.jobs.last_seconds = done.label, done.seconds
        if done.error is not None:
            st.jobs.error = f"{done.label} failed: {done.error}"
            self.app.job_errors.append(st.jobs.error)
            print(done.trace, file=sys.stderr)
            if st.scene is None:
                st.jobs.message = (
                    "Waiting for the first snapshot …"
                    if st.follow
                    else f"Cannot open the run: {done.error}"
                )
            return
        st.jobs.error = None if st.jobs.error and "failed" in st.jobs.error else st.jobs.error
        if isinstance(done.result, SceneUpdate):
            self.apply(done.result)
        elif isinstance(done.result, list):  # steps of the run
            st.steps = sorted(set(done.result))
        if on_success is not None:
            on_success()

    # ------------------------------------------------------------------ applying a result
    def _renderer_parts(self, update: SceneUpdate, new_snapshot: bool) -> Iterable[str] | None:
        """Parts to upload: ``None`` (compare by identity), or only ``facet`` / nothing when
        only the facets changed."""
        ch = update.changed
        appearance_only = (
            ch is not None
            and not new_snapshot
            and ch.appearance
            and not (ch.clusters or ch.removed or ch.moved or ch.rows or ch.edges or ch.structure)
        )
        if not appearance_only:
            return None
        shown = self.shown_facets
        same = shown is not None and np.array_equal(shown, update.scene.clusters.facet)
        return () if same else ("facet",)

    def apply(self, update: SceneUpdate) -> None:
        """Show a layout result (on the UI thread, between frames)."""
        app, st = self.app, self.app.state
        r = app.renderer
        self.last_update = update
        if self.morphing is not None and r is not None:  # a morph under way ends where it goes
            r.set_scene(self.morphing[1])
            self.morphing = None
        new_snapshot = update.snapshot is not st.snapshot
        if new_snapshot:
            st.snapshot = update.snapshot
            st.step = update.snapshot.step
            if st.step is not None and st.step not in st.steps:
                st.steps = sorted({*st.steps, st.step})
            app.inspect.new_snapshot()
            if r is not None:
                r.set_snapshot(update.patches, pending=not update.pixels)
        elif r is not None and r.pixels_pending and update.pixels:  # the draft's pictures came
            r.set_snapshot(update.patches)  # (with its edges, or the real layout): the atlas fills
        elif r is not None and update.patches is not r.snapshot:  # e.g. after a draft: more patches
            r.set_patch_source(update.patches)
        parts = self._renderer_parts(update, new_snapshot)
        old, new = st.scene, update.scene
        reset = parts is None and (
            new_snapshot
            or old is None
            or any(getattr(new, p) is not getattr(old, p) for p in ("clusters", "neurons", "rows"))
            or new.bounds != old.bounds
            or new.class_order is not old.class_order
        )
        self.morphing = None
        rows_changed = _rows_changed(old, new, new_snapshot)
        # the whole network was in view: it stays in view when its rows or its extent change
        # (e.g. the real layout replacing a draft: wider clusters)
        resized = old is not None and not new_snapshot and new.bounds != old.bounds
        refit = (rows_changed or resized) and self._shows_whole(old)
        if r is not None and rows_changed and len(new.neurons.index) <= MORPH_MAX:
            self.morphing = (old, new, time.perf_counter())
            r.set_scene(morph(old, new, 0.0))
        elif r is not None:
            r.set_scene(new, changed=parts)
        if r is not None:
            if r.edge_threshold != 0.0:
                r.set_edge_threshold(0.0)
        self.shown_facets = np.asarray(new.clusters.facet).copy()
        st.scene = new
        st.scene_version += 1
        st.edits = update.edits
        st.facet = int(update.edits.facet)
        st.edge_fraction = float(update.edits.edge_fraction)
        self._sync_groups()
        if update.before is not None:
            st.history.push(HistoryEntry(update.label, update.before, update.edits))
        if not new_snapshot or st.jobs.message.startswith(("Laying", "Waiting")):
            st.jobs.message = ""
        if update.saved and update.saved.startswith("not saved"):
            st.jobs.message = update.saved
        self._fix_selection()
        if reset:  # the renderer dropped the selection state with the geometry
            app.actions.push_selection()
            app.view.scene_changed()
        if not st.camera.fitted and st.camera.viewport != (1, 1):
            app.actions.fit_all(animate=False)
        elif refit:  # the whole network was in view: it stays in view, shorter or taller
            app.actions.fit_all()
        version = st.scene_version
        app.inspect.textures.drop(lambda k: k[0] == "pack" and k[1] != version)
        app.view.touch()
        if new_snapshot:
            self._new_snapshot_shown()

    def tick(self, now: float) -> None:
        """One frame of a morph between two row sets (eased); the new scene at its end."""
        if self.morphing is None:
            return
        old, new, start = self.morphing
        r, st = self.app.renderer, self.app.state
        if r is None or st.scene is not new:
            self.morphing = None
            return
        p = (now - start) / MORPH_SECONDS
        if p >= 1.0:
            self.morphing = None
            r.set_scene(new)
        else:
            r.set_scene(morph(old, new, p * p * (3.0 - 2.0 * p)))
        self.app.actions.push_selection()
        self.app.view.touch()

    def _new_snapshot_shown(self) -> None:
        app, st = self.app, self.app.state
        shots = app.shots
        if shots.follow and shots.folder is not None and st.headless and st.follow:
            shots.when_settled()  # each new snapshot, once its view has settled
        if st.follow and self.follower is not None and st.step is not None:
            newer = [k for k in self.follower.loaded if k > st.step]
            if newer and not self.pending:
                app.actions.open_step(max(newer))  # arrived while this one was being laid out

    def _sync_groups(self) -> None:
        st = self.app.state
        if st.snapshot is None:
            return
        edits = st.edits
        for g in st.snapshot.graph.groups:
            method, k = edits.clustering.get(g.name, ("kmeans", None))
            gs = st.groups.setdefault(g.name, GroupSetting())
            gs.method, gs.k = method, int(k or 0)
            gs.expanded = g.name in edits.expanded
        st.collapsed = set(edits.collapsed)

    def _fix_selection(self) -> None:
        """Keep selections by key; a vanished cluster falls back to the selected neuron's."""
        st = self.app.state
        sel = st.selection
        ni = st.neuron_index(sel.neuron)
        if sel.neuron is not None and ni is None:
            sel.neuron = None
        if st.cluster_index(sel.cluster) is None:
            sel.cluster = None
            if ni is not None and st.scene is not None:
                sel.cluster = int(st.scene.clusters.id[st.scene.neurons.cluster[ni]])

    # ------------------------------------------------------------------ follow mode
    def start_follower(self) -> None:
        """Watch the run for new snapshots (laid out on the follower's thread)."""
        from ..run.follow import Follower

        if self.follower is None:
            self.follower = Follower(self.app.state.run_dir, interval=1.0, prepare=self._prepare)
            self.follower.start()

    def stop_follower(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.follower = None

    def poll_follower(self) -> None:
        """Take the snapshots the follower loaded (each frame)."""
        if self.follower is not None:
            for snap, prepared in self.follower.poll():
                self._arrived(snap, prepared)

    def _prepare(self, snap: Any) -> Any:
        """On the follower thread: lay out a new snapshot if it is the newest and we follow."""
        st = self.app.state
        if not st.follow or st.step is None or snap.step is None or snap.step <= st.step:
            return None  # not newer than what is shown (or the first open is still running)
        run = self.follower.run if self.follower is not None else None
        steps = run.steps() if run is not None else []
        if steps and snap.step != max(steps):
            return None
        return self.app.session.prepare(snap)

    def _arrived(self, snap: Any, prepared: Any) -> None:
        st = self.app.state
        if snap.step is not None and snap.step not in st.steps:
            st.steps = sorted({*st.steps, int(snap.step)})
        if st.step is None and self.pending:
            return  # the first open shows the latest; `apply` catches up if this one is newer
        newest = snap.step is not None and snap.step >= max(st.steps)
        if st.follow and newest and snap.step != st.step:
            session = self.app.session
            self.submit(
                f"show step {snap.step}",
                lambda: session.open(snapshot=snap, prepared=prepared),
            )


def _view_differs(laid_out: tuple[int, int] | None, size: tuple[int, int]) -> bool:
    """Whether a canvas of ``size`` wants another layout than one made for ``laid_out``: its
    shape (aspect) changed by more than 10 % or its size by more than 25 %."""
    if laid_out is None:
        return True
    a0, a1 = laid_out[0] / laid_out[1], size[0] / size[1]
    s0, s1 = laid_out[1], size[1]
    return abs(a1 / a0 - 1) > 0.10 or abs(s1 / s0 - 1) > 0.25


def _rows_changed(old: Any, new: Any, new_snapshot: bool) -> bool:
    """Whether showing ``new`` after ``old`` changes the rows of one snapshot (other names)."""
    if old is None or new_snapshot:
        return False
    return [r.name for r in old.rows] != [r.name for r in new.rows]
