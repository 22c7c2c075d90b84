"""Record snapshots of a PyTorch Lightning training run: two lines. ::

    from cnnvis_gl.integrations.lightning import CnnvisCallback

    trainer = L.Trainer(..., callbacks=[CnnvisCallback(probe, "runs/exp1", every=200)])

The callback opens a :class:`~cnnvis_gl.Recorder` when training starts (the model is then on its
device) on the ``LightningModule`` — or on one of its attributes, ``module="net"``, when the
network is held inside it — and, after every optimizer step, calls :meth:`Recorder.step` with the
index of that step and the training loss; validation metrics (``trainer.callback_metrics`` logged
in validation) are added to the run's scalars.  Under Lightning's DDP strategy every rank runs
the callback: the probe pass is sharded and merged, rank 0 writes (see :class:`Recorder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..run.recorder import Recorder
from . import import_library

try:
    pl = import_library("lightning.pytorch", "lightning")
except ImportError:  # the standalone package
    pl = import_library("pytorch_lightning", "lightning")


class CnnvisCallback(pl.Callback):
    """A Lightning callback that records CNNVis snapshots every ``every`` optimizer steps.

    Parameters
    ----------
    probe, run_dir, every, classes:
        As for :class:`~cnnvis_gl.Recorder`: the fixed probe images (an ``ImageData``, a data
        spec such as ``"cifar10"``, or a torch ``Dataset`` with ``classes``), the run directory,
        the recording period and the class names.
    module:
        Name of the ``LightningModule``'s attribute that holds the network (default: the
        ``LightningModule`` itself, whose ``forward`` must take an image batch).
    **recorder_kwargs:
        Passed to the Recorder (``k``, ``batch_size``, ``max_images``, ``input_size``,
        ``normalize``, ``model_name``).

    Attributes
    ----------
    recorder:
        The open :class:`~cnnvis_gl.Recorder` while training runs (``None`` before).
    """

    def __init__(
        self,
        probe: Any,
        run_dir: str | Path,
        every: int = 200,
        classes: Sequence[str] | None = None,
        *,
        module: str | None = None,
        **recorder_kwargs: Any,
    ) -> None:
        super().__init__()
        self.probe, self.run_dir, self.every, self.classes = probe, run_dir, every, classes
        self.module = module
        self.kwargs = recorder_kwargs
        self.recorder: Recorder | None = None
        self._last_step = -1

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        model = pl_module if self.module is None else getattr(pl_module, self.module)
        self.recorder = Recorder(
            model, self.probe, self.run_dir, self.every, self.classes, **self.kwargs
        )
        self._last_step = -1

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step - 1  # the optimizer step just taken
        if self.recorder is None or step <= self._last_step:
            return  # gradient accumulation: no optimizer step after this batch
        self._last_step = step
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        scalars = {"train_loss": float(loss)} if isinstance(loss, torch.Tensor) else {}
        self.recorder.step(step, **scalars)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.recorder is None or trainer.sanity_checking:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val") and isinstance(v, (torch.Tensor, float, int)) and _scalar(v)
        }
        if metrics:
            self.recorder.log(max(trainer.global_step - 1, 0), **metrics)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()


def _scalar(v: Any) -> bool:
    return not isinstance(v, torch.Tensor) or v.numel() == 1
