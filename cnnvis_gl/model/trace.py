"""From a model to its :class:`~cnnvis_gl.model.graph.NeuronGraph` (semantics in docs/GRAPH.md).

:func:`trace_model` records one forward pass (:mod:`.capture`), turns the recorded calls into
layers and assembles units and groups (:mod:`.graph`).  Data-movement calls (``view``,
``permute``, ``cat``, ``chunk``, slicing, channel shuffles, …) do not become layers of their own:
each one whose result is read by a real layer is analysed by running it on *provenance*
tensors (every element holds the id of the layer and channel it came from, and the spatial
position), which says exactly which source channel every output channel holds.  The result is
one layer of kind ``cat`` (several sources), ``select`` (a subset or permutation of one
source's channels), ``flatten`` (a vector), ``identity`` (the same channels, moved to
channels-last or back), or nothing (a no-op).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .capture import NO_MOVE, Call, Recording, Ref, pick, record_calls
from .graph import Layer, NeuronGraph, assemble, decode_map, encode_map

_ID_BITS = 24  # provenance id = layer number << 24 | channel
_GATES = {"Sigmoid", "Hardsigmoid", "sigmoid", "hardsigmoid", "Softmax", "softmax"}


@dataclass
class TracedModel:
    """A model's graph plus what the statistics pass and the weights need from the model."""

    graph: NeuronGraph
    model: nn.Module
    recording_calls: int  # numbered calls of one forward pass (checked by the probe)
    call_of: dict[str, Ref]  # layer name -> the call output that holds its value
    module_of: dict[str, nn.Module] = field(default_factory=dict)  # layers that are modules
    tensors_of: dict[str, dict[str, Any]] = field(default_factory=dict)  # weights, scales, …

    def weight(self, name: str) -> torch.Tensor:
        """The weight tensor of a weighted layer (a module's, or a functional call's argument)."""
        module = self.module_of.get(name)
        if module is not None:
            return module.weight
        return self.tensors_of[name]["weight"]

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))


def build_graph(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> NeuronGraph:
    """The :class:`NeuronGraph` of ``model`` for inputs of ``input_shape`` (C, H, W)."""
    return trace_model(model, input_shape).graph


def trace_model(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> TracedModel:
    """Capture ``model`` from one forward pass on zeros of ``input_shape`` (C, H, W)."""
    rec = record_calls(model, tuple(int(s) for s in input_shape))
    return _Builder(model, rec, list(input_shape)).build()


def _pair(v: Any) -> list[int]:
    if isinstance(v, (int, float)):
        return [int(v), int(v)]
    v = list(v)
    return [int(v[0]), int(v[-1])]


def _arg(call: Call, pos: int, key: str, default: Any = None) -> Any:
    if key in call.kwargs:
        return call.kwargs[key]
    return call.args[pos] if len(call.args) > pos else default


class _Builder:
    def __init__(self, model: nn.Module, rec: Recording, input_shape: list[int]) -> None:
        self.model = model
        self.rec = rec
        self.calls = rec.calls
        self.input_shape = input_shape
        self.layers: list[Layer] = []
        self.by_name: dict[str, Layer] = {}
        self.number: dict[str, int] = {}  # layer name -> provenance number
        self.of_ref: dict[Ref, str] = {}  # call output -> layer name holding it
        self.prov: dict[int, tuple[Any, Any]] = {}  # layout call -> (P, Q) structures
        self.bad: dict[int, str] = {}  # calls that cannot be layers -> why
        self.traced = TracedModel(
            graph=None,  # type: ignore[arg-type]
            model=model,
            recording_calls=0,
            call_of={},
        )

    # ------------------------------------------------------------------ driver
    def build(self) -> TracedModel:
        readers: dict[int, list[Call]] = {}
        for call in self.calls:
            for i in call.inputs:
                readers.setdefault(i, []).append(call)
        for call in self.calls:
            if call.kind == "input":
                self._add(Layer("input", "input", "input", [], list(self.input_shape)), Ref(0))
            elif call.kind == "layout":
                self._provenance(call)
                if self._is_boundary(call, readers.get(call.index, [])):
                    self._resolve(Ref(call.index), call.name)
            elif call.kind not in ("constant", "unknown"):
                self._layer(call)
        self._resolve(self.rec.output, self.calls[self.rec.output.index].name)
        self.traced.graph = assemble(self.layers, self.input_shape, capture="forward")
        self.traced.recording_calls = (
            len(self.calls) if not self.calls else self.calls[-1].index + 1
        )
        return self.traced

    def _is_boundary(self, call: Call, readers: list[Call]) -> bool:
        """Whether a data-movement result is a layer of its own at once: a layer reads it, or it
        joins several sources and is then split again (a ShuffleNet block's output)."""
        p = self.prov.get(call.index, (None,))[0]
        if not isinstance(p, torch.Tensor) or p.dim() - 1 not in (1, 3):
            return False
        if any(r.kind not in ("layout", "constant", "unknown") for r in readers):
            return True
        splits = any(r.op in ("chunk", "split", "unbind", "getitem", "narrow") for r in readers)
        return splits and bool((p >= 0).all()) and torch.unique(p >> _ID_BITS).numel() > 1

    def _add(self, layer: Layer, ref: Ref) -> None:
        self.layers.append(layer)
        self.by_name[layer.name] = layer
        self.number[layer.name] = len(self.number) + 1
        self.of_ref[ref] = layer.name
        self.traced.call_of[layer.name] = ref

    def _where(self, call: Call) -> str:
        return f"at {call.name!r}"

    # ------------------------------------------------------------------ inputs of a layer
    def _resolve(self, ref: Ref, name: str) -> str:
        """The layer holding call output ``ref`` (materialising a data-movement result)."""
        if ref in self.of_ref:
            return self.of_ref[ref]
        if ref.index in self.bad:
            raise ModelError(self.bad[ref.index])
        call = self.calls[ref.index]
        if call.kind == "unknown":
            raise ModelError(
                f"unsupported operation {call.op!r} {call.where}: cnnvis_gl captures "
                "convolutional networks; see docs/GRAPH.md for the supported operations (or "
                "analyse a model without it)"
            )
        if call.kind == "constant":
            raise ModelError(f"{name!r} reads a constant tensor where a feature map is expected")
        if call.kind != "layout":
            raise ModelError(f"cannot follow the output {ref.item} of {call.name!r}")
        return self._materialise(call, ref)

    def _refs(self, call: Call) -> list[Ref]:
        out: list[Ref] = []

        def walk(o: Any) -> None:
            if isinstance(o, Ref):
                if o not in out:
                    out.append(o)
            elif isinstance(o, (list, tuple)):
                for x in o:
                    walk(x)
            elif isinstance(o, dict):
                for x in o.values():
                    walk(x)

        walk((call.args, call.kwargs))
        return [r for r in out if self.calls[r.index].kind != "constant"]

    def _value(self, ref: Ref) -> torch.Tensor:
        return pick(self.calls[ref.index].value, ref.item)

    # ------------------------------------------------------------------ real layers
    def _layer(self, call: Call) -> None:
        refs = self._refs(call)
        if not refs:
            return
        if any(r.index in self.bad for r in refs):
            return self._defer(call, self.bad[next(r.index for r in refs if r.index in self.bad)])
        inputs = [self._resolve(r, call.name) for r in refs]
        out = call.value
        if not isinstance(out, torch.Tensor):
            raise ModelError(
                f"unsupported operation {call.op!r} {self._where(call)}: it returns several tensors"
            )
        src = self.by_name[inputs[0]]
        if call.kind == "identity" and len(inputs) == 1:
            self.of_ref[Ref(call.index)] = inputs[0]  # nn.Identity: no layer
            return
        rank = out.dim() - 1
        if rank == 2:
            return self._defer(
                call,
                f"unsupported tensor of shape {tuple(out.shape)} {self._where(call)}: "
                "cnnvis_gl analyses feature maps (batch, channels, height, width) and vectors; "
                "token sequences (transformers) are not supported",
            )
        if rank not in (1, 3):
            return self._defer(
                call, f"unsupported tensor of shape {tuple(out.shape)} {self._where(call)}"
            )
        last = rank == 3 and self._channels_last(call, src, rank)
        shape = list(out.shape[1:])
        if last:
            shape = [shape[-1], *shape[:-1]]
        params = self._params(call, refs, inputs, shape, last)
        layer = Layer(
            call.name, call.kind, call.op, inputs, shape, params, channels_last=bool(last)
        )
        self._add(layer, Ref(call.index))
        if isinstance(call.target, nn.Module):
            self.traced.module_of[call.name] = call.target

    def _defer(self, call: Call, message: str) -> None:
        """A call that cannot be a layer: an error only if a layer reads it (not for control
        flow such as ``if x.mean() > 0``)."""
        self.bad[call.index] = message

    def _channels_last(self, call: Call, src: Layer, rank: int) -> bool:
        if call.kind in ("conv", "pool") or (call.kind == "norm" and call.op != "LayerNorm"):
            if call.op not in ("layer_norm", "mean", "amax"):
                if src.channels_last:
                    raise ModelError(f"{call.op} {self._where(call)} reads a channels-last tensor")
                return False
        if call.kind == "linear":
            if not src.channels_last and len(src.shape) == 3:
                raise ModelError(
                    f"Linear {self._where(call)} is applied over the width of a feature map; "
                    "only over channels (channels-last, or a vector) is supported"
                )
            return True
        return len(src.shape) == 3 and src.channels_last

    def _params(
        self, call: Call, refs: list[Ref], inputs: list[str], shape: list[int], last: bool
    ) -> dict[str, Any]:
        kind, m = call.kind, call.target
        tens: dict[str, Any] = {}
        params: dict[str, Any] = {}
        if kind == "conv":
            if isinstance(m, nn.Conv2d):
                w, stride, pad, dil, groups = m.weight, m.stride, m.padding, m.dilation, m.groups
            else:
                w = _arg(call, 1, "weight")
                stride, pad = _arg(call, 3, "stride", 1), _arg(call, 4, "padding", 0)
                dil, groups = _arg(call, 5, "dilation", 1), _arg(call, 6, "groups", 1)
                tens["weight"] = w
            k = list(w.shape[2:])
            d = _pair(dil)
            if isinstance(pad, str):
                pad = [0, 0] if pad == "valid" else [d[i] * (k[i] - 1) // 2 for i in range(2)]
            params = {
                "kernel": [int(v) for v in k],
                "stride": _pair(stride),
                "padding": _pair(pad),
                "dilation": d,
                "groups": int(groups),
            }
        elif kind == "linear" and not isinstance(m, nn.Linear):
            tens["weight"] = _arg(call, 1, "weight")
        elif kind == "pool":
            params = self._pool_params(call, shape)
        elif kind == "norm" and not isinstance(m, nn.Module):
            if call.op == "batch_norm":
                tens = {
                    "weight": _arg(call, 3, "weight"),
                    "running_var": _arg(call, 2, "running_var"),
                }
                tens["eps"] = _arg(call, 7, "eps", 1e-5)
            else:
                pos = {"layer_norm": 2, "group_norm": 2, "instance_norm": 3}.get(call.op, 2)
                tens = {"weight": _arg(call, pos, "weight")}
        elif kind in ("add", "mul"):
            params, tens = self._arith(call, refs, inputs, shape)
        if tens:
            self.traced.tensors_of[call.name] = tens
        return params

    def _pool_params(self, call: Call, shape: list[int]) -> dict[str, Any]:
        m = call.target
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) or call.op.startswith(
            "adaptive"
        ):
            return {"adaptive": True}
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = m.kernel_size, m.stride, m.padding
            d = getattr(m, "dilation", 1)
        elif call.op in ("max_pool2d", "avg_pool2d"):
            k = _arg(call, 1, "kernel_size")
            s = _arg(call, 2, "stride") or k
            p = _arg(call, 3, "padding", 0)
            d = _arg(call, 4, "dilation", 1) if call.op == "max_pool2d" else 1
        else:  # mean / amax over dimensions
            x = self._value(self._refs(call)[0])
            dims = _arg(call, 1, "dim")
            dims = [dims] if isinstance(dims, int) else list(dims or [])
            dims = sorted(d % x.dim() for d in dims)
            src_last = self.by_name[self._resolve(self._refs(call)[0], call.name)].channels_last
            spatial = [1, 2] if src_last else [2, 3]
            if x.dim() != 4 or dims != spatial:
                raise ModelError(
                    f"{call.op} over dimensions {dims} {self._where(call)}: only the spatial "
                    "mean/max of a feature map (global pooling) is supported"
                )
            return {"global": True}
        s = s if s is not None else k
        return {"kernel": _pair(k), "stride": _pair(s), "padding": _pair(p), "dilation": _pair(d)}

    def _arith(
        self, call: Call, refs: list[Ref], inputs: list[str], shape: list[int]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """add / sub / mul / div: which inputs carry the channels, with what sign or scale."""
        out_shape = tuple(call.value.shape)
        args = list(call.args)
        consts = [
            a for a in args if not isinstance(a, Ref) or self.calls[a.index].kind == "constant"
        ]
        const = None
        for a in consts:
            v = self.calls[a.index].value if isinstance(a, Ref) else a
            if isinstance(v, (torch.Tensor, int, float)):
                const = v
        full = [r for r in refs if tuple(self._value(r).shape) == out_shape]
        if call.kind == "add":
            signs = [1.0] * len(inputs)
            if call.op in ("sub", "rsub") and len(args) >= 2:
                neg = 0 if call.op == "rsub" else 1
                if isinstance(args[neg], Ref) and args[neg] in refs:
                    signs[refs.index(args[neg])] = -1.0
            return {"signs": signs}, {}
        # mul / div
        if call.op == "div" and (len(args) < 2 or isinstance(args[1], Ref) and args[1] in refs):
            raise ModelError(f"division by a feature map {self._where(call)} is not supported")
        if len(full) > 1:  # x * gate(x): the gate is not a carrier
            gates = [r for r in full if self.by_name[inputs[refs.index(r)]].op in _GATES]
            if 0 < len(gates) < len(full):
                full = [r for r in full if r not in gates]
        if not full:
            raise ModelError(f"{call.op} {self._where(call)}: no input has the shape of its output")
        carriers = [refs.index(r) for r in full]
        tens: dict[str, Any] = {}
        if const is not None and len(refs) == 1:
            tens["scale"] = 1.0 / const if call.op == "div" else const
        return {"carriers": carriers}, tens

    # ------------------------------------------------------------------ data movement
    def _base(self, ref: Ref, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Provenance (P, Q) of a layer's output tensor, shaped like it."""
        layer = self.by_name[self._resolve(ref, name)]
        x = self._value(ref)
        dev = x.device
        base = self.number[layer.name] << _ID_BITS
        c = layer.shape[0]
        ch = torch.arange(c, device=dev, dtype=torch.int64) + base
        if len(layer.shape) == 1:
            p, q = ch.view(1, c), torch.zeros(1, c, dtype=torch.int64, device=dev)
        else:
            h, w = layer.shape[1:]
            pos = torch.arange(h * w, device=dev, dtype=torch.int64).view(1, h, w)
            p, q = ch.view(c, 1, 1).expand(c, h, w), pos.expand(c, h, w)
            if layer.channels_last:
                p, q = p.permute(1, 2, 0), q.permute(1, 2, 0)
            p, q = p.unsqueeze(0), q.unsqueeze(0)
        return p.contiguous(), q.contiguous()

    def _prov_of(self, ref: Ref, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        call = self.calls[ref.index]
        if call.kind == "layout" and ref not in self.of_ref:
            p, q = self.prov[ref.index]
            return pick(p, ref.item), pick(q, ref.item)
        if call.kind == "unknown":
            self._resolve(ref, name)  # raises
        if call.kind == "constant":
            v = self._value(ref)
            return torch.full(v.shape, -1, dtype=torch.int64, device=v.device), torch.full(
                v.shape, -1, dtype=torch.int64, device=v.device
            )
        return self._base(ref, name)

    def _provenance(self, call: Call) -> None:
        refs = self._refs_all(call)
        if not refs:
            return
        if call.op in NO_MOVE:
            p, q = self._prov_of(refs[0], call.name)
            if isinstance(p, torch.Tensor):
                p, q = p.contiguous(), q.contiguous()
            self.prov[call.index] = (p, q)
            return
        pq = {r: self._prov_of(r, call.name) for r in refs}
        outs = []
        for k in range(2):
            sub = lambda o, k=k: _subst(o, pq, k)  # noqa: E731
            args, kwargs = sub(call.args), sub(call.kwargs)
            fn = call.target
            try:
                with torch.no_grad():
                    outs.append(fn(*args, **kwargs))
            except Exception as e:
                raise ModelError(
                    f"cannot follow {call.op} {self._where(call)}: {type(e).__name__}: {e}"
                ) from e
        self.prov[call.index] = (outs[0], outs[1])

    def _refs_all(self, call: Call) -> list[Ref]:
        out: list[Ref] = []

        def walk(o: Any) -> None:
            if isinstance(o, Ref):
                out.append(o)
            elif isinstance(o, (list, tuple)):
                for x in o:
                    walk(x)
            elif isinstance(o, dict):
                for x in o.values():
                    walk(x)

        walk((call.args, call.kwargs))
        return out

    def _materialise(self, call: Call, ref: Ref) -> str:
        p, q = self.prov[ref.index]
        p, q = pick(p, ref.item), pick(q, ref.item)
        name = call.name + "".join(f".{k}" for k in ref.item)
        if (p < 0).any():
            raise ModelError(
                f"{call.op} {self._where(call)} mixes a constant tensor into the feature maps "
                "(e.g. a class token): not supported"
            )
        ids = p[0]
        layer_no, chan = ids >> _ID_BITS, ids & ((1 << _ID_BITS) - 1)
        names = {v: k for k, v in self.number.items()}
        rank = ids.dim()
        if rank == 1:
            srcs, pos, ch = _sources(layer_no, chan, names)
            src0 = self.by_name[srcs[0]]
            if len(srcs) == 1 and len(src0.shape) == 1 and _is_arange(ch, src0.shape[0]):
                self.of_ref[ref] = srcs[0]
                return srcs[0]
            kind = (
                "flatten"
                if any(len(self.by_name[s].shape) == 3 for s in srcs)
                else ("cat" if len(srcs) > 1 else "select")
            )
            layer = Layer(
                name, kind, call.op, srcs, [int(ids.shape[0])], {"map": encode_map(pos, ch)}
            )
            self._add(layer, ref)
            return name
        if rank != 3:
            tokens = (
                " (token sequences, as in transformers, are not supported)" if rank == 2 else ""
            )
            raise ModelError(
                f"unsupported reshape {self._where(call)}: a tensor of shape {tuple(ids.shape)} "
                f"reaches a layer{tokens}; channel concatenation, slicing, splitting and shuffling, "
                "permutes to channels-last and flattening are supported"
            )
        grid = q[0]
        for last in (False, True):
            a = ids.permute(2, 0, 1) if last else ids
            g = grid.permute(2, 0, 1) if last else grid
            c, h, w = a.shape
            if not (a == a[:, :1, :1]).all():
                continue
            if not (g == torch.arange(h * w, device=g.device).view(1, h, w)).all():
                continue
            chan_ids = a[:, 0, 0]
            srcs, pos, ch = _sources(chan_ids >> _ID_BITS, chan_ids & ((1 << _ID_BITS) - 1), names)
            src0 = self.by_name[srcs[0]]
            same = len(srcs) == 1 and src0.shape == [c, h, w] and _is_arange(ch, c)
            if same and src0.channels_last == last:
                self.of_ref[ref] = srcs[0]
                return srcs[0]
            kind = "identity" if same else ("cat" if len(srcs) > 1 else "select")
            params = {} if same else {"map": encode_map(pos, ch)}
            layer = Layer(name, kind, call.op, srcs, [c, h, w], params, channels_last=last)
            self._add(layer, ref)
            return name
        raise ModelError(
            f"unsupported reshape {self._where(call)}: it moves values across positions or mixes "
            "channels with space; channel concatenation, slicing, splitting and shuffling, "
            "permutes to channels-last and flattening are supported"
        )


def _is_arange(ch: torch.Tensor, n: int) -> bool:
    return ch.numel() == n and bool((ch == torch.arange(n, device=ch.device)).all())


def _sources(
    layer_no: torch.Tensor, chan: torch.Tensor, names: dict[int, str]
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Source layer names in order of first appearance, and per element (source pos, channel)."""
    flat = layer_no.flatten().tolist()
    order = list(dict.fromkeys(flat))
    lookup = {v: k for k, v in enumerate(order)}
    pos = torch.tensor([lookup[v] for v in flat], dtype=torch.int64)
    return [names[v] for v in order], pos, chan.flatten().cpu()


def _subst(obj: Any, pq: dict[Ref, tuple[Any, Any]], k: int) -> Any:
    if isinstance(obj, Ref):
        return pq[obj][k]
    if isinstance(obj, torch.Tensor):  # a parameter or buffer: a constant
        return torch.full(obj.shape, -1, dtype=torch.int64, device=obj.device)
    if isinstance(obj, tuple):
        return tuple(_subst(o, pq, k) for o in obj)
    if isinstance(obj, list):
        return [_subst(o, pq, k) for o in obj]
    if isinstance(obj, dict):
        return {key: _subst(v, pq, k) for key, v in obj.items()}
    return obj


__all__ = ["TracedModel", "build_graph", "decode_map", "trace_model"]
