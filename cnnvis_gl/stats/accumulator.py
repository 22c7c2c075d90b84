"""Streaming, mergeable neuron statistics (SPEC §3).

For every unit (the neurons of one weighted layer, measured at its tap) and every class, the
accumulator keeps sums and counts, a running top-k of the images with the largest response
(with the arg-max location) and per-neuron activity counts.  Memory does not grow with the
dataset: the state is O(neurons × (classes + k)) plus the pixels of the images currently in
some neuron's top-k.  Everything is computed on the model's device; only the summaries (and the
few top-k images) leave it.  Two accumulators over disjoint parts of a dataset merge into the
one over the whole (:meth:`StatsAccumulator.merge`): sums add, top-k lists merge with the same
deterministic order (value descending, then dataset index ascending).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..model.graph import NeuronGraph, Unit

#: Response of a conv neuron to one image: spatial max (the spec's choice) and mean.
RESPONSES = ("max", "mean")


@dataclass
class _UnitState:
    sum_max: torch.Tensor  # [C, K] float64
    sum_mean: torch.Tensor  # [C, K] float64
    top_val: torch.Tensor  # [C, k] float32, descending
    top_id: torch.Tensor  # [C, k] int64 dataset index (-1: empty)
    top_loc: torch.Tensor  # [C, k] int64 flat arg-max position in the tap's feature map
    max_resp: torch.Tensor  # [C] float32
    active: torch.Tensor  # [C] int64: images with response > 0
    saturated: torch.Tensor  # [C] int64: images with mean |activation| ≥ 95 % of the bound
    act_sum: torch.Tensor  # [] float64 over all activation values
    act_sq: torch.Tensor  # [] float64
    act_n: int


def _merge_topk(vals: torch.Tensor, ids: torch.Tensor, locs: torch.Tensor, k: int):
    """Keep the k largest per row; ties broken by the smaller dataset index (deterministic)."""
    by_id = torch.argsort(ids, dim=1, stable=True)
    vals, ids, locs = vals.gather(1, by_id), ids.gather(1, by_id), locs.gather(1, by_id)
    order = torch.argsort(vals, dim=1, descending=True, stable=True)[:, :k]
    return vals.gather(1, order), ids.gather(1, order), locs.gather(1, order)


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
    device:
        Where the state lives (the model's device).
    """

    def __init__(
        self, units: list[Unit], num_classes: int, k: int = 9, device: Any = "cpu"
    ) -> None:
        self.units = list(units)
        self.num_classes = int(num_classes)
        self.k = int(k)
        self.device = torch.device(device)
        self.class_count = torch.zeros(num_classes, dtype=torch.float64, device=self.device)
        self.n_images = 0
        self.loss_sum = 0.0
        self.correct = 0
        self.n_scored = 0
        self.images: dict[int, np.ndarray] = {}  # dataset index -> uint8 [3, H, W]
        self.labels: dict[int, int] = {}
        self._batches = 0
        self.state: list[_UnitState] = []
        for u in self.units:
            c, dev = u.channels, self.device
            self.state.append(
                _UnitState(
                    sum_max=torch.zeros(c, num_classes, dtype=torch.float64, device=dev),
                    sum_mean=torch.zeros(c, num_classes, dtype=torch.float64, device=dev),
                    top_val=torch.full((c, self.k), -math.inf, device=dev),
                    top_id=torch.full((c, self.k), -1, dtype=torch.int64, device=dev),
                    top_loc=torch.zeros(c, self.k, dtype=torch.int64, device=dev),
                    max_resp=torch.full((c,), -math.inf, device=dev),
                    active=torch.zeros(c, dtype=torch.int64, device=dev),
                    saturated=torch.zeros(c, dtype=torch.int64, device=dev),
                    act_sum=torch.zeros((), dtype=torch.float64, device=dev),
                    act_sq=torch.zeros((), dtype=torch.float64, device=dev),
                    act_n=0,
                )
            )

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
        self._ids_dev = ids.to(dev)
        b = int(y.shape[0])
        self.class_count.index_add_(0, y, torch.ones(b, dtype=torch.float64, device=dev))
        self.n_images += b
        if logits is not None:
            self.score(logits)

    def score(self, logits: torch.Tensor) -> None:
        """Probe loss and error of the current batch from the model's outputs."""
        lg = logits.detach().float()
        y = self._y
        self.loss_sum += float(torch.nn.functional.cross_entropy(lg, y, reduction="sum"))
        self.correct += int((lg.argmax(1) == y).sum())
        self.n_scored += int(y.shape[0])

    @torch.no_grad()
    def update_unit(self, i: int, t: torch.Tensor) -> None:
        """Add unit ``i``'s tap tensor (``[B, C, H, W]`` or ``[B, C]``) of the current batch."""
        unit, st = self.units[i], self.state[i]
        y, ids_dev = self._y, self._ids_dev
        b = int(y.shape[0])
        t = t.detach()
        if t.dim() == 4:
            flat = t.flatten(2)
            r_max, loc = flat.max(dim=2)
            r_mean = flat.mean(dim=2)
            st.act_sum += r_mean.sum(dtype=torch.float64) * flat.shape[2]
        else:
            flat = t
            r_max = r_mean = t.float()
            loc = torch.zeros_like(t, dtype=torch.int64)
            st.act_sum += t.sum(dtype=torch.float64)
        st.act_sq += float(torch.linalg.vector_norm(flat.float())) ** 2
        st.act_n += flat.numel()
        r_max = r_max.float()
        st.sum_max.index_add_(1, y, r_max.T.double())
        st.sum_mean.index_add_(1, y, r_mean.float().T.double())
        st.max_resp = torch.maximum(st.max_resp, r_max.max(dim=0).values)
        st.active += (r_max > 0).sum(dim=0)
        if unit.bound is not None:
            mean_abs = flat.abs().mean(dim=2) if t.dim() == 4 else flat.abs()
            st.saturated += (mean_abs >= 0.95 * unit.bound).sum(dim=0)
        c = r_max.shape[1]
        st.top_val, st.top_id, st.top_loc = _merge_topk(
            torch.cat([st.top_val, r_max.T], dim=1),
            torch.cat([st.top_id, ids_dev.expand(c, b)], dim=1),
            torch.cat([st.top_loc, loc.T], dim=1),
            self.k,
        )

    def end_batch(self, fetch_images: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Keep the pixels of the batch's images that entered some top-k list."""
        ids = self._ids
        referenced = torch.cat([st.top_id.flatten() for st in self.state])
        pos = torch.nonzero(torch.isin(self._ids_dev, referenced)).flatten().cpu()
        ids_cpu = ids.cpu()
        new = [p for p in pos.tolist() if int(ids_cpu[p]) not in self.images]
        if new:
            pixels = fetch_images(torch.tensor(new, dtype=torch.int64)).cpu().numpy()
            labels_cpu = self._y.cpu()
            for p, img in zip(new, pixels, strict=True):
                self.images[int(ids_cpu[p])] = np.ascontiguousarray(img, dtype=np.uint8)
                self.labels[int(ids_cpu[p])] = int(labels_cpu[p])
        self._batches += 1
        if self._batches % 16 == 0:
            self.compact()

    def _referenced_ids(self) -> set[int]:
        ref = torch.unique(torch.cat([st.top_id.flatten() for st in self.state])).cpu().tolist()
        return {i for i in ref if i >= 0}

    def compact(self) -> None:
        """Drop the pixels of images no longer in any top-k list."""
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
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge statistics with different class counts")
        dev = self.device
        self.class_count += other.class_count.to(dev)
        self.n_images += other.n_images
        self.loss_sum += other.loss_sum
        self.correct += other.correct
        self.n_scored += other.n_scored
        for a, b in zip(self.state, other.state, strict=True):
            a.sum_max += b.sum_max.to(dev)
            a.sum_mean += b.sum_mean.to(dev)
            a.max_resp = torch.maximum(a.max_resp, b.max_resp.to(dev))
            a.active += b.active.to(dev)
            a.saturated += b.saturated.to(dev)
            a.act_sum += b.act_sum.to(dev)
            a.act_sq += b.act_sq.to(dev)
            a.act_n += b.act_n
            a.top_val, a.top_id, a.top_loc = _merge_topk(
                torch.cat([a.top_val, b.top_val.to(dev)], 1),
                torch.cat([a.top_id, b.top_id.to(dev)], 1),
                torch.cat([a.top_loc, b.top_loc.to(dev)], 1),
                self.k,
            )
        self.images.update(other.images)
        self.labels.update(other.labels)
        self.compact()
        return self

    # ------------------------------------------------------------------ results
    @torch.no_grad()
    def finalize(self, graph: NeuronGraph) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The statistics as named NumPy arrays plus JSON-able per-unit scalars.

        Arrays (per unit ``u``): ``units/u/A_max``, ``units/u/A_mean`` [C, K] class means of the
        response; ``units/u/topk_value`` [C, k]; ``units/u/topk_image`` [C, k] int32 row in
        ``images`` (-1: none); ``units/u/topk_box`` [C, k, 4] int16 receptive-field crop
        (y0, x0, y1, x1), end-exclusive; ``units/u/max_response`` [C];
        ``units/u/active_fraction`` [C].  Shared: ``images`` [M, H, W, 3] uint8,
        ``image_index`` [M] dataset indices, ``image_label`` [M], ``class_count`` [K].
        """
        self.compact()
        ids = sorted(self.images)
        ids_sorted = np.asarray(ids, dtype=np.int64)
        if ids:
            images = np.stack([self.images[i] for i in ids]).transpose(0, 2, 3, 1)
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
        for unit, st in zip(self.units, self.state, strict=True):
            p = f"units/{unit.name}/"
            arrays[p + "A_max"] = (st.sum_max / counts).float().cpu().numpy()
            arrays[p + "A_mean"] = (st.sum_mean / counts).float().cpu().numpy()
            top_id = st.top_id.cpu().numpy()
            arrays[p + "topk_value"] = st.top_val.cpu().numpy().astype(np.float32)
            arrays[p + "topk_image"] = _rows(ids_sorted, top_id)
            arrays[p + "topk_box"] = _boxes(graph, unit, st.top_loc.cpu().numpy(), h_img, w_img)
            arrays[p + "max_response"] = st.max_resp.cpu().numpy().astype(np.float32)
            arrays[p + "active_fraction"] = (st.active.double() / n).float().cpu().numpy()
            mean = float(st.act_sum) / max(st.act_n, 1)
            var = max(float(st.act_sq) / max(st.act_n, 1) - mean * mean, 0.0)
            unit_meta[unit.name] = {
                "act_mean": mean,
                "act_std": math.sqrt(var),
                "dead_fraction": float((st.active == 0).double().mean()),
                "saturated_fraction": (
                    float((st.saturated.double() / n >= 0.99).double().mean())
                    if unit.bound is not None
                    else None
                ),
            }
        meta = {
            "n_images": self.n_images,
            "k": self.k,
            "units": unit_meta,
            "probe_loss": self.loss_sum / self.n_scored if self.n_scored else None,
            "probe_error": 1.0 - self.correct / self.n_scored if self.n_scored else None,
        }
        return arrays, meta


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
