"""Data movement (``view``, ``permute``, ``cat``, ``chunk``, slicing, channel shuffles, …) read
through *provenance tensors* (docs/GRAPH.md).

A layer's output gets two integer tensors shaped like it: ``P`` holds, per element, the id of the
layer (its number, shifted left by :data:`ID_BITS`) plus the channel, and ``Q`` the spatial
position (``h·W + w``).  Running a chain of data-movement calls on them instead of on the data
says exactly where every element of the result came from; :func:`classify` turns that into one
layer (or none).  Constants (parameters, class tokens) are ``-1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ModelError
from .capture import CAPTURE_BATCH, NO_MOVE, Call, Ref, map_leaves
from .graph import encode_map

ID_BITS = 24  # provenance id = layer number << 24 | channel
_CHANNEL = (1 << ID_BITS) - 1

#: Data-movement calls that split a tensor into parts.
SPLITS = ("chunk", "split", "unbind", "getitem", "narrow")

#: Padding calls: their border is padding whatever they fill it with.
PADS = ("pad", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d")

_SUPPORTED = (
    "channel concatenation, slicing, splitting, shuffling and zero-padding, strided spatial "
    "slicing, spatial padding, permutes to channels-last and flattening are supported"
)

Prov = tuple[Any, Any]  # (P, Q), each a tensor or a tuple of tensors like the call's output


def base(
    number: int, shape: list[int], channels_last: bool, device: Any, view: Any = None
) -> Prov:
    """(P, Q) of the output of layer ``number`` with canonical ``shape`` (C[, H, W]), laid out
    channels-last, or reshaped to its ``view`` (a stack of maps, a rearranged vector)."""
    if view:  # (a token sequence (H·W, C) is a channels-last map flattened)
        p, q = base(number, shape, channels_last, device)
        if is_heads(view, channels_last):  # (heads, H·W, C / heads): an attention's output
            h, n, d = view
            return tuple(t.reshape(t.shape[0], n, h, d).transpose(1, 2) for t in (p, q))
        return p.reshape(p.shape[0], *view), q.reshape(q.shape[0], *view)
    c, n = shape[0], CAPTURE_BATCH  # (as many as the capture's batch: its view(b, …) args)
    ch = torch.arange(c, device=device, dtype=torch.int64) + (number << ID_BITS)
    if len(shape) == 1:  # (channels-last: a row, (1, C))
        row = (n, 1, c) if channels_last else (n, c)
        return ch.expand(row).clone(), _images(torch.zeros(row, dtype=torch.int64, device=device))
    h, w = shape[1:]
    pos = torch.arange(h * w, device=device, dtype=torch.int64).view(1, h, w)
    p, q = ch.view(c, 1, 1).expand(c, h, w), pos.expand(c, h, w)
    if channels_last:
        p, q = p.permute(1, 2, 0), q.permute(1, 2, 0)
    return p.unsqueeze(0).repeat(n, 1, 1, 1), _images(q.unsqueeze(0).repeat(n, 1, 1, 1))


#: Q holds the image too, above the position: ``image << IMAGE_BITS | h·W + w`` (image 0's
#: values are the bare positions).
IMAGE_BITS = 40


def _images(q: torch.Tensor) -> torch.Tensor:
    """``q`` (a row per image of the capture's batch) with each row's image in its high bits."""
    rows = torch.arange(q.shape[0], device=q.device, dtype=torch.int64) << IMAGE_BITS
    return q + rows.view(-1, *[1] * (q.dim() - 1))


def _one_image_a_row(q: torch.Tensor) -> bool:
    """Whether row *r* of ``q`` holds values of image *r* alone (constants aside)."""
    image = q >> IMAGE_BITS
    rows = torch.arange(q.shape[0], device=q.device).view(-1, *[1] * (q.dim() - 1))
    return bool(((q < 0) | (image == rows)).all())


def one_image_a_row(p: torch.Tensor, q: torch.Tensor) -> bool:
    """Whether the provenance (p, q) of a result has one row per image of the capture's
    batch, each holding that image's values alone (no heads or windows folded into the
    batch)."""
    return p.shape[0] == CAPTURE_BATCH and _one_image_a_row(q)


def sequence_first(p: torch.Tensor, q: torch.Tensor | None = None) -> bool:
    """Whether a (positions, batch, channels) result holds tokens sequence first (torch's
    transformer modules' default, ``batch_first=False``): the capture's images on axis 1
    (checked image by image where the provenance ``q`` is given)."""
    if not isinstance(p, torch.Tensor) or p.dim() != 3 or p.shape[1] != CAPTURE_BATCH:
        return False
    if p.shape[0] == CAPTURE_BATCH:
        return False  # (as many positions as images: read batch first)
    return q is None or _one_image_a_row(q.transpose(0, 1))


def batch_flattened(p: torch.Tensor, q: torch.Tensor | None = None) -> int:
    """How many tokens each image has when a (batch · positions, channels) result holds tokens
    with the batch flattened into their positions (LeViT's ``bn(x.flatten(0, 1))``): the
    capture's images one after the other (checked image by image where the provenance ``q``
    is given); 0 otherwise."""
    if not isinstance(p, torch.Tensor) or p.dim() != 2 or p.shape[0] % CAPTURE_BATCH:
        return 0
    n = p.shape[0] // CAPTURE_BATCH
    if n < 2 or q is not None and not _one_image_a_row(q.reshape(CAPTURE_BATCH, n, -1)):
        return 0
    return n


def constant(like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape, -1, dtype=torch.int64, device=like.device)


def run(call: Call, inputs: dict[Ref, Prov]) -> Prov:
    """The call applied to the provenance of its inputs (parameters count as constants)."""
    if call.op in NO_MOVE:
        p, q = inputs[call.refs()[0]]
        if isinstance(p, torch.Tensor):
            p, q = p.contiguous(), q.contiguous()
        return p, q
    if call.op in PADS:  # the border is padding (a constant), whatever the mode or value
        p, q = inputs[call.refs()[0]]
        if isinstance(call.target, torch.nn.Module):
            pad = list(call.target.padding)
        else:
            pad = call.args[1] if len(call.args) > 1 else call.kwargs.get("pad")
        return tuple(F.pad(t, list(pad), mode="constant", value=-1) for t in (p, q))
    outs = []
    for k in range(2):

        def sub(obj: Any, k: int = k) -> Any:
            return map_leaves(obj, lambda v: _moved(v, inputs, k), (Ref, torch.Tensor))

        try:
            with torch.no_grad():
                outs.append(call.target(*sub(call.args), **sub(call.kwargs)))
        except Exception as e:
            raise ModelError(
                f"cannot follow {call.op} at {call.name!r}: {type(e).__name__}: {e}"
            ) from e
    return outs[0], outs[1]


def _moved(v: Any, inputs: dict[Ref, Prov], k: int) -> Any:
    """An argument of a data-movement call, for its provenance run: an input's provenance,
    integer tensors (``index_select``'s index) as they are, other tensors as constants."""
    if isinstance(v, Ref):
        return inputs[v][k]
    return v if not (v.is_floating_point() or v.is_complex()) else constant(v)


def joins_several(p: Any) -> bool:
    """Whether a result holds channels of several layers (padding aside)."""
    if not isinstance(p, torch.Tensor) or p.dim() - 1 not in (1, 3) and not is_row(p):
        return False
    return torch.unique(p[p >= 0] >> ID_BITS).numel() > 1


@dataclass
class Movement:
    """What a data-movement result is: ``kind`` "alias" (the source itself), "identity" (the
    source moved to channels-last or back), "select", "cat" or "flatten"."""

    kind: str
    sources: list[int]  # layer numbers, in order of first appearance
    shape: list[int] = field(default_factory=list)  # canonical (C[, H, W])
    channels_last: bool = False
    # encode_map runs over (source, channel); source -1: a channel of padding (zeros)
    map: list[list[int]] = field(default_factory=list)
    # a strided or padded view of the sources' positions, as a 1×1 window (receptive fields)
    window: dict[str, list[int]] = field(default_factory=dict)
    # the result's real arrangement when it is not ``shape``: (K, C, H, W) for K stacked maps
    view: list[int] = field(default_factory=list)


Shapes = dict[int, tuple[list[int], bool, list[int]]]  # layer number -> shape, last, view


def classify(p: torch.Tensor, q: torch.Tensor, shapes: Shapes, where: str) -> Movement:
    """Read the provenance of a result that a layer reads; ``shapes`` gives each source layer's
    canonical shape, layout and view (:func:`base`).  Raises ``ModelError`` for results that
    are no channel map."""
    if p.shape[0] != CAPTURE_BATCH:  # (what one image's values became is no longer p[0])
        raise ModelError(
            f"unsupported reshape {where}: it mixes the batch with the channels or positions "
            f"({p.shape[0]} rows from a batch of {CAPTURE_BATCH}: windows, patches or heads "
            f"folded into the batch, as window attention does, are not supported); {_SUPPORTED}"
        )
    if not _one_image_a_row(q):  # (as many rows, but not one image's each: maps stacked)
        raise ModelError(
            f"unsupported reshape {where}: it mixes the batch with the channels or positions "
            f"(its rows are not one image each); {_SUPPORTED}"
        )
    ids, real = p[0], list(p.shape[1:])
    m = None
    if ids.dim() == 1 or is_row(p):
        return _vector(ids.flatten(), shapes, is_row(p), [], where)
    if ids.dim() == 3:
        m = _map(ids, q[0], shapes, [])
    elif ids.dim() == 4:  # (K, C, H, W): K maps stacked (SKNet's paths, ResNeSt's radix splits)
        m = _map(ids.flatten(0, 1), q[0].flatten(0, 1), shapes, real)
    if m is None and _position_free(ids, q[0], shapes):
        # values of vectors or 1×1 maps in any arrangement (ResNeSt's radix softmax): a vector
        # of the elements in memory order, with the arrangement as its view
        return _vector(ids.flatten(), shapes, False, real, where)
    if m is not None:
        return m
    if ids.dim() == 2 and (m := _tokens(ids, q[0], shapes)) is not None:
        return m
    if ids.dim() == 2 and (m := _patch_tokens(ids, q[0], shapes)) is not None:
        return m
    if ids.dim() == 2 and (ids < 0).all(1).any():
        raise ModelError(
            f"unsupported reshape {where}: a tensor of shape {tuple(ids.shape)} reaches a layer, "
            "its tokens a map's and a constant one (a class token, as in ViT): not supported"
        )
    if ids.dim() == 2:
        raise ModelError(
            f"unsupported reshape {where}: a tensor of shape {tuple(ids.shape)} reaches a layer "
            f"(token sequences, as in transformers, are not supported); {_SUPPORTED}"
        )
    raise ModelError(
        f"unsupported reshape {where}: it moves values across positions or mixes channels with "
        f"space; {_SUPPORTED}"
    )


def _vector(ids: torch.Tensor, shapes: Shapes, row: bool, view: list[int], where: str) -> Movement:
    if (ids < 0).any():
        raise ModelError(
            f"the data movement {where} mixes constants into a vector (a class token, padding "
            "of the channels as in circular ECA): not supported"
        )
    sources, pos, ch = _sources(ids)
    shape0, last0, view0 = shapes[sources[0]]
    if len(sources) == 1 and len(shape0) == 1 and _is_arange(ch, shape0[0]):
        if last0 == row and view0 == view:
            return Movement("alias", sources)
        return Movement("identity", sources, list(shape0), row, view=view)
    flat = any(len(shapes[s][0]) == 3 for s in sources)
    kind = "flatten" if flat else ("cat" if len(sources) > 1 else "select")
    return Movement(kind, sources, [int(ids.numel())], row, encode_map(pos, ch), view=view)


def _position_free(ids: torch.Tensor, g: torch.Tensor, shapes: Shapes) -> bool:
    """Whether every value comes from a vector or a 1×1 map (position 0)."""
    if (ids < 0).any() or (g != 0).any():
        return False
    sources = torch.unique(ids >> ID_BITS).tolist()
    return all(math.prod(shapes[n][0][1:]) == 1 for n in sources)


def _map(ids: torch.Tensor, g0: torch.Tensor, shapes: Shapes, view: list[int]) -> Movement | None:
    """A (C, H, W) result whose channels each hold one source channel on a grid of its
    positions (``view``: its real arrangement when not (C, H, W)); ``None`` otherwise."""
    for last in (False, True) if not view else (False,):
        a = ids.permute(2, 0, 1) if last else ids
        g = g0.permute(2, 0, 1) if last else g0
        c, h, w = a.shape
        chan = a.amax((1, 2))  # each channel's source channel; -1: padding throughout
        if not ((a == chan.view(c, 1, 1)) | (a < 0)).all():
            continue  # a channel mixes values of several channels
        real = torch.nonzero(chan >= 0).flatten()
        if not len(real):
            continue  # nothing but padding
        sources, pos, ch = _sources(chan[real])
        shape0, last0, view0 = shapes[sources[0]]
        hw = [list(shapes[n][0][1:]) or [1, 1] for n in sources]  # (a vector: one position)
        if any(x != hw[0] for x in hw):
            continue
        window = _windows(torch.unique(g[real], dim=0), *hw[0])
        if window is None:
            continue  # values moved across positions
        if len(real) < c:  # channels of padding: source -1
            full_pos = torch.full((c,), -1, dtype=torch.int64)
            full_ch = torch.zeros(c, dtype=torch.int64)
            full_pos[real.cpu()], full_ch[real.cpu()] = pos, ch
            pos, ch = full_pos, full_ch
        same = len(sources) == 1 and shape0 == [c, h, w] and _is_arange(ch, c) and not window
        if same and last0 == last and view0 == view:
            return Movement("alias", sources)
        kind = "identity" if same else ("cat" if len(sources) > 1 else "select")
        return Movement(
            kind, sources, [c, h, w], last, [] if same else encode_map(pos, ch), window, view
        )
    return None


def _tokens(ids: torch.Tensor, g: torch.Tensor, shapes: Shapes) -> Movement | None:
    """A (positions, channels) sequence that is one map flattened channels-last, every position
    in order (VAN's ``x.flatten(2).transpose(1, 2)`` before a LayerNorm): the map, laid out
    channels-last and viewed as (H·W, C); ``None`` otherwise."""
    n, c = ids.shape
    if (ids < 0).any() or not (ids == ids[:1]).all() or not (g == g[:, :1]).all():
        return None
    sources, _, ch = _sources(ids[0])
    shape0, last0, view0 = shapes[sources[0]]
    if len(sources) != 1 or len(shape0) != 3 or shape0[0] != c or not _is_arange(ch, c):
        return None
    if shape0[1] * shape0[2] != n or not _is_arange(g[:, 0], n):
        return None
    if last0 and view0 == [n, c]:
        return Movement("alias", sources)
    return Movement("identity", sources, list(shape0), True, view=[n, c])


def _patch_tokens(ids: torch.Tensor, g: torch.Tensor, shapes: Shapes) -> Movement | None:
    """A (positions, channels) sequence that is a grid of a map's positions flattened: its
    p × p patches flattened into the channels (a ViT's patch embedding, ``rearrange(x, 'b c (h
    p1) (w p2) -> b (h w) (p1 p2 c)')``, also of shifted copies of the map), or a strided
    subsample (LeViT's ``x.view(b, h, w, c)[:, ::2, ::2].reshape(b, -1, c)``): the
    space-to-depth or strided map, laid out channels-last and viewed as tokens; ``None``
    otherwise."""
    n, c = ids.shape
    sources = torch.unique(ids[ids >= 0] >> ID_BITS).tolist()  # (-1: padding)
    if len(sources) != 1 or len(shapes[sources[0]][0]) != 3:
        return None
    _, hs, ws = shapes[sources[0]][0]
    h = max(1, round(math.sqrt(n * hs / ws)))  # (the grid keeps the map's aspect)
    if n % h or (h, n // h) == (hs, ws):
        return None  # (the map's own positions: _tokens's)
    grid = (h, n // h, c)
    m = _map(ids.reshape(grid), g.reshape(grid), shapes, [])
    if m is None or not m.channels_last:
        return None
    m.view = [n, c]
    return m


def is_heads(view: Any, channels_last: bool) -> bool:
    """Whether a layer's ``view`` is tokens with the channels split in heads, (heads,
    positions, channels / heads): the only channels-last view of three axes."""
    return channels_last and bool(view) and len(view) == 3


def is_row(t: Any) -> bool:
    """Whether a (batch, …) tensor is a row vector (batch, 1, C): a vector laid out for a
    convolution along the channels (ECA)."""
    return isinstance(t, torch.Tensor) and t.dim() == 3 and t.shape[1] == 1


def _windows(grids: torch.Tensor, hs: int, ws: int) -> dict[str, list[int]] | None:
    """The positions of channels that each hold a strided grid of a source map ``hs × ws``
    (``grids``: the distinct ones, ``[n, h, w]``) as one window: :func:`_grid`'s for a single
    grid; for several grids of one stride and different offsets (a space-to-depth
    reshape–permute–reshape, TResNet's stem) the window spanning their offsets, so a position's
    receptive field is the union of its channels'."""
    fits = [_grid(g, hs, ws) for g in grids]
    if len(fits) == 1 or any(f is None for f in fits):
        return fits[0] if len(fits) == 1 else None
    if any(not f or f["stride"] != fits[0]["stride"] for f in fits):
        return None
    lo = [min(-f["padding"][a] for f in fits) for a in range(2)]  # offsets
    hi = [max(-f["padding"][a] for f in fits) for a in range(2)]
    kernel = [hi[a] - lo[a] + 1 for a in range(2)]
    stride, padding = fits[0]["stride"], [-lo[0], -lo[1]]
    return {"kernel": kernel, "stride": stride, "padding": padding, "dilation": [1, 1]}


def _grid(g: torch.Tensor, hs: int, ws: int) -> dict[str, list[int]] | None:
    """The positions ``g`` ([h, w], -1: padding) of a source map ``hs × ws`` as a strided,
    offset grid: ``{}`` for the map itself, a 1×1 window (stride, padding = -offset) for a
    strided slice (``x[:, :, ::2, ::2]``) or a padded map; ``None`` for any other movement."""
    h, w = g.shape
    valid = g >= 0
    ys, xs = torch.nonzero(valid, as_tuple=True)
    if not len(ys):
        return None
    qy, qx = g[valid] // ws, g[valid] % ws
    fit = []
    for at, src in ((ys, qy), (xs, qx)):
        span = int(at.max() - at.min())
        step = int(src.max() - src.min()) // span if span else 1
        off = int(src.min()) - step * int(at.min())
        if step < 1 or not (src == step * at + off).all():
            return None
        fit.append((step, off))
    (sy, oy), (sx, ox) = fit
    y = sy * torch.arange(h, device=g.device) + oy
    x = sx * torch.arange(w, device=g.device) + ox
    inside = ((y >= 0) & (y < hs)).view(h, 1) & ((x >= 0) & (x < ws)).view(1, w)
    if not (inside == valid).all():
        return None  # padding inside the map, or map positions left out of a padded one
    if (sy, sx, oy, ox) == (1, 1, 0, 0) and (h, w) == (hs, ws):
        return {}
    return {"kernel": [1, 1], "stride": [sy, sx], "padding": [-oy, -ox], "dilation": [1, 1]}


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
