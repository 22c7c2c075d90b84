"""A mipmapped RGBA texture atlas of neuron patches keyed by ``(unit, neuron)``.

Patches are stored in square power-of-two cells of a 2-D texture *array* (one layer = one page),
so a single instanced draw samples them all.  Each cell holds the patch inset by a gutter of
replicated edge pixels: bilinear filtering and the first mip levels never mix neighbours.
Pages are added as needed (the array is re-allocated and the old pages copied on the GPU side
via a read-back, which happens only when the atlas grows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import moderngl
import numpy as np

from .gl import Uploads


class PatchSource(Protocol):
    """Anything with :meth:`~cnnvis_gl.run.snapshot.Snapshot.patches` (a Snapshot)."""

    def patches(self, name: str, k: int = 1, size: int = 32, neurons=None) -> np.ndarray: ...


class PatchAtlas:
    """Neuron patches in a mipmapped texture array.

    Parameters
    ----------
    ctx
        The moderngl context.
    cell
        Cell side in texels (a power of two).  The patch occupies ``cell - 2 * gutter`` texels.
    gutter
        Replicated border in texels around each patch.
    page
        Page side in texels (clamped to the context's maximum texture size).
    uploads
        Counter of uploads (shared with the renderer); ``"atlas"`` is counted per write.
    """

    def __init__(
        self,
        ctx: moderngl.Context,
        cell: int = 32,
        gutter: int = 2,
        page: int = 2048,
        uploads: Uploads | None = None,
    ) -> None:
        if cell & (cell - 1) or cell < 4:
            raise ValueError("cell must be a power of two ≥ 4")
        if not 0 <= gutter < cell // 4:
            raise ValueError("gutter must be in [0, cell / 4)")
        self.ctx = ctx
        self.cell = int(cell)
        self.gutter = int(gutter)
        max_tex = int(ctx.info["GL_MAX_TEXTURE_SIZE"])
        self.page = int(min(page, max_tex))
        self.page -= self.page % self.cell
        self.per_row = self.page // self.cell
        self.per_page = self.per_row * self.per_row
        self.max_layers = int(ctx.info.get("GL_MAX_ARRAY_TEXTURE_LAYERS", 256))
        self.uploads = uploads if uploads is not None else Uploads()
        self._slots: dict[tuple[int, int], int] = {}
        self._means = np.zeros((0, 3), dtype=np.float32)  # mean colour by slot
        self.texture: moderngl.TextureArray | None = None
        self.layers = 0
        # mip levels until the gutter is gone (cell 32, gutter 2 → levels 0..2, 3 is close)
        self.max_level = max(int(np.log2(max(self.gutter, 1))) + 1, 1)

    # ------------------------------------------------------------------ public
    @property
    def patch_size(self) -> int:
        """Side of the stored patch pixels (the size asked of the patch source)."""
        return self.cell - 2 * self.gutter

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return (int(key[0]), int(key[1])) in self._slots

    def ensure(
        self, source: PatchSource | None, units: Sequence[str], keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Make sure every ``(unit, neuron)`` row of ``keys`` is in the atlas; return its rects.

        Parameters
        ----------
        source
            Patch pixels (a Snapshot); ``None`` stores a flat grey per neuron.
        units
            Unit names, indexed by ``keys[:, 0]``.
        keys
            int ``[n, 2]``: unit index, neuron (channel) index.

        Returns
        -------
        uv
            float32 ``[n, 4]``: ``u0, v0, u1, v1`` of each patch (without the gutter).
        layer
            float32 ``[n]``: page of each patch.
        """
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, 2)
        missing = [(int(u), int(n)) for u, n in keys if (int(u), int(n)) not in self._slots]
        missing = list(dict.fromkeys(missing))
        if missing:
            self._add(source, units, missing)
        slots = np.fromiter(
            (self._slots[(int(u), int(n))] for u, n in keys), dtype=np.int64, count=len(keys)
        )
        return self.rects(slots)

    def mean_colors(self, keys: np.ndarray) -> np.ndarray:
        """Mean RGB (float32 in [0, 1], ``[n, 3]``) of stored patches (for level-of-detail)."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, 2)
        slots = np.fromiter(
            (self._slots.get((int(u), int(n)), -1) for u, n in keys), np.int64, len(keys)
        )
        out = self._means[np.maximum(slots, 0)] if len(self._means) else np.zeros((len(keys), 3))
        out = np.asarray(out, dtype=np.float32).reshape(len(keys), 3)
        out[slots < 0] = 0.0
        return out

    def rects(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uv rects and layers of atlas slots."""
        slots = np.asarray(slots, dtype=np.int64)
        layer = slots // self.per_page
        within = slots % self.per_page
        cx = (within % self.per_row) * self.cell + self.gutter
        cy = (within // self.per_row) * self.cell + self.gutter
        s = float(self.page)
        ps = self.patch_size
        uv = np.stack([cx / s, cy / s, (cx + ps) / s, (cy + ps) / s], 1).astype(np.float32)
        return uv, layer.astype(np.float32)

    def clear(self) -> None:
        """Forget every patch (the texture is kept and overwritten later)."""
        self._slots.clear()
        self._means = np.zeros((0, 3), dtype=np.float32)

    def release(self) -> None:
        if self.texture is not None:
            self.texture.release()
            self.texture = None
            self.layers = 0

    # ------------------------------------------------------------------ internals
    def _grow(self, slots_needed: int) -> None:
        layers = max(1, -(-slots_needed // self.per_page))
        if layers <= self.layers:
            return
        if layers > self.max_layers:
            raise MemoryError(
                f"patch atlas needs {layers} pages of {self.page}² (max {self.max_layers})"
            )
        new_layers = max(layers, min(self.layers * 2, self.max_layers))
        tex = self.ctx.texture_array((self.page, self.page, new_layers), 4, dtype="f1")
        tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        if self.texture is not None and self.layers:
            old = self.texture.read()
            tex.write(old, viewport=(0, 0, 0, self.page, self.page, self.layers))
            self.texture.release()
            self.uploads["atlas.grow"] += 1
        self.texture = tex
        self.layers = new_layers

    def _add(self, source: PatchSource | None, units: Sequence[str], keys: list[tuple]) -> None:
        start = len(self._slots)
        self._grow(start + len(keys))
        means = np.zeros((start + len(keys), 3), dtype=np.float32)
        means[: len(self._means)] = self._means[:start]
        self._means = means
        chunk = max(self.per_row * 8, 1024)  # bounded host memory for huge scenes
        for i0 in range(0, len(keys), chunk):
            self._add_chunk(source, units, keys[i0 : i0 + chunk], start + i0)
        self.texture.build_mipmaps(0, self.max_level)

    def _add_chunk(
        self, source: PatchSource | None, units: Sequence[str], keys: list[tuple], start: int
    ) -> None:
        ps, g, c = self.patch_size, self.gutter, self.cell
        pixels = np.empty((len(keys), c, c, 4), dtype=np.uint8)
        pixels[..., 3] = 255
        arr = np.asarray(keys, dtype=np.int64)
        for u in np.unique(arr[:, 0]):
            rows = np.flatnonzero(arr[:, 0] == u)
            if source is None:
                img = np.full((len(rows), ps, ps, 3), 128, dtype=np.uint8)
            else:
                img = np.asarray(source.patches(units[int(u)], 1, ps, neurons=arr[rows, 1]))
                img = img.reshape(len(rows), -1, ps, ps, 3)[:, 0]
            _put_padded(pixels, rows, img, g)
            # mean colour for level of detail, from every other pixel (fast and close enough)
            sub = img[:, ::2, ::2].reshape(len(rows), -1, 3)
            self._means[start + rows] = sub.sum(axis=1, dtype=np.uint32) / (255.0 * sub.shape[1])
        self._slots.update(zip(keys, range(start, start + len(keys)), strict=True))
        # write runs of consecutive slots that share a page row: one texture write each
        slot, i = start, 0
        while i < len(keys):
            layer, within = divmod(slot, self.per_page)
            row, col = divmod(within, self.per_row)
            run = min(self.per_row - col, len(keys) - i)
            block = pixels[i : i + run].transpose(1, 0, 2, 3).reshape(c, run * c, 4)
            self.uploads.texture(
                "atlas", self.texture, block, viewport=(col * c, row * c, layer, run * c, c, 1)
            )
            slot += run
            i += run


def _put_padded(pixels: np.ndarray, rows: np.ndarray, img: np.ndarray, g: int) -> None:
    """Write ``img`` into ``pixels[rows]`` inset by ``g``, replicating its edge pixels outward."""
    c = pixels.shape[1]
    block = np.empty((len(rows), c, c, 3), dtype=np.uint8)
    block[:, g : c - g, g : c - g] = img
    if g:
        block[:, :g, g : c - g] = img[:, :1]
        block[:, c - g :, g : c - g] = img[:, -1:]
        block[:, :, :g] = block[:, :, g : g + 1]
        block[:, :, c - g :] = block[:, :, c - g - 1 : c - g]
    pixels[rows, :, :, :3] = block
