"""Statistics over several processes with ``torch.distributed`` (``torchrun``, DDP training).

Each rank runs the model over its own shard of the probe images (:func:`shard_of`: images
``rank, rank + W, rank + 2W, …`` — the order of a ``DistributedSampler`` without its padding,
which would count images twice) into its own :class:`~.accumulator.StatsAccumulator`, on its own
device.  :func:`merge_ranks` then merges the accumulators with collectives:

* sums and counts (per-class response sums, class counts, activity and saturation counts,
  activation moments, probe loss and error) — one ``all_reduce`` of a packed float64 and one of a
  packed int64 tensor; the largest responses — ``all_reduce(MAX)``;
* the top-k lists — ``all_gather`` of every rank's ``[N, k]`` keys and arg-max positions, merged
  with the single-process order (value descending, dataset index ascending), so every rank ends
  with the same top-k as one process over all images;
* the pixels of the images that made the merged top-k — ``gather`` to the destination rank only
  (each image lives on the one rank whose shard holds it).

What crosses the network grows with neurons × (classes + k × ranks) plus the top-k images, not
with the number of probe images.  Gloo works on the CPU, NCCL on GPUs (its tensors go through
the rank's current CUDA device).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import numpy as np
import torch

from ..errors import CnnvisError
from .accumulator import StatsAccumulator, _merge_topk, key_ids

#: Fields of the accumulator summed over ranks (float64, then int64 ones).
_F64 = ("class_count", "sum_max", "sum_mean", "act_sum", "act_sq")
_I64 = ("active", "saturated")


def dist_ready() -> bool:
    """True inside an initialised process group of more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a process group."""
    if not dist_ready():
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def is_writer() -> bool:
    """True on the rank that writes files (rank 0, or the only process)."""
    return rank_world()[0] == 0


def shard_of(n: int, rank: int, world: int) -> np.ndarray:
    """Dataset indices of ``rank``'s shard of ``n`` images: ``rank, rank + world, …``.

    Shards differ by at most one image; a rank may get none (more ranks than images).
    """
    return np.arange(rank, n, world, dtype=np.int64)


def init_from_env(timeout_s: float = 1800.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``MASTER_ADDR``, …), unless one is initialised already or the world has one process.

    The backend is NCCL when every rank of a host has a GPU of its own (rank on
    ``cuda:LOCAL_RANK``), else Gloo (ranks then share the GPUs, or run on the CPU).  Returns
    True when this call initialised the group (the caller then destroys it at the end).
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise CnnvisError(
            f"WORLD_SIZE is set but {', '.join(missing)} is not: start distributed runs with "
            "torchrun (e.g. torchrun --nproc-per-node 2 $(which cnnvis) analyze ...)"
        )
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(rank_device())
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        if local_world <= torch.cuda.device_count():
            backend = "nccl"  # (NCCL needs a GPU of its own per rank)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def rank_device() -> torch.device:
    """The device this rank should compute on: GPU ``LOCAL_RANK`` (modulo the GPUs there are:
    ranks share GPUs when there are more ranks than GPUs) where CUDA works, else cpu."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")


def refuse_sharded(model: torch.nn.Module) -> None:
    """A one-line error for a model whose weights are sharded over ranks (FSDP): each rank holds
    a slice of every weight, and snapshots need whole weights (and a forward with no
    collectives inside, as ranks run different numbers of probe batches)."""
    sharded = "FullyShardedDataParallel" in type(model).__name__ or any(
        type(p).__name__ in ("DTensor", "FlatParameter") for p in model.parameters()
    )
    if sharded:
        raise CnnvisError(
            "the model's weights are sharded over ranks (FSDP): cnnvis needs whole weights; "
            "record with DDP, or save the full weights and analyse them with cnnvis analyze"
        )


def comm_device(group: Any = None) -> torch.device:
    """Where the tensors of a collective must be: the current CUDA device for NCCL, else cpu."""
    import torch.distributed as dist

    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def collective(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a collective ``fn(*args, **kwargs)``; a dead or unreachable rank becomes a one-line
    :class:`CnnvisError` that says ``what`` was being done."""
    try:
        return fn(*args, **kwargs)
    except (RuntimeError, ValueError) as e:
        first = (str(e).splitlines() or [""])[0]
        raise CnnvisError(f"{what} across ranks failed (did another rank stop?): {first}") from e


def from_rank0(value: int, group: Any = None) -> int:
    """Rank 0's whole number ``value`` on every rank (``value`` itself outside a process group)."""
    if not dist_ready():
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64, device=comm_device(group))
    collective("sharing a number", dist.broadcast, t, src=0, group=group)
    return int(t.item())


@torch.no_grad()
def sync_model(
    model: torch.nn.Module, *, parameters: bool = True, src: int = 0, group: Any = None
) -> None:
    """Give every rank rank ``src``'s buffers (BatchNorm running statistics, …) and, unless
    ``parameters`` is False, its parameters — as DDP does when it wraps a model and before each
    forward — so that all ranks measure one model, rank ``src``'s."""
    import torch.distributed as dist

    if not dist_ready():
        return
    dev = comm_device(group)
    tensors = list(model.named_buffers())
    if parameters:
        tensors += list(model.named_parameters())
    for name, t in tensors:
        data = t.detach()
        buf = data.to(dev)
        collective(f"sharing the model's {name}", dist.broadcast, buf, src=src, group=group)
        if buf is not data:
            data.copy_(buf)


@torch.no_grad()
def merge_ranks(acc: StatsAccumulator, *, dst: int = 0, group: Any = None) -> StatsAccumulator:
    """Merge every rank's ``acc`` (statistics of disjoint shards) in place.

    Afterwards every rank holds the sums, counts and top-k lists of all images; rank ``dst`` also
    holds the pixels and labels of every image in the merged top-k lists (the other ranks keep
    only their own).  Must be called by every rank of ``group``, with accumulators of the same
    model, classes and k.  Outside a process group it returns ``acc`` unchanged.
    """
    import torch.distributed as dist

    if not dist_ready():
        return acc
    acc.compact()
    dev, home = comm_device(group), acc.device
    world = dist.get_world_size(group)

    # -- shapes first: a rank with another model or k must not hang the others in a collective
    shape = torch.tensor(
        [len(acc.units), int(acc.start[-1]), acc.num_classes, acc.k, acc.class_k], device=dev
    )
    shapes = [torch.empty_like(shape) for _ in range(world)]
    collective("checking the models", dist.all_gather, shapes, shape, group=group)
    if any(not torch.equal(s, shapes[0]) for s in shapes):
        raise CnnvisError(
            "ranks disagree on (units, neurons, classes, k, class_k): "
            + ", ".join(str(s.tolist()) for s in shapes)
        )

    # -- sums and counts
    f64 = torch.cat(
        [getattr(acc, f).flatten().to(dev) for f in _F64] + [acc.loss_sum.reshape(1).to(dev)]
    )
    i64 = torch.cat(
        [getattr(acc, f).to(dev) for f in _I64]
        + [acc.correct.reshape(1).to(dev)]
        + [torch.tensor([acc.n_images, acc.n_scored, *acc.act_n], device=dev)]
    )
    collective("summing the statistics", dist.all_reduce, f64, group=group)
    collective("summing the counts", dist.all_reduce, i64, group=group)
    at = 0
    for f in _F64:
        t = getattr(acc, f)
        t.copy_(f64[at : at + t.numel()].view_as(t))
        at += t.numel()
    acc.loss_sum.copy_(f64[at])
    at = 0
    for f in _I64:
        t = getattr(acc, f)
        t.copy_(i64[at : at + t.numel()])
        at += t.numel()
    acc.correct.copy_(i64[at])
    rest = i64[at + 1 :].tolist()
    acc.n_images, acc.n_scored, acc.act_n = rest[0], rest[1], rest[2:]
    mx = acc.max_resp.to(dev)
    collective("taking the maxima", dist.all_reduce, mx, op=dist.ReduceOp.MAX, group=group)
    acc.max_resp = mx.to(home)

    # -- top-k: every rank's lists, merged in the single-process order
    keys, locs = acc.top_key.to(dev), acc.top_loc.to(dev)
    all_keys = [torch.empty_like(keys) for _ in range(world)]
    all_locs = [torch.empty_like(locs) for _ in range(world)]
    collective("gathering the top-k lists", dist.all_gather, all_keys, keys, group=group)
    collective("gathering the top-k positions", dist.all_gather, all_locs, locs, group=group)
    top_key, top_loc, _ = _merge_topk(torch.cat(all_keys, 1), torch.cat(all_locs, 1), acc.k)
    acc.top_key, acc.top_loc = top_key.to(home), top_loc.to(home)
    if acc.class_k and world > 1:  # the per-class lists the same way
        keys, locs = acc.cls_key.to(dev), acc.cls_loc.to(dev)
        all_keys = [torch.empty_like(keys) for _ in range(world)]
        all_locs = [torch.empty_like(locs) for _ in range(world)]
        collective("gathering the per-class lists", dist.all_gather, all_keys, keys, group=group)
        collective("gathering the per-class positions", dist.all_gather, all_locs, locs, group=group)
        acc.cls_key, acc.cls_loc = all_keys[0].to(home), all_locs[0].to(home)
        acc.merge_class_lists(torch.cat(all_keys[1:], 2).to(home), torch.cat(all_locs[1:], 2).to(home))

    _gather_images(acc, dst, group, dev)
    return acc


def _gather_images(acc: StatsAccumulator, dst: int, group: Any, dev: torch.device) -> None:
    """Send the pixels and labels of this rank's images in the merged top-k lists to ``dst``."""
    import torch.distributed as dist

    world, me = dist.get_world_size(group), dist.get_rank(group)
    needed = set(torch.unique(key_ids(acc.top_key)).cpu().tolist())
    needed |= set(torch.unique(key_ids(acc.cls_key)).cpu().tolist())
    acc.compact()  # drops the pixels of images no longer in any list
    mine = sorted(i for i in acc.images if i in needed)
    shape = next(iter(acc.images.values())).shape if acc.images else None
    head = torch.tensor([len(mine), *(shape or (0, 0, 0))], dtype=torch.int64, device=dev)
    heads = [torch.empty_like(head) for _ in range(world)]
    collective("counting top-k images", dist.all_gather, heads, head, group=group)
    counts = [int(h[0]) for h in heads]
    shapes = {tuple(h[1:].tolist()) for h, c in zip(heads, counts, strict=True) if c}
    if len(shapes) > 1:
        raise CnnvisError(f"ranks hold top-k images of different sizes: {sorted(shapes)}")
    if not shapes:
        return
    (hwc,) = shapes
    most = max(counts)
    ids = torch.full((most,), -1, dtype=torch.int64)
    labels = torch.zeros(most, dtype=torch.int64)
    pixels = torch.zeros((most, *hwc), dtype=torch.uint8)
    for j, i in enumerate(mine):
        ids[j], labels[j] = i, acc.labels[i]
        pixels[j] = torch.from_numpy(acc.images[i])
    sent = (ids.to(dev), labels.to(dev), pixels.to(dev))
    got = None
    if me == dst:
        got = [[torch.empty_like(t) for _ in range(world)] for t in sent]
    for what, t, lst in zip(("ids", "labels", "pixels"), sent, got or (None,) * 3, strict=True):
        collective(f"gathering top-k image {what}", dist.gather, t, lst, dst=dst, group=group)
    if got is None:
        return
    for r in range(world):
        r_ids, r_labels, r_pix = (g[r].cpu() for g in got)
        for j in range(counts[r]):
            i = int(r_ids[j])
            acc.images[i] = r_pix[j].numpy().copy()
            acc.labels[i] = int(r_labels[j])
