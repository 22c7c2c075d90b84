"""``open_data``: from a dataset spec string to an :class:`~cnnvis_gl.data.ImageData`."""

from __future__ import annotations

from pathlib import Path

from cnnvis_gl.data.cifar10 import BIN_DIRNAME, PY_DIRNAME, find_cifar10, load_cifar10
from cnnvis_gl.data.download import CIFAR10_URL, data_root, fetch_cifar10
from cnnvis_gl.data.folder import load_folder
from cnnvis_gl.data.imagedata import ImageData
from cnnvis_gl.errors import DataError

__all__ = ["SPEC_FORMS", "open_data"]

SPEC_FORMS = ("cifar10", "cifar10:DIR", "folder:DIR")


def open_data(
    spec: str, split: str = "test", *, download: bool = True, image_size: int | None = None
) -> ImageData:
    """Open a labelled image set.

    Parameters
    ----------
    spec : str
        One of

        ``"cifar10:DIR"``
            CIFAR-10 in ``DIR/cifar-10-batches-py`` (python layout) or
            ``DIR/cifar-10-batches-bin`` (binary layout), or ``DIR`` is one of those folders.
            Never downloads.
        ``"cifar10"``
            CIFAR-10 in ``data_root() / "cifar10"``, downloaded there (about 170 MB, MD5
            checked) when absent and ``download`` is true.
        ``"folder:DIR"``
            One sub-folder of PNG/JPEG/BMP images per class (see :mod:`cnnvis_gl.data.folder`).
    split : {"test", "train"}
        Which CIFAR-10 split.  Ignored for ``folder:`` (a folder has no split).
    download : bool
        Allow the download for the bare ``"cifar10"`` spec.
    image_size : int, optional
        Resize images to ``image_size × image_size`` when opening (folders: shorter side
        resized, then centre-cropped; CIFAR-10: all images resized in memory).  For folders the
        default is the size of the first image; CIFAR-10 stays 32×32 by default.  For a model's
        input size prefer the lazy :meth:`ImageData.resized` (see
        :func:`cnnvis_gl.data.inputs.fit_to_model`).

    Returns
    -------
    ImageData

    Raises
    ------
    DataError
        Unknown spec kind, missing or malformed data (the message names the path at fault).
    """
    kind, sep, rest = str(spec).partition(":")
    kind = kind.strip().lower().replace("-", "")
    if kind == "cifar10" and sep:
        if not rest.strip():
            raise DataError("empty folder in dataset spec 'cifar10:': use cifar10:DIR")
        return load_cifar10(Path(rest).expanduser(), split, image_size=image_size)
    if kind == "cifar10":
        directory = data_root() / "cifar10"
        if find_cifar10(directory) is None:
            if not download:
                raise DataError(
                    f"CIFAR-10 not found in {directory} (looked for {PY_DIRNAME}/ or "
                    f"{BIN_DIRNAME}/): allow the download, extract {CIFAR10_URL} there, "
                    "set CNNVIS_DATA to a folder holding cifar10/, or use cifar10:DIR"
                )
            fetch_cifar10(directory)
        return load_cifar10(directory, split, image_size=image_size)
    if kind == "folder" and sep:
        if not rest.strip():
            raise DataError("empty folder in dataset spec 'folder:': use folder:DIR")
        return load_folder(Path(rest).expanduser(), image_size=image_size)
    raise DataError(f"unknown dataset spec {spec!r}: use one of " + ", ".join(SPEC_FORMS))
