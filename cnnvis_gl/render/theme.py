"""Colour themes (dark, light) of the scene view.  Plain data: no OpenGL here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..resources import asset_dir

RGBA = tuple[float, float, float, float]


@dataclass(frozen=True)
class Theme:
    """Colours of every visual (RGBA in [0, 1], straight alpha)."""

    name: str
    background: RGBA
    row_fill: RGBA  # band behind an even layer row
    row_fill_alt: RGBA  # band behind an odd layer row
    between_fill: RGBA  # band behind an in-between (bundle) row
    frame_fill: RGBA
    frame_border: RGBA
    selection: RGBA  # outline of selected clusters / neurons
    hover: RGBA
    positive: RGBA  # excitatory edges and bundle nodes
    negative: RGBA  # inhibitory edges and bundle nodes
    node_border: RGBA
    text: RGBA  # cluster labels
    text_row: RGBA  # row labels
    text_class: RGBA  # class (matrix column) labels
    text_halo: RGBA
    matrix_grid: RGBA  # gaps between matrix cells when they are large enough
    dim: float  # opacity of de-emphasised neurons, clusters and edges
    edge_alpha: float
    colormap: str  # sequential scale of the activation matrices (assets/colormaps.json)


DARK = Theme(
    name="dark",
    background=(0.075, 0.082, 0.098, 1.0),
    row_fill=(0.115, 0.125, 0.147, 1.0),
    row_fill_alt=(0.100, 0.108, 0.128, 1.0),
    between_fill=(0.075, 0.082, 0.098, 0.0),
    frame_fill=(0.165, 0.176, 0.204, 1.0),
    frame_border=(0.42, 0.45, 0.52, 1.0),
    selection=(1.0, 0.80, 0.18, 1.0),
    hover=(0.55, 0.85, 1.0, 1.0),
    positive=(0.30, 0.86, 0.42, 1.0),
    negative=(1.0, 0.36, 0.34, 1.0),
    node_border=(0.92, 0.93, 0.95, 1.0),
    text=(0.90, 0.91, 0.94, 1.0),
    text_row=(0.98, 0.98, 1.0, 1.0),
    text_class=(0.78, 0.80, 0.86, 1.0),
    text_halo=(0.075, 0.082, 0.098, 0.85),
    matrix_grid=(0.165, 0.176, 0.204, 1.0),
    dim=0.18,
    edge_alpha=0.55,
    colormap="viridis",
)

LIGHT = Theme(
    name="light",
    background=(0.975, 0.975, 0.970, 1.0),
    row_fill=(0.925, 0.930, 0.940, 1.0),
    row_fill_alt=(0.945, 0.948, 0.955, 1.0),
    between_fill=(0.975, 0.975, 0.970, 0.0),
    frame_fill=(1.0, 1.0, 1.0, 1.0),
    frame_border=(0.55, 0.57, 0.62, 1.0),
    selection=(0.95, 0.50, 0.0, 1.0),
    hover=(0.10, 0.45, 0.85, 1.0),
    positive=(0.10, 0.58, 0.22, 1.0),
    negative=(0.84, 0.15, 0.15, 1.0),
    node_border=(0.20, 0.21, 0.24, 1.0),
    text=(0.13, 0.14, 0.17, 1.0),
    text_row=(0.05, 0.05, 0.08, 1.0),
    text_class=(0.25, 0.27, 0.32, 1.0),
    text_halo=(0.975, 0.975, 0.970, 0.85),
    matrix_grid=(0.84, 0.85, 0.88, 1.0),
    dim=0.3,
    edge_alpha=0.6,
    colormap="blues",
)

THEMES: dict[str, Theme] = {"dark": DARK, "light": LIGHT}


def get_theme(theme: str | Theme) -> Theme:
    """A :class:`Theme` from itself or its name (``"dark"`` / ``"light"``)."""
    if isinstance(theme, Theme):
        return theme
    try:
        return THEMES[theme]
    except KeyError:
        raise ValueError(f"unknown theme {theme!r}; choose from {sorted(THEMES)}") from None


@lru_cache(maxsize=8)
def colormap(name: str) -> np.ndarray:
    """A sequential colour scale from ``assets/colormaps.json`` as uint8 ``[256, 3]``."""
    with open(asset_dir() / "colormaps.json", encoding="utf-8") as f:
        maps = json.load(f)
    if name not in maps:
        raise ValueError(f"unknown colormap {name!r}; choose from {sorted(maps)}")
    arr = np.asarray(maps[name], dtype=np.uint8)
    if arr.shape != (256, 3):
        raise ValueError(f"colormap {name!r} must be 256 RGB entries, got {arr.shape}")
    arr.setflags(write=False)
    return arr


@lru_cache(maxsize=4)
def diverging_colormap(theme: str = "dark") -> np.ndarray:
    """A diverging scale (blue − · neutral · + red) as uint8 ``[256, 3]``.

    Index 0 is the most negative value, 128 zero, 255 the most positive.  The neutral middle
    is the theme's frame colour (dark grey / near white), so cells that did not change recede
    and the changes stand out in either theme.
    """
    mid = np.array([0.19, 0.20, 0.23] if theme == "dark" else [0.95, 0.95, 0.95])
    neg = np.array([0.23, 0.55, 1.00]) if theme == "dark" else np.array([0.13, 0.40, 0.80])
    pos = np.array([1.00, 0.42, 0.30]) if theme == "dark" else np.array([0.80, 0.15, 0.12])
    t = np.linspace(-1.0, 1.0, 256)[:, None]
    a = np.abs(t) ** 0.75  # small differences already take some colour
    rgb = np.where(t < 0, mid + (neg - mid) * a, mid + (pos - mid) * a)
    out = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out
