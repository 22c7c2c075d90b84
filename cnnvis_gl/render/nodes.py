"""In-between (bundle) nodes: instanced anti-aliased discs, green/red by sign."""

from __future__ import annotations

import moderngl
import numpy as np

from ..layout.scene import Bundles
from .gl import set_uniform
from .pick import PickKind
from .state import Frame, Pass, SharedState
from .visual import Visual

GEOMETRY = np.dtype([("pos", "f4", 2), ("radius", "f4"), ("sign", "f4"), ("rank", "i4")])


class NodesVisual(Visual):
    """One disc per bicluster node; its radius grows with the number of bundled edges.

    Drawn into the cached edge layer; a node shows while its strongest piece is among the
    drawn edges (``rank < count``: the threshold and level of detail hide it with its edges).
    """

    VERT, FRAG = "node.vert", "node.frag"
    layer = "edges"

    def __init__(
        self,
        ctx: moderngl.Context,
        shared: SharedState,
        name: str = "bundles",
        detail: bool = False,
    ) -> None:
        #: the neuron-level edges' nodes (shown with them, never picked) or the cluster edges'
        self.detail = bool(detail)
        self.pick_kind = None if detail else PickKind.BUNDLE
        super().__init__(ctx, shared)
        self.name = name  # upload counter prefix
        self.geometry: moderngl.Buffer | None = None
        self.state_buf: moderngl.Buffer | None = None
        self._vao_geometry: moderngl.Buffer | None = None

    def upload(
        self, b: Bundles, rank: np.ndarray | None = None, emphasis: np.ndarray | None = None
    ) -> None:
        """Write the discs; ``rank``: each node's strongest piece's edge rank; ``emphasis``."""
        B = len(b.pos)
        data = np.zeros(B, dtype=GEOMETRY)
        data["pos"] = b.pos
        data["radius"] = 2.5 + 1.2 * np.sqrt(np.asarray(b.n_in) + np.asarray(b.n_out))
        data["sign"] = np.where(np.asarray(b.sign) >= 0, 1.0, -1.0)
        big = np.iinfo(np.int32).max
        data["rank"] = 0 if rank is None else np.minimum(np.asarray(rank), big)
        self.count = B
        self.geometry = self.uploads.write(self.ctx, f"{self.name}.geometry", self.geometry, data)
        self.set_state(np.ones(B, dtype=np.float32) if emphasis is None else emphasis)

    def set_state(self, emphasis: np.ndarray) -> None:
        """Per-node emphasis flags (1 = normal, 0 = dimmed): a B-float upload."""
        old = self.state_buf
        self.state_buf = self.uploads.write(
            self.ctx, f"{self.name}.state", self.state_buf, np.asarray(emphasis, np.float32)
        )
        if old is self.state_buf and self._vao_geometry is self.geometry:
            return  # the VAOs already read these buffers
        self._vao_geometry = self.geometry
        self._build_vaos(
            [
                (self.shared.quad, "2f", "in_corner"),
                (self.geometry, "2f 1f 1f 1i /i", "in_pos", "in_radius", "in_sign", "in_rank"),
                (self.state_buf, "1f /i", "in_state"),
            ]
        )

    def render(self, p: Pass) -> None:
        # the cluster edges' nodes hide under neuron-level edges, which show their own
        if self.detail != p.neuron_edges or (self.detail and p.frame.pick):
            return
        count = p.lod["neuron_edges"] if self.detail else p.lod["edges"]
        self.draw(p.frame, count, premultiplied=not p.frame.pick)

    def draw(self, frame: Frame, edge_count: int, premultiplied: bool = False) -> None:
        """Draw the nodes of the ``edge_count`` strongest edges (premultiplied for the cache)."""
        if not self.count:
            return
        prog, vao = self.active(frame)
        t = frame.theme
        set_uniform(prog, "u_edge_count", int(edge_count))
        set_uniform(prog, "u_premultiplied", 1.0 if premultiplied else 0.0)
        set_uniform(prog, "u_min_px", 2.5)
        set_uniform(prog, "u_pos", t.positive)
        set_uniform(prog, "u_neg", t.negative)
        set_uniform(prog, "u_border", t.node_border)
        vao.render(moderngl.TRIANGLE_STRIP, vertices=4, instances=self.count)

    def release(self) -> None:
        super().release()
        for obj in (self.geometry, self.state_buf):
            if obj is not None:
                obj.release()
