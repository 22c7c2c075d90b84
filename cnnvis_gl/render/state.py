"""GPU state shared by the visuals: the unit quad, per-cluster/neuron/class appearance state and
the per-frame uniforms.

Appearance lives here, apart from geometry: a facet switch writes the per-cluster state texture
(C texels), a class or neuron selection writes the per-neuron state buffer (N × 8 bytes) and the
per-class texture (K texels).  Geometry buffers are never touched by those changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np

from .camera import Camera, mat3_bytes
from .gl import Uploads, data_texture_shape, pad_texels, set_uniform
from .theme import Theme

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
        for obj in (self.quad, self.cluster_tex, self.class_tex, self.neuron_buf):
            if obj is not None:
                obj.release()
