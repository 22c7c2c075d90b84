"""Activation matrices (matrix facet): one instanced quad per neuron row.

The cells are not geometry: the fragment shader reads the neuron's class means from a float
texture (columns already in the scene's class order) and maps them through the theme's
sequential colour scale (``assets/colormaps.json``).
"""

from __future__ import annotations

import moderngl
import numpy as np

from ..layout.scene import Scene
from .gl import data_texture_shape, pad_texels, set_uniform
from .pick import PickKind
from .state import UNIT_CLASS_STATE, UNIT_CMAP, UNIT_MAIN, Frame, Pass, SharedState
from .visual import Visual

GEOMETRY = np.dtype([("rect", "f4", 4), ("neuron", "i4"), ("cluster", "i4")])
ACT_WIDTH = 4096


class MatrixVisual(Visual):
    """Rows of activation cells for clusters in the matrix facet."""

    VERT, FRAG = "matrix.vert", "matrix.frag"
    pick_kind = PickKind.NEURON  # a matrix row is its neuron

    def __init__(self, ctx: moderngl.Context, shared: SharedState, cmap_tex: moderngl.Texture):
        super().__init__(ctx, shared)
        self.cmap_tex = cmap_tex
        self.geometry: moderngl.Buffer | None = None
        self.act_tex: moderngl.Texture | None = None
        self.k = 0
        self.row_height = 0.0  # median row height, scene units (level of detail)
        self._order = np.zeros(0, np.int64)  # class order of the columns

    def upload(self, scene: Scene) -> None:
        n, c = scene.neurons, scene.clusters
        N = len(n.cluster)
        K = int(n.activation.shape[1]) if n.activation.ndim == 2 else 0
        self.k = K
        data = np.zeros(N, dtype=GEOMETRY)
        if N:
            mr = c.matrix_rect[n.cluster]
            rh = mr[:, 3] / np.maximum(c.size[n.cluster], 1)
            data["rect"] = np.stack([mr[:, 0], mr[:, 1] + n.matrix_row * rh, mr[:, 2], rh], 1)
            self.row_height = float(np.median(rh))
        data["neuron"] = np.arange(N)
        data["cluster"] = n.cluster
        self.count = N if K else 0
        self.geometry = self.uploads.write(self.ctx, "matrix.geometry", self.geometry, data)
        self._order = np.asarray(scene.class_order, dtype=np.int64)
        self.write_values(n.activation)
        self._build_vaos(
            [
                (self.shared.quad, "2f", "in_corner"),
                (self.geometry, "4f 1i 1i /i", "in_rect", "in_neuron", "in_cluster"),
                (self.shared.neuron_buf, "2f /i", "in_state"),
            ]
        )

    def write_values(self, values: np.ndarray) -> None:
        """Write the cell values (``[N, K]``, classes in snapshot order, 0…1 on the colour scale)
        into the value texture; the instance geometry is not touched."""
        order = getattr(self, "_order", np.zeros(0, np.int64))
        act = np.asarray(values, dtype=np.float32)
        K = int(act.shape[1]) if act.ndim == 2 else 0
        if K and len(order) == K:
            act = act[:, order]
        flat = np.ascontiguousarray(act.reshape(-1))
        shape = data_texture_shape(len(flat), ACT_WIDTH)
        if self.act_tex is None or self.act_tex.size != shape:
            if self.act_tex is not None:
                self.act_tex.release()
            self.act_tex = self.ctx.texture(shape, 1, dtype="f4")
            self.act_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self.uploads.texture("matrix.activation", self.act_tex, pad_texels(flat, shape))

    def render(self, p: Pass) -> None:
        if not p.lod["matrix"] or (p.frame.pick and p.lod["summary"][1] >= 0.5):
            return
        self.draw(p.frame, p.cmap_v, p.hovered(PickKind.NEURON))

    def draw(self, frame: Frame, cmap_v: float, hover: int = -1) -> None:
        if not self.count:
            return
        prog, vao = self.active(frame)
        set_uniform(prog, "u_k", self.k)
        if not frame.pick:
            t = frame.theme
            self.act_tex.use(UNIT_MAIN)
            self.cmap_tex.use(UNIT_CMAP)
            self.shared.class_tex.use(UNIT_CLASS_STATE)
            set_uniform(prog, "u_act", UNIT_MAIN)
            set_uniform(prog, "u_cmap", UNIT_CMAP)
            set_uniform(prog, "u_class_state", UNIT_CLASS_STATE)
            set_uniform(prog, "u_cmap_v", float(cmap_v))
            set_uniform(prog, "u_any_class", 1.0 if self.shared.any_class else 0.0)
            set_uniform(prog, "u_grid", t.matrix_grid)
            set_uniform(prog, "u_selection", t.selection)
            set_uniform(prog, "u_hover", t.hover)
            set_uniform(prog, "u_hover_neuron", int(hover))
        vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.count)

    def release(self) -> None:
        super().release()
        for obj in (self.geometry, self.act_tex):
            if obj is not None:
                obj.release()
