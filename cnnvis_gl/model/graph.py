"""Framework-free layer graph of a CNN (SPEC §2, §4; the rules are written out in docs/GRAPH.md).

A :class:`NeuronGraph` holds layers with kinds and output shapes, receptive fields, *units* (the
tensors whose channels are neurons) and layer groups.  It holds no torch objects and serialises
to JSON (it goes into a run's manifest).  :func:`cnnvis_gl.model.trace.trace_model` builds it
from a torch model; :func:`assemble` turns its layers into units and groups.

Terms used here:

- **layer**: one recorded call of the forward pass (conv, linear, norm, act, pool, add, mul, …),
  or one data-movement result read by a layer (cat, select, flatten, identity).
- **unit**: the neurons of one weighted layer (conv/linear), measured at its *tap*: the last
  layer of the chain of element-wise layers (norm, activation, dropout, residual add, the gated
  side of a product) that follows it.  Weighted layers that end in the same tap (a residual branch
  and its shortcut conv) share one unit, named after the first of them.  A channel
  concatenation that joins parallel branches (an Inception module, a dense block, a fire module)
  is a unit too: its neurons are all of its producers' channels.
- **group**: consecutive layers shown as one DAG row.  Default grouping (SPEC §2): one group per
  conv stage (ended by a downsampling layer), one per residual block or multi-branch module, one
  per linear layer.  A group's neurons are those of its last unit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from .blocks import ELEMENTWISE, is_join, stretches

# Bounded activations: the value their output saturates at (for the "saturated" statistic).
_BOUNDS: dict[str, float] = {
    "Tanh": 1.0,
    "Sigmoid": 1.0,
    "tanh": 1.0,
    "sigmoid": 1.0,
    "ReLU6": 6.0,
    "relu6": 6.0,
}

WEIGHTED = {"conv", "linear"}


@dataclass
class Layer:
    """One layer of the forward graph."""

    name: str
    kind: str  # input conv linear norm act pool add mul dropout identity cat select flatten
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
    channels_last: bool = False  # the tensor is (H, W, C); ``shape`` is always (C, H, W)

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
    capture: str = ""  # how the graph was captured ("forward": one recorded forward pass)
    # gate branches left out, each "gate → product" (their maps rearranged: docs/GRAPH.md)
    left_out: list[str] = field(default_factory=list)

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
            "capture": self.capture,
            **({"left_out": list(self.left_out)} if self.left_out else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronGraph:
        return cls(
            input_shape=list(d["input_shape"]),
            layers=[Layer(**l) for l in d["layers"]],
            units=[Unit(**u) for u in d["units"]],
            groups=[Group(**g) for g in d["groups"]],
            capture=str(d.get("capture", "")),
            left_out=_strings(d.get("left_out", []), "left_out"),
        )

    def check(self) -> None:
        """Raise ``ValueError`` naming the field if the graph is not one cnnvis_gl could have
        made (types, sizes, and every name and index it refers to), e.g. read from a damaged
        manifest."""
        _check_ints(self.input_shape, "input_shape", 3, 1)
        if not self.layers or not self.units or not self.groups:
            raise ValueError("the graph needs layers, units and groups (one of them is empty)")
        seen: set[str] = set()
        for i, layer in enumerate(self.layers):
            where = f"layers[{i}]"
            _new_name(layer.name, seen, where)
            if not isinstance(layer.inputs, list) or any(n not in seen for n in layer.inputs):
                raise ValueError(f"{where}: inputs {layer.inputs!r} are not earlier layers")
            _check_ints(layer.shape, f"{where}.shape", None, 1)
            for name in ("rf_size", "rf_jump", "rf_start"):
                v = getattr(layer, name)
                if not _numbers(v, 2):
                    raise ValueError(f"{where}.{name}: {v!r} is not two finite numbers")
            seen.add(layer.name)
        units: set[str] = set()
        for i, u in enumerate(self.units):
            where = f"units[{i}]"
            _new_name(u.name, units, where)
            if u.tap not in seen or not isinstance(u.layers, list) or not u.layers:
                raise ValueError(f"{where}: tap {u.tap!r} or layers {u.layers!r} unknown")
            if any(n not in seen for n in u.layers):
                raise ValueError(f"{where}: layers {u.layers!r} are not all layers")
            _check_ints([u.channels], f"{where}.channels", 1, 1)
            if u.spatial:
                _check_ints(u.spatial, f"{where}.spatial", 2, 1)
            if not _index(u.group, len(self.groups)):
                raise ValueError(f"{where}.group: {u.group!r} is not a group index")
            if u.bound is not None and not (_numbers([u.bound], 1) and u.bound > 0):
                raise ValueError(f"{where}.bound: {u.bound!r} is not a positive number")
            units.add(u.name)
        names: set[str] = set()
        for i, g in enumerate(self.groups):
            where = f"groups[{i}]"
            _new_name(g.name, names, where)
            if not isinstance(g.units, list) or not g.units or any(n not in units for n in g.units):
                raise ValueError(f"{where}.units: {g.units!r} is not a list of units")
            if not isinstance(g.layers, list) or any(n not in seen for n in g.layers):
                raise ValueError(f"{where}.layers: {g.layers!r} is not a list of layers")
            if not isinstance(g.inputs, list) or not all(_index(j, i) for j in g.inputs):
                raise ValueError(f"{where}.inputs: {g.inputs!r} are not earlier groups")
            names.add(g.name)

    def left_out_kinds(self) -> tuple[list[str], list[str]]:
        """``left_out`` split in gate branches and attention weights (the entries whose
        product is an attention layer: its queries and keys weigh, they carry no channels)."""
        gates, attentions = [], []
        for entry in self.left_out:
            product = self._layer.get(entry.rsplit(" → ", 1)[-1])
            mixing = product is not None and product.params.get("attention")
            (attentions if mixing else gates).append(entry)
        return gates, attentions

    def summary(self) -> str:
        rows = [f"{'group':<18}{'neurons':>8}  layers"]
        for g in self.groups:
            rows.append(f"{g.name:<18}{self.unit(g.unit).channels:>8}  {', '.join(g.layers)}")
        return "\n".join(rows)


def channel_layouts(graph: NeuronGraph) -> dict[str, Any]:
    """Where the layers whose outputs are not laid out (N, C, …) hold their channels:
    ``"last"`` (a Linear on a channels-last map, ECA's Conv1d on a (N, 1, C) row), the
    canonical shape to view them as (a stack of maps, (N, K, C, H, W) → (N, K·C, H, W)), or
    ``["last", C, H, W]`` (a map flattened to tokens, (N, H·W, C)), ``["heads", h, C, H, W]``
    (tokens with the channels in h heads, (N, h, H·W, C/h)), ``["seq", C, H, W]`` (tokens
    sequence first, (H·W, N, C)), ``["flat", C, H, W]`` (tokens with the batch flattened into
    the positions, (N·H·W, C)), or ``["batch", C, H, W]``
    (a per-sample convolution's output, the images folded into the channels: (1, N·C, H, W))."""
    out: dict[str, Any] = {}
    for lay in graph.layers:
        if lay.params.get("per_sample"):  # (1, N·C, H, W): the images folded into the channels
            out[lay.name] = ["batch", *lay.shape]
        elif lay.params.get("seq_first"):  # (tokens sequence first: (H·W, N, C))
            out[lay.name] = ["seq", *lay.shape]
        elif lay.params.get("batch_flat"):  # (tokens, the batch flattened in: (N·H·W, C))
            out[lay.name] = ["flat", *lay.shape]
        elif lay.channels_last and len(lay.params.get("view", [])) == 3:  # (N, h, H·W, C/h)
            out[lay.name] = ["heads", lay.params["view"][0], *lay.shape]
        elif lay.params.get("view"):  # (channels-last: a token sequence, (N, H·W, C))
            out[lay.name] = ["last", *lay.shape] if lay.channels_last else list(lay.shape)
        elif lay.channels_last:
            out[lay.name] = "last"
    return out


def channels_first(t: Any, layout: Any) -> Any:
    """A layer's output tensor ``t`` with its channels on axis 1 (``layout``: its entry in
    :func:`channel_layouts`, or None) — a view of ``t`` unless a stack's ``t`` is not
    contiguous, or its channels are in heads."""
    if layout == "last":
        return t.movedim(-1, 1)
    if layout and layout[0] == "batch":  # a per-sample convolution's (1, N·C, H, W)
        return t.reshape(-1, *layout[1:])
    if layout and layout[0] == "flat":  # tokens, the batch flattened in (N·H·W, C)
        c, h, w = layout[1:]
        return t.reshape(-1, h, w, c).movedim(-1, 1)
    if layout and layout[0] == "seq":  # tokens sequence first (H·W, N, C)
        c, h, w = layout[1:]
        return t.permute(1, 2, 0).reshape(t.shape[1], c, h, w)
    if layout and layout[0] == "heads":  # tokens in heads (N, h, H·W, C/h): a copy
        c, h, w = layout[2:]
        return t.transpose(1, 2).reshape(len(t), h, w, c).movedim(-1, 1)
    if layout and layout[0] == "last":  # tokens (N, H·W, C) of a (C, H, W) map
        c, h, w = layout[1:]
        return t.reshape(len(t), h, w, c).movedim(-1, 1)
    return t.reshape(len(t), *layout) if layout is not None else t


def _new_name(name: Any, taken: set[str], where: str) -> None:
    if not isinstance(name, str) or name in taken:
        raise ValueError(f"{where}: name {name!r} is not a new string")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _index(v: Any, n: int) -> bool:
    return _is_int(v) and 0 <= v < n


def _numbers(v: Any, n: int) -> bool:
    return (
        isinstance(v, list)
        and len(v) == n
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    )


def _check_ints(v: Any, where: str, n: int | None, lo: int) -> None:
    """``v`` is a list of ``n`` (any number if ``None``) ints ≥ ``lo``, each below 2**31."""
    if (
        not isinstance(v, list)
        or (n is not None and len(v) != n)
        or not all(_is_int(x) and lo <= x < 2**31 for x in v)
    ):
        raise ValueError(f"{where}: {v!r} is not a list of {n or 'some'} integers ≥ {lo}")


# --------------------------------------------------------------------------------------------
# Channel maps of data-movement layers
# --------------------------------------------------------------------------------------------


def encode_map(pos: Any, ch: Any) -> list[list[int]]:
    """Run-length code of a sequence of (input position, channel) pairs.

    Each run ``[pos, c0, step, n, repeat]`` stands for channels ``c0, c0+step, …`` (``n`` of them)
    of input ``pos``, each repeated ``repeat`` times in a row (a flattened channel's positions).
    """
    pos = [int(v) for v in pos]
    ch = [int(v) for v in ch]
    triples: list[list[int]] = []  # [pos, channel, repeat]
    for p, c in zip(pos, ch, strict=True):
        if triples and triples[-1][0] == p and triples[-1][1] == c:
            triples[-1][2] += 1
        else:
            triples.append([p, c, 1])
    runs: list[list[int]] = []
    for p, c, r in triples:
        if runs:
            rp, c0, step, n, rr = runs[-1]
            nxt = c - (c0 + (n - 1) * step)
            if rp == p and rr == r and (n == 1 and nxt != 0 or n > 1 and nxt == step):
                runs[-1] = [rp, c0, nxt if n == 1 else step, n + 1, rr]
                continue
        runs.append([p, c, 1, 1, r])
    return runs


def decode_map(runs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The (input position, channel) arrays coded by :func:`encode_map`."""
    pos: list[np.ndarray] = []
    ch: list[np.ndarray] = []
    for p, c0, step, n, r in runs:
        c = np.repeat(c0 + step * np.arange(n, dtype=np.int64), r)
        ch.append(c)
        pos.append(np.full(c.shape, p, dtype=np.int64))
    if not pos:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(pos), np.concatenate(ch)


def assemble(
    layers: list[Layer], input_shape: list[int], capture: str = "", left_out: list[str] = ()
) -> NeuronGraph:
    """Receptive fields, units and groups of ``layers`` (in forward order; the first is the input)."""
    by_name = {l.name: l for l in layers}
    _receptive_fields(layers, by_name)
    spanned, cells = stretches(layers)
    units = _units(layers, by_name, spanned, cells)
    groups = _groups(layers, by_name, units, spanned)
    return NeuronGraph(
        list(input_shape), layers, units, groups, capture=capture, left_out=list(left_out)
    )


def _strings(v: Any, what: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise TypeError(f"{what!r} must be a list of strings")
    return list(v)


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
    Upsampling by f: jump' = jump/f; start' = start + (1/(2f) - 1/2)·jump; size' = size, plus
    one jump when the mode blends neighbours (bilinear).
    Where paths join (add, cat), the widest input wins; a product (gating) keeps the field of its
    gated side, a sum with a broadcast term that of its full-size inputs.  Global / adaptive
    pooling and linear layers on vectors see the whole image.
    """
    _, in_h, in_w = (by_name["input"].shape + [1, 1, 1])[:3]
    whole = [float(in_h), float(in_w)]
    for layer in layers:
        if layer.kind == "input":
            continue
        srcs = [by_name[i] for i in layer.inputs]
        if layer.kind == "mul":
            srcs = [srcs[k] for k in layer.params.get("carriers", range(len(srcs)))]
        elif layer.kind == "add" and any(s.shape == layer.shape for s in srcs):
            # a term broadcast over the positions (GCNet's global context, added to every
            # position) is the same everywhere: the field is the other inputs', as a gate's
            srcs = [s for s in srcs if math.prod(s.shape[1:]) > 1 or s.shape == layer.shape]
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
        if "upsample" in p:
            # output position y is input position (y + ½)/f - ½; a smooth mode reads the next
            # input position too
            for a in range(2):
                f = p["upsample"][a]
                start[a] = start[a] + (0.5 / f - 0.5) * jump[a]
                size[a] = size[a] + (jump[a] if p.get("smooth") else 0.0)
                jump[a] = jump[a] / f
        elif "kernel" in p:
            for a in range(2):
                ke = p["dilation"][a] * (p["kernel"][a] - 1) + 1
                start[a] = start[a] + ((ke - 1) / 2 - p["padding"][a]) * jump[a]
                size[a] = size[a] + (ke - 1) * jump[a]
                jump[a] = jump[a] * p["stride"][a]
        elif len(layer.shape) == 1 or p.get("global") or _is_global(layer):
            # flattened, linear or globally pooled: the whole image
            size, jump, start = list(whole), list(whole), [(whole[0] - 1) / 2, (whole[1] - 1) / 2]
        elif p.get("attention"):  # mixed over all positions (non-local): each sees it all
            size, jump, start = list(whole), [0.0, 0.0], [(whole[0] - 1) / 2, (whole[1] - 1) / 2]
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


def _carries(layer: Layer, name: str) -> bool:
    """Whether input ``name`` of element-wise ``layer`` passes its channels on (not a gate)."""
    if layer.kind != "mul":
        return True
    carriers = layer.params.get("carriers", range(len(layer.inputs)))
    return any(layer.inputs[k] == name for k in carriers)


def _tap(name: str, by_name: dict[str, Layer], consumers: dict[str, list[str]]) -> str:
    """Follow single-consumer element-wise layers after ``name`` (norm, act, dropout, add, the
    gated side of a product)."""
    cur = name
    while len(consumers[cur]) == 1:
        nxt = by_name[consumers[cur][0]]
        if nxt.kind not in ELEMENTWISE or nxt.shape != by_name[cur].shape:
            break
        if not _carries(nxt, cur):
            break
        cur = nxt.name
    return cur


def _units(
    layers: list[Layer], by_name: dict[str, Layer], spanned: list[bool], cells: set[str]
) -> list[Unit]:
    consumers = _consumers(layers)
    units: dict[str, Unit] = {}
    for idx, l in enumerate(layers):
        # a concatenation that joins parallel branches holds the neurons of all of them
        joins = l.kind == "cat" and len(l.inputs) > 1 and len(l.shape) == 3 and not spanned[idx]
        if not (l.weighted or joins):
            continue
        # (a cell's join is its own tap: the next cell's layers are not the cell's)
        tap = l.name if l.name in cells else _tap(l.name, by_name, consumers)
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
            bound=_bound(by_name[tap]),
        )
    if not units:
        raise ModelError("the model has no Conv2d or Linear layer: nothing to analyse")
    return list(units.values())


def _groups(
    layers: list[Layer], by_name: dict[str, Layer], units: list[Unit], spanned: list[bool]
) -> list[Group]:
    order = {l.name: i for i, l in enumerate(layers)}
    # a spanned stretch that ends in a join is a block (not a gating branch beside a layer)
    block = [False] * len(layers)
    ends_in_join = False
    for i in range(len(layers) - 1, -1, -1):
        if not spanned[i]:
            ends_in_join = _joins(layers[i].name, by_name)
        block[i] = spanned[i] and ends_in_join
    unit_of_tap = {u.tap: u for u in units}
    unit_of_layer = {name: u for u in units for name in u.layers}

    consumers = _consumers(layers)
    raw: list[list[str]] = [[]]

    def close() -> None:
        if any(by_name[n].weighted for n in raw[-1]):
            raw.append([])

    seq = [l for l in layers if l.kind != "input"]
    for idx, l in enumerate(seq):
        i = order[l.name]
        # a linear layer, or a strided conv outside a residual block, starts a new group; a
        # strided depthwise conv starts it at the 1×1 conv feeding it when that is an
        # inverted-residual block's expansion, so the block stays in one group
        strided = l.kind == "conv" and max(l.params["stride"]) > 1
        if not spanned[i] and (l.kind == "linear" and len(l.shape) == 1 or strided):
            feed = _feeding_pointwise(l, by_name) if _depthwise(l, by_name) else None
            if feed is not None and feed in raw[-1]:
                k = raw[-1].index(feed)
                if any(by_name[n].weighted for n in raw[-1][:k]):
                    raw[-1], tail = raw[-1][:k], raw[-1][k:]
                    raw.append(tail)
            else:
                close()
        raw[-1].append(l.name)
        nxt = seq[idx + 1] if idx + 1 < len(seq) else None
        if spanned[i]:
            continue
        downsample = l.kind == "pool" and not l.params.get("window") or (
            l.kind == "flatten" and nxt is not None and nxt.kind != "linear"
        )
        if downsample:
            close()
        elif l.name in unit_of_tap and by_name[unit_of_tap[l.name].name].kind == "linear":
            close()  # a linear layer and its activation
        elif nxt is not None and block[order[nxt.name]]:
            close()  # a residual block starts next
        elif l.name in unit_of_tap and _joins(l.name, by_name):
            # a residual block or a multi-branch module ends here — or, when its output is
            # gated next (BAM between two blocks), at the product
            if _place(l.name, by_name, consumers, order) == i:
                close()
    merged = _merged([g for g in raw if g], by_name, set(unit_of_tap))
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
        g.units.sort(key=lambda n: _place(unit_by_name(units, n).tap, by_name, consumers, order))
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


def _merged(raw: list[list[str]], by_name: dict[str, Layer], taps: set[str]) -> list[list[str]]:
    """The groups' layers, each group holding a weighted layer and a unit's tap: layers after
    the last unit (a trailing pool) join the group before, layers before the first the group
    after; a group none of whose units leave in it (their taps lie past its end) joins the
    next."""
    merged: list[list[str]] = []
    for g in raw:
        if merged and not any(by_name[n].weighted for n in g):
            merged[-1].extend(g)
        else:
            merged.append(g)
    if merged and len(merged) > 1 and not any(by_name[n].weighted for n in merged[0]):
        merged[1] = merged[0] + merged[1]
        merged.pop(0)
    for k in range(len(merged) - 2, -1, -1):
        if not any(n in taps for n in merged[k]):
            merged[k : k + 2] = [merged[k] + merged[k + 1]]
    return merged


def _place(tap: str, by_name: dict[str, Layer], consumers: dict[str, list[str]], order: dict[str, int]) -> int:
    """Where a unit's neurons leave: its tap, or for gated channels (``x * gate``) the product."""
    gated = [c for c in consumers[tap] if by_name[c].kind == "mul" and _carries(by_name[c], tap)]
    return max([order[tap]] + [order[c] for c in gated if not is_join(by_name[c])])


def _feeding_pointwise(conv: Layer, by_name: dict[str, Layer]) -> str | None:
    """The 1×1 conv whose output ``conv`` reads through element-wise layers, when it is an
    expansion (not the pointwise half of a depthwise-separable pair, as in MobileNet v1)."""

    def producer(layer: Layer) -> Layer:
        # (through element-wise layers, and padding: TensorFlow-style "same" padding before a
        # strided conv, a select of the same channels)
        cur = by_name[layer.inputs[0]]
        while len(cur.inputs) == 1 and (
            cur.kind in ELEMENTWISE and not is_join(cur)
            or cur.kind in ("select", "identity")
            and cur.shape[0] == by_name[cur.inputs[0]].shape[0]
        ):
            cur = by_name[cur.inputs[0]]
        return cur

    cur = producer(conv)
    if cur.kind != "conv" or cur.params.get("kernel") != [1, 1]:
        return None
    before = producer(cur)
    return None if before.kind == "conv" and _depthwise(before, by_name) else cur.name


def _depthwise(conv: Layer, by_name: dict[str, Layer]) -> bool:
    groups = int(conv.params.get("groups", 1))
    return groups > 1 and groups == by_name[conv.inputs[0]].shape[0]


def _joins(tap: str, by_name: dict[str, Layer]) -> bool:
    """Whether a tap ends a join of branches (add, concatenation, product of two feature maps),
    following single-input element-wise layers upstream."""
    cur = by_name[tap]
    while True:
        if is_join(cur):
            return True
        if cur.kind not in ELEMENTWISE or len(cur.inputs) != 1:
            return False
        cur = by_name[cur.inputs[0]]


def unit_by_name(units: list[Unit], name: str) -> Unit:
    return next(u for u in units if u.name == name)


def _upstream_tap(name: str, by_name: dict[str, Layer], tap_group: dict[str, int]) -> int | None:
    """The group whose tap ``name`` is, following unweighted single-input layers upstream."""
    cur: str | None = name
    while cur is not None:
        if cur in tap_group:
            return tap_group[cur]
        layer = by_name[cur]
        ins = layer.inputs
        if layer.kind == "mul" and not is_join(layer):  # x * gate: follow the gated side
            ins = [x for k, x in enumerate(ins) if _carries(layer, x)]
        if layer.weighted or layer.kind == "input" or len(ins) != 1:
            return None
        cur = ins[0]
    return None


def _group_label(names: list[str], by_name: dict[str, Layer]) -> str:
    weighted = [n for n in names if by_name[n].weighted]
    if any(by_name[n].kind == "add" and len(by_name[n].inputs) > 1 for n in names):
        return "block"  # a residual join (not a bias added by hand: Fixup's x + self.bias1a)
    if any(by_name[n].kind == "cat" and len(by_name[n].inputs) > 1 for n in names):
        return "mixed"
    last = by_name[weighted[-1]]  # (a Linear over a map's tokens is a 1×1 conv)
    return "fc" if last.kind == "linear" and len(last.shape) == 1 else "conv"
