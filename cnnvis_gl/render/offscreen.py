"""Render a Scene to an image file without a window (standalone EGL context).

Backs ``cnnvis render``.  Images larger than the GL limits (renderbuffer / viewport size) are
rendered in tiles with the same camera, so any size up to 8K and beyond works.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import moderngl
import numpy as np
from PIL import Image

from ..layout.scene import FACET_FEATURES, FACET_MATRIX, Scene
from ..run.annotations import Annotation
from .atlas import PatchSource
from .camera import Camera
from .lod import LodSettings
from .renderer import SceneRenderer
from .theme import Theme

MAX_SIZE = 16384
# exported images favour completeness over frame time: no tessellation budget
EXPORT_LOD = LodSettings(edge_vertices=50_000_000, still=True)
#: …for the frames of a video, whose camera moves: the semantic zoom fades as in the viewer.
VIDEO_LOD = replace(EXPORT_LOD, still=False)


def create_context() -> moderngl.Context:
    """A standalone (headless) OpenGL 3.3+ context: EGL first, then the platform default."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        return moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as egl_error:  # noqa: BLE001 - try the platform default next
        try:
            return moderngl.create_standalone_context(require=330)
        except Exception:
            raise RuntimeError(f"no headless OpenGL 3.3 context: {egl_error}") from egl_error


def render_image(
    snapshot: PatchSource | None,
    scene: Scene,
    size: tuple[int, int] = (1920, 1080),
    camera: Camera | str | None = "fit",
    theme: str | Theme = "dark",
    facet: int | str | None = None,
    selection: Mapping[str, Any] | None = None,
    msaa: int = 0,
    edge_threshold: float | None = None,
    ctx: moderngl.Context | None = None,
    max_tile: int | None = None,
    renderer: SceneRenderer | None = None,
    lod: LodSettings | None = None,
    neuron_edges: float | None = 0.25,
) -> np.ndarray:
    """Render ``scene`` and return the image as uint8 ``[H, W, 4]`` (RGBA, top row first).

    Parameters
    ----------
    snapshot
        Patch pixel source (a Snapshot), or ``None`` for grey patches.
    scene
        What to draw.
    size
        Image width and height in pixels.
    camera
        A :class:`Camera`, or ``"fit"`` / ``None`` to show the whole scene.
    theme
        ``"dark"`` or ``"light"`` (or a Theme).
    facet
        Show every cluster in this facet (``"features"``/``"matrix"`` or the FACET constants);
        ``None`` keeps the scene's facets.
    selection
        Keyword arguments of :meth:`SceneRenderer.set_selection` (``classes``, ``neurons``,
        ``clusters``, ``quantile``).
    msaa
        Multisampling samples (0 = off).
    edge_threshold
        Hide edges with ``|w|`` below it.
    ctx
        An existing context (a new standalone one is made and released otherwise).
    max_tile
        Largest tile side; defaults to the context's renderbuffer and viewport limits.
    renderer
        Reuse a renderer that already holds ``scene`` (its ``ctx`` and level of detail are
        used).
    lod
        Level-of-detail settings of a new renderer (default: no tessellation budget).
    neuron_edges
        When the camera is zoomed in far enough (``LodSettings.neuron_edges_px``) and
        ``snapshot`` holds the weights, draw the neuron-level edges of the clusters in view,
        keeping this top fraction per row pair, as the viewer does; ``None``: cluster edges only.
    """
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    own_ctx = ctx is None and renderer is None
    if renderer is not None:
        ctx = renderer.ctx
    elif ctx is None:
        ctx = create_context()
    own_renderer = renderer is None
    try:
        if renderer is None:
            renderer = SceneRenderer(ctx, snapshot, theme=theme, msaa=msaa, lod=lod or EXPORT_LOD)
            renderer.set_scene(scene)
        else:
            renderer.set_theme(theme)
        if facet is not None:
            renderer.set_facet(_facet(facet))
        if selection:
            renderer.set_selection(**dict(selection))
        if edge_threshold is not None:
            renderer.set_edge_threshold(edge_threshold)
        if camera is None or camera == "fit":
            camera = Camera().fit(scene.bounds, (width, height))
        elif not isinstance(camera, Camera):
            raise ValueError(f"camera must be a Camera, 'fit' or None, got {camera!r}")
        if neuron_edges is not None and hasattr(snapshot, "graph"):
            if renderer.wants_neuron_edges(camera):
                from ..layout.detail import clusters_for_view
                from ..layout.detail import neuron_edges as detail_edges

                cl = clusters_for_view(scene, camera.visible_rect((width, height)))
                renderer.set_neuron_edges(
                    detail_edges(snapshot, scene, cl, fraction=float(neuron_edges))
                )
        limit = _max_tile(ctx) if max_tile is None else int(max_tile)
        image = _draw_tiles(ctx, renderer, camera, (width, height), msaa, limit)
        err = ctx.error
        if err != "GL_NO_ERROR":
            raise RuntimeError(f"OpenGL error while rendering: {err}")
        return image
    finally:
        if own_renderer and renderer is not None:
            renderer.release()
        if own_ctx:
            ctx.release()


def _draw_tiles(
    ctx: moderngl.Context,
    renderer: SceneRenderer,
    camera: Camera,
    size: tuple[int, int],
    msaa: int,
    limit: int,
) -> np.ndarray:
    """The view of ``camera`` drawn tile by tile (tiles at most ``limit`` pixels a side)."""
    width, height = size
    image = np.zeros((height, width, 4), dtype=np.uint8)
    tiles = [
        (x0, y0, min(limit, width - x0), min(limit, height - y0))
        for y0 in range(0, height, limit)
        for x0 in range(0, width, limit)
    ]
    fbo_cache: dict[tuple[int, int], tuple] = {}
    for x0, y0, tw, th in tiles:
        fbo, resolve = fbo_cache.get((tw, th)) or _framebuffers(ctx, (tw, th), msaa)
        fbo_cache[(tw, th)] = (fbo, resolve)
        cam = camera.tile(x0, y0, (tw, th), (width, height)) if len(tiles) > 1 else camera
        renderer.draw(cam, (tw, th), target=fbo, detail_view=(camera, (width, height)))
        src = fbo
        if resolve is not None:
            ctx.copy_framebuffer(resolve, fbo)
            src = resolve
        raw = src.read(viewport=(0, 0, tw, th), components=4, alignment=1)
        tile = np.frombuffer(raw, dtype=np.uint8).reshape(th, tw, 4)[::-1]
        image[y0 : y0 + th, x0 : x0 + tw] = tile
    # bind a framebuffer that outlives this call: moderngl re-binds the current one when it
    # creates the next framebuffer, which must not be a released tile framebuffer
    renderer.park()
    for fbo, resolve in fbo_cache.values():
        for f in (fbo, resolve):
            if f is not None:
                for att in f.color_attachments:
                    att.release()
                f.release()
    return image


def render_png(
    snapshot: PatchSource | None,
    scene: Scene,
    path: str | Path,
    size: tuple[int, int] = (1920, 1080),
    camera: Camera | str | None = "fit",
    theme: str | Theme = "dark",
    facet: int | str | None = None,
    selection: Mapping[str, Any] | None = None,
    msaa: int = 0,
    annotations: Sequence[Annotation] = (),
    **kw: Any,
) -> Path:
    """Render ``scene`` to a PNG file (RGB); see :func:`render_image` for the parameters;
    ``annotations``' callouts are drawn over it.

    Returns
    -------
    Path
        The written file.
    """
    if camera is None or camera == "fit":
        camera = Camera().fit(scene.bounds, (int(size[0]), int(size[1])))
    image = render_image(snapshot, scene, size, camera, theme, facet, selection, msaa, **kw)
    if annotations:
        from .callouts import place
        from .overlay import draw_callouts

        image = draw_callouts(image[..., :3], place(scene, annotations, camera, size))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image[..., :3])).save(path, optimize=False)
    return path


def _facet(facet: int | str) -> int:
    if isinstance(facet, str):
        try:
            return {"features": FACET_FEATURES, "matrix": FACET_MATRIX}[facet]
        except KeyError:
            raise ValueError("facet must be 'features' or 'matrix'") from None
    return int(facet)


def _max_tile(ctx: moderngl.Context) -> int:
    info = ctx.info
    rb = int(info.get("GL_MAX_RENDERBUFFER_SIZE", 4096))
    tex = int(info.get("GL_MAX_TEXTURE_SIZE", 4096))
    vp = info.get("GL_MAX_VIEWPORT_DIMS", (4096, 4096))
    return max(1, min(rb, tex, int(vp[0]), int(vp[1]), MAX_SIZE))


def _framebuffers(
    ctx: moderngl.Context, size: tuple[int, int], msaa: int
) -> tuple[moderngl.Framebuffer, moderngl.Framebuffer | None]:
    samples = min(int(msaa), ctx.max_samples)
    if samples > 1:
        rb = ctx.renderbuffer(size, 4, samples=samples)
        msfbo = ctx.framebuffer(color_attachments=[rb])
        resolve = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4)])
        return msfbo, resolve
    return ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4)]), None


def render_many(
    snapshot: PatchSource | None,
    scene: Scene,
    jobs: Iterable[Mapping[str, Any]],
    msaa: int = 0,
) -> list[np.ndarray]:
    """Several renders of one scene sharing one context and renderer (golden tests, docs).

    Each job holds :func:`render_image` keyword arguments (``size``, ``camera``, ``theme``,
    ``facet``, ``selection``, ``edge_threshold``); appearance is reset between jobs.
    """
    ctx = create_context()
    renderer = SceneRenderer(ctx, snapshot, msaa=msaa, lod=EXPORT_LOD)
    renderer.set_scene(scene)
    out = []
    try:
        for job in jobs:
            job = dict(job)
            renderer.set_facet(scene.clusters.facet)
            renderer.set_selection()
            renderer.set_edge_threshold(0.0)
            renderer.set_hover()
            renderer.set_neuron_edges(None)
            out.append(render_image(snapshot, scene, renderer=renderer, **job))
        return out
    finally:
        renderer.release()
        ctx.release()
