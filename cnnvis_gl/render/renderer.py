"""The scene renderer: draws a :class:`~cnnvis_gl.layout.scene.Scene` with moderngl.

It takes the GL context as a parameter, so the same code draws into a standalone EGL context
(:mod:`cnnvis_gl.render.offscreen`, tests) and into imgui-bundle's window
(``moderngl.create_context()`` in the runner's ``post_init``).

Geometry and appearance are separate (ARCHITECTURE §1): :meth:`SceneRenderer.set_scene` uploads
instance geometry once; facet, selection, theme, hover and edge-threshold changes write a small
state buffer/texture or only uniforms.  :attr:`SceneRenderer.upload_count` counts every upload by
buffer name so tests can check it.

Draw order: background, row bands, edges and bundle nodes (one cached layer), cluster frames,
patches, matrices, labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import moderngl
import numpy as np

from ..layout.scene import FACET_FEATURES, FACET_MATRIX, Bundles, Edges, Scene
from .atlas import PatchAtlas, PatchSource
from .camera import Camera, Viewport
from .edges import EdgesVisual
from .frames import FramesVisual, cluster_means
from .gl import Uploads, program, set_uniform
from .matrix import MatrixVisual
from .nodes import NodesVisual
from .patches import PatchesVisual
from .state import EMPHASIS, FACET, SELECTED, SUMMARY, UNIT_MAIN, Frame, SharedState
from .text import TextVisual
from .theme import Theme, colormap, diverging_colormap, get_theme

if TYPE_CHECKING:
    from ..layout.detail import NeuronEdges

PICK_KINDS = {0: "none", 1: "cluster", 2: "neuron", 3: "bundle", 4: "edge"}
PARTS = ("rows", "clusters", "neurons", "edges", "bundles", "labels")

BLEND_STRAIGHT = (moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA, moderngl.ONE,
                  moderngl.ONE_MINUS_SRC_ALPHA)  # fmt: skip
BLEND_PREMULT = (moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA)


@dataclass(frozen=True)
class LodSettings:
    """Level-of-detail thresholds (screen pixels).

    Attributes
    ----------
    patch_px
        Patches fade in as their median on-screen side grows from the first value to the
        second; below it the cluster frames show summary colours instead.
    matrix_row_px
        Same for the matrix rows' on-screen height.
    px_per_segment
        Target on-screen length of one Bézier segment; ``segments`` bounds the count.
    far_chord_px
        When the median edge spans fewer pixels than this, only ``far_edges`` strongest edges
        are drawn.
    max_edges
        Cap on drawn edges at any zoom (``None``: all that pass the threshold).
    edge_ink
        Budget of on-screen ribbon area, in viewports: the strongest edges are kept so that
        (visible edges × their on-screen length × 2 px) stays under ``edge_ink`` × the viewport.
    edge_vertices
        Budget of ribbon vertices per redraw of the edge layer (tessellation cost).
    edge_width
        Ribbon width at the largest ``|w|``, in scene units (clamped to ``edge_px``).
    neuron_edges_px
        Zoomed in so that a patch is at least this many pixels, the neuron-level edges (when
        set, :meth:`SceneRenderer.set_neuron_edges`) replace the cluster edges, which stay as
        context at ``context_edge_alpha``; their bundle nodes are hidden.
    """

    patch_px: tuple[float, float] = (3.0, 6.0)
    matrix_row_px: tuple[float, float] = (0.6, 1.5)
    px_per_segment: float = 10.0
    segments: tuple[int, int] = (3, 24)
    far_chord_px: float = 48.0
    far_edges: int = 4000
    max_edges: int | None = None
    edge_ink: float = 6.0
    edge_vertices: int = 400_000
    edge_width: float = 5.0
    edge_px: tuple[float, float] = (0.8, 22.0)
    neuron_edges_px: float = 10.0
    context_edge_alpha: float = 0.3


def _smoothstep(lo: float, hi: float, x: float) -> float:
    t = min(max((x - lo) / max(hi - lo, 1e-9), 0.0), 1.0)
    return t * t * (3 - 2 * t)


class SceneRenderer:
    """Draws a Scene; picks what is under a pixel.

    Parameters
    ----------
    ctx
        A moderngl context (OpenGL ≥ 3.3 core).
    snapshot
        Source of the neurons' patch pixels (a :class:`~cnnvis_gl.run.snapshot.Snapshot` or
        anything with its ``patches`` method); ``None`` draws grey patches.
    theme
        ``"dark"``, ``"light"`` or a :class:`~cnnvis_gl.render.theme.Theme`.
    msaa
        Samples for the cached edge layer (0 = off: edges, frames, discs and text are
        anti-aliased in their shaders, which is much cheaper on software GL).
    lod
        Level-of-detail thresholds.
    atlas_cell
        Texels per patch cell in the atlas (a power of two; patches are ``cell - 4`` pixels).
    """

    def __init__(
        self,
        ctx: moderngl.Context,
        snapshot: PatchSource | None = None,
        *,
        theme: str | Theme = "dark",
        msaa: int = 0,
        lod: LodSettings | None = None,
        atlas_cell: int = 32,
    ) -> None:
        self.ctx = ctx
        self.snapshot = snapshot
        self.theme = get_theme(theme)
        self.msaa = int(msaa)
        self.lod = lod or LodSettings()
        self.uploads = Uploads()
        self.shared = SharedState(ctx, self.uploads)
        self.atlas = PatchAtlas(ctx, cell=atlas_cell, uploads=self.uploads)
        self._cmap_names, self.cmap_tex = self._colormap_texture()
        self.patches = PatchesVisual(ctx, self.shared, self.atlas)
        self.frames = FramesVisual(ctx, self.shared, self.cmap_tex)
        self.matrix = MatrixVisual(ctx, self.shared, self.cmap_tex)
        self.nodes = NodesVisual(ctx, self.shared)
        self.edges = EdgesVisual(ctx, self.shared)
        # neuron-level edges of the clusters in view when zoomed in (layout.detail)
        self.detail_edges = EdgesVisual(ctx, self.shared, name="detail.edges")
        self.detail_nodes = NodesVisual(ctx, self.shared, name="detail.bundles")
        self.neuron_edges: NeuronEdges | None = None
        self._detail_ends: tuple[np.ndarray, np.ndarray] | None = None
        self.text = TextVisual(ctx, self.shared)
        self._composite = program(ctx, "composite.vert", "composite.frag")
        self._composite_vao = ctx.vertex_array(
            self._composite, [(self.shared.quad, "2f", "in_corner")]
        )
        self.scene: Scene | None = None
        self.edge_threshold = 0.0
        self.edges_visible = True
        self.hover: tuple[str, int] = ("none", -1)
        self.patch_side = 0.0
        self.last_frame: dict[str, Any] = {}
        self._last_view: tuple[Camera, Viewport] | None = None
        self._edge_version = 0
        self._edge_key: tuple | None = None
        self._edge_cam: tuple[Camera, Viewport] | None = None
        self._edge_data_key: tuple | None = None
        self._cache: dict[str, Any] = {}
        self._pick_fbo = ctx.simple_framebuffer((1, 1), components=4)
        #: the matrices show a signed difference ([-1, 1], diverging scale), not activations
        self.matrix_diverging = False
        self._new_patches = False  # set_snapshot: the next set_scene refills the atlas

    # ------------------------------------------------------------------ properties
    @property
    def upload_count(self) -> Uploads:
        """Uploads so far, by buffer name (a :class:`collections.Counter`)."""
        return self.uploads

    def _colormap_texture(self) -> tuple[list[str], moderngl.Texture]:
        names = ["viridis", "blues", "diverging:dark", "diverging:light"]
        rows = np.stack(
            [
                diverging_colormap(n[10:]) if n.startswith("diverging:") else colormap(n)
                for n in names
            ]
        )  # [M, 256, 3]
        tex = self.ctx.texture((256, len(names)), 3, np.ascontiguousarray(rows).tobytes())
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        self.uploads["colormaps"] += 1
        return names, tex

    def _cmap_v(self, diverging: bool = False) -> float:
        name = f"diverging:{self.theme.name}" if diverging else self.theme.colormap
        row = self._cmap_names.index(name) if name in self._cmap_names else 0
        return (row + 0.5) / len(self._cmap_names)

    # ------------------------------------------------------------------ data
    def set_snapshot(self, snapshot: PatchSource | None) -> None:
        """New patch pixels (another training step): the atlas is refilled on the next scene."""
        self.snapshot = snapshot
        self.atlas.clear()
        self._new_patches = True  # (the viewer sets the new step's scene right after)

    def set_scene(self, scene: Scene, changed: Iterable[str] | None = None) -> None:
        """Show ``scene``; upload only what changed.

        Parameters
        ----------
        scene
            The scene to draw.
        changed
            Parts to re-upload, among ``rows, clusters, neurons, edges, bundles, labels`` and
            ``facet`` (only the per-cluster facets, from ``scene.clusters.facet``).  ``None``
            compares each part with the previous scene by identity (the Scene is immutable,
            so an unchanged part is the same object).  A new scene resets the selection when
            its clusters or neurons changed.
        """
        old = self.scene
        if changed is None:
            if old is None:
                parts = set(PARTS)
            else:
                parts = {p for p in PARTS if getattr(scene, p) is not getattr(old, p)}
                if scene.bounds != old.bounds or scene.class_order is not old.class_order:
                    parts |= {"rows", "neurons"}
        else:
            parts = set(changed)
            unknown = parts - set(PARTS) - {"facet"}
            if unknown:
                raise ValueError(f"unknown scene parts {sorted(unknown)}; use {PARTS} or 'facet'")
        if self._new_patches:
            parts.add("neurons")
            self._new_patches = False
        self.scene = scene
        nodes = False
        if parts & {"rows", "clusters", "neurons"}:
            self.matrix_diverging = False  # the matrices show the new scene's activations
            c = scene.clusters
            summary = cluster_means(scene, scene.neurons.activation)
            self.shared.reset(c.facet, len(scene.neurons.cluster), len(scene.class_order), summary)
            self.patches.upload(scene, self.snapshot)
            self.matrix.upload(scene)
            self.frames.upload(scene, self.patches.mean_colors)
            rects = scene.neurons.rect
            self.patch_side = float(np.median(rects[:, 2])) if len(rects) else 0.0
            nodes = True  # node emphasis is derived from the (reset) cluster state
            self.neuron_edges = self._detail_ends = None  # its neuron indices are stale
            self._edge_version += 1
        elif "facet" in parts:
            self.set_facet(scene.clusters.facet)
        if "edges" in parts:
            self.edges.upload(scene.edges)
            self._edge_version += 1
        if nodes or parts & {"bundles", "edges"}:
            st = self.shared.cluster
            b = scene.bundles
            self.nodes.upload(
                b,
                self.edges.bundle_rank(len(b.pos)),
                self._bundle_emphasis(scene.edges, b, None, st[:, EMPHASIS], st[:, SELECTED]),
            )
            self._edge_version += 1
        if parts & {"labels", "clusters"}:
            self.text.upload(scene.labels, scene.clusters.id)

    # ------------------------------------------------------------------ appearance
    def set_facet(self, facet: int | str | np.ndarray, clusters: Any = None) -> None:
        """Switch facets: one value for ``clusters`` (default: all) or an array for all.

        ``facet`` is :data:`~cnnvis_gl.layout.scene.FACET_FEATURES` /
        :data:`~cnnvis_gl.layout.scene.FACET_MATRIX` or ``"features"`` / ``"matrix"``.
        Uploads the per-cluster state only.
        """
        if isinstance(facet, str):
            facet = {"features": FACET_FEATURES, "matrix": FACET_MATRIX}[facet]
        st = self.shared.cluster
        if clusters is None:
            st[:, FACET] = np.broadcast_to(np.asarray(facet, np.float32), st[:, FACET].shape)
        else:
            st[np.asarray(clusters, dtype=np.int64), FACET] = float(facet)
        self.shared.push_clusters()

    def set_selection(
        self,
        classes: Iterable[int] | None = None,
        neurons: Iterable[int] | None = None,
        clusters: Iterable[int] | None = None,
        quantile: float = 0.2,
    ) -> None:
        """Highlight classes, neurons and clusters (``None`` / empty clears each).

        Parameters
        ----------
        classes
            Class indices as in the snapshot (columns of ``Neurons.activation``; matrix column
            ``j`` shows class ``scene.class_order[j]``).  The neurons whose activation for any of
            them is in the top ``quantile`` of their unit stay bright, the others are dimmed;
            so are the clusters without such a neuron, and their matrix columns are
            emphasised.
        neurons
            Neuron indices (into ``scene.neurons``) outlined as selected.
        clusters
            Cluster indices outlined as selected; edges not touching them are dimmed.
        quantile
            Fraction of each unit's neurons kept bright by a class selection.

        Uploads the per-neuron, per-cluster, per-class and per-bundle state only.
        """
        scene = self.scene
        if scene is None:
            return
        sh = self.shared
        n = scene.neurons
        N, C = len(n.cluster), len(scene.clusters.rect)
        cls = np.asarray(sorted(set(classes or ())), dtype=np.int64)
        flag = np.ones(N, dtype=np.float32)
        col = np.zeros(len(scene.class_order), dtype=np.float32)
        if len(cls) and N:
            score = np.asarray(n.activation, np.float32)[:, cls].max(axis=1)
            keep = np.zeros(N, dtype=bool)
            for u in np.unique(n.unit):
                m = n.unit == u
                thr = np.quantile(score[m], 1.0 - float(quantile))
                keep[m] = score[m] >= thr
            flag = keep.astype(np.float32)
            order = np.asarray(scene.class_order, dtype=np.int64)
            col = np.isin(order, cls).astype(np.float32)
        sel = np.zeros(N, dtype=np.float32)
        if neurons is not None:
            idx = np.asarray(list(neurons), dtype=np.int64)
            sel[idx] = 1.0
            flag[idx] = 1.0
        sh.neuron[:, 0] = flag
        sh.neuron[:, 1] = sel
        emph = np.ones(C, dtype=np.float32)
        if len(cls) and N:
            emph = (np.bincount(n.cluster, weights=flag, minlength=C) > 0).astype(np.float32)
        csel = np.zeros(C, dtype=np.float32)
        if clusters is not None:
            csel[np.asarray(list(clusters), dtype=np.int64)] = 1.0
        sh.cluster[:, EMPHASIS] = emph
        sh.cluster[:, SELECTED] = csel
        sh.klass = col
        sh.any_class = bool(len(cls))
        sh.any_cluster_selected = bool(csel.any())
        sh.push_neurons()
        sh.push_clusters()
        sh.push_classes()
        self.nodes.set_state(self._bundle_emphasis(scene.edges, scene.bundles, None, emph, csel))
        if self.neuron_edges is not None:
            ne = self.neuron_edges
            self.detail_nodes.set_state(
                self._bundle_emphasis(ne.edges, ne.bundles, self._detail_ends, emph, csel)
            )
        self._edge_version += 1

    @staticmethod
    def _bundle_emphasis(
        e: Edges,
        bundles: Bundles,
        ends: tuple[np.ndarray, np.ndarray] | None,
        emph: np.ndarray,
        csel: np.ndarray,
    ) -> np.ndarray:
        """Per bundle node: the emphasis of the most emphasised cluster its pieces touch
        (``ends``: the clusters of the pieces' ends when ``e.src`` / ``e.dst`` are not)."""
        B = len(bundles.pos)
        if not B or not len(e.bundle):
            return np.ones(B, dtype=np.float32)
        ref = csel if csel.any() else emph
        val = np.zeros(len(e.bundle), dtype=np.float32)
        for end in ends or (e.src, e.dst):
            end = np.asarray(end)
            ok = end >= 0
            val[ok] = np.maximum(val[ok], ref[end[ok]])
        m = np.asarray(e.bundle) >= 0
        out = np.zeros(B, dtype=np.float32)
        np.maximum.at(out, np.asarray(e.bundle)[m], val[m])
        return out

    def set_matrix_values(self, values: np.ndarray | None) -> None:
        """Show ``values`` in the activation matrices instead of the activations.

        ``values`` is ``[N, K]`` (the scene's neurons × classes in snapshot order) of signed
        numbers in ``[-1, 1]``, drawn with a diverging scale (e.g. the difference of two
        training steps); ``None`` shows the activations again.  Writes the matrix value
        texture only (``matrix.activation``), never geometry.
        """
        scene = self.scene
        if scene is None:
            return
        if values is None:
            if self.matrix_diverging:
                self.matrix.write_values(scene.neurons.activation)
                self.shared.cluster[:, SUMMARY] = cluster_means(scene, scene.neurons.activation)
                self.shared.push_clusters()
            self.matrix_diverging = False
            return
        v = np.asarray(values, dtype=np.float32)
        if v.shape != scene.neurons.activation.shape:
            raise ValueError(
                f"matrix values of shape {v.shape}; the scene's neurons × classes are "
                f"{scene.neurons.activation.shape}"
            )
        cells = np.clip(v, -1.0, 1.0) * 0.5 + 0.5
        self.matrix.write_values(cells)
        self.shared.cluster[:, SUMMARY] = cluster_means(scene, cells)  # zoomed-out fills
        self.shared.push_clusters()
        self.matrix_diverging = True

    def set_hover(self, kind: str = "none", index: int = -1) -> None:
        """Outline the hovered cluster or neuron (uniforms only)."""
        self.hover = (kind, int(index))

    def set_theme(self, theme: str | Theme) -> None:
        """Switch theme (uniforms only; the cached edge layer is redrawn)."""
        self.theme = get_theme(theme)
        self._edge_version += 1

    def set_edge_threshold(self, threshold: float) -> None:
        """Hide edges with ``|w| < threshold`` (an instance count: no upload)."""
        self.edge_threshold = float(threshold)
        self._edge_version += 1

    def set_edge_quantile(self, keep: float) -> None:
        """Keep the strongest fraction ``keep`` of the edges (sets the threshold)."""
        w = self.edges.abs_sorted
        if not len(w):
            return
        k = int(np.clip(round(float(keep) * len(w)), 1, len(w)))
        self.set_edge_threshold(float(w[k - 1]))

    def set_edges_visible(self, visible: bool) -> None:
        """Show or hide all edges and bundle nodes."""
        self.edges_visible = bool(visible)
        self._edge_version += 1

    def set_neuron_edges(self, neuron_edges: NeuronEdges | None) -> None:
        """Neuron-level edges (:func:`cnnvis_gl.layout.detail.neuron_edges` of this scene) to
        draw when zoomed in (see ``LodSettings.neuron_edges_px``); ``None`` removes them.
        Uploads their own buffers only (``detail.*``)."""
        scene = self.scene
        if neuron_edges is None or scene is None:
            self.neuron_edges = self._detail_ends = None
            self._edge_version += 1
            return
        ends = neuron_edges.neuron_clusters(scene)
        self.detail_edges.upload(neuron_edges.edges, *ends)
        st = self.shared.cluster
        b = neuron_edges.bundles
        self.detail_nodes.upload(
            b,
            self.detail_edges.bundle_rank(len(b.pos)),
            self._bundle_emphasis(neuron_edges.edges, b, ends, st[:, EMPHASIS], st[:, SELECTED]),
        )
        self.neuron_edges, self._detail_ends = neuron_edges, ends
        self._edge_version += 1

    def wants_neuron_edges(self, camera: Camera) -> bool:
        """Zoomed in enough for neuron-level edges (patches of ``neuron_edges_px`` or more)."""
        return self.edges_visible and self.patch_side * camera.zoom >= self.lod.neuron_edges_px

    # ------------------------------------------------------------------ level of detail
    def level_of_detail(self, camera: Camera, viewport: Viewport = (1280, 800)) -> dict[str, Any]:
        """What is drawn at ``camera``: patch alpha, summary mixes, edge count and segments."""
        lod = self.lod
        z = camera.zoom
        w, h = float(viewport[0]), float(viewport[1])
        patch_alpha = _smoothstep(*lod.patch_px, self.patch_side * z)
        matrix_alpha = _smoothstep(*lod.matrix_row_px, self.matrix.row_height * z)
        chord_px = self.edges.chord * z
        segments = int(np.clip(round(chord_px / lod.px_per_segment), *lod.segments))
        caps = [lod.edge_vertices // (2 * (segments + 1))]
        if lod.max_edges is not None:
            caps.append(lod.max_edges)
        if chord_px < lod.far_chord_px:
            caps.append(lod.far_edges)
        if self.scene is not None and chord_px > 0:
            vis = self._visible_fraction(camera, (w, h))
            seen = vis * min(chord_px, float(np.hypot(w, h))) * 2.0
            caps.append(int(lod.edge_ink * w * h / max(seen, 1e-9)))
        cap = max(min(caps), 1)
        count = self.edges.visible_count(self.edge_threshold, cap) if self.edges_visible else 0
        detail = 0
        detail_segments = segments
        if self.neuron_edges is not None and count and self.wants_neuron_edges(camera):
            chord = self.detail_edges.chord * z
            detail_segments = int(np.clip(round(chord / lod.px_per_segment), *lod.segments))
            # one tessellation budget: the neuron edges get what the cluster edges leave (≥ ¼)
            left = max(lod.edge_vertices - count * 2 * (segments + 1), lod.edge_vertices // 4)
            budget = left // (2 * (detail_segments + 1))
            detail = min(self.detail_edges.count, max(budget, 1))  # 0: none to draw
        return {
            "patch_alpha": patch_alpha,
            "summary": (1.0 - patch_alpha, 1.0 - matrix_alpha),
            "matrix": matrix_alpha > 0.0,
            "segments": segments,
            "edges": count,
            "neuron_edges": detail,
            "neuron_segments": detail_segments,
        }

    def _visible_fraction(self, camera: Camera, viewport: Viewport) -> float:
        x0, y0, x1, y1 = (float(v) for v in self.scene.bounds)
        vx0, vy0, vx1, vy1 = camera.visible_rect(viewport)
        iw = max(min(x1, vx1) - max(x0, vx0), 0.0)
        ih = max(min(y1, vy1) - max(y0, vy0), 0.0)
        area = max((x1 - x0) * (y1 - y0), 1e-9)
        return min(max(iw * ih / area, 1e-6), 1.0)

    # ------------------------------------------------------------------ drawing
    def draw(
        self,
        camera: Camera,
        viewport: Viewport,
        *,
        target: moderngl.Framebuffer | None = None,
        moving: bool = False,
        clear: bool = True,
        detail_view: tuple[Camera, Viewport] | None = None,
    ) -> None:
        """Draw the scene into ``target`` (default: the context's current framebuffer).

        Parameters
        ----------
        camera
            The view.
        viewport
            Target size in pixels (width, height).
        target
            Framebuffer to draw into.
        moving
            The camera is being animated: reuse the cached edge layer, warped to the new view,
            instead of redrawing the edges each frame (redrawn on the first still frame).
        clear
            Clear to the theme's background first.
        detail_view
            ``(camera, viewport)`` that sets the level of detail, when it differs from the
            drawn one (tiles of a large image use the whole image's).
        """
        ctx = self.ctx
        w, h = int(viewport[0]), int(viewport[1])
        target = target or ctx.fbo
        self._last_view = (camera, (w, h))
        frame = Frame(camera, (w, h), self.theme)
        lod = self.level_of_detail(*(detail_view or (camera, (w, h))))
        hk, hi = self.hover
        info: dict[str, Any] = dict(lod)
        # edges first, into their cache (a separate framebuffer)
        edge_tex = None
        warp = (1.0, 1.0, 0.0, 0.0)
        if self.scene is not None and lod["edges"] > 0:
            edge_tex, warp, info["edge_cache"] = self._edge_layer(frame, lod, moving)
        target.use()
        ctx.viewport = (0, 0, w, h)
        ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        if clear:
            bg = self.theme.background
            target.clear(*bg)
        if self.scene is None:
            self.last_frame = info
            return
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = BLEND_STRAIGHT
        self.frames.draw_rows(frame)
        if edge_tex is not None:
            ctx.blend_func = BLEND_PREMULT
            edge_tex.use(UNIT_MAIN)
            set_uniform(self._composite, "u_layer", UNIT_MAIN)
            set_uniform(self._composite, "u_warp", warp)
            self._composite_vao.render(moderngl.TRIANGLE_STRIP, vertices=4)
            ctx.blend_func = BLEND_STRAIGHT
        cmap_v = self._cmap_v(self.matrix_diverging)
        self.frames.draw(frame, lod["summary"], cmap_v, hi if hk == "cluster" else -1)
        self.patches.draw(frame, lod["patch_alpha"], hi if hk == "neuron" else -1)
        if lod["matrix"]:
            mv = self._cmap_v(self.matrix_diverging)
            self.matrix.draw(frame, mv, hi if hk == "neuron" else -1)
        self.text.draw(frame)
        self.last_frame = info

    def _edge_layer(
        self, frame: Frame, lod: dict[str, Any], moving: bool
    ) -> tuple[moderngl.Texture, tuple[float, float, float, float], str]:
        """The cached edge layer for ``frame``: (texture, warp, how it was obtained)."""
        w, h = frame.viewport
        cache = self._ensure_cache(w, h)
        data_key = (self._edge_version, (w, h))
        key = (data_key, frame.camera, lod["edges"], lod["segments"], lod["neuron_edges"])
        if key == self._edge_key:
            return cache["tex"], (1.0, 1.0, 0.0, 0.0), "hit"
        if moving and self._edge_cam is not None and data_key == self._edge_data_key:
            old, _ = self._edge_cam
            s = frame.camera.zoom / old.zoom
            off = frame.camera.matrix((w, h)) @ np.array([*old.center, 1.0], dtype=np.float64)
            return cache["tex"], (s, s, float(off[0]), float(off[1])), "warp"
        ctx = self.ctx
        fbo = cache["msaa_fbo"] or cache["fbo"]
        fbo.use()
        ctx.viewport = (0, 0, w, h)
        fbo.clear(0.0, 0.0, 0.0, 0.0)
        ctx.enable(moderngl.BLEND)
        ctx.blend_func = BLEND_PREMULT
        lo, hi = self.lod.edge_px
        detail = lod["neuron_edges"]
        alpha = self.lod.context_edge_alpha if detail else 1.0
        self.edges.draw(frame, lod["edges"], lod["segments"], self.lod.edge_width, lo, hi, alpha)
        if detail:
            segs = lod["neuron_segments"]
            self.detail_edges.draw(frame, detail, segs, self.lod.edge_width, lo, hi)
            self.detail_nodes.draw(frame, detail, premultiplied=True)
        else:
            self.nodes.draw(frame, lod["edges"], premultiplied=True)
        if cache["msaa_fbo"] is not None:
            ctx.copy_framebuffer(cache["fbo"], cache["msaa_fbo"])
        self._edge_key, self._edge_data_key = key, data_key
        self._edge_cam = (frame.camera, (w, h))
        return cache["tex"], (1.0, 1.0, 0.0, 0.0), "redraw"

    def park(self) -> None:
        """Bind a framebuffer owned by the renderer.

        moderngl re-binds the current framebuffer after creating another one; call this before
        releasing a framebuffer the renderer last drew into (GL_INVALID_OPERATION otherwise).
        """
        self._pick_fbo.use()

    def _ensure_cache(self, w: int, h: int) -> dict[str, Any]:
        if self._cache.get("size") == (w, h):
            return self._cache
        self.park()
        self._release_cache()
        tex = self.ctx.texture((w, h), 4)
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        fbo = self.ctx.framebuffer(color_attachments=[tex])
        msaa_fbo = None
        samples = min(self.msaa, self.ctx.max_samples)
        if samples > 1:
            rb = self.ctx.renderbuffer((w, h), 4, samples=samples)
            msaa_fbo = self.ctx.framebuffer(color_attachments=[rb])
            self._cache["rb"] = rb
        self._cache.update(size=(w, h), tex=tex, fbo=fbo, msaa_fbo=msaa_fbo)
        self._edge_key = self._edge_data_key = self._edge_cam = None
        return self._cache

    def _release_cache(self) -> None:
        for k in ("msaa_fbo", "rb", "fbo", "tex"):
            obj = self._cache.pop(k, None)
            if obj is not None:
                obj.release()
        self._cache.clear()

    # ------------------------------------------------------------------ picking
    def pick(
        self,
        x: float,
        y: float,
        camera: Camera | None = None,
        viewport: Viewport | None = None,
    ) -> tuple[str, int]:
        """What is drawn at pixel ``(x, y)`` (top-left origin) of the last (or given) view.

        Renders the ID pass for that one pixel only, into the renderer's own 1×1 framebuffer;
        the framebuffer bound before the call is bound again after it.

        Returns
        -------
        (kind, index)
            ``kind`` is ``"cluster"``, ``"neuron"`` (a patch or a matrix row), ``"bundle"``,
            ``"edge"`` (index into ``scene.edges``) or ``"none"`` (index -1).
        """
        if camera is None or viewport is None:
            if self._last_view is None:
                raise RuntimeError("pick() needs a camera and viewport before the first draw()")
            camera = camera or self._last_view[0]
            viewport = viewport or self._last_view[1]
        if self.scene is None:
            return ("none", -1)
        ctx = self.ctx
        prev = ctx.fbo
        px, py = int(np.floor(x)), int(np.floor(y))
        cam = camera.tile(px, py, (1, 1), viewport)
        frame = Frame(cam, (1, 1), self.theme, pick=True)
        lod = self.level_of_detail(camera, viewport)  # the real view's detail, not the tile's
        self._pick_fbo.use()
        ctx.viewport = (0, 0, 1, 1)
        self._pick_fbo.clear(0.0, 0.0, 0.0, 0.0)
        ctx.disable(moderngl.BLEND)
        lo, hi = self.lod.edge_px
        if lod["edges"]:
            self.edges.draw(frame, lod["edges"], lod["segments"], self.lod.edge_width, lo, hi)
            if not lod["neuron_edges"]:  # hidden under neuron-level edges (as drawn)
                self.nodes.draw(frame, lod["edges"])
        self.frames.draw(frame, lod["summary"], self._cmap_v())
        if lod["patch_alpha"] >= 0.5:
            self.patches.draw(frame, 1.0)
        if lod["matrix"] and lod["summary"][1] < 0.5:
            self.matrix.draw(frame, self._cmap_v())
        raw = self._pick_fbo.read(components=4, alignment=1)
        ctx.enable(moderngl.BLEND)
        if prev is not None:
            prev.use()  # e.g. the window's framebuffer, which ImGui draws into next
        kind = raw[0]
        index = (raw[1] << 16 | raw[2] << 8 | raw[3]) - 1
        name = PICK_KINDS.get(kind, "none")
        return (name, index) if name != "none" else ("none", -1)

    def matrix_class_at(self, scene_x: float, neuron: int) -> int:
        """Class index under scene x-coordinate ``scene_x`` in ``neuron``'s matrix row."""
        scene = self.scene
        c = int(scene.neurons.cluster[neuron])
        x0, _, w, _ = (float(v) for v in scene.clusters.matrix_rect[c])
        k = len(scene.class_order)
        col = int(np.clip(np.floor((scene_x - x0) / max(w, 1e-9) * k), 0, k - 1))
        return int(scene.class_order[col])

    # ------------------------------------------------------------------ cleanup
    def release(self) -> None:
        """Free every GL object (call before the context goes away)."""
        for v in (self.patches, self.frames, self.matrix, self.nodes, self.edges, self.text):
            v.release()
        self.detail_edges.release()
        self.detail_nodes.release()
        self._release_cache()
        self._composite_vao.release()
        self._composite.release()
        # leave the default framebuffer bound, not a released one (see park())
        self.ctx.detect_framebuffer(0).use()
        self._pick_fbo.release()
        self.cmap_tex.release()
        self.atlas.release()
        self.shared.release()
