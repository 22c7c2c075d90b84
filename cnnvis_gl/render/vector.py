"""Vector export: the network view as SVG (and PDF through CairoSVG), the same view as the PNG.

Written from the :class:`~cnnvis_gl.layout.scene.Scene` with no OpenGL: row bands and cluster
frames are rounded rectangles, bundled edges cubic Bézier paths (width and opacity as the edge
shader draws them at this zoom), bundle nodes discs, labels text (editable in Inkscape or
Illustrator), each neuron's top image patch an embedded PNG at its packed rectangle, and
activation matrices one rectangle per cell in the theme's colour scale.  The SVG's view box is
the camera's view of the scene, so it shows what ``cnnvis render`` shows, and is sharp at any
zoom.  Only what is in view is written.  Every patch and matrix cell is written even where the
PNG, too far out to show them, draws a cluster's mosaic or mean colour instead (a vector file
is meant to be zoomed into); zoomed in, cluster edges are kept where the PNG draws the neurons'
edges.  A selection is drawn as the renderer draws it
(:func:`cnnvis_gl.layout.selection.highlight`): neurons outside the selected classes' top
quantile and clusters without any are dimmed, the selected classes' matrix columns kept bright
and the others greyed, selected clusters and neurons outlined.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from ..layout.scene import FACET_MATRIX, ROW_BETWEEN, Scene
from ..layout.selection import Highlight, highlight
from ..run.annotations import Annotation
from .callouts import edge_point, place
from .camera import Camera
from .edges import row_relative
from .text import HIDE_PX, KINDS, MIN_PX, column_obstacles, shown_from, wrap_words
from .theme import Theme, colormap, get_theme

__all__ = ["VECTOR_FORMATS", "scene_svg", "write_vector"]

VECTOR_FORMATS = (".svg", ".pdf")
EDGE_WIDTH_SCENE, EDGE_MIN_PX, EDGE_MAX_PX = 6.0, 0.8, 24.0  # as render/edges.py
EDGE_FLOOR_PX = 5.0  # as LodSettings.edge_floor_px: each row pair's strongest edge's width
NODE_MIN_PX = 2.5  # as render/nodes.py
FRAME_RADIUS_PX, FRAME_BORDER_PX = 4.0, 1.25  # as render/frames.py


def _rgb(c: Any) -> str:
    r, g, b = (int(round(255 * min(max(float(v), 0.0), 1.0))) for v in list(c)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _f(v: float) -> str:
    return f"{float(v):.3f}".rstrip("0").rstrip(".")


def _overlaps(rects: np.ndarray, view: tuple[float, float, float, float]) -> np.ndarray:
    """Which ``[x, y, w, h]`` rectangles meet the view ``(x0, y0, x1, y1)``."""
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = view
    return (r[:, 0] <= x1) & (r[:, 0] + r[:, 2] >= x0) & (r[:, 1] <= y1) & (r[:, 1] + r[:, 3] >= y0)


def _png(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def scene_svg(
    snapshot: Any,
    scene: Scene,
    size: tuple[int, int] = (1920, 1080),
    camera: Camera | str | None = "fit",
    theme: str | Theme = "dark",
    selection: dict[str, Any] | None = None,
    annotations: Sequence[Annotation] = (),
) -> str:
    """The SVG document of ``scene`` seen through ``camera`` in a ``size``-pixel view.

    ``snapshot`` supplies the neurons' image patches (``None``: grey patches); ``selection``
    holds :func:`~cnnvis_gl.layout.selection.highlight`'s arguments (``classes``, ``neurons``,
    ``clusters``), as ``render_image``'s; ``annotations``' callouts are drawn on top.
    """
    t = get_theme(theme) if isinstance(theme, str) else theme
    w, h = int(size[0]), int(size[1])
    if camera is None or camera == "fit":
        camera = Camera().fit(scene.bounds, (w, h))
    if not isinstance(camera, Camera):
        raise ValueError(f"camera must be a Camera, 'fit' or None, got {camera!r}")
    view = camera.visible_rect((w, h))
    px = 1.0 / camera.zoom  # one pixel in scene units
    vx0, vy0, vx1, vy1 = view
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{w}" height="{h}" viewBox="{_f(vx0)} {_f(vy0)} {_f(vx1 - vx0)} {_f(vy1 - vy0)}">',
        f"<title>CNNVis — step {scene.step}</title>" if scene.step is not None else "<title>CNNVis</title>",
        f'<rect id="background" x="{_f(vx0)}" y="{_f(vy0)}" width="{_f(vx1 - vx0)}" '
        f'height="{_f(vy1 - vy0)}" fill="{_rgb(t.background)}"/>',
    ]
    hl = highlight(scene, **dict(selection or {}))
    out += _rows(scene, t, view)
    out += _edges(scene, t, view, camera.zoom, hl)
    out += _nodes(scene, t, view, px)
    out += _frames(scene, t, view, px, hl)
    out += _contents(snapshot, scene, t, view, hl, px)
    out += _labels(scene, t, view, camera.zoom)
    out += _callouts(scene, annotations, camera, (w, h))
    out.append("</svg>")
    return "\n".join(out)


def _rows(scene: Scene, t: Theme, view: tuple) -> list[str]:
    out, parity = ['<g id="rows">'], 0
    for r in scene.rows:
        x0, x1 = r.span(scene.bounds)
        if r.kind == ROW_BETWEEN:
            fill = t.between_fill
        else:
            fill = t.row_fill if parity % 2 == 0 else t.row_fill_alt
            parity += 1
        if fill[3] <= 0 or not _overlaps(np.array([x0, r.y, x1 - x0, r.height]), view)[0]:
            continue
        out.append(f'<rect x="{_f(x0)}" y="{_f(r.y)}" width="{_f(x1 - x0)}" height="{_f(r.height)}" '
                   f'fill="{_rgb(fill)}" fill-opacity="{_f(fill[3])}"/>')  # fmt: skip
    out.append("</g>")
    return out


def _edge_emphasis(scene: Scene, hl: Highlight, dim: float) -> np.ndarray:
    """Per edge, the shader's opacity factor from its clusters' emphasis and selection."""
    e = scene.edges
    src, dst = np.asarray(e.src), np.asarray(e.dst)
    C = len(scene.clusters.rect)

    def at(values: np.ndarray, idx: np.ndarray, missing: float) -> np.ndarray:
        return np.where(idx >= 0, np.asarray(values)[np.clip(idx, 0, max(C - 1, 0))], missing)

    emph = np.maximum(at(hl.cluster_emphasis, src, 0.0), at(hl.cluster_emphasis, dst, 0.0))
    dim = 0.6 * dim
    if hl.any_cluster:
        sel = np.maximum(at(hl.cluster_selected, src, 0.0), at(hl.cluster_selected, dst, 0.0))
        return np.where(sel > 0.5, 1.0, dim)
    return dim + (1.0 - dim) * emph


def _edges(scene: Scene, t: Theme, view: tuple, zoom: float, hl: Highlight) -> list[str]:
    e = scene.edges
    ctrl = np.asarray(e.ctrl, dtype=np.float64).reshape(-1, 4, 2)
    if not len(ctrl):
        return []
    lo, hi = ctrl.min(axis=1), ctrl.max(axis=1)
    inside = (lo[:, 0] <= view[2]) & (hi[:, 0] >= view[0]) & (lo[:, 1] <= view[3]) & (hi[:, 1] >= view[1])
    wmax = float(np.abs(e.weight).max()) or 1.0
    emphasis = _edge_emphasis(scene, hl, t.dim)
    w_row = row_relative(e.weight, e.row)
    out = ['<g id="edges" fill="none" stroke-linecap="butt">']
    for k in np.flatnonzero(inside):
        w_px = max(abs(float(e.weight[k])) / wmax * EDGE_WIDTH_SCENE * zoom, w_row[k] * EDGE_FLOOR_PX)
        width = min(max(w_px, EDGE_MIN_PX), EDGE_MAX_PX) / zoom
        color = t.positive if e.sign[k] >= 0 else t.negative
        alpha = color[3] * t.edge_alpha * emphasis[k] * min(max(w_px / EDGE_MIN_PX, 0.35), 1.0)
        p = ctrl[k]
        out.append(
            f'<path d="M{_f(p[0, 0])},{_f(p[0, 1])} C{_f(p[1, 0])},{_f(p[1, 1])} '
            f'{_f(p[2, 0])},{_f(p[2, 1])} {_f(p[3, 0])},{_f(p[3, 1])}" stroke="{_rgb(color)}" '
            f'stroke-opacity="{_f(alpha)}" stroke-width="{_f(width)}"/>'
        )
    out.append("</g>")
    return out


def _nodes(scene: Scene, t: Theme, view: tuple, px: float) -> list[str]:
    b = scene.bundles
    pos = np.asarray(b.pos, dtype=np.float64).reshape(-1, 2)
    out = ['<g id="bundle-nodes">']
    for k in range(len(pos)):
        r = max(2.5 + 1.2 * np.sqrt(int(b.n_in[k]) + int(b.n_out[k])), NODE_MIN_PX * px)
        x, y = pos[k]
        if not (view[0] - r <= x <= view[2] + r and view[1] - r <= y <= view[3] + r):
            continue
        color = t.positive if b.sign[k] >= 0 else t.negative
        out.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" fill="{_rgb(color)}" '
                   f'stroke="{_rgb(t.node_border)}" stroke-width="{_f(px)}"/>')  # fmt: skip
    out.append("</g>")
    return out


def _frames(scene: Scene, t: Theme, view: tuple, px: float, hl: Highlight) -> list[str]:
    c = scene.clusters
    out = ['<g id="clusters">']
    border_rgb = np.asarray(t.frame_border[:3])
    for k in np.flatnonzero(_overlaps(c.rect, view)):
        x, y, w, h = (float(v) for v in c.rect[k])
        border, bw = border_rgb * 0.55 + np.asarray(c.color[k]) * 0.45, FRAME_BORDER_PX
        if hl.cluster_selected[k] > 0.5:
            border, bw = np.asarray(t.selection[:3]), FRAME_BORDER_PX * 2.2
        bw = min(bw * px, w / 2, h / 2)
        r = min(FRAME_RADIUS_PX * px, w / 2, h / 2)
        opacity = 1.0 if hl.cluster_emphasis[k] > 0.5 else 0.35 + 0.65 * t.dim
        out.append(
            f'<rect id="cluster-{int(c.id[k])}" x="{_f(x + bw / 2)}" y="{_f(y + bw / 2)}" '
            f'width="{_f(w - bw)}" height="{_f(h - bw)}" rx="{_f(r)}" fill="{_rgb(t.frame_fill)}" '
            f'fill-opacity="{_f(t.frame_fill[3])}" stroke="{_rgb(border)}" stroke-width="{_f(bw)}" '
            f'opacity="{_f(opacity)}"/>'
        )
    out.append("</g>")
    return out


def _contents(snapshot: Any, scene: Scene, t: Theme, view: tuple, hl: Highlight, px: float) -> list[str]:
    """Each cluster's facet: its neurons' top patches, or its activation matrix."""
    c, n = scene.clusters, scene.neurons
    shown = _overlaps(c.rect, view)
    matrix = (np.asarray(c.facet) == FACET_MATRIX) & shown
    features = shown & ~matrix
    out = ['<g id="patches">']
    neurons = np.flatnonzero(features[n.cluster] & _overlaps(n.rect, view)) if len(n.cluster) else []
    for u in np.unique(n.unit[neurons]) if len(neurons) else []:
        rows = [int(i) for i in neurons if n.unit[i] == u]
        unit = scene.units[int(u)]
        pixels = None
        if snapshot is not None:
            pixels = np.asarray(snapshot.patches(unit, k=1, neurons=n.index[rows]))[:, 0]
        for j, i in enumerate(rows):
            x, y, w, h = (float(v) for v in n.rect[i])
            if pixels is None:
                out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" fill="#808080"/>')
                continue
            dimmed = "" if hl.neuron_bright[i] > 0.5 else f' opacity="{_f(t.dim)}"'
            out.append(
                f'<image x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}"{dimmed} '
                f'preserveAspectRatio="none" xlink:href="data:image/png;base64,{_png(pixels[j])}"/>'
            )
            if hl.neuron_selected[i] > 0.5:
                out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" fill="none" '
                           f'stroke="{_rgb(t.selection)}" stroke-width="{_f(2 * px)}"/>')  # fmt: skip
    out.append("</g>")
    out += _matrices(scene, t, np.flatnonzero(matrix), hl)
    return out


def _matrices(scene: Scene, t: Theme, clusters: np.ndarray, hl: Highlight) -> list[str]:
    c, n = scene.clusters, scene.neurons
    if not len(clusters) or n.activation.ndim != 2:
        return []
    cmap = colormap(t.colormap)
    order = np.asarray(scene.class_order, dtype=np.int64)
    K = len(order)
    out = ['<g id="matrices" shape-rendering="crispEdges">']
    for k in clusters:
        x, y, w, h = (float(v) for v in c.matrix_rect[k])
        members = np.flatnonzero(n.cluster == k)
        rh, cw = h / max(int(c.size[k]), 1), w / max(K, 1)
        out.append(f'<g id="matrix-{int(c.id[k])}">')
        for i in members:
            a = np.clip(np.asarray(n.activation[i], dtype=np.float64)[order], 0.0, 1.0)
            colors = cmap[np.round(a * 255).astype(int)] / 255.0
            if hl.any_class:  # the other classes' columns greyed, as the matrix shader does
                grey = ~(hl.class_column > 0.5)
                colors[grey] = colors[grey] * 0.35 + np.asarray(t.matrix_grid[:3]) * 0.65
            ry = y + int(n.matrix_row[i]) * rh
            for j in range(K):
                out.append(f'<rect x="{_f(x + j * cw)}" y="{_f(ry)}" width="{_f(cw)}" '
                           f'height="{_f(rh)}" fill="{_rgb(colors[j])}"/>')  # fmt: skip
        out.append("</g>")
    out.append("</g>")
    return out


def _labels(scene: Scene, t: Theme, view: tuple, zoom: float) -> list[str]:
    """The labels the text shader draws at this zoom: row labels at least ``MIN_PX`` high
    (those that would cover another left out, :func:`~cnnvis_gl.render.text.shown_from`),
    cluster and class labels left out below ``HIDE_PX`` (class labels only over matrices)."""
    colours = {"row": t.text_row, "cluster": t.text, "class": t.text_class}
    anchors = {"left": "start", "center": "middle", "right": "end"}
    facet = dict(zip(np.asarray(scene.clusters.id).tolist(), np.asarray(scene.clusters.facet).tolist(), strict=True))
    out = ['<g id="labels" font-family="DejaVu Sans, Verdana, sans-serif" xml:space="preserve">']
    shown = shown_from(scene.labels, columns=column_obstacles(scene))
    for lab, least in zip(scene.labels, shown.tolist(), strict=True):
        kind = KINDS.get(lab.kind, 3)
        size_px = lab.size * zoom
        if size_px < 0.85 * HIDE_PX[kind] or zoom < 1.06 * least:  # (the shader: faded out)
            continue
        if lab.kind == "class" and lab.cluster >= 0 and facet.get(lab.cluster) != FACET_MATRIX:
            continue
        size = max(size_px, MIN_PX[kind]) / zoom
        if not (view[0] - 50 * size <= lab.x <= view[2] + 50 * size
                and view[1] - size <= lab.y <= view[3] + size):  # fmt: skip
            continue
        # the renderer centres the capital height on y: the baseline is ~0.36 em lower
        out.append(
            f'<text x="{_f(lab.x)}" y="{_f(lab.y + 0.36 * size)}" font-size="{_f(size)}" '
            f'text-anchor="{anchors.get(lab.anchor, "start")}" '
            f'fill="{_rgb(colours.get(lab.kind, t.text))}">{escape(lab.text)}</text>'
        )
    out.append("</g>")
    return out


def _callouts(scene: Scene, notes: Sequence[Annotation], camera: Camera, size: tuple[int, int]) -> list[str]:
    """Annotations as the PNG draws them (render/overlay.py): box, text, arrow; sizes in
    pixels of the view, written in scene units."""
    callouts = place(scene, notes, camera, size)
    if not callouts:
        return []
    w, h = size
    z = camera.zoom
    font_px = max(12.0, min(h / 48, w / 80))
    lh, em_w = font_px * 1.16 * 1.1, 0.6 * font_px  # DejaVu Sans: ~0.6 em per character
    pad = lh * 0.45
    accent = "#ffcc2e"

    def sc(p: tuple[float, float]) -> tuple[float, float]:
        return camera.screen_to_scene(p[0], p[1], size)

    out = ['<g id="annotations" font-family="DejaVu Sans, Verdana, sans-serif" xml:space="preserve">']
    for c in callouts:
        lines = wrap_words(c.text, 22 * lh / em_w)  # as the PNG wraps, at ~22 lines high
        bw = max(len(line) for line in lines) * em_w + 2 * pad
        bh = lh * len(lines) + 1.2 * pad
        box = (c.center[0] - bw / 2, c.center[1] - bh / 2, c.center[0] + bw / 2, c.center[1] + bh / 2)
        (x0, y0), (tx, ty) = sc(edge_point(box, c.tip)), sc(c.tip)
        stroke = max(2.0, lh / 9) / z
        out.append(f'<line x1="{_f(x0)}" y1="{_f(y0)}" x2="{_f(tx)}" y2="{_f(ty)}" stroke="{accent}" '
                   f'stroke-width="{_f(stroke)}"/>')  # fmt: skip
        dx, dy = tx - x0, ty - y0
        length = float(np.hypot(dx, dy))
        if length > 0:
            ux, uy, a = dx / length, dy / length, 3.5 * stroke
            bx, by = tx - ux * a * 1.6, ty - uy * a * 1.6
            pts = [(tx, ty), (bx - uy * a, by + ux * a), (bx + uy * a, by - ux * a)]
            out.append(f'<polygon points="{" ".join(f"{_f(px)},{_f(py)}" for px, py in pts)}" fill="{accent}"/>')
        bx0, by0 = sc((box[0], box[1]))
        out.append(f'<rect x="{_f(bx0)}" y="{_f(by0)}" width="{_f(bw / z)}" height="{_f(bh / z)}" '
                   f'rx="{_f(pad * 0.7 / z)}" fill="#0c0e12" fill-opacity="0.88" stroke="{accent}" '
                   f'stroke-width="{_f(stroke / 2)}"/>')  # fmt: skip
        for k, line in enumerate(lines):
            lx, ly = sc((box[0] + pad, box[1] + 0.6 * pad + k * lh + font_px * 0.95))
            out.append(f'<text x="{_f(lx)}" y="{_f(ly)}" font-size="{_f(font_px / z)}" fill="#f5f6fa">'
                       f"{escape(line)}</text>")  # fmt: skip
    out.append("</g>")
    return out


def write_vector(
    snapshot: Any,
    scene: Scene,
    path: str | Path,
    size: tuple[int, int] = (1920, 1080),
    camera: Camera | str | None = "fit",
    theme: str | Theme = "dark",
    selection: dict[str, Any] | None = None,
    annotations: Sequence[Annotation] = (),
) -> Path:
    """Write the view as ``.svg``, or ``.pdf`` (the SVG converted by CairoSVG, vector too).

    Raises
    ------
    ValueError
        Another suffix, or no Cairo library for a PDF (the message says what to install).
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in VECTOR_FORMATS:
        raise ValueError(f"{path}: a vector file is .svg or .pdf")
    svg = scene_svg(snapshot, scene, size, camera, theme, selection, annotations)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{kind}")
    try:
        if kind == ".svg":
            tmp.write_text(svg, encoding="utf-8")
        else:
            try:
                import cairosvg
            except (ImportError, OSError) as e:  # OSError: the Cairo library itself is missing
                raise ValueError(f"PDF export needs CairoSVG and the Cairo library (libcairo2): {e}") from None
            cairosvg.svg2pdf(bytestring=svg.encode("utf-8"), write_to=str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
