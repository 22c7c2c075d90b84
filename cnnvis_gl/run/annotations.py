"""Annotations: text callouts with an arrow, attached to a cluster, a neuron or a row of a run's
network view, saved beside the bookmarks in ``RUN/annotations.json``.

A callout follows what it is attached to when the layout changes (a cluster by its stable id,
a neuron by ``(layer, channel)``, a row by its name); one whose target is gone from the view
is not drawn.  The viewer's Notes panel and the network view's context menu edit them; the
viewer, ``cnnvis render`` (PNG, SVG, PDF) and ``cnnvis video`` draw them.  Plain JSON a person
can write by hand (``docs/FORMAT.md``); every field is checked on reading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import read_items, write_json_atomic

__all__ = ["ANNOTATIONS_FILE", "Annotation", "load_annotations", "save_annotations"]

ANNOTATIONS_FILE = "annotations.json"
FORMAT = "cnnvis-annotations"
VERSION = 1
TARGETS = ("cluster", "neuron", "row")


@dataclass(frozen=True)
class Annotation:
    """One callout.

    Attributes
    ----------
    text
        What it says (may hold line breaks).
    kind, target
        What it points at: ``"cluster"`` and a cluster id, ``"neuron"`` and
        ``(layer, channel)``, or ``"row"`` and a row name.
    offset
        Where the callout's box centre sits, in screen pixels from the top-right corner of what
        it points at (so it reads the same at every zoom).
    """

    text: str
    kind: str
    target: Any
    offset: tuple[float, float] = (70.0, -50.0)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        target = list(self.target) if self.kind == "neuron" else self.target
        out = {"text": self.text, self.kind: target, "offset": list(self.offset)}
        return {**self.extra, **out}


def _parse(d: Any, k: int) -> Annotation:
    where = f"annotation {k + 1}"
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object, not {type(d).__name__}")
    text = d.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: 'text' must be non-empty text")
    kinds = [t for t in TARGETS if t in d]
    if len(kinds) != 1:
        raise ValueError(f"{where}: give exactly one of 'cluster', 'neuron' or 'row' (what it points at)")
    kind, target = kinds[0], d[kinds[0]]
    if kind == "cluster" and (isinstance(target, bool) or not isinstance(target, int)):
        raise ValueError(f"{where}: 'cluster' must be a cluster id (an integer)")
    if kind == "neuron":
        ok = isinstance(target, list) and len(target) == 2 and isinstance(target[0], str)
        if not ok or isinstance(target[1], bool) or not isinstance(target[1], int):
            raise ValueError(f"{where}: 'neuron' must be [layer, channel]")
        target = (target[0], int(target[1]))
    if kind == "row" and (not isinstance(target, str) or not target):
        raise ValueError(f"{where}: 'row' must be a row name (e.g. a group's name)")
    offset = d.get("offset", [70.0, -50.0])
    if not (isinstance(offset, list) and len(offset) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 10_000
        for v in offset
    )):  # fmt: skip
        raise ValueError(f"{where}: 'offset' must be [dx, dy] in pixels (at most 10000 each)")
    return Annotation(
        text=text,
        kind=kind,
        target=target,
        offset=(float(offset[0]), float(offset[1])),
        extra={key: v for key, v in d.items() if key not in {"text", "offset", *TARGETS}},
    )


def load_annotations(run_dir: str | Path) -> list[Annotation]:
    """The annotations of a run (``[]`` without ``annotations.json``).

    Raises
    ------
    SnapshotError
        The file is damaged or a field is wrong; the message names the file and the field.
    """
    path = Path(run_dir) / ANNOTATIONS_FILE
    return read_items(path, FORMAT, VERSION, "annotations", _parse, "an annotations file")


def save_annotations(run_dir: str | Path, notes: list[Annotation]) -> Path:
    """Write ``RUN/annotations.json`` atomically."""
    doc = {"format": FORMAT, "version": VERSION, "annotations": [a.to_json() for a in notes]}
    return write_json_atomic(Path(run_dir) / ANNOTATIONS_FILE, doc, prefix=".annotations-")
