"""CIFAR-10 in its two published layouts.

* ``cifar-10-batches-py``: ``data_batch_1`` … ``data_batch_5``, ``test_batch`` and
  ``batches.meta``, each a pickled dict (the dataset's own format).  Batches hold ``data``
  (``uint8 N×3072``: the R, G and B planes of a 32×32 image, row-major) and ``labels``.
* ``cifar-10-batches-bin``: ``data_batch_1.bin`` … ``data_batch_5.bin``, ``test_batch.bin``
  (records of 1 label byte + 3072 pixel bytes) and ``batches.meta.txt`` (one class name a line).

The pickles are read the way a dataset loader reads them (``encoding="bytes"``), with an
unpickler that only admits the few numpy objects such a batch contains.  Nothing else in
cnnvis_gl reads or writes pickles.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnvis_gl.data.imagedata import ImageData, TensorImageData, one_line, resize_uint8
from cnnvis_gl.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "PY_DIRNAME",
    "BIN_DIRNAME",
    "find_cifar10",
    "load_cifar10",
]

CIFAR10_CLASSES: list[str] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
"""Class names of CIFAR-10 in label order."""

# The usual CIFAR-10 training-set statistics of pixel/255.  Both splits use them, so a network
# trained on "train" sees "test" normalised the same way.  (The ``--normalize cifar10`` preset,
# cnnvis_gl.data.inputs.CIFAR10_TRAIN_MEAN/STD, was measured on this project's copy of the data.)
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

PY_DIRNAME = "cifar-10-batches-py"
BIN_DIRNAME = "cifar-10-batches-bin"

_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS
_SPLITS = ("train", "test")

# What a CIFAR batch pickle may reference: numpy arrays (old and new module paths) and the
# bytes re-encoding that Python 3 writes for protocol 2.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler(f, encoding="bytes")`` that only resolves numpy array globals."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")
        # numpy 2 renamed numpy.core to numpy._core (the old name warns); numpy 1 has only the old.
        for mod in dict.fromkeys((module.replace("numpy.core.", "numpy._core."), module)):
            try:
                return super().find_class(mod, name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise DataError(one_line(f"cannot read CIFAR-10 file {path}: {e.strerror or e}")) from e
    except Exception as e:  # truncated or garbage pickles raise many different errors
        raise DataError(
            one_line(
                f"corrupt CIFAR-10 file {path}: not a readable batch pickle ({type(e).__name__}: {e})"
            )
        ) from e
    if not isinstance(obj, dict):
        raise DataError(
            f"corrupt CIFAR-10 file {path}: expected a pickled dict, got {type(obj).__name__}"
        )
    return obj


def _get(d: dict[Any, Any], key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def _read_py_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data, labels = _get(d, "data"), _get(d, "labels")
    if data is None or labels is None:
        raise DataError(
            f"corrupt CIFAR-10 file {path}: expected a dict with 'data' and 'labels' keys"
        )
    try:
        data = np.asarray(data)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DataError(one_line(f"corrupt CIFAR-10 file {path}: {e}")) from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(
            f"corrupt CIFAR-10 file {path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {_PIXELS})"
        )
    if labels.shape[0] != data.shape[0]:
        raise DataError(
            f"corrupt CIFAR-10 file {path}: {data.shape[0]} images but {labels.shape[0]} labels"
        )
    return data, labels


def _read_bin_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(one_line(f"cannot read CIFAR-10 file {path}: {e.strerror or e}")) from e
    if raw.size == 0 or raw.size % _RECORD:
        raise DataError(
            f"corrupt CIFAR-10 file {path}: {raw.size} bytes is not a whole number of "
            f"{_RECORD}-byte records (truncated?)"
        )
    records = raw.reshape(-1, _RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def _py_classes(folder: Path) -> list[str]:
    path = folder / "batches.meta"
    if not path.is_file():
        return list(CIFAR10_CLASSES)
    names = _get(_unpickle(path), "label_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"corrupt CIFAR-10 file {path}: no 'label_names' list")
    out = []
    for n in names:
        out.append(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n))
    return out


def _bin_classes(folder: Path) -> list[str]:
    path = folder / "batches.meta.txt"
    if not path.is_file():
        return list(CIFAR10_CLASSES)
    try:
        names = [
            line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        ]
    except OSError as e:
        raise DataError(one_line(f"cannot read CIFAR-10 file {path}: {e.strerror or e}")) from e
    names = [n for n in names if n]
    if not names:
        raise DataError(f"corrupt CIFAR-10 file {path}: no class names")
    return names


def find_cifar10(directory: Path) -> tuple[str, Path] | None:
    """Locate a CIFAR-10 layout in or at ``directory``.

    Parameters
    ----------
    directory : Path
        A folder holding ``cifar-10-batches-py`` or ``cifar-10-batches-bin``, or one of those
        folders itself (recognised by its files, whatever its name).

    Returns
    -------
    (layout, folder) or None
        ``layout`` is ``"py"`` or ``"bin"``; ``None`` when no layout is there.
    """
    candidates = [
        ("py", directory / PY_DIRNAME),
        ("bin", directory / BIN_DIRNAME),
        ("py", directory),
        ("bin", directory),
    ]
    for layout, folder in candidates:
        marker = "test_batch" if layout == "py" else "test_batch.bin"
        others = ("data_batch_1",) if layout == "py" else ("data_batch_1.bin",)
        if folder.is_dir() and any((folder / m).exists() for m in (marker, *others)):
            return layout, folder
    return None


def load_cifar10(
    directory: Path, split: str = "test", *, image_size: int | None = None
) -> ImageData:
    """Read a CIFAR-10 split into memory.

    Parameters
    ----------
    directory : Path
        See :func:`find_cifar10`.
    split : {"train", "test"}
        ``"train"``: the five data batches (50,000 images), ``"test"``: the test batch.
    image_size : int, optional
        Resize the 32×32 images to ``image_size × image_size`` (bilinear, antialiased), all of
        them at once, in memory.  For a large model input size use :meth:`ImageData.resized`
        instead, which resizes one batch at a time (10,000 images at 224 px are 1.5 GB).

    Returns
    -------
    ImageData
        Named ``"cifar10-<split>"``, normalised with :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`.

    Raises
    ------
    DataError
        No layout at ``directory``, a batch file missing, or a file truncated or malformed.
    """
    directory = Path(directory).expanduser().absolute()
    if split not in _SPLITS:
        raise DataError(f"unknown CIFAR-10 split {split!r} for {directory}: use 'train' or 'test'")
    if not directory.exists():
        raise DataError(f"CIFAR-10 folder not found: {directory}")
    found = find_cifar10(directory)
    if found is None:
        raise DataError(
            f"no CIFAR-10 data in {directory}: expected {PY_DIRNAME}/ or {BIN_DIRNAME}/ "
            "(or one of them itself)"
        )
    layout, folder = found
    if split == "train":
        names = [f"data_batch_{i}" for i in range(1, 6)]
    else:
        names = ["test_batch"]
    if layout == "bin":
        names = [n + ".bin" for n in names]
    reader = _read_py_batch if layout == "py" else _read_bin_batch
    classes = _py_classes(folder) if layout == "py" else _bin_classes(folder)
    datas, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 file missing: {path}")
        d, lab = reader(path)
        if lab.size and (lab.min() < 0 or lab.max() >= len(classes)):
            raise DataError(
                f"corrupt CIFAR-10 file {path}: labels span [{lab.min()}, {lab.max()}] "
                f"but there are {len(classes)} classes"
            )
        datas.append(d)
        labels.append(lab)
    data = datas[0] if len(datas) == 1 else np.concatenate(datas)
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))
    if image_size is not None:
        if int(image_size) < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        images = resize_uint8(images, (int(image_size), int(image_size)))
    return TensorImageData(
        images,
        np.concatenate(labels),
        name=f"cifar10-{split}",
        classes=classes,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        source=f"cifar10:{folder}",
    )
