"""The parameters of a layer, read from the call that made it (docs/GRAPH.md): kernel, stride
and padding of convolutions and pools, what a reduction reduces, which inputs of a sum or a
product carry the channels, and the tensor arguments the weights are read from later."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .capture import CAPTURE_BATCH, PRODUCTS, Call, Computed, Ref, computed, live, pick
from .graph import Layer

#: Gates: a product's input made by one of these does not carry the channels.
GATES = {"Sigmoid", "Hardsigmoid", "sigmoid", "hardsigmoid", "Softmax", "softmax"}
#: Element-wise extrema of maps (layers of kind "add": joins).
EXTREMA = ("max", "min", "maximum", "minimum", "fmax", "fmin")


def where(call: Call) -> str:
    return f"at {call.name!r}"


def _value(calls: list[Call], ref: Ref) -> Any:
    return pick(calls[ref.index].value, ref.item)


def pair(v: Any) -> list[int]:
    if isinstance(v, (int, float)):
        return [int(v), int(v)]
    v = list(v)
    return [int(v[0]), int(v[-1])]


#: Element-wise functions that decrease: a weight through them changes sign.
DECREASING = ("rdiv", "reciprocal", "rsqrt")
NORMS = ("norm", "linalg_vector_norm")  # (their dim is the third argument: x.norm(p, dim))


def reduced(call: Call, rank: int) -> list[int]:
    """The dimensions a reduction (``x.mean(dim)``) reduces, non-negative for ``rank``."""
    d = arg(call, 2 if call.op in NORMS else 1, "dim")
    if isinstance(d, int):
        d = [d]
    if not isinstance(d, (list, tuple)) or not all(isinstance(v, int) for v in d):
        return []  # (no dimensions: torch.max(a, b) of two tensors)
    return sorted(v % rank for v in d)


def band_matrix(w: Any, c: int, pad: int, dil: int) -> torch.Tensor:
    """The ``[c, c]`` matrix of a one-channel Conv1d kernel ``w`` (``[1, 1, k]``, zero padding
    ``pad``, dilation ``dil``) applied along a length-``c`` row:
    ``M[i, i - pad + j·dil] = w[j]``."""
    w = live(w).detach().flatten()
    out = w.new_zeros(c, c)
    i = torch.arange(c, device=w.device)
    for j in range(w.numel()):
        src = i - pad + j * dil
        ok = (src >= 0) & (src < c)
        out[i[ok], src[ok]] += w[j]
    return out


def arg(call: Call, pos: int, key: str, default: Any = None) -> Any:
    if key in call.kwargs:
        return call.kwargs[key]
    return call.args[pos] if len(call.args) > pos else default



def layer_params(
    calls: list[Call], call: Call, refs: list[Ref], inputs: list[Layer], shape: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A layer's parameters from its call (kernel, stride, …; which inputs carry the channels)
    and the tensor arguments its weights need later (``weight``, ``scale``: a parameter, or a
    :class:`~.capture.Computed` one).  ``refs``: the call's non-constant inputs, whose layers
    are ``inputs``; ``shape``: the layer's canonical shape."""
    kind, m = call.kind, call.target
    tens: dict[str, Any] = {}
    params: dict[str, Any] = {}
    if kind == "conv":
        if isinstance(m, nn.Conv2d):
            w, stride, pad, dil, groups = m.weight, m.stride, m.padding, m.dilation, m.groups
        else:
            folded = per_sample(calls, call)
            tens["weight"] = param(calls, call, 1, "weight", folded)
            w = live(tens["weight"])
            stride, pad = arg(call, 3, "stride", 1), arg(call, 4, "padding", 0)
            dil, groups = arg(call, 5, "dilation", 1), arg(call, 6, "groups", 1)
            if folded:  # one image's convolution: its groups and kernels
                groups //= CAPTURE_BATCH
                params["per_sample"] = True
        k = list(w.shape[2:])
        d = pair(dil)
        if isinstance(pad, str):
            pad = [0, 0] if pad == "valid" else [d[i] * (k[i] - 1) // 2 for i in range(2)]
        params |= {
            "kernel": [int(v) for v in k],
            "stride": pair(stride),
            "padding": pair(pad),
            "dilation": d,
            "groups": int(groups),
        }
    elif kind == "linear" and call.op in PRODUCTS:  # x @ W: a Linear of weight Wᵀ
        w = param(calls, call, 1, "mat2" if call.op == "mm" else "other")
        tens["weight"] = Computed(torch.t, (w,), {})
    elif kind == "linear" and not isinstance(m, nn.Linear):
        tens["weight"] = param(calls, call, 1, "weight")
    elif kind == "act" and call.op in DECREASING:
        # 1 / x, x ** -½: decreasing, so a weight through it changes sign (c / x: with c's)
        c = arg(call, 1, "other", 1.0) if call.op == "rdiv" else 1.0
        params = {"slope": -1.0 if not isinstance(c, (int, float)) or c >= 0 else 1.0}
    elif kind == "pool":
        params = _pool(calls, call, refs, inputs[0], shape)
    elif kind == "norm" and not isinstance(m, nn.Module):
        if call.op == "batch_norm":
            tens = {
                "weight": param(calls, call, 3, "weight"),
                "running_var": param(calls, call, 2, "running_var"),
            }
            tens["eps"] = arg(call, 7, "eps", 1e-5)
        elif call.op == "normalize":  # x / ‖x‖ over the channels (no weight)
            x = _value(calls, refs[0])
            if arg(call, 2, "dim", 1) not in (1, 1 - x.dim()):
                raise ModelError(
                    f"normalize {where(call)}: only over the channels (dim=1) is supported"
                )
        elif call.op != "local_response_norm":  # (which has no weight)
            pos = {"layer_norm": 2, "group_norm": 2, "instance_norm": 3}.get(call.op, 2)
            tens = {"weight": param(calls, call, pos, "weight")}
    elif kind in ("add", "mul"):
        params, tens = _arith(calls, call, refs, inputs, shape)
    return params, tens

def param(calls: list[Call], call: Call, pos: int, key: str, mixed: bool = False) -> Any:
    """A weight-like argument of a functional layer: a parameter, or a tensor computed from
    parameters only (re-computed when read: :class:`~.capture.Computed`); ``mixed``: or
    mixed from parameters by data (a per-sample convolution's kernels)."""
    v = arg(call, pos, key)
    if not isinstance(v, Ref):
        return v
    made = calls[v.index]
    if made.kind != "constant" and not mixed:
        raise ModelError(
            f"{call.op} {where(call)} takes its {key} from the data ({made.name!r}): "
            "weights computed from the input are supported for a dynamic convolution that "
            "folds the batch into its groups (x.view(1, -1, h, w), groups=g * batch) only"
        )
    return computed(calls, v, mixed=mixed)


def per_sample(calls: list[Call], call: Call) -> bool:
    """Whether ``call`` is a functional convolution of each image with its own kernels: the
    batch folded into the channels of one image and into the groups (dynamic and conditionally
    parametrised convolutions: ``F.conv2d(x.view(1, -1, h, w), w, groups=g * batch)``)."""
    x, w, groups = arg(call, 0, "input"), arg(call, 1, "weight"), arg(call, 6, "groups", 1)
    if call.op != "conv2d" or not isinstance(x, Ref) or not isinstance(w, Ref):
        return False
    if not isinstance(groups, int) or groups % CAPTURE_BATCH or calls[w.index].kind == "constant":
        return False
    return _value(calls, x).shape[0] == 1 and _value(calls, w).shape[0] % CAPTURE_BATCH == 0

def _pool(
    calls: list[Call], call: Call, refs: list[Ref], src: Layer, shape: list[int]
) -> dict[str, Any]:
    m = call.target
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) or call.op.startswith(
        "adaptive"
    ):
        return {"adaptive": True}
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = m.kernel_size, m.stride, m.padding
        d = getattr(m, "dilation", 1)
    elif isinstance(m, nn.LPPool2d) or call.op == "lp_pool2d":  # (no padding, no dilation)
        k = m.kernel_size if isinstance(m, nn.LPPool2d) else arg(call, 2, "kernel_size")
        s = m.stride if isinstance(m, nn.LPPool2d) else arg(call, 3, "stride")
        p, d = 0, 1
    elif isinstance(m, nn.Upsample) or call.op.startswith(("interpolate", "upsample")):
        x = _value(calls, refs[0])
        if isinstance(m, nn.Upsample):
            mode = m.mode
        else:
            mode = arg(call, 3, "mode", "bilinear" if "bilinear" in call.op else "nearest")
        # output / input size per axis; a smooth mode blends neighbouring input pixels
        factor = [shape[1] / x.shape[-2], shape[2] / x.shape[-1]]
        return {"upsample": factor, "smooth": not str(mode).startswith("nearest")}
    elif isinstance(m, nn.AvgPool3d) or call.op == "avg_pool3d":
        return _channel_window(calls, call, refs)
    elif call.op in ("max_pool2d", "avg_pool2d"):
        k = arg(call, 1, "kernel_size")
        s = arg(call, 2, "stride") or k
        p = arg(call, 3, "padding", 0)
        d = arg(call, 4, "dilation", 1) if call.op == "max_pool2d" else 1
    else:  # mean / amax / sum / norm over dimensions
        if len(refs) != 1 or call.op in ("max", "min") and not isinstance(
            arg(call, 1, "dim"), int
        ):
            raise ModelError(
                f"{call.op} {where(call)}: only a reduction of one feature map over "
                "dimensions is supported (not the element-wise maximum of two)"
            )
        x = _value(calls, refs[0])
        dims = reduced(call, x.dim())
        src_last = src.channels_last
        if x.dim() == 5 and dims == [1]:  # over K stacked maps (SKNet, ResNeSt)
            return {"stack": call.op}
        if x.dim() == 5 and dims == [2] and not src_last:
            # over runs of consecutive channels, x.view(b, c // k, k, h, w).sum(2) (FishNet)
            return {"stack": call.op, "runs": int(x.shape[2])}
        if x.dim() == 4 and dims == ([1, 2] if src_last else [2, 3]):
            return {"global": True}
        if x.dim() == 4 and dims == ([3] if src_last else [1]) and len(shape) == 3:
            return {"channels": call.op}  # CBAM's channel mean / max, GRN's mean
        if x.dim() == 2 and dims == [1] and shape == [1]:
            return {"channels": call.op}  # a vector's norm, x.norm(dim=1, keepdim=True)
        raise ModelError(
            f"{call.op} over dimensions {dims} {where(call)}: only the spatial "
            "reduction of a feature map (global pooling) or its reduction over the "
            "channels (keepdim=True) is supported"
        )
    s = s if s is not None else k
    return {"kernel": pair(k), "stride": pair(s), "padding": pair(p), "dilation": pair(d)}


def _channel_window(calls: list[Call], call: Call, refs: list[Ref]) -> dict[str, Any]:
    """A 3-D average pool over a map with its channels as depth, ``(B, 1, C, H, W)``, by a
    window of neighbouring channels at each position: a hand-written local response
    normalisation's ``avg_pool3d(x.pow(2).unsqueeze(1), (n, 1, 1), stride=1)``."""
    m = call.target
    if isinstance(m, nn.AvgPool3d):
        k, s, p, incl = m.kernel_size, m.stride, m.padding, m.count_include_pad
    else:
        k = arg(call, 1, "kernel_size")
        s, p = arg(call, 2, "stride") or k, arg(call, 3, "padding", 0)
        incl = arg(call, 5, "count_include_pad", True)
    k, s, p = (tuple(v) if isinstance(v, (tuple, list)) else (v,) * 3 for v in (k, s, p))
    x = _value(calls, refs[0])
    if x.dim() != 5 or x.shape[1] != 1 or k[1:] != (1, 1) or s != (1, 1, 1) or p[1:] != (0, 0):
        raise ModelError(
            f"{call.op} {where(call)}: 3-D pooling is supported only as a window over "
            "neighbouring channels at each position (x.unsqueeze(1) pooled by (n, 1, 1), stride "
            "1: a local response normalisation written by hand)"
        )
    return {"window": [int(k[0]), int(p[0])], "include_pad": bool(incl)}


def _arith(
    calls: list[Call], call: Call, refs: list[Ref], inputs: list[Layer], shape: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """add / sub / mul / div: which inputs carry the channels, with what sign or scale."""
    args, op = list(call.args), call.op.rstrip("_")  # (x.div_(2) divides too)
    if call.op == "addcmul":  # input + value · tensor1 · tensor2: a product plus a constant
        if isinstance(args[0], Ref) and args[0] in refs or arg(call, 3, "value", 1) != 1:
            raise ModelError(
                f"addcmul {where(call)} is supported as constant + tensor1 · tensor2 "
                "only"
            )
        args = args[1:3]
    consts = [
        a for a in args if not isinstance(a, Ref) or calls[a.index].kind == "constant"
    ]
    const = None
    for a in consts:
        if isinstance(a, Ref):
            const = computed(calls, a)  # follows training (a layer scale)
        elif isinstance(a, (torch.Tensor, int, float)):
            const = a
    # (by the inputs' layers: a broadcast gate.expand_as(x) is its gate's shape)
    full = [r for k, r in enumerate(refs) if inputs[k].shape == shape]
    # a gate shifted or scaled by a constant (BAM's 1 + sigmoid(…)) is still a gate
    gate = {"gate": True} if len(inputs) == 1 and is_gate(inputs[0]) else {}
    if call.kind == "add" and op in EXTREMA:
        # an element-wise maximum (minimum) of maps: their mean is its linear stand-in, as for
        # a maximum over the channels; of one map and a constant, an activation (ReLU's kind)
        return {"signs": [1.0 / len(inputs)] * len(inputs)}, {}
    if call.kind == "add":
        signs = [1.0] * len(inputs)
        if op in ("sub", "rsub") and len(args) >= 2:
            neg = 0 if op == "rsub" else 1
            if isinstance(args[neg], Ref) and args[neg] in refs:
                signs[refs.index(args[neg])] = -1.0
        return {"signs": signs, **gate}, {}
    if op == "neg":  # -x
        const = -1.0
    # mul / div
    if op == "div" and (
        len(args) < 2 or isinstance(args[1], Ref) and args[1] in full
    ):  # (by a broadcast map, e.g. GRN's x_g / x_g.mean(channels): gating)
        if not (len(args) == 2 and isinstance(args[0], Ref) and args[0] in full):
            raise ModelError(f"division by a feature map {where(call)} is not supported")
        # a map divided by a map made from it (a local response normalisation written by
        # hand, x / (k + α·avg(x²))^β): normalised, the numerator carries the channels
        full = [args[0]]
    if len(full) > 1:  # x * gate(x): the gate is not a carrier
        gates = [r for r in full if is_gate(inputs[refs.index(r)])]
        if 0 < len(gates) < len(full):
            full = [r for r in full if r not in gates]
    if not full and len(refs) > 1 and _spans(inputs, shape):
        full = list(refs)  # channels × positions (BAM's channel and spatial attention)
    if not full:
        raise ModelError(f"{call.op} {where(call)}: no input has the shape of its output")
    carriers = [refs.index(r) for r in full]
    tens: dict[str, Any] = {}
    if const is not None and len(refs) == 1:
        tens = {"scale": const, "divide": op == "div"}
    return {"carriers": carriers, **gate}, tens


def is_gate(layer: Layer) -> bool:
    """Whether a layer's output is a gate (a sigmoid, or one shifted or scaled by a constant)."""
    return layer.op in GATES or bool(layer.params.get("gate"))


def _spans(inputs: list[Layer], shape: list[int]) -> bool:
    """Whether inputs broadcast against each other make ``shape``, each axis full in one of
    them (a channel vector (C, 1, 1) times a spatial map (1, H, W))."""
    if any(len(l.shape) != len(shape) or l.channels_last for l in inputs):
        return False
    return all(
        all(s in (1, n) for s in (l.shape[a] for l in inputs))
        and any(l.shape[a] == n for l in inputs)
        for a, n in enumerate(shape)
    )

