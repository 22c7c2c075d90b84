"""The inspectors' pictures as GL textures: made off the UI thread, kept in a small LRU cache.

:meth:`TextureCache.get` returns a picture's texture, or ``None`` while it is being made (the
first call submits ``make`` to a worker; the worker's result comes back through
:meth:`TextureCache.put` on the UI thread, where the texture is created).  Keys are tuples whose
first item names the kind of picture (``"topk"``, ``"pack"``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

__all__ = ["TextureCache"]


class TextureCache:
    """At most ``limit`` textures, least recently used dropped first."""

    def __init__(self, limit: int = 24) -> None:
        self.limit = int(limit)
        self._tex: OrderedDict[Hashable, Any] = OrderedDict()
        self._making: set[Hashable] = set()

    def get(
        self,
        key: Hashable,
        make: Callable[[], np.ndarray],
        submit: Callable[[str, Callable[[], Any]], Any] | None,
    ) -> Any:
        """The texture of ``key``, or ``None`` while ``make`` runs (through ``submit``; a
        picture whose making failed is not asked for again)."""
        tex = self._tex.get(key)
        if tex is not None:
            self._tex.move_to_end(key)
            return tex
        if key not in self._making and submit is not None:
            self._making.add(key)
            submit("pictures", lambda: (key, make()))
        return None

    def put(self, ctx: Any, key: Hashable, image: np.ndarray) -> None:
        """A made picture (on the UI thread, with the GL context current)."""
        from ..render.targets import ImageTexture

        self._making.discard(key)
        if ctx is None:
            return
        old = self._tex.pop(key, None)
        if old is not None:
            old.release()
        self._tex[key] = ImageTexture(ctx, image)
        while len(self._tex) > self.limit:
            _, tex = self._tex.popitem(last=False)
            tex.release()

    def drop(self, stale: Callable[[Hashable], bool]) -> None:
        """Release the textures whose key is ``stale``."""
        for key in [k for k in self._tex if stale(k)]:
            self._tex.pop(key).release()

    def clear(self) -> None:
        """Release every texture."""
        self.drop(lambda _key: True)
