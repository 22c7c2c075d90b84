"""OpenGL rendering of a Scene (moderngl, OpenGL 3.3 core) — the only package that touches GL.

- :class:`SceneRenderer` draws a :class:`~cnnvis_gl.layout.scene.Scene` into any moderngl
  context (standalone EGL, or imgui-bundle's window via ``moderngl.create_context()``) and picks
  what lies under a pixel;
- :class:`Camera` is the view (plain math);
- :func:`render_png` / :func:`render_image` render offscreen (``cnnvis render``);
- :class:`PatchAtlas` holds the neurons' patch pixels;
- :mod:`~cnnvis_gl.render.synthetic` makes deterministic test scenes.
"""

from __future__ import annotations

from .atlas import PatchAtlas, PatchSource
from .camera import Camera
from .lod import LodSettings
from .offscreen import create_context, render_image, render_many, render_png
from .renderer import SceneRenderer
from .theme import DARK, LIGHT, THEMES, Theme, get_theme

__all__ = [
    "DARK",
    "LIGHT",
    "THEMES",
    "Camera",
    "LodSettings",
    "PatchAtlas",
    "PatchSource",
    "SceneRenderer",
    "Theme",
    "create_context",
    "get_theme",
    "render_image",
    "render_many",
    "render_png",
]
