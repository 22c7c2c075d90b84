"""The labelled image set every other part of cnnvis_gl reads: :class:`ImageData`.

An :class:`ImageData` is an ordered, labelled set of RGB images of one size ``(3, H, W)``.  It
hands out raw ``uint8`` pixels (:meth:`ImageData.raw`) and normalised float batches
(:meth:`ImageData.batches`).  Concrete kinds:

* in memory (CIFAR-10, :meth:`ImageData.from_tensors`): one ``uint8`` tensor, indexed per batch;
* lazily decoded image files (``folder:DIR``, see :mod:`cnnvis_gl.data.folder`);
* a torch map-style dataset (:meth:`ImageData.from_torch`), read item by item;
* views of another set: its first ``n`` images (:meth:`ImageData.subset`), its images resized
  and centre-cropped to a model's input size, one batch at a time (:meth:`ImageData.resized`),
  or the same images normalised with other statistics (:meth:`ImageData.with_normalization`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cnnvis_gl.errors import DataError

__all__ = [
    "ImageData",
    "as_size_hw",
    "channel_stats",
    "random_crop_flip",
    "resize_crop_uint8",
    "resize_uint8",
]

_STATS_SAMPLE = 500


ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)
"""What transparent pixels are composited on: white (as an image viewer or a web page shows them)."""

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def pil_to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as an 8-bit ``"RGB"`` image, whatever its PIL mode.

    * ``RGB``: unchanged; ``L`` (grayscale), ``1``, ``P`` (palette), ``CMYK``, ``YCbCr``, …:
      PIL's conversion (grayscale becomes R = G = B).
    * 16-bit (``I;16*``, and ``I`` as PIL opens 16-bit PNGs): scaled by 255 / 65535 to 8 bits
      (PIL's own conversion would clip everything above 255 to white).
    * With transparency (an alpha channel, or a palette / colour-key ``transparency``): alpha
      composited on :data:`ALPHA_BACKGROUND` (white), so transparent pixels become white
      instead of whatever colour happens to be stored under them.
    """
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode == "I" or im.mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.float64) * (255.0 / 65535.0)
        im = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))  # mode "L"
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def one_line(message: str) -> str:
    """``message`` with line breaks replaced by spaces (errors are printed as one line)."""
    return message.replace("\r", " ").replace("\n", " ")


def channel_stats(
    images: torch.Tensor,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation of ``pixel / 255``.

    Parameters
    ----------
    images : torch.Tensor
        ``uint8 [N, 3, H, W]``.

    Returns
    -------
    (mean, std) : tuple of two 3-tuples of float
        Population statistics over all pixels of all images.  ``std`` is at least ``1e-3`` so that
        normalising a constant image does not divide by zero.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(
            f"channel_stats needs a non-empty [N, 3, H, W] tensor, got {tuple(images.shape)}"
        )
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for start in range(0, images.shape[0], 1024):
        chunk = images[start : start + 1024].to(torch.float64).div_(255.0)
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-3)
    m = mean.tolist()
    s = std.tolist()
    return (m[0], m[1], m[2]), (s[0], s[1], s[2])


def sample_indices(n: int, k: int = _STATS_SAMPLE) -> np.ndarray:
    """Up to ``k`` evenly spaced indices in ``range(n)`` (all of them when ``n <= k``)."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def as_size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` (an int ``N`` for ``N × N``, or ``(H, W)``) as a ``(H, W)`` pair of ints >= 1.

    Raises
    ------
    ValueError
        Not an int or a pair of ints, or a side below 1.
    """
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        hw = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"image size must be an int N or a pair (H, W) of ints, got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"image size must be at least 1 pixel a side, got {hw}")
    return hw


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``uint8 [N, 3, H, W]`` images to ``size = (H', W')`` (bilinear, antialiased).

    Returns the input unchanged when it already has that size.  The aspect ratio is not kept;
    see :func:`resize_crop_uint8` for that.
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size[0], size[1]), dtype=torch.uint8)
    # Chunks of at most ~64 MB of float output (about 110 images at 224 px).
    chunk_n = max(1, min(512, (1 << 24) // max(1, images.shape[1] * size[0] * size[1])))
    for start in range(0, images.shape[0], chunk_n):
        chunk = images[start : start + chunk_n].float()
        chunk = F.interpolate(
            chunk, size=size, mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + chunk_n] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def resize_crop_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``uint8 [N, 3, H, W]`` images to cover ``size = (H', W')``, then centre-crop.

    The ImageNet-style evaluation transform: the images are scaled by
    ``max(H' / H, W' / W)`` (for a square ``size``: the shorter side becomes ``H'``; bilinear,
    antialiased, see :func:`resize_uint8`), then the central ``H' × W'`` pixels are kept
    (offsets ``(extra) // 2``).  The aspect ratio is kept; a square image resized to a square
    size is a plain resize.  Returns the input unchanged when it already has that size.
    """
    h, w = int(images.shape[-2]), int(images.shape[-1])
    th, tw = int(size[0]), int(size[1])
    if (h, w) == (th, tw):
        return images
    scale = max(th / h, tw / w)
    rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
    out = resize_uint8(images, (rh, rw))
    top, left = (rh - th) // 2, (rw - tw) // 2
    return out[..., top : top + th, left : left + tw].contiguous()


def random_crop_flip(
    raw: torch.Tensor, generator: torch.Generator, padding: int = 4
) -> torch.Tensor:
    """Random crop with ``padding`` zero pixels on each side, then a random horizontal flip.

    The standard CIFAR augmentation, done for a whole batch at once with one gather (no Python
    loop over images).  Random numbers come from ``generator`` (a CPU generator), so the result
    is the same on every device for the same seed.

    Parameters
    ----------
    raw : torch.Tensor
        ``[B, C, H, W]`` of any dtype (normally ``uint8``), on any device.
    generator : torch.Generator
        CPU generator the crop offsets and flips are drawn from.
    padding : int
        Zero padding on each side; offsets are uniform in ``[0, 2 * padding]``.

    Returns
    -------
    torch.Tensor
        A new tensor with the shape, dtype and device of ``raw``.
    """
    b, c, h, w = raw.shape
    if b == 0:
        return raw.clone()
    dev = raw.device
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (oy[:, None] + torch.arange(h)[None, :]).to(dev)  # [B, H]
    cols = ox[:, None] + torch.arange(w)[None, :]  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(dev)  # flipping = reversed columns
    padded = F.pad(raw, (padding, padding, padding, padding))
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def _as_index_array(indices: Any, n: int) -> np.ndarray:
    """Normalise ``indices`` to a 1-D int64 array of valid indices in ``range(n)``."""
    if isinstance(indices, slice):
        return np.arange(n, dtype=np.int64)[indices]
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    arr = np.asarray(indices)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise IndexError(f"boolean mask of shape {arr.shape} for a dataset of {n} images")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"image indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).reshape(-1)
    if arr.min() < -n or arr.max() >= n:
        bad = int(arr[(arr < -n) | (arr >= n)][0])
        raise IndexError(f"image index {bad} out of range for a dataset of {n} images")
    return np.where(arr < 0, arr + n, arr)


class ImageData:
    """An ordered, labelled set of RGB images of one size.

    Do not construct it directly: use :func:`cnnvis_gl.data.open_data`,
    :meth:`ImageData.from_tensors` or :meth:`ImageData.from_torch`.

    Attributes
    ----------
    name : str
        Short name, e.g. ``"cifar10-test"`` or ``"folder-flowers"``.
    classes : list of str
        Class names; label ``k`` means ``classes[k]``.
    mean, std : tuple of 3 floats
        Per-channel mean and standard deviation of ``pixel / 255``, used by :meth:`normalize`.
    image_shape : tuple of 3 ints
        ``(3, H, W)``.
    source : str
        Where the images came from (a spec with an absolute path, or a description).
    """

    name: str
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_shape: tuple[int, int, int]
    source: str

    def __init__(
        self,
        *,
        name: str,
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        image_shape: Sequence[int],
        source: str = "",
    ) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError("mean and std need one value per RGB channel")
        if not all(np.isfinite(float(v)) for v in (*mean, *std)):
            raise ValueError(f"mean and std must be finite, got {tuple(mean)} / {tuple(std)}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.name = name
        self.classes = [str(c) for c in classes]
        self.mean = (float(mean[0]), float(mean[1]), float(mean[2]))
        self.std = (float(std[0]), float(std[1]), float(std[2]))
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or shape[0] != 3:
            raise ValueError(f"image_shape must be (3, H, W), got {shape}")
        self.image_shape = (shape[0], shape[1], shape[2])
        self.source = source

    # ------------------------------------------------------------------ what subclasses provide
    def __len__(self) -> int:
        raise NotImplementedError

    def labels(self) -> np.ndarray:
        """Labels of all images.

        Returns
        -------
        np.ndarray
            ``int64 [N]``, a new (writable) array.
        """
        raise NotImplementedError

    def _fetch(self, idx: np.ndarray) -> torch.Tensor:
        """``uint8 [len(idx), 3, H, W]`` on the CPU for valid, non-negative indices."""
        raise NotImplementedError

    def subset(self, n: int) -> ImageData:
        """The first ``n`` images, as a view that shares storage (for ``--limit``).

        Parameters
        ----------
        n : int
            Number of images; values above ``len(self)`` are clamped.

        Returns
        -------
        ImageData
            Same name, classes, mean/std and image shape; ``len == min(n, len(self))``.
        """
        n = self._check_subset(n)
        return _SubsetImageData(self, n)

    def resized(self, size: int | Sequence[int]) -> ImageData:
        """The same images at a model's input size, resized lazily, one batch at a time.

        Each image is scaled so that it covers ``H × W`` (for a square size: its shorter side
        becomes ``N``), then centre-cropped to exactly ``H × W`` (:func:`resize_crop_uint8`;
        ImageNet style, the aspect ratio is kept).  Nothing is resized up front: the view
        resizes the pixels of each :meth:`raw` / :meth:`batches` request, so a large size costs
        no memory beyond one batch.  :meth:`raw` of the view hands out the resized pixels.

        Parameters
        ----------
        size : int or (int, int)
            ``N`` for ``N × N``, or ``(H, W)``.

        Returns
        -------
        ImageData
            Same name, classes, labels and mean/std; ``image_shape == (3, H, W)``.  ``self``
            when the images already have that size.  :meth:`subset` of the view keeps the size;
            :meth:`resized` of the view resizes the original pixels again (never twice).
        """
        size_hw = as_size_hw(size)
        if size_hw == self.image_shape[1:]:
            return self
        return _ResizedImageData(self, size_hw)

    def with_normalization(self, mean: Sequence[float], std: Sequence[float]) -> ImageData:
        """The same images, normalised by :meth:`batches` / :meth:`normalize` with other statistics.

        For a model trained with other statistics than this set's own (e.g. ImageNet's
        ``(0.485, 0.456, 0.406)`` / ``(0.229, 0.224, 0.225)``).  Pixels and labels are shared.

        Parameters
        ----------
        mean, std : sequence of 3 floats
            Per-channel statistics of ``pixel / 255``; ``std`` must be positive.

        Returns
        -------
        ImageData
            ``self`` when the statistics are already these.
        """
        view = _NormalizedImageData(self, mean, std)
        if (view.mean, view.std) == (self.mean, self.std):
            return self
        return view

    # ------------------------------------------------------------------ shared API
    def _check_subset(self, n: int) -> int:
        if int(n) < 0:
            raise ValueError(f"subset size must be >= 0, got {n}")
        return min(int(n), len(self))

    def raw(self, indices: Any) -> torch.Tensor:
        """Raw pixels of some images.

        Parameters
        ----------
        indices : np.ndarray, list of int, slice, torch.Tensor or int
            Dataset indices (negative ones count from the end), a slice, or a boolean mask of
            length ``len(self)``.  A single int gives a batch of one.

        Returns
        -------
        torch.Tensor
            ``uint8 [n, 3, H, W]`` on the CPU, in the order of ``indices``; a new tensor.
        """
        idx = _as_index_array(indices, len(self))
        if idx.size == 0:
            return torch.zeros((0, *self.image_shape), dtype=torch.uint8)
        return self._fetch(idx)

    def normalize(self, raw_uint8: torch.Tensor) -> torch.Tensor:
        """Convert raw pixels to network input: ``(pixel / 255 - mean) / std``.

        Parameters
        ----------
        raw_uint8 : torch.Tensor
            ``uint8 [..., 3, H, W]`` on any device.

        Returns
        -------
        torch.Tensor
            ``float32`` of the same shape, on the same device.
        """
        if raw_uint8.dtype != torch.uint8:
            raise TypeError(f"normalize expects uint8 pixels, got {raw_uint8.dtype}")
        if raw_uint8.ndim < 3 or raw_uint8.shape[-3] != 3:
            raise ValueError(f"normalize expects [..., 3, H, W], got {tuple(raw_uint8.shape)}")
        dev = raw_uint8.device
        mean = torch.tensor(self.mean, dtype=torch.float32, device=dev).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=dev).view(3, 1, 1)
        return (raw_uint8.to(torch.float32) / 255.0 - mean) / std

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Iterate over the set in mini-batches, ready for a network.

        Parameters
        ----------
        batch_size : int
            Images per batch (the last one may be smaller unless ``drop_last``).
        shuffle : bool
            Visit the images in a random order drawn from ``seed``.  The same seed gives the
            same order on every call; pass e.g. ``seed=base_seed + epoch`` for a new order per
            epoch.
        augment : bool
            Random crop with 4-pixel zero padding and random horizontal flip
            (:func:`random_crop_flip`), applied to the raw batch before normalising; the random
            numbers also come from ``seed``.
        seed : int
            Seed of the CPU generator used for the order and the augmentation.
        device : str or torch.device
            Where ``x`` and ``y`` are put.
        drop_last : bool
            Skip a final batch smaller than ``batch_size``.

        Yields
        ------
        x : torch.Tensor
            ``float32 [B, 3, H, W]`` normalised with :attr:`mean` / :attr:`std`, on ``device``.
        y : torch.Tensor
            ``int64 [B]`` labels, on ``device``.
        idx : torch.Tensor
            ``int64 [B]`` dataset indices, on the CPU.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        batch_size = int(batch_size)
        return self._batches(
            batch_size, shuffle, augment, int(seed), torch.device(device), drop_last
        )

    def raw_batches(
        self, batch_size: int, indices: Any = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The images in dataset order, as raw pixels: ``(uint8 [B, 3, H, W], int64 [B] labels,
        int64 [B] indices)``, all on the CPU, each batch fetched (decoded, resized) once.
        ``indices``: only these dataset indices, in this order (e.g. one rank's shard)."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        batch_size, n = int(batch_size), len(self)
        order = torch.arange(n, dtype=torch.int64)
        if indices is not None:
            order = torch.from_numpy(_as_index_array(indices, n))
        labels = torch.from_numpy(np.ascontiguousarray(self.labels(), dtype=np.int64))
        for start in range(0, int(order.numel()), batch_size):
            idx = order[start : start + batch_size]
            yield self._fetch(idx.numpy()), labels.index_select(0, idx), idx

    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        seed: int,
        device: torch.device,
        drop_last: bool,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self)
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n, dtype=torch.int64)
        labels = torch.from_numpy(np.ascontiguousarray(self.labels(), dtype=np.int64))
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if drop_last and idx.numel() < batch_size:
                break
            raw = self._fetch(idx.numpy()).to(device, non_blocking=True)
            if augment:
                raw = random_crop_flip(raw, gen)
            x = raw.to(torch.float32).div_(255.0).sub_(mean).div_(std)  # == self.normalize(raw)
            y = labels.index_select(0, idx).to(device, non_blocking=True)
            yield x, y, idx

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"classes={len(self.classes)}, image_shape={self.image_shape})"
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tensors(
        cls,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        classes: Sequence[str],
        *,
        name: str = "tensors",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        source: str = "",
    ) -> ImageData:
        """An in-memory set from a ``uint8 [N, 3, H, W]`` tensor and its labels.

        Parameters
        ----------
        images : torch.Tensor or np.ndarray
            ``uint8 [N, 3, H, W]`` (kept, not copied, when already a contiguous CPU tensor).
        labels : array-like of int
            ``[N]`` class indices in ``range(len(classes))``.
        classes : sequence of str
            Class names.
        name : str
            Name of the set.
        mean, std : sequence of 3 floats, optional
            Normalisation statistics of ``pixel / 255``; computed from the images when omitted.
        source : str
            Description of where the images came from.

        Returns
        -------
        ImageData
        """
        t = torch.as_tensor(images)
        if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {t.dtype} {tuple(t.shape)}")
        t = t.cpu().contiguous()
        lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        lab = lab.astype(np.int64).reshape(-1)
        if lab.shape[0] != t.shape[0]:
            raise ValueError(f"{t.shape[0]} images but {lab.shape[0]} labels")
        if lab.size and (lab.min() < 0 or lab.max() >= len(classes)):
            raise ValueError(
                f"labels must be in [0, {len(classes)}), got [{lab.min()}, {lab.max()}]"
            )
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is None or std is None:
            mean, std = channel_stats(t) if t.shape[0] else ((0.5,) * 3, (0.25,) * 3)
        return TensorImageData(
            t, lab, name=name, classes=classes, mean=mean, std=std, source=source or name
        )

    @classmethod
    def from_torch(
        cls,
        dataset: Any,
        classes: Sequence[str],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        *,
        normalized: bool | None = None,
        name: str | None = None,
    ) -> ImageData:
        """Adapt a torch map-style dataset (or a ``DataLoader``, whose ``.dataset`` is used).

        Items are read lazily, one ``dataset[i]`` per image.  ``dataset[i]`` must return
        ``(image, label)``: ``image`` a ``CHW`` tensor (float, or ``uint8``; a ``HWC`` numpy array
        or a PIL image also work; one channel is repeated to three), ``label`` an int or a
        0-d tensor.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset or DataLoader
            Supports ``len()`` and ``dataset[i]``.
        classes : sequence of str
            Class names.
        mean, std : sequence of 3 floats, optional
            Normalisation of the set.  When given (and ``normalized`` is not ``False``), the
            dataset's float images are taken to be already normalised with them, i.e.
            ``(pixel / 255 - mean) / std``; :meth:`raw` undoes that.  When omitted, float images
            are taken to be in ``[0, 1]`` and mean/std are estimated from up to 500 images.
        normalized : bool, optional
            Override that guess: ``False`` means images are in ``[0, 1]`` even though mean/std
            are given (they are then only used to normalise batches).
        name : str, optional
            Defaults to ``"torch-<DatasetClass>"``.

        Returns
        -------
        ImageData

        Notes
        -----
        :meth:`raw` converts float images to ``uint8`` with ``round(255 * x)``.  An image
        (after undoing the normalisation, if any) with values outside ``[0, 1]`` cannot be
        mapped that way; it is min-max scaled to ``[0, 255]`` on its own instead.  Batches are
        built from those ``uint8`` pixels, so they are quantised to 1/255.  Labels come from
        ``dataset.targets`` when it exists, otherwise from one pass over the dataset on the
        first call of :meth:`labels`.
        """
        from torch.utils.data import DataLoader

        if isinstance(dataset, DataLoader):
            dataset = dataset.dataset
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if normalized is None:
            normalized = mean is not None
        if normalized and mean is None:
            raise ValueError(
                "normalized=True needs the mean and std the dataset was normalised with"
            )
        return TorchImageData(
            dataset,
            classes,
            mean=mean,
            std=std,
            normalized=bool(normalized),
            name=name or f"torch-{type(dataset).__name__}",
        )


class TensorImageData(ImageData):
    """All images in one ``uint8 [N, 3, H, W]`` CPU tensor (CIFAR-10, :meth:`ImageData.from_tensors`)."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: np.ndarray,
        *,
        name: str,
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        source: str = "",
    ) -> None:
        super().__init__(
            name=name,
            classes=classes,
            mean=mean,
            std=std,
            image_shape=tuple(images.shape[1:]),
            source=source,
        )
        self._images = images
        labels = np.asarray(labels, dtype=np.int64)
        labels.setflags(write=False)
        self._labels = labels

    def __len__(self) -> int:
        return int(self._images.shape[0])

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def _fetch(self, idx: np.ndarray) -> torch.Tensor:
        return self._images.index_select(0, torch.from_numpy(np.ascontiguousarray(idx)))

    def subset(self, n: int) -> ImageData:
        n = self._check_subset(n)
        return TensorImageData(
            self._images[:n],
            self._labels[:n],
            name=self.name,
            classes=self.classes,
            mean=self.mean,
            std=self.std,
            source=self.source,
        )


class _View(ImageData):
    """Another set seen differently: by default, the same images, labels and statistics."""

    def __init__(self, parent: ImageData, **changes: Any) -> None:
        fields = {
            "name": parent.name,
            "classes": parent.classes,
            "mean": parent.mean,
            "std": parent.std,
            "image_shape": parent.image_shape,
            "source": parent.source,
        }
        super().__init__(**{**fields, **changes})
        self._parent = parent

    def __len__(self) -> int:
        return len(self._parent)

    def labels(self) -> np.ndarray:
        return self._parent.labels()

    def _fetch(self, idx: np.ndarray) -> torch.Tensor:
        return self._parent._fetch(idx)


class _SubsetImageData(_View):
    """The first ``n`` images of another set (generic view)."""

    def __init__(self, parent: ImageData, n: int) -> None:
        super().__init__(parent)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def labels(self) -> np.ndarray:
        return self._parent.labels()[: self._n]

    def subset(self, n: int) -> ImageData:
        return self._parent.subset(self._check_subset(n))


class _ResizedImageData(_View):
    """Another set's images resized and centre-cropped per request (see :meth:`ImageData.resized`)."""

    def __init__(self, parent: ImageData, size_hw: tuple[int, int]) -> None:
        super().__init__(parent, image_shape=(3, size_hw[0], size_hw[1]))
        self._size = size_hw

    def _fetch(self, idx: np.ndarray) -> torch.Tensor:
        return resize_crop_uint8(self._parent._fetch(idx), self._size)

    def subset(self, n: int) -> ImageData:
        return self._parent.subset(self._check_subset(n)).resized(self._size)

    def resized(self, size: int | Sequence[int]) -> ImageData:
        return self._parent.resized(size)  # from the original pixels, not resized twice


class _NormalizedImageData(_View):
    """Another set's images with other normalisation statistics (:meth:`ImageData.with_normalization`)."""

    def __init__(self, parent: ImageData, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(parent, mean=mean, std=std)

    def subset(self, n: int) -> ImageData:
        return self._parent.subset(self._check_subset(n)).with_normalization(self.mean, self.std)

    def resized(self, size: int | Sequence[int]) -> ImageData:
        return self._parent.resized(size).with_normalization(self.mean, self.std)

    def with_normalization(self, mean: Sequence[float], std: Sequence[float]) -> ImageData:
        return self._parent.with_normalization(mean, std)


def _item_to_uint8(
    image: Any,
    *,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
    where: str,
) -> torch.Tensor:
    """One dataset image (tensor / numpy / PIL) as ``uint8 [3, H, W]``; see ``from_torch``."""
    if not isinstance(image, torch.Tensor):
        if isinstance(image, Image.Image):
            image = np.asarray(pil_to_rgb(image)).transpose(2, 0, 1)
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3):
            arr = arr.transpose(2, 0, 1)
        image = torch.from_numpy(np.ascontiguousarray(arr))
    x = image.detach().cpu()
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise DataError(
            f"{where}: expected a CHW image with 1 or 3 channels, got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    if x.dtype == torch.uint8:
        return x.contiguous()
    if x.dtype == torch.bool or not (
        x.is_floating_point() or x.dtype in (torch.int16, torch.int32, torch.int64)
    ):
        raise DataError(f"{where}: unsupported image dtype {x.dtype}")
    if not x.is_floating_point():  # integer pixels other than uint8: take them as 0..255
        return x.clamp(0, 255).to(torch.uint8).contiguous()
    x = x.to(torch.float32)
    if mean is not None and std is not None:
        x = x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:  # unknown range: min-max scale this image
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).contiguous()


class TorchImageData(ImageData):
    """A torch map-style dataset, read lazily (see :meth:`ImageData.from_torch`)."""

    def __init__(
        self,
        dataset: Any,
        classes: Sequence[str],
        *,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        normalized: bool,
        name: str,
    ) -> None:
        self._dataset = dataset
        self._normalized = normalized
        n = len(dataset)
        if n == 0:
            raise DataError(f"torch dataset {name} is empty")
        self._n = n
        norm_mean = tuple(float(v) for v in mean) if (normalized and mean is not None) else None
        norm_std = tuple(float(v) for v in std) if (normalized and std is not None) else None
        self._norm = (norm_mean, norm_std)
        first = self._convert(0, self._item(0)[0])
        shape = tuple(first.shape)
        self._shape = shape
        if mean is None or std is None:
            idx = sample_indices(n)
            imgs = torch.stack([first if int(i) == 0 else self._image(int(i)) for i in idx])
            mean, std = channel_stats(imgs)
        super().__init__(
            name=name,
            classes=classes,
            mean=mean,
            std=std,
            image_shape=shape,
            source=f"torch:{type(dataset).__module__}.{type(dataset).__name__}",
        )
        self._labels: np.ndarray | None = None

    def _item(self, i: int) -> Any:
        item = self._dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"torch dataset item {i} is not an (image, label) pair")
        return item

    def _convert(self, i: int, image: Any) -> torch.Tensor:
        mean, std = self._norm
        return _item_to_uint8(image, mean=mean, std=std, where=f"torch dataset item {i}")  # type: ignore[arg-type]

    def _image(self, i: int) -> torch.Tensor:
        x = self._convert(i, self._item(i)[0])
        if tuple(x.shape) != self._shape:
            raise DataError(
                f"torch dataset item {i} has shape {tuple(x.shape)}, expected {self._shape} "
                "(all images must have one size)"
            )
        return x

    def __len__(self) -> int:
        return self._n

    def labels(self) -> np.ndarray:
        if self._labels is None:
            targets = getattr(self._dataset, "targets", None)
            if targets is not None and len(targets) == self._n:
                lab = np.asarray(
                    targets.cpu() if isinstance(targets, torch.Tensor) else targets, dtype=np.int64
                )
            else:
                lab = np.array([int(self._item(i)[1]) for i in range(self._n)], dtype=np.int64)
            if lab.size and (lab.min() < 0 or lab.max() >= len(self.classes)):
                raise DataError(
                    f"torch dataset {self.name}: labels span [{lab.min()}, {lab.max()}] "
                    f"but there are {len(self.classes)} classes"
                )
            lab.setflags(write=False)
            self._labels = lab
        return self._labels.copy()

    def _fetch(self, idx: np.ndarray) -> torch.Tensor:
        return torch.stack([self._image(int(i)) for i in idx])
