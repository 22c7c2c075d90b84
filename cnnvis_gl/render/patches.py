"""Neuron patches (learned-features facet): instanced textured quads from the patch atlas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import moderngl
import numpy as np

from ..layout.scene import Scene
from .atlas import PatchAtlas, PatchSource
from .gl import set_uniform
from .pick import PickKind
from .state import UNIT_MAIN, Frame, Pass, SharedState
from .visual import Visual

GEOMETRY = np.dtype([("rect", "f4", 4), ("uv", "f4", 4), ("layer", "f4"), ("cluster", "i4")])


def write_quads(
    v: Any, name: str, source: PatchSource | None, units: Any, keys: np.ndarray,
    rects: np.ndarray, clusters: np.ndarray, extra: Sequence[Any] = (),
) -> None:  # fmt: skip
    """Upload instanced quads showing atlas patches (``keys``: unit, channel) at ``rects`` into
    visual ``v``'s ``geometry`` buffer (counted as ``name``) and build its vertex arrays."""
    uv, layer = v.atlas.ensure(source, units, keys)
    data = np.zeros(len(keys), dtype=GEOMETRY)
    data["rect"] = rects
    data["uv"] = uv
    data["layer"] = layer
    data["cluster"] = clusters
    v.count = len(data)
    v.geometry = v.uploads.write(v.ctx, name, v.geometry, data)
    v._build_vaos(
        [
            (v.shared.quad, "2f", "in_corner"),
            (v.geometry, "4f 4f 1f 1i /i", "in_rect", "in_uv", "in_layer", "in_cluster"),
            *extra,
        ]
    )


class PatchesVisual(Visual):
    """One instance per neuron: its rectangle and its patch from :class:`PatchAtlas`.

    Hidden (culled in the vertex shader) for clusters showing their matrix; dimmed per neuron
    by the class selection (shared neuron state), outlined when selected or hovered.  A scene
    of at least :attr:`lazy_above` neurons fills the atlas only when its patches are first
    drawn (zoomed in far enough): fitted, a big network shows its clusters' mosaics, and
    opening it need not fetch and upload every patch first.
    """

    VERT, FRAG = "patch.vert", "patch.frag"
    pick_kind = PickKind.NEURON
    lazy_above = 20_000

    def __init__(self, ctx: moderngl.Context, shared: SharedState, atlas: PatchAtlas) -> None:
        super().__init__(ctx, shared)
        self.atlas = atlas
        self.geometry: moderngl.Buffer | None = None
        self.mean_colors = np.zeros((0, 3), dtype=np.float32)
        self.pending: Scene | None = None  # a big scene whose patches are not uploaded yet
        self.source: PatchSource | None = None

    def upload(self, scene: Scene, source: PatchSource | None) -> None:
        """Write the instance geometry (fills the atlas with any missing patches first);
        deferred to the first frame that draws the patches for a big scene."""
        self.source = source
        if len(scene.neurons.unit) >= self.lazy_above:
            self.pending, self.count = scene, 0
            self.mean_colors = np.zeros((0, 3), dtype=np.float32)  # not known yet
            return
        self.pending = None
        self._write(scene)

    def _write(self, scene: Scene) -> None:
        n = scene.neurons
        keys = np.stack([n.unit, n.index], 1) if len(n.unit) else np.zeros((0, 2), np.int64)
        write_quads(self, "patches.geometry", self.source, scene.units, keys, n.rect, n.cluster,
                    [(self.shared.neuron_buf, "2f /i", "in_state")])  # fmt: skip
        self.mean_colors = self.atlas.mean_colors(keys)

    def render(self, p: Pass) -> None:
        alpha = float(p.lod["patch_alpha"])
        shown = float(p.lod["patches_drawn"]) > 0.0 or (p.frame.pick and alpha >= 0.5)
        if self.pending is not None and shown:  # zoomed in on a big scene: upload them now
            scene, self.pending = self.pending, None
            prev = self.ctx.fbo
            self._write(scene)
            prev.use()
        if not p.frame.pick:
            self.draw(p.frame, float(p.lod["patches_drawn"]), p.hovered(PickKind.NEURON))
        elif alpha >= 0.5:  # picked where they are more visible than the summary colour
            self.draw(p.frame, 1.0)

    def draw(self, frame: Frame, alpha: float = 1.0, hover: int = -1) -> None:
        if not self.count or alpha <= 0.0 or self.atlas.texture is None:
            return
        prog, vao = self.active(frame)
        self.atlas.texture.use(UNIT_MAIN)
        set_uniform(prog, "u_atlas", UNIT_MAIN)
        set_uniform(prog, "u_alpha", float(alpha))
        set_uniform(prog, "u_selection", frame.theme.selection)
        set_uniform(prog, "u_hover", frame.theme.hover)
        set_uniform(prog, "u_hover_neuron", int(hover))
        vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.count)

    def release(self) -> None:
        super().release()
        if self.geometry is not None:
            self.geometry.release()
