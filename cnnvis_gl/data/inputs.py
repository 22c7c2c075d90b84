"""Fit a dataset to a model's input: its size (``--input-size``) and normalisation (``--normalize``).

ImageNet-style models expect e.g. 224×224 (ResNet-50) or 299×299 (Inception-v3) images
normalised with ImageNet's statistics, whatever the dataset::

    from cnnvis_gl.data import open_data
    from cnnvis_gl.data.inputs import fit_to_model

    data = fit_to_model(open_data("cifar10:DIR"), input_size=224, normalize="imagenet")

The images are resized lazily, per batch (:meth:`ImageData.resized`), so a large size costs no
memory beyond one batch.  :func:`cnnvis_gl.analyze`, :class:`cnnvis_gl.Recorder` and the
``cnnvis analyze`` / ``cnnvis train`` commands take the same two options.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Any

from cnnvis_gl.data.imagedata import ImageData
from cnnvis_gl.errors import CnnvisError

__all__ = [
    "CIFAR10_TRAIN_MEAN",
    "CIFAR10_TRAIN_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_SIZE_HELP",
    "MAX_INPUT_SIZE",
    "NORMALIZE_HELP",
    "NORMALIZE_PRESETS",
    "fit_to_model",
    "parse_input_size",
    "parse_normalize",
]

Stats = tuple[float, float, float]

IMAGENET_MEAN: Stats = (0.485, 0.456, 0.406)
IMAGENET_STD: Stats = (0.229, 0.224, 0.225)

# CIFAR-10 training-set channel statistics of pixel / 255, computed once from the real data:
#     from cnnvis_gl.data import open_data
#     from cnnvis_gl.data.imagedata import channel_stats
#     channel_stats(open_data("cifar10:../shared/data/cifar10", "train").raw(slice(None)))
# i.e. the population mean and standard deviation per channel over all 50,000 × 32 × 32 pixels
# (float64 sums), rounded to 6 decimals.  That copy of CIFAR-10 has most images re-decoded from
# JPEG (slightly blurred, see its README), so its std is about 0.6 % below the figures usually
# quoted for the original files, (0.2470, 0.2435, 0.2616); the means agree to 1e-4.
CIFAR10_TRAIN_MEAN: Stats = (0.491262, 0.482095, 0.446518)
CIFAR10_TRAIN_STD: Stats = (0.245381, 0.242839, 0.260709)

NORMALIZE_PRESETS: dict[str, tuple[Stats, Stats]] = {
    "cifar10": (CIFAR10_TRAIN_MEAN, CIFAR10_TRAIN_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    # pixels in [0, 1]: models that normalise inside (RobustBench's, MadryLab's robustness)
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
"""Named normalisations: ``name -> (mean, std)`` of ``pixel / 255``."""

MAX_INPUT_SIZE = 4096
"""Largest accepted side of an input size, in pixels (a guard against typos like 22424)."""

INPUT_SIZE_HELP = (
    "resize the images to the model's input size: N for N×N, or HEIGHTxWIDTH; each image is "
    "resized so that its shorter side fits, then centre-cropped (ImageNet style), one batch "
    "at a time; e.g. 224 (ResNet-50), 299 (Inception-v3). Default: the dataset's own size"
)
NORMALIZE_HELP = (
    "normalise with other statistics than the dataset's own (what the model was trained "
    "with): imagenet (= 0.485,0.456,0.406/0.229,0.224,0.225), cifar10 (its training-set "
    "statistics), none (pixels in [0, 1], for models that normalise inside, such as "
    "RobustBench's), or MEAN/STD: three comma-separated numbers each, R,G,B of pixel/255, "
    "mean and std separated by a slash. Default: the dataset's own statistics"
)

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?$", re.ASCII)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def parse_input_size(
    value: int | str | Sequence[int] | None, option: str = "input_size"
) -> tuple[int, int] | None:
    """An input size as ``(H, W)``.

    Parameters
    ----------
    value : int, str, (int, int) or None
        ``N`` (``N × N``), ``"N"``, ``"HxW"`` (height first), or ``(H, W)``.  ``None``: no size.
    option : str
        The option's name in error messages (``"--input-size"`` on the command line).

    Raises
    ------
    CnnvisError
        Anything else, or a side outside ``1 … MAX_INPUT_SIZE``; one line naming ``option``.
    """
    if value is None:
        return None
    usage = "use N or HEIGHTxWIDTH in pixels, e.g. 224 or 299x299"
    hw: tuple[int, int] | None = None
    if _is_int(value):
        hw = (int(value), int(value))
    elif isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            h = int(m.group(1))
            hw = (h, int(m.group(2)) if m.group(2) is not None else h)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        hw = (int(value[0]), int(value[1]))
    if hw is None:
        raise CnnvisError(f"{option} {value!r}: {usage}")
    if not all(1 <= v <= MAX_INPUT_SIZE for v in hw):
        raise CnnvisError(
            f"{option} {value!r}: each side must be between 1 and {MAX_INPUT_SIZE} pixels"
        )
    return hw


def _three(text: str) -> Stats | None:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        return None
    try:
        v = tuple(float(p) for p in parts)
    except ValueError:
        return None
    return (v[0], v[1], v[2])


def parse_normalize(value: Any, option: str = "normalize") -> tuple[Stats, Stats] | None:
    """A normalisation as ``(mean, std)`` of ``pixel / 255``.

    Parameters
    ----------
    value : str, (mean, std) or None
        A preset name (``"cifar10"``, ``"imagenet"``; see :data:`NORMALIZE_PRESETS`), a string
        ``"MEAN/STD"`` with three comma-separated numbers each (e.g.
        ``"0.485,0.456,0.406/0.229,0.224,0.225"``), or a pair ``(mean, std)`` of three numbers
        each.  ``None``: keep the dataset's own statistics.
    option : str
        The option's name in error messages (``"--normalize"`` on the command line).

    Raises
    ------
    CnnvisError
        Anything else, a value that is not finite, or a std that is not positive; one line
        naming ``option``.
    """
    if value is None:
        return None
    usage = (
        f"use {', '.join(NORMALIZE_PRESETS)} or MEAN/STD with three comma-separated numbers "
        "each, e.g. 0.485,0.456,0.406/0.229,0.224,0.225"
    )
    pair: tuple[Stats, Stats] | None = None
    if isinstance(value, str):
        key = value.strip().lower()
        if key in NORMALIZE_PRESETS:
            return NORMALIZE_PRESETS[key]
        mean_text, sep, std_text = value.partition("/")
        if sep:
            mean, std = _three(mean_text), _three(std_text)
            if mean is not None and std is not None:
                pair = (mean, std)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            mean_v = [float(v) for v in value[0]]
            std_v = [float(v) for v in value[1]]
        except (TypeError, ValueError):
            mean_v, std_v = [], []
        if len(mean_v) == 3 and len(std_v) == 3:
            pair = ((mean_v[0], mean_v[1], mean_v[2]), (std_v[0], std_v[1], std_v[2]))
    if pair is None:
        raise CnnvisError(f"{option} {value!r}: {usage}")
    if not all(math.isfinite(v) for v in (*pair[0], *pair[1])):
        raise CnnvisError(f"{option} {value!r}: mean and std must be finite numbers")
    if not all(v > 0 for v in pair[1]):
        raise CnnvisError(f"{option} {value!r}: every std must be positive")
    return pair


def fit_to_model(
    data: ImageData,
    input_size: int | str | Sequence[int] | None = None,
    normalize: Any = None,
    *,
    size_option: str = "input_size",
    normalize_option: str = "normalize",
) -> ImageData:
    """``data`` resized to ``input_size`` and normalised with ``normalize`` (both optional).

    See :func:`parse_input_size` and :func:`parse_normalize` for the accepted values and
    :meth:`ImageData.resized` / :meth:`ImageData.with_normalization` for what they do; with
    neither, ``data`` itself.  ``size_option`` / ``normalize_option`` name the options in
    error messages.
    """
    size_hw = parse_input_size(input_size, size_option)
    stats = parse_normalize(normalize, normalize_option)
    if size_hw is not None:
        data = data.resized(size_hw)
    if stats is not None:
        data = data.with_normalization(*stats)
    return data
