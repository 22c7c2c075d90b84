"""Labelled image data for training and analysis.

Everything hands out an :class:`ImageData`; open one with :func:`open_data`::

    from cnnvis_gl.data import open_data

    test = open_data("cifar10:../shared/data/cifar10", "test")
    for x, y, idx in test.batches(256, device="cuda"):
        ...

Specs: ``"cifar10"`` (``data_root()/cifar10``, downloaded if absent), ``"cifar10:DIR"`` and
``"folder:DIR"``.  Torch datasets go through :meth:`ImageData.from_torch`.
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
from cnnvis_gl.data.loaders import SPEC_FORMS, open_data

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_URL",
    "SPEC_FORMS",
    "ImageData",
    "data_root",
    "download_file",
    "extract_tar",
    "fetch_cifar10",
    "open_data",
    "random_crop_flip",
]
