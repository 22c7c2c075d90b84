"""cnnvis_gl: GPU-rendered visual analytics of convolutional neural networks (CNNVis) for PyTorch.

Quick start::

    import cnnvis_gl as cv
    snap = cv.analyze(model, "cifar10:~/data/cifar10", limit=2000)
    snap.save("runs/base", step=0)
    run = cv.open_run("runs/base"); print(run.latest())

The top-level names are imported lazily, so ``import cnnvis_gl.resources`` (or the CLI's help)
does not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "analyze": ("cnnvis_gl.api", "analyze"),
    "open_run": ("cnnvis_gl.run.snapshot", "open_run"),
    "Run": ("cnnvis_gl.run.snapshot", "Run"),
    "Snapshot": ("cnnvis_gl.run.snapshot", "Snapshot"),
    "Recorder": ("cnnvis_gl.run.recorder", "Recorder"),
    "open_data": ("cnnvis_gl.data", "open_data"),
    "ImageData": ("cnnvis_gl.data", "ImageData"),
    "build_graph": ("cnnvis_gl.model", "build_graph"),
    "build_model": ("cnnvis_gl.models", "build_model"),
}

__all__ = [
    "ImageData",
    "Recorder",
    "Run",
    "Snapshot",
    "__version__",
    "analyze",
    "build_graph",
    "build_model",
    "open_data",
    "open_run",
]

if TYPE_CHECKING:
    from .api import analyze
    from .data import ImageData, open_data
    from .model import build_graph
    from .models import build_model
    from .run.recorder import Recorder
    from .run.snapshot import Run, Snapshot, open_run


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnvis_gl' has no attribute {name!r}")
