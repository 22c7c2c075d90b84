"""Signed neuron → neuron weights (SPEC §4).

The weight from neuron *i* of one unit to neuron *j* of a later one is the linear part of the path
between them: a conv contributes the sum of its kernel ``W[j, i, :, :]``, a linear layer
``W[j, i]`` (after a flatten: the sum over all positions of channel *i*), a norm layer multiplies
row *j* by its scale, non-linearities and pooling count as identity, a residual ``add`` sums its
branches (so a skip connection is an identity edge; ``sub`` subtracts), a channel concatenation
stacks its inputs' rows, slicing / splitting / shuffling pick rows, a product passes its gated
side on (times a constant factor such as a layer scale; a gate computed from the data counts as
1), and a chain of layers multiplies.  See docs/GRAPH.md.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
from torch import nn

from .graph import decode_map
from .params import band_matrix
from .trace import TracedModel

Maps = dict[str, torch.Tensor]  # source tap name -> [C_node, C_source]


def _conv_matrix(weight: torch.Tensor, g: int) -> torch.Tensor:
    w = weight.detach().sum(dim=(2, 3))  # [C_out, C_in / groups]
    if g == 1:
        return w
    c_out, c_in_g = w.shape
    full = w.new_zeros(c_out, c_in_g * g)
    group = torch.arange(c_out, device=w.device) // (c_out // g)  # of each output channel
    cols = group[:, None] * c_in_g + torch.arange(c_in_g, device=w.device)[None, :]
    full.scatter_(1, cols, w)  # block diagonal
    return full


def _norm_scale(traced: TracedModel, name: str, channels: int, like: torch.Tensor) -> torch.Tensor:
    norm = traced.module_of.get(name)
    weight = getattr(norm, "weight", None) if norm is not None else traced.tensor(name, "weight")
    scale = weight.detach().float().flatten() if weight is not None else like.new_ones(channels)
    if scale.numel() != channels:
        return like.new_ones(channels)  # a LayerNorm over more than the channels
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_var is not None:
        scale = scale / torch.sqrt(norm.running_var.detach() + norm.eps)
    elif traced.tensor(name, "running_var") is not None:
        var = traced.tensor(name, "running_var").detach()
        scale = scale / torch.sqrt(var + float(traced.tensors_of[name].get("eps", 1e-5)))
    return scale.to(like.device, like.dtype)


def channel_maps(traced: TracedModel, sources: list[str], targets: list[str]) -> dict[str, Maps]:
    """For each target layer, the linear maps from every source layer that reaches it.

    A source's own output is a fresh start (identity): paths are not followed through another
    source.  Returns ``{target: {source: tensor [C_target, C_source]}}`` (float32, on the model's
    device).
    """
    graph = traced.graph
    src_set, tgt_set = set(sources), set(targets)
    maps: dict[str, Maps] = {}
    result: dict[str, Maps] = {}
    # flattened vectors: the (virtual) channel of every feature
    features: dict[str, torch.Tensor] = {}
    eyes = _Eyes()  # the identity maps of sources: W @ I = W costs nothing
    dev = traced.device
    consumers: dict[str, int] = {}
    for layer in graph.layers:
        for i in layer.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    left = dict(consumers)
    with torch.no_grad():
        for layer in graph.layers:
            name = layer.name
            if layer.kind == "input":
                computed: Maps = {}
            else:
                computed = _apply(
                    traced, layer.name, [maps.get(i, {}) for i in layer.inputs], features, eyes
                )
            if name in tgt_set:
                result[name] = computed
            if name in src_set:
                eye = torch.eye(layer.shape[0], device=dev)
                eyes.add(eye)
                maps[name] = {name: eye}
                features.pop(name, None)
            else:
                maps[name] = computed
            for i in layer.inputs:  # free what no later layer reads
                left[i] -= 1
                if left[i] == 0 and i not in tgt_set:
                    maps.pop(i, None)
    return result


def _sum(parts: list[tuple[float, Maps]]) -> Maps:
    out: Maps = {}
    for sign, m in parts:
        for src, mat in m.items():
            mat = mat if sign == 1.0 else sign * mat
            out[src] = out[src] + mat if src in out else mat
    return out


def _gather(
    inputs: list[Maps], runs: list[list[int]], dev: torch.device, flat: bool
) -> tuple[Maps, torch.Tensor | None]:
    """Rows picked from the inputs by a channel map.  For a flattened vector (``flat``): one row
    per distinct (input, channel), and the row of every feature."""
    pos, ch = decode_map(runs)
    pairs = pos * (1 << 32) + ch
    feature_row = None
    order = pairs
    if flat:
        uniq, inverse = np.unique(pairs, return_inverse=True)
        first = np.sort(np.unique(pairs, return_index=True)[1])
        order = pairs[first]  # distinct pairs in order of first appearance
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[np.searchsorted(uniq, order)] = np.arange(len(order))
        feature_row = torch.as_tensor(rank[inverse], device=dev)
    upos, uch = order >> 32, order & ((1 << 32) - 1)
    out: Maps = {}
    for k, m in enumerate(inputs):
        rows = np.flatnonzero(upos == k)
        if rows.size == 0:
            continue
        r = torch.as_tensor(rows, device=dev)
        c = torch.as_tensor(uch[rows], device=dev)
        for src, mat in m.items():
            if src not in out:
                out[src] = mat.new_zeros(len(order), mat.shape[1])
            out[src][r] = mat[c]
    return out, feature_row


class _Eyes:
    """Identity matrices, recognised as the very objects (a freed tensor's ``id`` is reused by
    later tensors, so ids alone would mistake a computed map for an identity)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def add(self, t: torch.Tensor) -> None:
        self._refs[id(t)] = weakref.ref(t)

    def __contains__(self, t: torch.Tensor) -> bool:
        ref = self._refs.get(id(t))
        return ref is not None and ref() is t


def _mm(w: torch.Tensor, mat: torch.Tensor, eyes: _Eyes) -> torch.Tensor:
    return w if mat in eyes else w @ mat


def _conv(weight: torch.Tensor, groups: int, mat: torch.Tensor, eyes: _Eyes) -> torch.Tensor:
    """The conv's channel map times ``mat`` (grouped convs block by block)."""
    if groups == 1 or mat in eyes:
        return _mm(_conv_matrix(weight, groups), mat, eyes)
    w = weight.detach().sum(dim=(2, 3))  # [C_out, C_in / groups]
    c_out, c_in_g = w.shape
    blocks = w.view(groups, c_out // groups, c_in_g)
    return torch.bmm(blocks, mat.view(groups, c_in_g, -1)).reshape(c_out, -1)


def _broadcast(inputs: list[Maps], c: int) -> list[Maps]:
    """The inputs of an element-wise layer of ``c`` channels, a one-channel input repeated to
    every channel (as the layer broadcasts it)."""
    return [{s: mat.repeat(c, 1) if len(mat) == 1 < c else mat for s, mat in m.items()}
            for m in inputs]  # fmt: skip


def _apply(
    traced: TracedModel,
    name: str,
    inputs: list[Maps],
    features: dict[str, torch.Tensor],
    eyes: _Eyes,
) -> Maps:
    layer = traced.graph.layer(name)
    dev = traced.device
    feat = features.get(layer.inputs[0]) if layer.inputs else None
    if layer.kind in ("cat", "select", "flatten"):
        out, rows = _gather(inputs, layer.params["map"], dev, layer.kind == "flatten")
        if rows is not None:
            features[name] = rows
        return out
    if layer.kind == "add":
        signs = layer.params.get("signs", [1.0] * len(inputs))
        return _sum(list(zip(signs, _broadcast(inputs, layer.shape[0]), strict=True)))
    if layer.kind == "mul":
        carriers = layer.params.get("carriers", range(len(inputs)))
        wide = _broadcast(inputs, layer.shape[0])
        out = _sum([(1.0, wide[k]) for k in carriers])
        scale = traced.tensor(name, "scale")
        if scale is not None and out:
            s = torch.as_tensor(scale).detach().float().flatten().to(dev)
            if traced.tensors_of[name].get("divide"):
                s = 1.0 / s
            if s.numel() == 1:
                out = {src: s * mat for src, mat in out.items()}
            elif s.numel() == layer.shape[0]:
                out = {src: s[:, None] * mat for src, mat in out.items()}
        if feat is not None:
            features[name] = feat
        return out
    m = inputs[0] if inputs else {}
    if not m:
        return {}
    if layer.kind == "conv":
        weight, groups = traced.weight(name), int(layer.params.get("groups", 1))
        if groups > 1 and weight.shape[0] == groups and weight.shape[1] == 1:  # depthwise
            d = weight.detach().sum(dim=(1, 2, 3))
            return {s: d[:, None] * mat for s, mat in m.items()}
        return {s: _conv(weight, groups, mat, eyes) for s, mat in m.items()}
    if layer.kind == "linear":
        w = traced.weight(name).detach()
        out = {}
        for s, mat in m.items():
            rows = mat.shape[0]
            if feat is not None:  # flatten → linear: sum over the positions of a channel
                out[s] = w.new_zeros(w.shape[0], rows).index_add_(1, feat, w) @ mat
            elif w.shape[1] == rows:
                out[s] = _mm(w, mat, eyes)
            else:
                raise ValueError(
                    f"linear layer {name!r}: {w.shape[1]} inputs do not split into {rows} channels"
                )
        return out
    if feat is not None:
        features[name] = feat
        if layer.kind == "norm":  # a norm over flattened features: one scale per channel
            return m
    if layer.kind == "pool" and layer.params.get("stack"):
        # over K stacked maps ([K, C, sources]), or runs of K consecutive channels ([C, K, …])
        c, how, runs = layer.shape[0], layer.params["stack"], layer.params.get("runs")
        lead, axis = ((c, runs), 1) if runs else ((-1, c), 0)
        maps = {s: mat.reshape(*lead, mat.shape[1]) for s, mat in m.items()}
        return {s: v.sum(axis) if how == "sum" else v.mean(axis) for s, v in maps.items()}
    if layer.kind == "pool" and layer.params.get("window"):
        # an average over a window of neighbouring channels (a hand-written LRN's x² term)
        band = _window_band(layer.shape[0], *layer.params["window"], layer.params["include_pad"])
        return {s: band.to(mat) @ mat for s, mat in m.items()}
    if layer.kind == "pool" and layer.params.get("channels"):
        # a reduction over the channels: their sum, or their mean (also the linear stand-in for
        # a maximum or a norm)
        if layer.params["channels"] == "sum":
            return {s: mat.sum(0, keepdim=True) for s, mat in m.items()}
        return {s: mat.mean(0, keepdim=True) for s, mat in m.items()}
    if layer.kind == "norm":
        c = layer.shape[0]
        any_mat = next(iter(m.values()))
        scale = _norm_scale(traced, name, c, any_mat)
        return {s: scale[:, None] * mat for s, mat in m.items()}
    if layer.params.get("slope"):  # a decreasing element-wise function (1 / x)
        return {s: layer.params["slope"] * mat for s, mat in m.items()}
    return m  # act, pool, dropout, identity: channel-wise identity


def _window_band(c: int, n: int, pad: int, include_pad: bool) -> torch.Tensor:
    """``[c, c]``: output channel j averages input channels j - pad … j - pad + n - 1 (the
    band matrix of a kernel of ones, divided by the window, or by its channels inside)."""
    band = band_matrix(torch.ones(n), c, pad, 1)
    return band / (n if include_pad else band.sum(1, keepdim=True))


def unit_weights(traced: TracedModel) -> dict[str, dict[str, torch.Tensor]]:
    """Weights into every unit from the units (or the input) directly before it.

    ``{unit name: {source unit name or "input": [C_unit, C_source]}}``
    """
    g = traced.graph
    taps = {u.tap: u.name for u in g.units}
    maps = channel_maps(traced, ["input", *taps], list(taps))
    return {taps[t]: {taps.get(s, s): mat for s, mat in m.items()} for t, m in maps.items()}


def group_weights(traced: TracedModel) -> dict[str, dict[str, torch.Tensor]]:
    """Weights into every group's neurons from the groups (or the input) feeding it; layers inside
    a group are chained by matrix product.  ``{group name: {source group name or "input": matrix}}``
    """
    g = traced.graph
    taps = {g.unit(gr.unit).tap: gr.name for gr in g.groups}
    maps = channel_maps(traced, ["input", *taps], list(taps))
    return {taps[t]: {taps.get(s, s): mat for s, mat in m.items()} for t, m in maps.items()}


def weight_stats(traced: TracedModel) -> dict[str, dict[str, float | None]]:
    """Mean, std and L2 norm of each weighted layer's weight tensor (ECA's: its kernel's, not
    the band matrix's)."""
    out = {}
    for layer in traced.graph.layers:
        if not layer.weighted:
            continue
        kernel = traced.tensor(layer.name, "kernel")
        w = (kernel if kernel is not None else traced.weight(layer.name)).detach().double()
        stats = {
            "mean": float(w.mean()),
            "std": float(w.std()) if w.numel() > 1 else 0.0,
            "norm": float(torch.linalg.vector_norm(w)),
        }
        # null where the weights hold NaN or ±inf (a diverged run): strict JSON, and flagged
        out[layer.name] = {k: v if math.isfinite(v) else None for k, v in stats.items()}
    return out
