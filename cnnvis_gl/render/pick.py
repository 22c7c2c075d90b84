"""What a pixel of the view shows: one :class:`PickKind` enum, shared with the shaders.

The ID pass writes ``encode_id(KIND_…, index)`` (``shaders/common.glsl``); the ``KIND_…``
numbers are not written in GLSL but passed to every program as ``#define`` s from
:func:`shader_defines`, so Python and the shaders cannot disagree.  A kind is a ``str`` enum:
``PickKind.NEURON == "neuron"``, so a pick result ``(kind, index)`` reads as plain data.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["PickKind", "shader_defines"]


class PickKind(str, Enum):
    """The kinds of things the view can show under a pixel (``code`` is the ID pass's byte)."""

    NONE = "none"
    CLUSTER = "cluster"
    NEURON = "neuron"  # a patch or a matrix row
    BUNDLE = "bundle"  # a bicluster's node
    EDGE = "edge"  # a piece of an edge (index into scene.edges)

    def __str__(self) -> str:
        return self.value

    @property
    def code(self) -> int:
        return _CODES[self]

    @classmethod
    def from_code(cls, code: int) -> PickKind:
        """The kind of an ID pass byte (unknown bytes read as ``NONE``)."""
        return _KINDS.get(int(code), cls.NONE)


_CODES = {k: i for i, k in enumerate(PickKind)}
_KINDS = {i: k for k, i in _CODES.items()}


def shader_defines() -> dict[str, int]:
    """``{"KIND_NONE": 0, "KIND_CLUSTER": 1, …}``: the kinds as GLSL ``#define`` s."""
    return {f"KIND_{k.name}": k.code for k in PickKind}
