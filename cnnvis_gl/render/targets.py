"""The few GL objects the UI needs to show pictures in ImGui: an offscreen view target and
RGBA image textures.

ImGui draws textures by GL name (``ImTextureRef(texture.glo)``).  The network view renders
the scene into :class:`ViewTarget` (a colour texture + framebuffer the size of the view's
window) and shows it as an image, so the view docks like any window and its pixels map 1:1 to
the renderer's picking coordinates.
"""

from __future__ import annotations

from typing import Any

import moderngl
import numpy as np

__all__ = ["ImageTexture", "ViewTarget", "attach_context"]


class ViewTarget:
    """A colour texture + framebuffer, re-created when the size changes."""

    def __init__(self, ctx: moderngl.Context) -> None:
        self.ctx = ctx
        self.texture: moderngl.Texture | None = None
        self.fbo: moderngl.Framebuffer | None = None
        self.size: tuple[int, int] = (0, 0)

    def ensure(self, size: tuple[int, int], park: Any = None) -> bool:
        """Make the target ``size`` (w, h); returns True when it was (re)created.

        ``park`` is called before releasing the old framebuffer (moderngl rebinds the current
        framebuffer on creation, which must not be a released one).
        """
        w, h = max(int(size[0]), 1), max(int(size[1]), 1)
        if (w, h) == self.size and self.fbo is not None:
            return False
        if park is not None:
            park()
        self.release()
        self.texture = self.ctx.texture((w, h), 4)
        self.texture.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.fbo = self.ctx.framebuffer(color_attachments=[self.texture])
        self.size = (w, h)
        return True

    @property
    def glo(self) -> int:
        return 0 if self.texture is None else int(self.texture.glo)

    def copy_to(self, other: ViewTarget, park: Any = None) -> None:
        """Copy the pixels into ``other`` (made this size), e.g. to cross-fade from them."""
        if self.fbo is None:
            return
        other.ensure(self.size, park=park)
        self.ctx.copy_framebuffer(other.fbo, self.fbo)

    def read(self) -> np.ndarray:
        """The pixels as uint8 ``[h, w, 4]``, top row first."""
        assert self.fbo is not None
        w, h = self.size
        raw = self.fbo.read(components=4, alignment=1)
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 4)[::-1].copy()

    def release(self) -> None:
        if self.fbo is not None:
            self.fbo.release()
            self.fbo = None
        if self.texture is not None:
            self.texture.release()
            self.texture = None
        self.size = (0, 0)


class ImageTexture:
    """An RGB(A) uint8 image as a GL texture for ``imgui.image``."""

    def __init__(self, ctx: moderngl.Context, image: np.ndarray, smooth: bool = True) -> None:
        img = np.asarray(image, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f"image must be [h, w, 3|4] uint8, got {img.shape}")
        if img.shape[2] == 3:
            img = np.concatenate([img, np.full((*img.shape[:2], 1), 255, np.uint8)], axis=2)
        h, w = img.shape[:2]
        self.size = (w, h)
        self.texture = ctx.texture((w, h), 4, np.ascontiguousarray(img).tobytes())
        f = moderngl.LINEAR if smooth else moderngl.NEAREST
        self.texture.filter = (f, f)

    @property
    def glo(self) -> int:
        return int(self.texture.glo)

    def release(self) -> None:
        self.texture.release()


def attach_context() -> moderngl.Context:
    """A moderngl context on the runner's current GL context (GLX, WGL, CGL or EGL).

    moderngl's first attach in a process wraps whatever context is current through a symbol
    loader (so it works for the EGL context of the headless null platform) but caches it, and
    later attaches go through glcontext's GLX detection, which cannot see an EGL context.  The
    cache is cleared around the call so every runner start (tests start several) attaches the
    same way.
    """
    store = getattr(moderngl, "_store", None)
    if store is not None:
        store.default_context = None
    try:
        return moderngl.create_context(require=330)
    finally:
        if store is not None:
            store.default_context = None
