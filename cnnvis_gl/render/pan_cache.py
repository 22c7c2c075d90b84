"""The view drawn once with a margin and shifted while the camera only pans.

Dragging the view moves the camera's centre and keeps its zoom: every frame would draw the
same picture, shifted.  :class:`PanCache` draws the scene once into a texture larger than the
view by a margin on each side, at the same zoom and centre, and while the camera keeps its zoom
(and what the scene shows its key) it shows that texture shifted by the pan — one textured quad
instead of thousands of patches, frames, edges and glyphs; the viewer shows the texture itself
(:meth:`PanCache.image`: its part in view), without a copy.  Panning past the margin draws the
texture again around the new view.  It only serves frames of a moving camera; the first still
frame is drawn in full by the renderer, so a still view is exactly what it always was.  Offsets
are whole pixels (the texture is sampled texel for pixel).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import moderngl

from .camera import Camera, Viewport
from .gl import program, set_uniform
from .state import UNIT_MAIN

__all__ = ["PanCache"]


class PanCache:
    """A texture of the scene around the view, shown shifted while the camera pans.

    Parameters
    ----------
    ctx
        The renderer's context.
    quad
        A unit quad buffer (``in_corner`` in ``[0, 1]²``).
    margin
        Fraction of the view's larger side drawn beyond each edge.
    """

    def __init__(self, ctx: moderngl.Context, quad: moderngl.Buffer, margin: float = 0.25) -> None:
        self.ctx = ctx
        self.margin = float(margin)
        self._prog = program(ctx, "composite.vert", "composite.frag")
        self._vao = ctx.vertex_array(self._prog, [(quad, "2f", "in_corner")])
        self._tex: moderngl.Texture | None = None
        self._fbo: moderngl.Framebuffer | None = None
        self._drawn: tuple | None = None  # (key, zoom, view size, centre) the texture shows
        self._last: tuple | None = None  # (key, zoom, view size) of the last frame asked for
        self._shown: tuple | None = None  # (view size, margin, dx, dy) of the view made ready
        self.redraws = 0  # times the texture was drawn (benchmarks, tests)

    def show(
        self,
        camera: Camera,
        viewport: Viewport,
        key: Hashable,
        draw: Callable[[Camera, Viewport, moderngl.Framebuffer], None],
        park: Callable[[], None],
    ) -> str | None:
        """Make the texture show the view of ``camera`` (:meth:`image`, :meth:`paint`);
        ``key`` stands for everything else the picture depends on.  ``draw(camera, size,
        fbo)`` draws the scene into the texture when it must be (re)drawn.  Returns ``"hit"``,
        ``"redraw"``, or ``None`` when the frame is not a pan of the last one (the first frame
        of a drag, a zoom): then the caller draws it."""
        w, h = int(viewport[0]), int(viewport[1])
        now = (key, camera.zoom, (w, h))
        last, self._last = self._last, now
        if now != last:
            return None
        m = int(round(self.margin * max(w, h)))
        drawn = self._drawn
        if drawn is not None and drawn[:3] == now:
            dx, dy = self._offset(drawn[3], camera)
            if abs(dx) <= m and abs(dy) <= m:
                self._shown = ((w, h), m, dx, dy)
                return "hit"
        size = (w + 2 * m, h + 2 * m)
        self._ensure(size, park)
        assert self._fbo is not None
        draw(camera, size, self._fbo)
        self._drawn = (*now, camera.center)
        self._shown = ((w, h), m, 0, 0)
        self.redraws += 1
        return "redraw"

    def image(self) -> tuple[int, tuple[float, float], tuple[float, float]]:
        """The view :meth:`show` made ready, for ImGui: the texture's GL name and the texture
        coordinates of the view's top-left and bottom-right corners (texture rows go up)."""
        assert self._tex is not None and self._shown is not None
        (w, h), m, dx, dy = self._shown
        tw, th = self._tex.size
        left, top = (m - dx) / tw, (m - dy) / th  # the view's corner, from the texture's top-left
        return int(self._tex.glo), (left, 1.0 - top), (left + w / tw, 1.0 - top - h / th)

    def paint(self, target: moderngl.Framebuffer) -> None:
        """Draw the view :meth:`show` made ready into ``target`` (its size)."""
        assert self._tex is not None and self._shown is not None
        (w, h), m, dx, dy = self._shown
        ctx = self.ctx
        target.use()
        ctx.viewport = (0, 0, w, h)
        ctx.disable(moderngl.BLEND)  # (the texture is opaque: it was cleared to the background)
        self._tex.use(UNIT_MAIN)
        set_uniform(self._prog, "u_layer", UNIT_MAIN)
        # The quad spans the texture's pixels: (w + 2m) / w of the view's clip width, centred
        # dx, dy pixels from the view's centre (screen y down, clip y up).
        warp = ((w + 2 * m) / w, (h + 2 * m) / h, 2.0 * dx / w, -2.0 * dy / h)
        set_uniform(self._prog, "u_warp", warp)
        self._vao.render(moderngl.TRIANGLE_STRIP, vertices=4)
        ctx.enable(moderngl.BLEND)

    @staticmethod
    def _offset(center: tuple[float, float], camera: Camera) -> tuple[int, int]:
        """Where the texture's centre is, in whole pixels from the view's centre."""
        return (
            int(round((center[0] - camera.center[0]) * camera.zoom)),
            int(round((center[1] - camera.center[1]) * camera.zoom)),
        )

    def _ensure(self, size: tuple[int, int], park: Callable[[], None]) -> None:
        if self._tex is not None and self._tex.size == size:
            return
        park()
        self._release_targets()
        self._tex = self.ctx.texture(size, 4)
        self._tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._tex.repeat_x = self._tex.repeat_y = False
        self._fbo = self.ctx.framebuffer(color_attachments=[self._tex])

    def _release_targets(self) -> None:
        for obj in (self._fbo, self._tex):
            if obj is not None:
                obj.release()
        self._fbo = self._tex = None
        self._drawn = self._shown = None

    def release(self) -> None:
        self._release_targets()
        self._vao.release()
        self._prog.release()
