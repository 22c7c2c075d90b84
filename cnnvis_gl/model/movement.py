"""Data movement (``view``, ``permute``, ``cat``, ``chunk``, slicing, channel shuffles, …) read
through *provenance tensors* (docs/GRAPH.md).

A layer's output gets two integer tensors shaped like it: ``P`` holds, per element, the id of the
layer (its number, shifted left by :data:`ID_BITS`) plus the channel, and ``Q`` the spatial
position (``h·W + w``).  Running a chain of data-movement calls on them instead of on the data
says exactly where every element of the result came from; :func:`classify` turns that into one
layer (or none).  Constants (parameters, class tokens) are ``-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ModelError
from .capture import NO_MOVE, Call, Ref, map_leaves
from .graph import encode_map

ID_BITS = 24  # provenance id = layer number << 24 | channel
_CHANNEL = (1 << ID_BITS) - 1

#: Data-movement calls that split a tensor into parts.
SPLITS = ("chunk", "split", "unbind", "getitem", "narrow")

_SUPPORTED = (
    "channel concatenation, slicing, splitting and shuffling, permutes to channels-last and "
    "flattening are supported"
)

Prov = tuple[Any, Any]  # (P, Q), each a tensor or a tuple of tensors like the call's output


def base(number: int, shape: list[int], channels_last: bool, device: Any) -> Prov:
    """(P, Q) of the output of layer ``number`` with canonical ``shape`` (C[, H, W])."""
    c = shape[0]
    ch = torch.arange(c, device=device, dtype=torch.int64) + (number << ID_BITS)
    if len(shape) == 1:
        return ch.view(1, c), torch.zeros(1, c, dtype=torch.int64, device=device)
    h, w = shape[1:]
    pos = torch.arange(h * w, device=device, dtype=torch.int64).view(1, h, w)
    p, q = ch.view(c, 1, 1).expand(c, h, w), pos.expand(c, h, w)
    if channels_last:
        p, q = p.permute(1, 2, 0), q.permute(1, 2, 0)
    return p.unsqueeze(0).contiguous(), q.unsqueeze(0).contiguous()


def constant(like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape, -1, dtype=torch.int64, device=like.device)


def run(call: Call, inputs: dict[Ref, Prov]) -> Prov:
    """The call applied to the provenance of its inputs (parameters count as constants)."""
    if call.op in NO_MOVE:
        p, q = inputs[call.refs()[0]]
        if isinstance(p, torch.Tensor):
            p, q = p.contiguous(), q.contiguous()
        return p, q
    outs = []
    for k in range(2):

        def sub(obj: Any, k: int = k) -> Any:
            return map_leaves(
                obj,
                lambda v: inputs[v][k] if isinstance(v, Ref) else constant(v),
                (Ref, torch.Tensor),
            )

        try:
            with torch.no_grad():
                outs.append(call.target(*sub(call.args), **sub(call.kwargs)))
        except Exception as e:
            raise ModelError(
                f"cannot follow {call.op} at {call.name!r}: {type(e).__name__}: {e}"
            ) from e
    return outs[0], outs[1]


def joins_several(p: Any) -> bool:
    """Whether a result holds channels of several layers (and no constants)."""
    if not isinstance(p, torch.Tensor) or p.dim() - 1 not in (1, 3) or bool((p < 0).any()):
        return False
    return torch.unique(p >> ID_BITS).numel() > 1


@dataclass
class Movement:
    """What a data-movement result is: ``kind`` "alias" (the source itself), "identity" (the
    source moved to channels-last or back), "select", "cat" or "flatten"."""

    kind: str
    sources: list[int]  # layer numbers, in order of first appearance
    shape: list[int] = field(default_factory=list)  # canonical (C[, H, W])
    channels_last: bool = False
    map: list[list[int]] = field(default_factory=list)  # encode_map runs over (source, channel)


def classify(
    p: torch.Tensor, q: torch.Tensor, shapes: dict[int, tuple[list[int], bool]], where: str
) -> Movement:
    """Read the provenance of a result that a layer reads; ``shapes`` gives each source layer's
    canonical shape and layout.  Raises ``ModelError`` for results that are no channel map."""
    if (p < 0).any():
        raise ModelError(
            f"the data movement {where} mixes a constant tensor into the feature maps "
            "(e.g. a class token): not supported"
        )
    ids = p[0]
    if ids.dim() == 1:
        sources, pos, ch = _sources(ids)
        shape0, _ = shapes[sources[0]]
        if len(sources) == 1 and len(shape0) == 1 and _is_arange(ch, shape0[0]):
            return Movement("alias", sources)
        flat = any(len(shapes[s][0]) == 3 for s in sources)
        kind = "flatten" if flat else ("cat" if len(sources) > 1 else "select")
        return Movement(kind, sources, [int(ids.shape[0])], False, encode_map(pos, ch))
    if ids.dim() != 3:
        tokens = (
            " (token sequences, as in transformers, are not supported)" if ids.dim() == 2 else ""
        )
        raise ModelError(
            f"unsupported reshape {where}: a tensor of shape {tuple(ids.shape)} reaches a "
            f"layer{tokens}; {_SUPPORTED}"
        )
    for last in (False, True):
        a = ids.permute(2, 0, 1) if last else ids
        g = q[0].permute(2, 0, 1) if last else q[0]
        c, h, w = a.shape
        if not (a == a[:, :1, :1]).all():
            continue  # a channel mixes values of several channels
        if not (g == torch.arange(h * w, device=g.device).view(1, h, w)).all():
            continue  # values moved across positions
        sources, pos, ch = _sources(a[:, 0, 0])
        shape0, last0 = shapes[sources[0]]
        same = len(sources) == 1 and shape0 == [c, h, w] and _is_arange(ch, c)
        if same and last0 == last:
            return Movement("alias", sources)
        kind = "identity" if same else ("cat" if len(sources) > 1 else "select")
        return Movement(kind, sources, [c, h, w], last, [] if same else encode_map(pos, ch))
    raise ModelError(
        f"unsupported reshape {where}: it moves values across positions or mixes channels with "
        f"space; {_SUPPORTED}"
    )


def _is_arange(ch: torch.Tensor, n: int) -> bool:
    return ch.numel() == n and bool((ch == torch.arange(n, device=ch.device)).all())


def _sources(ids: torch.Tensor) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Source layer numbers in order of first appearance; per element (source position,
    channel)."""
    flat = (ids >> ID_BITS).flatten().tolist()
    order = list(dict.fromkeys(flat))
    lookup = {v: k for k, v in enumerate(order)}
    pos = torch.tensor([lookup[v] for v in flat], dtype=torch.int64)
    return order, pos, (ids & _CHANNEL).flatten().cpu()
