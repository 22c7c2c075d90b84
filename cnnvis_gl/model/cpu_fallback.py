"""Models written for a GPU, run on the CPU.

Some public models make tensors with the legacy CUDA constructors in their own forward
(PyramidNets' zero-padded shortcuts: ``torch.cuda.FloatTensor(b, c, h, w).fill_(0)``, DARTS'
drop-path masks).  Their authors mean "a tensor beside the data": while cnnvis runs such a
model on the CPU, those constructors make CPU tensors.  Nothing else is changed, and only
for the length of cnnvis' own forward passes (capture, statistics, ablation, training).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

#: The legacy ``torch.cuda.<Type>Tensor`` constructors, each with its CPU twin ``torch.<Type>``.
LEGACY_TYPES = (
    "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "ByteTensor", "CharTensor",
    "ShortTensor", "IntTensor", "LongTensor", "BoolTensor",
)  # fmt: skip

_lock = threading.Lock()
_depth = 0  # passes now running with the CPU constructors (threads may overlap)
_saved: dict[str, Any] = {}


@contextmanager
def cuda_constructors_on_cpu(device: torch.device | str) -> Iterator[None]:
    """While the block runs, ``torch.cuda.FloatTensor(…)`` and its kin make CPU tensors, where
    ``device`` (the model's) is the CPU; elsewhere nothing changes."""
    global _depth
    if torch.device(device).type != "cpu":
        yield
        return
    with _lock:
        if _depth == 0:
            for name in LEGACY_TYPES:
                _saved[name] = getattr(torch.cuda, name)
                setattr(torch.cuda, name, getattr(torch, name))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for name, cls in _saved.items():
                    setattr(torch.cuda, name, cls)
                _saved.clear()


def model_on_cpu_constructors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(model, …)`` run under :func:`cuda_constructors_on_cpu` for the model's device, once
    for the whole call (a training loop: not once per step)."""

    @functools.wraps(fn)
    def run(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with cuda_constructors_on_cpu(device):
            return fn(model, *args, **kwargs)

    return run


__all__ = ["LEGACY_TYPES", "cuda_constructors_on_cpu", "model_on_cpu_constructors"]
