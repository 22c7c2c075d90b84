"""Bundled edges: instanced ribbons tessellated from cubic Bézier control points on the GPU.

Instances are sorted by decreasing ``|w|`` once, at upload, so the weight threshold and the
"strongest edges only" level of detail are just an instance *count* (no upload, no shader
branch): ``count = #{|w| ≥ threshold}``, capped when zoomed out.
"""

from __future__ import annotations

import moderngl
import numpy as np

from ..layout.scene import Edges
from .gl import set_uniform
from .pick import PickKind
from .state import Frame, Pass, SharedState
from .visual import Visual

GEOMETRY = np.dtype(
    [
        ("p01", "f4", 4),
        ("p23", "f4", 4),
        ("w", "f4"),
        ("w_row", "f4"),
        ("src", "i4"),
        ("dst", "i4"),
        ("id", "i4"),
    ]
)


def row_relative(weight: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``|w|`` over the largest ``|w|`` of the same in-between row (pair of layer rows): the
    width floor makes each pair's strongest bundle readable, however weak that pair is against
    the scene's strongest (weights' scales differ across layers)."""
    a = np.abs(np.asarray(weight, dtype=np.float64))
    row = np.asarray(row, dtype=np.int64)
    if len(row) != len(a) or not len(a):
        return (a / a.max() if len(a) and a.max() > 0 else a).astype(np.float32)
    peak = np.zeros(int(row.max()) + 1)
    np.maximum.at(peak, row, a)
    return (a / np.maximum(peak[row], 1e-30)).astype(np.float32)


class EdgesVisual(Visual):
    """Ribbons of width ∝ ``|w|`` (green positive, red negative), anti-aliased in the shader."""

    VERT, FRAG = "edge.vert", "edge.frag"
    layer = "edges"

    def __init__(
        self, ctx: moderngl.Context, shared: SharedState, name: str = "edges", detail: bool = False
    ) -> None:
        #: the neuron-level edges (drawn zoomed in, never picked) or the cluster edges
        self.detail = bool(detail)
        self.pick_kind = None if detail else PickKind.EDGE
        super().__init__(ctx, shared)
        self.name = name  # upload counter prefix
        self.geometry: moderngl.Buffer | None = None
        self.abs_sorted = np.zeros(0, dtype=np.float32)  # |w|, descending (instance order)
        self.order = np.zeros(0, dtype=np.int64)  # instance → Scene.edges index
        self.chord = 0.0  # median chord length, scene units (level of detail)
        self.w_max = 1.0
        self.scene_bundle: np.ndarray | None = None  # Scene.edges.bundle (edge order)

    def upload(
        self, e: Edges, src: np.ndarray | None = None, dst: np.ndarray | None = None
    ) -> None:
        """Write the pieces of ``e``; ``src`` / ``dst``: the cluster of each piece's ends for
        emphasis (default ``e.src`` / ``e.dst``, which are clusters in a Scene)."""
        w = np.asarray(e.weight, dtype=np.float32)
        self.scene_bundle = np.asarray(e.bundle, dtype=np.int64)
        order = np.argsort(-np.abs(w), kind="stable")
        self.order = order
        self.abs_sorted = np.abs(w)[order]
        self.w_max = float(self.abs_sorted[0]) if len(w) and self.abs_sorted[0] > 0 else 1.0
        ctrl = np.asarray(e.ctrl, dtype=np.float32).reshape(-1, 4, 2)[order]
        data = np.zeros(len(w), dtype=GEOMETRY)
        data["p01"] = ctrl[:, :2].reshape(-1, 4)
        data["p23"] = ctrl[:, 2:].reshape(-1, 4)
        sign = np.where(np.asarray(e.sign)[order] < 0, -1.0, 1.0)
        data["w"] = sign * np.maximum(np.abs(w[order]) / self.w_max, 1e-6)
        data["w_row"] = row_relative(w, getattr(e, "row", np.zeros(0)))[order]
        data["src"] = np.asarray(e.src if src is None else src)[order]
        data["dst"] = np.asarray(e.dst if dst is None else dst)[order]
        data["id"] = order
        self.count = len(data)
        if len(ctrl):
            self.chord = float(np.median(np.linalg.norm(ctrl[:, 3] - ctrl[:, 0], axis=1)))
        self.geometry = self.uploads.write(self.ctx, f"{self.name}.geometry", self.geometry, data)
        self._build_vaos(
            [
                (
                    self.geometry,
                    "4f 4f 1f 1f 1i 1i 1i /i",
                    "in_p01",
                    "in_p23",
                    "in_w",
                    "in_w_row",
                    "in_src",
                    "in_dst",
                    "in_id",
                )
            ]
        )

    def bundle_rank(self, n_bundles: int) -> np.ndarray:
        """Per bundle node, the instance rank of its strongest piece (it shows while drawn)."""
        out = np.full(n_bundles, np.iinfo(np.int32).max, dtype=np.int64)
        if self.scene_bundle is not None and len(self.order):
            rank = np.empty(len(self.order), dtype=np.int64)
            rank[self.order] = np.arange(len(self.order))
            m = self.scene_bundle >= 0
            np.minimum.at(out, self.scene_bundle[m], rank[m])
        return out

    def visible_count(self, threshold: float, cap: int | None) -> int:
        """How many of the strongest edges pass ``|w| ≥ threshold``, at most ``cap``."""
        n = int(np.searchsorted(-self.abs_sorted, -float(threshold), side="right"))
        return n if cap is None else min(n, int(cap))

    def render(self, p: Pass) -> None:
        width, lo, hi, context_alpha, floor = p.edge_style
        if self.detail:
            if not p.frame.pick and p.neuron_edges:
                n, seg = p.lod["neuron_edges"], p.lod["neuron_segments"]
                self.draw(p.frame, n, seg, width, lo, hi, floor_px=floor)
            return
        alpha = context_alpha if p.neuron_edges and not p.frame.pick else 1.0
        self.draw(p.frame, p.lod["edges"], p.lod["segments"], width, lo, hi, alpha, floor)

    def draw(
        self,
        frame: Frame,
        count: int,
        segments: int,
        width_scene: float = 6.0,
        min_px: float = 0.8,
        max_px: float = 24.0,
        alpha: float = 1.0,
        floor_px: float = 0.0,
    ) -> None:
        """``floor_px``: the strongest edge of each pair of rows is never thinner than this many
        pixels, the others in proportion (zoomed out, the strongest bundles stay readable)."""
        if count <= 0:
            return
        prog, vao = self.active(frame)
        t = frame.theme
        set_uniform(prog, "u_segments", int(segments))
        set_uniform(prog, "u_width_scene", float(width_scene))
        set_uniform(prog, "u_min_px", float(max(min_px, 5.0) if frame.pick else min_px))
        set_uniform(prog, "u_max_px", float(max_px))
        set_uniform(prog, "u_floor_px", float(floor_px))
        set_uniform(prog, "u_any_selection", 1.0 if self.shared.any_cluster_selected else 0.0)
        set_uniform(prog, "u_pos", t.positive)
        set_uniform(prog, "u_neg", t.negative)
        set_uniform(prog, "u_alpha", float(t.edge_alpha) * float(alpha))
        vao.render(moderngl.TRIANGLE_STRIP, vertices=2 * (segments + 1), instances=int(count))

    def release(self) -> None:
        super().release()
        if self.geometry is not None:
            self.geometry.release()
