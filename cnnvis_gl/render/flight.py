"""Camera flights and tour timelines: plain math, no OpenGL.

:class:`Flight` is the smooth, efficient zoom-and-pan of van Wijk and Nuij (*Smooth and
efficient zooming and panning*, InfoVis 2003): between two far-apart views it zooms out, pans
and zooms back in along the path that is shortest in perceived motion, so the viewer never loses
the context; between nearby views it is nearly a straight glide.  The flight's progress is eased
(slow start, slow stop).

:class:`Timeline` lays a :class:`~cnnvis_gl.run.tours.Tour` out in time for one view size:
what the camera shows at time ``t``, which stops' looks are mixed (a cross-fade) and which
caption is shown how strongly.  The video export samples it at the frame rate; the viewer's
present mode plays it in real time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..run.bookmarks import Bookmark
from ..run.tours import Tour
from .camera import Camera, Viewport

__all__ = ["Flight", "Timeline", "TourFrame", "ease"]

RHO = 1.4  # van Wijk–Nuij's trade-off of zooming against panning (their user study: ~1.4)


def ease(t: float) -> float:
    """Smooth ease-in-out of ``t`` in [0, 1] (zero speed at both ends)."""
    t = min(max(float(t), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


class Flight:
    """The optimal zoom-and-pan path from camera ``a`` to camera ``b`` in a view of ``viewport``
    pixels; :meth:`at` gives the camera at progress ``t`` in [0, 1] (eased)."""

    def __init__(self, a: Camera, b: Camera, viewport: Viewport, rho: float = RHO) -> None:
        self.a, self.b, self.rho = a, b, float(rho)
        px = float(viewport[0])
        self.w0, self.w1 = px / a.zoom, px / b.zoom  # view widths in scene units
        dx, dy = b.center[0] - a.center[0], b.center[1] - a.center[1]
        self.u1 = math.hypot(dx, dy)
        self.dir = (dx / self.u1, dy / self.u1) if self.u1 > 0 else (0.0, 0.0)
        r2 = self.rho * self.rho
        if self.u1 < 1e-9 * max(self.w0, self.w1):  # a pure zoom
            self.r0 = None
            self.length = abs(math.log(self.w1 / self.w0)) / self.rho
        else:
            b0 = (self.w1**2 - self.w0**2 + r2 * r2 * self.u1**2) / (2 * self.w0 * r2 * self.u1)
            b1 = (self.w1**2 - self.w0**2 - r2 * r2 * self.u1**2) / (2 * self.w1 * r2 * self.u1)
            self.r0 = -math.asinh(b0)  # = ln(-b + sqrt(b² + 1)), without the cancellation
            self.length = (-math.asinh(b1) - self.r0) / self.rho

    def at(self, t: float) -> Camera:
        """The camera at progress ``t`` (0: ``a``, 1: ``b``; eased in between)."""
        t = min(max(float(t), 0.0), 1.0)
        if t <= 0.0:
            return self.a
        if t >= 1.0:
            return self.b
        s = ease(t) * self.length
        if self.r0 is None:
            w = self.w0 * (self.w1 / self.w0) ** (s / self.length if self.length > 0 else 1.0)
            u = 0.0
        else:
            rho, r0, w0 = self.rho, self.r0, self.w0
            w = w0 * math.cosh(r0) / math.cosh(rho * s + r0)
            u = w0 / (rho * rho) * (math.cosh(r0) * math.tanh(rho * s + r0) - math.sinh(r0))
        cx = self.a.center[0] + self.dir[0] * u
        cy = self.a.center[1] + self.dir[1] * u
        return Camera((cx, cy), self.a.zoom * self.w0 / w)


@dataclass(frozen=True)
class TourFrame:
    """What a tour shows at one moment.

    Attributes
    ----------
    stop
        The stop being shown or moved to (0-based).
    camera
        The camera of the look of stop ``a``.
    a, b, mix
        The looks of stops ``a`` and ``b`` cross-faded: ``(1 - mix)·a + mix·b`` (``a == b``
        and ``mix == 0`` when nothing fades).
    camera_b
        The camera of look ``b`` (the same as ``camera`` but during a ``"fade"``).
    caption, caption_alpha
        The caption on screen and its opacity.
    """

    stop: int
    camera: Camera
    a: int
    b: int
    mix: float
    camera_b: Camera
    caption: str
    caption_alpha: float


class Timeline:
    """A tour laid out in time for a view of ``viewport`` pixels.

    Stop 0 is held for its ``hold`` seconds; every later stop starts with its transition
    (``move`` seconds; none for a ``"cut"``) from the stop before, then is held.  During a
    ``"fly"`` the camera follows a :class:`Flight` and the looks cross-fade; during a
    ``"fade"`` the two views cross-fade where they are.  A caption fades out over the first
    half of the move away from its stop and the next fades in over the second half.
    """

    def __init__(self, tour: Tour, bookmarks: Mapping[str, Bookmark], viewport: Viewport) -> None:
        self.tour, self.viewport = tour, (int(viewport[0]), int(viewport[1]))
        self.marks: list[Bookmark] = [bookmarks[s.bookmark] for s in tour.stops]
        self.cameras = [Camera(*_split(m.camera_for(self.viewport))) for m in self.marks]
        self.moves = [0.0] + [
            0.0 if s.transition == "cut" else s.move for s in tour.stops[1:]
        ]  # fmt: skip
        self.starts: list[float] = []  # when each stop's move begins
        t = 0.0
        for k, stop in enumerate(tour.stops):
            self.starts.append(t)
            t += self.moves[k] + stop.hold
        self.duration = t
        self._flights: dict[int, Flight] = {}

    def arrival(self, k: int) -> float:
        """When stop ``k`` is reached (its hold begins)."""
        return self.starts[k] + self.moves[k]

    def stop_at(self, t: float) -> int:
        """The stop whose move or hold contains time ``t``."""
        k = 0
        for j, start in enumerate(self.starts):
            if t >= start:
                k = j
        return k

    def flight(self, k: int) -> Flight:
        """The flight into stop ``k`` (from stop ``k - 1``)."""
        if k not in self._flights:
            self._flights[k] = Flight(self.cameras[k - 1], self.cameras[k], self.viewport)
        return self._flights[k]

    def at(self, t: float) -> TourFrame:
        """The frame at time ``t`` seconds (clamped to the tour)."""
        t = min(max(float(t), 0.0), self.duration)
        k = self.stop_at(t)
        stops = self.tour.stops
        into = t - self.starts[k]
        move = self.moves[k]
        if k == 0 or into >= move:  # holding stop k
            cam = self.cameras[k]
            return TourFrame(k, cam, k, k, 0.0, cam, stops[k].caption, 1.0)
        p = into / move  # moving from k - 1 into k
        mix = ease(p)
        first = p < 0.5
        caption = stops[k - 1].caption if first else stops[k].caption
        alpha = ease(1.0 - 2.0 * p) if first else ease(2.0 * p - 1.0)
        if stops[k].transition == "fade":
            cam_a, cam_b = self.cameras[k - 1], self.cameras[k]
        else:
            cam_a = cam_b = self.flight(k).at(p)
        return TourFrame(k, cam_a, k - 1, k, mix, cam_b, caption, alpha)

    def times(self, fps: float) -> list[float]:
        """The frame times of a video at ``fps`` frames per second (the last frame included)."""
        n = max(1, int(round(self.duration * fps)))
        return [min(i / fps, self.duration) for i in range(n)]


def _split(cam: Sequence[float]) -> tuple[tuple[float, float], float]:
    return (float(cam[0]), float(cam[1])), float(cam[2])
