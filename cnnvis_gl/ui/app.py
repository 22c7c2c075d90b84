"""The viewer application: the hello_imgui runner's shell around the viewer's parts.

:class:`App` owns the GL objects (created in ``post_init``, freed in ``before_exit``), the
background workers and the parts, each in its own module:

* :attr:`App.state` — :class:`~cnnvis_gl.ui.state.AppState`, everything panels read;
* :attr:`App.actions` — :class:`~cnnvis_gl.ui.actions.Actions`, every command;
* :attr:`App.feed` — :class:`~cnnvis_gl.ui.feed.SceneFeed`, layout jobs and their results;
* :attr:`App.view` — :class:`~cnnvis_gl.ui.canvas.Canvas`, the network view's drawing and mouse;
* :attr:`App.inspect` — :class:`~cnnvis_gl.ui.inspect.Inspector`, inspector data and pictures;
* :attr:`App.shots` — :class:`~cnnvis_gl.ui.shots.Screenshots`;
* :attr:`App.loaders` — :class:`~cnnvis_gl.ui.loaders.Loaders`, the debugging view's loads;
* :attr:`App.bookmarks` — :class:`~cnnvis_gl.ui.bookmarks.Bookmarks`, saved views;
* :attr:`App.tours` — :class:`~cnnvis_gl.ui.tours.Tours`, the tour editor and present mode;
* :attr:`App.notes` — :class:`~cnnvis_gl.ui.notes.Notes`, the annotations;
* :attr:`App.other` — :class:`~cnnvis_gl.ui.other.OtherView`, a second run beside this one.

Panels (:mod:`.panels`, one module each) are functions of ``(state, actions)``.  Each frame
starts with :meth:`App.begin_frame`, which applies what the background threads finished (new
scenes, pictures, snapshots) — the UI never waits for them.

:func:`run_app` starts it; :func:`runner_params` builds the hello_imgui parameters (tests use
them with the ImGui Test Engine).
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgui_bundle import hello_imgui, imgui, immapp

from ..layout import LayoutOptions
from .actions import Actions, apply_imgui_theme
from .bookmarks import Bookmarks
from .canvas import Canvas
from .edits import LAYOUT_FILE
from .feed import SceneFeed
from .headless import has_display, init_headless
from .inspect import Inspector
from .jobs import LayoutSession, Worker
from .loaders import Loaders
from .notes import Notes
from .other import OtherView
from .panels import DOCK_SPLITS, PANELS, RUNS, SIDE_BY_SIDE, menus, present_view, status_bar
from .shots import Screenshots
from .state import AppState
from .tours import Tours

__all__ = ["App", "run_app", "runner_params"]

#: Seconds between frames while only a layout runs in the background and nothing moves (the
#: window wakes at once when the layout ends, and at full rate as soon as the mouse moves).
BACKGROUND_FRAME = 0.1


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
    compare
        A second run to compare with (the Two runs panel).
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
        compare: str | Path | None = None,
    ) -> None:
        self.state = AppState(run_dir=Path(run_dir), follow=follow, headless=headless, theme=theme)
        self.msaa = int(msaa)
        self.max_frames = max_frames
        if screenshot_dir is None and headless:
            screenshot_dir = Path(run_dir) / "screenshots"
        self.session = LayoutSession(run_dir, options, save=save_layout)
        self.worker: Worker | None = None  # layout jobs
        self.images: Worker | None = None  # pictures and the debugging view's loads
        self.ctx: Any = None
        self.renderer: Any = None
        self.target: Any = None
        self.frozen: Any = None  # a copy of the view to cross-fade from (present mode)
        self.exit_when_settled = False  # headless `cnnvis view` without follow: one picture
        self.frame_period = 1.0 / 60.0  # frame-rate cap while background work runs (and headless)
        self.idle_period = 0.5  # headless and idle (see `_pace`)
        self.panel_errors: list[str] = []  # exceptions raised by panels (each logged once)
        self.job_errors: list[str] = []  # background jobs that failed (layout, loads, pictures)
        self.on_frame: list[Callable[[App], None]] = []  # test hooks, called each frame
        self.actions = Actions(self)
        self.feed = SceneFeed(self)
        self.view = Canvas(self)
        self.inspect = Inspector(self)
        self.shots = Screenshots(self, screenshot_dir)
        self.loaders = Loaders(self)
        self.bookmarks = Bookmarks(self)
        self.tours = Tours(self)
        self.notes = Notes(self)
        self.other = OtherView(self)
        self.other.want = None if compare is None else Path(compare)
        self._settled_frames = 0
        self._last_time = time.perf_counter()

    @property
    def follower(self) -> Any:
        """The follower of the run (``None`` unless following)."""
        return self.feed.follower

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
        self.frozen = ViewTarget(self.ctx)
        self.session.patch_size = self.renderer.atlas.patch_size
        apply_imgui_theme(self.state.theme)
        self.worker = Worker("cnnvis-layout")
        self.images = Worker("cnnvis-pictures")
        if self.session.load_error:
            self.state.jobs.error = f"{LAYOUT_FILE} ignored: {self.session.load_error}"
        self.state.jobs.message = "Laying out the latest snapshot …"
        self.feed.open_when_sized = True  # once the canvas has a size, laid out for it
        self.actions.refresh_steps()  # the timeline, the Training panel and compare need them
        self.bookmarks.load()
        self.tours.load()
        self.notes.load()
        if self.other.want is not None:
            self.other.open(self.other.want)
        if self.state.follow:
            self.feed.start_follower()

    def before_exit(self) -> None:
        """Stop the threads, free every GL object (the context is still current here)."""
        self.feed.stop_follower()
        for w in (self.worker, self.images):
            if w is not None:
                w.stop()
        self.inspect.textures.clear()
        self.other.release()
        if self.renderer is not None:
            self.renderer.park()
        if self.target is not None:
            self.target.release()
        if self.frozen is not None:
            self.frozen.release()
        if self.renderer is not None:
            self.renderer.release()
        self.renderer = None
        self.target = None
        self.frozen = None

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
        if st.frames:
            st.frame_ms.append(dt * 1000.0)
        st.frames += 1
        for worker in (self.worker, self.images):  # each job brings its handler (`then`)
            for done in worker.poll() if worker is not None else ():
                if done.then is not None:
                    done.then(done)
        self.feed.poll_follower()
        self.feed.fit_rows_to_canvas(now)
        self.feed.tick(now)
        st.jobs.pending = self.worker.pending if self.worker else []
        self.loaders.tick(now)
        st.camera.step(dt)
        self.tours.tick(dt)
        self._shortcuts()
        # idle at a low frame rate only when nothing moves and nothing runs
        presenting = st.tour.present is not None and st.tour.present.moving
        morphing = self.feed.morphing is not None
        busy = st.camera.animating or bool(st.jobs.pending) or st.drag is not None or presenting or morphing
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
        a 60 fps cap, and the UI still runs at 30-40 fps.  Before the first scene (nothing to
        see but "Loading") while a big network's draft is made, 2 fps, waking as soon as the
        draft is done (at 10 fps the draft came 40 % sooner than at the cap; fewer frames take
        less of its CPU, and waking on the job's end costs the first frame no wait).  Headless and idle, 2 fps; with a
        display, hello_imgui's idling and vsync pace the frames.
        """
        busy = bool(
            (self.worker is not None and self.worker.busy)
            or (self.images is not None and self.images.busy)
            or (self.follower is not None and self.follower.working)
        )
        st = self.state
        drafting = self.worker is not None and self.worker.running == "draft layout"
        if busy and st.scene is None and drafting:  # a big network, nothing to see yet: the
            self.worker.wait(0.5)  # draft gets the CPU, the window wakes when it is done
        elif busy and self.frame_period > 0 and self._only_layout_runs():
            self.worker.wait(BACKGROUND_FRAME)  # the layout's worker processes get the CPU
        elif busy:  # (at most 20 ms: a frame slowed by the GIL must not slow the next one)
            time.sleep(min(max(self.frame_period - elapsed, elapsed, 0.004), 0.02))
        elif st.headless:
            # nobody watches a headless window: idle at 2 fps, leaving the CPU (and the GIL)
            # to e.g. a training loop in this process (`cnnvis demo`: 10 fps cost it 30 %)
            moving = st.camera.animating or st.drag is not None or bool(st.jobs.pending) or self.feed.morphing is not None
            idle = not moving and self.frame_period > 0  # 0: no cap at all (the GUI tests)
            period = max(self.frame_period, self.idle_period) if idle else self.frame_period
            time.sleep(max(period - elapsed, 0.0))

    def _only_layout_runs(self) -> bool:
        """Only a layout runs in the background and nothing on screen moves: no pictures
        loading, no snapshot followed, the camera still, no drag, morph or tour, the mouse
        still and its buttons up.  (Frames then only wait for the layout: at a 60 fps cap the
        window took 1.5 of the 2 cores from the worker processes laying out a 100k-neuron
        network, 2.5x slower than alone.)"""
        st = self.state
        if (self.images is not None and self.images.busy) or (self.follower is not None and self.follower.working):
            return False
        if st.camera.animating or st.drag is not None or self.feed.morphing is not None:
            return False
        if st.tour.present is not None and st.tour.present.moving:
            return False
        io = imgui.get_io()
        return io.mouse_delta.x == 0 and io.mouse_delta.y == 0 and not any(io.mouse_down)

    def _shortcuts(self) -> None:
        if imgui.get_io().want_text_input:
            return
        ctrl_z = imgui.Key.mod_ctrl | imgui.Key.z
        if imgui.is_key_chord_pressed(ctrl_z):
            self.actions.undo()
        elif imgui.is_key_chord_pressed(ctrl_z | imgui.Key.mod_shift) or imgui.is_key_chord_pressed(
            imgui.Key.mod_ctrl | imgui.Key.y
        ):
            self.actions.redo()
        elif imgui.is_key_pressed(imgui.Key.f5, False) and self.state.tour.present is None:
            self.tours.present()

    @property
    def settled(self) -> bool:
        """Nothing left to load or move: layout, flags and curves loaded, view drawn, still."""
        st = self.state
        return (
            st.scene is not None
            and not st.jobs.pending
            and not st.camera.animating
            and self.feed.morphing is None
            and self.view.drawn_key is not None
            and not self.loaders.loading  # the Training panel and the flags have loaded
            and not self.other.loading  # a second run to compare with has been laid out
            and (st.debug.training is not None or len(st.steps) == 0)
        )

    def _maybe_exit(self) -> None:
        st = self.state
        rp = hello_imgui.get_runner_params()
        if self.max_frames is not None and st.frames >= self.max_frames:
            rp.app_shall_exit = True
        self._settled_frames = self._settled_frames + 1 if self.settled else 0
        self.shots.settled(self._settled_frames)
        if self.exit_when_settled:
            failed = st.scene is None and not self.feed.pending and st.jobs.error is not None
            if self._settled_frames >= 3 or failed:
                rp.app_shall_exit = True

    def before_swap(self) -> None:
        """The frame is complete in the back buffer: take a requested screenshot from it."""
        self.shots.take()

    def after_swap(self) -> None:
        """Headless, wait for the frame to be drawn: software GL would otherwise queue frames
        (nothing throttles a null window) and stall a later upload for all of them at once."""
        if self.state.headless and self.ctx is not None:
            self.ctx.finish()


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
    beside = app.other.want is not None  # a second run: its panel beside the network view
    splits = [*DOCK_SPLITS, SIDE_BY_SIDE] if beside else DOCK_SPLITS
    rp.docking_params.docking_splits = [
        hello_imgui.DockingSplit(s.initial, s.new, dirs[s.direction], s.ratio) for s in splits
    ]
    windows = []
    for p in PANELS:
        draw = app.guarded(p.title, lambda draw=p.draw: draw(app.state, app.actions))
        space = SIDE_BY_SIDE.new if beside and p.title == RUNS else p.space
        dw = hello_imgui.DockableWindow(p.title, space, draw)
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
    rp.callbacks.post_render_dockable_windows = app.guarded("present", lambda: present_view(app.state, app.actions))
    rp.callbacks.show_status = app.guarded("status bar", lambda: status_bar(app.state, app.actions))
    rp.callbacks.show_menus = app.guarded("menus", lambda: menus(app.state, app.actions))
    rp.callbacks.default_icon_font = hello_imgui.DefaultIconFont.font_awesome6
    addons = immapp.AddOnsParams(with_implot=True)
    return rp, addons


def _check_runs(run_dir: Path, follow: bool, compare: str | Path | None) -> None:
    """Fail early, with the store's clear message, before any window opens."""
    from ..errors import SnapshotError
    from ..run.snapshot import open_run

    if not follow and not open_run(run_dir).steps():
        raise SnapshotError(f"run directory {run_dir} holds no snapshot yet (use --follow)")
    if compare is not None:
        try:
            steps = open_run(compare).steps()
        except SnapshotError as e:
            raise SnapshotError(f"--compare: {e}") from None
        if not steps:
            raise SnapshotError(f"--compare: run directory {compare} holds no snapshot")


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
    compare: str | Path | None = None,
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
        screenshots (``app.shots.when_settled()``) or to stop the loop.
    compare
        A second run to open beside it (``cnnvis view RUN --compare RUN_B``).

    Raises
    ------
    SnapshotError
        ``run_dir`` is not a run directory or holds no snapshot (without ``follow``).
    """
    run_dir = Path(run_dir)
    _check_runs(run_dir, follow, compare)
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
        compare=compare,
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
            f"(GLFW null platform + EGL) {how}; screenshots go to {app.shots.folder}",
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
    if headless and app.shots.folder is not None and app.shots.on_exit:
        path = app.shots.save()
        if path is not None:
            print(f"cnnvis view: screenshot saved to {path}", flush=True)
    return app
