"""Where annotations' callouts go on a view: plain math on a Scene and a Camera (no OpenGL).

Each :class:`~cnnvis_gl.run.annotations.Annotation` points at the rectangle of its target in
the scene (a cluster's frame, a neuron's patch or matrix row, a row's band); its box is centred
``offset`` pixels from that rectangle's top-right corner (by default above and to the right,
not over what it points at), and the arrow runs from the box's border to the
target's border.  The viewer (ImGui), the PNG and video frames (Pillow) and the SVG draw the
boxes with their own fonts, so they share only this geometry and :func:`edge_point`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..layout.scene import ROW_BETWEEN, Scene
from ..layout.search import cluster_at, neuron_at
from ..run.annotations import Annotation
from .camera import Camera

__all__ = ["Callout", "edge_point", "place", "target_rect"]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class Callout:
    """One annotation on one view: ``target`` (pixels, ``x0, y0, x1, y1``) and the box centre."""

    index: int  # into the annotations
    text: str
    target: Box
    center: tuple[float, float]

    @property
    def tip(self) -> tuple[float, float]:
        """Where the arrow ends: the target's border towards the box (its centre when tiny)."""
        x0, y0, x1, y1 = self.target
        if x1 - x0 < 6 and y1 - y0 < 6:
            return (x0 + x1) / 2, (y0 + y1) / 2
        return edge_point(self.target, self.center)


def edge_point(box: Box, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the ray from the centre of ``box`` towards ``toward`` leaves the box."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    dx, dy = toward[0] - cx, toward[1] - cy
    if dx == 0 and dy == 0:
        return cx, cy
    hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
    t = min(hw / abs(dx) if dx else np.inf, hh / abs(dy) if dy else np.inf)
    t = min(t, 1.0)
    return cx + dx * t, cy + dy * t


def target_rect(scene: Scene, note: Annotation) -> tuple[float, float, float, float] | None:
    """The scene rectangle ``(x, y, w, h)`` an annotation points at; ``None`` when its target
    is not in the scene (a cluster split away, a layer not shown, a row collapsed)."""
    c, n = scene.clusters, scene.neurons
    if note.kind == "cluster":
        k = cluster_at(scene, note.target)
        return None if k is None else tuple(float(v) for v in c.rect[k])
    if note.kind == "neuron":
        i = neuron_at(scene, *note.target)
        if i is None:
            return None
        k = int(n.cluster[i])
        if int(c.facet[k]):  # matrix facet: the neuron's row of the matrix
            x, y, w, h = (float(v) for v in c.matrix_rect[k])
            rh = h / max(int(c.size[k]), 1)
            return x, y + int(n.matrix_row[i]) * rh, w, rh
        return tuple(float(v) for v in n.rect[i])
    for r in scene.rows:
        if r.kind != ROW_BETWEEN and (r.name == note.target or r.name.split("/")[-1] == note.target):
            x0, x1 = r.span(scene.bounds)
            return x0, r.y, x1 - x0, r.height
    return None


def place(scene: Scene, notes: Iterable[Annotation], camera: Camera, size: tuple[int, int]) -> list[Callout]:
    """The callouts of ``notes`` on the view of ``camera`` (``size`` pixels); annotations
    whose target is not in the scene are left out."""
    out = []
    for k, note in enumerate(notes):
        rect = target_rect(scene, note)
        if rect is None:
            continue
        x, y, w, h = rect
        ax0, ay0 = camera.scene_to_screen(x, y, size)
        ax1, ay1 = camera.scene_to_screen(x + w, y + h, size)
        cx, cy = ax1 + note.offset[0], ay0 + note.offset[1]  # from the top-right corner
        out.append(Callout(k, note.text, (ax0, ay0, ax1, ay1), (cx, cy)))
    return out
