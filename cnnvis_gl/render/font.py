"""Signed-distance-field glyph atlas from a TrueType font (DejaVu Sans in ``assets/``).

Glyphs are rasterised with Pillow at a large size, turned into a signed distance field with an
exact Euclidean distance transform (SciPy) and down-sampled; the renderer draws them at any size
with a smoothstep over the field, so text stays crisp at every zoom.  No OpenGL here: the GL
texture is made by :mod:`cnnvis_gl.render.text`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import string
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import distance_transform_edt

from ..resources import asset_dir, cache_dir

DEFAULT_FONT = "DejaVuSans.ttf"
BASE_CHARS = string.ascii_letters + string.digits + string.punctuation + " ·×→←…°±µσ–—éèàüöäÅ"


@dataclass
class GlyphAtlas:
    """An SDF atlas: ``image`` (uint8 ``[H, W]``, 0.5 = the outline) and glyph metrics.

    Metrics are in *em* units (1 = the font size): ``advance``, ``box`` (``x0, y0, x1, y1``
    relative to the pen position on the baseline, y down) and ``uv`` (``u0, v0, u1, v1``).
    """

    image: np.ndarray
    em: int  # atlas pixels per em
    spread: float  # distance (atlas pixels) mapped to the 0..1 range around 0.5
    ascent: float  # em units
    descent: float
    cap_height: float
    advance: dict[str, float] = field(default_factory=dict)
    box: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    uv: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    kerning: dict[str, float] = field(default_factory=dict)  # pair → em adjustment
    font_path: Path | None = None

    def layout(self, text: str) -> tuple[np.ndarray, np.ndarray, float]:
        """Glyph quads of ``text`` on a baseline at y = 0, pen starting at x = 0.

        Returns
        -------
        boxes
            float32 ``[g, 4]`` ``x0, y0, x1, y1`` in em units (visible glyphs only).
        uvs
            float32 ``[g, 4]``.
        width
            Advance of the whole string in em units.
        """
        boxes, uvs = [], []
        x = 0.0
        prev = ""
        for ch in text:
            if ch not in self.advance:
                ch = "?"
            if prev:
                x += self.kerning.get(prev + ch, 0.0)
            b = self.box[ch]
            if b[2] > b[0] and b[3] > b[1]:
                boxes.append((x + b[0], b[1], x + b[2], b[3]))
                uvs.append(self.uv[ch])
            x += self.advance[ch]
            prev = ch
        return (
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(uvs, dtype=np.float32).reshape(-1, 4),
            x,
        )


def font_path(name: str = DEFAULT_FONT) -> Path:
    """Path of a font shipped in ``assets/``."""
    path = asset_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"font {name!r} not found in {path.parent}")
    return path


@lru_cache(maxsize=4)
def build_glyph_atlas(
    chars: str = BASE_CHARS, font: str = DEFAULT_FONT, em: int = 48, spread: float = 6.0
) -> GlyphAtlas:
    """Rasterise ``chars`` (plus ``?``) into an SDF atlas (cached per process, and on disk in
    ``$XDG_CACHE_HOME/cnnvis_gl/glyphs`` or ``~/.cache/cnnvis_gl/glyphs``: rasterising and
    kerning take ~0.7 s, which a viewer opening a big network would wait for).  A cache file
    that cannot be read or written is ignored (the atlas is built).

    Parameters
    ----------
    chars
        Characters to include; unknown characters are drawn as ``?``.
    font
        Font file name in ``assets/``.
    em
        Atlas pixels per em.
    spread
        Distance range, in atlas pixels, encoded on each side of the outline.
    """
    path = font_path(font)
    cache = _cache_file(path, chars, em, spread)
    atlas = _read_cached(cache, path)
    if atlas is None:
        atlas = _rasterise(path, chars, em, spread)
        _write_cached(cache, atlas)
    return atlas


def _rasterise(path: Path, chars: str, em: int, spread: float) -> GlyphAtlas:
    up = 4  # rasterise at 4× and down-sample the distance field
    hi = ImageFont.truetype(str(path), em * up)
    chars = "".join(dict.fromkeys(chars + "?"))
    ascent, descent = hi.getmetrics()
    cap = hi.getbbox("H", anchor="ls")
    pad = int(np.ceil(spread)) + 1
    glyphs: list[tuple[str, np.ndarray | None, tuple[float, float, float, float], float]] = []
    for ch in chars:
        adv = hi.getlength(ch) / (em * up)
        x0, y0, x1, y1 = hi.getbbox(ch, anchor="ls")
        if x1 <= x0 or y1 <= y0 or ch.isspace():
            glyphs.append((ch, None, (0.0, 0.0, 0.0, 0.0), adv))
            continue
        # high-resolution coverage with a margin of `pad` low-res pixels
        m = pad * up
        w, h = x1 - x0 + 2 * m, y1 - y0 + 2 * m
        w += (-w) % up
        h += (-h) % up
        img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(img).text((m - x0, m - y0), ch, font=hi, fill=255, anchor="ls")
        inside = np.asarray(img) >= 128
        d_out = distance_transform_edt(~inside)
        d_in = distance_transform_edt(inside)
        sdf = (d_in - d_out) / up  # low-res pixels, + inside
        sdf = sdf.reshape(h // up, up, w // up, up).mean(axis=(1, 3))
        field = np.clip(0.5 + sdf / (2.0 * spread), 0.0, 1.0)
        # box of the stored bitmap, in em units relative to the pen on the baseline
        bx0 = (x0 - m) / (em * up)
        by0 = (y0 - m) / (em * up)
        box = (bx0, by0, bx0 + (w / up) / em, by0 + (h / up) / em)
        glyphs.append((ch, (field * 255.0 + 0.5).astype(np.uint8), box, adv))

    # shelf-pack the bitmaps
    width = 1024
    x = y = shelf = 0
    places: list[tuple[int, int]] = []
    for _, bmp, _, _ in glyphs:
        if bmp is None:
            places.append((0, 0))
            continue
        gh, gw = bmp.shape
        if x + gw + 1 > width:
            x, y, shelf = 0, y + shelf + 1, 0
        places.append((x, y))
        x += gw + 1
        shelf = max(shelf, gh)
    height = 1 << int(np.ceil(np.log2(max(y + shelf + 1, 1))))
    image = np.zeros((height, width), dtype=np.uint8)
    atlas = GlyphAtlas(
        image=image,
        em=em,
        spread=spread,
        ascent=ascent / (em * up),
        descent=descent / (em * up),
        cap_height=-cap[1] / (em * up),
        font_path=path,
    )
    for (ch, bmp, box, adv), (px, py) in zip(glyphs, places, strict=True):
        atlas.advance[ch] = adv
        atlas.box[ch] = box
        if bmp is None:
            atlas.uv[ch] = (0.0, 0.0, 0.0, 0.0)
            continue
        gh, gw = bmp.shape
        image[py : py + gh, px : px + gw] = bmp
        atlas.uv[ch] = (px / width, py / height, (px + gw) / width, (py + gh) / height)
    # pair kerning from the font's own layout (what Pillow applies between two glyphs)
    kernable = [c for c in chars if not c.isspace()]
    lo = ImageFont.truetype(str(path), 1000)
    single = {c: lo.getlength(c) for c in kernable}
    for a in kernable:
        for b in kernable:
            k = lo.getlength(a + b) - single[a] - single[b]
            if abs(k) > 0.5:  # font units at size 1000
                atlas.kerning[a + b] = k / 1000.0
    return atlas


# ---------------------------------------------------------------------------- disk cache

_CACHE_VERSION = 1


def _cache_file(path: Path, chars: str, em: int, spread: float) -> Path | None:
    """Where the atlas of these arguments is cached (keyed by the font file's bytes)."""
    try:
        digest = hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()
    except OSError:
        return None
    key = json.dumps([_CACHE_VERSION, digest, chars, em, spread])
    return cache_dir() / "glyphs" / f"{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()}.npz"


def _read_cached(cache: Path | None, path: Path) -> GlyphAtlas | None:
    if cache is None or not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            image = np.array(z["image"], dtype=np.uint8)
            meta = json.loads(str(z["meta"]))
        return GlyphAtlas(
            image=image, em=int(meta["em"]), spread=float(meta["spread"]), ascent=float(meta["ascent"]),
            descent=float(meta["descent"]), cap_height=float(meta["cap_height"]),
            advance={k: float(v) for k, v in meta["advance"].items()},
            box={k: tuple(float(x) for x in v) for k, v in meta["box"].items()},  # type: ignore[misc]
            uv={k: tuple(float(x) for x in v) for k, v in meta["uv"].items()},  # type: ignore[misc]
            kerning={k: float(v) for k, v in meta["kerning"].items()}, font_path=path,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile):
        return None  # damaged or from elsewhere: build it again (and overwrite it)


def _write_cached(cache: Path | None, atlas: GlyphAtlas) -> None:
    if cache is None:
        return
    meta = {
        "em": atlas.em, "spread": atlas.spread, "ascent": atlas.ascent, "descent": atlas.descent,
        "cap_height": atlas.cap_height, "advance": atlas.advance, "box": atlas.box, "uv": atlas.uv,
        "kerning": atlas.kerning,
    }  # fmt: skip
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".glyphs-", suffix=".npz", dir=cache.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, image=atlas.image, meta=np.array(json.dumps(meta)))
        os.replace(tmp, cache)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)
