"""Labelled image data for training and analysis.

Everything hands out an :class:`ImageData`; open one with :func:`open_data`::

    from cnnvis_gl.data import open_data

    test = open_data("cifar10:../shared/data/cifar10", "test")
    for x, y, idx in test.batches(256, device="cuda"):
        ...

Specs: ``"cifar10"`` (``data_root()/cifar10``, downloaded if absent), ``"cifar10:DIR"`` and
``"folder:DIR"``.  Torch datasets go through :meth:`ImageData.from_torch`.

For an ImageNet-style model, resize lazily and normalise with its statistics::

    data = open_data("cifar10:DIR").resized(224).with_normalization(IMAGENET_MEAN, IMAGENET_STD)
    data = fit_to_model(open_data("folder:photos"), input_size=299, normalize="imagenet")
"""

from __future__ import annotations

from cnnvis_gl.data.cifar10 import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
from cnnvis_gl.data.download import (
    CIFAR10_MD5,
    CIFAR10_URL,
    data_root,
    download_file,
    extract_tar,
    fetch_cifar10,
)
from cnnvis_gl.data.imagedata import ImageData, random_crop_flip
from cnnvis_gl.data.inputs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMALIZE_PRESETS,
    fit_to_model,
    parse_input_size,
    parse_normalize,
)
from cnnvis_gl.data.loaders import SPEC_FORMS, open_data

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_URL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZE_PRESETS",
    "SPEC_FORMS",
    "ImageData",
    "data_root",
    "download_file",
    "extract_tar",
    "fetch_cifar10",
    "fit_to_model",
    "open_data",
    "parse_input_size",
    "parse_normalize",
    "random_crop_flip",
]
