"""Bookmarks: named views of a run, saved beside it in ``RUN/bookmarks.json``.

A bookmark is what a person wants to come back to or show: the camera (centre and zoom, and
the view's size when it was taken), the theme, the facet of all clusters, the edge fraction,
the groups shown one row per layer, the highlighted classes (by name) and the selected cluster
or neuron.  The viewer's Bookmarks panel saves and recalls them; ``cnnvis render RUN
--bookmark NAME`` draws one.  The format is in ``docs/FORMAT.md``; plain JSON a person can
write by hand, every field checked on reading with an error naming the file and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SnapshotError
from .store import read_items, write_json_atomic

__all__ = ["BOOKMARKS_FILE", "Bookmark", "load_bookmarks", "save_bookmarks"]

BOOKMARKS_FILE = "bookmarks.json"
FORMAT = "cnnvis-bookmarks"
VERSION = 1


@dataclass(frozen=True)
class Bookmark:
    """One named view (see the module docstring)."""

    name: str
    camera: tuple[float, float, float]  # centre x, centre y (scene units), zoom (px per unit)
    size: tuple[int, int] = (1600, 1000)  # the view's pixels when it was taken
    theme: str = "dark"
    facet: str = "features"  # "features" | "matrix": every cluster's
    edge_fraction: float = 0.25
    expanded: tuple[str, ...] = ()
    collapsed: tuple[str, ...] = ()  # stages shown as one row
    classes: tuple[str, ...] = ()
    cluster: int | None = None  # selected cluster id
    neuron: tuple[str, int] | None = None  # selected neuron (unit, channel)
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept as they were

    def camera_for(self, size: tuple[int, int]) -> tuple[float, float, float]:
        """``(centre x, centre y, zoom)`` showing the same part of the scene in a view of
        ``size`` pixels (the saved view fitted into it)."""
        cx, cy, zoom = self.camera
        return cx, cy, zoom * min(size[0] / self.size[0], size[1] / self.size[1])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "camera": list(self.camera),
            "size": list(self.size),
            "theme": self.theme,
            "facet": self.facet,
            "edge_fraction": self.edge_fraction,
            "expanded": list(self.expanded),
            "classes": list(self.classes),
        }
        if self.collapsed:
            out["collapsed"] = list(self.collapsed)
        if self.cluster is not None:
            out["cluster"] = self.cluster
        if self.neuron is not None:
            out["neuron"] = list(self.neuron)
        return {**self.extra, **out}


_KNOWN = {"name", "camera", "size", "theme", "facet", "edge_fraction", "expanded", "collapsed",
          "classes", "cluster", "neuron"}  # fmt: skip


def _number(v: Any, where: str, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{where} must be a finite number, not {v!r}")
    if positive and not v > 0:
        raise ValueError(f"{where} must be positive, not {v!r}")
    return float(v)


def _strings(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ValueError(f"{where} must be a list of names, not {v!r}")
    return tuple(v)


def _parse(d: Any, k: int) -> Bookmark:
    where = f"bookmark {k + 1}"
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object, not {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: 'name' must be a non-empty string")
    where = f"bookmark {name!r}"
    cam = d.get("camera")
    if not isinstance(cam, list) or len(cam) != 3:
        raise ValueError(f"{where}: 'camera' must be [centre x, centre y, zoom]")
    camera = (
        _number(cam[0], f"{where}: camera x"),
        _number(cam[1], f"{where}: camera y"),
        _number(cam[2], f"{where}: camera zoom", positive=True),
    )
    size = d.get("size", [1600, 1000])
    if not (isinstance(size, list) and len(size) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384 for v in size
    )):  # fmt: skip
        raise ValueError(f"{where}: 'size' must be [width, height] in pixels (1 to 16384)")
    theme = d.get("theme", "dark")
    if theme not in ("dark", "light"):
        raise ValueError(f"{where}: 'theme' must be 'dark' or 'light', not {theme!r}")
    facet = d.get("facet", "features")
    if facet not in ("features", "matrix"):
        raise ValueError(f"{where}: 'facet' must be 'features' or 'matrix', not {facet!r}")
    fraction = _number(d.get("edge_fraction", 0.25), f"{where}: edge_fraction")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"{where}: 'edge_fraction' must be in (0, 1], not {fraction}")
    cluster = d.get("cluster")
    if cluster is not None and (isinstance(cluster, bool) or not isinstance(cluster, int)):
        raise ValueError(f"{where}: 'cluster' must be a cluster id (an integer)")
    neuron = d.get("neuron")
    if neuron is not None:
        ok = isinstance(neuron, list) and len(neuron) == 2 and isinstance(neuron[0], str)
        if not ok or isinstance(neuron[1], bool) or not isinstance(neuron[1], int):
            raise ValueError(f"{where}: 'neuron' must be [layer, channel]")
        neuron = (neuron[0], int(neuron[1]))
    return Bookmark(
        name=name,
        camera=camera,
        size=(int(size[0]), int(size[1])),
        theme=theme,
        facet=facet,
        edge_fraction=fraction,
        expanded=_strings(d.get("expanded", []), f"{where}: 'expanded'"),
        collapsed=_strings(d.get("collapsed", []), f"{where}: 'collapsed'"),
        classes=_strings(d.get("classes", []), f"{where}: 'classes'"),
        cluster=cluster,
        neuron=neuron,
        extra={key: v for key, v in d.items() if key not in _KNOWN},
    )


def load_bookmarks(run_dir: str | Path) -> list[Bookmark]:
    """The bookmarks of a run (``[]`` without ``bookmarks.json``).

    Raises
    ------
    SnapshotError
        The file is damaged or a field is wrong; the message names the file and the field.
    """
    marks = read_items(Path(run_dir) / BOOKMARKS_FILE, FORMAT, VERSION, "bookmarks", _parse, "a bookmarks file")
    names = [b.name for b in marks]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise SnapshotError(f"{Path(run_dir) / BOOKMARKS_FILE}: two bookmarks are named {dup!r}")
    return marks


def save_bookmarks(run_dir: str | Path, marks: list[Bookmark]) -> Path:
    """Write ``RUN/bookmarks.json`` atomically (a temporary file, then a rename)."""
    doc = {"format": FORMAT, "version": VERSION, "bookmarks": [b.to_json() for b in marks]}
    return write_json_atomic(Path(run_dir) / BOOKMARKS_FILE, doc, prefix=".bookmarks-")
