"""Ablation: what a model's per-class accuracy and loss become with some channels zeroed.

The causal counterpart of the activation matrix: a cluster whose neurons light up for "cat"
matters for cats if zeroing them costs cat accuracy.  :func:`ablate` runs the model once per
batch as it is (the baseline) and once per channel set with forward hooks that zero those
channels of a module's output (of a function's result, under the capture's call numbering,
for layers no module returns), on the model's device, over the same images — so every set is
compared with the same baseline in one pass over the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..model.capture import input_dtype, logits_of
from ..model.cpu_fallback import cuda_constructors_on_cpu
from ..model.graph import channels_first

__all__ = ["Ablation", "ablate"]

ChannelSet = Mapping[str, Sequence[int]]  # module path -> channels zeroed


@dataclass(frozen=True)
class Ablation:
    """Per-class results of one channel set against the unablated model.

    Attributes
    ----------
    count
        ``[K]`` images per class.
    correct_base, correct
        ``[K]`` correctly classified images, unablated and ablated.
    loss_base, loss
        ``[K]`` summed cross-entropy, unablated and ablated.
    change
        Per watched unit, ``[C]``: how much each neuron's response (spatial max) moved, the
        mean over the images of ``|ablated − unablated|`` divided by the unit's mean
        ``|unablated|`` response (0: untouched).
    """

    count: np.ndarray
    correct_base: np.ndarray
    correct: np.ndarray
    loss_base: np.ndarray
    loss: np.ndarray
    change: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def accuracy_base(self) -> np.ndarray:
        return self.correct_base / np.maximum(self.count, 1)

    @property
    def accuracy(self) -> np.ndarray:
        return self.correct / np.maximum(self.count, 1)

    @property
    def drop(self) -> np.ndarray:
        """``[K]`` accuracy lost by the ablation (negative: gained)."""
        return self.accuracy_base - self.accuracy

    @property
    def overall(self) -> tuple[float, float]:
        """(accuracy unablated, ablated) over all images."""
        n = max(int(self.count.sum()), 1)
        return float(self.correct_base.sum() / n), float(self.correct.sum() / n)


def _zeroing(channels: Sequence[int], layout: Any) -> Any:
    def hook(_module: torch.nn.Module, _inputs: Any, out: Any) -> Any:
        if not isinstance(out, torch.Tensor) or out.dim() < 2:
            raise TypeError("ablation zeroes channels of a tensor output [N, C, ...]")
        out = out.clone(memory_format=torch.contiguous_format)
        _zero(channels_first(out, layout), channels)  # (the view shares out's memory)
        return out

    return hook


def ablate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, Any]],
    sets: Sequence[ChannelSet],
    num_classes: int,
    device: str | torch.device | None = None,
    watch: Mapping[str, str] | None = None,
    layouts: Mapping[str, Any] | None = None,
) -> list[Ablation]:
    """Per-class accuracy and loss of ``model`` with each channel set of ``sets`` zeroed.

    Parameters
    ----------
    model
        A classifier (logits ``[N, K]``); put in eval mode for the pass and restored.
    batches
        ``(images, labels, anything)`` mini-batches (e.g. ``ImageData.batches``).
    sets
        Each a mapping from a module path (``model.named_modules()``), or the name of a layer
        a function computes (a unit's, as the capture names it: ``block.conv2d``), to the
        output channels it zeroes.
    num_classes
        ``K``.
    device
        Where to run (default: the model's parameters' device).
    watch
        Units whose responses to follow (:attr:`Ablation.change`): unit name → its tap
        (``NeuronGraph.units``' ``tap``: a module's output, or a layer a function computes).
    layouts
        Modules (of ``sets`` or ``watch``) whose outputs do not hold their channels on axis 1,
        and where they do (:func:`~cnnvis_gl.model.graph.channel_layouts` of the model's
        graph).

    Raises
    ------
    ValueError
        A name that is no module or layer of the model, or a channel out of range.
    """
    modules = dict(model.named_modules())
    watch = dict(watch or {})
    # layers that functions compute (F.conv2d in a module's forward: a standardised or a
    # per-sample convolution; a unit whose tap is F.relu's result) are zeroed and followed
    # under the capture's call numbering
    # (then every layer is zeroed and followed that way: forward hooks doing work of their own
    # would be calls the numbering does not expect)
    by_calls = any(n not in modules for s in sets for n in s) or any(
        t not in modules for t in watch.values()
    )
    calls: _Calls | None = None
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    K = int(num_classes)
    count = torch.zeros(K, dtype=torch.float64, device=dev)
    base = torch.zeros(2, K, dtype=torch.float64, device=dev)  # correct, loss
    per = torch.zeros(len(sets), 2, K, dtype=torch.float64, device=dev)
    taps = {} if by_calls else watch
    seen: dict[str, torch.Tensor] = {}  # this pass's responses of the watched units
    moved = [dict.fromkeys(watch, 0.0) for _ in sets]  # summed |Δ| per neuron
    level: dict[str, Any] = dict.fromkeys(watch, 0.0)  # summed |unablated| per neuron
    layouts = layouts or {}
    watchers = [
        modules[t].register_forward_hook(_recording(u, seen, layouts.get(t)))
        for u, t in taps.items()
    ]
    was_training = model.training
    model.eval()
    dtype = input_dtype(model)
    try:
        with torch.no_grad(), cuda_constructors_on_cpu(dev):
            for x, y, *_ in batches:
                x, y = x.to(dev, dtype), y.to(dev).long()
                if by_calls and calls is None:
                    zeroed = {n for s in sets for n in s}
                    calls = _Calls(model, tuple(x.shape[1:]), zeroed, watch, seen, layouts)
                run = calls.run if calls is not None else lambda x, _: logits_of(model(x))
                count += torch.bincount(y, minlength=K).double()
                _accumulate(run(x, {}), y, base, K)
                before = dict(seen)
                for u, r in before.items():
                    level[u] = level[u] + r.abs().sum(0)
                for j, s in enumerate(sets):
                    handles = [
                        modules[n].register_forward_hook(_zeroing(c, layouts.get(n)))
                        for n, c in s.items()
                        if calls is None
                    ]
                    try:
                        _accumulate(run(x, s), y, per[j], K)
                    finally:
                        for h in handles:
                            h.remove()
                    for u, r in seen.items():
                        moved[j][u] = moved[j][u] + (r - before[u]).abs().sum(0)
    finally:
        model.train(was_training)
        for h in watchers:
            h.remove()
        if calls is not None:
            calls.close()
    return _results(count, base, per, level, moved)


def _results(
    count: torch.Tensor,
    base: torch.Tensor,
    per: torch.Tensor,
    level: dict[str, Any],
    moved: list[dict[str, Any]],
) -> list[Ablation]:
    """One :class:`Ablation` per set from the summed counts, losses and response changes."""
    c, b = count.cpu().numpy(), base.cpu().numpy()
    out = []
    for j in range(len(per)):
        p = per[j].cpu().numpy()
        change = {}
        for u, total in level.items():
            if isinstance(total, torch.Tensor):  # (a unit the passes never reached: left out)
                scale = float(total.mean()) or 1.0
                change[u] = (moved[j][u] / scale).cpu().numpy().astype(np.float32)
        out.append(Ablation(c, b[0], p[0], b[1], p[1], change))
    return out


class _Calls:
    """Forward passes under the capture's call numbering (:class:`TapSession`) that zero
    channels of, and follow the responses of, layers that functions compute: what no module
    returns, so that no forward hook finds it."""

    def __init__(
        self,
        model: torch.nn.Module,
        image_shape: tuple[int, ...],
        zeroed: set[str],
        followed: Mapping[str, str],
        seen: dict[str, torch.Tensor],
        layouts: Mapping[str, Any],
    ) -> None:
        from ..errors import ModelError
        from ..model.capture import Ref, TapSession
        from ..model.trace import trace_model

        try:
            self.traced = trace_model(model, image_shape)
        except ModelError as e:
            raise ValueError(f"{sorted(zeroed or followed)[0]!r} is no module, and {e}") from e
        # where each name's values are computed: a layer's call, or the call whose result a
        # module (called once a pass) returns
        returned = {
            id(m): Ref(i) for i, (m, _, n) in self.traced.module_taps.items() if n == 1
        }
        modules = dict(model.named_modules())
        self.at = dict(self.traced.call_of)
        for name in sorted(zeroed):
            if name not in self.at and id(modules.get(name)) in returned:
                self.at[name] = returned[id(modules[name])]
            if name not in self.at:
                raise ValueError(
                    f"{name!r} is not a module or a layer of the model (ablation zeroes a "
                    "module's output, or a layer's)"
                )
        self.seen, self.layouts = seen, layouts
        self.follow: dict[int, list[tuple[str, tuple[int, ...], Any]]] = {}
        for unit, tap in followed.items():
            if tap in self.at:  # (a unit the capture does not know: left out)
                ref = self.at[tap]
                self.follow.setdefault(ref.index, []).append((unit, ref.item, layouts.get(tap)))
        self.zero: dict[int, list[tuple[tuple[int, ...], Sequence[int], Any]]] = {}
        taps = {self.at[n].index for n in zeroed} | set(self.follow)
        self.session = TapSession(
            model, taps, self.traced.recording_calls, self._on_tap, self.traced.module_taps
        ).__enter__()

    def run(self, x: torch.Tensor, zero: Mapping[str, Sequence[int]]) -> torch.Tensor:
        """The logits of ``x`` with the channels of ``zero`` (layer name → channels) zeroed."""
        self.zero = {}
        for name, channels in zero.items():
            ref = self.at[name]
            self.zero.setdefault(ref.index, []).append(
                (ref.item, channels, self.layouts.get(name))
            )
        return self.session.run(x)

    def _on_tap(self, index: int, out: Any, _args: tuple, _kwargs: dict) -> None:
        from ..model.capture import pick

        for item, channels, layout in self.zero.get(index, ()):
            _zero(channels_first(pick(out, item), layout), channels)  # in place
        for unit, item, layout in self.follow.get(index, ()):  # (as the layers after see it)
            self.seen[unit] = _response(pick(out, item), layout)

    def close(self) -> None:
        self.session.__exit__(None, None, None)


def _zero(view: torch.Tensor, channels: Sequence[int]) -> None:
    """Zero ``channels`` of ``view`` (channels on axis 1), in place."""
    idx = sorted({int(c) for c in channels})
    if idx and idx[-1] >= view.shape[1]:
        raise ValueError(f"channel {idx[-1]} of an output with {view.shape[1]} channels")
    view[:, idx] = 0


def _response(out: torch.Tensor, layout: Any) -> torch.Tensor:
    """Each image's response per neuron: its maximum over the positions."""
    t = channels_first(out.detach().float(), layout)
    return t.flatten(2).amax(2) if t.dim() > 2 else t


def _recording(unit: str, seen: dict[str, torch.Tensor], layout: Any) -> Any:
    def hook(_module: torch.nn.Module, _inputs: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.dim() >= 2:
            seen[unit] = _response(out, layout)

    return hook


def _accumulate(logits: torch.Tensor, y: torch.Tensor, acc: torch.Tensor, K: int) -> None:
    """Add per-class correct counts and summed losses of one batch into ``acc[2, K]``."""
    right = (logits.argmax(dim=1) == y).double()
    loss = F.cross_entropy(logits.float(), y, reduction="none").double()
    acc[0].index_add_(0, y, right)
    acc[1].index_add_(0, y, loss)
