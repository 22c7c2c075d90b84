"""Run a model over a probe dataset and collect the statistics of every unit.

The traced model is re-emitted with the tap tensors as extra outputs (one forward pass, no hooks,
works for taps that are function calls such as a residual ``add``); it shares the parameters of
the user's model, so it follows training without re-tracing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from tqdm.auto import tqdm

from ..model.graph import TracedModel, trace_model
from .accumulator import StatsAccumulator

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


class Probe:
    """A model prepared for statistics: its graph and a forward that also returns the taps."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.model = model
        self.traced: TracedModel = trace_model(model, input_shape)
        self.graph = self.traced.graph
        gm = self.traced.gm
        new = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        out = new.graph_copy(gm.graph, env)
        taps = [env[self.traced.node_of[u.tap]] for u in self.graph.units]
        new.output((out, tuple(taps)))
        self.module = fx.GraphModule(gm, new)

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))

    @torch.no_grad()
    def collect(
        self,
        batches: Iterable[Batch],
        num_classes: int,
        *,
        k: int = 9,
        total: int | None = None,
        progress: bool = True,
        desc: str = "analyze",
    ) -> StatsAccumulator:
        """Run every batch in eval mode and accumulate; the model's train/eval mode is restored."""
        acc = StatsAccumulator(self.graph.units, num_classes, k=k, device=self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
                for x, y, ids, fetch in batches:
                    logits, taps = self.module(x.to(self.device, non_blocking=True))
                    acc.update(list(taps), y, ids, fetch, logits=logits)
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
