"""Snapshots (everything computed for one model state on one probe set) and run directories.

A run directory (SPEC §9) holds ``manifest.json`` (schema version, layer graph, class names) and
one folder per snapshot; see :mod:`cnnvis_gl.run.store` for the pickle-free file format.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SnapshotError
from ..model.graph import NeuronGraph
from . import store
from .validate import check_array, check_manifest, check_meta, required_arrays


def silent_tile(size: int) -> np.ndarray:
    """uint8 ``[size, size, 3]``: the picture of a neuron that never responded (see
    :meth:`Snapshot.silent`): flat grey with a lighter diagonal, readable on both themes."""
    yy, xx = np.mgrid[0:size, 0:size]
    # distance of each pixel centre from the rising diagonal, in pixels
    d = np.abs((xx + 0.5) + (yy + 0.5) - size) / np.sqrt(2.0)
    line = np.clip(max(size / 20.0, 0.75) + 0.5 - d, 0.0, 1.0)[..., None]
    base, ink = np.array([86, 88, 96], np.float64), np.array([150, 153, 162], np.float64)
    return np.round(base + (ink - base) * line).astype(np.uint8)


class Snapshot:
    """Statistics, weights and top-k images of one model state.

    Arrays are read lazily (memory-mapped) when the snapshot comes from disk.  Keys:
    ``units/<unit>/…`` (see :meth:`cnnvis_gl.stats.StatsAccumulator.finalize`),
    ``weights/group/<group>/<source group>`` and ``weights/unit/<unit>/<source unit>``
    (signed neuron→neuron weights, rows = neurons of the first name), ``images`` (top-k images,
    ``[M, H, W, 3]`` uint8) and its ``image_index`` / ``image_label``.
    """

    def __init__(
        self,
        graph: NeuronGraph,
        classes: list[str],
        arrays: Mapping[str, np.ndarray],
        meta: dict[str, Any],
        step: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.graph = graph
        self.classes = list(classes)
        self.arrays = arrays
        self.meta = meta
        self.step = step
        self.path = path
        self._checked: set[str] = set()  # arrays read from disk whose contents were checked
        self._silent: dict[str, np.ndarray] = {}  # per unit, see silent()

    # ------------------------------------------------------------------ access
    def __getitem__(self, key: str) -> np.ndarray:
        try:
            arr = self.arrays[key]
        except KeyError:
            raise KeyError(f"snapshot has no array {key!r}") from None
        if isinstance(self.arrays, store.StoredSnapshot) and key not in self._checked:
            shape = self.arrays.info("images")["shape"] if "images" in self.arrays else (0, 0, 0)
            where = self.arrays.path / store.SNAPSHOT_JSON
            check_array(key, arr, self.graph, len(self.classes), shape, where)
            self._checked.add(key)
        return arr

    def keys(self) -> list[str]:
        return list(self.arrays.keys())

    def unit_name(self, name: str) -> str:
        """A unit name from a unit or group name (``KeyError`` when it is neither)."""
        return self._unit(name)

    def _unit(self, name: str) -> str:
        """A unit name from a unit or group name (a unit first: a module called ``fc1`` inside
        a group the graph names ``conv2`` is that module, not the group ``fc1``)."""
        if any(u.name == name for u in self.graph.units):
            return name
        for g in self.graph.groups:
            if g.name == name:
                return g.unit
        self.graph.unit(name)  # KeyError if unknown
        return name

    def activations(self, name: str, response: str = "max") -> np.ndarray:
        """Neuron × class mean response ``A`` of a unit or group (``response``: max or mean)."""
        if response not in ("max", "mean"):
            raise ValueError("response must be 'max' or 'mean'")
        return self[f"units/{self._unit(name)}/A_{response}"]

    def group_weights(self, group: str) -> dict[str, np.ndarray]:
        """Signed weights into a group's neurons, by source group (or ``"input"``)."""
        prefix = f"weights/group/{group}/"
        return {k[len(prefix) :]: self[k] for k in self.keys() if k.startswith(prefix)}

    def unit_weights(self, unit: str) -> dict[str, np.ndarray]:
        prefix = f"weights/unit/{unit}/"
        return {k[len(prefix) :]: self[k] for k in self.keys() if k.startswith(prefix)}

    def patches(self, name: str, k: int = 1, size: int = 32, neurons: Any = None) -> np.ndarray:
        """Learned features: the receptive-field crops of the top-``k`` images, resized.

        Returns uint8 ``[n, k, size, size, 3]`` for the unit's (or group's) neurons (or the
        given subset); a missing image (fewer than k images seen) is black.
        """
        u = self._unit(name)
        img_row = np.asarray(self[f"units/{u}/topk_image"])[:, :k]
        boxes = np.asarray(self[f"units/{u}/topk_box"])[:, :k]
        silent = self.silent(u)
        if neurons is not None:
            img_row, boxes, silent = img_row[neurons], boxes[neurons], silent[neurons]
        out = self._crops(img_row, boxes, size)
        out[silent] = silent_tile(size)
        return out

    def silent(self, name: str) -> np.ndarray:
        """bool ``[C]``: the neurons of a unit (or group) that never responded above 0 and whose
        top responses all tie (a ReLU that stayed at 0 on every probe image): their top images
        are the first ones seen, not a learned feature; :meth:`patches` shows
        :func:`silent_tile` for them."""
        u = self._unit(name)
        out = self._silent.get(u)
        if out is None:
            v = np.asarray(self[f"units/{u}/topk_value"], dtype=np.float32)
            first = v[:, :1]
            tied = np.all(~np.isfinite(v) | (v == first), axis=1)
            out = (first[:, 0] <= 0) & tied if v.shape[1] else np.zeros(len(v), dtype=bool)
            self._silent[u] = out
        return out

    def top_patches(self, neurons: dict[str, Any], size: int = 32) -> dict[str, np.ndarray]:
        """The top-1 patches of some neurons of several units at once, ``{unit: uint8 [n, size,
        size, 3]}`` (``neurons``: ``{unit or group: neuron indices}``): one resize per crop size
        for all of them, instead of one per unit and size (a draft's mosaics of 150 layers)."""
        rows, boxes, counts = [], [], []
        for name, idx in neurons.items():
            u = self._unit(name)
            idx = np.asarray(idx, dtype=np.int64)
            rows.append(np.asarray(self[f"units/{u}/topk_image"])[idx, :1])
            boxes.append(np.asarray(self[f"units/{u}/topk_box"])[idx, :1])
            counts.append(len(idx))
        if not rows:
            return {}
        crops = self._crops(np.concatenate(rows), np.concatenate(boxes), size)[:, 0]
        silent = np.concatenate(
            [self.silent(name)[np.asarray(idx, dtype=np.int64)] for name, idx in neurons.items()]
        )
        crops[silent] = silent_tile(size)
        return dict(zip(neurons, np.split(crops, np.cumsum(counts)[:-1]), strict=True))

    def has_class_topk(self, name: str) -> bool:
        """Whether the snapshot keeps per-class top images for this unit (or group): snapshots
        written before the matrix drill-down, and of models with more than 100 classes, do
        not."""
        return f"units/{self._unit(name)}/class_topk_image" in self.arrays

    def class_topk(self, name: str, neuron: int, cls: int) -> tuple[np.ndarray, np.ndarray]:
        """One neuron's top images *of one class*: ``(responses float32 [j], dataset indices
        int64 [j])``, strongest first, ``j ≤ class_k`` (fewer when the probe set has fewer
        images of the class)."""
        rows, _, values = self._class_lists(name, neuron, cls)
        return values, np.asarray(self["image_index"])[rows].astype(np.int64)

    def class_patches(
        self, name: str, neuron: int, cls: int, size: int = 32
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matrix drill-down: :meth:`class_topk` with the images' receptive-field crops,
        ``(crops uint8 [j, size, size, 3], responses, dataset indices)``."""
        rows, boxes, values = self._class_lists(name, neuron, cls)
        index = np.asarray(self["image_index"])[rows].astype(np.int64)
        crops = self._crops(rows, boxes, size)
        if self.silent(name)[neuron]:
            crops[:] = silent_tile(size)
        return crops, values, index

    def _class_lists(self, name: str, neuron: int, cls: int) -> tuple[np.ndarray, ...]:
        u = self._unit(name)
        if not self.has_class_topk(u):
            raise KeyError(f"{u}: this snapshot keeps no per-class top images")
        rows = np.asarray(self[f"units/{u}/class_topk_image"][neuron, cls])
        keep = rows >= 0
        boxes = np.asarray(self[f"units/{u}/class_topk_box"][neuron, cls])[keep]
        values = np.asarray(self[f"units/{u}/class_topk_value"][neuron, cls])[keep]
        return rows[keep], boxes, values.astype(np.float32)

    def _crops(self, img_row: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
        """The receptive-field crops (``boxes`` [..., 4]) of the rows ``img_row`` of ``images``,
        resized to ``size``²; black where the row is -1."""
        images = self["images"]
        out = np.zeros((*img_row.shape, size, size, 3), dtype=np.uint8)
        flat_rows, flat_boxes = img_row.reshape(-1), boxes.reshape(-1, 4)
        flat_out = out.reshape(-1, size, size, 3)
        heights = flat_boxes[:, 2].astype(np.int64) - flat_boxes[:, 0]
        widths = flat_boxes[:, 3].astype(np.int64) - flat_boxes[:, 1]
        valid = np.flatnonzero(flat_rows >= 0)
        # one resize per crop size (crops are equal except where clipped at image borders)
        for h, w in {(int(heights[i]), int(widths[i])) for i in valid}:
            sel = valid[(heights[valid] == h) & (widths[valid] == w)]
            crops = np.stack(
                [
                    images[flat_rows[i], b[0] : b[2], b[1] : b[3]]
                    for i in sel
                    for b in [flat_boxes[i].astype(np.int64)]
                ]
            )
            t = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
            res = F.interpolate(
                t, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
            flat_out[sel] = res.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
        return out

    @property
    def n_images(self) -> int:
        return int(self.meta.get("n_images", 0))

    def __repr__(self) -> str:
        step = "unsaved" if self.step is None else f"step={self.step}"
        err = self.meta.get("probe_error")
        err_s = f", probe error {err:.1%}" if isinstance(err, float) else ""
        return (
            f"Snapshot({step}, {self.n_images} images, {len(self.graph.groups)} groups, "
            f"{self.graph.num_neurons} neurons, {len(self.classes)} classes{err_s})"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: str | Path, step: int | None = None) -> Path:
        """Write into ``run_dir`` as snapshot ``step`` (atomically); creates the manifest."""
        step = self.step if step is None else step
        if step is None or int(step) < 0:
            raise ValueError("a snapshot needs a step number ≥ 0 to be saved")
        run_dir = Path(run_dir)
        ensure_manifest(run_dir, self.graph, self.classes, model=self.meta.get("model"))
        path = store.write_snapshot(
            run_dir, int(step), {k: np.asarray(self[k]) for k in self.keys()}, self.meta
        )
        self.step, self.path = int(step), path
        return path


def ensure_manifest(
    run_dir: Path, graph: NeuronGraph, classes: list[str], model: str | None = None
) -> None:
    """Create the run's manifest, or check that an existing one describes the same model."""
    fields = {"graph": graph.to_dict(), "classes": list(classes), "model": model}
    if (run_dir / "manifest.json").exists():
        old = store.read_manifest(run_dir)
        if old.get("graph") != fields["graph"] or old.get("classes") != fields["classes"]:
            raise SnapshotError(
                f"{run_dir / 'manifest.json'} describes a different model or class list; "
                "use a new run directory"
            )
        return
    store.write_manifest(run_dir, {**fields, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


class Run:
    """A run directory opened for reading (see :func:`open_run`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SnapshotError(f"run directory not found: {self.path}")
        self.manifest = store.read_manifest(self.path)
        self.graph, self.classes = check_manifest(self.manifest, self.path / store.MANIFEST_NAME)

    def steps(self) -> list[int]:
        """Steps of the complete snapshots, ascending (re-read from disk each call)."""
        return store.list_steps(self.path)

    def snapshot(self, step: int) -> Snapshot:
        stored = store.open_snapshot(self.path, step)
        where = stored.path / store.SNAPSHOT_JSON
        check_meta(stored.meta, where)
        missing = [k for k in required_arrays(self.graph) if k not in stored]
        if missing:
            raise SnapshotError(
                f"{where}: lacks {len(missing)} array(s) of the manifest's graph, e.g. {missing[0]!r}"
            )
        return Snapshot(self.graph, self.classes, stored, stored.meta, step=step, path=stored.path)

    def latest(self) -> Snapshot:
        steps = self.steps()
        if not steps:
            raise SnapshotError(f"run directory {self.path} holds no snapshot yet")
        return self.snapshot(steps[-1])

    def __len__(self) -> int:
        return len(self.steps())

    def __repr__(self) -> str:
        steps = self.steps()
        span = f"steps {steps[0]}…{steps[-1]}" if steps else "no snapshots"
        return f"Run({str(self.path)!r}, {len(steps)} snapshots, {span}, model={self.manifest.get('model')})"


def open_run(run_dir: str | Path) -> Run:
    """Open a run directory written by ``cnnvis analyze``/``train`` or :meth:`Snapshot.save`."""
    return Run(run_dir)
