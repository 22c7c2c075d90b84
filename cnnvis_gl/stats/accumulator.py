"""Streaming, mergeable neuron statistics (SPEC §3).

For every unit (the neurons of one weighted layer, measured at its tap) and every class, the
accumulator keeps sums and counts, a running top-k of the images with the largest response
(with the arg-max location), a shorter top-``class_k`` per class (the images of that class
with the largest response: the matrix drill-down) and per-neuron activity counts.  Memory does
not grow with the dataset: the state is O(neurons × (classes × class_k + k)) plus the pixels
of the images currently in some top list.  Everything is computed on the model's device; only
the summaries (and the few top-k images) leave it.  Two accumulators over disjoint parts of a dataset merge into the
one over the whole (:meth:`StatsAccumulator.merge`): sums add, top-k lists merge with the same
deterministic order (value descending, then dataset index ascending).

The state of all neurons of all units lives in flat tensors (unit ``i`` owns rows
``start[i]:start[i + 1]``).  While a batch runs, each unit only reduces its tap to per-neuron
responses (:meth:`StatsAccumulator.update_unit`: a few kernels, no host synchronisation); the
class sums, activity counts and top-k lists of every neuron are then updated at once by
:meth:`StatsAccumulator.end_batch`, so the work per batch hardly depends on the number of units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..model.graph import NeuronGraph, Unit

#: Response of a conv neuron to one image: spatial max (the spec's choice) and mean.
RESPONSES = ("max", "mean")

#: Neurons × (k + batch) elements per top-k merge step (bounds the merge's temporaries).
_MERGE_CHUNK = 1 << 22


#: Per-class top lists are kept for up to this many classes (beyond it, their state of
#: neurons × classes × class_k would dwarf everything else: ImageNet's 1000 classes).
MAX_CLASS_TOPK_CLASSES = 100

#: Key of an empty top-k slot (below every real key).
_EMPTY = torch.iinfo(torch.int64).min
_LOW = 0xFFFFFFFF


def topk_keys(values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """int64 keys that order (value descending, dataset index ascending) as plain integers.

    The high 32 bits hold the float32 value's bits mapped to a monotonic signed integer, the
    low 32 bits ``2**32 - 1 - id``; so one ``topk`` of the keys is the deterministic top-k, and
    value and index are read back from the key (:func:`key_values`, :func:`key_ids`).
    """
    bits = (values.float() + 0.0).contiguous().view(torch.int32)  # (+ 0.0: -0.0 becomes 0.0)
    ordered = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
    return (ordered << 32) | (_LOW - ids)


def key_values(keys: torch.Tensor) -> torch.Tensor:
    """float32 values of top-k keys (-inf for empty slots)."""
    ordered = (keys >> 32).to(torch.int32)
    vals = (ordered ^ ((ordered >> 31) & 0x7FFFFFFF)).view(torch.float32)
    return vals.masked_fill(keys == _EMPTY, -math.inf)


def key_ids(keys: torch.Tensor) -> torch.Tensor:
    """int64 dataset indices of top-k keys (-1 for empty slots)."""
    return (_LOW - (keys & _LOW)).masked_fill(keys == _EMPTY, -1)


def _merge_topk(keys: torch.Tensor, locs: torch.Tensor, k: int):
    """Keep the k largest keys per row (sorted), with their locations and column positions."""
    top, order = torch.topk(keys, k, dim=1, sorted=True)
    return top, locs.gather(1, order), order


class StatsAccumulator:
    """Accumulates statistics of ``units`` over batches.

    Parameters
    ----------
    units:
        The units to measure (``NeuronGraph.units``), in the order their tap tensors are passed
        to :meth:`update`.
    num_classes:
        Number of classes of the labels.
    k:
        Length of each neuron's top-k image list.
    class_k:
        Length of each neuron's per-class top lists (0: none; also none for more than
        :data:`MAX_CLASS_TOPK_CLASSES` classes).
    device:
        Where the state lives (the model's device).

    Attributes (flat over all neurons, unit ``i`` at rows ``start[i]:start[i + 1]``)
    ----------
    sum_max, sum_mean:
        ``[N, K]`` float64 per-class sums of the response (spatial max / mean).
    top_key, top_loc:
        ``[N, k]`` the top-k as keys (:func:`topk_keys`; properties ``top_val`` and ``top_id``
        read the responses, descending, and their dataset indices, -1: empty) and the flat
        arg-max position in the tap's feature map.
    cls_key, cls_loc:
        ``[N, K, class_k]`` the same per class: the images of class ``c`` only.
    max_resp, active, saturated:
        ``[N]`` largest response; images with response > 0; images with mean |activation| ≥
        95 % of the unit's bound.
    act_sum, act_sq:
        ``[N]`` float64 sums of all activation values and of their squares.
    """

    def __init__(
        self,
        units: list[Unit],
        num_classes: int,
        k: int = 9,
        device: Any = "cpu",
        class_k: int = 3,
    ) -> None:
        self.units = list(units)
        self.num_classes = int(num_classes)
        self.k = int(k)
        self.class_k = int(class_k) if num_classes <= MAX_CLASS_TOPK_CLASSES else 0
        self.device = dev = torch.device(device)
        self.start = np.concatenate([[0], np.cumsum([u.channels for u in self.units])]).astype(int)
        n, kk = int(self.start[-1]), num_classes
        f64 = torch.float64
        self.class_count = torch.zeros(kk, dtype=f64, device=dev)
        self.n_images = 0
        self.n_scored = 0
        self.loss_sum = torch.zeros((), dtype=f64, device=dev)
        self.correct = torch.zeros((), dtype=torch.int64, device=dev)
        self.images: dict[int, np.ndarray] = {}  # dataset index -> uint8 [H, W, 3]
        self.labels: dict[int, int] = {}
        self._batches = 0
        self.sum_max = torch.zeros(n, kk, dtype=f64, device=dev)
        self.sum_mean = torch.zeros(n, kk, dtype=f64, device=dev)
        self.top_key = torch.full((n, self.k), _EMPTY, dtype=torch.int64, device=dev)
        self.top_loc = torch.zeros(n, self.k, dtype=torch.int64, device=dev)
        self.cls_key = torch.full((n, kk, self.class_k), _EMPTY, dtype=torch.int64, device=dev)
        self.cls_loc = torch.zeros(n, kk, self.class_k, dtype=torch.int64, device=dev)
        self.max_resp = torch.full((n,), -math.inf, device=dev)
        self.active = torch.zeros(n, dtype=torch.int64, device=dev)
        self.saturated = torch.zeros(n, dtype=torch.int64, device=dev)
        self.act_sum = torch.zeros(n, dtype=f64, device=dev)
        self.act_sq = torch.zeros(n, dtype=f64, device=dev)
        self.act_n = [0] * len(self.units)  # activation values seen per unit
        area = [max(math.prod(u.spatial), 1) for u in self.units]
        self._area = torch.as_tensor(np.repeat(area, np.diff(self.start)), dtype=f64, device=dev)
        self._pending: tuple | None = None  # the last batch, whose images are kept one batch late

    @property
    def top_val(self) -> torch.Tensor:
        """``[N, k]`` float32 top-k responses, descending (-inf: empty)."""
        return key_values(self.top_key)

    @property
    def top_id(self) -> torch.Tensor:
        """``[N, k]`` int64 dataset indices of the top-k images (-1: empty)."""
        return key_ids(self.top_key)

    def rows(self, i: int) -> slice:
        """Unit ``i``'s rows of the flat state."""
        return slice(int(self.start[i]), int(self.start[i + 1]))

    # ------------------------------------------------------------------ streaming
    @torch.no_grad()
    def update(
        self,
        taps: list[torch.Tensor],
        labels: torch.Tensor,
        ids: torch.Tensor,
        fetch_images: Callable[[torch.Tensor], torch.Tensor],
        logits: torch.Tensor | None = None,
    ) -> None:
        """Add one batch.

        Parameters
        ----------
        taps:
            One tensor per unit, ``[B, C, H, W]`` or ``[B, C]``, on the accumulator's device.
        labels:
            ``[B]`` int64 class labels (any device).
        ids:
            ``[B]`` int64 dataset indices of the images (distinct across the whole dataset).
        fetch_images:
            Called with batch positions (cpu int64) of the images that entered some top-k;
            returns their display pixels as uint8 ``[n, 3, H, W]``.
        logits:
            Optional model outputs ``[B, num_classes]`` to score the probe loss and error.
        """
        self.begin_batch(labels, ids, logits)
        for i, t in enumerate(taps):
            self.update_unit(i, t)
        self.end_batch(fetch_images)

    def begin_batch(
        self, labels: torch.Tensor, ids: torch.Tensor, logits: torch.Tensor | None = None
    ) -> None:
        """Start a batch: its labels, dataset indices and (optionally) the model's outputs."""
        dev = self.device
        self._y = y = labels.to(dev)
        self._ids = ids
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= _LOW):
            raise ValueError(f"dataset indices must lie in [0, {_LOW}), got {ids.min()}..{ids.max()}")
        self._ids_dev = ids.to(dev)
        if self.class_k:
            self._by_class = _class_positions(labels.cpu(), dev)
        b = int(y.shape[0])
        self.class_count.index_add_(0, y, torch.ones(b, dtype=torch.float64, device=dev))
        self.n_images += b
        # this batch's per-neuron reductions, unit by unit: (max, arg-max, mean, L2 norm) [B, C]
        self._parts: list[tuple[torch.Tensor, ...] | None] = [None] * len(self.units)
        if logits is not None:
            self.score(logits)

    def score(self, logits: torch.Tensor) -> None:
        """Probe loss and error of the current batch from the model's outputs."""
        lg = logits.detach().float()
        y = self._y
        self.loss_sum += torch.nn.functional.cross_entropy(lg, y, reduction="sum").double()
        self.correct += (lg.argmax(1) == y).sum()
        self.n_scored += int(y.shape[0])

    def update_unit(self, i: int, t: torch.Tensor) -> None:
        """Reduce unit ``i``'s tap tensor (``[B, C, H, W]`` or ``[B, C]``) of the current batch
        to per-neuron responses (no host synchronisation; detached, so no ``no_grad`` needed)."""
        t = t.detach().float()
        self.act_n[i] += t.numel()
        if t.dim() == 4:
            # (reductions over the last axis only: several times faster on a CPU than others)
            flat = t.flatten(2)
            r_max, loc = flat.max(dim=2)
            self._parts[i] = (r_max, loc, flat.mean(dim=2), torch.linalg.vector_norm(flat, dim=2))
        else:
            self._parts[i] = (t, torch.zeros_like(t, dtype=torch.int64), t, t.abs())
        bound = self.units[i].bound
        if bound is not None:
            mean_abs = t.abs().flatten(2).mean(dim=2) if t.dim() == 4 else t.abs()
            self.saturated[self.rows(i)] += (mean_abs >= 0.95 * bound).sum(dim=0)

    def end_batch(self, fetch_images: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Fold the batch's responses into every neuron's state, and keep the pixels of the
        batch's images that entered some top-k list."""
        missing = [u.name for u, part in zip(self.units, self._parts, strict=True) if part is None]
        if missing:
            raise RuntimeError(f"no activations of unit(s) {missing[:5]} in this batch")
        r_max, loc, r_mean, norm = (torch.cat(x, dim=1) for x in zip(*self._parts, strict=True))
        y, b = self._y, int(self._y.shape[0])
        self.act_sum += r_mean.sum(0, dtype=torch.float64) * self._area
        self.act_sq += norm.double().square().sum(0)
        self.sum_max.index_add_(1, y, r_max.T.double())
        self.sum_mean.index_add_(1, y, r_mean.T.double())
        self.max_resp = torch.maximum(self.max_resp, r_max.max(dim=0).values)
        self.active += (r_max > 0).sum(dim=0)
        n, k = int(self.start[-1]), self.k
        step = max(1, _MERGE_CHUNK // (k + b))
        entered = torch.zeros(b + 1, dtype=torch.bool, device=self.device)  # [b]: none
        for lo in range(0, n, step):
            s = slice(lo, min(n, lo + step))
            self.top_key[s], self.top_loc[s], order = _merge_topk(
                torch.cat([self.top_key[s], topk_keys(r_max[:, s].T, self._ids_dev)], dim=1),
                torch.cat([self.top_loc[s], loc[:, s].T], dim=1),
                k,
            )
            entered.index_fill_(0, torch.where(order >= k, order - k, b).flatten(), True)
        if self.class_k:
            _merge_classes(self, r_max, loc, entered)
        del self._parts
        # Which of the batch's images entered some top-k list is read on the host one batch
        # late, so that the host prepares the next batch while the device still works on this
        # one (an image evicted meanwhile is simply not needed).
        mask = entered[:b]
        event = None
        if self.device.type == "cuda":
            mask = torch.empty(mask.shape, dtype=torch.bool, pin_memory=True).copy_(mask, True)
            y = torch.empty(y.shape, dtype=y.dtype, pin_memory=True).copy_(y, True)
            event = torch.cuda.Event()
            event.record()
        self._flush()
        self._pending = (mask, y, event, self._ids.cpu(), fetch_images)
        self._batches += 1
        if self._batches % 16 == 0:
            self.compact()

    def _flush(self) -> None:
        """Keep the pixels (H × W × 3) of the pending batch's images that entered some top-k."""
        if self._pending is None:
            return
        mask, y, event, ids, fetch_images = self._pending
        self._pending = None
        if event is not None:
            event.synchronize()
        pos = torch.nonzero(mask.cpu()).flatten().tolist()
        new = [p for p in pos if int(ids[p]) not in self.images]
        if new:
            pixels = fetch_images(torch.tensor(new, dtype=torch.int64)).cpu()
            pixels = pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
            labels = y.cpu()
            for p, img in zip(new, pixels, strict=True):
                self.images[int(ids[p])] = img.copy()
                self.labels[int(ids[p])] = int(labels[p])

    def _referenced_ids(self) -> set[int]:
        ref = torch.unique(torch.cat([self.top_id.flatten(), key_ids(self.cls_key).flatten()]))
        return {i for i in ref.cpu().tolist() if i >= 0}

    def compact(self) -> None:
        """Keep the pending batch's images, then drop the pixels of images no longer in any
        top-k list."""
        self._flush()
        ref = self._referenced_ids()
        for i in [i for i in self.images if i not in ref]:
            del self.images[i]
            del self.labels[i]

    # ------------------------------------------------------------------ merging
    @torch.no_grad()
    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Fold ``other`` (statistics of other images of the same dataset) into ``self``."""
        if [u.name for u in other.units] != [u.name for u in self.units] or other.k != self.k:
            raise ValueError("cannot merge statistics of different models or k")
        if other.class_k != self.class_k:
            raise ValueError("cannot merge statistics with different per-class top-k lengths")
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge statistics with different class counts")
        dev = self.device
        other.compact()
        self.class_count += other.class_count.to(dev)
        self.n_images += other.n_images
        self.loss_sum += other.loss_sum.to(dev)
        self.correct += other.correct.to(dev)
        self.n_scored += other.n_scored
        for f in ("sum_max", "sum_mean", "active", "saturated", "act_sum", "act_sq"):
            getattr(self, f).add_(getattr(other, f).to(dev))
        self.max_resp = torch.maximum(self.max_resp, other.max_resp.to(dev))
        self.act_n = [a + b for a, b in zip(self.act_n, other.act_n, strict=True)]
        self.top_key, self.top_loc, _ = _merge_topk(
            torch.cat([self.top_key, other.top_key.to(dev)], 1),
            torch.cat([self.top_loc, other.top_loc.to(dev)], 1),
            self.k,
        )
        self.merge_class_lists(other.cls_key.to(dev), other.cls_loc.to(dev))
        self.images.update(other.images)
        self.labels.update(other.labels)
        self.compact()
        return self

    def merge_class_lists(self, keys: torch.Tensor, locs: torch.Tensor) -> None:
        """Merge other per-class top lists (``[N, K, j·class_k]``, e.g. several concatenated)
        into this one's."""
        n, kk, kc = self.cls_key.shape
        if kc == 0:
            return
        top, loc, _ = _merge_topk(
            torch.cat([self.cls_key, keys], 2).view(n * kk, -1),
            torch.cat([self.cls_loc, locs], 2).view(n * kk, -1),
            kc,
        )
        self.cls_key, self.cls_loc = top.view(n, kk, kc), loc.view(n, kk, kc)

    # ------------------------------------------------------------------ results
    @torch.no_grad()
    def finalize(self, graph: NeuronGraph) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The statistics as named NumPy arrays plus JSON-able per-unit scalars.

        Arrays (per unit ``u``): ``units/u/A_max``, ``units/u/A_mean`` [C, K] class means of the
        response; ``units/u/topk_value`` [C, k]; ``units/u/topk_image`` [C, k] int32 row in
        ``images`` (-1: none); ``units/u/topk_box`` [C, k, 4] int16 receptive-field crop
        (y0, x0, y1, x1), end-exclusive; ``units/u/class_topk_value`` [C, K, class_k],
        ``class_topk_image`` [C, K, class_k], ``class_topk_box`` [C, K, class_k, 4]: the same
        per class (when kept); ``units/u/max_response`` [C];
        ``units/u/active_fraction`` [C].  Shared: ``images`` [M, H, W, 3] uint8,
        ``image_index`` [M] dataset indices, ``image_label`` [M], ``class_count`` [K].
        """
        self.compact()
        ids = sorted(self.images)
        ids_sorted = np.asarray(ids, dtype=np.int64)
        if ids:
            images = np.stack([self.images[i] for i in ids])
        else:
            c, h, w = graph.input_shape
            images = np.zeros((0, h, w, c), dtype=np.uint8)
        h_img, w_img = images.shape[1:3] if ids else graph.input_shape[1:3]
        counts = self.class_count.clamp(min=1)
        arrays: dict[str, np.ndarray] = {
            "images": np.ascontiguousarray(images, dtype=np.uint8),
            "image_index": np.asarray(ids, dtype=np.int64),
            "image_label": np.asarray([self.labels[i] for i in ids], dtype=np.int64),
            "class_count": self.class_count.cpu().numpy().astype(np.int64),
        }
        unit_meta: dict[str, Any] = {}
        n = max(self.n_images, 1)
        # everything leaves the device once, then is cut per unit
        a_max = (self.sum_max / counts).float().cpu().numpy()
        a_mean = (self.sum_mean / counts).float().cpu().numpy()
        top_val = self.top_val.cpu().numpy().astype(np.float32)
        top_img = _rows(ids_sorted, self.top_id.cpu().numpy())
        top_loc = self.top_loc.cpu().numpy()
        cls_val = key_values(self.cls_key).cpu().numpy().astype(np.float32)
        cls_img = _rows(ids_sorted, key_ids(self.cls_key).cpu().numpy())
        # (an empty slot's position is whatever padding filled it: 0, so equal runs write equal files)
        cls_loc = self.cls_loc.masked_fill(self.cls_key == _EMPTY, 0).cpu().numpy()
        max_resp = self.max_resp.cpu().numpy().astype(np.float32)
        active = self.active.cpu().numpy()
        saturated = self.saturated.cpu().numpy()
        act_sum = self.act_sum.cpu().numpy()
        act_sq = self.act_sq.cpu().numpy()
        # neurons that responded NaN or ±inf to some image (diverged training, overflow): their
        # top images are no real top images, they are not dead, and their statistics not numbers
        broken = ~(
            np.isfinite(a_max).all(1) & np.isfinite(a_mean).all(1) & np.isfinite(max_resp)
        )
        top_img[broken] = -1
        cls_img[broken] = -1
        for i, unit in enumerate(self.units):
            p, r = f"units/{unit.name}/", self.rows(i)
            arrays[p + "A_max"] = a_max[r]
            arrays[p + "A_mean"] = a_mean[r]
            arrays[p + "topk_value"] = top_val[r]
            arrays[p + "topk_image"] = top_img[r]
            arrays[p + "topk_box"] = _boxes(graph, unit, top_loc[r], h_img, w_img)
            if self.class_k:
                arrays[p + "class_topk_value"] = cls_val[r]
                arrays[p + "class_topk_image"] = cls_img[r]
                arrays[p + "class_topk_box"] = _boxes(graph, unit, cls_loc[r], h_img, w_img)
            arrays[p + "max_response"] = max_resp[r]
            arrays[p + "active_fraction"] = (active[r] / n).astype(np.float32)
            count = max(self.act_n[i], 1)
            mean = float(act_sum[r].sum()) / count
            var = float(act_sq[r].sum()) / count - mean * mean
            unit_meta[unit.name] = {
                "act_mean": mean if math.isfinite(mean) else None,
                "act_std": math.sqrt(max(var, 0.0)) if math.isfinite(var) else None,
                "nonfinite_fraction": float(broken[r].mean()),
                "dead_fraction": float(((active[r] == 0) & ~broken[r]).mean()),
                "saturated_fraction": (
                    float((saturated[r] / n >= 0.99).mean()) if unit.bound is not None else None
                ),
            }
        loss, correct = float(self.loss_sum), int(self.correct)
        meta = {
            "n_images": self.n_images,
            "k": self.k,
            "class_k": self.class_k,
            "units": unit_meta,
            # a loss that is no number (NaN or inf logits) is null: the logits' unit says why
            "probe_loss": loss / self.n_scored if self.n_scored and math.isfinite(loss) else None,
            "probe_error": 1.0 - correct / self.n_scored if self.n_scored else None,
        }
        return arrays, meta


def _merge_classes(
    acc: StatsAccumulator, r_max: torch.Tensor, loc: torch.Tensor, entered: torch.Tensor
) -> None:
    """Fold the batch into the per-class top lists: for every neuron, the batch's images of
    each class present (padded to the largest class) against that class's list.  Only the
    (neuron, class) lists that some image beats are merged: after the first batches, few."""
    present, pos = acc._by_class  # [P] classes, [P, m] batch positions (-1: padding)
    n, kc, b = int(acc.start[-1]), acc.class_k, int(r_max.shape[0])
    p, m = pos.shape
    safe = pos.clamp(min=0).flatten()
    pad = (pos < 0).view(p, m, 1)
    id_keys = acc._ids_dev[safe].view(p, m, 1)
    step = max(1, _MERGE_CHUNK // (p * (kc + m)))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        # candidates, class-major: [P, m, neurons]
        cand = topk_keys(r_max[:, lo:hi].index_select(0, safe).view(p, m, -1), id_keys)
        cand = cand.masked_fill(pad, _EMPTY)
        if acc.device.type == "cpu":  # only the (class row, neuron) lists some image beats
            worst = acc.cls_key[lo:hi, :, kc - 1].T.index_select(0, present)  # [P, neurons]
            need = (cand.amax(1) > worst).nonzero()
            if not len(need):
                continue
            c, nn = need[:, 0], need[:, 1] + lo
        else:  # every list: finding the few would wait for the device (a host sync)
            dev = r_max.device
            c = torch.arange(p, device=dev).repeat_interleave(hi - lo)
            nn = torch.arange(lo, hi, device=dev).repeat(p)
        cls = present[c]
        keys = torch.cat([acc.cls_key[nn, cls], cand[c, :, nn - lo]], dim=1)
        cand_loc = loc[:, lo:hi].index_select(0, safe).view(p, m, -1)[c, :, nn - lo]
        locs = torch.cat([acc.cls_loc[nn, cls], cand_loc], dim=1)
        top, top_loc, order = _merge_topk(keys, locs, kc)
        acc.cls_key[nn, cls] = top
        acc.cls_loc[nn, cls] = top_loc
        came = pos[c].gather(1, (order - kc).clamp(min=0))
        got = torch.where((order >= kc) & (came >= 0), came, b)  # (padding: none)
        entered.index_fill_(0, got.flatten(), True)


def _class_positions(labels: torch.Tensor, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The classes present in a batch (``[P]``) and each one's batch positions, padded with -1
    to the largest class (``[P, m]``), on ``dev``."""
    y = labels.to(torch.int64).flatten()
    order = torch.argsort(y, stable=True)
    present, counts = torch.unique_consecutive(y[order], return_counts=True)
    m = int(counts.max()) if len(counts) else 0
    pos = torch.full((len(present), m), -1, dtype=torch.int64)
    starts = torch.cumsum(counts, 0) - counts
    col = torch.arange(len(y)) - torch.repeat_interleave(starts, counts)
    pos[torch.repeat_interleave(torch.arange(len(present)), counts), col] = order
    return present.to(dev), pos.to(dev)


def _rows(ids_sorted: np.ndarray, top_id: np.ndarray) -> np.ndarray:
    """Row of each dataset index in the sorted ``ids_sorted`` (-1: absent), as int32."""
    pos = np.searchsorted(ids_sorted, top_id)
    pos_ok = np.minimum(pos, max(len(ids_sorted) - 1, 0))
    found = (pos < len(ids_sorted)) & (ids_sorted[pos_ok] == top_id) if len(ids_sorted) else pos < 0
    return np.where(found, pos, -1).astype(np.int32)


def _boxes(graph: NeuronGraph, unit: Unit, loc: np.ndarray, h_img: int, w_img: int) -> np.ndarray:
    """Receptive-field crops (y0, x0, y1, x1; end-exclusive, clipped) around arg-max positions."""
    tap = graph.layer(unit.tap)
    boxes = np.zeros((*loc.shape, 4), dtype=np.int16)
    if not unit.spatial:
        boxes[..., 2], boxes[..., 3] = h_img, w_img
        return boxes
    w_map = unit.spatial[1]
    ys, xs = loc // w_map, loc % w_map
    for axis, (pos, lim) in enumerate(((ys, h_img), (xs, w_img))):
        centre = tap.rf_start[axis] + pos * tap.rf_jump[axis]
        half = (tap.rf_size[axis] - 1) / 2
        lo = np.clip(np.floor(centre - half), 0, lim - 1)
        hi = np.clip(np.ceil(centre + half) + 1, lo + 1, lim)
        boxes[..., axis] = lo
        boxes[..., axis + 2] = hi
    return boxes
