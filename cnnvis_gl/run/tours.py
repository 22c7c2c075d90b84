"""Tours: an ordered walk through a run's bookmarks, for talks and videos (``RUN/tours/NAME.json``).

A tour is a list of *stops*; each names a bookmark (``RUN/bookmarks.json``), how long to stay
there (``hold``, seconds), how to get there from the previous stop (``transition``: ``"fly"``, a
smooth camera flight that zooms out and back in over long distances; ``"fade"``, a cross-fade
of the two views; ``"cut"``) and how long that takes (``move``), and a caption shown while it is
on screen.  The viewer's Bookmarks panel edits tours and presents them full screen; ``cnnvis
video RUN --tour NAME`` renders one to MP4 or GIF.  Plain JSON a person can write by hand (see
``docs/FORMAT.md``); every field is checked on reading, with an error naming the file, the stop
and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SnapshotError
from .store import read_document, write_json_atomic

__all__ = [
    "TOURS_DIR",
    "TRANSITIONS",
    "Tour",
    "TourStop",
    "check_stops",
    "list_tours",
    "load_tour",
    "save_tour",
    "tour_path",
]

TOURS_DIR = "tours"
FORMAT = "cnnvis-tour"
VERSION = 1
TRANSITIONS = ("fly", "fade", "cut")
MAX_SECONDS = 600.0  # one stop's hold or move


@dataclass(frozen=True)
class TourStop:
    """One stop of a tour (see the module docstring)."""

    bookmark: str
    hold: float = 3.0  # seconds shown still
    move: float = 2.0  # seconds of the transition into this stop (the first stop has none)
    transition: str = "fly"  # "fly" | "fade" | "cut"
    caption: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept as they were

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bookmark": self.bookmark,
            "hold": self.hold,
            "move": self.move,
            "transition": self.transition,
        }
        if self.caption:
            out["caption"] = self.caption
        return {**self.extra, **out}


@dataclass(frozen=True)
class Tour:
    """An ordered list of stops."""

    stops: tuple[TourStop, ...] = ()
    title: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        if self.title:
            out["title"] = self.title
        out["stops"] = [s.to_json() for s in self.stops]
        return {**self.extra, **out}


_STOP_KEYS = {"bookmark", "hold", "move", "transition", "caption"}
_TOUR_KEYS = {"format", "version", "title", "stops"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


def _seconds(v: Any, where: str, minimum: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{where} must be a number of seconds, not {v!r}")
    if not minimum <= v <= MAX_SECONDS:
        raise ValueError(f"{where} must be between {minimum:g} and {MAX_SECONDS:g} seconds, not {v!r}")
    return float(v)


def _parse_stop(d: Any, k: int) -> TourStop:
    where = f"stop {k + 1}"
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object, not {type(d).__name__}")
    name = d.get("bookmark")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: 'bookmark' must name a bookmark")
    transition = d.get("transition", "fly")
    if transition not in TRANSITIONS:
        raise ValueError(f"{where}: 'transition' must be one of {', '.join(TRANSITIONS)}, not {transition!r}")
    caption = d.get("caption", "")
    if not isinstance(caption, str):
        raise ValueError(f"{where}: 'caption' must be text")
    return TourStop(
        bookmark=name,
        hold=_seconds(d.get("hold", 3.0), f"{where}: 'hold'", 0.0),
        move=_seconds(d.get("move", 2.0), f"{where}: 'move'", 0.0),
        transition=transition,
        caption=caption,
        extra={key: v for key, v in d.items() if key not in _STOP_KEYS},
    )


def parse_tour(doc: dict[str, Any]) -> Tour:
    """A tour from its JSON document, format and version checked (``ValueError`` naming the
    stop and field at fault)."""
    title = doc.get("title", "")
    if not isinstance(title, str):
        raise ValueError("'title' must be text")
    stops = doc.get("stops")
    if not isinstance(stops, list):
        raise ValueError("'stops' must be a list")
    return Tour(
        stops=tuple(_parse_stop(d, k) for k, d in enumerate(stops)),
        title=title,
        extra={key: v for key, v in doc.items() if key not in _TOUR_KEYS},
    )


def check_stops(tour: Tour, bookmarks: Iterable[str], path: str | Path = "the tour") -> None:
    """Every stop names a saved bookmark, and there is at least one stop.

    Raises
    ------
    SnapshotError
        Naming the tour, the stop and the missing bookmark (and the bookmarks there are).
    """
    have = list(bookmarks)
    if not tour.stops:
        raise SnapshotError(f"{path}: the tour has no stops")
    for k, stop in enumerate(tour.stops):
        if stop.bookmark not in have:
            listed = ", ".join(repr(n) for n in have) or "none saved yet"
            raise SnapshotError(
                f"{path}: stop {k + 1} names bookmark {stop.bookmark!r}, which is not saved"
                f" (bookmarks: {listed})"
            )


def tour_path(run_dir: str | Path, name: str) -> Path:
    """Where tour ``name`` lives: a path to a ``.json`` file as given, else
    ``RUN/tours/NAME.json`` (names: letters, digits, space, ``._-``; up to 64)."""
    p = Path(name)
    if p.suffix == ".json" or p.is_file():
        return p
    if not _NAME.match(name):
        raise SnapshotError(
            f"tour name {name!r}: use letters, digits, spaces, '.', '_' or '-' (or a path to a .json file)"
        )
    return Path(run_dir) / TOURS_DIR / f"{name}.json"


def list_tours(run_dir: str | Path) -> list[str]:
    """The names of the tours saved in ``RUN/tours/`` (sorted)."""
    d = Path(run_dir) / TOURS_DIR
    return sorted(p.stem for p in d.glob("*.json") if _NAME.match(p.stem)) if d.is_dir() else []


def load_tour(path: str | Path) -> Tour:
    """Read a tour file.

    Raises
    ------
    SnapshotError
        The file is missing or damaged, or a field is wrong; the message names the file and
        the field.
    """
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"no tour at {path}")
    return read_document(path, FORMAT, VERSION, parse_tour, "a tour")


def save_tour(path: str | Path, tour: Tour) -> Path:
    """Write a tour file atomically (creating ``RUN/tours/``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, tour.to_json(), prefix=".tour-")
