"""torchvision's classification architectures by name (``torchvision:resnet50``), random init.

torchvision is optional (``pip install 'cnnvis-gl[torchvision]'``).  Nothing is downloaded:
architectures are built with ``weights=None``; pass a state dict with ``--weights``.  Each
builder's natural input size and normalisation are read from torchvision's weight metadata
(no download needed).

A torchvision wheel built for another torch (e.g. a CUDA wheel beside a CPU torch) cannot load
its compiled detection operators, and its import then fails on ``torchvision::nms``.  Their
Python-level models need none of them: :func:`import_torchvision` declares the missing operator
schemas (without kernels: calling them still fails) and imports the real package.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from ..errors import ModelError

PREFIX = "torchvision:"

#: Attention-based classifiers in torchvision.models: not convolutional networks.
TRANSFORMERS = ("vit_", "swin_", "maxvit_")

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: Any = None  # keeps the declared schemas alive


def import_torchvision() -> Any:
    """``torchvision.models``, imported even where torchvision's compiled ops cannot load."""
    global _library
    try:
        import torchvision.models as models

        return models
    except ImportError as e:
        raise ModelError(
            "torchvision is not installed: pip install torchvision (or cnnvis-gl[torchvision])"
        ) from e
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    import sys

    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS.values():
            try:
                _library.define(schema)
            except RuntimeError:
                pass  # already declared
    import torchvision.models as models

    return models


def architectures(include_transformers: bool = False) -> list[str]:
    """Names of torchvision's classification builders (CNNs only by default)."""
    models = import_torchvision()
    names = sorted(models.list_models(module=models))
    if include_transformers:
        return names
    return [n for n in names if not n.startswith(TRANSFORMERS)]


def natural(name: str) -> dict[str, Any]:
    """Input size, resize size, mean and std of ``name``'s published weights."""
    models = import_torchvision()
    weights = models.get_model_weights(name).DEFAULT
    t = weights.transforms()
    crop = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
    resize = t.resize_size[0] if isinstance(t.resize_size, (list, tuple)) else t.resize_size
    return {
        "input_size": int(crop),
        "resize": int(resize),
        "mean": list(t.mean),
        "std": list(t.std),
    }


def build(name: str, num_classes: int = 1000) -> nn.Module:
    """torchvision architecture ``name`` with random weights and ``num_classes`` outputs."""
    models = import_torchvision()
    known = models.list_models(module=models)
    if name not in known:
        raise ModelError(
            f"unknown torchvision architecture {name!r}: use one of {', '.join(sorted(known))}"
        )
    kw: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        kw.update(aux_logits=False, init_weights=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return models.get_model(name, **kw)
