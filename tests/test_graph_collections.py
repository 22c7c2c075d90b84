"""The graph rules of docs/GRAPH.md for blocks of the pytorchcv collection (osmr's
imgclsmob), on tiny models with hand-computed answers: a shortcut widened with
``torch.zeros_like`` channels, functional local response normalisation (AlexNet, ZFNet),
CondenseNet's ``index_select`` channel permutation, FractalNet's ``stack(branches).mean(0)``
join, FishNet's channel squeeze (a sum over runs of channels), BAM's channel × spatial
attention, DIA's zero-initialised states; and the rows of DARTS cells after a two-conv stem,
of residual networks of residual networks (RoR), of two streams (octave convolutions), of a
gate between two blocks; and RevNet's freed outputs as a clear error; more activations,
Lp pools and lazy modules; and from other collections: Fixup's hand-added biases, checkpointed
blocks, megvii's ShuffleNetV2 shuffle, a hand-written LRN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_graph_blocks import Cell
from test_graph_rules import _k, _seeded
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.data import ImageData
from cnnvis_gl.errors import ModelError
from cnnvis_gl.model import trace_model
from cnnvis_gl.model.weights import unit_weights


def _images(n=5):
    """``n`` random 6×6 images of two classes."""
    x = torch.randn(n, 3, 6, 6)
    return ImageData.from_tensors(
        (x * 40 + 128).clamp(0, 255).to(torch.uint8), np.arange(n) % 2, ["p", "q"]
    )


def _measures_b(m, data):
    """The snapshot of an :class:`Attended` model, whose unit ``b`` measured the real (gated,
    mixed) values: its largest responses are those of a plain forward pass."""
    snap = cv.analyze(m, data, progress=False)
    with torch.no_grad():
        out = m.b(m.att(F.relu(m.a(next(data.batches(len(data)))[0]))))
    torch.testing.assert_close(
        torch.from_numpy(np.asarray(snap["units/b/max_response"])), out.amax((2, 3)).amax(0)
    )
    return snap


def _rows(g, prefix):
    """Each group's units, those under module list ``prefix`` by their index alone."""
    return [sorted({u.split(".")[1] if u.startswith(prefix) else u for u in gr.units})
            for gr in g.groups]  # fmt: skip


class ZeroShortcut(nn.Module):
    """A 1-bit WRN unit: the shortcut is widened with zero channels, ``cat(y, zeros_like(y))``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.c = nn.Conv2d(8, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        z = self.b(y) + torch.cat((y, torch.zeros_like(y)), dim=1)
        return self.c(z).mean((2, 3))


def test_zero_channels_widening_a_shortcut_are_padding():
    m = _seeded(ZeroShortcut())
    t = trace_model(m, (3, 6, 6))
    assert [u.name for u in t.graph.units] == ["a", "b", "c"]
    uw = unit_weights(t)
    # b's neurons (the sum) read a through b's kernel and, channels 0-3, the shortcut
    shortcut = torch.cat([torch.eye(4), torch.zeros(4, 4)])
    torch.testing.assert_close(uw["b"]["a"], _k(m.b) + shortcut)


class LRN(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, bias=False)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        return self.c(F.local_response_norm(F.relu(self.a(x)), size=3)).mean((2, 3))


def test_functional_local_response_norm_is_a_norm():
    m = _seeded(LRN())
    t = trace_model(m, (3, 6, 6))
    assert t.graph.layer("local_response_norm").kind == "norm"
    torch.testing.assert_close(unit_weights(t)["c"]["a"], _k(m.c))


class IndexSelect(nn.Module):
    """CondenseNet: the channels permuted by an index buffer before a grouped conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.register_buffer("index", torch.tensor([2, 0, 3, 1]))
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        return self.c(torch.index_select(F.relu(self.a(x)), 1, self.index)).mean((2, 3))


def test_index_select_over_the_channels_is_a_permutation():
    m = _seeded(IndexSelect())
    t = trace_model(m, (3, 4, 4))
    # c's input channel j is a's channel index[j]: weight from a's channel i sums those j
    perm = torch.zeros(4, 4)
    perm[torch.arange(4), m.index] = 1.0
    torch.testing.assert_close(unit_weights(t)["c"]["a"], _k(m.c) @ perm)


class FractalJoin(nn.Module):
    """FractalNet: columns of different depth joined by ``torch.stack(outs).mean(0)``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        outs = [F.relu(self.a(x)), F.relu(self.b2(F.relu(self.b1(x))))]
        return self.c(torch.stack(outs, dim=0).mean(dim=0)).mean((2, 3))


def test_a_mean_of_stacked_branches_is_their_average():
    m = _seeded(FractalJoin())
    t = trace_model(m, (3, 6, 6))
    join = t.graph.layer("mean")
    assert join.kind == "add" and join.params["signs"] == [0.5, 0.5]
    assert join.rf_size == [5, 5]  # the deeper column's field
    # like a residual add, the join's neurons are one unit with both columns' last convs
    assert t.graph.unit("a").layers == ["a", "b2"] and t.graph.unit("a").tap == "mean"
    uw = unit_weights(t)
    torch.testing.assert_close(uw["a"]["input"], 0.5 * _k(m.a))
    torch.testing.assert_close(uw["a"]["b1"], 0.5 * _k(m.b2))
    torch.testing.assert_close(uw["c"]["a"], _k(m.c))


class ChannelSqueeze(nn.Module):
    """FishNet: ``x.view(b, c // k, k, h, w).sum(2)`` adds runs of k consecutive channels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1, bias=False)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        b, ch, h, w = y.shape
        return self.c(y.view(b, ch // 2, 2, h, w).sum(dim=2)).mean((2, 3))


def test_a_sum_over_runs_of_channels_adds_them():
    m = _seeded(ChannelSqueeze())
    t = trace_model(m, (3, 4, 4))
    runs = torch.zeros(4, 8)
    runs[torch.arange(4).repeat_interleave(2), torch.arange(8)] = 1.0  # [i, 2i] = [i, 2i+1] = 1
    torch.testing.assert_close(unit_weights(t)["c"]["a"], _k(m.c) @ runs)


class BAM(nn.Module):
    """BAM: a channel attention (C, 1, 1) times a spatial one (1, H, W), through
    ``1 + sigmoid``, gates the map."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 4, bias=False)
        self.s = nn.Conv2d(4, 1, 3, padding=1, bias=False)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        ch = self.fc(y.mean((2, 3))).unsqueeze(2).unsqueeze(3).expand_as(y)
        sp = self.s(y).expand_as(y)
        att = 1 + torch.sigmoid(ch * sp)
        return self.c(y * att).mean((2, 3))


def test_channel_times_spatial_attention_is_a_gate():
    m = _seeded(BAM())
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    product = g.layer("mul")
    assert product.inputs[1] == "s" and product.params["carriers"] == [0, 1]
    # (the channel attention pools the whole image: the widest field wins)
    assert product.shape == [4, 6, 6] and product.rf_size == [6, 6]
    assert g.layer("add").params["gate"]  # 1 + sigmoid(…) is still a gate
    gated = g.layer("mul_1")
    assert gated.params["carriers"] == [0] and gated.rf_size == [3, 3]  # y's own field
    uw = unit_weights(t)
    torch.testing.assert_close(uw["c"]["a"], _k(m.c))  # the gated channels keep their identity
    torch.testing.assert_close(uw["s"]["a"], _k(m.s))
    assert [u.name for u in g.units] == ["a", "fc", "s", "c"]  # the attention's own units


class StemCells(nn.Module):
    """DARTS: a stem of two convs, the first cell reading both of their outputs, each cell the
    two before it."""

    def __init__(self, n: int = 3):
        super().__init__()
        self.stem1 = nn.Conv2d(3, 8, 3, padding=1)
        self.stem2 = nn.Conv2d(8, 8, 3, padding=1)
        self.cells = nn.ModuleList(Cell() for _ in range(n))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        prev = F.relu(self.stem1(x))
        cur = self.stem2(prev)
        for cell in self.cells:
            prev, cur = cur, cell(cur, prev)
        return self.fc(cur.mean((2, 3)))


def test_cells_after_a_stem_whose_layers_they_both_read_are_rows_of_their_own():
    g = trace_model(_seeded(StemCells()), (3, 8, 8)).graph
    rows = _rows(g, "cells")
    assert rows == [["stem1"], ["0", "stem2"], ["1"], ["2"], ["fc"]]


class ZeroState(nn.Module):
    """DIA's LSTM attention starts from ``torch.zeros_like(w)`` states: ``f * c0 + i * g`` with
    ``c0`` zero leaves ``i * g``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        c0 = torch.zeros_like(y)
        twos = torch.full_like(y, 2.0)
        return self.c(torch.sigmoid(y) * c0 + y * twos).mean((2, 3))


def test_tensors_made_like_the_data_are_constants_with_their_value():
    m = _seeded(ZeroState())
    t = trace_model(m, (3, 4, 4))
    g = t.graph
    assert [lay.kind for lay in g.layers if lay.kind in ("mul", "add")] == ["mul", "mul", "add"]
    assert float(t.tensor("mul", "scale")) == 0.0 and float(t.tensor("mul_1", "scale")) == 2.0
    # the weight into c from a: the zeroed path adds nothing, the other is doubled
    torch.testing.assert_close(unit_weights(t)["c"]["a"], 2.0 * _k(m.c))


class Unit(nn.Module):
    """A pre-activation-free residual unit, with a 1×1 shortcut conv when it widens."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.short = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        skip = x if self.short is None else self.short(x)
        return F.relu(self.c2(F.relu(self.c1(x))) + skip)


class RoR(nn.Module):
    """Residual networks of residual networks: a shortcut around each stage of units and one
    around the whole body."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.s1 = nn.ModuleList([Unit(4, 4), Unit(4, 4)])
        self.s2 = nn.ModuleList([Unit(4, 8), Unit(8, 8)])
        self.short1, self.short2 = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 8, 1)
        self.short_body = nn.Conv2d(4, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        body = self.short_body(x)
        y = x
        for units, short in ((self.s1, self.short1), (self.s2, self.short2)):
            skip = short(y)
            for unit in units:
                y = unit(y)
            y = y + skip
        return self.fc(F.relu(y + body).mean((2, 3)))


def test_a_shortcut_around_residual_units_keeps_them_rows_of_their_own():
    """Before: the body's shortcut jumped over every layer, and the whole body was one row."""
    g = trace_model(_seeded(RoR()), (3, 8, 8)).graph
    # a stage's last unit ends in the stage's sum: its second conv and the stage's shortcut
    # share that unit (named by the first of them in forward order)
    assert [gr.units for gr in g.groups] == [
        ["stem"],
        ["s1.0.c1", "s1.0.c2"],
        ["s1.1.c1", "short1"],
        ["s2.0.c1", "s2.0.short"],
        ["s2.1.c1", "short_body"],
        ["fc"],
    ]
    assert g.unit("short_body").layers == ["short_body", "short2", "s2.1.c2"]


class OctaveUnit(nn.Module):
    """Two streams, high and low frequency (an octave convolution's): each new stream sums a
    conv of its own and one of the other, resampled, plus its shortcut."""

    def __init__(self):
        super().__init__()
        self.hh, self.lh = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.ll, self.hl = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, h, low):
        h2 = self.hh(h) + F.interpolate(self.lh(low), scale_factor=2.0)
        l2 = self.ll(low) + self.hl(F.avg_pool2d(h, 2))
        return F.relu(h2 + h), F.relu(l2 + low)


class Octave(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 1)
        self.units = nn.ModuleList(OctaveUnit() for _ in range(3))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        h = F.relu(self.stem(x))
        low = F.relu(self.down(F.avg_pool2d(h, 2)))
        for unit in self.units:
            h, low = unit(h, low)
        return self.fc(torch.cat([h.mean((2, 3)), low.mean((2, 3))], 1))


def test_two_streams_end_a_block_where_both_are_fresh_sums():
    """Before: the two streams jump over every layer, and all units were one row."""
    g = trace_model(_seeded(Octave()), (3, 8, 8)).graph
    rows = _rows(g, "units")
    # (the conv making the low stream is read beside the first unit's: a row with it)
    assert rows == [["stem"], ["0", "down"], ["1"], ["2"], ["fc"]]


class GateBetweenBlocks(nn.Module):
    """BAM sits between two residual blocks and gates the first one's output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.b1, self.b2 = Unit(4, 4), Unit(4, 4)
        self.fc, self.s = nn.Linear(4, 4), nn.Conv2d(4, 1, 3, padding=1)
        self.out = nn.Linear(4, 10)

    def forward(self, x):
        y = self.b1(F.relu(self.stem(x)))
        ch = self.fc(y.mean((2, 3)))[:, :, None, None].expand_as(y)
        y = y * (1 + torch.sigmoid(ch * self.s(y).expand_as(y)))
        return self.out(self.b2(y).mean((2, 3)))


def test_a_gate_after_a_block_joins_the_blocks_row():
    g = trace_model(_seeded(GateBetweenBlocks()), (3, 8, 8)).graph
    assert [gr.units for gr in g.groups] == [
        ["stem"], ["b1.c1", "fc", "s", "b1.c2"], ["b2.c1", "b2.c2"], ["out"]
    ]
    # the row's neurons are the block's (counted at the product), not the attention's one
    assert g.groups[1].unit == "b1.c2"


class _Reversible(torch.autograd.Function):
    """RevNet's memory trick: forward() computes y = x + f(x) and frees x's storage."""

    @staticmethod
    def forward(ctx, x, f):
        with torch.no_grad():
            y = x + f(x)
            x.set_()
        return y

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - never trained here
        return grad, None


class Reversible(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.f = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return _Reversible.apply(F.relu(self.a(x)), self.f).mean((2, 3))


def test_an_output_freed_by_forward_is_a_clear_error():
    with pytest.raises(ModelError, match=r"is empty after the forward pass: forward\(\) frees"):
        trace_model(_seeded(Reversible()), (3, 4, 4))


class MoreModules(nn.Module):
    """Element-wise activations, an Lp pool and a dropout of torch.nn that hand-written CNNs
    use, as modules and as functions."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, bias=False)
        self.acts = nn.Sequential(
            nn.RReLU(), nn.Softsign(), nn.Tanhshrink(), nn.Softshrink(0.1), nn.Hardshrink(0.01),
            nn.LogSigmoid(), nn.Threshold(-1.0, 0.0), nn.FeatureAlphaDropout(0.2),
            nn.Dropout3d(0.1), torch.ao.quantization.QuantStub(),
            torch.ao.quantization.DeQuantStub(),
        )
        self.pool = nn.LPPool2d(2, 3, stride=2)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = self.pool(self.acts(self.a(x)))
        y = F.lp_pool2d(F.softsign(F.rrelu(y)), 2, 2)
        return self.c(y).amax((2, 3))


def test_more_activations_pools_and_dropouts():
    m = _seeded(MoreModules())
    t = trace_model(m, (3, 15, 15))
    g = t.graph
    assert [g.layer(f"acts.{i}").kind for i in range(9)] == ["act"] * 7 + ["dropout"] * 2
    # (a quantizable model in float: its stubs are no layers)
    assert "acts.9" not in [lay.name for lay in g.layers]
    # a: 3×3 → size 3, jump 1; Lp pool 3×3 stride 2 → 3 + 2 = 5, jump 2; then 2×2 stride 2
    # → 5 + 2 = 7, jump 4
    assert g.layer("pool").rf_size == [5, 5] and g.layer("pool").rf_jump == [2, 2]
    assert g.layer("pool").shape == [4, 6, 6]
    fn = g.layer("lp_pool2d")
    assert fn.kind == "pool" and fn.rf_size == [7, 7] and fn.rf_jump == [4, 4]
    assert fn.shape == [4, 3, 3]
    torch.testing.assert_close(unit_weights(t)["c"]["a"], _k(m.c))


def test_lazy_modules_are_made_before_the_capture():
    class Lazy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.LazyConv2d(4, 3)
            self.fc = nn.LazyLinear(2)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.a(x)), 1), 1))

    torch.manual_seed(0)
    m = Lazy()
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    data = ImageData.from_tensors(images, np.arange(6) % 2, ["a", "b"], name="t")
    # the weights are made by the first forward pass, not taken for the model's own calls
    # (which the statistics pass then did not find again)
    snap = cv.analyze(m, data, k=2, progress=False)
    assert [u.name for u in snap.graph.units] == ["a", "fc"]
    assert m.a.weight.shape == (4, 3, 3, 3)
    with torch.no_grad():
        relu = F.relu(m.a(next(data.batches(6))[0])).amax((2, 3)).amax(0)
    torch.testing.assert_close(torch.from_numpy(np.asarray(snap["units/a/max_response"])), relu)


class HandWritten(nn.Module):
    """Element-wise maths written by hand: ConvNeXt's channels-first LayerNorm
    (``(x - u) / sqrt(s + eps)``, then ``w[:, None, None] * x + b[:, None, None]``), ``-x``,
    ``1 - gate``, a sigmoid as ``1 / (1 + exp(-x))``, an erf GELU, ``F.normalize``."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a = nn.Conv2d(3, 4, 3, bias=False)
        self.w = nn.Parameter(torch.ones(4))
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = self.a(x)
        if self.how == "layernorm":
            u = y.mean(1, keepdim=True)
            s = (y - u).pow(2).mean(1, keepdim=True)
            y = (y - u) / torch.sqrt(s + 1e-6)
            y = self.w[:, None, None] * y + self.w[:, None, None]
        elif self.how == "neg":
            y = -y
        elif self.how == "one_minus":
            y = 1 - torch.sigmoid(y)
        elif self.how == "sigmoid":
            y = y * (1 / (1 + torch.exp(-y)))
        elif self.how == "gelu":
            y = 0.5 * y * (1 + torch.erf(y / 2**0.5))
        else:
            y = F.normalize(F.relu(y).clamp_min(0.1).type(torch.float32))
        return self.c(y).amax((2, 3))


@pytest.mark.parametrize(
    "how, factor",
    [  # c's signed weights on a: c's kernel times what lies between (activations count as 1)
        # a's output feeds two branches, so a is measured at the conv and the weights pass
        # through the maths: w · (x - mean over the channels): diag(w) (I - 1/4)
        ("layernorm", torch.eye(4) - 0.25),  # (and then diag(w))
        # y · 1 / (1 + exp(-y)): y, and y through -1 and the decreasing 1 / x: 1 + 1
        ("sigmoid", 2 * torch.eye(4)),
        ("gelu", (0.5 + 2**-0.5) * torch.eye(4)),  # 0.5 · y, and y / √2 through erf
        # one branch: a is measured after the maths, which c reads as they are
        ("neg", torch.eye(4)),
        ("one_minus", torch.eye(4)),
        ("normalize", torch.eye(4)),
    ],
)
def test_element_wise_maths_written_by_hand(how, factor):
    m = _seeded(HandWritten(how))
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    assert [u.name for u in g.units] == ["a", "c"]
    tap = {"neg": "neg", "one_minus": "rsub", "normalize": "normalize"}.get(how, "a")
    assert g.unit("a").tap == tap
    if how == "layernorm":
        factor = torch.diag(m.w.detach()) @ factor
    torch.testing.assert_close(unit_weights(t)["c"]["a"], _k(m.c) @ factor)


def test_normalize_over_other_axes_is_refused():
    class Spatial(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return F.normalize(self.a(x), dim=2).amax((2, 3))

    with pytest.raises(ModelError, match=r"^normalize at 'normalize': only over the channels"):
        trace_model(Spatial(), (3, 6, 6))


class SelectiveKernel(nn.Module):
    """SKNet as CIFAR-ZOO writes it: paths stacked with ``unsqueeze_``, the pooled vector
    ``squeeze_``d, a softmax over the paths; ``inplace=False`` writes it out of place."""

    def __init__(self, inplace):
        super().__init__()
        self.inplace = inplace
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.convs = nn.ModuleList([nn.Conv2d(4, 4, 1 + 2 * i, padding=i) for i in range(2)])
        self.fc = nn.Linear(4, 3)
        self.fcs = nn.ModuleList([nn.Linear(3, 4) for _ in range(2)])
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        x = F.relu(self.a(x))
        if self.inplace:
            feas = torch.cat([conv(x).unsqueeze_(dim=1) for conv in self.convs], dim=1)
            s = F.adaptive_avg_pool2d(feas.sum(1), 1).squeeze_()
            att = torch.cat([fc(self.fc(s)).unsqueeze_(dim=1) for fc in self.fcs], dim=1)
        else:
            feas = torch.cat([conv(x).unsqueeze(dim=1) for conv in self.convs], dim=1)
            s = F.adaptive_avg_pool2d(feas.sum(1), 1).squeeze()
            att = torch.cat([fc(self.fc(s)).unsqueeze(dim=1) for fc in self.fcs], dim=1)
        att = att.softmax(dim=1).unsqueeze(-1).unsqueeze(-1)
        return self.c((feas * att).sum(dim=1)).mean((2, 3))


def test_in_place_reshapes_are_their_out_of_place_forms():
    one, other = _seeded(SelectiveKernel(True)), _seeded(SelectiveKernel(False))
    t, u = trace_model(one, (3, 6, 6)), trace_model(other, (3, 6, 6))
    shapes = [(lay.kind, lay.shape) for lay in t.graph.layers]
    assert shapes == [(lay.kind, lay.shape) for lay in u.graph.layers]
    assert ("conv", [4, 6, 6]) in shapes  # the convs keep their shape, not the unsqueezed one
    assert [x.name for x in t.graph.units] == [x.name for x in u.graph.units]
    for unit, by_source in unit_weights(t).items():
        for source, w in by_source.items():
            torch.testing.assert_close(w, unit_weights(u)[unit][source])


class FixupBlock(nn.Module):
    """hongyi-zhang/Fixup: scalar biases added by hand around each conv, a scalar scale."""

    def __init__(self):
        super().__init__()
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (
            nn.Parameter(torch.zeros(1)) for _ in range(4)
        )
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
        return F.relu(out + x)


class Fixup(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bias1 = nn.Parameter(torch.zeros(1))
        self.block = FixupBlock()
        self.bias2 = nn.Parameter(torch.zeros(1))
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.block(F.relu(self.conv(x) + self.bias1))
        return self.fc(x.mean((2, 3)) + self.bias2)


def test_biases_added_by_hand_are_no_residual_joins():
    # the stem and the classifier, each with a scalar bias added, keep their names (they were
    # "block1" … "block3": every add counted as a residual join)
    m = _seeded(Fixup())
    t = trace_model(m, (3, 6, 6))
    assert [(g.name, g.units) for g in t.graph.groups] == [
        ("conv1", ["conv"]), ("block1", ["block.conv1", "block.conv2"]), ("fc1", ["fc"])
    ]  # fmt: skip
    uw = unit_weights(t)
    torch.testing.assert_close(uw["block.conv2"]["block.conv1"], m.block.scale * _k(m.block.conv2))
    torch.testing.assert_close(uw["block.conv2"]["conv"], torch.eye(4))
    torch.testing.assert_close(uw["fc"]["block.conv2"], m.fc.weight.detach())


class _PassThrough(torch.autograd.Function):
    """A custom autograd function that returns its input in eval (ShakeDrop, ShakeShake)."""

    @staticmethod
    def forward(ctx, x, training):
        return x * 0.5 if training else x

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Checkpointed(nn.Module):
    """gpleiss/efficient_densenet_pytorch: blocks under ``torch.utils.checkpoint``."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.ReLU())
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        x = F.relu(self.a(x))
        if self.how == "plain":
            x = self.b(x)
        elif self.how == "function":
            x = _PassThrough.apply(self.b(x), self.training)
        else:
            x = torch.utils.checkpoint.checkpoint(self.b, x, use_reentrant=self.how == "reentrant")
        return self.c(x).mean((2, 3))


@pytest.mark.parametrize("how", ["reentrant", "non-reentrant", "function"])
def test_checkpoints_and_autograd_functions_are_their_insides(how):
    # the reentrant checkpoint and a custom autograd.Function returning its input make a
    # x.view_as(x) (was: unsupported operation 'view_as')
    plain, other = _seeded(Checkpointed("plain")), _seeded(Checkpointed(how))
    t, u = trace_model(plain, (3, 6, 6)), trace_model(other, (3, 6, 6))
    assert [x.name for x in u.graph.units] == [x.name for x in t.graph.units] == ["a", "b.0", "c"]
    torch.testing.assert_close(unit_weights(u)["c"]["b.0"], _k(other.c))
    torch.testing.assert_close(unit_weights(u)["b.0"]["a"], _k(other.b[0]))


class MegviiShuffle(nn.Module):
    """megvii-model/ShuffleNet-Series' ShuffleNetV2 block: it returns the concatenation, and
    the next block shuffles it first, with a reshape that mixes the batch into the channels."""

    def __init__(self, first):
        super().__init__()
        self.first = first
        self.proj = nn.Conv2d(2, 2, 1, bias=False) if first else None
        self.main = nn.Conv2d(2, 2, 1, bias=False)

    @staticmethod
    def channel_shuffle(x):
        b, c, h, w = x.data.size()
        x = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2)
        x = x.reshape(2, -1, c // 2, h, w)
        return x[0], x[1]

    def forward(self, old_x):
        if self.first:
            return torch.cat((self.proj(old_x), F.relu(self.main(old_x))), 1)
        x_proj, x = self.channel_shuffle(old_x)
        return torch.cat((x_proj, F.relu(self.main(x))), 1)


class MegviiNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.features = nn.Sequential(MegviiShuffle(True), MegviiShuffle(False))
        self.head = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        return self.head(self.features(self.stem(x))).mean((2, 3))


def test_a_block_output_shuffled_by_the_next_block_is_a_row_of_its_own():
    # before: the shuffle folded every block of a stage into one selection from the stage's
    # first producers, one row for the whole stage
    m = _seeded(MegviiNet())
    t = trace_model(m, (3, 4, 4))
    assert [g.units[-1] for g in t.graph.groups] == [
        "stem", "features.0.cat", "features.1.cat", "head"
    ]  # fmt: skip
    uw = unit_weights(t)
    # block 1 reads block 0's output: x_proj = its even channels, main reads its odd ones
    even, odd = torch.eye(4)[0::2], torch.eye(4)[1::2]
    main = _k(m.features[1].main)
    torch.testing.assert_close(uw["features.1.main"]["features.0.cat"], main @ odd)
    torch.testing.assert_close(
        uw["features.1.cat"]["features.0.cat"], torch.cat([even, torch.zeros(2, 4)])
    )
    torch.testing.assert_close(
        uw["features.1.cat"]["features.1.main"], torch.cat([torch.zeros(2, 2), torch.eye(2)])
    )


class HandLRN(nn.Module):
    """The local response normalisation of Caffe ports (Cadene's VGG-M, many AlexNets)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.average = nn.AvgPool3d((size, 1, 1), stride=1, padding=((size - 1) // 2, 0, 0))
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, x):
        div = self.average(x.pow(2).unsqueeze(1)).squeeze(1)
        return x.div(div.mul(self.alpha).add(self.k).pow(self.beta))


def test_a_local_response_norm_written_by_hand_is_the_norm():
    # (was: "unsupported module '2.average' (AvgPool3d)")
    torch.manual_seed(0)
    conv0, conv3 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 2, 1)
    by_hand = nn.Sequential(conv0, nn.ReLU(), HandLRN(), conv3)
    module = nn.Sequential(conv0, nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), conv3)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(by_hand(x), module(x))  # the same function
    t, u = trace_model(by_hand, (3, 8, 8)), trace_model(module, (3, 8, 8))
    assert [g.units for g in t.graph.groups] == [g.units for g in u.graph.groups]
    torch.testing.assert_close(unit_weights(t)["3"]["0"], unit_weights(u)["3"]["0"])
    assert t.graph.layer("2.average").params["window"] == [5, 2]
    assert t.graph.layer("3").rf_size == u.graph.layer("3").rf_size == [3.0, 3.0]


@pytest.mark.parametrize("include_pad", [True, False])
def test_a_window_over_the_channels_averages_them(include_pad):
    # the band matrix of a (5, 1, 1) average over x.unsqueeze(1), against torch's own pooling
    from cnnvis_gl.model.weights import _window_band

    basis = torch.eye(7).view(7, 1, 7, 1, 1)  # image i: channel i is 1
    pooled = F.avg_pool3d(basis, (5, 1, 1), 1, (2, 0, 0), count_include_pad=include_pad)
    torch.testing.assert_close(_window_band(7, 5, 2, include_pad), pooled.view(7, 7).T)


def test_other_3d_pooling_is_refused_in_one_line():
    class Video(nn.Module):
        def forward(self, x):
            return F.avg_pool3d(x.unsqueeze(2).expand(-1, -1, 4, -1, -1), 2).mean((2, 3, 4))

    with pytest.raises(ModelError, match=r"^avg_pool3d .*only as a window over neighbouring"):
        trace_model(nn.Sequential(nn.Conv2d(3, 4, 3), Video()), (3, 8, 8))


class _Binarize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.sign()

    @staticmethod
    def backward(ctx, grad):
        return grad


class BinarizeConv2d(nn.Conv2d):
    """itayhubara/BinaryNet.pytorch: sign of the inputs and of the weights, a bias expanded
    like the output."""

    def forward(self, x):
        out = F.conv2d(_Binarize.apply(x), _Binarize.apply(self.weight), None, self.stride,
                       self.padding)  # fmt: skip
        return out + self.bias.view(1, -1, 1, 1).expand_as(out)


def test_binarized_activations_and_weights():
    # (was: "unsupported operation 'sign'", and the bias expanded like the map "moves values
    # across positions")
    m = _seeded(nn.Sequential(nn.Conv2d(3, 4, 3), BinarizeConv2d(4, 2, 3), nn.Flatten()))
    t = trace_model(m, (3, 6, 6))
    assert [u.name for u in t.graph.units] == ["0", "1.conv2d"]
    kinds = ["input", "conv", "act", "conv", "add", "flatten"]
    assert [lay.kind for lay in t.graph.layers] == kinds
    # the weights between the units are the binarized kernel's
    torch.testing.assert_close(unit_weights(t)["1.conv2d"]["0"], m[1].weight.sign().sum((2, 3)))


class ShakeBlock(nn.Module):
    """hysts' shake-shake block: two branches mixed (a join), and a shortcut that is itself a
    concatenation of two 1×1 convs (a join on the other side of the residual add)."""

    def __init__(self):
        super().__init__()
        self.p1, self.p2 = (nn.Conv2d(2, 4, 3, padding=1, bias=False) for _ in range(2))
        self.s1, self.s2 = (nn.Conv2d(2, 2, 1, bias=False) for _ in range(2))

    def forward(self, x):
        y = self.p1(F.relu(x)) * 0.5 + self.p2(F.relu(x)) * 0.5
        return y + torch.cat([self.s1(x), self.s2(x)], 1)


def test_joins_on_both_sides_of_a_residual_block_keep_it_one_row():
    # (was: three rows, the mixed branches' convs, the shortcut's concatenation, and the
    # block's output with the next block's first layers)
    m = _seeded(nn.Sequential(nn.Conv2d(3, 2, 1), ShakeBlock(), nn.Conv2d(4, 2, 1)))
    t = trace_model(m, (3, 4, 4))
    assert [g.units for g in t.graph.groups] == [["0"], ["1.s1", "1.s2", "1.p1"], ["2"]]


class HandPooledHead(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.a(x))
        if self.how == "max":  # a global max pool in two steps
            x = x.max(dim=3)[0].max(dim=2)[0]
        elif self.how == "logsumexp":  # a smooth maximum over the positions
            x = torch.logsumexp(x.flatten(2), dim=2)
        elif self.how == "std":  # style pooling (SRM)
            x = x.view(x.size(0), x.size(1), -1).std(-1)
        else:
            x = x.var((2, 3))
        return self.fc(x)


@pytest.mark.parametrize("how", ["max", "logsumexp", "std", "var"])
def test_global_pooling_written_by_hand(how):
    # (were: "unsupported tensor of shape (2, 4, 6)", "unsupported operation 'logsumexp'", …)
    m = _seeded(HandPooledHead(how))
    t = trace_model(m, (3, 6, 6))
    pools = [lay for lay in t.graph.layers if lay.kind == "pool"]
    assert len(pools) == 1 and pools[0].shape == [4] and pools[0].rf_size == [6.0, 6.0]
    torch.testing.assert_close(unit_weights(t)["fc"]["a"], m.fc.weight.detach())
    data = _images()
    snap = cv.analyze(m, data, progress=False)  # the statistics pass follows the same calls
    assert snap["units/fc/A_max"].shape == (2, 2)


class CoordAtt(nn.Module):
    """Coordinate attention (Hou et al., Andrew-Qibin/CoordAttention): row and column pools
    concatenated along the height, a shared 1×1 conv, split, two 1×1 convs, two gates."""

    def __init__(self, c, mip=4):
        super().__init__()
        self.pool_h, self.pool_w = nn.AdaptiveAvgPool2d((None, 1)), nn.AdaptiveAvgPool2d((1, None))
        self.conv1, self.bn1 = nn.Conv2d(c, mip, 1), nn.BatchNorm2d(mip)
        self.conv_h, self.conv_w = nn.Conv2d(mip, c, 1), nn.Conv2d(mip, c, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        y = torch.cat([self.pool_h(x), self.pool_w(x).permute(0, 1, 3, 2)], dim=2)
        y = F.hardswish(self.bn1(self.conv1(y)))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv_h(y_h).sigmoid()
        a_w = self.conv_w(y_w.permute(0, 1, 3, 2)).sigmoid()
        return x * a_w * a_h


class TripletAttention(nn.Module):
    """Triplet attention (landskape-ai): a CBAM-style spatial gate on the map and on the map
    rotated so that its height (its width) is the channel axis, the three averaged."""

    def __init__(self):
        super().__init__()
        self.gates = nn.ModuleList(nn.Conv2d(2, 1, 3, padding=1) for _ in range(3))

    def _gate(self, k, x):
        pooled = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), 1)
        return x * torch.sigmoid_(self.gates[k](pooled))

    def forward(self, x):
        h = self._gate(0, x.permute(0, 2, 1, 3).contiguous()).permute(0, 2, 1, 3).contiguous()
        w = self._gate(1, x.permute(0, 3, 2, 1).contiguous()).permute(0, 3, 2, 1).contiguous()
        return (1 / 3) * (self._gate(2, x) + h + w)


class SpatialGroupEnhance(nn.Module):
    """SGE (implus/PytorchInsight): the channel groups moved into the batch, each gated by
    its normalised similarity to its mean."""

    def __init__(self, groups=2):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))
        self.sig = nn.Sigmoid()

    def forward(self, x):
        b, c, h, w = x.size()
        x = x.view(b * self.groups, -1, h, w)
        t = (x * F.adaptive_avg_pool2d(x, 1)).sum(dim=1, keepdim=True).view(b * self.groups, -1)
        t = (t - t.mean(dim=1, keepdim=True)) / (t.std(dim=1, keepdim=True) + 1e-5)
        t = t.view(b, self.groups, h, w) * self.weight + self.bias
        x = x * self.sig(t.view(b * self.groups, 1, h, w))
        return x.view(b, c, h, w)


class SRM(nn.Module):
    """Style-based recalibration (hyunjaelee410/style-based-recalibration-module): each
    channel's mean and standard deviation side by side, (C, 2), weighted per channel, a gate."""

    def __init__(self, c):
        super().__init__()
        self.cfc = nn.Parameter(torch.zeros(c, 2))
        self.bn = nn.BatchNorm2d(c)
        self.activation = nn.Sigmoid()

    def forward(self, x):
        n, c = x.shape[:2]
        mean = x.view(n, c, -1).mean(dim=2, keepdim=True)
        std = (x.view(n, c, -1).var(dim=2, keepdim=True) + 1e-5).sqrt()
        z = torch.sum(torch.cat((mean, std), dim=2) * self.cfc[None, :, :], dim=2)
        return x * self.activation(self.bn(z[:, :, None, None]))


class Attended(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.att = attention
        self.b = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        return self.b(y if self.att is None else self.att(y)).mean((2, 3))


@pytest.mark.parametrize(
    "attention, left_out",
    [
        (lambda: CoordAtt(4), ["att.sigmoid_1 → att.mul", "att.sigmoid → att.mul_1"]),
        (TripletAttention, ["att.sigmoid → att.mul", "att.sigmoid_1 → att.mul_1"]),
        (SpatialGroupEnhance, ["att.sig → att.mul_2"]),
        (lambda: SRM(4), ["att.activation → att.mul_1"]),
    ],
    ids=["coordinate", "triplet", "sge", "srm"],
)
def test_gates_that_are_no_maps_are_left_out(attention, left_out, tmp_path):
    # (were: "unsupported reshape at 'att.cat'", "… 'att.contiguous'", "mean over dimensions
    # [1] at 'att.mean'", "unsupported tensor of shape …" (SRM): the whole model refused)
    m = _seeded(Attended(attention()))
    plain = Attended(None)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("att.")})
    t, bare = trace_model(m, (3, 6, 6)), trace_model(plain, (3, 6, 6))
    assert t.graph.left_out == left_out
    # the gates' convs are no units (the triplet's unrotated spatial gate is one, as CBAM's)
    triplet = isinstance(m.att, TripletAttention)
    assert [u.name for u in t.graph.units] == ["a", *["att.gates.2"] * triplet, "b"]
    # the layers that fed those gates alone are dropped (coordinate attention's pools)
    assert not any("pool" in lay.name or "conv" in lay.name for lay in t.graph.layers)
    # the gates count as 1, the gated map keeps its channels: the plain model's weights (the
    # triplet's x·g/3 + x/3 + x/3 included)
    torch.testing.assert_close(unit_weights(t)["b"]["a"], unit_weights(bare)["b"]["a"])
    # and the units measure the real, gated values
    snap = _measures_b(m, _images())
    snap.save(tmp_path, 0)
    assert cv.open_run(tmp_path).graph.left_out == left_out  # (kept in the run's manifest)


class BatchMixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        y = self.a(x)
        return self.b(y.view(y.shape[0] * 2, 2, *y.shape[2:])).mean((1, 2, 3))


def test_a_layer_reading_the_batch_mixed_into_the_channels_is_refused():
    # (was: read silently as the first image's values, a map of 2 channels)
    with pytest.raises(ModelError) as e:
        trace_model(_seeded(BatchMixed()), (3, 4, 4))
    assert "mixes the batch with the channels" in str(e.value) and "'view'" in str(e.value)


def test_info_names_the_gates_left_out(tmp_path, capsys):
    from cnnvis_gl.cli import main

    f = tmp_path / "coordinate.py"
    f.write_text(
        "from test_graph_collections import Attended, CoordAtt\n\n\n"
        "def net():\n    return Attended(CoordAtt(4))\n"
    )
    assert main(["info", f"{f}:net"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("2 gate branches left out (computed from tensors that are no maps")
    assert line.endswith(": att.sigmoid_1 → att.mul, att.sigmoid → att.mul_1")


class TokenNorms(nn.Module):
    """VAN's stages end in a LayerNorm over the map flattened to tokens,
    ``x.flatten(2).transpose(1, 2)``, reshaped back (``x.reshape(b, h, w, -1).permute(0, 3, 1,
    2)``), and its head pools the tokens (``x.mean(dim=1)``); ``tokens=False``: the same norms
    on the map permuted channels-last (ConvNeXt's way), and a spatial mean."""

    def __init__(self, tokens=True):
        super().__init__()
        self.tokens = tokens
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.n1, self.n2 = nn.LayerNorm(4), nn.LayerNorm(6)
        self.fc = nn.Linear(6, 2)

    def _norm(self, norm, x):
        b, c, h, w = x.shape
        if self.tokens:
            return norm(x.flatten(2).transpose(1, 2)).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x):
        x = self._norm(self.n1, F.relu(self.a(x)))
        x = self.b(x)
        if self.tokens:
            return self.fc(self.n2(x.flatten(2).transpose(1, 2)).mean(dim=1))
        return self.fc(self._norm(self.n2, x).mean((2, 3)))


def test_a_map_flattened_to_tokens_is_the_map_channels_last():
    # (was: "unsupported reshape at 'transpose': a tensor of shape (36, 4) reaches a layer")
    m = _seeded(TokenNorms())
    twin = TokenNorms(tokens=False)
    twin.load_state_dict(m.state_dict())
    t, ref = trace_model(m, (3, 6, 6)), trace_model(twin.eval(), (3, 6, 6))
    assert [u.name for u in t.graph.units] == [u.name for u in ref.graph.units] == ["a", "b", "fc"]
    # (a's tap: its norm's tokens moved back to a channels-first map; b's: its norm's tokens)
    assert [u.tap for u in t.graph.units] == ["permute", "n2", "fc"]
    uw, uw_ref = unit_weights(t), unit_weights(ref)
    for unit, src in (("b", "a"), ("fc", "b")):
        torch.testing.assert_close(uw[unit][src], uw_ref[unit][src])
    pool = next(lay for lay in t.graph.layers if lay.kind == "pool")
    assert pool.params == {"global": True} and pool.rf_size == [6.0, 6.0]
    # the statistics read the tokens as the map they are
    data = _images()
    a, b = cv.analyze(m, data, progress=False), cv.analyze(twin, data, progress=False)
    for key in ("units/a/max_response", "units/a/A_mean", "units/b/topk_box", "units/fc/A_max"):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-5, err_msg=key)
    # and an ablation zeroes a channel of the tokens (b's neuron 1 at its norm)
    from cnnvis_gl.model.graph import channel_layouts
    from cnnvis_gl.stats.ablation import ablate

    images, labels, _ = next(data.batches(5))
    layouts = channel_layouts(t.graph)
    assert layouts["n2"] == ["last", 6, 3, 3]
    got = ablate(m, data.batches(5), [{"n2": [1]}], 2, layouts=layouts)[0]
    with torch.no_grad():
        y = m.b(m._norm(m.n1, F.relu(m.a(images))))
        tokens = m.n2(y.flatten(2).transpose(1, 2))
        tokens[..., 1] = 0
        loss = F.cross_entropy(m.fc(tokens.mean(dim=1)), labels, reduction="none").double()
    want = torch.zeros(2, dtype=torch.float64).index_add_(0, labels, loss)
    np.testing.assert_allclose(got.loss, want.numpy(), rtol=1e-6)
    assert not np.allclose(got.loss, got.loss_base)


class NonLocal(nn.Module):
    """A non-local block (AlexHex7/Non-local_pytorch's embedded Gaussian, 2-D): g's channels
    mixed over the positions by ``softmax(θᵀφ)``, g and φ subsampled."""

    def __init__(self, c, sub_sample=True):
        super().__init__()
        self.inter = c // 2
        pool = nn.MaxPool2d(2) if sub_sample else nn.Identity()
        self.g = nn.Sequential(nn.Conv2d(c, self.inter, 1), pool)
        self.theta = nn.Conv2d(c, self.inter, 1)
        self.phi = nn.Sequential(nn.Conv2d(c, self.inter, 1), pool)
        self.W = nn.Conv2d(self.inter, c, 1)

    def forward(self, x):
        b = x.size(0)
        g_x = self.g(x).view(b, self.inter, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(b, self.inter, -1).permute(0, 2, 1)
        f = torch.matmul(theta_x, self.phi(x).view(b, self.inter, -1))
        y = torch.matmul(F.softmax(f, dim=-1), g_x)
        y = y.permute(0, 2, 1).contiguous().view(b, self.inter, *x.size()[2:])
        return self.W(y) + x


@pytest.mark.parametrize("sub_sample", [True, False])
def test_a_non_local_block_mixes_its_channels_over_all_positions(sub_sample):
    # (was: "matmul at 'att.matmul_1': only a map's positions pooled with attention weights")
    m = _seeded(Attended(NonLocal(4, sub_sample)))
    t = trace_model(m, (3, 6, 6))
    assert t.graph.left_out == ["att.softmax → att.matmul_1"]
    # θ and φ fed the attention alone: no units; g's channels reach W through the mixing
    assert [u.name for u in t.graph.units] == ["a", "att.g.0", "att.W", "b"]
    mix = t.graph.layer("att.matmul_1")
    assert mix.kind == "pool" and mix.shape == [2, 6, 6] and mix.params["attention"]
    # every position after it sees the whole image
    assert mix.rf_size == [6.0, 6.0] and mix.rf_jump == [0.0, 0.0]
    assert t.graph.layer("b").rf_size == [6.0, 6.0]
    uw = unit_weights(t)
    torch.testing.assert_close(uw["att.W"]["att.g.0"], _k(m.att.W))  # the mixing: identity
    data = _images()
    snap = _measures_b(m, data)
    # its top images are whole images
    box = np.asarray(snap["units/b/topk_box"])
    assert (box[..., :2] == 0).all() and (box[..., 2:] == 6).all()


class MHSA(nn.Module):
    """BoTNet's multi-head self-attention (as pprp's hub writes it): q, k, v 1×1 convs viewed
    (b, heads, c / heads, h·w); ``v @ softmax(qᵀk + relative positions)ᵀ``, viewed back."""

    def __init__(self, c, size, heads=2):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Conv2d(c, c, 1) for _ in range(3))
        self.rel_h = nn.Parameter(torch.randn(1, heads, c // heads, 1, size))
        self.rel_w = nn.Parameter(torch.randn(1, heads, c // heads, size, 1))

    def forward(self, x):
        b, c, w, h = x.size()
        q, k, v = (f(x).view(b, self.heads, c // self.heads, -1)
                   for f in (self.query, self.key, self.value))  # fmt: skip
        position = (self.rel_h + self.rel_w).view(1, self.heads, c // self.heads, -1)
        energy = torch.matmul(q.permute(0, 1, 3, 2), k)
        energy = energy + torch.matmul(position.permute(0, 1, 3, 2), q)
        attention = F.softmax(energy, dim=-1)
        return torch.matmul(v, attention.permute(0, 1, 3, 2)).view(b, c, w, h)


def test_multi_head_self_attention_mixes_each_channel_over_all_positions():
    # (was: "matmul at 'att.matmul_2': only a map's positions pooled with attention weights
    # (a global-context block) or mixed by them …")
    m = _seeded(Attended(MHSA(4, 6)))
    t = trace_model(m, (3, 6, 6))
    assert t.graph.left_out == ["att.permute_2 → att.matmul_2"]
    # q and k fed the attention alone: no units; v's channels reach b through the mixing
    assert [u.name for u in t.graph.units] == ["a", "att.value", "b"]
    mix = t.graph.layer("att.matmul_2")
    assert (mix.kind, mix.inputs, mix.shape) == ("pool", ["att.value"], [4, 6, 6])
    assert mix.params["attention"] and mix.params["view"] == [2, 2, 36]
    assert mix.rf_size == [6.0, 6.0] and t.graph.layer("b").rf_size == [6.0, 6.0]
    torch.testing.assert_close(unit_weights(t)["b"]["att.value"], _k(m.b))  # mixing: identity
    _measures_b(m, _images())


class FReLU(nn.Module):
    """Funnel activation (megvii-model/FunnelAct): ``torch.max(x, T(x))``, T a depthwise conv
    and a norm; ``how``: the same written as ``torch.maximum``, as the mean that is its linear
    stand-in, or a ReLU written as a maximum with zeros."""

    def __init__(self, c, how="max"):
        super().__init__()
        self.how = how
        self.conv_frelu = nn.Conv2d(c, c, 3, 1, 1, groups=c)
        self.bn_frelu = nn.BatchNorm2d(c)

    def forward(self, x):
        t = self.bn_frelu(self.conv_frelu(x))
        if self.how == "max":
            return torch.max(x, t)
        if self.how == "maximum":
            return torch.maximum(x, t)
        if self.how == "mean":
            return 0.5 * (x + t)
        return torch.maximum(x, torch.zeros(())) + 0 * t  # (t: the same layers in the graph)


@pytest.mark.parametrize("how", ["max", "maximum"])
def test_an_element_wise_maximum_of_two_maps_joins_them(how):
    # (was: "max at 'att.max': only a reduction of one feature map over dimensions is supported
    # (not the element-wise maximum of two)")
    m = _seeded(Attended(FReLU(4, how)))
    twin = Attended(FReLU(4, "mean"))
    twin.load_state_dict(m.state_dict())
    t, ref = trace_model(m, (3, 6, 6)), trace_model(twin.eval(), (3, 6, 6))
    join = next(lay for lay in t.graph.layers if lay.op == how)
    assert join.kind == "add" and join.params["signs"] == [0.5, 0.5]
    assert [u.name for u in t.graph.units] == ["a", "att.conv_frelu", "b"]
    uw, uw_ref = unit_weights(t), unit_weights(ref)  # the mean: the maximum's stand-in
    for unit, src in (("b", "att.conv_frelu"), ("att.conv_frelu", "a")):
        assert sorted(uw[unit]) == sorted(uw_ref[unit])
        torch.testing.assert_close(uw[unit][src], uw_ref[unit][src])
    data = _images()
    _measures_b(m, data)


def test_a_maximum_with_a_constant_is_an_activation():
    m = _seeded(Attended(FReLU(4, "relu")))
    t = trace_model(m, (3, 6, 6))
    relu = next(lay for lay in t.graph.layers if lay.op == "maximum")
    assert relu.kind == "add" and relu.params["signs"] == [1.0], relu  # (no join: one input)
    assert len(relu.inputs) == 1 and t.graph.layer(relu.inputs[0]).op in ("relu", "ReLU")


class Assigned(nn.Module):
    """Tensors built by assignment: DiverseBranchBlock's BNAndPadLayer fills the border of a
    padded map with values from its norm (``how="border"``), a map assembled from two
    (``"halves"``); each with its out-of-place twin (``F.pad``, ``torch.cat``)."""

    def __init__(self, how, twin=False):
        super().__init__()
        self.how, self.twin = how, twin
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c = nn.Conv2d(8 if how == "halves" else 4, 2, 3)

    def forward(self, x):
        y = self.bn(self.a(x))
        if self.how == "border":
            y = F.pad(y, [1] * 4)
            if not self.twin:
                fill = (self.bn.bias - self.bn.running_mean).detach().view(1, -1, 1, 1)
                y[:, :, 0:1, :] = fill
                y[:, :, -1:, :] = fill
                y[:, :, :, 0:1] = fill
                y[:, :, :, -1:] = 0.5
        elif self.twin:
            y = torch.cat((y, self.b(x)), 1)
        else:
            out = torch.zeros(len(x), 8, *x.shape[2:])
            out[:, :4] = y
            out[:, 4:] = self.b(x)
            y = out
        return self.c(F.relu(y)).mean((2, 3))


@pytest.mark.parametrize("how", ["border", "halves"])
def test_tensors_built_by_assignment_are_their_out_of_place_twins(how):
    # (was: "in-place assignment to a slice of a tensor … is not supported")
    m = _seeded(Assigned(how))
    twin = Assigned(how, twin=True)
    twin.load_state_dict(m.state_dict())
    t, ref = trace_model(m, (3, 6, 6)), trace_model(twin.eval(), (3, 6, 6))
    name = {"setitem_1": "cat"}.get  # (the assembled map: the twin's concatenation)
    assert [name(u.name, u.name) for u in t.graph.units] == [u.name for u in ref.graph.units]
    c = t.graph.layer("c")
    assert (c.rf_size, c.rf_start) == (ref.graph.layer("c").rf_size, ref.graph.layer("c").rf_start)
    uw, uw_ref = unit_weights(t), unit_weights(ref)
    assert sorted(name(s, s) for s in uw["c"]) == sorted(uw_ref["c"])
    for src in uw["c"]:
        torch.testing.assert_close(uw["c"][src], uw_ref["c"][name(src, src)])
    data = _images()
    snap = cv.analyze(m, data, progress=False)  # (the statistics pass counts them too)
    seen = []
    hook = m.c.register_forward_hook(lambda mod, args, out: seen.append(out))
    with torch.no_grad():
        m(next(data.batches(5))[0])
    hook.remove()
    torch.testing.assert_close(
        torch.from_numpy(np.asarray(snap["units/c/max_response"])), seen[0].amax((2, 3)).amax(0)
    )


def test_an_assignment_to_a_view_of_a_map_is_refused():
    class IntoView(nn.Module):  # (PSA: SPC_out = x.view(…); SPC_out[:, i] = conv(SPC_out[:, i]))
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(2, 2, 1)

        def forward(self, x):
            y = self.a(x)
            v = y.view(len(y), 2, 2, *y.shape[2:])
            v[:, 0] = self.b(v[:, 0])
            return y.mean((2, 3))

    with pytest.raises(ModelError, match="assignment to a slice of a view") as e:
        trace_model(_seeded(IntoView()), (3, 4, 4))
    assert "\n" not in str(e.value)


class StackedSK(nn.Module):
    """Selective kernels as External-Attention-pytorch writes them: the branches stacked
    before the batch axis, ``torch.stack(outs, 0)``, weighed by a softmax over that axis of
    stacked gates and summed, ``(softmax(torch.stack(gates, 0), 0) * feats).sum(0)``;
    ``gated=False``: the plain sum of the branches (its twin with every gate 1)."""

    def __init__(self, c=4, gated=True):
        super().__init__()
        self.gated = gated
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2), nn.ReLU()) for k in (1, 3)
        )
        self.fc = nn.Linear(c, 3)
        self.fcs = nn.ModuleList(nn.Linear(3, c) for _ in range(2))
        self.softmax = nn.Softmax(dim=0)

    def forward(self, x):
        b, c = x.shape[:2]
        outs = [conv(x) for conv in self.convs]
        if not self.gated:
            return sum(outs)
        feats = torch.stack(outs, 0)
        z = self.fc(sum(outs).mean(-1).mean(-1))
        gates = self.softmax(torch.stack([fc(z).view(b, c, 1, 1) for fc in self.fcs], 0))
        return (gates * feats).sum(0)


def test_branches_stacked_before_the_batch_weighed_and_summed_are_a_join():
    # (was: "unsupported reshape at 'att.stack': it mixes the batch with the channels")
    m = _seeded(Attended(StackedSK()))
    twin = Attended(StackedSK(gated=False))
    twin.load_state_dict(m.state_dict())
    t = trace_model(m, (3, 6, 6))
    assert t.graph.left_out == ["att.softmax → att.mul"]
    add = t.graph.layer("att.sum")
    assert (add.kind, add.inputs, add.params["signs"]) == (
        "add", ["att.convs.0.1", "att.convs.1.1"], [1.0, 1.0],
    )  # fmt: skip
    # the attention's layers fed the gates alone: dropped; the gates count as 1
    assert not [lay.name for lay in t.graph.layers if "fc" in lay.name]
    got, want = unit_weights(t), unit_weights(trace_model(twin, (3, 6, 6)))
    assert {k: list(v) for k, v in got.items()} == {k: list(v) for k, v in want.items()}
    for unit, sources in want.items():
        for src, w in sources.items():
            torch.testing.assert_close(got[unit][src], w)
    _measures_b(m, _images())  # the units after the join measure the real, weighed sum


class StackRead(nn.Module):
    """A layer reading two maps stacked before the batch axis: its two rows are no images,
    though they are as many as the capture's."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.stack([self.a(x), self.b(x)], 0).relu().sum(0).mean((2, 3))


def test_a_layer_reading_maps_stacked_before_the_batch_is_refused():
    # (was: the ReLU read its two rows as the capture's two images; the error named the sum)
    with pytest.raises(ModelError, match=r"unsupported stack at 'stack': maps stacked before "
                       "the batch axis are supported where they are averaged or summed"):  # fmt: skip
        trace_model(_seeded(StackRead()), (3, 4, 4))


class FocalPieces(nn.Module):
    """FocalNet's ways of pooling: a global context pooled axis by axis with ``keepdim=True``
    (``ctx.mean(2, keepdim=True).mean(3, keepdim=True)``) times a spatial gate, and a head
    pooling the map's tokens transposed back with ``nn.AdaptiveAvgPool1d(1)``; ``twin``: the
    same with ``x.mean((2, 3), keepdim=True)`` and ``x.mean((2, 3))``."""

    def __init__(self, twin=False):
        super().__init__()
        self.twin = twin
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.gate = nn.Conv2d(4, 1, 1)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = F.relu(self.a(x))
        ctx = y.mean((2, 3), keepdim=True) if self.twin else y.mean(2, True).mean(3, True)
        z = self.b(y) + F.gelu(ctx) * self.gate(y)
        if self.twin:
            return self.fc(z.mean((2, 3)))
        tokens = z.flatten(2).transpose(1, 2)
        return self.fc(torch.flatten(self.pool(tokens.transpose(1, 2)), 1))


def test_pools_written_axis_by_axis_or_over_tokens_are_global_pools(tmp_path):
    # (was: "mean over dimensions [2] at 'mean'" and "unsupported module 'pool'
    # (torch.nn.modules.pooling.AdaptiveAvgPool1d)")
    m = _seeded(FocalPieces())
    twin = FocalPieces(twin=True)
    twin.load_state_dict(m.state_dict())
    t, t2 = trace_model(m, (3, 6, 6)), trace_model(twin, (3, 6, 6))
    assert [u.name for u in t.graph.units] == [u.name for u in t2.graph.units]
    for name in ("mean_1", "pool"):
        lay = t.graph.layer(name)
        assert lay.kind == "pool" and lay.params["global"]
    assert t.graph.layer("mean_1").shape == [4, 1, 1] and t.graph.layer("pool").shape == [4]
    got, want = unit_weights(t), unit_weights(t2)
    for unit, sources in want.items():
        for src, w in sources.items():
            torch.testing.assert_close(got[unit][src], w)
    data = _images()
    snap, snap2 = cv.analyze(m, data, progress=False), cv.analyze(twin, data, progress=False)
    for key in snap2.arrays:  # the same statistics, unit by unit
        if key.startswith("units/"):
            np.testing.assert_allclose(np.asarray(snap[key]), np.asarray(snap2[key]), atol=1e-5)


class StackedThenViewed(nn.Module):
    """Two maps stacked before the batch axis, then laid out as one image's channels: with
    the images first (``permute(1, 0, …)``, a concatenation), or taking the stacked axis for
    the batch (the rows are no images: each holds both images of one map)."""

    def __init__(self, permute):
        super().__init__()
        self.permute = permute
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)
        self.c = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        s = torch.stack([self.a(x), self.b(x)], 0)  # (2, B, 4, H, W)
        if self.permute:
            s = s.permute(1, 0, 2, 3, 4)
        return self.c(s.reshape(x.shape[0], 8, *x.shape[2:])).mean((2, 3))


def test_rows_that_are_no_images_are_refused_even_as_many_as_the_batch():
    # (was: the stacked axis, two like the capture's two images, read as the batch: c's
    # inputs taken for a concatenation of a and b)
    t = trace_model(_seeded(StackedThenViewed(permute=True)), (3, 4, 4))
    assert t.graph.layer("c").inputs == ["reshape"] and t.graph.layer("reshape").kind == "cat"
    with pytest.raises(ModelError, match=r"reshape at 'reshape': it mixes the batch .* rows are "
                       "not one image each"):  # fmt: skip
        trace_model(_seeded(StackedThenViewed(permute=False)), (3, 4, 4))
