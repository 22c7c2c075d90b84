"""One value remembered for the inputs it was last made from.

The viewer's panels draw every frame, but much of what they draw changes only when the scene,
the snapshot or a setting does (the minimap's rectangles, the breadcrumbs and the rows they
are found from, the flag badges' rows, the Controls table's lines): :class:`Remembered` makes
it again only then.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["Remembered"]

T = TypeVar("T")


class Remembered(Generic[T]):
    """The value of the last :meth:`get` and the inputs it was made from.

    ``same`` are objects compared by identity (a scene, a snapshot, a graph: replaced, never
    changed in place — they are kept until the next inputs replace them), ``equal`` a key
    compared by value (a box, a set of names)."""

    def __init__(self) -> None:
        self._same: tuple[Any, ...] | None = None
        self._equal: Hashable = None
        self._value: Any = None

    def get(self, same: tuple[Any, ...], equal: Hashable, make: Callable[[], T]) -> T:
        """``make()``, or what it gave last time for these inputs."""
        last = self._same
        if last is None or len(last) != len(same) or any(a is not b for a, b in zip(last, same, strict=True)) or self._equal != equal:
            self._value = make()
            self._same, self._equal = tuple(same), equal
        return self._value
