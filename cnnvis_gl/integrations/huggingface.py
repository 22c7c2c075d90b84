"""Record snapshots of a Hugging Face ``Trainer`` run (image classification): two lines. ::

    from cnnvis_gl.integrations.huggingface import CnnvisTrainerCallback

    trainer = Trainer(..., callbacks=[CnnvisTrainerCallback(probe, "runs/exp1", every=200)])

The callback opens a :class:`~cnnvis_gl.Recorder` on the Trainer's model when training begins.
The probe pass calls the model on a batch of images (``model(pixel_values)``) and reads the
output's ``logits``, as every ``*ForImageClassification`` model of ``transformers`` allows.  The
gradient norms are taken just before each recorded optimizer step (the Trainer clears the
gradients before the step ends), the snapshot after the step; the Trainer's logs (``loss``,
``eval_loss``, ``learning_rate``, …) go to the run's scalars.  Under distributed training every
rank runs the callback: the probe pass is sharded and merged, rank 0 writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..run.recorder import Recorder
from . import import_library

transformers = import_library("transformers", "huggingface")
TrainerCallback = transformers.TrainerCallback


class CnnvisTrainerCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that records CNNVis snapshots every ``every`` steps.

    Parameters
    ----------
    probe, run_dir, every, classes:
        As for :class:`~cnnvis_gl.Recorder` (the fixed probe images, the run directory, the
        recording period in optimizer steps, the class names).
    **recorder_kwargs:
        Passed to the Recorder (``k``, ``batch_size``, ``max_images``, ``input_size``,
        ``normalize``, ``model_name``).
    """

    def __init__(
        self,
        probe: Any,
        run_dir: str | Path,
        every: int = 200,
        classes: Sequence[str] | None = None,
        **recorder_kwargs: Any,
    ) -> None:
        self.probe, self.run_dir, self.every, self.classes = probe, run_dir, every, classes
        self.kwargs = recorder_kwargs
        self.recorder: Recorder | None = None
        self._grads: dict[str, float] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        self.recorder = Recorder(
            model, self.probe, self.run_dir, self.every, self.classes, **self.kwargs
        )

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.recorder is not None and state.global_step % self.every == 0:
            self._grads = self.recorder.grad_norms()  # the step about to be taken is recorded

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any):
        step = state.global_step - 1  # the optimizer step just taken
        if self.recorder is not None and step % self.every == 0:
            self.recorder.record(step, grad_norms=self._grads)
            self._grads = None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
        if self.recorder is None or not logs:
            return
        numbers = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if numbers:
            self.recorder.log(max(state.global_step - 1, 0), **numbers)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.recorder is not None:
            rec, self.recorder = self.recorder, None
            rec.close()
