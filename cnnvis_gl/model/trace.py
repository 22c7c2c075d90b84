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

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from . import movement
from .capture import (
    CAPTURE_BATCH,
    PRODUCTS,
    Call,
    Computed,
    Recording,
    Ref,
    live,
    pick,
    record_calls,
    unwrap,
)
from .graph import Layer, NeuronGraph, assemble, decode_map, encode_map
from .params import (
    GATES,
    NORMS,
    arg,
    band_matrix,
    layer_params,
    pair,
    param,
    per_sample,
    reduced,
    where,
)

_MATMULS = ("matmul", "bmm", "einsum", "scaled_dot_product_attention")


def _batch_axis(params: dict[str, Any]) -> tuple[bool, bool]:
    """(sequence first, batch flattened into the positions) of a layer's tokens."""
    return bool(params.get("seq_first")), bool(params.get("batch_flat"))


def _einsum_parts(call: Call) -> tuple[str, str, str, list[Any]] | None:
    """(x, y, z, operands) of a two-operand einsum ``'x,y->z'`` (spaces dropped), or None."""
    eq, *ops = call.args
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = list(ops[0])
    if not isinstance(eq, str) or len(ops) != 2 or "->" not in eq or "." in eq:
        return None
    lhs, z = eq.replace(" ", "").split("->", 1)
    if lhs.count(",") != 1:
        return None
    x, y = lhs.split(",")
    return x, y, z, ops


def _matmul_operands(call: Call) -> tuple[Any, Any]:
    """(a, b) of a call computing ``a @ b``: a matmul's, or an einsum's written as one (the
    leading indices shared, ``…ij,…jk->…ik``); (None, None) for another einsum."""
    if call.op != "einsum":
        return (call.args + (None, None))[:2]
    parts = _einsum_parts(call)
    if parts is None:
        return None, None
    x, y, z, ops = parts
    n = len(z)
    if not (len(x) == len(y) == n >= 3 and x[:-2] == y[:-2] == z[:-2]):
        return None, None
    if x[-1] != y[-2] or z[-2:] != x[-2] + y[-1] or x[-1] in z:
        return None, None
    return ops[0], ops[1]


def _pooling_einsum(call: Call) -> tuple[Any, Any]:
    """(w, x) of an einsum weighing tokens ``x`` by one weight per position and summing them,
    ``'bn,bnd->bd'`` (the leading indices shared: lucidrains' CCT sequence pooling);
    (None, None) otherwise."""
    parts = _einsum_parts(call) if call.op == "einsum" else None
    if parts is None:
        return None, None
    x, y, z, ops = parts
    if not (len(y) == len(x) + 1 == len(z) + 1 >= 3 and x[:-1] == y[:-2] == z[:-1]):
        return None, None
    if x[-1] != y[-2] or z[-1] != y[-1] or x[-1] in z:
        return None, None
    return ops[0], ops[1]


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
        """The weight tensor of a weighted layer (a module's, or a functional call's argument),
        in float32 (the parameter itself where it is float32)."""
        module = self.module_of.get(name)
        w = module.weight if module is not None else self.tensor(name, "weight")
        if w is not None and self.graph.layer(name).params.get("per_sample"):
            # one image's kernels (the capture's images are all alike: zeros)
            w = w.reshape(CAPTURE_BATCH, -1, *w.shape[1:]).mean(0)
        return w if w is None else w.float()

    def tensor(self, name: str, key: str) -> Any:
        """A tensor argument of layer ``name``'s call (``weight``, ``scale``, …) as the model
        has it now, or ``None``."""
        return live(self.tensors_of.get(name, {}).get(key))

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))


def build_graph(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> NeuronGraph:
    """The :class:`NeuronGraph` of ``model`` for inputs of ``input_shape`` (C, H, W)."""
    return trace_model(model, input_shape).graph


def trace_model(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> TracedModel:
    """Capture ``model`` from one forward pass on zeros of ``input_shape`` (C, H, W)."""
    model = unwrap(model)
    rec = record_calls(model, tuple(int(s) for s in input_shape))
    return _Builder(model, rec, list(input_shape)).build()


class _Movement:
    """The builder's state and its data movement: which call output holds which layer,
    the provenance of the results of data-movement calls and their layers (docs/GRAPH.md),
    and the calls that are no layers (deferred errors)."""

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
        self.through: set[int] = set()  # products passing their carrier's data movement on
        self.left_out: list[str] = []  # gate branches left out: "gate → product"
        self.prune = False  # keep only the layers the output depends on (see _reaching)
        self.traced = TracedModel(
            graph=None,  # type: ignore[arg-type]
            model=model,
            recording_calls=0,
            call_of={},
        )

    def _add(self, layer: Layer, ref: Ref, holds: bool = True) -> None:
        """Add ``layer``, measured at ``ref``; ``holds``: ``ref``'s value is the layer's (not
        for a layer read through another arrangement: an attention's values)."""
        self.layers.append(layer)
        self.by_name[layer.name] = layer
        self.number[layer.name] = len(self.number) + 1
        if holds:
            self.of_ref[ref] = layer.name
        self.traced.call_of[layer.name] = ref

    def _resolve(self, ref: Ref, name: str) -> str:
        """The layer holding call output ``ref`` (materialising a data-movement result)."""
        if ref in self.of_ref:
            return self.of_ref[ref]
        if ref.index in self.bad:
            raise ModelError(self.bad[ref.index])
        call = self.calls[ref.index]
        if call.index in self.through:
            return self._materialise(call, ref)
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

    def _defer(self, call: Call, message: str) -> None:
        """A call that cannot be a layer: an error only if a layer reads it (not for control
        flow such as ``if x.mean() > 0``)."""
        self.bad[call.index] = message

    def _movement(self, call: Call, readers: list[Call]) -> None:
        """A data-movement call: its provenance, and its layer at once where it is one."""
        bad = [r for r in call.refs() if self._unreadable(r)]
        if bad:
            return self._defer(call, self.bad[bad[0].index])
        try:
            inputs = {r: self._prov_of(r, call.name) for r in call.refs()}
        except ModelError as e:
            return self._defer(call, str(e))
        self.prov[call.index] = movement.run(call, inputs)
        if _stacks_batches(call):  # (its K rows would pass for images where K is the batch)
            return self._defer(
                call,
                f"unsupported stack {where(call)}: maps stacked before the batch axis are "
                "supported where they are averaged or summed over that axis (gated or not)",
            )
        if self._is_boundary(call, readers):
            try:
                self._resolve(Ref(call.index), call.name)
            except ModelError as e:  # (its provenance stays: a later movement may undo it)
                self._defer(call, str(e))

    def _unreadable(self, ref: Ref) -> bool:
        """Whether ``ref`` is the output of a call that is no layer and has no provenance."""
        return ref.index in self.bad and ref.index not in self.prov

    def _is_layout(self, call: Call) -> bool:
        """Whether ``call`` moves data: a layout call, or a product passing its carrier's
        movement on (its gate left out)."""
        return call.kind == "layout" or call.index in self.through

    def _is_boundary(self, call: Call, readers: list[Call]) -> bool:
        """Whether a data-movement result is a layer of its own at once: a layer reads it, or it
        joins several sources and is then split again (a ShuffleNet block's output)."""
        p = self.prov[call.index][0]
        if not isinstance(p, torch.Tensor) or _stacks_batches(call):
            return False
        if p.dim() - 1 not in (1, 3, 4) and not movement.is_row(p):
            return False
        # (a matmul reads its operands itself: a flattened map, attention weights)
        if any(r.kind not in ("layout", "constant", "unknown")
               and (r.op not in _MATMULS or r.kind == "linear") for r in readers):  # fmt: skip
            return True
        if not movement.joins_several(p):
            return False
        if any(r.op in movement.SPLITS for r in readers):
            return True
        # a block's output split again after reshapes: megvii's ShuffleNetV2 returns the
        # concatenation, and the next block shuffles it with a reshape mixing the batch into
        # the channels, a permute and a reshape before taking x[0], x[1]
        return call.index in self.rec.outputs and self._split_later(readers)

    def _split_later(self, readers: list[Call]) -> bool:
        """Whether data-movement calls alone lead from ``readers`` to a split."""
        todo, seen = list(readers), set()
        while todo:
            r = todo.pop()
            if r.kind != "layout" or r.index in seen:
                continue
            if r.op in movement.SPLITS:
                return True
            seen.add(r.index)
            todo.extend(self.readers.get(r.index, []))
        return False

    def _prov_of(self, ref: Ref, name: str) -> movement.Prov:
        call = self.calls[ref.index]
        if self._is_layout(call) and ref not in self.of_ref:
            p, q = self.prov[ref.index]
            return pick(p, ref.item), pick(q, ref.item)
        if call.kind == "constant":
            v = self._value(ref)
            return movement.constant(v), movement.constant(v)
        layer = self.by_name[self._resolve(ref, name)]  # raises for unknown calls
        dev = self._value(ref).device
        p, q = movement.base(
            self.number[layer.name], layer.shape, layer.channels_last, dev, layer.params.get("view")
        )
        if layer.params.get("seq_first"):  # (tokens sequence first: (positions, batch, C))
            p, q = p.transpose(0, 1), q.transpose(0, 1)
        if layer.params.get("batch_flat"):  # (tokens, the batch flattened in: (B·H·W, C))
            p, q = p.flatten(0, 1), q.flatten(0, 1)
        if self._folded(layer, ref):  # as the per-sample convolution returns it: (1, B·C, …)
            p, q = (t.reshape(1, -1, *t.shape[2:]) for t in (p, q))
        return p, q

    def _folded(self, layer: Layer, ref: Ref) -> bool:
        """Whether ``ref`` is the output of a per-sample convolution as it returns it, the batch
        folded into the channels."""
        return bool(layer.params.get("per_sample")) and self.traced.call_of[layer.name] == ref

    def _materialise(self, call: Call, ref: Ref, fold: bool = False) -> str:
        """The layer of data-movement result ``ref``; ``fold``: read as the images folded into
        the channels of one (the input of a per-sample convolution)."""
        p, q = (pick(t, ref.item) for t in self.prov[ref.index])
        if fold:
            p, q = (t.reshape(CAPTURE_BATCH, -1, *t.shape[2:]) for t in (p, q))
        names = {v: k for k, v in self.number.items()}
        shapes = {
            n: (lay.shape, lay.channels_last, lay.params.get("view", []))
            for n, lay in ((n, self.by_name[k]) for k, n in self.number.items())
        }
        seq, flat = movement.sequence_first(p, q), movement.batch_flattened(p, q)
        if seq:  # (tokens sequence first, as torch's transformer modules take them by default)
            p, q = p.transpose(0, 1), q.transpose(0, 1)
        if flat:  # (tokens with the batch flattened in, as LeViT normalises them)
            p, q = p.reshape(CAPTURE_BATCH, flat, -1), q.reshape(CAPTURE_BATCH, flat, -1)
        m = movement.classify(p, q, shapes, where(call))
        sources = [names[n] for n in m.sources]
        if m.kind == "alias":
            src = self.by_name[sources[0]]
            if _batch_axis(src.params) == (seq, bool(flat)):
                if not fold:
                    self.of_ref[ref] = sources[0]
                return sources[0]
            view = src.params.get("view", [])  # (the same tokens, the batch moved)
            m = movement.Movement("identity", m.sources, list(src.shape), src.channels_last, view=view)
        name = call.name + "".join(f".{k}" for k in ref.item)
        params = {"map": m.map, **m.window} if m.map else dict(m.window)
        if m.view:
            params["view"] = m.view
        if seq:
            params["seq_first"] = True
        if flat:
            params["batch_flat"] = True
        self._add(
            Layer(name, m.kind, call.op, sources, m.shape, params, channels_last=m.channels_last),
            ref,
        )
        return name

    def _pass_through(self, call: Call, refs: list[Ref]) -> bool:
        """A product whose gates were left out and whose one carrier is a data movement that is
        no map (triplet attention's ``x.permute(0, 2, 1, 3) * gate``): the product moves the
        carrier's data on, as the movement would, so that the movement undoing it (the permute
        back) is a map again.  True when ``call`` is one."""
        if len(refs) != 1 or not self._is_layout(self.calls[refs[0].index]):
            return False
        if refs[0].index not in self.prov or self._value(refs[0]).shape != call.value.shape:
            return False
        self.prov[call.index] = self._prov_of(refs[0], call.name)
        self.through.add(call.index)
        return True


class _Pools(_Movement):
    """Reductions and attention that pool a map: global pools written by hand, joins of
    branches stacked before the batch, attention pooling and mixing (docs/GRAPH.md)."""

    def _branch_mean(self, call: Call, refs: list[Ref]) -> bool:
        """``torch.stack(branches).mean(0)`` (FractalNet's join): the mean (or sum) of maps of
        one shape stacked before the batch axis — an add layer of the branches, each weighted
        1/K (1 for a sum).  Gated first, ``(softmax(torch.stack(gates), 0) * stack).sum(0)``
        (selective kernels as External-Attention-pytorch writes them): the product passed the
        stack on, its gates (no maps) left out.  True when ``call`` is one and its layer was
        added."""
        if call.kind != "pool" or call.op not in ("mean", "sum") or len(refs) != 1:
            return False
        made = self.calls[refs[0].index]
        if made.index in self.through:
            stacks = [r for r in self._refs(made) if _stacks_batches(self.calls[r.index])]
            if len(stacks) == 1:
                made = self.calls[stacks[0].index]
        if not _stacks_batches(made) or refs[0].item or reduced(call, made.value.dim()) != [0]:
            return False
        parts = arg(made, 0, "tensors")
        if not all(isinstance(r, Ref) and self.calls[r.index].kind != "constant" for r in parts):
            raise ModelError(f"{call.op} {where(call)}: a stack of constants is not supported")
        inputs = [self._resolve(r, call.name) for r in parts]
        srcs = [self.by_name[n] for n in inputs]
        if len({(tuple(l.shape), l.channels_last) for l in srcs}) != 1:
            raise ModelError(f"{call.op} {where(call)}: the stacked maps differ in shape")
        k = len(inputs)
        signs = [1.0 / k if call.op == "mean" else 1.0] * k
        layer = Layer(
            call.name, "add", call.op, inputs, list(srcs[0].shape), {"signs": signs},
            channels_last=srcs[0].channels_last,
        )  # fmt: skip
        self._add(layer, Ref(call.index))
        return True

    def _pooled_map(self, call: Call, refs: list[Ref]) -> str | None:
        """The channels-first map whose global pooling ``call`` is, when it reduces the last
        axis of a (batch, channels, positions) tensor that is the map with its positions
        flattened (``x.view(b, c, -1).mean(2)``) or with one spatial axis reduced the same way
        already (``x.mean(3).mean(2)``), or pools it to one position
        (``nn.AdaptiveAvgPool1d(1)``: FocalNet's head); ``None`` otherwise."""
        if call.op in _POOLS_1D and len(refs) == 1 and self._value(refs[0]).dim() == 3:
            m = call.target
            size = m.output_size if isinstance(m, nn.Module) else arg(call, 1, "output_size")
            return self._flattened_map(refs[0]) if size in (1, (1,), [1]) else None
        if call.kind != "pool" or call.op not in _REDUCTIONS or len(refs) != 1:
            return None
        out = call.value[0] if isinstance(call.value, tuple) else call.value  # (max: values)
        if self._value(refs[0]).dim() == 4 and out.dim() == 4:  # keepdim=True, axis by axis
            return self._pooled_in_steps(call, refs[0])
        if self._value(refs[0]).dim() != 3 or out.dim() not in (2, 3):
            return None
        axes = reduced(call, 3)
        if axes in ([0], [1]):  # the positions of tokens (VAN's x.mean(dim=1); keepdim:
            name = self._resolve(refs[0], call.name)  # MobileViTv2's context, (b, 1, c))
            layer = self.by_name[name]
            tokens = layer.channels_last and layer.params.get("view")
            first = bool(layer.params.get("seq_first"))  # (sequence first: x.mean(0))
            return name if tokens and axes == [0 if first else 1] else None
        if reduced(call, 3) != [2] or out.dim() != 2:
            return None
        prev = self.calls[refs[0].index]
        if prev.kind == "pool" and prev.op == call.op:  # one spatial axis reduced before
            before = self._refs(prev)
            if len(before) != 1 or self._value(before[0]).dim() != 4 or reduced(prev, 4) not in (
                [2],
                [3],
            ):
                return None
            name = self._resolve(before[0], call.name)
        else:
            return self._flattened_map(refs[0])
        layer = self.by_name[name]
        return name if len(layer.shape) == 3 and not layer.channels_last else None

    def _pooled_in_steps(self, call: Call, ref: Ref) -> str | None:
        """The map whose two spatial axes ``call`` and the reduction before it reduce one after
        the other, each with ``keepdim=True`` (FocalNet's ``ctx.mean(2, keepdim=True).mean(3,
        keepdim=True)``), or None."""
        prev, axes = self.calls[ref.index], reduced(call, 4)
        if prev.kind != "pool" or prev.op != call.op or axes not in ([2], [3]):
            return None
        before = self._refs(prev)
        if len(before) != 1 or self._value(before[0]).dim() != 4:
            return None
        if reduced(prev, 4) != [5 - axes[0]] or prev.value.dim() != 4:
            return None
        name = self._resolve(before[0], call.name)
        layer = self.by_name[name]
        return name if len(layer.shape) == 3 and not layer.channels_last else None

    def _attention_pool(self, call: Call) -> bool:
        """``x.view(b, c, h * w) @ softmax(a).view(b, h * w, 1)`` (GCNet's global context): a
        global pooling of ``x`` whose weights come from the data (the attention branch is its
        second input, like a gate); True when ``call`` is one and its layer was added."""
        a, b = (call.args + (None, None))[:2]
        if not isinstance(a, Ref) or not isinstance(b, Ref):
            return False
        va, vb = self._value(a), self._value(b)
        if va.dim() != vb.dim() or vb.shape[-1] != 1 or va.shape[-1] != vb.shape[-2]:
            return False
        name = self._flattened_map(a)
        if name is None:
            return False
        attn = self._resolve(b, call.name)
        c = self.by_name[name].shape[0]
        params = {"global": True, "view": list(call.value.shape[1:])}
        self._add(Layer(call.name, "pool", call.op, [name, attn], [c], params), Ref(call.index))
        return True

    def _attention_mix(self, call: Call) -> bool:
        """An attention's weighted sum over the positions of a map's channels (``attention``
        from the data, once per query position): ``softmax(θᵀφ) @ g`` (a non-local block, or a
        transformer's ``softmax(q kᵀ) @ v``, ``g`` the map's tokens, its channels split in heads
        or not) or ``g @ softmax(qᵀk)ᵀ`` (``g`` the map flattened channels-first: BoTNet's,
        CoAtNet's).  A pooling that keeps the query positions, each seeing the whole image; the
        attention is left out, as a gate is (it weighs, it carries no channels).  True when
        ``call`` is one and its layer was added; also an ``einsum`` that is such a product
        (``'bhij,bhjd->bhid'``)."""
        a, b = _matmul_operands(call)
        w, x = _pooling_einsum(call)
        if isinstance(w, Ref) and isinstance(x, Ref):  # (one query: a weighted global pool)
            return self._mixed(call, x, w, last=True, one_query=True)
        if not isinstance(a, Ref) or not isinstance(b, Ref):
            return False
        va, vb, out = self._value(a), self._value(b), call.value
        if not isinstance(out, torch.Tensor) or va.dim() != vb.dim() or out.dim() != va.dim():
            return False
        if va.dim() < 3 or va.shape[-1] != vb.shape[-2]:
            return False
        # (tokens first: attention scores of one channel, softmax(a(x))ᵀ @ x as CCT pools its
        # tokens, also pass for a map flattened channels-first)
        if out.shape[-1] == vb.shape[-1] and self._mixed(call, b, a, last=True):
            return True
        return out.shape[:-1] == va.shape[:-1] and self._mixed(call, a, b, last=False)

    def _attention_sdpa(self, call: Call) -> bool:
        """``F.scaled_dot_product_attention(q, k, v)``: ``softmax(q kᵀ) @ v`` (timm's fused
        attention), ``v`` a map's tokens; True when its layer was added."""
        v = arg(call, 2, "value")
        q = arg(call, 0, "query")
        if not isinstance(v, Ref) or not isinstance(q, Ref):
            return False
        out = call.value
        if not isinstance(out, torch.Tensor) or out.shape[:-1] != self._value(q).shape[:-1]:
            return False
        return self._mixed(call, v, q, last=True)

    def _mixed(
        self, call: Call, g: Ref, attention: Ref, last: bool, one_query: bool = False
    ) -> bool:
        """Whether ``call`` mixes the channels of ``g`` over its positions with weights
        ``attention`` from the data; adds its layer if so.  ``last``: ``g`` holds tokens
        (batch, [heads,] positions, channels), else (batch, [heads,] channels, positions);
        ``one_query``: the output has no axis of query positions (``'bn,bnd->bd'``)."""
        if self.calls[attention.index].kind == "constant":
            return False  # (a fixed mixing of the positions is no attention)
        found = self._token_channels(g, last)
        out = call.value
        # (one query: a weighted global pooling, CCT's)
        n = 1 if one_query else int(out.shape[-2 if last else -1])
        query = [1, 1] if n == 1 else self._query_map(attention, n)
        if found is None or query is None:
            return False
        name, channels = found
        lead = out.shape[1:-1] if one_query else out.shape[1:-2]
        heads = math.prod(lead)  # (the values' own, or one set shared by all heads:
        if len(channels) * heads == out.shape[1:].numel() // n:  # multi-query attention)
            channels = channels * heads
        if len(channels) * n != out.shape[1:].numel():
            return False  # (grouped values: not supported)
        c = len(channels)
        layer = self.by_name[name]
        if channels != list(range(layer.shape[0])):  # (v: some of the qkv projection's channels)
            name = self._values_layer(call, g, layer, channels)
        # (its own arrangement: channels-last tokens, in heads (heads, positions, d) or not;
        # channels-first (heads, d, positions))
        params = {"attention": True, "view": [int(v) for v in out.shape[1:]]}
        lay = Layer(call.name, "pool", call.op, [name], [c, *query], params, channels_last=last)
        self._add(lay, Ref(call.index))
        self.left_out.append(f"{self.calls[attention.index].name} → {call.name}")
        return True

    def _token_channels(self, ref: Ref, last: bool) -> tuple[str, list[int]] | None:
        """(layer, channels) when ``ref`` holds channels of one map at every position in one
        order: (batch, [heads,] positions, channels) if ``last``, else (batch, [heads,]
        channels, positions), the channels in heads ``h·d + j``; None otherwise."""
        if self._is_layout(self.calls[ref.index]) and ref not in self.of_ref:
            if ref.index not in self.prov:
                return None  # (a data movement of values that are no layer's)
        try:
            p, q = self._prov_of(ref, self.calls[ref.index].name)
        except ModelError:
            return None
        if not movement.one_image_a_row(p, q):
            return None  # (heads or windows folded into the batch)
        ids, pos = p[0], q[0]
        while ids.dim() > 3 and ids.shape[0] == 1:
            ids, pos = ids[0], pos[0]
        if ids.dim() == 2:
            ids, pos = ids[None], pos[None]
        if ids.dim() != 3:
            return None
        if last:  # (heads, positions, d) -> (heads, d, positions)
            ids, pos = ids.transpose(1, 2), pos.transpose(1, 2)
        ids, pos = ids.flatten(0, 1), pos.flatten(0, 1)
        if (ids < 0).any() or not (ids == ids[:, :1]).all() or not (pos == pos[:1]).all():
            return None  # (not whole channels, each at the same positions in the same order)
        numbers = torch.unique(ids >> movement.ID_BITS)
        if numbers.numel() != 1:
            return None
        name = next(k for k, v in self.number.items() if v == int(numbers[0]))
        layer = self.by_name[name]
        every = torch.arange(pos.shape[1], device=pos.device)
        if math.prod(layer.shape[1:]) != pos.shape[1]:  # (a vector: one position)
            return None
        if not (pos[0].sort().values == every).all():
            return None
        return name, (ids[:, 0] & ((1 << movement.ID_BITS) - 1)).tolist()

    def _values_layer(self, call: Call, g: Ref, source: Layer, channels: list[int]) -> str:
        """A layer of ``channels`` of ``source`` (the values an attention reads from its qkv
        projection), not tapped: only its channels' identity is read."""
        name = f"{call.name}.values"
        shape = [len(channels), *source.shape[1:]]
        params = {"map": encode_map([0] * len(channels), channels)}
        self._add(Layer(name, "select", "getitem", [source.name], shape, params), g, holds=False)
        return name

    def _query_map(self, attention: Ref, n: int) -> list[int] | None:
        """(H, W) of the map whose ``n`` positions are an attention's queries: the first map of
        that many positions found walking back from it (θ's)."""
        todo, seen = [attention], set()
        while todo and len(seen) < 64:
            ref = todo.pop(0)
            if ref in seen:
                continue
            seen.add(ref)
            layer = self.by_name.get(self.of_ref.get(ref, ""))
            if layer is not None and len(layer.shape) == 3 and layer.shape[1] * layer.shape[2] == n:
                return list(layer.shape[1:])
            todo.extend(self.calls[ref.index].refs())
        return None

    def _flattened_map(self, ref: Ref) -> str | None:
        """The map whose positions the data-movement result ``ref`` flattens channels-first
        (``x.view(b, c, h * w)``, with leading axes of size 1: ``.unsqueeze(1)``; its channels
        split in heads: ``x.view(b, heads, c // heads, h * w)``; tokens transposed:
        ``t.transpose(1, 2)``), all of its channels in order, or None."""
        if self.calls[ref.index].kind != "layout" or ref.index not in self.prov:
            return None
        found = self._token_channels(ref, last=False)
        if found is None:
            return None
        name, channels = found
        layer = self.by_name[name]
        whole = len(layer.shape) == 3 and channels == list(range(layer.shape[0]))
        return name if whole else None


class _Builder(_Pools):
    """Turns the recorded calls into layers (:func:`trace_model`)."""

    def build(self) -> TracedModel:
        self.readers: dict[int, list[Call]] = {}
        readers = self.readers
        for call in self.calls:
            for i in call.inputs:
                readers.setdefault(i, []).append(call)
        for call in self.calls:
            if call.kind == "input":
                self._add(Layer("input", "input", "input", [], list(self.input_shape)), Ref(0))
            elif call.kind == "layout" and call.refs():
                self._movement(call, readers.get(call.index, []))
            elif call.kind not in ("constant", "unknown"):
                try:
                    self._layer(call)
                except ModelError as e:  # an error only if a layer reads it (see _defer)
                    self._defer(call, str(e))
        last = self._resolve(self.rec.output, self.calls[self.rec.output.index].name)
        layers = self._reaching(last) if self.left_out or self.prune else self.layers
        self.traced.graph = assemble(
            layers, self.input_shape, capture="forward", left_out=self.left_out
        )
        self.traced.recording_calls = self.rec.count
        self.traced.module_taps = self.rec.module_taps()
        return self.traced

    def _reaching(self, last: str) -> list[Layer]:
        """The layers the output depends on (without those that fed left-out gates alone: a
        coordinate attention's row and column pools)."""
        need, todo = {"input", last}, [last]
        while todo:
            for name in self.by_name[todo.pop()].inputs:
                if name not in need:
                    need.add(name)
                    todo.append(name)
        return [l for l in self.layers if l.name in need]

    def _layer(self, call: Call) -> None:
        refs = self._refs(call)
        if not refs:
            return
        if self._branch_mean(call, refs):
            return
        src = self._pooled_map(call, refs)
        if src is not None:  # x.view(b, c, -1).mean(2), x.mean(3).mean(2): global pooling
            out = call.value[0] if isinstance(call.value, tuple) else call.value  # (max: values)
            c, rank = self.by_name[src].shape[0], out.dim()
            params: dict[str, Any] = {"global": True}
            row = rank == 3 and out.shape[1] == 1 and c > 1  # (tokens pooled: (b, 1, c))
            if rank == 3 and not row:  # (an adaptive 1-D pool's (batch, channels, 1))
                params["view"] = [c, 1]
            shape = [c, 1, 1] if rank == 4 else [c]  # (keepdim: a 1×1 map)
            pool = Layer(call.name, "pool", call.op, [src], shape, params, channels_last=row)
            self._add(pool, Ref(call.index, (0,) if isinstance(call.value, tuple) else ()))
            return
        if call.kind == "conv" and per_sample(self.calls, call):
            return self._per_sample(call)
        functional = not isinstance(call.target, nn.Module) and call.op not in PRODUCTS
        if call.kind in ("conv", "conv1d", "linear") and functional:
            param(self.calls, call, 1, "weight")  # (an error for weights computed from the data)
        if call.op in _MATMULS and call.kind != "linear":
            if call.op == "scaled_dot_product_attention":
                done = self._attention_sdpa(call)
            else:
                done = self._attention_pool(call) or self._attention_mix(call)
            if not done:
                self._defer(call, self._no_attention(call, refs))
            return
        refs, inputs = self._inputs(call, refs)
        if not inputs:  # (a product passing its carrier's data movement on)
            return
        out, ref = call.value, Ref(call.index)
        if call.op in ("max", "min") and isinstance(out, tuple):  # torch.max(x, 1): the values
            out, ref = out[0], Ref(call.index, (0,))
        if not isinstance(out, torch.Tensor):
            raise ModelError(
                f"unsupported operation {call.op!r} {where(call)}: it returns several tensors"
            )
        src = self.by_name[inputs[0]]
        if call.kind == "identity" and len(inputs) == 1:
            self.of_ref[Ref(call.index)] = inputs[0]  # nn.Identity: no layer
            return
        if out.numel() == 0:  # (its storage freed by forward() itself: x.set_())
            return self._defer(
                call,
                f"the output {where(call)} is empty after the forward pass: forward() frees it "
                "(as reversible blocks do to save memory); cnnvis_gl reads every layer's output",
            )
        # a row vector (batch, 1, C), as ECA convolves along the channels
        row = movement.is_row(out) and src.channels_last and len(src.shape) == 1
        if call.kind == "conv1d":
            return self._channel_conv(call, inputs, row)
        seq = bool(src.params.get("seq_first")) and movement.sequence_first(out)
        flat = src.params.get("batch_flat") and movement.batch_flattened(out)
        if seq:
            out = out.transpose(0, 1)
        elif flat:
            out = out.reshape(CAPTURE_BATCH, flat, -1)
        shape, last, view = self._arrangement(call, src, out, row)
        params, tens = layer_params(
            self.calls, call, refs, [self.by_name[n] for n in inputs], shape
        )
        if tens:
            self.traced.tensors_of[call.name] = tens
        if view:
            params["view"] = view
        if seq:
            params["seq_first"] = True
        if flat:
            params["batch_flat"] = True
        layer = Layer(
            call.name, call.kind, call.op, inputs, shape, params, channels_last=bool(last)
        )
        self._add(layer, ref)
        if isinstance(call.target, nn.Module):
            self.traced.module_of[call.name] = call.target

    def _no_attention(self, call: Call, refs: list[Ref]) -> str:
        """Why the product ``call`` is no attention over a map's positions."""
        for r in refs:
            if r.index not in self.prov or r in self.of_ref:
                continue
            p, q = (pick(t, r.item) for t in self.prov[r.index])
            if isinstance(p, torch.Tensor) and not movement.one_image_a_row(p, q):
                return (
                    f"{call.op} {where(call)}: attention with the heads or windows folded into "
                    "the batch ((b h) n d) is not supported: keep them on an axis of their "
                    "own, (b, h, n, d)"
                )
        for r in refs:  # (an operand is a data movement refused before: that is the cause)
            if self._unreadable(r) and self._is_layout(self.calls[r.index]):
                return self.bad[r.index]
        return (
            f"{call.op} {where(call)}: only a map's positions pooled with attention weights (a "
            "global-context block) or mixed by them (attention over a map's positions: a "
            "non-local block's softmax(θᵀφ) @ g, a transformer's softmax(q kᵀ) @ v) is "
            "supported"
        )

    def _inputs(self, call: Call, refs: list[Ref]) -> tuple[list[Ref], list[str]]:
        """The inputs ``call`` reads and their layers, gates that are no maps left out; no
        layers where ``call`` passes its carrier's data movement on.  Raises ``ModelError``
        (deferred by :meth:`build`) where an input is no layer."""
        bad = [r for r in refs if self._unreadable(r)]
        if bad:
            kept = self._without_gates(call, refs, bad)
            if kept is None:
                raise ModelError(self.bad[bad[0].index])
            refs = kept
        if call.kind == "act" and len(refs) > 1:
            raise ModelError(f"{call.op} of several feature maps {where(call)} is not supported")
        try:
            inputs = [self._resolve(r, call.name) for r in refs]
        except ModelError:
            if not bad or not self._pass_through(call, refs):
                raise
            inputs = []
        for r, name in zip(refs, inputs, strict=False):
            if self._folded(self.by_name[name], r):
                raise ModelError(
                    f"{call.op} {where(call)} reads the output of the per-sample convolution "
                    f"{name!r} with the batch folded into its channels; view it back to (batch, "
                    "channels, height, width) first"
                )
        self.left_out += [f"{self.calls[r.index].name} → {call.name}" for r in bad]
        return refs, inputs

    def _per_sample(self, call: Call) -> None:
        """A convolution of each image with its own kernels (dynamic convolutions, CondConv: the
        batch folded into the channels and the groups, the kernels mixed by attention computed
        from the data): a convolution of the map, with the kernels the capture's images get,
        recomputed from the live parameters.  Layers that fed the attention alone are dropped."""
        x = arg(call, 0, "input")
        src = self.of_ref.get(x)
        if src is None or not self._folded(self.by_name[src], x):
            if not self._is_layout(self.calls[x.index]) or x.index not in self.prov:
                raise ModelError(
                    f"conv2d {where(call)} folds the batch into its groups but does not read "
                    "the images folded into the channels of one (x.view(1, -1, h, w))"
                )
            src = self._materialise(self.calls[x.index], x, fold=True)
        out = call.value
        shape = [int(out.shape[1]) // CAPTURE_BATCH, *out.shape[2:]]
        params, tens = layer_params(self.calls, call, [x], [self.by_name[src]], shape)
        self.traced.tensors_of[call.name] = tens
        self._add(Layer(call.name, "conv", call.op, [src], shape, params), Ref(call.index))
        self.prune = True

    def _arrangement(
        self, call: Call, src: Layer, out: torch.Tensor, row: bool
    ) -> tuple[list[int], bool, list[int] | None]:
        """The canonical shape of ``call``'s output, whether it is channels-last, and its real
        arrangement where it is no map (``view``); raises ``ModelError`` for other shapes."""
        rank, view = out.dim() - 1, src.params.get("view")
        if view and list(out.shape[1:]) == view:  # an element-wise op on a stack of maps, …
            return list(src.shape), src.channels_last, view  # (… or on tokens)
        if view and src.channels_last and rank == 2 and out.shape[1] == view[0]:
            # a Linear over the channels of tokens: a 1×1 conv of the map, channels-last
            return [int(out.shape[2]), *src.shape[1:]], True, list(out.shape[1:])
        if rank == 4:  # K maps stacked (K, C, H, W): canonically (K·C, H, W)
            view = list(out.shape[1:])
            return [view[0] * view[1], *view[2:]], False, view
        if rank == 2 and call.kind == "pool" and self._over_channels(call, src):
            # a reduction over the channels without keepdim (CBAM's torch.max(x, 1)[0]): (H, W)
            return [1, *out.shape[1:]], False, list(out.shape[1:])
        if rank == 2 and not row:
            raise ModelError(
                f"unsupported tensor of shape {tuple(out.shape)} {where(call)}: "
                "cnnvis_gl analyses feature maps (batch, channels, height, width) and vectors; "
                "token sequences (transformers) are not supported"
            )
        if rank not in (1, 2, 3):
            raise ModelError(f"unsupported tensor of shape {tuple(out.shape)} {where(call)}")
        last = row or rank == 3 and self._channels_last(call, src, rank)
        shape = list(out.shape[1:])
        if last:
            shape = [shape[-1], *shape[:-1]][: 1 if row else 3]
        return shape, last, None

    def _without_gates(self, call: Call, refs: list[Ref], bad: list[Ref]) -> list[Ref] | None:
        """The inputs of a product but its gates that are no layers (a gate computed from tensors
        that are no maps: coordinate attention's pooled rows and columns concatenated along the
        height, triplet attention's rotated maps, SRM's (C, 2) styles): the gates count as 1,
        as any gate computed from the data does (noted as left out once the product is made).
        ``None`` where ``call`` is no such product."""
        kept = [r for r in refs if r not in bad]
        out = call.value
        if call.op.rstrip("_") != "mul" or not kept or not isinstance(out, torch.Tensor):
            return None
        for r in bad:
            shape = self._value(r).shape
            if self.calls[r.index].op.rstrip("_") not in GATES:
                return None
            if torch.broadcast_shapes(shape, out.shape) != out.shape:
                return None
        if not any(self._value(r).shape == out.shape for r in kept):
            return None
        return kept

    def _over_channels(self, call: Call, src: Layer) -> bool:
        """Whether a reduction reduces the channels of a channels-first map, and them only."""
        refs = self._refs(call)
        if len(src.shape) != 3 or src.channels_last or len(refs) != 1:
            return False
        return self._value(refs[0]).dim() == 4 and reduced(call, 4) == [1]

    def _channels_last(self, call: Call, src: Layer, rank: int) -> bool:
        if call.kind in ("conv", "pool") or (call.kind == "norm" and call.op != "LayerNorm"):
            if call.op not in ("layer_norm", "mean", "amax", "amin", "sum", "max", "min", *NORMS):
                if src.channels_last:
                    raise ModelError(f"{call.op} {where(call)} reads a channels-last tensor")
                return False
        if call.kind == "linear":
            if not src.channels_last and len(src.shape) == 3:
                raise ModelError(
                    f"Linear {where(call)} is applied over the width of a feature map; "
                    "only over channels (channels-last, or a vector) is supported"
                )
            return True
        return len(src.shape) == 3 and src.channels_last

    def _channel_conv(self, call: Call, inputs: list[str], row: bool) -> None:
        """A Conv1d along the channels of a row vector (ECA: ``conv(y.view(b, 1, c))``): a
        linear layer whose weight is the band matrix of the kernel."""
        m = call.target
        if isinstance(m, nn.Module):
            w, stride, pad, dil = m.weight, m.stride[0], m.padding, m.dilation[0]
        else:
            w = param(self.calls, call, 1, "weight")
            stride, pad = pair(arg(call, 3, "stride", 1))[0], arg(call, 4, "padding", 0)
            dil = pair(arg(call, 5, "dilation", 1))[0]
        c = self.by_name[inputs[0]].shape[0]
        k = int(live(w).shape[-1])
        pad = (dil * (k - 1)) // 2 if pad == "same" else 0 if pad == "valid" else pair(pad)[0]
        one = tuple(live(w).shape[:2]) == (1, 1) and stride == 1
        if isinstance(m, nn.Module) and m.padding_mode != "zeros":
            raise ModelError(
                f"{call.op} {where(call)}: padding_mode={m.padding_mode!r} along the channels is "
                "not supported (zero padding is)"
            )
        if not row or not one or call.value.shape[-1] != c:
            raise ModelError(
                f"{call.op} {where(call)}: only a one-channel convolution along the "
                "channels of a pooled vector, keeping its length (ECA), is supported"
            )
        layer = Layer(call.name, "linear", call.op, inputs, [c], {}, channels_last=True)
        self._add(layer, Ref(call.index))
        self.traced.tensors_of[call.name] = {
            "weight": Computed(band_matrix, (w, c, pad, dil), {}),
            "kernel": w,
        }


#: One-dimensional pools: of a map flattened to one position, a global pool.
_POOLS_1D = ("AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "adaptive_avg_pool1d", "adaptive_max_pool1d")

#: Reductions that pool a map globally when they reduce its flattened positions
#: (``x.view(b, c, -1).std(2)``) or its two spatial axes one after the other
#: (``x.max(3)[0].max(2)[0]``).
_REDUCTIONS = ("mean", "amax", "amin", "sum", "max", "min", "logsumexp", "std", "var")


def _stacks_batches(call: Call) -> bool:
    """Whether ``call`` stacks whole batches (``torch.stack(maps)``, dim 0: before the batch
    axis), as branches are stacked to be averaged."""
    return call.op == "stack" and arg(call, 1, "dim", 0) == 0


__all__ = ["TracedModel", "build_graph", "decode_map", "trace_model"]
