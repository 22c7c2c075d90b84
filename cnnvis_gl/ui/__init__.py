"""The interactive viewer (the only package that imports imgui).

* :func:`run_app` — open a run directory in the viewer (``cnnvis view``);
* :class:`App` — the controller: state, commands, GL objects, background threads;
* :class:`AppState` — the typed state panels read;
* :mod:`.edits` — the user's layout edits as data (undo / redo, ``RUN/layout.json``).

Layout (docking, declared as data in :data:`.panels.DOCK_SPLITS` / :data:`.panels.PANELS`):
controls on the left, the network view in the centre, the cluster and neuron inspectors on the
right, the snapshot timeline with per-layer statistics at the bottom.

Choices (and why):

* **The view renders into a texture** shown as an ImGui image (not into ``custom_background``):
  the renderer always draws at the origin of its target, the view docks like any window, and
  image pixel (x, y) is the renderer's pixel (x, y), so picking and zoom-to-cursor need no
  conversion.  It is redrawn only when the camera, the scene or an appearance changed.
* **Hover outlines are drawn by ImGui** over the image, so moving the pointer costs a 1-pixel
  ID pass, never a scene redraw.
* **Heavy work runs on worker threads** (:mod:`.jobs`): one owns the ``LayoutState``; edits come
  back as immutable ``SceneUpdate`` objects applied between frames.  The hello_imgui loop holds the
  GIL while it renders, so while work is pending each frame sleeps a few ms (measured: a
  worker got ~10 % of its speed otherwise).
* **Undo / redo restore whole clusterings** (:class:`.edits.LayoutEdits`), not inverse moves:
  robust to clusters that vanish and come back, and cheap because contents are cached by
  member set.  View settings (facets, edge threshold) are not undone.
* **Headless**: GLFW's null platform + EGL through imgui-bundle's own GLFW (``ctypes``, no
  ``glfw`` package); moderngl's attach cache is cleared so several runner starts in one
  process (the tests) attach to their own context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App, run_app, runner_params
    from .state import AppState

__all__ = ["App", "AppState", "run_app", "runner_params"]


def __getattr__(name: str) -> Any:
    # Lazy: `cnnvis_gl.ui.edits` / `.jobs` / `.state` import without imgui or OpenGL.
    if name in ("App", "run_app", "runner_params"):
        from . import app

        return getattr(app, name)
    if name == "AppState":
        from .state import AppState

        return AppState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
