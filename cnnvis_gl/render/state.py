"""GPU state shared by the visuals: the unit quad, per-cluster/neuron/class appearance state and
the per-frame uniforms.

Appearance lives here, apart from geometry: a facet switch writes the per-cluster state texture
(C texels), a class or neuron selection writes the per-neuron state buffer (N × 8 bytes) and the
per-class texture (K texels).  Geometry buffers are never touched by those changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import moderngl
import numpy as np

from .camera import Camera, mat3_bytes
from .gl import Uploads, data_texture_shape, pad_texels, set_uniform
from .theme import Theme, colormap, diverging_colormap

# texture units
UNIT_CLUSTER_STATE = 0
UNIT_MAIN = 1  # atlas / activations / SDF font / cached layer
UNIT_CMAP = 2
UNIT_CLASS_STATE = 3

# cluster state channels; SUMMARY: the matrix facet's zoomed-out fill, a colour-scale position
# in [0, 1] (the cluster's mean activation, or its mean difference in compare mode)
FACET, EMPHASIS, SELECTED, SUMMARY = 0, 1, 2, 3


@dataclass(frozen=True)
class Frame:
    """What every visual needs to draw one frame."""

    camera: Camera
    viewport: tuple[int, int]
    theme: Theme
    pick: bool = False

    @property
    def zoom(self) -> float:
        return self.camera.zoom


@dataclass(frozen=True)
class Pass:
    """One pass over the visuals: a frame (drawn, or the ID pass when ``frame.pick``), its
    level of detail (:meth:`SceneRenderer.level_of_detail`) and what every visual reads.

    Attributes
    ----------
    hover
        ``(kind, index)`` of the hovered thing (outlined by the visual of that kind).
    cmap_v
        Row of the colormap texture the matrices and summaries use.
    edge_style
        Ribbon width at the largest ``|w|`` (scene units), its min and max in pixels, the
        opacity of the cluster edges under neuron-level edges, and the floor of the width at
        the largest ``|w|`` in pixels (see ``LodSettings.edge_floor_px``).
    """

    frame: Frame
    lod: dict[str, Any]
    hover: tuple[str, int] = ("none", -1)
    cmap_v: float = 0.0
    edge_style: tuple[float, float, float, float, float] = (5.0, 0.8, 22.0, 0.3, 5.0)

    def hovered(self, kind: str) -> int:
        """Index of the hovered thing if it is of ``kind``, else -1."""
        return int(self.hover[1]) if self.hover[0] == kind else -1

    @property
    def neuron_edges(self) -> bool:
        """Neuron-level edges replace the cluster edges' nodes in this pass."""
        return bool(self.lod.get("neuron_edges"))


class SharedState:
    """Unit quad + appearance state of the current scene (see module docstring)."""

    def __init__(self, ctx: moderngl.Context, uploads: Uploads) -> None:
        self.ctx = ctx
        self.uploads = uploads
        corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
        self.quad = ctx.buffer(corners.tobytes())  # triangle strip
        self.cluster = np.zeros((0, 4), dtype=np.float32)
        self.neuron = np.zeros((0, 2), dtype=np.float32)
        self.klass = np.zeros(0, dtype=np.float32)
        self.cluster_tex: moderngl.Texture | None = None
        self.class_tex: moderngl.Texture | None = None
        self.neuron_buf: moderngl.Buffer | None = None
        self.any_class = False
        self.any_cluster_selected = False
        self._resize(0, 0, 0)
        self.cmap_names, self.cmap_tex = self._colormap_texture()

    # ------------------------------------------------------------------ colour scales
    def _colormap_texture(self) -> tuple[list[str], moderngl.Texture]:
        """One row per colour scale (matrices, summaries): the themes' and the diverging ones."""
        names = ["viridis", "blues", "diverging:dark", "diverging:light"]
        rows = np.stack(
            [diverging_colormap(n[10:]) if n.startswith("diverging:") else colormap(n) for n in names]
        )  # [M, 256, 3]
        tex = self.ctx.texture((256, len(names)), 3, np.ascontiguousarray(rows).tobytes())
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        self.uploads["colormaps"] += 1
        return names, tex

    def cmap_v(self, theme: Theme, diverging: bool = False) -> float:
        """The texture coordinate of ``theme``'s colour scale (or its diverging one)."""
        name = f"diverging:{theme.name}" if diverging else theme.colormap
        row = self.cmap_names.index(name) if name in self.cmap_names else 0
        return (row + 0.5) / len(self.cmap_names)

    # ------------------------------------------------------------------ sizes
    def _resize(self, n_clusters: int, n_neurons: int, n_classes: int) -> None:
        shape = data_texture_shape(n_clusters)
        if self.cluster_tex is None or self.cluster_tex.size != shape:
            if self.cluster_tex is not None:
                self.cluster_tex.release()
            self.cluster_tex = self.ctx.texture(shape, 4, dtype="f4")
            self.cluster_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        kshape = (max(n_classes, 1), 1)
        if self.class_tex is None or self.class_tex.size != kshape:
            if self.class_tex is not None:
                self.class_tex.release()
            self.class_tex = self.ctx.texture(kshape, 1, dtype="f4")
            self.class_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)

    def reset(
        self, facet: np.ndarray, n_neurons: int, n_classes: int, summary: np.ndarray | None = None
    ) -> None:
        """New scene: all clusters emphasised, nothing selected, facets (and the matrix
        summaries) from the scene."""
        c = len(facet)
        self._resize(c, n_neurons, n_classes)
        self.cluster = np.zeros((c, 4), dtype=np.float32)
        self.cluster[:, FACET] = np.asarray(facet, dtype=np.float32)
        self.cluster[:, EMPHASIS] = 1.0
        if summary is not None:
            self.cluster[:, SUMMARY] = summary
        self.neuron = np.zeros((n_neurons, 2), dtype=np.float32)
        self.neuron[:, 0] = 1.0
        self.klass = np.zeros(n_classes, dtype=np.float32)
        self.any_class = False
        self.any_cluster_selected = False
        self.push_clusters()
        self.push_neurons()
        self.push_classes()

    # ------------------------------------------------------------------ uploads
    def push_clusters(self) -> None:
        shape = self.cluster_tex.size
        self.uploads.texture("clusters.state", self.cluster_tex, pad_texels(self.cluster, shape))

    def push_neurons(self) -> None:
        self.neuron_buf = self.uploads.write(
            self.ctx, "neurons.state", self.neuron_buf, self.neuron.astype(np.float32)
        )

    def push_classes(self) -> None:
        data = np.zeros(self.class_tex.size[0], dtype=np.float32)
        data[: len(self.klass)] = self.klass
        self.uploads.texture("classes.state", self.class_tex, data)

    # ------------------------------------------------------------------ per frame
    def bind(self, prog: moderngl.Program, frame: Frame) -> None:
        """Set the common uniforms of ``prog`` for ``frame`` and bind the state textures."""
        self.cluster_tex.use(UNIT_CLUSTER_STATE)
        set_uniform(prog, "u_cluster_state", UNIT_CLUSTER_STATE)
        set_uniform(prog, "u_view", mat3_bytes(frame.camera.matrix(frame.viewport)))
        set_uniform(prog, "u_viewport", (float(frame.viewport[0]), float(frame.viewport[1])))
        set_uniform(prog, "u_zoom", float(frame.camera.zoom))
        set_uniform(prog, "u_dim", float(frame.theme.dim))

    def release(self) -> None:
        for obj in (self.quad, self.cluster_tex, self.class_tex, self.neuron_buf, self.cmap_tex):
            if obj is not None:
                obj.release()
