"""Framework-free layer graph of a CNN (SPEC §2, §4).

:func:`build_graph` traces a ``torch.nn.Module`` with ``torch.fx``, propagates shapes, and returns
a :class:`NeuronGraph`: layers with kinds and output shapes, receptive fields, *units* (the tensors
whose channels are neurons) and layer groups.  The graph itself holds no torch objects and
serialises to JSON (it goes into a run's manifest).

Terms used here:

- **layer**: one node of the traced forward graph (conv, linear, norm, act, pool, add, …).
- **unit**: the neurons of one weighted layer (conv/linear), measured at its *tap*: the last
  layer of the chain of element-wise layers (norm, activation, dropout, residual add) that follows
  it.  Weighted layers that end in the same tap (a residual branch and its shortcut conv) share
  one unit, named after the first of them.
- **group**: consecutive layers shown as one DAG row.  Default grouping (SPEC §2): one group per
  conv stage (ended by a downsampling layer), one per residual block, one per linear layer.  A
  group's neurons are those of its last unit.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError

# --------------------------------------------------------------------------------------------
# Supported operations
# --------------------------------------------------------------------------------------------

_MODULE_KINDS: dict[type, str] = {
    nn.Conv2d: "conv",
    nn.Linear: "linear",
    nn.BatchNorm1d: "norm",
    nn.BatchNorm2d: "norm",
    nn.GroupNorm: "norm",
    nn.InstanceNorm2d: "norm",
    nn.ReLU: "act",
    nn.ReLU6: "act",
    nn.LeakyReLU: "act",
    nn.ELU: "act",
    nn.GELU: "act",
    nn.SiLU: "act",
    nn.Mish: "act",
    nn.Tanh: "act",
    nn.Sigmoid: "act",
    nn.Hardtanh: "act",
    nn.Hardswish: "act",
    nn.Softplus: "act",
    nn.PReLU: "act",
    nn.MaxPool2d: "pool",
    nn.AvgPool2d: "pool",
    nn.AdaptiveAvgPool2d: "pool",
    nn.AdaptiveMaxPool2d: "pool",
    nn.Dropout: "dropout",
    nn.Dropout2d: "dropout",
    nn.Flatten: "flatten",
    nn.Identity: "identity",
}

_FUNCTION_KINDS: dict[Any, str] = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    torch.flatten: "flatten",
    torch.relu: "act",
    torch.sigmoid: "act",
    torch.tanh: "act",
    F.relu: "act",
    F.relu6: "act",
    F.leaky_relu: "act",
    F.elu: "act",
    F.gelu: "act",
    F.silu: "act",
    F.hardtanh: "act",
    F.dropout: "dropout",
    F.max_pool2d: "pool",
    F.avg_pool2d: "pool",
    F.adaptive_avg_pool2d: "pool",
    F.adaptive_max_pool2d: "pool",
}

_METHOD_KINDS: dict[str, str] = {
    "relu": "act",
    "sigmoid": "act",
    "tanh": "act",
    "flatten": "flatten",
    "view": "flatten",
    "reshape": "flatten",
    "mean": "pool",
    "amax": "pool",
    "add": "add",
    "add_": "add",
    "contiguous": "identity",
}

# Bounded activations: the value their output saturates at (for the "saturated" statistic).
_BOUNDS: dict[str, float] = {
    "Tanh": 1.0,
    "Sigmoid": 1.0,
    "tanh": 1.0,
    "sigmoid": 1.0,
    "ReLU6": 6.0,
    "relu6": 6.0,
}

ELEMENTWISE = {"norm", "act", "dropout", "add", "identity"}
WEIGHTED = {"conv", "linear"}


@dataclass
class Layer:
    """One layer of the forward graph."""

    name: str
    kind: str  # input, conv, linear, norm, act, pool, add, flatten, dropout, identity
    op: str  # class or function name
    inputs: list[str]
    shape: list[int]  # output shape without the batch dimension
    params: dict[str, Any] = field(default_factory=dict)
    # receptive field of one output position, per spatial axis: size, jump (stride in input
    # pixels), start (input-pixel coordinate of the centre of output position 0)
    rf_size: list[float] = field(default_factory=lambda: [1.0, 1.0])
    rf_jump: list[float] = field(default_factory=lambda: [1.0, 1.0])
    rf_start: list[float] = field(default_factory=lambda: [0.0, 0.0])
    group: int = -1

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED


@dataclass
class Unit:
    """The neurons of one weighted layer, measured at its tap."""

    name: str  # name of the (first) weighted layer
    layers: list[str]  # weighted layers ending in this tap
    tap: str  # layer whose output is measured
    channels: int
    spatial: list[int]  # [H, W] of the tap, [] for linear units
    group: int
    bound: float | None = None  # saturation value of a bounded activation at the tap


@dataclass
class Group:
    """A row of the DAG."""

    name: str
    layers: list[str]
    units: list[str]  # units in forward order; the last one holds the group's neurons
    inputs: list[int] = field(default_factory=list)  # groups whose neurons feed this one

    @property
    def unit(self) -> str:
        return self.units[-1]


@dataclass
class NeuronGraph:
    input_shape: list[int]
    layers: list[Layer]
    units: list[Unit]
    groups: list[Group]

    def __post_init__(self) -> None:
        self._layer = {l.name: l for l in self.layers}
        self._unit = {u.name: u for u in self.units}

    def layer(self, name: str) -> Layer:
        return self._layer[name]

    def unit(self, name: str) -> Unit:
        return self._unit[name]

    def group_of_unit(self, name: str) -> Group:
        return self.groups[self._unit[name].group]

    @property
    def num_neurons(self) -> int:
        return sum(self.unit(g.unit).channels for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "layers": [asdict(l) for l in self.layers],
            "units": [asdict(u) for u in self.units],
            "groups": [asdict(g) for g in self.groups],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronGraph:
        return cls(
            input_shape=list(d["input_shape"]),
            layers=[Layer(**l) for l in d["layers"]],
            units=[Unit(**u) for u in d["units"]],
            groups=[Group(**g) for g in d["groups"]],
        )

    def summary(self) -> str:
        rows = [f"{'group':<18}{'neurons':>8}  layers"]
        for g in self.groups:
            rows.append(f"{g.name:<18}{self.unit(g.unit).channels:>8}  {', '.join(g.layers)}")
        return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Tracing
# --------------------------------------------------------------------------------------------


@dataclass
class TracedModel:
    """The fx trace behind a :class:`NeuronGraph`: maps graph layer names to fx nodes/modules."""

    graph: NeuronGraph
    gm: fx.GraphModule
    node_of: dict[str, fx.Node]  # layer name -> fx node
    module_of: dict[str, nn.Module]  # layer name -> module (call_module layers)


def trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(model)
    except Exception as e:
        raise ModelError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(e).__name__}: "
            f"{str(e).splitlines()[0]}); data-dependent control flow in forward() is not supported"
        ) from e


def build_graph(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> NeuronGraph:
    """The :class:`NeuronGraph` of ``model`` for inputs of ``input_shape`` (C, H, W)."""
    return trace_model(model, input_shape).graph


def trace_model(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> TracedModel:
    gm = trace(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((1, *input_shape), device=device))
    except Exception as e:
        raise ModelError(
            f"{type(model).__name__} fails on an input of shape {tuple(input_shape)}: "
            f"{type(e).__name__}: {str(e).splitlines()[0]}"
        ) from e
    finally:
        model.train(was_training)

    modules = dict(gm.named_modules())
    layers: list[Layer] = []
    node_of: dict[str, fx.Node] = {}
    module_of: dict[str, nn.Module] = {}
    name_of: dict[fx.Node, str] = {}
    passthrough: dict[fx.Node, fx.Node] = {}  # non-tensor or no-op nodes -> their tensor input

    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        meta = node.meta.get("tensor_meta")
        if node.op == "placeholder":
            name = "input"
            layers.append(Layer(name, "input", "input", [], list(input_shape)))
            name_of[node] = name
            node_of[name] = node
            continue
        if node.op == "get_attr":
            raise ModelError(
                f"unsupported parameter access {node.target!r} in forward() (node {node.name!r})"
            )
        if not hasattr(meta, "shape"):
            # size(), shape tuples and the like: not a layer
            continue
        kind, op, module = _classify(node, modules)
        tensor_inputs = [
            name_of[_resolve(a, passthrough)]
            for a in node.all_input_nodes
            if _resolve(a, passthrough) in name_of
        ]
        if kind == "identity" and len(tensor_inputs) == 1:
            passthrough[node] = _resolve(node.all_input_nodes[0], passthrough)
            continue
        name = node.target if node.op == "call_module" else node.name
        if name in node_of:  # a module called twice
            name = node.name
        shape = list(meta.shape[1:])
        params = _params(kind, node, module)
        if kind in ("flatten", "pool") and node.op == "call_method":
            if node.target in ("view", "reshape") and len(shape) != 1:
                raise ModelError(
                    f"unsupported reshape at node {node.name!r}: only flattening to (batch, features) is supported"
                )
            if node.target in ("mean", "amax"):
                params = {"global": True}
        layers.append(Layer(name, kind, op, tensor_inputs, shape, params))
        name_of[node] = name
        node_of[name] = node
        if module is not None:
            module_of[name] = module

    graph_layers = {l.name: l for l in layers}
    _receptive_fields(layers, graph_layers)
    units = _units(
        layers, graph_layers, modules_bound={n: _bound(graph_layers[n]) for n in graph_layers}
    )
    groups = _groups(layers, graph_layers, units)
    graph = NeuronGraph(list(input_shape), layers, units, groups)
    return TracedModel(graph, gm, node_of, module_of)


def _resolve(node: fx.Node, passthrough: dict[fx.Node, fx.Node]) -> fx.Node:
    while node in passthrough:
        node = passthrough[node]
    return node


def _classify(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, str, nn.Module | None]:
    if node.op == "call_module":
        module = modules[node.target]
        for cls in type(module).__mro__:
            if cls in _MODULE_KINDS:
                return _MODULE_KINDS[cls], type(module).__name__, module
        supported = sorted({c.__name__ for c in _MODULE_KINDS})
        raise ModelError(
            f"unsupported module {node.target!r} ({type(module).__module__}.{type(module).__name__}); "
            f"supported layers: {', '.join(supported)}"
        )
    if node.op == "call_function":
        kind = _FUNCTION_KINDS.get(node.target)
        fname = getattr(node.target, "__name__", str(node.target))
        if kind is None:
            raise ModelError(f"unsupported operation {fname!r} at node {node.name!r} in forward()")
        return kind, fname, None
    if node.op == "call_method":
        kind = _METHOD_KINDS.get(node.target)
        if kind is None:
            raise ModelError(
                f"unsupported tensor method .{node.target}() at node {node.name!r} in forward()"
            )
        return kind, str(node.target), None
    raise ModelError(f"unsupported graph node {node.name!r} ({node.op})")


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def _params(kind: str, node: fx.Node, module: nn.Module | None) -> dict[str, Any]:
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):
            k = _pair(module.kernel_size)
            d = _pair(module.dilation)
            pad = (
                [0, 0] if module.padding == "valid" else [d[i] * (k[i] - 1) // 2 for i in range(2)]
            )
        else:
            pad = _pair(module.padding)
        return {
            "kernel": _pair(module.kernel_size),
            "stride": _pair(module.stride),
            "padding": pad,
            "dilation": _pair(module.dilation),
            "groups": int(module.groups),
        }
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        dilation = getattr(module, "dilation", 1)
        return {
            "kernel": _pair(module.kernel_size),
            "stride": _pair(stride),
            "padding": _pair(module.padding),
            "dilation": _pair(dilation),
        }
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return {"adaptive": True}
    if kind == "pool" and node.op == "call_function":
        args = list(node.args) + [None] * 5
        if node.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            return {"adaptive": True}
        k = node.kwargs.get("kernel_size", args[1])
        s = node.kwargs.get("stride", args[2]) or k
        p = node.kwargs.get("padding", args[3]) or 0
        return {"kernel": _pair(k), "stride": _pair(s), "padding": _pair(p), "dilation": [1, 1]}
    return {}


def _bound(layer: Layer) -> float | None:
    if layer.kind != "act":
        return None
    return _BOUNDS.get(layer.op)


# --------------------------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------------------------


def _receptive_fields(layers: list[Layer], by_name: dict[str, Layer]) -> None:
    """Receptive field (size, jump, start) of every layer, in input pixels.

    Standard recurrence for a window of effective size k_e = d(k-1)+1, stride s, padding p:
    jump' = jump·s; size' = size + (k_e-1)·jump; start' = start + ((k_e-1)/2 - p)·jump.
    Where paths join (add), the widest input wins.  Global / adaptive pooling and linear layers
    see the whole image.
    """
    _, in_h, in_w = (by_name["input"].shape + [1, 1, 1])[:3]
    whole = [float(in_h), float(in_w)]
    for layer in layers:
        if layer.kind == "input":
            continue
        srcs = [by_name[i] for i in layer.inputs]
        src = max(srcs, key=lambda s: s.rf_size[0] * s.rf_size[1])
        size, jump, start = list(src.rf_size), list(src.rf_jump), list(src.rf_start)
        p = dict(layer.params)
        if (
            p.get("adaptive")
            and len(layer.shape) == 3
            and len(src.shape) == 3
            and not _is_global(layer)
        ):
            # adaptive pooling to k×k with an even split is a plain window of stride in/k
            stride = [src.shape[1] // layer.shape[1], src.shape[2] // layer.shape[2]]
            kernel = [src.shape[1 + a] - (layer.shape[1 + a] - 1) * stride[a] for a in range(2)]
            p = {"kernel": kernel, "stride": stride, "padding": [0, 0], "dilation": [1, 1]}
        if "kernel" in p:
            for a in range(2):
                ke = p["dilation"][a] * (p["kernel"][a] - 1) + 1
                start[a] = start[a] + ((ke - 1) / 2 - p["padding"][a]) * jump[a]
                size[a] = size[a] + (ke - 1) * jump[a]
                jump[a] = jump[a] * p["stride"][a]
        elif len(layer.shape) == 1 or p.get("global") or _is_global(layer):
            # flattened, linear or globally pooled: the whole image
            size, jump, start = list(whole), list(whole), [(whole[0] - 1) / 2, (whole[1] - 1) / 2]
        layer.rf_size, layer.rf_jump, layer.rf_start = size, jump, start


def _is_global(layer: Layer) -> bool:
    return len(layer.shape) == 3 and layer.shape[1] == 1 and layer.shape[2] == 1


# --------------------------------------------------------------------------------------------
# Units and groups
# --------------------------------------------------------------------------------------------


def _consumers(layers: list[Layer]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {l.name: [] for l in layers}
    for l in layers:
        for i in l.inputs:
            out[i].append(l.name)
    return out


def _tap(name: str, by_name: dict[str, Layer], consumers: dict[str, list[str]]) -> str:
    """Follow single-consumer element-wise layers after ``name`` (norm, act, dropout, add)."""
    cur = name
    while len(consumers[cur]) == 1:
        nxt = by_name[consumers[cur][0]]
        if nxt.kind not in ELEMENTWISE or nxt.shape != by_name[cur].shape:
            break
        cur = nxt.name
    return cur


def _units(
    layers: list[Layer], by_name: dict[str, Layer], modules_bound: dict[str, float | None]
) -> list[Unit]:
    consumers = _consumers(layers)
    units: dict[str, Unit] = {}
    for l in layers:
        if not l.weighted:
            continue
        tap = _tap(l.name, by_name, consumers)
        if tap in units:
            units[tap].layers.append(l.name)
            continue
        shape = by_name[tap].shape
        units[tap] = Unit(
            name=l.name,
            layers=[l.name],
            tap=tap,
            channels=int(shape[0]),
            spatial=[int(s) for s in shape[1:]],
            group=-1,
            bound=modules_bound.get(tap),
        )
    if not units:
        raise ModelError("the model has no Conv2d or Linear layer: nothing to analyse")
    return list(units.values())


def _groups(layers: list[Layer], by_name: dict[str, Layer], units: list[Unit]) -> list[Group]:
    order = {l.name: i for i, l in enumerate(layers)}
    # A layer is *spanned* when some edge jumps over it (it lies inside a residual block).
    spanned = [False] * len(layers)
    for l in layers:
        for i in l.inputs:
            for j in range(order[i] + 1, order[l.name]):
                spanned[j] = True
    unit_of_tap = {u.tap: u for u in units}
    unit_of_layer = {name: u for u in units for name in u.layers}

    raw: list[list[str]] = [[]]

    def close() -> None:
        if any(by_name[n].weighted for n in raw[-1]):
            raw.append([])

    seq = [l for l in layers if l.kind != "input"]
    for idx, l in enumerate(seq):
        i = order[l.name]
        # a linear layer, or a strided conv outside a residual block, starts a new group
        if not spanned[i] and (
            l.kind == "linear" or (l.kind == "conv" and max(l.params["stride"]) > 1)
        ):
            close()
        raw[-1].append(l.name)
        nxt = seq[idx + 1] if idx + 1 < len(seq) else None
        if spanned[i]:
            continue
        downsample = l.kind == "pool" or (
            l.kind == "flatten" and nxt is not None and nxt.kind != "linear"
        )
        if downsample:
            close()
        elif l.name in unit_of_tap and by_name[unit_of_tap[l.name].name].kind == "linear":
            close()  # a linear layer and its activation
        elif nxt is not None and spanned[order[nxt.name]]:
            close()  # a residual block starts next
    raw = [g for g in raw if g]
    # layers after the last unit (e.g. a trailing pool) join the previous group
    merged: list[list[str]] = []
    for g in raw:
        if merged and not any(by_name[n].weighted for n in g):
            merged[-1].extend(g)
        else:
            merged.append(g)
    if merged and len(merged) > 1 and not any(by_name[n].weighted for n in merged[0]):
        merged[1] = merged[0] + merged[1]
        merged.pop(0)

    groups: list[Group] = []
    for gi, names in enumerate(merged):
        for n in names:
            by_name[n].group = gi
        g_units = []
        for n in names:
            u = unit_of_layer.get(n)
            if u is not None and u.name not in g_units and u.tap in names:
                g_units.append(u.name)
        for u in units:
            if u.name in g_units:
                u.group = gi
        groups.append(Group(name="", layers=names, units=g_units))
    # every unit belongs to the group that holds its tap
    for u in units:
        if u.group < 0:
            u.group = by_name[u.tap].group
            if u.name not in groups[u.group].units:
                groups[u.group].units.append(u.name)
    counters: dict[str, int] = {}
    for g in groups:
        g.units.sort(key=lambda n: order[unit_by_name(units, n).tap])
        label = _group_label(g.layers, by_name)
        counters[label] = counters.get(label, 0) + 1
        g.name = f"{label}{counters[label]}"
    # group inputs: the groups whose taps reach this group's layers directly
    tap_group = {unit_by_name(units, g.unit).tap: gi for gi, g in enumerate(groups)}
    for gi, g in enumerate(groups):
        ins: list[int] = []
        for n in g.layers:
            for src in by_name[n].inputs:
                s = _upstream_tap(src, by_name, tap_group)
                if s is not None and s != gi and s not in ins:
                    ins.append(s)
        g.inputs = ins
    return groups


def unit_by_name(units: list[Unit], name: str) -> Unit:
    return next(u for u in units if u.name == name)


def _upstream_tap(name: str, by_name: dict[str, Layer], tap_group: dict[str, int]) -> int | None:
    """The group whose tap ``name`` is, following unweighted single-input layers upstream."""
    cur: str | None = name
    while cur is not None:
        if cur in tap_group:
            return tap_group[cur]
        layer = by_name[cur]
        if layer.weighted or layer.kind == "input" or len(layer.inputs) != 1:
            return None
        cur = layer.inputs[0]
    return None


def _group_label(names: list[str], by_name: dict[str, Layer]) -> str:
    weighted = [n for n in names if by_name[n].weighted]
    if any(by_name[n].kind == "add" for n in names):
        return "block"
    return "fc" if by_name[weighted[-1]].kind == "linear" else "conv"
