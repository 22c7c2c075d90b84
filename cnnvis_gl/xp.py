"""The one place that chooses the array backend: CuPy on a working CUDA device, NumPy otherwise.

CuPy is used only when it imports, ``cupy.cuda.is_available()`` is true *and* a first real
operation succeeds (on machines without a GPU, CuPy imports fine and fails only at the first
kernel).  Set ``CNNVIS_BACKEND=numpy`` to force NumPy.  Convert to NumPy once, at the upload
boundary, with :func:`to_numpy`.  Torch tensors cross to CuPy through DLPack without host copies.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "xp",
    "backend_name",
    "cupy_or_none",
    "get_xp",
    "to_numpy",
    "asarray",
    "from_torch",
    "to_torch",
]


def _probe_cupy() -> ModuleType | None:
    if os.environ.get("CNNVIS_BACKEND", "").lower() == "numpy":
        return None
    try:
        import cupy  # type: ignore[import-not-found]

        if not cupy.cuda.is_available():
            return None
        # First real op: on a machine without a usable driver this raises CUDARuntimeError.
        if int((cupy.arange(4, dtype=cupy.int32) * 2).sum()) != 12:
            return None
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, missing libraries ...
        return None


_cupy = _probe_cupy()

#: The chosen array namespace (``cupy`` or ``numpy``).
xp: ModuleType = _cupy if _cupy is not None else np
#: ``"cupy"`` or ``"numpy"``.
backend_name: str = "cupy" if _cupy is not None else "numpy"


def cupy_or_none() -> ModuleType | None:
    """The CuPy module when it is usable here, else ``None``."""
    return _cupy


def get_xp(array: Any) -> ModuleType:
    """The namespace (``numpy`` or ``cupy``) that owns ``array``."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def asarray(array: Any, backend: ModuleType | None = None) -> Any:
    """``array`` on ``backend`` (default: the chosen one)."""
    mod = backend or xp
    if mod is np:
        return to_numpy(array)
    if _is_torch(array):
        return from_torch(array)
    return mod.asarray(array)


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy array from a NumPy, CuPy or torch array (one device→host copy if on a GPU)."""
    if isinstance(array, np.ndarray):
        return array
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    if _is_torch(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def from_torch(tensor: Any) -> Any:
    """A torch tensor as an array of the chosen backend.

    CUDA tensors become CuPy arrays through DLPack, sharing memory (no host copy); CPU tensors
    become NumPy arrays sharing memory.
    """
    tensor = tensor.detach()
    if tensor.is_cuda:
        if _cupy is None:
            return tensor.cpu().numpy()
        return _cupy.from_dlpack(tensor)
    return tensor.numpy()


def to_torch(array: Any, device: Any = None) -> Any:
    """An array (NumPy or CuPy) as a torch tensor; CuPy arrays through DLPack without copies."""
    import torch

    if _cupy is not None and isinstance(array, _cupy.ndarray):
        t = torch.from_dlpack(array)
    else:
        t = torch.from_numpy(np.ascontiguousarray(array))
    return t if device is None else t.to(device)


def _is_torch(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")
