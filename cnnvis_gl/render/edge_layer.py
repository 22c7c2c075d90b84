"""The cached edge layer: edges and bundle nodes drawn into their own texture.

Edges are the costly part of a frame (tessellated ribbons, thousands of instances).  The layer
is redrawn only when what it shows changed (:meth:`EdgeLayer.invalidate`: data, threshold,
selection, theme) or the camera moved while still; while the camera moves it is reused, warped
(scaled and offset) to the new view, and redrawn on the first still frame.  With ``msaa`` it is
drawn multisampled and resolved into the texture.  :meth:`EdgeLayer.composite` blends it
(premultiplied) under the scene layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import moderngl
import numpy as np

from .camera import Camera, Viewport
from .gl import program, set_uniform
from .state import UNIT_MAIN, Frame

__all__ = ["BLEND_PREMULT", "BLEND_STRAIGHT", "EdgeLayer", "Warp"]

BLEND_STRAIGHT = (moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA, moderngl.ONE,
                  moderngl.ONE_MINUS_SRC_ALPHA)  # fmt: skip
BLEND_PREMULT = (moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA)

Warp = tuple[float, float, float, float]  # x scale, y scale, x offset, y offset (clip space)
NO_WARP: Warp = (1.0, 1.0, 0.0, 0.0)


class EdgeLayer:
    """The edge layer's texture and when to redraw it."""

    def __init__(self, ctx: moderngl.Context, quad: moderngl.Buffer, msaa: int = 0) -> None:
        self.ctx = ctx
        self.msaa = int(msaa)
        self.version = 0  # bumped by `invalidate`
        self._key: tuple | None = None  # what the texture shows
        self._data_key: tuple | None = None  # (version, size) it was drawn for
        self._cam: tuple[Camera, Viewport] | None = None  # the camera it was drawn for
        self._gl: dict[str, Any] = {}
        self._prog = program(ctx, "composite.vert", "composite.frag")
        self._vao = ctx.vertex_array(self._prog, [(quad, "2f", "in_corner")])

    def invalidate(self) -> None:
        """What the layer shows changed: redraw it on the next frame."""
        self.version += 1

    def get(
        self,
        frame: Frame,
        detail: tuple,
        moving: bool,
        draw: Callable[[], None],
        park: Callable[[], None],
    ) -> tuple[moderngl.Texture, Warp, str]:
        """The layer for ``frame`` as ``(texture, warp, how)``, ``how`` being ``"hit"``,
        ``"warp"`` or ``"redraw"`` (then ``draw`` drew it; ``detail`` is the level of detail
        the drawing depends on, ``park`` binds a framebuffer the renderer owns)."""
        w, h = frame.viewport
        gl = self._ensure(w, h, park)
        data_key = (self.version, (w, h))
        key = (data_key, frame.camera, *detail)
        if key == self._key:
            return gl["tex"], NO_WARP, "hit"
        if moving and self._cam is not None and data_key == self._data_key:
            old, _ = self._cam
            s = frame.camera.zoom / old.zoom
            off = frame.camera.matrix((w, h)) @ np.array([*old.center, 1.0], dtype=np.float64)
            return gl["tex"], (s, s, float(off[0]), float(off[1])), "warp"
        ctx = self.ctx
        fbo = gl["msaa_fbo"] or gl["fbo"]
        fbo.use()
        ctx.viewport = (0, 0, w, h)
        fbo.clear(0.0, 0.0, 0.0, 0.0)
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = BLEND_PREMULT
        draw()
        if gl["msaa_fbo"] is not None:
            ctx.copy_framebuffer(gl["fbo"], gl["msaa_fbo"])
        self._key, self._data_key = key, data_key
        self._cam = (frame.camera, (w, h))
        return gl["tex"], NO_WARP, "redraw"

    def composite(self, tex: moderngl.Texture, warp: Warp) -> None:
        """Blend the layer (premultiplied) into the bound framebuffer."""
        ctx = self.ctx
        ctx.blend_func = BLEND_PREMULT
        tex.use(UNIT_MAIN)
        set_uniform(self._prog, "u_layer", UNIT_MAIN)
        set_uniform(self._prog, "u_warp", warp)
        self._vao.render(moderngl.TRIANGLE_STRIP, vertices=4)
        ctx.blend_func = BLEND_STRAIGHT

    def _ensure(self, w: int, h: int, park: Callable[[], None]) -> dict[str, Any]:
        if self._gl.get("size") == (w, h):
            return self._gl
        park()
        self._release_targets()
        tex = self.ctx.texture((w, h), 4)
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        fbo = self.ctx.framebuffer(color_attachments=[tex])
        msaa_fbo = None
        samples = min(self.msaa, self.ctx.max_samples)
        if samples > 1:
            rb = self.ctx.renderbuffer((w, h), 4, samples=samples)
            msaa_fbo = self.ctx.framebuffer(color_attachments=[rb])
            self._gl["rb"] = rb
        self._gl.update(size=(w, h), tex=tex, fbo=fbo, msaa_fbo=msaa_fbo)
        self._key = self._data_key = self._cam = None
        return self._gl

    def _release_targets(self) -> None:
        for k in ("msaa_fbo", "rb", "fbo", "tex"):
            obj = self._gl.pop(k, None)
            if obj is not None:
                obj.release()
        self._gl.clear()

    def release(self) -> None:
        self._release_targets()
        self._vao.release()
        self._prog.release()
