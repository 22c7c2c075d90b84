"""Semantic zoom, far out: each cluster's representative neurons as a mosaic of large patches
(:func:`cnnvis_gl.layout.mosaic.mosaic_tiles`), cross-faded with the packed patches as they
shrink below a few pixels.  Not pickable: far out, a pick finds the cluster's frame."""

from __future__ import annotations

import moderngl
import numpy as np

from ..layout.mosaic import mosaic_tiles
from ..layout.scene import Scene
from .atlas import PatchAtlas, PatchSource
from .gl import set_uniform
from .patches import write_quads  # the same instanced quads as the packed patches
from .state import UNIT_MAIN, Frame, Pass, SharedState
from .visual import Visual


class MosaicVisual(Visual):
    """One instance per mosaic tile: a representative neuron's patch from the atlas."""

    VERT, FRAG = "mosaic.vert", "mosaic.frag"

    def __init__(self, ctx: moderngl.Context, shared: SharedState, atlas: PatchAtlas) -> None:
        super().__init__(ctx, shared)
        self.atlas = atlas
        self.geometry: moderngl.Buffer | None = None
        self.cluster_colors = np.zeros((0, 3), dtype=np.float32)  # mean of each cluster's tiles

    def upload(self, scene: Scene, source: PatchSource | None, pending: bool = False) -> None:
        """The tiles of ``scene`` (their patches are in the atlas once the patches are;
        ``pending``: no pictures yet — no tiles, grey cluster colours)."""
        if pending:
            self.count = 0
            self.cluster_colors = np.full((len(scene.clusters.id), 3), 0.32, dtype=np.float32)
            return
        tiles = mosaic_tiles(scene)
        n = scene.neurons
        keys = np.stack([n.unit[tiles.neuron], n.index[tiles.neuron]], 1).reshape(-1, 2)
        write_quads(self, "mosaic.geometry", source, scene.units, keys, tiles.rect, tiles.cluster)
        C = len(scene.clusters.id)
        sums = np.zeros((C, 3))
        np.add.at(sums, tiles.cluster, self.atlas.mean_colors(keys))
        counts = np.maximum(np.bincount(tiles.cluster, minlength=C), 1)[:, None]
        self.cluster_colors = (sums / counts).astype(np.float32)

    def render(self, p: Pass) -> None:
        if not p.frame.pick:
            self.draw(p.frame, float(p.lod["mosaic_alpha"]))

    def draw(self, frame: Frame, alpha: float) -> None:
        if not self.count or alpha <= 0.0 or self.atlas.texture is None:
            return
        prog, vao = self.active(frame)
        self.atlas.texture.use(UNIT_MAIN)
        set_uniform(prog, "u_atlas", UNIT_MAIN)
        set_uniform(prog, "u_alpha", float(alpha))
        vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.count)

    def release(self) -> None:
        super().release()
        if self.geometry is not None:
            self.geometry.release()
