"""The Python API: :func:`analyze` a model on a dataset into a :class:`Snapshot`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import ImageData, open_data
from .data.inputs import fit_to_model, parse_input_size, parse_normalize
from .errors import CnnvisError
from .model.weights import group_weights, unit_weights, weight_stats
from .run.snapshot import Snapshot
from .stats.distributed import merge_ranks, rank_world, refuse_sharded, shard_of, sync_model
from .stats.probe import Batch, Probe, loader_batches


def image_batches(
    data: ImageData, batch_size: int, device: Any, indices: Any = None
) -> Iterator[Batch]:
    """Probe batches of an :class:`ImageData` in dataset order (display pixels are the raw ones).

    ``x`` equals what ``data.batches(batch_size)`` yields; each batch's raw pixels are fetched
    (decoded, resized) once and kept for the display pixels of its top-k images.  ``indices``:
    only these images (one rank's shard).
    """
    for raw, y, idx in data.raw_batches(batch_size, indices):
        x = data.normalize(raw.to(device, non_blocking=True))
        y = y.to(device, non_blocking=True)
        yield x, y, idx, (lambda pos, raw=raw: raw.index_select(0, pos.cpu()))


def as_image_data(
    data: Any, classes: Sequence[str] | None, split: str = "test"
) -> ImageData | DataLoader:
    """Normalise the ``data`` argument of :func:`analyze`."""
    if isinstance(data, str):
        return open_data(data, split)
    if isinstance(data, (ImageData, DataLoader)):
        return data
    if isinstance(data, Dataset):
        if classes is None:
            raise CnnvisError("analyze() needs classes=[...] for a torch Dataset")
        return ImageData.from_torch(data, list(classes))
    raise CnnvisError(
        f"cannot analyse data of type {type(data).__name__}: pass a spec string, ImageData, Dataset or DataLoader"
    )


def make_snapshot(
    probe: Probe, acc_arrays: dict, acc_meta: dict, classes: Sequence[str], extra_meta: dict
) -> Snapshot:
    """Assemble statistics, weights and metadata into a snapshot of the probe's current state."""
    arrays = dict(acc_arrays)

    def owned(mat: torch.Tensor) -> np.ndarray:
        # a copy: a weight matrix may be the parameter itself, which training updates in place
        # while the Recorder's writer thread writes the snapshot
        return mat.detach().to(device="cpu", dtype=torch.float32, copy=True).numpy()

    for dst, srcs in group_weights(probe.traced).items():
        for src, mat in srcs.items():
            arrays[f"weights/group/{dst}/{src}"] = owned(mat)
    for dst, srcs in unit_weights(probe.traced).items():
        for src, mat in srcs.items():
            arrays[f"weights/unit/{dst}/{src}"] = owned(mat)
    meta = {
        **acc_meta,
        "weights": weight_stats(probe.traced),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra_meta,
    }
    return Snapshot(probe.graph, list(classes), arrays, meta)


def analyze(
    model: nn.Module,
    data: Any,
    classes: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 256,
    k: int = 9,
    class_k: int = 3,
    device: str | torch.device | None = None,
    progress: bool = True,
    model_name: str | None = None,
    scalars: dict[str, float] | None = None,
    input_size: int | tuple[int, int] | str | None = None,
    normalize: str | tuple[Sequence[float], Sequence[float]] | None = None,
) -> Snapshot | None:
    """Compute the statistics of ``model`` on ``data`` (SPEC §3–4).

    Inside an initialised ``torch.distributed`` process group of several ranks (``torchrun``),
    every rank must call it with the same arguments: each runs its shard of the images
    (``rank, rank + W, …``) on its own device, the statistics are merged with collectives
    (:mod:`cnnvis_gl.stats.distributed`), and rank 0 returns the snapshot of its model (its
    parameters are broadcast to the others first) — equal to one
    process's over all images — while the other ranks return ``None``.

    Parameters
    ----------
    model:
        Any ``nn.Module`` built from supported layers (see :mod:`cnnvis_gl.model.graph`).
    data:
        A data spec (``"cifar10:DIR"``, ``"folder:DIR"``; test split), an :class:`ImageData`,
        a map-style torch ``Dataset`` yielding ``(image, label)``, or a ``DataLoader``.
    classes:
        Class names (taken from ``data`` when it knows them).
    limit:
        Use only the first ``limit`` images.
    k, class_k:
        Top images kept per neuron, and per neuron *and class* (the matrix drill-down; 0:
        none; not kept for more than 100 classes).
    device:
        Where to run (default: the model's device).  Only summaries leave it.
    scalars:
        Extra numbers to record with the snapshot (e.g. ``train_loss``).
    input_size:
        The model's input size: ``N`` (``N × N``), ``(H, W)`` or ``"HxW"``, e.g. ``224`` for
        a torchvision ResNet-50.  Each image is resized so that it covers it (for a square
        size: its shorter side fits) and centre-cropped, lazily, one batch at a time
        (:meth:`ImageData.resized`); the snapshot's top-k images are the resized ones.
        Default: the data's own size.  A ``DataLoader`` is then read through its dataset
        (:meth:`ImageData.from_torch`).
    normalize:
        Normalise with other statistics than the data's own: ``"imagenet"``, ``"cifar10"``,
        ``"MEAN/STD"`` (e.g. ``"0.485,0.456,0.406/0.229,0.224,0.225"``) or a pair
        ``(mean, std)`` of three numbers each (see :func:`cnnvis_gl.data.parse_normalize`).

    Returns
    -------
    Snapshot or None
        Not yet saved; call :meth:`Snapshot.save`.  ``None`` on the ranks other than 0 of a
        process group.

    Raises
    ------
    CnnvisError
        Bad arguments (a bad ``input_size`` / ``normalize`` names the argument), unusable data.
    """
    size_hw = parse_input_size(input_size, "input_size")
    stats = parse_normalize(normalize, "normalize")
    src = as_image_data(data, classes)
    if not isinstance(src, ImageData) and (size_hw is not None or stats is not None):
        if classes is None:
            raise CnnvisError("analyze() needs classes=[...] for a DataLoader")
        src = ImageData.from_torch(src, list(classes))
    refuse_sharded(model)
    if device is not None:
        model = model.to(device)
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    rank, world = rank_world()
    src_batches = _ProbeBatches(src, classes, limit, size_hw, stats, batch_size, dev)
    names, input_shape, total = src_batches.names, src_batches.input_shape, src_batches.total
    if len(names) < 2:
        raise CnnvisError("at least two classes are needed")
    probe = Probe(model, input_shape)
    sync_model(model)  # one model on every rank: rank 0's
    batches = src_batches.batches()
    acc = probe.collect(
        batches, len(names), k=k, class_k=class_k, total=total, progress=progress and rank == 0
    )
    merge_ranks(acc)
    if acc.n_images == 0:
        raise CnnvisError("the dataset yielded no images")
    if rank != 0:
        return None
    arrays, meta = acc.finalize(probe.graph)
    extra = {"dataset": src_batches.dataset_name, "model": model_name or type(model).__name__,
             "scalars": dict(scalars or {}), **({"ranks": world} if world > 1 else {})}  # fmt: skip
    return make_snapshot(probe, arrays, meta, names, extra)


class _ProbeBatches:
    """:func:`analyze`'s images as probe batches, this rank's share of them where several ranks
    analyse together (an ``ImageData``: a shard of its indices; a ``DataLoader``, which every
    rank reads: every ``world``-th batch)."""

    def __init__(
        self,
        src: ImageData | DataLoader,
        classes: Sequence[str] | None,
        limit: int | None,
        size_hw: tuple[int, int] | None,
        stats: Any,
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.device, self.batch_size, self.limit = device, batch_size, limit
        self.rank, self.world = rank_world()
        if isinstance(src, ImageData):
            if limit is not None:
                src = src.subset(limit)
            src = fit_to_model(src, size_hw, stats)
            self.names = list(classes) if classes is not None else list(src.classes)
            self.input_shape = tuple(src.image_shape)
            self.mine = shard_of(len(src), self.rank, self.world) if self.world > 1 else None
            self.total: int | None = len(src) if self.mine is None else len(self.mine)
            self.dataset_name = src.name
        else:
            if classes is None:
                raise CnnvisError("analyze() needs classes=[...] for a DataLoader")
            self.names = list(classes)
            self.input_shape = tuple(next(iter(src))[0].shape[1:])
            self.total = limit
            self.dataset_name = type(src.dataset).__name__
        self.src = src

    def batches(self) -> Iterator[Batch]:
        if isinstance(self.src, ImageData):
            return image_batches(self.src, self.batch_size, self.device, self.mine)
        batches = loader_batches(self.src, self.device)
        if self.limit is not None:
            batches = _limit(batches, self.limit)
        if self.world > 1:
            batches = (b for i, b in enumerate(batches) if i % self.world == self.rank)
        return batches


def _limit(batches: Iterator[Batch], limit: int) -> Iterator[Batch]:
    left = limit
    for x, y, ids, fetch in batches:
        if left <= 0:
            return
        if x.shape[0] > left:
            x, y, ids = x[:left], y[:left], ids[:left]
        left -= int(x.shape[0])
        yield x, y, ids, fetch
