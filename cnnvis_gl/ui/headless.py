"""Running the viewer without a display: GLFW's null platform with an EGL context.

imgui-bundle ships its own GLFW (3.5) and loads it with the native module.  Before the
hello_imgui runner starts we initialise that same library with the *null* platform and ask for
EGL contexts, so the whole app (ImGui, moderngl, the Test Engine) runs on Mesa's llvmpipe with no
X server.  The three calls go through ``ctypes`` to the already-loaded library, so the ``glfw``
Python package is not needed (``import imgui_bundle`` first: it loads the library).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

__all__ = ["has_display", "init_headless", "glfw_library"]

# GLFW 3.4+ constants (glfw3.h)
GLFW_PLATFORM = 0x00050003
GLFW_PLATFORM_NULL = 0x00060005
GLFW_CONTEXT_CREATION_API = 0x0002200B
GLFW_EGL_CONTEXT_API = 0x00036002

_lib: ctypes.CDLL | None = None


def has_display() -> bool:
    """Whether a window can be shown: always on macOS / Windows, else DISPLAY or WAYLAND_DISPLAY."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def glfw_library() -> ctypes.CDLL:
    """The GLFW library imgui-bundle's native module uses (loaded once)."""
    global _lib
    if _lib is not None:
        return _lib
    import imgui_bundle
    import imgui_bundle._imgui_bundle as native  # noqa: F401 - loads libglfw

    folders = [Path(native.__file__).parent, Path(imgui_bundle.__file__).parent]
    names = ["libglfw.so.3", "libglfw.so", "libglfw.3.dylib", "glfw3.dll"]
    for folder in folders:
        for name in names:
            path = folder / name
            if path.exists():
                _lib = ctypes.CDLL(str(path))
                return _lib
    raise RuntimeError(f"imgui-bundle's GLFW library not found in {', '.join(map(str, folders))}")


def init_headless() -> None:
    """Initialise GLFW with the null platform and EGL contexts (call before each runner start).

    hello_imgui calls ``glfwInit`` again, which is a no-op on an initialised library, so the
    platform and the context hint chosen here stay in force.  After a runner ends (GLFW
    terminated) call this again before the next one.
    """
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # never mix GLX and EGL in one process
    lib = glfw_library()
    lib.glfwInitHint(GLFW_PLATFORM, GLFW_PLATFORM_NULL)
    if not lib.glfwInit():
        raise RuntimeError("GLFW could not start its null (headless) platform")
    lib.glfwWindowHint(GLFW_CONTEXT_CREATION_API, GLFW_EGL_CONTEXT_API)
