"""Text and plots drawn over a rendered frame (videos): captions, labels, a learning curve.

Frames are RGB ``uint8`` arrays; drawing uses Pillow with the packaged DejaVu Sans, sized
relative to the frame so a caption reads the same in a 640-px GIF and a 4K video.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..resources import asset_dir
from .text import wrap_words

__all__ = ["blend", "draw_callouts", "draw_caption", "draw_curves", "draw_label"]

CURVE_COLORS = ((0.36, 0.68, 1.0), (1.0, 0.62, 0.25), (0.45, 0.85, 0.45), (0.85, 0.45, 0.85))


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(asset_dir() / "DejaVuSans.ttf"), max(8, int(px)))


def blend(a: np.ndarray, b: np.ndarray, mix: float) -> np.ndarray:
    """``(1 - mix)·a + mix·b`` of two frames (uint8), rounded."""
    if mix <= 0.0:
        return a
    if mix >= 1.0:
        return b
    out = a.astype(np.float32) * (1.0 - mix) + b.astype(np.float32) * mix
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _over(frame: np.ndarray, paint) -> np.ndarray:
    """Draw with ``paint(draw, width, height)`` on a transparent layer over ``frame``."""
    h, w = frame.shape[:2]
    base = Image.fromarray(np.ascontiguousarray(frame[..., :3])).convert("RGBA")
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    paint(ImageDraw.Draw(layer), w, h)
    return np.asarray(Image.alpha_composite(base, layer).convert("RGB"))


def draw_caption(frame: np.ndarray, text: str, alpha: float = 1.0) -> np.ndarray:
    """``text`` (wrapped) in a rounded dark box centred near the bottom, at opacity ``alpha``."""
    if not text.strip() or alpha <= 0.0:
        return frame

    def paint(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
        font = _font(max(14, min(h / 22, w / 40)))
        lines = wrap_words(text, 0.7 * w, lambda t: d.textlength(t, font=font))
        asc, desc = font.getmetrics()
        lh = int((asc + desc) * 1.15)
        tw = max(d.textlength(line, font=font) for line in lines)
        pad = lh * 0.6
        bw, bh = tw + 2 * pad, lh * len(lines) + 1.2 * pad
        x0, y1 = (w - bw) / 2, h - 0.06 * h
        a = int(round(255 * min(alpha, 1.0)))
        d.rounded_rectangle((x0, y1 - bh, x0 + bw, y1), radius=pad * 0.6, fill=(12, 14, 18, a * 200 // 255))
        for k, line in enumerate(lines):
            x = (w - d.textlength(line, font=font)) / 2
            d.text((x, y1 - bh + 0.6 * pad + k * lh), line, font=font, fill=(245, 246, 250, a))

    return _over(frame, paint)


def draw_label(frame: np.ndarray, text: str, corner: str = "bottom-left") -> np.ndarray:
    """A one-line label in a corner (``top-left``, ``bottom-left``), on a dark box."""

    def paint(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
        font = _font(max(12, min(h / 34, w / 60)))
        asc, desc = font.getmetrics()
        pad = (asc + desc) * 0.45
        tw = d.textlength(text, font=font)
        x0 = 0.02 * w
        y0 = 0.02 * h if corner.startswith("top") else h - 0.02 * h - (asc + desc) - 2 * pad
        d.rounded_rectangle(
            (x0, y0, x0 + tw + 2 * pad, y0 + asc + desc + 2 * pad), radius=pad, fill=(12, 14, 18, 200)
        )
        d.text((x0 + pad, y0 + pad), text, font=font, fill=(245, 246, 250, 255))

    return _over(frame, paint)


def draw_curves(
    frame: np.ndarray,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    at: float,
    title: str = "",
) -> np.ndarray:
    """A small plot in the top-right corner: each curve (steps, values) scaled to its own range
    (its name and its last value up to ``at`` in the legend), and a vertical line at step ``at``; the
    points up to ``at`` are drawn solid, the rest faint."""
    curves = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in curves.items()}
    curves = {k: (x, y) for k, (x, y) in curves.items() if len(x) and np.isfinite(y).any()}
    if not curves:
        return frame

    def paint(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
        font = _font(max(10, min(h / 48, w / 80)))
        asc, desc = font.getmetrics()
        lh = asc + desc
        pw, ph = 0.28 * w, 0.22 * h
        x0, y0 = w - pw - 0.02 * w, 0.02 * h
        d.rounded_rectangle((x0, y0, x0 + pw, y0 + ph), radius=lh * 0.4, fill=(12, 14, 18, 200))
        pad = lh * 0.6
        legend = len(curves) + (1 if title else 0)
        gx0, gx1 = x0 + pad, x0 + pw - pad
        gy0, gy1 = y0 + pad + legend * lh, y0 + ph - pad
        xs_all = np.concatenate([x for x, _ in curves.values()])
        lo, hi = float(xs_all.min()), float(xs_all.max())
        span = hi - lo or 1.0
        ty = y0 + pad * 0.6
        if title:
            d.text((gx0, ty), title, font=font, fill=(245, 246, 250, 255))
            ty += lh
        for k, (name, (x, y)) in enumerate(curves.items()):
            rgb = tuple(int(255 * c) for c in CURVE_COLORS[k % len(CURVE_COLORS)])
            ok = np.isfinite(y)
            x, y = x[ok], y[ok]
            ylo, yhi = float(y.min()), float(y.max())
            px = gx0 + (x - lo) / span * (gx1 - gx0)
            py = gy1 - (y - ylo) / ((yhi - ylo) or 1.0) * (gy1 - gy0)
            now = x <= at
            for sel, a in ((~now, 70), (now, 255)):
                pts = list(zip(px[sel].tolist(), py[sel].tolist(), strict=True))
                if len(pts) > 1:
                    d.line(pts, fill=(*rgb, a), width=max(1, int(lh / 8)))
            shown = y[now][-1] if now.any() else y[0]
            d.text((gx0, ty), f"{name} {shown:.3g}", font=font, fill=(*rgb, 255))
            ty += lh
        cx = gx0 + (min(max(at, lo), hi) - lo) / span * (gx1 - gx0)
        d.line([(cx, gy0), (cx, gy1)], fill=(245, 246, 250, 160), width=1)

    return _over(frame, paint)


CALLOUT_ACCENT = (255, 204, 46)  # the selection yellow: a callout reads on both themes


def draw_callouts(frame: np.ndarray, callouts: Sequence) -> np.ndarray:
    """Annotations' callouts (:func:`cnnvis_gl.render.callouts.place`): a dark box with the
    text, and an arrow from its border to the target's."""
    if not callouts:
        return frame
    from .callouts import edge_point

    def paint(d: ImageDraw.ImageDraw, w: int, h: int) -> None:
        font = _font(max(12, min(h / 48, w / 80)))
        asc, desc = font.getmetrics()
        lh = (asc + desc) * 1.1
        pad = lh * 0.45
        for c in callouts:
            lines = wrap_words(c.text, 22 * lh, lambda t: d.textlength(t, font=font))
            tw = max(d.textlength(line, font=font) for line in lines)
            bw, bh = tw + 2 * pad, lh * len(lines) + 1.2 * pad
            box = (c.center[0] - bw / 2, c.center[1] - bh / 2, c.center[0] + bw / 2, c.center[1] + bh / 2)
            tip = c.tip
            start = edge_point(box, tip)
            width = max(2, int(lh / 9))
            d.line([start, tip], fill=(*CALLOUT_ACCENT, 255), width=width)
            _arrowhead(d, start, tip, 3.5 * width)
            d.rounded_rectangle(box, radius=pad * 0.7, fill=(12, 14, 18, 225), outline=(*CALLOUT_ACCENT, 255),
                                width=max(1, width // 2))  # fmt: skip
            for k, line in enumerate(lines):
                d.text((box[0] + pad, box[1] + 0.6 * pad + k * lh), line, font=font, fill=(245, 246, 250, 255))

    return _over(frame, paint)


def _arrowhead(d: ImageDraw.ImageDraw, start: tuple[float, float], tip: tuple[float, float], size: float) -> None:
    dx, dy = tip[0] - start[0], tip[1] - start[1]
    length = float(np.hypot(dx, dy))
    if length < 1e-6:
        return
    ux, uy = dx / length, dy / length
    bx, by = tip[0] - ux * size * 1.6, tip[1] - uy * size * 1.6
    d.polygon([tip, (bx - uy * size, by + ux * size), (bx + uy * size, by - ux * size)], fill=(*CALLOUT_ACCENT, 255))
