"""Small OpenGL helpers shared by the visuals: shader loading and counted buffer uploads."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import moderngl
import numpy as np

from ..resources import read_shader
from .pick import shader_defines

_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')


def shader_source(name: str, defines: dict[str, Any] | None = None) -> str:
    """Source of ``shaders/<name>`` with ``#include "file"`` expanded and ``defines`` inserted.

    ``#line`` directives keep compile errors pointing at the right line of the right file
    (files are numbered by include order: 0 is ``name`` itself).
    """
    files: list[str] = []

    def expand(fname: str, depth: int) -> list[str]:
        if depth > 8:
            raise RecursionError(f"#include nesting too deep at {fname!r}")
        files.append(fname)
        idx = len(files) - 1
        out: list[str] = []
        for lineno, line in enumerate(read_shader(fname).splitlines(), start=1):
            m = _INCLUDE.match(line)
            if m:
                out.extend(expand(m.group(1), depth + 1))
                out.append(f"#line {lineno + 1} {idx}")
            else:
                out.append(line)
        return out

    lines = expand(name, 0)
    if not lines or not lines[0].startswith("#version"):
        raise ValueError(f"shader {name!r} must start with a #version line")
    head = [lines[0]]
    for key, value in (defines or {}).items():
        head.append(f"#define {key} {value}" if value is not None else f"#define {key}")
    head.append("#line 2 0")
    return "\n".join(head + lines[1:]) + "\n"


def program(
    ctx: moderngl.Context, vert: str, frag: str, defines: dict[str, Any] | None = None
) -> moderngl.Program:
    """Compile ``shaders/<vert>`` + ``shaders/<frag>`` with the same ``defines`` (and the
    pick kinds' ``KIND_…`` numbers, :func:`~cnnvis_gl.render.pick.shader_defines`)."""
    defines = {**shader_defines(), **(defines or {})}
    try:
        return ctx.program(
            vertex_shader=shader_source(vert, defines),
            fragment_shader=shader_source(frag, defines),
        )
    except moderngl.Error as e:
        raise RuntimeError(f"compiling {vert} + {frag} (defines {defines}): {e}") from e


def set_uniform(prog: moderngl.Program, name: str, value: Any) -> None:
    """Set a uniform if the compiled program still has it (the compiler drops unused ones)."""
    if name in prog:
        member = prog[name]
        if isinstance(value, bytes):
            member.write(value)
        else:
            member.value = value


class Uploads(Counter):
    """Counts GPU uploads by buffer name (``"patches.geometry"``, ``"edges.style"``, …).

    Tests assert on it that an appearance change uploads only a small buffer.
    """

    def write(
        self,
        ctx: moderngl.Context,
        name: str,
        buf: moderngl.Buffer | None,
        data: np.ndarray | bytes,
        *,
        reserve: int = 16,
    ) -> moderngl.Buffer:
        """Write ``data`` into ``buf`` (re-created when too small or ``None``) and count it."""
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        size = max(len(raw), reserve)
        if buf is None or buf.size < size:
            if buf is not None:
                buf.release()
            buf = ctx.buffer(reserve=size, dynamic=True)
        if raw:
            buf.write(raw)
        self[name] += 1
        return buf

    def texture(self, name: str, tex: Any, data: np.ndarray | bytes, **kw: Any) -> None:
        """Write ``data`` into texture ``tex`` and count it."""
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        tex.write(raw, **kw)
        self[name] += 1


def data_texture_shape(n: int, width: int = 1024) -> tuple[int, int]:
    """Width × height of a 2-D texture holding ``n`` texels row by row (at least 1×1)."""
    n = max(int(n), 1)
    w = min(n, width)
    return w, (n + w - 1) // w


def pad_texels(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``arr`` ([n, c]) zero-padded to ``shape[0] * shape[1]`` texels."""
    total = shape[0] * shape[1]
    out = np.zeros((total, *arr.shape[1:]), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out
