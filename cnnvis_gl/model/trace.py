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
from . import movement
from .capture import Call, Recording, Ref, pick, record_calls
from .graph import Layer, NeuronGraph, assemble, decode_map

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
    # calls a forward hook can find: index -> (module, earlier calls, calls per pass)
    module_taps: dict[int, tuple[nn.Module, int, int]] = field(default_factory=dict)

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


def _dims(call: Call, rank: int) -> list[int]:
    """The dimensions a reduction (``x.mean(dim)``) reduces, non-negative for ``rank``."""
    d = _arg(call, 1, "dim")
    return sorted(v % rank for v in ([d] if isinstance(d, int) else list(d or [])))


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
            elif call.kind == "layout" and call.refs():
                inputs = {r: self._prov_of(r, call.name) for r in call.refs()}
                self.prov[call.index] = movement.run(call, inputs)
                if self._is_boundary(call, readers.get(call.index, [])):
                    self._resolve(Ref(call.index), call.name)
            elif call.kind not in ("constant", "unknown"):
                self._layer(call)
        self._resolve(self.rec.output, self.calls[self.rec.output.index].name)
        self.traced.graph = assemble(self.layers, self.input_shape, capture="forward")
        self.traced.recording_calls = self.rec.count
        self.traced.module_taps = self.rec.module_taps()
        return self.traced

    def _is_boundary(self, call: Call, readers: list[Call]) -> bool:
        """Whether a data-movement result is a layer of its own at once: a layer reads it, or it
        joins several sources and is then split again (a ShuffleNet block's output)."""
        p = self.prov[call.index][0]
        if not isinstance(p, torch.Tensor) or p.dim() - 1 not in (1, 3):
            return False
        if any(r.kind not in ("layout", "constant", "unknown") for r in readers):
            return True
        return any(r.op in movement.SPLITS for r in readers) and movement.joins_several(p)

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
        """The non-constant call outputs ``call`` reads."""
        return [r for r in call.refs() if self.calls[r.index].kind != "constant"]

    def _value(self, ref: Ref) -> torch.Tensor:
        return pick(self.calls[ref.index].value, ref.item)

    # ------------------------------------------------------------------ real layers
    def _layer(self, call: Call) -> None:
        refs = self._refs(call)
        if not refs:
            return
        src = self._pooled_map(call, refs)
        if src is not None:  # x.view(b, c, -1).mean(2), x.mean(3).mean(2): global pooling
            pool = Layer(
                call.name, "pool", call.op, [src], [self.by_name[src].shape[0]], {"global": True}
            )
            self._add(pool, Ref(call.index))
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

    def _pooled_map(self, call: Call, refs: list[Ref]) -> str | None:
        """The channels-first map whose global pooling ``call`` is, when it reduces the last
        axis of a (batch, channels, positions) tensor that is the map with its positions
        flattened (``x.view(b, c, -1).mean(2)``) or with one spatial axis reduced the same way
        already (``x.mean(3).mean(2)``); ``None`` otherwise."""
        if call.kind != "pool" or call.op not in ("mean", "amax", "sum") or len(refs) != 1:
            return None
        if self._value(refs[0]).dim() != 3 or call.value.dim() != 2 or _dims(call, 3) != [2]:
            return None
        prev = self.calls[refs[0].index]
        if prev.kind == "pool" and prev.op == call.op:  # one spatial axis reduced before
            before = self._refs(prev)
            if len(before) != 1 or self._value(before[0]).dim() != 4 or _dims(prev, 4) not in (
                [2],
                [3],
            ):
                return None
            name = self._resolve(before[0], call.name)
        elif prev.kind == "layout" and refs[0].index in self.prov:  # the positions flattened
            p, q = (pick(t, refs[0].item) for t in self.prov[refs[0].index])
            ids, pos = p[0], q[0]  # [channels, positions]
            if (ids < 0).any() or not (ids == ids[:, :1]).all():
                return None
            numbers = torch.unique(ids >> movement.ID_BITS)
            if numbers.numel() != 1:
                return None
            name = next(k for k, v in self.number.items() if v == int(numbers[0]))
            shape = self.by_name[name].shape
            ch = ids[:, 0] & ((1 << movement.ID_BITS) - 1)
            every = torch.arange(pos.shape[1], device=pos.device)
            if (
                len(shape) != 3
                or shape[0] != ids.shape[0]
                or shape[1] * shape[2] != pos.shape[1]
                or not (ch == torch.arange(shape[0], device=ch.device)).all()
                or not (pos.sort(dim=1).values == every).all()
            ):
                return None
        else:
            return None
        layer = self.by_name[name]
        return name if len(layer.shape) == 3 and not layer.channels_last else None

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
        elif isinstance(m, nn.Upsample) or call.op.startswith(("interpolate", "upsample")):
            x = self._value(self._refs(call)[0])
            if isinstance(m, nn.Upsample):
                mode = m.mode
            else:
                mode = _arg(call, 3, "mode", "bilinear" if "bilinear" in call.op else "nearest")
            # output / input size per axis; a smooth mode blends neighbouring input pixels
            factor = [shape[1] / x.shape[-2], shape[2] / x.shape[-1]]
            return {"upsample": factor, "smooth": not str(mode).startswith("nearest")}
        elif call.op in ("max_pool2d", "avg_pool2d"):
            k = _arg(call, 1, "kernel_size")
            s = _arg(call, 2, "stride") or k
            p = _arg(call, 3, "padding", 0)
            d = _arg(call, 4, "dilation", 1) if call.op == "max_pool2d" else 1
        else:  # mean / amax over dimensions
            x = self._value(self._refs(call)[0])
            dims = _dims(call, x.dim())
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
        args = list(call.args)
        consts = [
            a for a in args if not isinstance(a, Ref) or self.calls[a.index].kind == "constant"
        ]
        const = None
        for a in consts:
            v = self.calls[a.index].value if isinstance(a, Ref) else a
            if isinstance(v, (torch.Tensor, int, float)):
                const = v
        # (by the inputs' layers: a broadcast gate.expand_as(x) is its gate's shape)
        full = [r for k, r in enumerate(refs) if self.by_name[inputs[k]].shape == shape]
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
    def _prov_of(self, ref: Ref, name: str) -> movement.Prov:
        call = self.calls[ref.index]
        if call.kind == "layout" and ref not in self.of_ref:
            p, q = self.prov[ref.index]
            return pick(p, ref.item), pick(q, ref.item)
        if call.kind == "constant":
            v = self._value(ref)
            return movement.constant(v), movement.constant(v)
        layer = self.by_name[self._resolve(ref, name)]  # raises for unknown calls
        dev = self._value(ref).device
        return movement.base(self.number[layer.name], layer.shape, layer.channels_last, dev)

    def _materialise(self, call: Call, ref: Ref) -> str:
        p, q = self.prov[ref.index]
        names = {v: k for k, v in self.number.items()}
        shapes = {
            n: (self.by_name[k].shape, self.by_name[k].channels_last)
            for k, n in self.number.items()
        }
        m = movement.classify(pick(p, ref.item), pick(q, ref.item), shapes, self._where(call))
        sources = [names[n] for n in m.sources]
        if m.kind == "alias":
            self.of_ref[ref] = sources[0]
            return sources[0]
        name = call.name + "".join(f".{k}" for k in ref.item)
        params = {"map": m.map, **m.window} if m.map else dict(m.window)
        self._add(
            Layer(name, m.kind, call.op, sources, m.shape, params, channels_last=m.channels_last),
            ref,
        )
        return name


__all__ = ["TracedModel", "build_graph", "decode_map", "trace_model"]
