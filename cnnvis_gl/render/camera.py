"""A 2-D camera over the scene: plain math, no OpenGL (the UI animates it).

Scene coordinates have x to the right and y **down** (see :mod:`cnnvis_gl.layout.scene`);
screen pixels likewise have their origin at the top-left corner, y down.  ``zoom`` is screen
pixels per scene unit, ``center`` the scene point shown at the middle of the viewport.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

Viewport = tuple[int, int]  # width, height in pixels
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class Camera:
    """Position and scale of the view.

    Parameters
    ----------
    center
        Scene point at the centre of the viewport.
    zoom
        Screen pixels per scene unit (1 = one scene unit per pixel).
    """

    center: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0

    # ------------------------------------------------------------------ matrices
    def matrix(self, viewport: Viewport) -> np.ndarray:
        """Scene → clip-space matrix (3×3, float32, row-major, acts on column vectors).

        Upload it to a GLSL ``mat3`` with :func:`mat3_bytes` (GLSL is column-major).
        """
        w, h = _check_viewport(viewport)
        sx = 2.0 * self.zoom / w
        sy = -2.0 * self.zoom / h  # scene y down → clip y up
        cx, cy = self.center
        return np.array(
            [[sx, 0.0, -sx * cx], [0.0, sy, -sy * cy], [0.0, 0.0, 1.0]], dtype=np.float32
        )

    def scene_to_screen(self, x: float, y: float, viewport: Viewport) -> tuple[float, float]:
        """Pixel coordinates (top-left origin) of scene point ``(x, y)``."""
        w, h = _check_viewport(viewport)
        return (
            (x - self.center[0]) * self.zoom + w / 2.0,
            (y - self.center[1]) * self.zoom + h / 2.0,
        )

    def screen_to_scene(self, px: float, py: float, viewport: Viewport) -> tuple[float, float]:
        """Scene point under pixel ``(px, py)`` (top-left origin)."""
        w, h = _check_viewport(viewport)
        return (
            self.center[0] + (px - w / 2.0) / self.zoom,
            self.center[1] + (py - h / 2.0) / self.zoom,
        )

    def visible_rect(self, viewport: Viewport) -> Rect:
        """Scene rectangle ``(x0, y0, x1, y1)`` covered by the viewport."""
        w, h = _check_viewport(viewport)
        hw, hh = w / 2.0 / self.zoom, h / 2.0 / self.zoom
        return (self.center[0] - hw, self.center[1] - hh, self.center[0] + hw, self.center[1] + hh)

    # ------------------------------------------------------------------ moves
    def fit(self, bounds: Rect, viewport: Viewport, margin: float = 0.04) -> Camera:
        """The camera showing all of ``bounds`` (``x0, y0, x1, y1``), with a relative margin."""
        w, h = _check_viewport(viewport)
        x0, y0, x1, y1 = (float(v) for v in bounds)
        bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
        zoom = min(w / bw, h / bh) / (1.0 + 2.0 * margin)
        return Camera(((x0 + x1) / 2.0, (y0 + y1) / 2.0), float(zoom))

    def zoom_to_rect(self, rect: Rect, viewport: Viewport, margin: float = 0.04) -> Camera:
        """The camera framing scene rectangle ``rect`` (``x0, y0, x1, y1``)."""
        return self.fit(rect, viewport, margin)

    def zoom_at(self, factor: float, px: float, py: float, viewport: Viewport) -> Camera:
        """Zoom by ``factor`` keeping the scene point under pixel ``(px, py)`` fixed."""
        sx, sy = self.screen_to_scene(px, py, viewport)
        zoom = self.zoom * float(factor)
        w, h = _check_viewport(viewport)
        return Camera((sx - (px - w / 2.0) / zoom, sy - (py - h / 2.0) / zoom), zoom)

    def pan(self, dx_px: float, dy_px: float) -> Camera:
        """Move the view so the scene follows a drag of ``(dx_px, dy_px)`` pixels."""
        return replace(
            self, center=(self.center[0] - dx_px / self.zoom, self.center[1] - dy_px / self.zoom)
        )

    def lerp(self, other: Camera, t: float) -> Camera:
        """Interpolate towards ``other`` (zoom geometrically) for animations, ``t`` in [0, 1]."""
        t = float(t)
        cx = self.center[0] + (other.center[0] - self.center[0]) * t
        cy = self.center[1] + (other.center[1] - self.center[1]) * t
        zoom = self.zoom * (other.zoom / self.zoom) ** t
        return Camera((cx, cy), zoom)

    def tile(self, x0: int, y0: int, tile: Viewport, viewport: Viewport) -> Camera:
        """The camera rendering pixel block ``[x0, x0+tw) × [y0, y0+th)`` of ``viewport`` alone.

        Used to render images larger than the GL limits in tiles, and for 1-pixel picking.
        """
        tw, th = _check_viewport(tile)
        cx, cy = self.screen_to_scene(x0 + tw / 2.0, y0 + th / 2.0, viewport)
        return Camera((cx, cy), self.zoom)


def mat3_bytes(m: np.ndarray) -> bytes:
    """Bytes of a row-major 3×3 matrix for a GLSL ``mat3`` uniform (column-major)."""
    return np.ascontiguousarray(np.asarray(m, dtype=np.float32).T).tobytes()


def _check_viewport(viewport: Viewport) -> tuple[int, int]:
    w, h = int(viewport[0]), int(viewport[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"viewport must be positive, got {viewport!r}")
    return w, h
