"""Signed neuron → neuron weights (SPEC §4).

The weight from neuron *i* of one unit to neuron *j* of a later one is the linear part of the path
between them: a conv contributes the sum of its kernel ``W[j, i, :, :]``, a linear layer
``W[j, i]`` (after a flatten: the sum over all positions of channel *i*), a norm layer multiplies
row *j* by its scale, non-linearities and pooling count as identity, a residual ``add`` sums its
branches (so a skip connection is an identity edge), and a chain of layers multiplies.
"""

from __future__ import annotations

import torch
from torch import nn

from .graph import TracedModel

Maps = dict[str, torch.Tensor]  # source tap name -> [C_node, C_source]


def _conv_matrix(conv: nn.Conv2d) -> torch.Tensor:
    w = conv.weight.detach().sum(dim=(2, 3))  # [C_out, C_in / groups]
    g = conv.groups
    if g == 1:
        return w
    c_out, c_in_g = w.shape
    full = w.new_zeros(c_out, c_in_g * g)
    per = c_out // g
    for k in range(g):
        full[k * per : (k + 1) * per, k * c_in_g : (k + 1) * c_in_g] = w[k * per : (k + 1) * per]
    return full


def _norm_scale(norm: nn.Module, channels: int, like: torch.Tensor) -> torch.Tensor:
    weight = getattr(norm, "weight", None)
    scale = weight.detach() if weight is not None else like.new_ones(channels)
    var = getattr(norm, "running_var", None)
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and var is not None:
        scale = scale / torch.sqrt(var.detach() + norm.eps)
    return scale


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
    with torch.no_grad():
        for layer in graph.layers:
            name = layer.name
            if layer.kind == "input":
                computed: Maps = {}
            else:
                computed = _apply(traced, layer.name, [maps.get(i, {}) for i in layer.inputs])
            if name in tgt_set:
                result[name] = computed
            if name in src_set:
                c = layer.shape[0]
                dev = next((p.device for p in traced.gm.parameters()), torch.device("cpu"))
                maps[name] = {name: torch.eye(c, device=dev)}
            else:
                maps[name] = computed
    return result


def _apply(traced: TracedModel, name: str, inputs: list[Maps]) -> Maps:
    layer = traced.graph.layer(name)
    module = traced.module_of.get(name)
    if layer.kind == "add":
        out: Maps = {}
        for m in inputs:
            for src, mat in m.items():
                out[src] = out[src] + mat if src in out else mat
        return out
    m = inputs[0] if inputs else {}
    if not m:
        return {}
    if layer.kind == "conv":
        w = _conv_matrix(module)  # type: ignore[arg-type]
        return {s: w @ mat for s, mat in m.items()}
    if layer.kind == "linear":
        w = module.weight.detach()  # type: ignore[union-attr]
        out = {}
        for s, mat in m.items():
            rows = mat.shape[0]
            if w.shape[1] == rows:
                out[s] = w @ mat
            elif w.shape[1] % rows == 0:  # flatten → linear: sum over the positions of a channel
                out[s] = w.reshape(w.shape[0], rows, -1).sum(-1) @ mat
            else:
                raise ValueError(
                    f"linear layer {name!r}: {w.shape[1]} inputs do not split into {rows} channels"
                )
        return out
    if layer.kind == "norm" and module is not None:
        c = layer.shape[0]
        any_mat = next(iter(m.values()))
        scale = _norm_scale(module, c, any_mat)
        return {s: scale[:, None] * mat for s, mat in m.items()}
    return m  # act, pool, dropout, flatten, identity: channel-wise identity


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


def weight_stats(traced: TracedModel) -> dict[str, dict[str, float]]:
    """Mean, std and L2 norm of each weighted layer's weight tensor."""
    out = {}
    for layer in traced.graph.layers:
        if not layer.weighted:
            continue
        w = traced.module_of[layer.name].weight.detach().float()
        out[layer.name] = {
            "mean": float(w.mean()),
            "std": float(w.std()) if w.numel() > 1 else 0.0,
            "norm": float(torch.linalg.vector_norm(w)),
        }
    return out
