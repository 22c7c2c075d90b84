"""Pictures of the window and the ``cnnvis render`` command that redraws the view.

A screenshot is taken from the back buffer at the end of a frame (:meth:`Screenshots.take`,
called by the runner's ``before_swap``), either at once (:meth:`Screenshots.request`) or once
the view has settled (:meth:`Screenshots.when_settled`: layout, flags, plots and neuron edges
loaded, camera still).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from imgui_bundle import hello_imgui, imgui

if TYPE_CHECKING:
    from .app import App

__all__ = ["Screenshots"]


class Screenshots:
    """Screenshots of the viewer's window (saved as PNG) and the view's render command.

    Attributes
    ----------
    folder
        Where screenshots go (``None``: the run's ``screenshots/`` folder).
    saved
        Paths written so far.
    follow
        Headless and following: a screenshot of each new snapshot once it has settled.
    on_exit
        Headless: a screenshot of the last frame when the loop ends (``run_app``).
    """

    def __init__(self, app: App, folder: str | Path | None) -> None:
        self.app = app
        self.folder = None if folder is None else Path(folder)
        self.saved: list[Path] = []
        self.follow = True
        self.on_exit = True
        self._now = False  # take one at the end of this frame
        self._when_settled = False
        self._path: str | Path | None = None
        self._step: int | None = None

    def request(self, path: str | Path | None = None) -> None:
        """Save a screenshot of this frame (to ``path``, default in :attr:`folder`)."""
        self._now, self._path, self._step = True, path, None

    def when_settled(self, path: str | Path | None = None, step: int | None = None) -> None:
        """Save a screenshot once the view has settled; with ``step``, only if that step is
        still the one shown then.  A later request replaces an earlier one not yet taken."""
        self._when_settled, self._path, self._step = True, path, step

    def settled(self, frames: int) -> None:
        """The view has been settled for ``frames`` frames (called each frame)."""
        if self._when_settled and frames >= 3:
            self._when_settled = False
            if self._step is None or self._step == self.app.state.step:
                self._now = True  # taken at the end of this frame (`take`)
            else:  # another snapshot came first: the picture would be misnamed
                self._path = None

    def take(self) -> None:
        """At the end of a frame (the runner's ``before_swap``): take a requested screenshot."""
        if not self._now:
            return
        self._now = False
        path, self._path = self._path, None
        try:  # outside the panels' guard: a failure must not end the loop
            self.save(path, pixels=self._window_pixels())
        except Exception as e:  # noqa: BLE001 - e.g. a read-only run directory
            self.app.state.jobs.error = f"screenshot not saved: {type(e).__name__}: {e}"

    def _window_pixels(self) -> np.ndarray | None:
        """The whole window as uint8 ``[h, w, 3]`` (top row first), read from the back buffer."""
        ctx = self.app.ctx
        if ctx is None:
            return None
        io = imgui.get_io()
        sx, sy = io.display_framebuffer_scale
        w, h = int(io.display_size.x * sx), int(io.display_size.y * sy)
        if w <= 0 or h <= 0:
            return None
        fb = ctx.detect_framebuffer(0)
        raw = fb.read(viewport=(0, 0, w, h), components=3, alignment=1)
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)[::-1]

    def save(self, path: str | Path | None = None, pixels: np.ndarray | None = None) -> Path | None:
        """Write a frame of the window as a PNG; returns its path.

        ``pixels`` from the back buffer (a screenshot while the viewer runs); without, the last
        frame the runner kept when it stopped.
        """
        from PIL import Image

        st = self.app.state
        img = pixels if pixels is not None else hello_imgui.final_app_window_screenshot()
        if img is None or img.size == 0:
            return None
        if path is None:
            folder = self.folder or (st.run_dir / "screenshots")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"cnnvis-step{st.step}-{time.strftime('%Y%m%d-%H%M%S')}.png"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img[..., :3])).save(path)
        self.saved.append(path)
        st.jobs.message = f"screenshot saved: {path}"
        return path

    def render_command(self, out: str | Path = "view.png") -> str:
        """The ``cnnvis render`` command line that draws the network view as it is now: same
        snapshot, layout (the edits saved in ``RUN/layout.json``), edge fraction, camera,
        size, theme, class selection and neuron edges: it draws the pixels the view shows
        (tested).  One exception: a run followed or browsed *without* edits keeps the cluster
        colours, row and column orders of the snapshots shown before, which a fresh render
        does not know; any edit (e.g. a move) pins them in ``RUN/layout.json``."""
        st = self.app.state
        cam = st.camera.target
        w, h = st.camera.viewport
        args = ["cnnvis", "render", str(st.run_dir), "-o", str(out)]
        if st.step is not None:
            args += ["--step", str(st.step)]
        camera = ",".join(repr(float(v)) for v in (*cam.center, cam.zoom))
        args += ["--size", f"{w}x{h}", f"--camera={camera}"]  # "=": x may be negative
        args += ["--edges", f"{st.edge_fraction:g}", "--theme", st.theme]
        args += ["--msaa", str(self.app.msaa)]
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
        self.app.state.jobs.message = f"copied: {cmd}"
        return cmd
