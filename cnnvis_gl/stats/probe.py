"""Run a model over a probe dataset and collect the statistics of every unit.

The user's model itself runs (it shares its parameters, so it follows training), under the same
bookkeeping that captured its graph (:class:`~cnnvis_gl.model.capture.TapSession`): each unit's
tap tensor is handed to the accumulator the moment it is computed, so the statistics pass holds
no more activations than a bare forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..model.capture import TapSession, input_dtype, pick, unwrap
from ..model.cpu_fallback import cuda_constructors_on_cpu
from ..model.graph import channel_layouts, channels_first
from ..model.trace import TracedModel, trace_model
from .accumulator import StatsAccumulator

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


class Probe:
    """A model prepared for statistics: its graph and a forward that measures the taps."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.model = model = unwrap(model)  # (a DataParallel's module: the same parameters)
        self.traced: TracedModel = trace_model(model, input_shape)
        self.graph = self.traced.graph
        # where each unit's tap comes from: call index -> [(unit position, item, layout)]
        # (channel_layouts: channels-last, a row (B, 1, C), a stack of maps, …, or None)
        self._taps: dict[int, list[tuple[int, tuple[int, ...], Any, list[int]]]] = {}
        layouts = channel_layouts(self.graph)
        for i, u in enumerate(self.graph.units):
            ref = self.traced.call_of[u.tap]
            shape = self.graph.layer(u.tap).shape
            self._taps.setdefault(ref.index, []).append((i, ref.item, layouts.get(u.tap), shape))

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))

    def session(self, acc: StatsAccumulator, *, numbered: bool = False) -> TapSession:
        """Forward passes whose tap tensors go into ``acc``: ``with probe.session(acc) as s:
        s.run(x)`` once per begun batch.  ``numbered``: every pass under the capture's call
        numbering (slower; by default passes after the first use hooks on the tapped modules
        where they can, see :class:`~cnnvis_gl.model.capture.TapSession`)."""

        def on_tap(index: int, out: Any, args: tuple, kwargs: dict) -> None:
            for i, item, layout, shape in self._taps[index]:
                t = pick(out, item)
                if layout is not None:  # to the canonical (B, C[, H, W])
                    t = channels_first(t, layout)
                    t = t.reshape(len(t), *shape)
                acc.update_unit(i, t)

        return TapSession(
            self.model,
            set(self._taps),
            self.traced.recording_calls,
            on_tap,
            modules=None if numbered else self.traced.module_taps,
        )

    @torch.no_grad()
    def collect(
        self,
        batches: Iterable[Batch],
        num_classes: int,
        *,
        k: int = 9,
        class_k: int = 3,
        total: int | None = None,
        progress: bool = True,
        desc: str = "analyze",
        numbered: bool = False,
    ) -> StatsAccumulator:
        """Run every batch in eval mode and accumulate; the model's train/eval mode is restored.
        ``numbered``: see :meth:`session`."""
        acc = StatsAccumulator(
            self.graph.units, num_classes, k=k, device=self.device, class_k=class_k
        )
        dtype = input_dtype(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            with (
                tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar,
                self.session(acc, numbered=numbered) as session,
                cuda_constructors_on_cpu(self.device),
            ):
                for x, y, ids, fetch in batches:
                    acc.begin_batch(y, ids)
                    logits = session.run(x.to(self.device, dtype, non_blocking=True))
                    if logits is not None and logits.dim() == 2 and logits.shape[1] == num_classes:
                        acc.score(logits)
                    acc.end_batch(fetch)
                    bar.update(int(x.shape[0]))
            acc.compact()
        finally:
            self.model.train(was_training)
        return acc


def minmax_uint8(x: torch.Tensor) -> torch.Tensor:
    """Display pixels of normalised images whose normalisation is unknown: min-max per image."""
    x = x.detach().float()
    flat = x.flatten(1)
    lo = flat.min(1).values[:, None, None, None]
    hi = flat.max(1).values[:, None, None, None]
    return ((x - lo) / (hi - lo).clamp(min=1e-8) * 255).round().clamp(0, 255).to(torch.uint8).cpu()


def loader_batches(loader: Iterable[Any], device: Any) -> Iterator[Batch]:
    """Adapt a torch ``DataLoader`` (yielding ``(x, y)``) to probe batches.

    Dataset indices are positions in iteration order; display pixels are min-max scaled inputs.
    """
    seen = 0
    for item in loader:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError("the data loader must yield (images, labels) pairs")
        x, y = item[0], torch.as_tensor(item[1])
        b = int(x.shape[0])
        ids = torch.arange(seen, seen + b, dtype=torch.int64)
        seen += b
        x_dev = x.to(device)
        yield x_dev, y, ids, (lambda pos, x=x: minmax_uint8(x[pos]))
