"""Record snapshots from a training loop (SPEC §9)::

    with cnnvis_gl.Recorder(model, probe_data, "runs/exp1", every=200, classes=names) as rec:
        for step in range(rec.start_step, total):
            ...; loss.backward(); opt.step()
            rec.step(step, train_loss=loss.item())     # cheap except every 200th step

Every ``every`` steps the recorder runs the model over a fixed probe set *on the model's own
device* (the probe images are moved there once), captures the gradient norm of every weighted
layer (call :meth:`Recorder.step` after ``backward()`` and before the next ``zero_grad()``), and
hands the finished statistics to a background writer thread, which writes the snapshot
atomically.  The training loop only waits for the probe forward pass.  Scalars (loss, learning
rate, …) are buffered and appended to ``scalars.jsonl`` (one JSON object per line).

A recorder opened on an existing run directory of the same model resumes it: ``start_step`` is
one past the last recorded step, and new snapshots join the old ones.

Under ``torch.distributed`` (DDP training; every rank creates a Recorder with the same
arguments and calls :meth:`Recorder.step` at the same steps) each rank runs its shard of the probe
set, the statistics are merged with collectives (:mod:`cnnvis_gl.stats.distributed`), and rank 0
alone writes snapshots and scalars (its own ``train_loss`` etc.).  A DDP-wrapped model is
unwrapped for the layer graph.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageData
from ..errors import CnnvisError, SnapshotError
from ..model.capture import unwrap as unwrap_wrappers
from ..stats.distributed import (
    from_rank0,
    is_writer,
    merge_ranks,
    rank_world,
    refuse_sharded,
    shard_of,
    sync_model,
)
from ..stats.probe import Probe
from . import store
from .snapshot import ensure_manifest

SCALARS_FILE = "scalars.jsonl"


def read_scalars(run_dir: str | Path) -> list[dict[str, Any]]:
    """All scalar records of a run, in file order; a torn last line (crash mid-append) is skipped."""
    path = Path(run_dir) / SCALARS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):  # a torn or damaged line (JSONDecodeError is one)
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            out.append(rec)
    return out


class Recorder:
    """Records snapshots of ``model`` on a fixed probe set every ``every`` steps.

    Parameters
    ----------
    model:
        The model being trained (any supported ``nn.Module``).
    probe:
        The probe set: an :class:`ImageData`, a data spec string (test split), or a torch
        ``Dataset``/``DataLoader`` (then ``classes`` is required).  At most ``max_images`` are used.
    run_dir:
        Run directory to write (created; resumed when it holds a run of the same model).
    every:
        Record a snapshot every ``every`` steps (and at step 0).
    classes:
        Class names (taken from the probe data when it knows them).
    k, batch_size:
        Top-k length and probe batch size.
    input_size:
        The model's input size, ``N``, ``(H, W)`` or ``"HxW"`` (e.g. ``224``): the probe images
        are resized so that they cover it and centre-cropped (:meth:`ImageData.resized`), and
        the snapshots' top-k images are the resized ones.  Default: the data's own size.
    normalize:
        Other normalisation statistics than the data's own: ``"imagenet"``, ``"cifar10"``,
        ``"MEAN/STD"`` or ``(mean, std)`` (see :func:`cnnvis_gl.data.parse_normalize`).

    The probe set is kept on the model's device as ``uint8`` pixels (a quarter of the float
    batches' size: 1,000 images at 224 px take 150 MB) and normalised at each recording.
    """

    def __init__(
        self,
        model: nn.Module,
        probe: Any,
        run_dir: str | Path,
        every: int = 200,
        classes: Sequence[str] | None = None,
        *,
        k: int = 9,
        batch_size: int = 250,
        max_images: int = 1000,
        model_name: str | None = None,
        input_size: int | tuple[int, int] | str | None = None,
        normalize: str | tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        from ..api import as_image_data
        from ..data.inputs import fit_to_model, parse_input_size, parse_normalize

        if every < 1:
            raise ValueError("every must be ≥ 1")
        if batch_size < 1:
            raise ValueError("batch_size must be ≥ 1")
        size_hw = parse_input_size(input_size, "input_size")
        stats = parse_normalize(normalize, "normalize")
        data = as_image_data(probe, classes)
        if not isinstance(data, ImageData):
            data = ImageData.from_torch(data, list(classes or []))
        data = fit_to_model(data.subset(min(max_images, len(data))), size_hw, stats)
        self.classes = list(classes) if classes is not None else list(data.classes)
        model = unwrap(model)
        self.model = model
        self.every = int(every)
        self.k = k
        self.run_dir = Path(run_dir)
        self.model_name = model_name or type(model).__name__
        self.probe = Probe(model, tuple(data.image_shape))
        dev = self.probe.device
        # The fixed probe set lives on the model's device as uint8 pixels, fetched (decoded,
        # resized) once; each recording normalises them there.
        rank, world = rank_world()
        mine = shard_of(len(data), rank, world) if world > 1 else None  # this rank's images
        self._batches = [
            (raw.to(dev), y.to(dev), idx) for raw, y, idx in data.raw_batches(batch_size, mine)
        ]
        self._data = data
        self._weighted = {
            name: mod
            for name, mod in self.probe.traced.module_of.items()
            if self.probe.graph.layer(name).weighted
        }
        #: True on the rank that writes (rank 0, or the only process).
        self.writer = is_writer()
        last = -1
        if self.writer:
            ensure_manifest(self.run_dir, self.probe.graph, self.classes, model=self.model_name)
            steps = store.list_steps(self.run_dir)
            scal = read_scalars(self.run_dir)
            last = max([*steps, *(r["step"] for r in scal), -1])
        #: The step a resumed training loop should continue from (rank 0's, on every rank).
        self.start_step = from_rank0(last) + 1
        self._pending: list[dict[str, Any]] = []
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name="cnnvis-recorder", daemon=True
        )
        self._writer.start()
        self._closed = False
        self.record_seconds: list[float] = []  # time the training loop waited per recording

    # ------------------------------------------------------------------ training-loop side
    def step(self, step: int, **scalars: float) -> None:
        """Log ``scalars`` for ``step``; every ``every`` steps also record a snapshot."""
        self._check()
        if scalars:
            self._pending.append({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
            if len(self._pending) >= 50:
                self._flush_scalars()
        if step % self.every == 0:
            self.record(step, scalars)

    def log(self, step: int, **scalars: float) -> None:
        """Log scalars (e.g. test loss/error after an evaluation) without recording."""
        self._check()
        self._pending.append({"step": int(step), **{k: float(v) for k, v in scalars.items()}})

    @torch.no_grad()
    def record(
        self,
        step: int,
        scalars: dict[str, float] | None = None,
        grad_norms: dict[str, float] | None = None,
    ) -> None:
        """Record a snapshot of the model's current state now.  ``grad_norms``: the layers'
        gradient norms taken earlier (:meth:`grad_norms`), for loops that clear the gradients
        before the recorder is called; by default they are read now."""
        self._check()
        t0 = time.perf_counter()
        grads = self.grad_norms() if grad_norms is None else dict(grad_norms)
        data = self._data
        batches = (
            (
                data.normalize(raw),  # the same numbers data.batches() gives
                y,
                idx,
                (lambda pos, raw=raw: raw.index_select(0, pos.to(raw.device)).cpu()),
            )
            for raw, y, idx in self._batches
        )
        # several ranks: every rank measures rank 0's model (DDP shares parameters but each rank
        # keeps its own BatchNorm running statistics until the next training forward)
        sync_model(self.model, parameters=False)
        acc = self.probe.collect(batches, len(self.classes), k=self.k, progress=False)
        merge_ranks(acc)  # (several ranks: every rank's shard; rank 0 gets the images)
        if not self.writer:
            self._pending = []
            self.record_seconds.append(time.perf_counter() - t0)
            return
        # Summaries leave the device here; weights are copied so training may go on.
        arrays, meta = acc.finalize(self.probe.graph)
        from ..api import make_snapshot

        extra = {"dataset": data.name, "model": self.model_name, "scalars": dict(scalars or {})}
        snap = make_snapshot(self.probe, arrays, meta, self.classes, extra)
        snap.meta["grad_norms"] = grads
        self._flush_scalars()
        self.record_seconds.append(time.perf_counter() - t0)
        self._queue.put((int(step), snap))

    @torch.no_grad()
    def grad_norms(self) -> dict[str, float | None]:
        """The L2 norm of every weighted layer's weight gradient now (layers without one left
        out; ``None`` where it is NaN or ±inf: an exploding gradient)."""
        norms = {
            name: float(torch.linalg.vector_norm(mod.weight.grad.detach()))
            for name, mod in self._weighted.items()
            if mod.weight.grad is not None
        }
        return {k: v if math.isfinite(v) else None for k, v in norms.items()}

    def close(self) -> None:
        """Flush scalars and wait until every snapshot is on disk."""
        if self._closed:
            return
        self._closed = True
        self._flush_scalars()
        self._queue.put(None)
        self._writer.join()
        self._check()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writer side
    def _flush_scalars(self) -> None:
        if not self._pending or not self.writer:
            self._pending = []
            return
        lines = "".join(json.dumps(r) + "\n" for r in self._pending)
        self._pending = []
        with open(self.run_dir / SCALARS_FILE, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            step, snap = item
            try:
                arrays = {k: np.asarray(snap[k]) for k in snap.keys()}
                store.write_snapshot(self.run_dir, step, arrays, snap.meta)
            except BaseException as e:  # reported to the training loop at its next call
                self._error = e

    def _check(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, (CnnvisError, SnapshotError)):
                raise err
            raise CnnvisError(f"writing a snapshot to {self.run_dir} failed: {err}") from err


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a ``DistributedDataParallel`` / ``DataParallel`` /
    ``torch.compile`` wrapper.

    A model whose weights are sharded over ranks (FSDP) is refused: each rank holds only a slice
    of every weight, and the snapshots' weights and edges need whole ones."""
    model = unwrap_wrappers(model)
    refuse_sharded(model)
    return model
