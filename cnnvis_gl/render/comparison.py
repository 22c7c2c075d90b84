"""Two runs' networks side by side with their matched rows aligned (``cnnvis compare
--figure``): each network rendered once at one common scale (so that a wider layer looks
wider), then cut into its layer rows, and every matched pair of rows set next to each other
under a caption with the comparison's numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..layout.scene import ROW_BETWEEN, Scene
from .camera import Camera

PAD, HEAD, CAPTION = 16, 56, 34  # pixels: margins, the runs' names, each pair's caption


def row_band(scene: Scene, name: str, camera: Camera, size: tuple[int, int]) -> tuple[int, int]:
    """Pixel rows ``(top, bottom)`` of the layer row ``name`` in a picture of ``scene``."""
    row = next(r for r in scene.rows if r.name == name and r.kind != ROW_BETWEEN)
    top = camera.scene_to_screen(0.0, row.y, size)[1]
    bottom = camera.scene_to_screen(0.0, row.y + row.height, size)[1]
    return max(int(math.floor(top)) - 2, 0), min(int(math.ceil(bottom)) + 2, size[1])


def compare_figure(
    snapshots: Sequence[Any],
    scenes: Sequence[Scene],
    pairs: Sequence[tuple[str, str]],
    titles: Sequence[str],
    captions: Sequence[str],
    path: str | Path,
    width: int = 1800,
    theme: str = "light",
) -> Path:
    """Write the figure: ``titles`` over the two columns, then for each ``pairs[i]`` (a row of
    scene A, a row of scene B) its ``captions[i]`` and the two rows side by side."""
    from PIL import Image, ImageDraw, ImageFont

    from ..resources import asset_dir
    from .offscreen import render_image

    half = (width - 3 * PAD) // 2
    zoom = min(half / max(s.bounds[2] - s.bounds[0], 1e-6) for s in scenes)  # one scale
    pictures = []
    for snap, scene in zip(snapshots, scenes, strict=True):
        x0, y0, x1, y1 = scene.bounds
        size = (half, int(math.ceil((y1 - y0) * zoom)) + 4)
        cam = Camera(((x0 + x1) / 2.0, (y0 + y1) / 2.0), zoom)
        # (no neuron-level edges: cut into rows, only the clusters are shown)
        img = render_image(snap, scene, size, cam, theme, msaa=4, neuron_edges=None)
        pictures.append((img[..., :3], cam, size))
    bands = []
    for a, b in pairs:
        cut = []
        for (img, cam, size), scene, name in zip(pictures, scenes, (a, b), strict=True):
            top, bottom = row_band(scene, name, cam, size)
            cut.append(img[top:bottom])
        bands.append(cut)
    height = HEAD + sum(CAPTION + max(c.shape[0] for c in cut) + PAD for cut in bands)
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    font = ImageFont.truetype(str(asset_dir() / "DejaVuSans.ttf"), 24)
    small = ImageFont.truetype(str(asset_dir() / "DejaVuSans.ttf"), 19)
    for k, title in enumerate(titles):
        draw.text((PAD + k * (half + PAD) + 4, 14), title, fill=(20, 20, 20), font=font)
    y = HEAD
    for cut, caption in zip(bands, captions, strict=True):
        draw.text((PAD + 4, y + 6), caption, fill=(60, 60, 70), font=small)
        y += CAPTION
        for k, img in enumerate(cut):
            out.paste(Image.fromarray(np.ascontiguousarray(img)), (PAD + k * (half + PAD), y))
        y += max(c.shape[0] for c in cut) + PAD
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path
