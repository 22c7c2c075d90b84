"""Row bands and cluster frames: instanced rounded rectangles, themed by uniforms."""

from __future__ import annotations

import moderngl
import numpy as np

from ..layout.scene import ROW_BETWEEN, Scene
from .gl import set_uniform
from .pick import PickKind
from .state import UNIT_CMAP, Frame, Pass, SharedState
from .visual import Visual

GEOMETRY = np.dtype(
    [
        ("rect", "f4", 4),
        ("color", "f4", 3),
        ("summary", "f4", 3),
        ("kind", "i4"),
        ("cluster", "i4"),
    ]
)
FORMAT = "4f 3f 3f 1i 1i /i"
ATTRS = ("in_rect", "in_color", "in_summary_f", "in_kind", "in_cluster")
KIND_ROW, KIND_ROW_ALT, KIND_BETWEEN, KIND_FRAME = 0, 1, 2, 3


def cluster_means(scene: Scene, values: np.ndarray) -> np.ndarray:
    """Per cluster, the mean of ``values[N, K]`` (one row per neuron of ``scene``)."""
    n = scene.neurons
    C = len(scene.clusters.rect)
    if not len(n.cluster) or not np.size(values):
        return np.zeros(C, dtype=np.float32)
    counts = np.maximum(np.bincount(n.cluster, minlength=C), 1)
    per_neuron = np.asarray(values, dtype=np.float64).mean(axis=1)
    return (np.bincount(n.cluster, weights=per_neuron, minlength=C) / counts).astype(np.float32)


class FramesVisual(Visual):
    """Row bands (drawn under the edges) and cluster frames (over them).

    A frame is filled with its cluster's summary colour (mean patch colour, or in the matrix
    facet the colour of the cluster's ``SUMMARY`` state: its mean activation, or mean
    difference in compare mode) when the contents are too small to be seen (level of detail).
    """

    VERT, FRAG = "rect.vert", "rect.frag"
    pick_kind = PickKind.CLUSTER

    def __init__(self, ctx: moderngl.Context, shared: SharedState, cmap_tex: moderngl.Texture):
        super().__init__(ctx, shared)
        self.cmap_tex = cmap_tex
        self.rows_buf: moderngl.Buffer | None = None
        self.frames_buf: moderngl.Buffer | None = None
        self.n_rows = 0

    def upload(self, scene: Scene, mean_colors: np.ndarray) -> None:
        """Write row bands and frames; ``mean_colors`` are the neurons' mean patch colours."""
        rows = np.zeros(len(scene.rows), dtype=GEOMETRY)
        parity = 0
        for i, r in enumerate(scene.rows):
            x0, x1 = r.span(scene.bounds)
            rows[i]["rect"] = (x0, r.y, x1 - x0, r.height)
            if r.kind == ROW_BETWEEN:
                rows[i]["kind"] = KIND_BETWEEN
            else:
                rows[i]["kind"] = KIND_ROW if parity % 2 == 0 else KIND_ROW_ALT
                parity += 1
        rows["cluster"] = -1
        c = scene.clusters
        n = scene.neurons
        C = len(c.rect)
        frames = np.zeros(C, dtype=GEOMETRY)
        frames["rect"] = c.rect
        frames["color"] = c.color
        frames["kind"] = KIND_FRAME
        frames["cluster"] = np.arange(C)
        if len(n.cluster) and C:
            counts = np.maximum(np.bincount(n.cluster, minlength=C), 1)[:, None]
            if len(mean_colors) == len(n.cluster):
                sums = np.zeros((C, 3))
                np.add.at(sums, n.cluster, mean_colors)
                frames["summary"] = sums / counts
        self.n_rows, self.count = len(rows), C
        self.rows_buf = self.uploads.write(self.ctx, "rows.geometry", self.rows_buf, rows)
        self.frames_buf = self.uploads.write(self.ctx, "frames.geometry", self.frames_buf, frames)
        quad = (self.shared.quad, "2f", "in_corner")
        self._vertex_array("rows", self.prog, [quad, (self.rows_buf, FORMAT, *ATTRS)])
        self._build_vaos([quad, (self.frames_buf, FORMAT, *ATTRS)])

    def _uniforms(self, prog: moderngl.Program, frame: Frame, summary: tuple[float, float]):
        t = frame.theme
        fills = np.array([t.row_fill, t.row_fill_alt, t.between_fill, t.frame_fill], np.float32)
        set_uniform(prog, "u_fill", fills.tobytes())
        set_uniform(prog, "u_border", t.frame_border)
        set_uniform(prog, "u_selection", t.selection)
        set_uniform(prog, "u_hover", t.hover)
        set_uniform(prog, "u_border_px", 1.25)
        set_uniform(prog, "u_radius", 4.0)
        set_uniform(prog, "u_summary", summary)
        self.cmap_tex.use(UNIT_CMAP)
        set_uniform(prog, "u_cmap", UNIT_CMAP)

    def draw_rows(self, frame: Frame) -> None:
        if not self.n_rows or frame.pick:
            return
        self.shared.bind(self.prog, frame)
        self._uniforms(self.prog, frame, (0.0, 0.0))
        self.vaos["rows"].render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.n_rows)

    def render(self, p: Pass) -> None:
        self.draw(p.frame, p.lod["summary"], p.cmap_v, p.hovered(PickKind.CLUSTER))

    def draw(
        self, frame: Frame, summary: tuple[float, float], cmap_v: float, hover: int = -1
    ) -> None:
        if not self.count:
            return
        prog, vao = self.active(frame)
        self._uniforms(prog, frame, summary)
        set_uniform(prog, "u_cmap_v", float(cmap_v))
        set_uniform(prog, "u_hover_cluster", int(hover))
        vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.count)

    def release(self) -> None:
        super().release()
        for b in (self.rows_buf, self.frames_buf):
            if b is not None:
                b.release()
