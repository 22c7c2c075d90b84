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

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

import moderngl
import numpy as np

from ..layout.scene import FACET_FEATURES, FACET_MATRIX, Scene
from ..layout.search import matrix_class_at
from ..layout.selection import bundle_emphasis, highlight
from .atlas import PatchAtlas, PatchSource
from .camera import Camera, Viewport
from .edge_layer import BLEND_STRAIGHT, EdgeLayer
from .edges import EdgesVisual
from .frames import FramesVisual, cluster_means
from .gl import Uploads
from .lod import LodSettings, level_of_detail
from .matrix import MatrixVisual
from .mosaic import MosaicVisual
from .nodes import NodesVisual
from .pan_cache import PanCache
from .patches import PatchesVisual
from .pick import PickKind
from .state import EMPHASIS, FACET, SELECTED, SUMMARY, Frame, Pass, SharedState
from .text import TextVisual, column_obstacles
from .theme import Theme, get_theme
from .visual import Visual

if TYPE_CHECKING:
    from ..layout.detail import NeuronEdges

PARTS = ("rows", "clusters", "neurons", "edges", "bundles", "labels")



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
        self.patches = PatchesVisual(ctx, self.shared, self.atlas)
        self.mosaic = MosaicVisual(ctx, self.shared, self.atlas)
        self.frames = FramesVisual(ctx, self.shared, self.shared.cmap_tex)
        self.matrix = MatrixVisual(ctx, self.shared, self.shared.cmap_tex)
        self.nodes = NodesVisual(ctx, self.shared)
        self.edges = EdgesVisual(ctx, self.shared)
        # neuron-level edges of the clusters in view when zoomed in (layout.detail)
        self.detail_edges = EdgesVisual(ctx, self.shared, name="detail.edges", detail=True)
        self.detail_nodes = NodesVisual(ctx, self.shared, name="detail.bundles", detail=True)
        self.neuron_edges: NeuronEdges | None = None
        self._detail_ends: tuple[np.ndarray, np.ndarray] | None = None
        self.text = TextVisual(ctx, self.shared)
        #: every visual, in drawing order within its layer (the edge layer is cached and
        #: composited under the scene layer); the ID pass draws the pickable ones, same order
        self.visuals: list[Visual] = [
            self.edges,
            self.detail_edges,
            self.nodes,
            self.detail_nodes,
            self.frames,
            self.mosaic,
            self.patches,
            self.matrix,
            self.text,
        ]
        self.edge_layer = EdgeLayer(ctx, self.shared.quad, msaa=self.msaa)
        self.pan_cache = PanCache(ctx, self.shared.quad)
        self.scene: Scene | None = None
        self.edge_threshold = 0.0
        self.edges_visible = True
        self.hover: tuple[str, int] = ("none", -1)
        self.patch_side = 0.0
        self.last_frame: dict[str, Any] = {}
        self._last_view: tuple[Camera, Viewport] | None = None
        self._pick_fbo = ctx.simple_framebuffer((1, 1), components=4)
        #: the matrices show a signed difference ([-1, 1], diverging scale), not activations
        self.matrix_diverging = False
        self._new_patches = False  # set_snapshot: the next set_scene refills the atlas
        self.pixels_pending = False  # set_snapshot(pending=True): no pictures to show yet

    # ------------------------------------------------------------------ properties
    @property
    def upload_count(self) -> Uploads:
        """Uploads so far, by buffer name (a :class:`collections.Counter`)."""
        return self.uploads

    # ------------------------------------------------------------------ data
    def set_patch_source(self, source: PatchSource | None) -> None:
        """The same patch pixels from another source (e.g. one that has fetched more of them):
        the atlas is kept."""
        self.snapshot = self.patches.source = source

    def set_snapshot(self, snapshot: PatchSource | None, pending: bool = False) -> None:
        """New patch pixels (another training step): the atlas is refilled on the next scene.
        ``pending``: the source has not fetched the mosaics' pictures yet (a draft shown at
        once): mosaics stay empty and frames grey until a ``set_snapshot`` without it."""
        self.snapshot = snapshot
        self.pixels_pending = bool(pending)
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
            self.mosaic.upload(scene, None if self.pixels_pending else self.snapshot, self.pixels_pending)
            self.matrix.upload(scene)
            mean = self.patches.mean_colors  # (a big scene's patches wait: its tiles' colours)
            if len(mean) != len(scene.neurons.cluster):
                mean = self.mosaic.cluster_colors[scene.neurons.cluster]
            self.frames.upload(scene, mean)
            rects = scene.neurons.rect
            self.patch_side = float(np.median(rects[:, 2])) if len(rects) else 0.0
            nodes = True  # node emphasis is derived from the (reset) cluster state
            self.neuron_edges = self._detail_ends = None  # its neuron indices are stale
            self.edge_layer.invalidate()
        elif "facet" in parts:
            self.set_facet(scene.clusters.facet)
        if "edges" in parts:
            self.edges.upload(scene.edges)
            self.edge_layer.invalidate()
        if nodes or parts & {"bundles", "edges"}:
            st = self.shared.cluster
            b = scene.bundles
            self.nodes.upload(
                b,
                self.edges.bundle_rank(len(b.pos)),
                bundle_emphasis(scene.edges, b, None, st[:, EMPHASIS], st[:, SELECTED]),
            )
            self.edge_layer.invalidate()
        if parts & {"labels", "clusters"}:
            self.text.upload(scene.labels, scene.clusters.id, column_obstacles(scene))

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
        emphasis: np.ndarray | None = None,
    ) -> None:
        """Highlight classes, neurons and clusters (``None`` / empty clears each).

        Parameters
        ----------
        classes
            Class indices as in the snapshot (columns of ``Neurons.activation``; matrix column
            ``j`` shows class ``scene.class_order[j]``).  The rule is
            :func:`cnnvis_gl.layout.selection.highlight`: the neurons whose activation for any
            of them is in the top ``quantile`` of their unit stay bright, the others are
            dimmed; so are the clusters without such a neuron, and their matrix columns are
            emphasised.
        neurons
            Neuron indices (into ``scene.neurons``) outlined as selected.
        clusters
            Cluster indices outlined as selected; edges not touching them are dimmed.
        quantile
            Fraction of each unit's neurons kept bright by a class selection.
        emphasis
            ``[C]`` in [0, 1]: how bright each cluster is drawn, instead of the class rule's
            (e.g. how much an ablation moved it; 0 is as dim as an unselected class).

        Uploads the per-neuron, per-cluster, per-class and per-bundle state only.
        """
        scene = self.scene
        if scene is None:
            return
        h = highlight(scene, classes, neurons, clusters, quantile)
        sh = self.shared
        sh.neuron[:, 0] = h.neuron_bright
        sh.neuron[:, 1] = h.neuron_selected
        emph, csel = h.cluster_emphasis, h.cluster_selected
        if emphasis is not None:
            emph = np.clip(np.asarray(emphasis, dtype=np.float32), 0.0, 1.0)
        sh.cluster[:, EMPHASIS] = emph
        sh.cluster[:, SELECTED] = csel
        sh.klass = h.class_column
        sh.any_class = h.any_class
        sh.any_cluster_selected = h.any_cluster
        sh.push_neurons()
        sh.push_clusters()
        sh.push_classes()
        self.nodes.set_state(bundle_emphasis(scene.edges, scene.bundles, None, emph, csel))
        if self.neuron_edges is not None:
            ne = self.neuron_edges
            self.detail_nodes.set_state(
                bundle_emphasis(ne.edges, ne.bundles, self._detail_ends, emph, csel)
            )
        self.edge_layer.invalidate()

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
        self.edge_layer.invalidate()

    def set_edge_threshold(self, threshold: float) -> None:
        """Hide edges with ``|w| < threshold`` (an instance count: no upload)."""
        self.edge_threshold = float(threshold)
        self.edge_layer.invalidate()

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
        self.edge_layer.invalidate()

    def set_neuron_edges(self, neuron_edges: NeuronEdges | None) -> None:
        """Neuron-level edges (:func:`cnnvis_gl.layout.detail.neuron_edges` of this scene) to
        draw when zoomed in (see ``LodSettings.neuron_edges_px``); ``None`` removes them.
        Uploads their own buffers only (``detail.*``)."""
        scene = self.scene
        if neuron_edges is None or scene is None:
            self.neuron_edges = self._detail_ends = None
            self.edge_layer.invalidate()
            return
        ends = neuron_edges.neuron_clusters(scene)
        self.detail_edges.upload(neuron_edges.edges, *ends)
        st = self.shared.cluster
        b = neuron_edges.bundles
        self.detail_nodes.upload(
            b,
            self.detail_edges.bundle_rank(len(b.pos)),
            bundle_emphasis(neuron_edges.edges, b, ends, st[:, EMPHASIS], st[:, SELECTED]),
        )
        self.neuron_edges, self._detail_ends = neuron_edges, ends
        self.edge_layer.invalidate()

    def wants_neuron_edges(self, camera: Camera) -> bool:
        """Zoomed in enough for neuron-level edges (patches of ``neuron_edges_px`` or more)."""
        return self.edges_visible and self.patch_side * camera.zoom >= self.lod.neuron_edges_px

    # ------------------------------------------------------------------ level of detail
    def level_of_detail(self, camera: Camera, viewport: Viewport = (1280, 800)) -> dict[str, Any]:
        """What is drawn at ``camera``: patch alpha, summary mixes, edge count and segments
        (:func:`cnnvis_gl.render.lod.level_of_detail`)."""
        edges = self.edges
        return level_of_detail(
            self.lod,
            camera,
            viewport,
            patch_side=self.patch_side,
            row_height=self.matrix.row_height,
            chord=edges.chord,
            bounds=None if self.scene is None else self.scene.bounds,
            edge_count=lambda cap: (
                edges.visible_count(self.edge_threshold, cap) if self.edges_visible else 0
            ),
            detail_chord=self.detail_edges.chord,
            detail_count=self.detail_edges.count
            if self.neuron_edges is not None and self.wants_neuron_edges(camera)
            else 0,
        )

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
        info: dict[str, Any] = dict(lod)
        # edges first, into their cache (a separate framebuffer)
        edge_tex = None
        warp = (1.0, 1.0, 0.0, 0.0)
        if self.scene is not None and lod["edges"] > 0:
            detail = (lod["edges"], lod["segments"], lod["neuron_edges"])
            edge_tex, warp, info["edge_cache"] = self.edge_layer.get(
                frame, detail, moving, lambda: self._draw_layer("edges", frame, lod), self.park
            )
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
            self.edge_layer.composite(edge_tex, warp)
        self._draw_layer("scene", frame, lod, self.hover)
        self.last_frame = info

    def panned_view(
        self, camera: Camera, viewport: Viewport, pan_key: Hashable
    ) -> tuple[int, tuple[float, float], tuple[float, float]] | None:
        """The view of a camera that only pans, from the scene drawn once with a margin
        (:class:`~cnnvis_gl.render.pan_cache.PanCache`): ``(texture, uv0, uv1)`` to show as an
        image, or ``None`` when the frame is no pan of the last one asked for (then draw it).
        ``pan_key`` stands for everything the picture shows but the camera."""
        if self.scene is None:
            return None
        w, h = int(viewport[0]), int(viewport[1])
        key = (pan_key, self.theme.name, self.pixels_pending, self.hover)

        def full(cam: Camera, size: Viewport, fbo: moderngl.Framebuffer) -> None:
            self.draw(cam, size, target=fbo, detail_view=(cam, (w, h)))

        how = self.pan_cache.show(camera, (w, h), key, full, self.park)
        if how is None:
            return None
        self._last_view = (camera, (w, h))
        self.last_frame = {**self.last_frame, "pan_cache": how}
        return self.pan_cache.image()

    def _pass(self, frame: Frame, lod: dict[str, Any], hover: Any = ("none", -1)) -> Pass:
        lo, hi = self.lod.edge_px
        style = (
            self.lod.edge_width, lo, hi, self.lod.context_edge_alpha, self.lod.edge_floor_px
        )
        return Pass(frame, lod, hover, self.shared.cmap_v(self.theme, self.matrix_diverging), style)

    def _draw_layer(self, layer: str, frame: Frame, lod: dict[str, Any], hover: Any = None) -> None:
        p = self._pass(frame, lod, hover or (PickKind.NONE, -1))
        for v in self.visuals:
            if v.layer == layer:
                v.render(p)

    def park(self) -> None:
        """Bind a framebuffer owned by the renderer.

        moderngl re-binds the current framebuffer after creating another one; call this before
        releasing a framebuffer the renderer last drew into (GL_INVALID_OPERATION otherwise).
        """
        self._pick_fbo.use()

    # ------------------------------------------------------------------ picking
    def pick(
        self,
        x: float,
        y: float,
        camera: Camera | None = None,
        viewport: Viewport | None = None,
    ) -> tuple[PickKind, int]:
        """What is drawn at pixel ``(x, y)`` (top-left origin) of the last (or given) view.

        Renders the ID pass for that one pixel only, into the renderer's own 1×1 framebuffer;
        the framebuffer bound before the call is bound again after it.

        Returns
        -------
        (kind, index)
            ``kind`` is a :class:`~cnnvis_gl.render.pick.PickKind` (a ``str``: ``"cluster"``,
            ``"neuron"`` (a patch or a matrix row), ``"bundle"``, ``"edge"`` (index into
            ``scene.edges``) or ``"none"`` (index -1)).
        """
        if camera is None or viewport is None:
            if self._last_view is None:
                raise RuntimeError("pick() needs a camera and viewport before the first draw()")
            camera = camera or self._last_view[0]
            viewport = viewport or self._last_view[1]
        if self.scene is None:
            return (PickKind.NONE, -1)
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
        p = self._pass(frame, lod)
        for v in self.visuals:  # each decides whether it is pickable at this level of detail
            if v.pick_kind is not None and (v.layer != "edges" or lod["edges"]):
                v.render(p)
        raw = self._pick_fbo.read(components=4, alignment=1)
        ctx.enable(moderngl.BLEND)
        if prev is not None:
            prev.use()  # e.g. the window's framebuffer, which ImGui draws into next
        kind = PickKind.from_code(raw[0])
        index = (raw[1] << 16 | raw[2] << 8 | raw[3]) - 1
        return (kind, index) if kind is not PickKind.NONE else (PickKind.NONE, -1)

    def matrix_class_at(self, scene_x: float, neuron: int) -> int:
        """Class index under scene x-coordinate ``scene_x`` in ``neuron``'s matrix row."""
        return matrix_class_at(self.scene, neuron, scene_x)

    # ------------------------------------------------------------------ cleanup
    def release(self) -> None:
        """Free every GL object (call before the context goes away)."""
        for v in self.visuals:
            v.release()
        self.edge_layer.release()
        self.pan_cache.release()
        # leave the default framebuffer bound, not a released one (see park())
        self.ctx.detect_framebuffer(0).use()
        self._pick_fbo.release()
        self.atlas.release()
        self.shared.release()
