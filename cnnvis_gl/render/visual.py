"""Base class of the visuals: a draw program and a pick program over the same buffers.

A visual is one module: a :class:`Visual` subclass with its shader pair, ``upload`` methods
for its part of the scene, and :meth:`Visual.render`, which draws it for a
:class:`~cnnvis_gl.render.state.Pass` (or writes its ids, in the ID pass).  Its ``layer`` says
where :class:`~cnnvis_gl.render.renderer.SceneRenderer` draws it (the cached edge layer or the
scene over it) and ``pick_kind`` what its ids are (``None``: not pickable).
"""

from __future__ import annotations

from typing import Any

import moderngl

from .gl import program
from .pick import PickKind
from .state import Frame, Pass, SharedState


class Visual:
    """One kind of scene element (patches, frames, matrices, nodes, edges, labels).

    Subclasses compile ``VERT``/``FRAG``; :meth:`upload` writes geometry once per scene and
    :meth:`draw` only sets uniforms.  Pickable visuals (``pick_kind`` set) also compile the
    shaders with ``PICK`` defined, which writes ids instead of colours.
    """

    VERT = ""
    FRAG = ""
    layer = "scene"  # "edges": drawn into the cached edge layer; "scene": over it
    pick_kind: PickKind | None = None  # what the ID pass writes (None: not pickable)

    def __init__(self, ctx: moderngl.Context, shared: SharedState) -> None:
        self.ctx = ctx
        self.shared = shared
        self.uploads = shared.uploads
        self.prog = program(ctx, self.VERT, self.FRAG)
        pickable = self.pick_kind is not None
        self.pick_prog = program(ctx, self.VERT, self.FRAG, {"PICK": 1}) if pickable else None
        self.vaos: dict[str, moderngl.VertexArray] = {}
        self.count = 0

    def _vertex_array(self, key: str, prog: moderngl.Program, content: list[Any]) -> None:
        old = self.vaos.pop(key, None)
        if old is not None:
            old.release()
        self.vaos[key] = self.ctx.vertex_array(prog, _skip_unused(prog, content))

    def _build_vaos(self, content: list[Any]) -> None:
        self._vertex_array("draw", self.prog, content)
        if self.pick_prog is not None:
            self._vertex_array("pick", self.pick_prog, content)

    def render(self, p: Pass) -> None:
        """Draw for pass ``p`` (in the ID pass, write ids if it is pickable at this detail)."""
        raise NotImplementedError

    def active(self, frame: Frame) -> tuple[moderngl.Program, moderngl.VertexArray | None]:
        """Program and VAO for ``frame`` (draw or pick), with the common uniforms set."""
        prog = self.pick_prog if frame.pick else self.prog
        vao = self.vaos.get("pick" if frame.pick else "draw")
        if prog is not None:
            self.shared.bind(prog, frame)
        return prog, vao

    def release(self) -> None:
        for vao in self.vaos.values():
            vao.release()
        self.vaos.clear()
        for prog in (self.prog, self.pick_prog):
            if prog is not None:
                prog.release()


_SIZES = {"f": 4, "i": 4, "u": 4, "d": 8}


def _skip_unused(prog: moderngl.Program, content: list[Any]) -> list[Any]:
    """``content`` with attributes the compiler removed from ``prog`` turned into padding."""
    out = []
    for buf, fmt, *names in content:
        tokens = fmt.split()
        attrs = [t for t in tokens if not t.startswith("/")]
        if len(attrs) != len(names):
            raise ValueError(f"format {fmt!r} does not match attributes {names}")
        new_tokens, kept = [], []
        it = iter(names)
        for tok in tokens:
            if tok.startswith("/"):
                new_tokens.append(tok)
                continue
            name = next(it)
            if name in prog:
                new_tokens.append(tok)
                kept.append(name)
            else:
                count = int(tok[:-1] or 1) if tok[-1].isalpha() else 1
                new_tokens.append(f"{count * _SIZES[tok[-1]]}x")
        if kept:
            out.append((buf, " ".join(new_tokens), *kept))
    return out
