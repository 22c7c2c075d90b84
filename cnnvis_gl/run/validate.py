"""Checks of what a run directory holds, beyond the file format (:mod:`.store`).

The store guarantees that every array is the one its writer saved (header, size, CRC-32).  These
checks guarantee that the contents make sense together: the manifest's layer graph and class
list (:func:`check_manifest`), a snapshot's metadata (:func:`check_meta`) and the arrays the
viewer and the analyses index with (:func:`check_array`).  A failure is a
:class:`~cnnvis_gl.errors.SnapshotError` that names the file and the field, so a damaged file,
a buggy writer or another tool's file never surfaces as an ``IndexError`` deep in the viewer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SnapshotError
from ..model.graph import NeuronGraph

__all__ = ["check_array", "check_manifest", "check_meta", "required_arrays"]


def check_manifest(manifest: Mapping[str, Any], path: Path) -> tuple[NeuronGraph, list[str]]:
    """The manifest's graph and class names, checked."""
    try:
        graph = NeuronGraph.from_dict(manifest["graph"])
        graph.check()
    except KeyError as e:
        raise SnapshotError(f"{path}: 'graph' lacks the field {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise SnapshotError(f"{path}: invalid 'graph': {e}") from None
    classes = manifest.get("classes")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
    ):
        raise SnapshotError(f"{path}: 'classes' must be a list of at least two names")
    return graph, classes


def _number(v: Any, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and lo <= v <= hi
    )


def check_meta(meta: Mapping[str, Any], path: Path) -> None:
    """A snapshot's ``meta`` (from ``snapshot.json``): the fields cnnvis_gl reads, when present,
    have the types and ranges it writes."""

    def fail(field: str, value: Any, want: str) -> None:
        raise SnapshotError(f"{path}: meta {field} is {value!r}, expected {want}")

    n = meta.get("n_images", 0)
    if not (_number(n, 0) and float(n).is_integer()):
        fail("'n_images'", n, "a count")
    k = meta.get("k", 1)
    if not (_number(k, 1) and float(k).is_integer()):
        fail("'k'", k, "a count ≥ 1")
    for name, lo, hi in (("probe_loss", 0.0, math.inf), ("probe_error", 0.0, 1.0)):
        v = meta.get(name)
        if v is not None and not _number(v, lo, hi):
            fail(f"{name!r}", v, f"a number in [{lo}, {hi}] or null")
    units = meta.get("units", {})
    if not isinstance(units, dict):
        fail("'units'", units, "an object")
    for unit, m in units.items():
        if not isinstance(m, dict):
            fail(f"units.{unit}", m, "an object")
        for key, lo, hi in (
            ("act_mean", -math.inf, math.inf),
            ("act_std", 0.0, math.inf),
            ("nonfinite_fraction", 0.0, 1.0),
            ("dead_fraction", 0.0, 1.0),
            ("saturated_fraction", 0.0, 1.0),
        ):
            v = m.get(key)
            if v is not None and not _number(v, lo, hi):
                fail(f"units.{unit}.{key}", v, f"a number in [{lo}, {hi}] or null")
    for section in ("weights", "grad_norms"):
        table = meta.get(section, {})
        if table is None:
            continue
        if not isinstance(table, dict):
            fail(f"{section!r}", table, "an object")
        for layer, stats in table.items():
            values = stats.values() if isinstance(stats, dict) else [stats]
            if not all(v is None or _number(v) for v in values):
                fail(f"{section}.{layer}", stats, "numbers")
    scalars = meta.get("scalars", {})
    if not isinstance(scalars, dict) or not all(v is None or _number(v) for v in scalars.values()):
        fail("'scalars'", scalars, "an object of numbers")
    for name in ("model", "dataset", "created"):
        v = meta.get(name)
        if v is not None and not isinstance(v, str):
            fail(f"{name!r}", v, "a string")


def required_arrays(graph: NeuronGraph) -> list[str]:
    """The arrays every snapshot of ``graph`` holds."""
    out = ["images", "image_index", "image_label", "class_count"]
    for u in graph.units:
        p = f"units/{u.name}/"
        out += [
            p + s
            for s in (
                "A_max",
                "A_mean",
                "topk_value",
                "topk_image",
                "topk_box",
                "max_response",
                "active_fraction",
            )
        ]
    return out


def check_array(
    key: str,
    arr: np.ndarray,
    graph: NeuronGraph,
    n_classes: int,
    images_shape: tuple[int, ...],
    path: Path,
) -> None:
    """An array's shape, type and values are what the readers index with (``images_shape``:
    the shape of the snapshot's ``images``, for top-k rows and crop boxes)."""

    def fail(why: str) -> None:
        raise SnapshotError(f"{path}: array {key!r} {why}")

    parts = key.split("/")
    if key == "images":
        if arr.ndim != 4 or arr.shape[3] != 3 or arr.dtype != np.uint8:
            fail(f"is {arr.dtype}{list(arr.shape)}, expected uint8 [M, H, W, 3]")
        return
    if key in ("image_index", "image_label") and (arr.ndim != 1 or arr.dtype.kind not in "iu"):
        fail(f"is {arr.dtype}{list(arr.shape)}, expected integers [M]")
    if key == "class_count" and arr.shape != (n_classes,):
        fail(f"has shape {list(arr.shape)}, expected [{n_classes}] (one count per class)")
    if len(parts) != 3 or parts[0] != "units":
        return
    try:
        unit = graph.unit(parts[1])
    except KeyError:
        return  # an array of a unit the graph does not have: never read
    c, what = unit.channels, parts[2]
    if what in ("A_max", "A_mean") and arr.shape != (c, n_classes):
        fail(f"has shape {list(arr.shape)}, expected [{c}, {n_classes}] (neurons × classes)")
    if what in ("max_response", "active_fraction") and arr.shape != (c,):
        fail(f"has shape {list(arr.shape)}, expected [{c}]")
    if what in ("topk_value", "topk_image", "topk_box"):
        if arr.ndim < 2 or arr.shape[0] != c or (what == "topk_box") != (arr.ndim == 3):
            fail(f"has shape {list(arr.shape)}, expected [{c}, k{', 4' * (what == 'topk_box')}]")
    if what in ("class_topk_value", "class_topk_image", "class_topk_box"):
        box = what == "class_topk_box"
        if arr.shape[:2] != (c, n_classes) or arr.ndim != 3 + box:
            fail(f"has shape {list(arr.shape)}, expected [{c}, {n_classes}, k{', 4' * box}]")
        what = what[len("class_"):]  # rows and boxes: checked as the top-k's
    if what == "topk_image":
        m = images_shape[0]
        if arr.dtype.kind not in "iu":
            fail(f"is {arr.dtype}, expected integer rows of 'images'")
        if arr.size and (arr.min() < -1 or arr.max() >= m):
            fail(f"refers to image rows {arr.min()}…{arr.max()}, but 'images' has {m}")
    if what == "topk_box":
        h, w = images_shape[1:3]
        if arr.shape[-1] != 4 or arr.dtype.kind not in "iu":
            fail(f"is {arr.dtype}{list(arr.shape)}, expected integer boxes [{c}, k, 4]")
        y0, x0, y1, x1 = (arr[..., i].astype(np.int64) for i in range(4))
        if arr.size and ((y0 < 0) | (x0 < 0) | (y1 > h) | (x1 > w) | (y1 <= y0) | (x1 <= x0)).any():
            fail(f"holds crop boxes outside the {h}×{w} images")
