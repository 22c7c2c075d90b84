"""Adapters of the :class:`~cnnvis_gl.Recorder` for training libraries (optional extras):

* :mod:`cnnvis_gl.integrations.lightning` — ``CnnvisCallback`` for PyTorch Lightning
  (``pip install 'cnnvis-gl[lightning]'``);
* :mod:`cnnvis_gl.integrations.huggingface` — ``CnnvisTrainerCallback`` for the Hugging Face
  ``Trainer`` (``pip install 'cnnvis-gl[huggingface]'``).

Each is imported on its own, so that neither library is needed by the rest of the package.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


def import_library(module: str, extra: str) -> Any:
    """Import a training library, or say which extra installs it.

    Both libraries import torchvision where it is installed; a torchvision wheel built for
    another torch is made importable first (:func:`~cnnvis_gl.models.torchvision.import_torchvision`).
    """
    if importlib.util.find_spec("torchvision") is not None:
        from ..models.torchvision import import_torchvision

        import_torchvision()
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"cnnvis_gl.integrations needs {module.split('.')[0]}: pip install 'cnnvis-gl[{extra}]'"
        ) from e
