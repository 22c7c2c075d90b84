"""Image folders: one sub-folder per class, PNG / JPEG / BMP files, decoded lazily.

``DIR/<class>/**/<image>``: the sorted names of the sub-folders of ``DIR`` are the classes;
every image below a class folder (recursively, sorted by path) is one sample of that class.
Hidden files and folders (name starting with ``.``) and files directly in ``DIR`` are ignored;
any other file in a class folder must be an image.  There is no train/test split in a folder,
so the ``split`` argument of :func:`cnnvis_gl.data.open_data` is ignored for it.

Real photos come in many forms; each file is decoded the same way (:func:`decode_image`):
turned upright by its EXIF orientation tag, converted to 8-bit RGB from any PIL mode
(:func:`pil_to_rgb`: grayscale, palette, 16-bit, transparency composited on white), then
resized so that it covers the set's image size and centre-cropped to it (the aspect ratio is
kept, never distorted).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cnnvis_gl.data.imagedata import (
    ALPHA_BACKGROUND,
    ImageData,
    as_size_hw,
    channel_stats,
    one_line,
    pil_to_rgb,
    sample_indices,
)
from cnnvis_gl.errors import DataError

__all__ = [
    "ALPHA_BACKGROUND",
    "IMAGE_SUFFIXES",
    "FolderImageData",
    "decode_image",
    "load_folder",
    "pil_to_rgb",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})


def _upright(im: Image.Image) -> Image.Image:
    """``im`` turned by its EXIF orientation tag (as stored when the tag is unreadable)."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a corrupt EXIF block: the pixels themselves are fine
        return im


def decode_image(path: Path, size_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``uint8 [3, H, W]`` pixels of one image file, upright, in RGB.

    Parameters
    ----------
    path : Path
        A PNG / JPEG / BMP file.
    size_hw : (int, int), optional
        Resize the image so that it covers ``H × W`` (bilinear, antialiased), then crop its
        centre to exactly ``H × W`` (``PIL.ImageOps.fit``; the aspect ratio is kept).  ``None``:
        the file's own size (after the EXIF rotation).

    Raises
    ------
    DataError
        PIL cannot read the file (the message names it).
    """
    try:
        with Image.open(path) as im:
            rgb = pil_to_rgb(_upright(im))
            if size_hw is not None and rgb.size != (size_hw[1], size_hw[0]):
                rgb = ImageOps.fit(
                    rgb, (size_hw[1], size_hw[0]), Image.Resampling.BILINEAR, centering=(0.5, 0.5)
                )
            arr = np.asarray(rgb, dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError…
        raise DataError(one_line(f"cannot read image {path}: {e}")) from e
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _check_header(path: Path) -> None:
    try:
        with Image.open(path):
            pass
    except Exception as e:
        raise DataError(one_line(f"cannot read image {path}: {e}")) from e


class FolderImageData(ImageData):
    """Images in class folders, decoded with PIL on every access (see :func:`load_folder`)."""

    def __init__(
        self,
        files: list[Path],
        labels: np.ndarray,
        *,
        name: str,
        classes: list[str],
        size_hw: tuple[int, int],
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        source: str = "",
    ) -> None:
        self._files = files
        lab = np.asarray(labels, dtype=np.int64)
        lab.setflags(write=False)
        self._labels = lab
        self._size = size_hw
        if mean is None or std is None:
            sample = self._fetch(sample_indices(len(files)))
            mean, std = channel_stats(sample)
        super().__init__(
            name=name,
            classes=classes,
            mean=mean,
            std=std,
            image_shape=(3, size_hw[0], size_hw[1]),
            source=source,
        )

    @property
    def files(self) -> list[Path]:
        """Image file of each index."""
        return list(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def _fetch(self, idx: np.ndarray) -> torch.Tensor:
        out = np.empty((len(idx), 3, self._size[0], self._size[1]), dtype=np.uint8)
        for k, i in enumerate(idx):
            out[k] = decode_image(self._files[int(i)], self._size)
        return torch.from_numpy(out)

    def resized(self, size: int | Sequence[int]) -> ImageData:
        """The same files decoded straight to ``size`` (fitted and centre-cropped; still lazy)."""
        size_hw = as_size_hw(size)
        if size_hw == self._size:
            return self
        return FolderImageData(
            self._files,
            self._labels,
            name=self.name,
            classes=self.classes,
            size_hw=size_hw,
            mean=self.mean,
            std=self.std,
            source=self.source,
        )

    def subset(self, n: int) -> ImageData:
        n = self._check_subset(n)
        return FolderImageData(
            self._files[:n],
            self._labels[:n],
            name=self.name,
            classes=self.classes,
            size_hw=self._size,
            mean=self.mean,
            std=self.std,
            source=self.source,
        )


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def load_folder(directory: Path, *, image_size: int | None = None) -> FolderImageData:
    """Open an image folder.

    Parameters
    ----------
    directory : Path
        ``DIR`` with one sub-folder per class.
    image_size : int, optional
        Fit every image to ``image_size × image_size`` (resized so that its shorter side is
        ``image_size``, then centre-cropped).  By default all images are fitted the same way to
        the size of the first one (first class, first file, after its EXIF rotation).  For a
        model's input size prefer :meth:`ImageData.resized` (also ``H × W``).

    Returns
    -------
    FolderImageData
        Named ``"folder-<DIR name>"``; mean/std estimated from up to 500 evenly spaced images.

    Raises
    ------
    DataError
        ``DIR`` missing or not a folder, no class folders, no images, a file that is not a
        PNG/JPEG/BMP image, or an image PIL cannot open (each names the path at fault).

    Notes
    -----
    Opening reads every file's header (not its pixels) so that a bad file is reported at once;
    pixels are decoded on each :meth:`ImageData.raw` / :meth:`ImageData.batches` access, as
    :func:`decode_image` describes (EXIF orientation, any PIL mode to RGB, aspect kept).
    """
    directory = Path(directory).expanduser().absolute()
    if not directory.exists():
        raise DataError(f"image folder not found: {directory}")
    if not directory.is_dir():
        raise DataError(f"not a folder: {directory}")
    try:
        class_dirs = sorted(
            (p for p in directory.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name
        )
    except OSError as e:
        raise DataError(one_line(f"cannot list {directory}: {e.strerror or e}")) from e
    if not class_dirs:
        raise DataError(
            f"no class folders in {directory}: expected one sub-folder of images per class"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, cdir in enumerate(class_dirs):
        found: list[Path] = []
        for root, dirs, names in os.walk(cdir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for fname in sorted(names):
                if fname.startswith("."):
                    continue
                path = Path(root) / fname
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(
                        f"not an image file (PNG, JPEG or BMP expected) in class folder: {path}"
                    )
                found.append(path)
        files.extend(found)
        labels.extend([label] * len(found))
    if not files:
        raise DataError(f"no images in the class folders of {directory}")
    for path in files:
        _check_header(path)
    if image_size is not None:
        if int(image_size) < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        size_hw = (int(image_size), int(image_size))
    else:
        first = decode_image(files[0], None)
        size_hw = (int(first.shape[1]), int(first.shape[2]))
    return FolderImageData(
        files,
        np.asarray(labels, dtype=np.int64),
        name=f"folder-{directory.name}",
        classes=[p.name for p in class_dirs],
        size_hw=size_hw,
        source=f"folder:{directory}",
    )
