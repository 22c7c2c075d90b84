"""The viewer application: hello_imgui runner, docking layout, and the commands panels call.

:class:`App` is the controller: it owns the :class:`~cnnvis_gl.ui.state.AppState`, the GL
objects (created in ``post_init``, freed in ``before_exit``), the layout worker and the
follower.  Panels (:mod:`.panels`, one module each) are plain functions of it.  Each frame starts
with :meth:`App.begin_frame`, which applies what the background threads finished (new scenes,
pictures, snapshots) — the UI never waits for them.

:func:`run_app` starts it; :func:`runner_params` builds the hello_imgui parameters (tests use
them with the ImGui Test Engine).
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from imgui_bundle import hello_imgui, imgui, immapp

from ..layout import LayoutOptions
from ..layout.edges import RowSpec, row_weights
from ..layout.scene import ROW_BETWEEN
from ..render.camera import Camera
from .edits import LAYOUT_FILE
from .headless import has_display, init_headless
from .jobs import Done, LayoutSession, PatchCache, SceneUpdate, Worker
from .loaders import Loader, loaders
from .panels import DOCK_SPLITS, PANELS, menus, status_bar
from .pictures import packing_image, topk_grid
from .state import AppState, DragState, GroupSetting, HistoryEntry, NeuronKey
from .textures import TextureCache

__all__ = ["App", "run_app", "runner_params"]


# ---------------------------------------------------------------------------- the app


class App:
    """The CNNVis viewer of one run directory.

    Parameters
    ----------
    run_dir
        Run directory (manifest + snapshots).
    follow
        Follow the run as it grows: new snapshots are loaded and laid out in the background
        and shown when ready.
    headless
        Running without a display (null platform + EGL).
    msaa
        Multisampling of the window (0 = off; 8× triples frame time on software GL).
    screenshot_dir
        Where screenshots go (``None``: the run's ``screenshots/`` folder when headless).
    max_frames
        Exit after this many frames (``None``: run until closed).
    theme
        ``"dark"`` or ``"light"``.
    options
        Base layout options.
    save_layout
        Write the edited clustering to ``RUN/layout.json`` after each edit.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        follow: bool = False,
        headless: bool = False,
        msaa: int = 0,
        screenshot_dir: str | Path | None = None,
        max_frames: int | None = None,
        theme: str = "dark",
        options: LayoutOptions | None = None,
        save_layout: bool = True,
    ) -> None:
        self.state = AppState(run_dir=Path(run_dir), follow=follow, headless=headless, theme=theme)
        self.msaa = int(msaa)
        self.max_frames = max_frames
        if screenshot_dir is None and headless:
            screenshot_dir = Path(run_dir) / "screenshots"
        self.screenshot_dir = None if screenshot_dir is None else Path(screenshot_dir)
        #: headless: a screenshot of each new snapshot while following (once it has settled),
        #: and one of the last frame when the loop ends
        self.follow_screenshots = True
        self.screenshot_on_exit = True
        self.session = LayoutSession(run_dir, options, save=save_layout)
        self.worker: Worker | None = None
        self.images: Worker | None = None
        self.follower: Any = None
        self.ctx: Any = None
        self.renderer: Any = None
        self.target: Any = None
        self.move_choice: int | None = None
        self.exit_when_settled = False  # headless `cnnvis view` without follow: one picture
        self.frame_period = 1.0 / 60.0  # frame-rate cap while background work runs (and headless)
        self.idle_period = 0.5  # headless and idle (see `_pace`)
        self.canvas_origin: tuple[float, float] = (0.0, 0.0)  # screen position of the view
        self.screenshots: list[Path] = []
        self.panel_errors: list[str] = []  # exceptions raised by panels (each logged once)
        self.job_errors: list[str] = []  # background jobs that failed (layout, loads, pictures)
        self.last_update: SceneUpdate | None = None  # the last layout result applied
        self.on_frame: list[Callable[[App], None]] = []  # test hooks, called each frame
        self._render_version = 0
        self._drawn_key: tuple | None = None
        self._last_hover_pos: tuple | None = None
        self.textures = TextureCache()  # the inspectors' pictures
        # edit jobs in flight -> what to do once each succeeded (undo / redo move history then)
        self._edit_jobs: dict[int, Callable[[], None] | None] = {}
        self._class_means: dict[tuple[int | None, str], np.ndarray] = {}
        self._weights: dict[tuple, np.ndarray | None] = {}
        self._shown_facets: np.ndarray | None = None
        self._want_screenshot = False
        self._shot_when_settled = False
        self._shot_path: str | Path | None = None
        self._shot_step: int | None = None
        self._settled_frames = 0
        self._last_time = time.perf_counter()
        self._gui_t0 = 0.0
        self.flag_badges: list[tuple[Any, tuple[float, float, float, float]]] = []  # drawn
        self.flag_tooltip: str | None = None  # the flag message shown in a tooltip this frame
        self.plot_points: dict[str, dict[int, tuple[float, float]]] = {}  # plot → step → px
        self.widget_ids: dict[str, int] = {}  # ImGui ids of some widgets (tests click them)
        # the debugging view's background loads (results in state.debug)
        self.flags_loader, self.training_loader, self.compare_loader, self.neuron_edges_loader = (
            loaders(self)
        )

    # ------------------------------------------------------------------ lifecycle
    def post_init(self) -> None:
        """Create the GL objects in the runner's context; start the background threads."""
        from ..render import SceneRenderer
        from ..render.targets import ViewTarget, attach_context

        self.ctx = attach_context()
        # a panel's exception is recovered by `guarded` and reported, not turned into an abort
        imgui.get_io().config_error_recovery_enable_assert = False
        self.renderer = SceneRenderer(self.ctx, None, theme=self.state.theme, msaa=self.msaa)
        self.target = ViewTarget(self.ctx)
        self.session.patch_size = self.renderer.atlas.patch_size
        self._apply_imgui_theme()
        self.worker = Worker("cnnvis-layout")
        self.images = Worker("cnnvis-pictures")
        if self.session.load_error:
            self.state.jobs.error = f"{LAYOUT_FILE} ignored: {self.session.load_error}"
        self.state.jobs.message = "Laying out the latest snapshot …"
        self._submit_edit("open the latest snapshot", lambda: self.session.open())
        self.refresh_steps()  # the timeline, the Training panel and compare need every step
        if self.state.follow:
            self._start_follower()

    def before_exit(self) -> None:
        """Stop the threads, free every GL object (the context is still current here)."""
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        for w in (self.worker, self.images):
            if w is not None:
                w.stop()
        self.textures.clear()
        if self.renderer is not None:
            self.renderer.park()
        if self.target is not None:
            self.target.release()
        if self.renderer is not None:
            self.renderer.release()
        self.renderer = None
        self.target = None

    def guarded(self, name: str, panel: Callable[[], None]) -> Callable[[], None]:
        """``panel`` made safe: an exception is reported (once per message) and ImGui's
        begin/end stack is recovered, so one broken panel never takes the app down."""
        from imgui_bundle.imgui import internal

        def call() -> None:
            saved = internal.ErrorRecoveryState()
            internal.error_recovery_store_state(saved)
            try:
                panel()
            except Exception as e:  # noqa: BLE001 - shown in the status bar, logged once
                internal.error_recovery_try_to_recover_state(saved)
                msg = f"{name} panel: {type(e).__name__}: {e}"
                if msg not in self.panel_errors:
                    self.panel_errors.append(msg)
                    traceback.print_exc()
                self.state.jobs.error = msg

        return call

    # ------------------------------------------------------------------ per frame
    def begin_frame(self) -> None:
        """Apply finished background work, advance the camera, handle global shortcuts."""
        st = self.state
        now = time.perf_counter()
        self._pace(now - self._last_time)
        now = time.perf_counter()
        dt = now - self._last_time
        self._last_time = now
        self._gui_t0 = now
        if st.frames:
            st.frame_ms.append(dt * 1000.0)
        st.frames += 1
        for done in self.worker.poll() if self.worker else ():
            self._finish_edit(done)
        for done in self.images.poll() if self.images else ():
            self._finish_picture(done)
        if self.follower is not None:
            for snap, prepared in self.follower.poll():
                self._arrived(snap, prepared)
        st.jobs.pending = self.worker.pending if self.worker else []
        for loader in self._loaders():
            loader.tick(now)
        st.camera.step(dt)
        self._shortcuts()
        # idle at a low frame rate only when nothing moves and nothing runs
        busy = st.camera.animating or bool(st.jobs.pending) or st.drag is not None
        hello_imgui.get_runner_params().fps_idling.enable_idling = not busy and not st.headless
        for hook in list(self.on_frame):
            hook(self)
        self._maybe_exit()

    def _pace(self, elapsed: float) -> None:
        """Sleep (releasing the GIL) so the background threads get the CPU.

        The hello_imgui loop holds the GIL while it renders and swaps, so a thread doing Python
        work would only run while a Python callback runs (measured: ~10 % of its speed at full
        frame rate).  While work is pending each frame sleeps as long as it worked (4 to 20 ms,
        and to a cap of ``1 / frame_period``), so the background gets about half the time:
        measured on 2 cores, a followed BaseCNN snapshot was laid out 5× slower than alone at
        a 60 fps cap, and the UI still runs at 30-40 fps.  Headless and idle, 2 fps; with a
        display, hello_imgui's idling and vsync pace the frames.
        """
        busy = bool(
            (self.worker is not None and self.worker.busy)
            or (self.images is not None and self.images.busy)
            or (self.follower is not None and self.follower.working)
        )
        st = self.state
        if busy:  # (at most 20 ms: a frame slowed by the GIL must not slow the next one)
            time.sleep(min(max(self.frame_period - elapsed, elapsed, 0.004), 0.02))
        elif st.headless:
            # nobody watches a headless window: idle at 2 fps, leaving the CPU (and the GIL)
            # to e.g. a training loop in this process (`cnnvis demo`: 10 fps cost it 30 %)
            moving = st.camera.animating or st.drag is not None or bool(st.jobs.pending)
            idle = not moving and self.frame_period > 0  # 0: no cap at all (the GUI tests)
            period = max(self.frame_period, self.idle_period) if idle else self.frame_period
            time.sleep(max(period - elapsed, 0.0))

    def _shortcuts(self) -> None:
        io = imgui.get_io()
        if io.want_text_input:
            return
        ctrl_z = imgui.Key.mod_ctrl | imgui.Key.z
        if imgui.is_key_chord_pressed(ctrl_z):
            self.undo()
        elif imgui.is_key_chord_pressed(ctrl_z | imgui.Key.mod_shift) or imgui.is_key_chord_pressed(
            imgui.Key.mod_ctrl | imgui.Key.y
        ):
            self.redo()

    def _maybe_exit(self) -> None:
        st = self.state
        rp = hello_imgui.get_runner_params()
        if self.max_frames is not None and st.frames >= self.max_frames:
            rp.app_shall_exit = True
        settled = (
            st.scene is not None
            and not st.jobs.pending
            and not st.camera.animating
            and self._drawn_key is not None
            and not self.debug_loading  # the Training panel and the flags have loaded
            and (self.state.debug.training is not None or len(st.steps) == 0)
        )
        self._settled_frames = self._settled_frames + 1 if settled else 0
        if self._shot_when_settled and self._settled_frames >= 3:
            self._shot_when_settled = False
            if self._shot_step is None or self._shot_step == st.step:
                self._want_screenshot = True  # taken at the end of this frame (`before_swap`)
            else:  # another snapshot came first: the picture would be misnamed
                self._shot_path = None
        if self.exit_when_settled:
            failed = st.scene is None and not self.edit_pending and st.jobs.error is not None
            if self._settled_frames >= 3 or failed:
                rp.app_shall_exit = True

    @property
    def view_drawn(self) -> bool:
        """The network view shows the current scene (it has been drawn since it arrived)."""
        key = self._drawn_key
        return key is not None and key[3] == self.state.scene_version

    def request_exit(self) -> None:
        """Leave the loop after this frame (the window closes; ``run_app`` returns)."""
        hello_imgui.get_runner_params().app_shall_exit = True

    def before_swap(self) -> None:
        """The frame is complete in the back buffer: take a requested screenshot from it."""
        if not self._want_screenshot:
            return
        self._want_screenshot = False
        path, self._shot_path = self._shot_path, None
        try:  # outside the panels' guard: a failure must not end the loop
            self.save_screenshot(path, pixels=self._window_pixels())
        except Exception as e:  # noqa: BLE001 - e.g. a read-only run directory
            self.state.jobs.error = f"screenshot not saved: {type(e).__name__}: {e}"

    def after_swap(self) -> None:
        """Headless, wait for the frame to be drawn: software GL would otherwise queue frames
        (nothing throttles a null window) and stall a later upload for all of them at once."""
        if self.state.headless and self.ctx is not None:
            self.ctx.finish()

    def _window_pixels(self) -> np.ndarray | None:
        """The whole window as uint8 ``[h, w, 3]`` (top row first), read from the back buffer."""
        if self.ctx is None:
            return None
        io = imgui.get_io()
        sx, sy = io.display_framebuffer_scale
        w, h = int(io.display_size.x * sx), int(io.display_size.y * sy)
        if w <= 0 or h <= 0:
            return None
        fb = self.ctx.detect_framebuffer(0)
        raw = fb.read(viewport=(0, 0, w, h), components=3, alignment=1)
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)[::-1]

    # ------------------------------------------------------------------ background results
    @property
    def edit_pending(self) -> bool:
        """A layout command is queued or running (edits wait for it)."""
        return bool(self._edit_jobs)

    def _submit_edit(
        self,
        label: str,
        fn: Callable[[], SceneUpdate],
        on_success: Callable[[], None] | None = None,
    ) -> None:
        assert self.worker is not None
        self._edit_jobs[self.worker.submit(label, fn)] = on_success
        self.state.jobs.pending = self.worker.pending

    def _finish_edit(self, done: Done) -> None:
        st = self.state
        on_success = self._edit_jobs.pop(done.job, None)
        st.jobs.last, st.jobs.last_seconds = done.label, done.seconds
        if done.error is not None:
            st.jobs.error = f"{done.label} failed: {done.error}"
            self.job_errors.append(st.jobs.error)
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

    def apply(self, update: SceneUpdate) -> None:
        """Show a layout result (on the UI thread, between frames)."""
        st = self.state
        r = self.renderer
        self.last_update = update
        new_snapshot = update.snapshot is not st.snapshot
        if new_snapshot:
            st.snapshot = update.snapshot
            st.step = update.snapshot.step
            if st.step is not None and st.step not in st.steps:
                st.steps = sorted({*st.steps, st.step})
            self._class_means.clear()
            self._weights.clear()
            if r is not None:
                r.set_snapshot(update.patches)
        parts: Iterable[str] | None = None
        ch = update.changed
        appearance_only = (
            ch is not None
            and not new_snapshot
            and ch.appearance
            and not (ch.clusters or ch.removed or ch.moved or ch.rows or ch.edges or ch.structure)
        )
        if appearance_only:
            shown = self._shown_facets
            facets = update.scene.clusters.facet
            same = shown is not None and np.array_equal(shown, facets)
            parts = () if same else ("facet",)
        old = st.scene
        reset = (
            new_snapshot
            or old is None
            or update.scene.clusters is not old.clusters
            or update.scene.neurons is not old.neurons
            or update.scene.rows is not old.rows
            or update.scene.bounds != old.bounds
            or update.scene.class_order is not old.class_order
        ) and parts is None
        if r is not None:
            r.set_scene(update.scene, changed=parts)
            if r.edge_threshold != 0.0:
                r.set_edge_threshold(0.0)
        self._shown_facets = np.asarray(update.scene.clusters.facet).copy()
        st.scene = update.scene
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
            self._push_selection()
            st.hover = ("none", -1)
            self._last_hover_pos = None
        if not st.camera.fitted and st.camera.viewport != (1, 1):
            self.fit_all(animate=False)
        version = self.state.scene_version
        self.textures.drop(lambda k: k[0] == "pack" and k[1] != version)
        self.touch()
        if (
            new_snapshot
            and self.follow_screenshots
            and self.screenshot_dir is not None
            and st.headless
            and st.follow
        ):
            self._shot_when_settled = True  # each new snapshot, once its view has settled
        if new_snapshot and st.follow and self.follower is not None and st.step is not None:
            newer = [k for k in self.follower.loaded if k > st.step]
            if newer and not self.edit_pending:
                self.open_step(max(newer))  # arrived while this one was being laid out

    def _sync_groups(self) -> None:
        st = self.state
        if st.snapshot is None:
            return
        edits = st.edits
        for g in st.snapshot.graph.groups:
            method, k = edits.clustering.get(g.name, ("kmeans", None))
            gs = st.groups.setdefault(g.name, GroupSetting())
            gs.method, gs.k = method, int(k or 0)
            gs.expanded = g.name in edits.expanded

    def _fix_selection(self) -> None:
        """Keep selections by key; a vanished cluster falls back to the selected neuron's."""
        st = self.state
        sel = st.selection
        ni = st.neuron_index(sel.neuron)
        if sel.neuron is not None and ni is None:
            sel.neuron = None
        if st.cluster_index(sel.cluster) is None:
            sel.cluster = None
            if ni is not None and st.scene is not None:
                sel.cluster = int(st.scene.clusters.id[st.scene.neurons.cluster[ni]])

    def _push_selection(self) -> None:
        st = self.state
        if self.renderer is None or st.scene is None:
            return
        sel = st.selection
        ni = st.neuron_index(sel.neuron)
        ci = st.cluster_index(sel.cluster)
        self.renderer.set_selection(
            classes=sorted(sel.classes),
            neurons=None if ni is None else [ni],
            clusters=None if ci is None else [ci],
            quantile=sel.quantile,
        )
        self.touch()

    # ------------------------------------------------------------------ follow mode
    def _start_follower(self) -> None:
        from ..run.follow import Follower

        if self.follower is None:
            self.follower = Follower(self.state.run_dir, interval=1.0, prepare=self._prepare_new)
            self.follower.start()

    def _prepare_new(self, snap: Any) -> Any:
        """On the follower thread: lay out a new snapshot if it is the newest and we follow."""
        st = self.state
        if not st.follow or st.step is None or snap.step is None or snap.step <= st.step:
            return None  # not newer than what is shown (or the first open is still running)
        run = self.follower.run if self.follower is not None else None
        steps = run.steps() if run is not None else []
        if steps and snap.step != max(steps):
            return None
        return self.session.prepare(snap)

    def _arrived(self, snap: Any, prepared: Any) -> None:
        st = self.state
        if snap.step is not None and snap.step not in st.steps:
            st.steps = sorted({*st.steps, int(snap.step)})
        if st.step is None and self.edit_pending:
            return  # the first open shows the latest; `apply` catches up if this one is newer
        newest = snap.step is not None and snap.step >= max(st.steps)
        if st.follow and newest and snap.step != st.step:
            self._submit_edit(
                f"show step {snap.step}",
                lambda: self.session.open(snapshot=snap, prepared=prepared),
            )

    def set_follow(self, follow: bool) -> None:
        """Switch follow mode on (start the follower, jump to the newest) or off."""
        st = self.state
        st.follow = bool(follow)
        if st.follow:
            self._start_follower()
            if self.follower is not None and self.follower.run is not None:
                steps = self.follower.run.steps()
                if steps and steps[-1] != st.step:
                    self.open_step(steps[-1])

    # ------------------------------------------------------------------ commands
    def open_step(self, step: int) -> None:
        """Show snapshot ``step`` (laid out in the background)."""
        if step == self.state.step:
            return
        self._submit_edit(f"open step {step}", lambda: self.session.open(int(step)))

    def refresh_steps(self) -> None:
        """Re-read the run's list of snapshots (in the background)."""
        assert self.worker is not None
        self.worker.submit("list snapshots", lambda: self.session._run().steps())

    def move_neuron(self, key: NeuronKey, to: int | None) -> None:
        """Move neuron ``key`` to cluster id ``to`` (same row) or into a new cluster."""
        unit, ch = key
        self._submit_edit(
            f"move neuron {ch} of {unit}", lambda: self.session.move(unit, int(ch), to)
        )

    def set_clustering(self, group: str, method: str, k: int | None) -> None:
        """Re-cluster one layer group (K-Means with k, None = silhouette; or MeanShift)."""
        self._submit_edit(
            f"re-cluster {group}", lambda: self.session.set_clustering(group, method, k)
        )

    def set_expanded(self, group: str, expanded: bool) -> None:
        """Expand a group into one row per layer, or collapse it."""
        gs = self.state.groups.get(group)
        if gs is not None:
            gs.expanded = bool(expanded)
        verb = "expand" if expanded else "collapse"
        self._submit_edit(f"{verb} {group}", lambda: self.session.set_expanded(group, expanded))

    def preview_threshold(self, fraction: float) -> None:
        """While the slider moves: hide edges at once (no upload); the re-bundling follows."""
        st = self.state
        st.edge_fraction = float(fraction)
        cur = float(st.edits.edge_fraction)
        if self.renderer is not None and cur > 0:
            self.renderer.set_edge_quantile(min(fraction / cur, 1.0))
            self.touch()

    def set_threshold(self, fraction: float) -> None:
        """Keep the top ``fraction`` of the cluster edges per pair of rows (re-bundled)."""
        self.state.edge_fraction = float(fraction)
        self._submit_edit(
            f"edges: top {fraction:.0%}", lambda: self.session.set_threshold(fraction)
        )

    def set_facet(self, facet: int, cluster_ids: list[int] | None = None) -> None:
        """Switch facets of the given clusters (ids) or of all; shown at once."""
        st = self.state
        if cluster_ids is None:
            st.facet = int(facet)
        if self.renderer is not None and st.scene is not None:
            shown = (
                self._shown_facets
                if self._shown_facets is not None
                else np.asarray(st.scene.clusters.facet).copy()
            )
            if cluster_ids is None:
                shown[:] = facet
                self.renderer.set_facet(int(facet))
            else:
                idx = [st.cluster_index(c) for c in cluster_ids]
                idx = [i for i in idx if i is not None]
                shown[idx] = facet
                self.renderer.set_facet(int(facet), idx)
            self._shown_facets = shown
            self.touch()
        self._submit_edit("switch facet", lambda: self.session.set_facet(facet, cluster_ids))

    def undo(self) -> None:
        """Undo the last clustering edit (Ctrl+Z)."""
        h = self.state.history
        if not h.undo or self.edit_pending:
            return
        e = h.undo[-1]
        self._submit_edit(
            f"undo {e.label}",
            lambda: self.session.restore(e.before, f"undo {e.label}"),
            lambda: h.redo.append(h.undo.pop()),  # only once the layout is back
        )

    def redo(self) -> None:
        """Redo the last undone edit (Ctrl+Shift+Z)."""
        h = self.state.history
        if not h.redo or self.edit_pending:
            return
        e = h.redo[-1]
        self._submit_edit(
            f"redo {e.label}",
            lambda: self.session.restore(e.after, f"redo {e.label}"),
            lambda: h.undo.append(h.redo.pop()),
        )

    def reset_clustering(self) -> None:
        """Drop the edited clustering; cluster every group afresh (undoable)."""
        self._submit_edit("reset clustering", self.session.reset)

    def select_classes(self, classes: set[int], quantile: float | None = None) -> None:
        """Highlight the neurons most activated by ``classes``; dim the others."""
        sel = self.state.selection
        sel.classes = set(int(c) for c in classes)
        if quantile is not None:
            sel.quantile = float(quantile)
        self._push_selection()

    def select_neuron(self, key: NeuronKey | None, keep_cluster: bool = False) -> None:
        """Show a neuron in the neuron inspector (its cluster in the cluster inspector)."""
        st = self.state
        st.selection.neuron = key
        i = st.neuron_index(key)
        if i is not None and st.scene is not None and not keep_cluster:
            st.selection.cluster = int(st.scene.clusters.id[st.scene.neurons.cluster[i]])
        self._push_selection()

    def select_cluster(self, cid: int | None) -> None:
        """Show a cluster in the cluster inspector."""
        self.state.selection.cluster = cid
        self._push_selection()

    def set_theme(self, name: str) -> None:
        """Switch the colour theme of the view and of the panels (uniforms only)."""
        self.state.theme = name
        if self.renderer is not None:
            self.renderer.set_theme(name)
        self._apply_imgui_theme()
        self.textures.clear()
        self.touch()

    def _apply_imgui_theme(self) -> None:
        """Panel colours: the same sizes and spacing in both themes, only colours differ."""
        try:
            hello_imgui.apply_theme(hello_imgui.ImGuiTheme_.darcula_darker)
        except Exception:  # noqa: BLE001 - no ImGui context yet (before the runner)
            return
        style = imgui.get_style()
        style.window_rounding = 0.0
        style.frame_rounding = 3.0
        style.tab_rounding = 3.0
        if self.state.theme == "light":
            imgui.style_colors_light(style)
            col = imgui.Col_
            style.set_color_(col.frame_bg, imgui.ImVec4(0.86, 0.87, 0.89, 1.0))
            style.set_color_(col.frame_bg_hovered, imgui.ImVec4(0.80, 0.84, 0.92, 1.0))
            style.set_color_(col.window_bg, imgui.ImVec4(0.96, 0.96, 0.96, 1.0))
            style.frame_border_size = 1.0
        else:
            style.frame_border_size = 0.0

    def fit_all(self, animate: bool = True) -> None:
        """Show the whole network."""
        st = self.state
        if st.scene is None or st.camera.viewport == (1, 1):
            return
        cam = Camera().fit(st.scene.bounds, st.camera.viewport, margin=0.03)
        if animate and st.camera.fitted:
            st.camera.go(cam)
        else:
            st.camera.jump(cam)
        st.camera.fitted = True
        self.touch()

    def zoom_to_cluster(self, ci: int) -> None:
        """Frame cluster ``ci`` (animated)."""
        st = self.state
        if st.scene is None:
            return
        x, y, w, h = (float(v) for v in st.scene.clusters.rect[ci])
        st.camera.go(st.camera.current.zoom_to_rect((x, y, x + w, y + h), st.camera.viewport, 0.12))
        self.touch()

    def request_screenshot(self, path: str | Path | None = None) -> None:
        """Save a screenshot of this frame (to ``path``, default in ``screenshot_dir``)."""
        self._want_screenshot = True
        self._shot_path = path
        self._shot_step = None

    def screenshot_when_settled(
        self, path: str | Path | None = None, step: int | None = None
    ) -> None:
        """Save a screenshot once the view has settled (layout, flags, plots and neuron edges
        loaded, camera still); with ``step``, only if that step is still the one shown then.
        A later request replaces an earlier one not yet taken."""
        self._shot_when_settled = True
        self._shot_path = path
        self._shot_step = step

    def save_screenshot(
        self, path: str | Path | None = None, pixels: np.ndarray | None = None
    ) -> Path | None:
        """Write a frame of the window as a PNG; returns its path.

        ``pixels`` from :meth:`_window_pixels` (a screenshot while the viewer runs); without,
        the last frame the runner kept when it stopped.
        """
        from PIL import Image

        img = pixels if pixels is not None else hello_imgui.final_app_window_screenshot()
        if img is None or img.size == 0:
            return None
        if path is None:
            folder = self.screenshot_dir or (self.state.run_dir / "screenshots")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"cnnvis-step{self.state.step}-{time.strftime('%Y%m%d-%H%M%S')}.png"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img[..., :3])).save(path)
        self.screenshots.append(path)
        self.state.jobs.message = f"screenshot saved: {path}"
        return path

    def render_command(self, out: str | Path = "view.png") -> str:
        """The ``cnnvis render`` command line that draws the network view as it is now: same
        snapshot, layout (the edits saved in ``RUN/layout.json``), edge fraction, camera,
        size, theme, class selection and neuron edges: it draws the pixels the view shows
        (tested).  One exception: a run followed or browsed *without* edits keeps the cluster
        colours, row and column orders of the snapshots shown before, which a fresh render
        does not know; any edit (e.g. a move) pins them in ``RUN/layout.json``."""
        import shlex

        st = self.state
        cam = st.camera.target
        w, h = st.camera.viewport
        args = ["cnnvis", "render", str(st.run_dir), "-o", str(out)]
        if st.step is not None:
            args += ["--step", str(st.step)]
        camera = ",".join(repr(float(v)) for v in (*cam.center, cam.zoom))
        args += ["--size", f"{w}x{h}", f"--camera={camera}"]  # "=": x may be negative
        args += ["--edges", f"{st.edge_fraction:g}", "--theme", st.theme, "--msaa", str(self.msaa)]
        if st.selection.classes and st.snapshot is not None:
            names = st.snapshot.classes
            args += ["--classes", ",".join(names[c] for c in sorted(st.selection.classes))]
        if not st.neuron_edges:
            args.append("--no-neuron-edges")
        return shlex.join(args)

    def copy_render_command(self) -> str:
        """Put :meth:`render_command` on the clipboard (and in the status bar)."""
        cmd = self.render_command()
        imgui.set_clipboard_text(cmd)
        self.state.jobs.message = f"copied: {cmd}"
        return cmd

    # ------------------------------------------------------------------ view: render + mouse
    def touch(self) -> None:
        """Something shown changed: redraw the view on the next frame."""
        self._render_version += 1

    def render_view(self, size: tuple[int, int]) -> None:
        """Draw the scene into the view target when anything shown changed."""
        st = self.state
        r, target = self.renderer, self.target
        if r is None or target is None:
            return
        if target.ensure(size, park=r.park):
            self._drawn_key = None
        if st.camera.viewport != size:
            old = st.camera.viewport
            st.camera.viewport = size
            if st.scene is not None and (not st.camera.fitted or old == (1, 1)):
                self.fit_all(animate=False)
        moving = st.camera.animating or st.camera.panning
        key = (st.camera.current, size, self._render_version, st.scene_version)
        if key == self._drawn_key:
            return
        t = time.perf_counter()
        r.draw(st.camera.current, size, target=target.fbo, moving=moving)
        self.ctx.screen.use()
        st.render_ms.append((time.perf_counter() - t) * 1000.0)
        self._drawn_key = key

    def pick(self, x: float, y: float) -> tuple[str, int]:
        """What the view shows at pixel ``(x, y)``."""
        st = self.state
        if self.renderer is None or st.scene is None or self._drawn_key is None:
            return ("none", -1)
        res = self.renderer.pick(x, y, st.camera.current, st.camera.viewport)
        self.ctx.screen.use()
        return res

    def set_hover(self, hover: tuple[str, int]) -> None:
        """Remember what the pointer is over.

        The outline is drawn by ImGui over the view (:meth:`hover_rect`), not by the renderer:
        a hover change then costs no redraw of the scene (a full redraw is tens of ms on
        software GL).
        """
        self.state.hover = hover

    def hover_rect(self) -> tuple[float, float, float, float] | None:
        """Screen rectangle ``(x0, y0, x1, y1)`` of the hovered neuron or cluster."""
        st = self.state
        s = st.scene
        kind, i = st.hover
        if s is None or i < 0:
            return None
        if kind == "neuron" and i < len(s.neurons.cluster):
            ci = int(s.neurons.cluster[i])
            if int(s.clusters.facet[ci]):  # the neuron's row of the activation matrix
                x, y, w, h = (float(v) for v in s.clusters.matrix_rect[ci])
                n = max(int(s.clusters.size[ci]), 1)
                rh = h / n
                x, y, w, h = x, y + rh * int(s.neurons.matrix_row[i]), w, rh
            else:
                x, y, w, h = (float(v) for v in s.neurons.rect[i])
        elif kind == "cluster" and i < len(s.clusters.id):
            x, y, w, h = (float(v) for v in s.clusters.rect[i])
        else:
            return None
        x0, y0 = self.screen_pos(x, y)
        x1, y1 = self.screen_pos(x + w, y + h)
        return (x0, y0, x1, y1)

    def hover_at(self, x: float, y: float) -> None:
        """Pick under the pointer when it moved or the view changed (one 1-pixel ID pass)."""
        st = self.state
        if st.camera.animating:
            return  # picking a moving view is wasted work; the pointer is re-picked when it stops
        key = (x, y, st.camera.current, st.scene_version)
        if key == self._last_hover_pos:
            return
        self._last_hover_pos = key  # type: ignore[assignment]
        self.set_hover(self.pick(x, y))

    def hover_text(self) -> list[str]:
        """Tooltip lines for what the pointer is over."""
        st = self.state
        s = st.scene
        kind, i = st.hover
        if s is None or i < 0:
            return []
        if kind == "neuron" and i < len(s.neurons.cluster):
            unit = s.units[int(s.neurons.unit[i])]
            ch = int(s.neurons.index[i])
            ci = int(s.neurons.cluster[i])
            lines = [f"neuron {ch} · layer {unit}", f"cluster {st.cluster_name(ci)}"]
            if st.snapshot is not None:
                a = self.class_means(unit)[ch]
                top = np.argsort(-a)[:3]
                names = st.snapshot.classes
                lines.append("top classes: " + ", ".join(f"{names[k]} {a[k]:.3g}" for k in top))
            lines.append("drag onto another cluster to move it")
            return lines
        if kind == "cluster" and i < len(s.clusters.id):
            row = s.rows[int(s.clusters.row[i])]
            return [
                f"cluster {st.cluster_name(i)} · {int(s.clusters.size[i])} neurons",
                f"layer {row.unit} · packing density {float(s.clusters.density[i]):.2f}",
                "double-click to zoom",
            ]
        if kind == "bundle" and i < len(s.bundles.pos):
            b = s.bundles
            sign = "excitatory" if int(b.sign[i]) > 0 else "inhibitory"
            return [f"bundle ({sign})", f"{int(b.n_in[i])} inputs × {int(b.n_out[i])} outputs"]
        if kind == "edge" and i < len(s.edges.weight):
            e = s.edges
            parts = []
            if int(e.src[i]) >= 0:
                parts.append(f"from {st.cluster_name(int(e.src[i]))}")
            if int(e.dst[i]) >= 0:
                parts.append(f"to {st.cluster_name(int(e.dst[i]))}")
            return [f"edge w = {float(e.weight[i]):+.4f}", " ".join(parts) or "bundled piece"]
        return []

    def screen_pos(self, scene_x: float, scene_y: float) -> tuple[float, float]:
        """Window (screen) coordinates of a scene point in the network view."""
        st = self.state
        x, y = st.camera.current.scene_to_screen(scene_x, scene_y, st.camera.viewport)
        return (self.canvas_origin[0] + x, self.canvas_origin[1] + y)

    def press_at(self, x: float, y: float) -> None:
        """Mouse down in the view: a press on a neuron may start a drag."""
        st = self.state
        kind, i = self.pick(x, y)
        st.drag = DragState(st.neuron_key(i), i, (x, y)) if kind == "neuron" else None

    def click_at(self, x: float, y: float) -> None:
        """Select what is under the pointer (nothing: clear the selection)."""
        st = self.state
        kind, i = self.pick(x, y)
        if kind == "neuron":
            self.select_neuron(st.neuron_key(i))
        elif kind == "cluster":
            st.selection.neuron = None
            self.select_cluster(int(st.scene.clusters.id[i]))
        elif kind == "none":
            st.selection.neuron = None
            self.select_cluster(None)

    def double_click_at(self, x: float, y: float) -> None:
        """Zoom to the cluster under the pointer, or fit all on empty space."""
        st = self.state
        kind, i = self.pick(x, y)
        if kind == "neuron":
            self.zoom_to_cluster(int(st.scene.neurons.cluster[i]))
        elif kind == "cluster":
            self.zoom_to_cluster(i)
        elif kind == "none":
            self.fit_all()

    def drop_target(self, key: NeuronKey, x: float, y: float) -> tuple[int | None | str, str]:
        """Where a neuron dropped at ``(x, y)`` would go: ``(cluster id | None | "", text)``.

        ``None`` means a new cluster, ``""`` no valid target.
        """
        st = self.state
        s = st.scene
        i = st.neuron_index(key)
        if s is None or i is None:
            return "", "nothing"
        src = int(s.neurons.cluster[i])
        row = int(s.clusters.row[src])
        kind, j = self.pick(x, y)
        tgt = None
        if kind == "neuron":
            tgt = int(s.neurons.cluster[j])
        elif kind == "cluster":
            tgt = j
        if tgt is not None:
            if int(s.clusters.row[tgt]) != row:
                return "", "another layer: neurons stay in their layer"
            if tgt == src:
                return "", "its own cluster (no change)"
            return int(s.clusters.id[tgt]), f"cluster {st.cluster_name(tgt)}"
        _, sy = st.camera.current.screen_to_scene(x, y, st.camera.viewport)
        r = s.rows[row]
        if r.y <= sy <= r.y + r.height:
            if int(s.clusters.size[src]) <= 1:
                return "", "a new cluster (it is alone already)"
            return None, "a new cluster"
        return "", "outside its layer row"

    def drop_neuron(self, key: NeuronKey, x: float, y: float) -> None:
        """Finish a drag: move the neuron to the cluster under ``(x, y)`` or a new one."""
        to, text = self.drop_target(key, x, y)
        if to == "":
            self.state.jobs.message = f"not moved: {text}"
            return
        self.move_neuron(key, to)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ inspector data
    def class_means(self, unit: str) -> np.ndarray:
        """Raw class means ``A`` (neurons × classes) of a unit, cached per snapshot."""
        st = self.state
        key = (st.step, unit)
        a = self._class_means.get(key)
        if a is None:
            assert st.snapshot is not None
            a = np.asarray(st.snapshot.activations(unit), dtype=np.float32)
            self._class_means[key] = a
        return a

    def _row_spec(self, row: int) -> RowSpec:
        r = self.state.scene.rows[row]  # type: ignore[union-attr]
        return RowSpec(r.name, r.kind, r.group, r.unit)

    def _row_weights(self, upper: int, lower: int) -> np.ndarray | None:
        st = self.state
        key = (st.step, st.scene.rows[upper].name, st.scene.rows[lower].name)  # type: ignore[union-attr]
        if key not in self._weights:
            W = row_weights(st.snapshot, self._row_spec(upper), self._row_spec(lower))  # type: ignore[arg-type]
            self._weights[key] = None if W is None else np.asarray(W, dtype=np.float32)
        return self._weights[key]

    def neuron_edges(
        self, i: int, top: int = 6
    ) -> tuple[list[tuple[NeuronKey, float]] | None, list[tuple[NeuronKey, float]] | None]:
        """Strongest incoming and outgoing neuron weights of ``scene.neurons[i]``."""
        st = self.state
        s = st.scene
        assert s is not None
        row = int(s.clusters.row[s.neurons.cluster[i]])
        rows = [k for k, r in enumerate(s.rows) if r.kind != ROW_BETWEEN]
        p = rows.index(row)
        ch = int(s.neurons.index[i])
        out: list[list[tuple[NeuronKey, float]] | None] = []
        for other, incoming in ((p - 1, True), (p + 1, False)):
            if not 0 <= other < len(rows):
                out.append(None)
                continue
            up, lo = (rows[other], row) if incoming else (row, rows[other])
            W = self._row_weights(up, lo)
            if W is None:
                out.append(None)
                continue
            vec = W[ch] if incoming else W[:, ch]
            order = np.argsort(-np.abs(vec))[:top]
            unit = s.rows[rows[other]].unit
            out.append([((unit, int(k)), float(vec[k])) for k in order])
        return out[0], out[1]

    # ------------------------------------------------------------------ debugging view (R5)
    def _loaders(self) -> tuple[Loader, ...]:
        return (
            self.flags_loader,
            self.training_loader,
            self.compare_loader,
            self.neuron_edges_loader,
        )

    @property
    def debug_loading(self) -> bool:
        """Whether a load of the debugging view (flags, curves, a difference, …) is running."""
        return any(ld.in_flight is not None for ld in self._loaders())

    def set_neuron_edges(self, on: bool) -> None:
        """Show neuron-level edges when zoomed in (or only cluster edges)."""
        self.state.neuron_edges = bool(on)
        if not on and self.renderer is not None:
            self.renderer.set_neuron_edges(None)
            self.neuron_edges_loader.clear()
        self.touch()

    def training_units(self) -> list[tuple[str, str]]:
        """``(unit, group)`` of every layer, in network order."""
        snap = self.state.snapshot
        if snap is None:
            return []
        g = snap.graph
        return [(u.name, g.groups[u.group].name) for u in g.units]

    def set_compare(self, other: int | None) -> None:
        """Compare mode: the activation matrices show ``current − other`` (``None``: off).

        Turning it on shows every cluster's matrix facet (where the difference is drawn).
        """
        st = self.state
        was = st.debug.compare
        st.debug.compare = None if other is None else int(other)
        if other is not None and was is None and st.facet != 1 and st.scene is not None:
            self.set_facet(1)
        self.compare_loader.tick(time.perf_counter())

    def zoom_to_row(self, row: int) -> None:
        """Frame a scene row (animated): its clusters, with the row's height."""
        st = self.state
        s = st.scene
        if s is None or not 0 <= row < len(s.rows):
            return
        r = s.rows[row]
        idx = np.flatnonzero(s.clusters.row == row)
        if len(idx):
            rect = s.clusters.rect[idx]
            x0, x1 = float(rect[:, 0].min()), float((rect[:, 0] + rect[:, 2]).max())
        else:
            x0, x1 = float(s.bounds[0]), float(s.bounds[2])
        for lab in s.labels:  # the row's name, left of its clusters
            if lab.kind == "row" and r.y <= lab.y <= r.y + r.height:
                x0 = min(x0, lab.left)
        pad = max(r.height * 0.15, 4.0)
        st.camera.go(
            st.camera.current.zoom_to_rect(
                (x0 - pad, r.y - pad, x1 + pad * 6, r.y + r.height + pad), st.camera.viewport, 0.04
            )
        )
        self.touch()

    def flag_row(self, flag: Any) -> int | None:
        """The scene row a flag is drawn on."""
        from .training import flag_rows

        st = self.state
        if st.scene is None or st.snapshot is None:
            return None
        names = [g.name for g in st.snapshot.graph.groups]
        rows = flag_rows(st.scene, names, [flag])
        return next(iter(rows), None)

    def zoom_to_flag(self, flag: Any) -> None:
        """Zoom the network view to the row of a flag."""
        row = self.flag_row(flag)
        if row is not None:
            self.zoom_to_row(row)

    def nearest_step(self, x: float) -> int | None:
        """The snapshot step nearest to ``x`` (a plot's step axis)."""
        steps = self.state.steps
        if not steps:
            return None
        return int(min(steps, key=lambda s: abs(s - x)))

    # ------------------------------------------------------------------ pictures
    def _picture(self, key: tuple, make: Callable[[], np.ndarray]) -> Any:
        return self.textures.get(key, make, self.images.submit if self.images else None)

    def _finish_picture(self, done: Done) -> None:
        if done.error is not None:
            self.job_errors.append(f"{done.label} failed: {done.error}")
            print(done.trace, file=sys.stderr)
            return
        if isinstance(done.result[0], Loader):
            loader, key, result = done.result
            loader.finish(key, result)
            return
        key, img = done.result
        self.textures.put(self.ctx, key, img)

    def _background(self) -> tuple[int, int, int]:
        return (236, 237, 240) if self.state.theme == "light" else (40, 42, 48)

    def topk_picture(self, key: NeuronKey) -> Any:
        """The neuron's top-k patches as a texture (``None`` while it is being made)."""
        st = self.state
        snap = st.snapshot
        if snap is None:
            return None
        unit, ch = key
        bg = self._background()
        return self._picture(
            ("topk", st.step, unit, int(ch), bg),
            lambda: topk_grid(
                snap, unit, int(ch), k=int(snap.meta.get("k", 9)), size=64, background=bg
            ),
        )

    def packing_picture(self, ci: int) -> Any:
        """The cluster's learned-features packing as a texture (``None`` while being made)."""
        st = self.state
        scene = st.scene
        src: PatchCache | None = getattr(self.renderer, "snapshot", None)
        if scene is None or src is None:
            return None
        cid = int(scene.clusters.id[ci])
        bg = self._background()
        return self._picture(
            ("pack", st.scene_version, cid, bg),
            lambda: packing_image(src, scene, ci, background=bg),
        )


# ---------------------------------------------------------------------------- runner


def runner_params(app: App, size: tuple[int, int] = (1600, 1000)) -> tuple[Any, Any]:
    """hello_imgui ``RunnerParams`` and immapp ``AddOnsParams`` of the viewer."""
    rp = hello_imgui.RunnerParams()
    name = app.state.run_dir.name or str(app.state.run_dir)
    rp.app_window_params.window_title = f"CNNVis — {name}"
    rp.app_window_params.window_geometry.size = (int(size[0]), int(size[1]))
    rp.app_window_params.restore_previous_geometry = False
    wp = rp.imgui_window_params
    wp.default_imgui_window_type = hello_imgui.DefaultImGuiWindowType.provide_full_screen_dock_space
    wp.enable_viewports = False
    wp.show_menu_bar = True
    wp.show_menu_app = False
    wp.show_menu_view_themes = False
    wp.remember_theme = False
    wp.show_status_bar = True
    wp.show_status_fps = False
    wp.remember_status_bar_settings = False
    rp.renderer_backend_options.open_gl_options.anti_aliasing_samples = int(app.msaa)
    rp.fps_idling.fps_idle = 10.0
    rp.fps_idling.enable_idling = not app.state.headless
    rp.ini_folder_type = hello_imgui.IniFolderType.app_user_config_folder
    rp.ini_filename = "cnnvis_gl_viewer.ini"
    rp.ini_disable = app.state.headless

    dirs = {
        "left": imgui.Dir.left,
        "right": imgui.Dir.right,
        "up": imgui.Dir.up,
        "down": imgui.Dir.down,
    }
    rp.docking_params.docking_splits = [
        hello_imgui.DockingSplit(s.initial, s.new, dirs[s.direction], s.ratio) for s in DOCK_SPLITS
    ]
    windows = []
    for p in PANELS:
        draw = app.guarded(p.title, lambda draw=p.draw: draw(app))
        dw = hello_imgui.DockableWindow(p.title, p.space, draw)
        dw.call_begin_end = not p.own_begin
        dw.can_be_closed = p.closable
        dw.focus_window_at_next_frame = p.focus
        windows.append(dw)
    rp.docking_params.dockable_windows = windows
    rp.docking_params.layout_condition = hello_imgui.DockingLayoutCondition.application_start

    rp.callbacks.post_init = app.post_init
    rp.callbacks.before_exit = app.before_exit
    rp.callbacks.before_swap = app.before_swap
    rp.callbacks.after_swap = app.after_swap
    rp.callbacks.show_gui = app.guarded("frame", app.begin_frame)
    rp.callbacks.show_status = app.guarded("status bar", lambda: status_bar(app))
    rp.callbacks.show_menus = app.guarded("menus", lambda: menus(app))
    rp.callbacks.default_icon_font = hello_imgui.DefaultIconFont.font_awesome6
    addons = immapp.AddOnsParams(with_implot=True)
    return rp, addons


def run_app(
    run_dir: str | Path,
    follow: bool = False,
    headless: bool | None = None,
    size: tuple[int, int] = (1600, 1000),
    msaa: int = 0,
    screenshot_dir: str | Path | None = None,
    max_frames: int | None = None,
    theme: str = "dark",
    on_frame: Callable[[App], None] | None = None,
) -> App:
    """Open the viewer on a run directory; returns the app when the window closes.

    Parameters
    ----------
    run_dir
        The run directory (``cnnvis analyze … -o RUN`` or a Recorder's).
    follow
        Follow the run as it grows (``cnnvis view RUN --follow``).
    headless
        ``None``: headless when there is no display (no ``DISPLAY`` / ``WAYLAND_DISPLAY``).
        Headless runs GLFW's null platform with an EGL context (Mesa llvmpipe works).
    size
        Window size in pixels.
    msaa
        Multisampling of the window and of the renderer's cached edge layer (0 = off: the
        shaders anti-alias; 8× doubles to triples the frame time on software GL).
    screenshot_dir
        Where screenshots go; headless runs save one on exit (default ``RUN/screenshots``).
    max_frames
        Stop after this many frames.  Headless without follow stops by itself once the
        view has settled.
    theme
        ``"dark"`` or ``"light"``.
    on_frame
        Called with the app at the start of every frame (on the GUI thread), e.g. to take
        screenshots (:meth:`App.screenshot_when_settled`) or to stop the loop.

    Raises
    ------
    SnapshotError
        ``run_dir`` is not a run directory or holds no snapshot (without ``follow``).
    """
    run_dir = Path(run_dir)
    if not follow:  # fail early, with the store's clear message, before any window opens
        from ..run.snapshot import open_run

        if not open_run(run_dir).steps():
            from ..errors import SnapshotError

            raise SnapshotError(f"run directory {run_dir} holds no snapshot yet (use --follow)")
    if headless is None:
        headless = not has_display()
    app = App(
        run_dir,
        follow=follow,
        headless=headless,
        msaa=msaa,
        screenshot_dir=screenshot_dir,
        max_frames=max_frames,
        theme=theme,
    )
    app.exit_when_settled = headless and not follow and max_frames is None and on_frame is None
    if on_frame is not None:
        app.on_frame.append(on_frame)
    if headless:
        init_headless()
        how = "following the run" if follow else "until the view has settled"
        if max_frames is not None:
            how = f"for {max_frames} frames"
        print(
            "cnnvis view: no display (DISPLAY / WAYLAND_DISPLAY unset) — running headless "
            f"(GLFW null platform + EGL) {how}; screenshots go to {app.screenshot_dir}",
            flush=True,
        )
    rp, addons = runner_params(app, size)

    def stop(*_: object) -> None:  # Ctrl+C: leave the loop cleanly (GL freed, threads stopped)
        hello_imgui.get_runner_params().app_shall_exit = True

    previous = None
    try:
        previous = signal.signal(signal.SIGINT, stop)
    except ValueError:  # not the main thread
        previous = None
    try:
        immapp.run(rp, addons)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if headless and app.screenshot_dir is not None and app.screenshot_on_exit:
        path = app.save_screenshot()
        if path is not None:
            print(f"cnnvis view: screenshot saved to {path}", flush=True)
    return app
