"""The graph rules of docs/GRAPH.md on tiny models with hand-computed answers: concatenation,
slicing / chunk / channel shuffle, gating, layer scale, channels-last blocks, flatten orders,
forwards that torch.fx cannot trace, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.data import ImageData
from cnnvis_gl.errors import ModelError
from cnnvis_gl.model import build_graph, trace_model
from cnnvis_gl.model.weights import group_weights, unit_weights
from cnnvis_gl.stats.probe import Probe


def _seeded(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p)
    return model.eval()


def _k(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight.detach().sum((2, 3))


class Branches(nn.Module):
    """Inception-style: two branches concatenated, then a conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1, bias=False)
        self.b = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.d = nn.Conv2d(5, 4, 1, bias=False)

    def forward(self, x):
        c = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)
        return self.d(c).mean((2, 3))


def test_concatenation_is_a_unit_with_all_producers_neurons():
    m = _seeded(Branches())
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    cat = next(u for u in g.units if g.layer(u.tap).kind == "cat")
    assert cat.channels == 5 and g.layer(cat.tap).inputs == ["relu", "relu_1"]
    assert [gr.name for gr in g.groups] == ["mixed1", "conv1"]
    assert g.groups[0].unit == cat.name
    uw = unit_weights(t)
    # rows of the concatenation: identity from each producer, zeros from the other
    torch.testing.assert_close(uw[cat.name]["a"], torch.cat([torch.eye(2), torch.zeros(3, 2)]))
    torch.testing.assert_close(uw[cat.name]["b"], torch.cat([torch.zeros(2, 3), torch.eye(3)]))
    torch.testing.assert_close(uw["d"][cat.name], _k(m.d))
    # the group of the concatenation reads the input through both branches, stacked
    gw = group_weights(t)["mixed1"]["input"]
    torch.testing.assert_close(gw, torch.cat([_k(m.a), _k(m.b)]))
    # receptive field: the widest branch
    assert g.layer(cat.tap).rf_size == [3, 3]


class Shuffle(nn.Module):
    """ShuffleNet-style: chunk, one half through a conv, concatenate, channel shuffle."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.b = nn.Conv2d(2, 2, 1, bias=False)
        self.c = nn.Conv2d(4, 3, 1, bias=False)

    def forward(self, x):
        y = torch.relu(self.a(x))
        x1, x2 = y.chunk(2, dim=1)
        out = torch.cat((x1, self.b(x2)), dim=1)
        n, c, h, w = out.size()
        out = out.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        return self.c(out).mean((2, 3))


def test_split_and_channel_shuffle_map_channels_exactly():
    m = _seeded(Shuffle())
    t = trace_model(m, (3, 4, 4))
    g = t.graph
    shuffled = next(u for u in g.units if g.layer(u.tap).kind == "cat")
    assert shuffled.channels == 4
    uw = unit_weights(t)
    # shuffled order: x1[0], b[0], x1[1], b[1]; x1 = channels 0, 1 of a
    e = torch.eye(4)
    torch.testing.assert_close(
        uw[shuffled.name]["a"], torch.stack([e[0], 0 * e[0], e[1], 0 * e[0]])
    )
    eb = torch.eye(2)
    torch.testing.assert_close(
        uw[shuffled.name]["b"], torch.stack([0 * eb[0], eb[0], 0 * eb[0], eb[1]])
    )
    # b reads channels 2, 3 of a (the second chunk)
    expected = torch.zeros(2, 4)
    expected[:, 2:] = _k(m.b)
    torch.testing.assert_close(uw["b"]["a"], expected)
    torch.testing.assert_close(uw["c"][shuffled.name], _k(m.c))


class SE(nn.Module):
    """A squeeze-and-excitation block written with a loop over its children (fx cannot trace
    iterating over a Proxy)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2, 4, 1),
            nn.Hardsigmoid(),
        )
        self.b = nn.Conv2d(4, 3, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        s = y
        for layer in self.se.children():
            s = layer(s)
        return self.b(y * s).amax((2, 3))


def test_gating_keeps_the_gated_channels_and_the_gate_is_its_own_unit():
    m = _seeded(SE())
    t = trace_model(m, (3, 8, 8))
    g = t.graph
    assert g.unit("a").tap == "relu"  # measured before the gating
    gate = g.unit("se.3")
    assert g.layer(gate.tap).op == "Hardsigmoid" and gate.spatial == [1, 1]
    uw = unit_weights(t)
    torch.testing.assert_close(uw["b"]["a"], _k(m.b))  # a data-dependent gate counts as 1
    torch.testing.assert_close(uw["se.3"]["se.1"], _k(m.se[3]))
    # the gated map keeps a's receptive field (the gate sees the whole image)
    mul = next(l for l in g.layers if l.kind == "mul")
    assert mul.rf_size == [3, 3] and g.layer(gate.tap).rf_size == [8, 8]


class SEVector(nn.Module):
    """The other common squeeze-and-excitation: Linear layers on the pooled vector, the gate
    viewed back as a map and broadcast by ``expand_as``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc1, self.fc2 = nn.Linear(4, 2), nn.Linear(2, 4)
        self.b = nn.Conv2d(4, 3, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        b, c, _, _ = y.shape
        w = F.adaptive_avg_pool2d(y, 1).view(b, c)
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w)))).view(b, c, 1, 1)
        return self.b(y * w.expand_as(y)).amax((2, 3))


def test_a_gate_broadcast_by_expand_as_is_still_a_gate():
    m = _seeded(SEVector())
    t = trace_model(m, (3, 8, 8))
    g = t.graph
    assert g.unit("a").tap == "relu" and g.layer(g.unit("fc2").tap).op == "sigmoid"
    mul = next(l for l in g.layers if l.kind == "mul")
    assert mul.params["carriers"] == [0]  # y carries its channels; the gate does not
    uw = unit_weights(t)
    torch.testing.assert_close(uw["b"]["a"], _k(m.b))
    assert "fc2" not in uw["b"]


class GatedEnd(nn.Module):
    """A stage that ends in a squeeze-and-excitation gate, then a classifier."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc1 = nn.Conv2d(4, 2, 1)
        self.fc2 = nn.Conv2d(2, 4, 1)
        self.head = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        y = y * torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return self.head(y.mean((2, 3)))


def test_a_gate_at_the_end_of_a_group_does_not_stand_for_the_group():
    m = _seeded(GatedEnd())
    t = trace_model(m, (3, 8, 8))
    g = t.graph
    conv, fc = g.groups
    # the group's neurons are the gated conv's channels (read after the product), not the gate's
    assert conv.units == ["fc1", "fc2", "a"] and conv.unit == "a"
    assert fc.inputs == [0]
    gw = group_weights(t)
    torch.testing.assert_close(gw[fc.name][conv.name], m.head.weight.detach())


class LayerScaleBlock(nn.Module):
    """ConvNeXt-style: depthwise conv, channels-last LayerNorm + Linear (1×1 convs), layer scale."""

    def __init__(self, c=4):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Linear(c, 6)
        self.pw2 = nn.Linear(6, c)
        self.gamma = nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0]).view(c, 1, 1))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.gamma * y


class ConvNeXtLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 2, stride=2, bias=False)
        self.block = LayerScaleBlock()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((-2, -1)))


def test_channels_last_block_and_layer_scale():
    m = _seeded(ConvNeXtLike())
    with torch.no_grad():
        m.block.gamma.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]).view(4, 1, 1))
    t = trace_model(m, (3, 8, 8))
    g = t.graph
    pw1 = g.unit("block.pw1")
    assert g.layer(pw1.tap).op == "gelu" and g.layer(pw1.tap).channels_last
    assert pw1.channels == 6 and pw1.spatial == [4, 4]  # a 1×1 conv over a 4×4 map
    assert g.layer(g.unit("block.dw").tap).op == "LayerNorm"
    assert g.unit("block.pw2").tap.endswith("add")
    uw = unit_weights(t)
    w1, w2 = m.block.pw1.weight.detach(), m.block.pw2.weight.detach()
    torch.testing.assert_close(uw["block.pw1"]["block.dw"], w1)
    gamma = m.block.gamma.detach().flatten()
    # the block's output: skip (identity from the stem) + layer scale × pw2
    torch.testing.assert_close(uw["block.pw2"]["block.pw1"], gamma[:, None] * w2)
    torch.testing.assert_close(uw["block.pw2"]["stem"], torch.eye(4))
    # the receptive field of a pointwise Linear is its input's (3×3 dw after a 2×2 stride-2 stem)
    assert g.layer(pw1.tap).rf_size == [6, 6]


def test_channels_last_taps_are_measured_per_channel():
    m = _seeded(ConvNeXtLike())
    torch.manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    data = ImageData.from_tensors(images, [0, 1, 2, 0, 1, 2], ["a", "b", "c"])
    probe = Probe(m, (3, 8, 8))
    acc = probe.collect(
        ((x, y, i, lambda p, i=i: data.raw(i[p].numpy())) for x, y, i in data.batches(4)),
        3,
        progress=False,
    )
    arrays, _ = acc.finalize(probe.graph)
    x = torch.cat([b for b, _, _ in data.batches(6)])
    with torch.no_grad():
        h = F.gelu(m.block.pw1(m.block.norm(m.block.dw(m.stem(x)).permute(0, 2, 3, 1))))
    resp = h.amax((1, 2))  # [B, 6]: spatial max per channel
    expected = torch.stack(
        [
            resp[torch.tensor([0, 3])].mean(0),
            resp[torch.tensor([1, 4])].mean(0),
            resp[torch.tensor([2, 5])].mean(0),
        ],
        1,
    )
    torch.testing.assert_close(
        torch.from_numpy(arrays["units/block.pw1/A_max"]), expected, rtol=1e-5, atol=1e-5
    )


class FlattenLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 2, 1, bias=False)
        self.fc = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        return self.fc(torch.relu(self.c(x)).permute(0, 2, 3, 1).flatten(1))


def test_flatten_in_any_order_sums_each_channels_positions():
    m = _seeded(FlattenLast())
    t = trace_model(m, (3, 2, 2))
    w = m.fc.weight.detach()  # features in (h, w, c) order: channel = feature % 2
    expected = torch.stack([w[:, 0::2].sum(1), w[:, 1::2].sum(1)], 1)
    torch.testing.assert_close(unit_weights(t)["fc"]["c"], expected)


class Dense(nn.Module):
    """DenseNet-style block: every layer reads the concatenation of all earlier features."""

    def __init__(self, growth=2, n=3):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(4 + k * growth),
                nn.ReLU(),
                nn.Conv2d(4 + k * growth, growth, 3, padding=1),
            )
            for k in range(n)
        )
        self.fc = nn.Linear(4 + n * growth, 10)

    def forward(self, x):
        feats = [self.stem(x)]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return self.fc(F.adaptive_avg_pool2d(F.relu(torch.cat(feats, 1)), 1).flatten(1))


class DualPath(nn.Module):
    """DPN-style: a residual part (first d channels, added) and a dense part (concatenated)."""

    def __init__(self, d=4, k=2):
        super().__init__()
        self.d = d
        self.stem = nn.Conv2d(3, d + k, 1)
        self.conv = nn.Conv2d(d + k, d + k, 3, padding=1)
        self.fc = nn.Linear(d + 2 * k, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = F.relu(self.conv(x))
        d = self.d
        res = x[:, :d] + y[:, :d]
        out = torch.cat([res, x[:, d:], y[:, d:]], dim=1)
        return self.fc(out.mean((2, 3)))


def test_dense_and_dual_path_blocks():
    m = Dense().eval()
    g = build_graph(m, (3, 8, 8))
    last = g.groups[-2]
    assert last.name == "mixed1" and g.unit(last.unit).channels == 10
    t = trace_model(_seeded(DualPath()), (3, 8, 8))
    cat = next(u for u in t.graph.units if t.graph.layer(u.tap).kind == "cat")
    assert cat.channels == 8
    uw = unit_weights(t)[cat.name]
    e = torch.eye(6)
    # residual part: stem + conv (identity both); dense part: stem's channels 4-5, conv's 4-5
    torch.testing.assert_close(uw["stem"], torch.cat([e[:4], e[4:], torch.zeros(2, 6)]))
    assert uw["conv"].shape == (8, 6)


class Acts(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.c(x)
        y = F.mish(F.gelu(F.silu(F.hardswish(F.hardsigmoid(y)))))
        y = y * torch.sigmoid(y)  # swish by hand
        return F.avg_pool2d(y, 2).amax((2, 3))


def test_functional_activations_and_pooling():
    g = build_graph(Acts(), (3, 10, 10))
    # mish feeds both sides of x * sigmoid(x): measured there
    assert g.unit("c").tap == "mish"
    mul = next(l for l in g.layers if l.kind == "mul")
    assert mul.params["carriers"] == [0]  # the sigmoid side is a gate
    kinds = [l.kind for l in g.layers]
    assert kinds.count("act") == 6 and kinds.count("pool") == 2
    assert g.layer("avg_pool2d").rf_jump == [2, 2]


def test_channels_zeroed_by_assignment_are_padding():
    # (was: "in-place assignment to a slice of a tensor is not supported")
    class Assign(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            y = self.c(x)
            y[:, :2] = 0
            return self.fc(y.mean((2, 3)))

    m = _seeded(Assign())
    t = trace_model(m, (3, 4, 4))
    assert [u.name for u in t.graph.units] == ["c", "fc"]
    # channels 0 and 1 hold constants after the assignment: they carry nothing to fc
    want = m.fc.weight.detach().clone()
    want[:, :2] = 0
    torch.testing.assert_close(unit_weights(t)["fc"]["c"], want)


class Tokens(nn.Module):
    """Patches flattened to tokens, a Linear over their channels, a mean over them; with a
    class token in front, a transformer's sequence."""

    def __init__(self, cls_token=False):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 2, stride=2)
        self.cls = nn.Parameter(torch.zeros(1, 1, 4)) if cls_token else None
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        t = self.c(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(len(x), -1, -1), t], 1)
        return self.fc(t).mean(1)


def test_token_sequences_are_refused_with_the_layer_named():
    with pytest.raises(ModelError, match=r"at 'cat': .* \(a class token, as in ViT\)"):
        build_graph(Tokens(cls_token=True), (3, 4, 4))


def test_a_linear_over_a_map_flattened_to_tokens_is_a_1x1_conv():
    m = _seeded(Tokens())
    t = trace_model(m, (3, 4, 4))
    fc = t.graph.layer("fc")
    assert fc.shape == [6, 2, 2] and fc.channels_last and fc.params["view"] == [4, 6]
    assert [u.name for u in t.graph.units] == ["c", "fc"]
    pool = t.graph.layer("mean")
    assert pool.kind == "pool" and pool.shape == [6] and pool.rf_size == [4.0, 4.0]
    # (the fc neurons read c's through the Linear's weight, as a 1×1 conv's)
    assert torch.equal(unit_weights(t)["fc"]["c"], m.fc.weight.detach())


def test_a_forward_that_changes_path_on_real_data_is_a_clear_error():
    class ValueBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            y = self.c(x)
            if x.mean() > 0:  # zeros at capture time: not taken
                y = torch.relu(y)
            return y.mean((2, 3))

    m = ValueBranch().eval()
    probe = Probe(m, (3, 4, 4))
    data = ImageData.from_tensors(
        torch.full((2, 3, 4, 4), 255, dtype=torch.uint8),
        [0, 1],
        ["a", "b"],
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    with pytest.raises(ModelError, match="different path"):
        probe.collect(
            ((x, y, i, lambda p: data.raw(p)) for x, y, i in data.batches(2)), 2, progress=False
        )


class OptionA(nn.Module):
    """The CIFAR ResNet's parameter-free shortcut (He et al.'s option A, as in the popular
    pytorch_resnet_cifar10): every other position, zero channels padded on both sides."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv0(x))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2), "constant", 0)
        return self.fc(F.relu(self.conv1(x) + short).mean((2, 3)))


class SamePad(nn.Module):
    """TensorFlow-style "same" padding before an unpadded conv (as EfficientNet ports do),
    asymmetric, by a module and by F.pad; and an odd-offset strided slice."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv0 = nn.Conv2d(3, 4, 3, stride=2)
        self.conv1 = nn.Conv2d(4, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = F.relu(self.conv0(self.pad(x)))
        x = F.relu(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        return self.conv2(x[:, :, 1::2, 1::2]).mean((2, 3))


def test_padding_and_strided_slices_are_windows_and_channel_padding_is_zero_rows():
    t = trace_model(_seeded(OptionA()), (3, 16, 16))
    g = t.graph
    short = next(layer for layer in g.layers if layer.name.endswith("pad"))
    assert short.kind == "select" and short.shape == [8, 8, 8]
    assert short.params["stride"] == [2, 2] and short.params["padding"] == [0, 0]
    # map: 2 channels of padding (source -1), conv0's 4 channels, 2 of padding
    assert short.params["map"] == [[-1, 0, 1, 1, 2], [0, 0, 1, 4, 1], [-1, 0, 1, 1, 2]]
    # receptive field: conv0's 3×3 every other pixel; the block takes the conv path's 5×5
    assert short.rf_size == [3.0, 3.0] and short.rf_jump == [2.0, 2.0] and short.rf_start == [0, 0]
    assert [u.name for u in g.units] == ["conv0", "conv1", "fc"]
    assert g.layer(g.unit("conv1").tap).rf_size == [5.0, 5.0]
    # weights into the block: the conv's kernel sums plus the shortcut's identity, shifted by 2
    m = t.model
    expected = _k(m.conv1) + torch.cat([torch.zeros(2, 4), torch.eye(4), torch.zeros(2, 4)])
    torch.testing.assert_close(unit_weights(t)["conv1"]["conv0"], expected)

    t = trace_model(_seeded(SamePad()), (3, 15, 15))
    g = t.graph
    pads = [layer for layer in g.layers if layer.kind == "select"]
    assert [(p.shape, p.params["stride"], p.params["padding"]) for p in pads] == [
        ([3, 16, 16], [1, 1], [0, 0]),  # ZeroPad2d((0, 1, 0, 1)): left/top 0
        ([4, 9, 9], [1, 1], [1, 1]),  # reflect padding counts as padding
        ([4, 3, 3], [2, 2], [-1, -1]),  # x[:, :, 1::2, 1::2]: offset 1
    ]
    # receptive fields by hand: conv0 3×3 stride 2 → size 3, jump 2, start 1;
    # conv1 after padding 1 → size 7, start 1 + (1 - 1)·2 = 1; the slice's offset 1 → start 3
    assert g.layer("conv0").rf_start == [1.0, 1.0] and g.layer("conv0").rf_size == [3.0, 3.0]
    assert g.layer("conv1").rf_size == [7.0, 7.0] and g.layer("conv1").rf_start == [1.0, 1.0]
    assert pads[2].rf_start == [3.0, 3.0] and pads[2].rf_jump == [4.0, 4.0]
    torch.testing.assert_close(unit_weights(t)["conv2"]["conv1"], _k(t.model.conv2))


def test_movement_across_positions_is_still_refused():
    class Transposed(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)
            self.d = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.d(self.c(x).transpose(2, 3)).mean((2, 3))

    with pytest.raises(ModelError, match="moves values across positions"):
        build_graph(Transposed(), (3, 8, 8))


class CoordConv(nn.Module):
    """CoordConv: coordinate maps (constants made in forward) concatenated to the features."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.d = nn.Conv2d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = F.relu(self.c(x))
        b, _, h, w = x.shape
        yy = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xx = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return self.fc(F.relu(self.d(torch.cat([x, yy, xx], 1))).mean((2, 3)))


def test_constant_maps_concatenated_to_the_features_carry_no_neurons():
    t = trace_model(_seeded(CoordConv()), (3, 8, 8))
    cat = t.graph.layer("cat")
    assert cat.kind == "select" and cat.params["map"] == [[0, 0, 1, 4, 1], [-1, 0, 1, 1, 2]]
    assert [u.name for u in t.graph.units] == ["c", "d", "fc"]
    torch.testing.assert_close(unit_weights(t)["d"]["c"], _k(t.model.d)[:, :4])


class Upsampled(nn.Module):
    """An attention-style mask branch: down, then back up (functional and module forms)."""

    def __init__(self, mode):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, stride=2)
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.d = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = F.relu(self.c(x))
        y = F.interpolate(x, scale_factor=2, mode=self.up.mode)
        return self.d(torch.sigmoid(self.up(x)) * y).mean((2, 3))


@pytest.mark.parametrize("mode, size", [("nearest", 3.0), ("bilinear", 5.0)])
def test_upsampling_receptive_fields_by_hand(mode, size):
    g = build_graph(Upsampled(mode), (3, 9, 9))
    # c: 3×3 stride 2, no padding → size 3, jump 2, start 1; ×2 up: output y is input
    # (y + ½)/2 - ½ → start 1 + (¼ - ½)·2 = 0.5, jump 1; bilinear reads one more input step
    for name in ("interpolate", "up"):
        up = g.layer(name)
        assert up.kind == "pool" and up.shape == [4, 8, 8]
        assert up.rf_start == [0.5, 0.5] and up.rf_jump == [1.0, 1.0] and up.rf_size == [size] * 2
    t = trace_model(_seeded(Upsampled(mode)), (3, 9, 9))
    torch.testing.assert_close(unit_weights(t)["d"]["c"], _k(t.model.d))


class Pooled(nn.Module):
    """Hand-written global pooling and activations of the public collections."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        y = self.c(x)
        b, c = y.shape[:2]
        if self.how == "squeeze":  # the batch axis survives: a real batch has several images
            v = F.adaptive_avg_pool2d(F.relu(y), 1).squeeze()
        elif self.how == "mean_mean":  # tonylins' MobileNetV2
            v = F.relu(y).mean(3).mean(2)
        elif self.how == "view_mean":  # SE blocks: y.view(b, c, -1).mean(2)
            v = F.relu(y).view(b, c, -1).mean(2)
        elif self.how == "sum":
            v = F.relu(y).sum((2, 3))
        else:  # clamp as ReLU6
            v = torch.clamp(y, 0, 6).amax((2, 3))
        return self.fc(v)


@pytest.mark.parametrize("how", ["squeeze", "mean_mean", "view_mean", "sum", "clamp"])
def test_hand_written_global_pooling_and_clamp(how):
    m = _seeded(Pooled(how))
    t = trace_model(m, (3, 8, 8))
    g = t.graph
    assert [u.name for u in g.units] == ["c", "fc"]
    tap = g.layer(g.unit("c").tap)
    assert tap.kind == "act" and tap.shape == [4, 8, 8]
    pool = next(layer for layer in g.layers if layer.kind == "pool")
    assert pool.inputs == [tap.name] and pool.shape[0] == 4 and pool.rf_size == [8.0, 8.0]
    torch.testing.assert_close(unit_weights(t)["fc"]["c"], m.fc.weight.detach())


def test_new_patterns_measure_the_right_tensors_on_real_images(cifar_dir):
    """End to end on CIFAR-10: each unit's best response is the largest spatial max of the
    tensor the rules say it taps (the option-A block after its add and ReLU; an upsampled
    attention mask's gated map before the product; a tonylins-style mean(3).mean(2) head)."""
    import cnnvis_gl as cv
    from cnnvis_gl.data import open_data

    def option_a(m, x):
        y = F.relu(m.conv0(x))
        return F.relu(m.conv1(y) + F.pad(y[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2)))

    data = open_data(f"cifar10:{cifar_dir}", "test")
    images = data.normalize(data.raw(torch.arange(40)))
    for model, unit, tap in (
        (OptionA(), "conv1", option_a),
        (Upsampled("bilinear"), "c", lambda m, x: F.relu(m.c(x))),
        (Pooled("mean_mean"), "c", lambda m, x: F.relu(m.c(x))),
    ):
        m = _seeded(model)
        snap = cv.analyze(m, data, limit=40, batch_size=16, k=3, progress=False)
        with torch.no_grad():
            want = tap(m, images).amax((2, 3)).amax(0)
        got = torch.tensor(snap[f"units/{unit}/topk_value"][:, 0])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


class Repeated(nn.Module):
    """Channels repeated (TridentNet's ``x.repeat(1, 3, 1, 1)`` before its head), tiled, or
    each repeated in place (``repeat_interleave``)."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        if self.how == "repeat":
            y = y.repeat(1, 3, 1, 1)
        elif self.how == "tile":
            y = torch.tile(y, (1, 3, 1, 1))
        elif self.how == "interleave":
            y = y.repeat_interleave(3, dim=1)
        else:  # over the positions: no channel map
            y = y.repeat(1, 3, 2, 1)
        return self.b(y).mean((2, 3))


@pytest.mark.parametrize("how", ["repeat", "tile", "interleave"])
def test_repeated_channels_are_picked_rows(how):
    # (was: "unsupported operation 'repeat'")
    m = _seeded(Repeated(how))
    t = trace_model(m, (3, 6, 6))
    assert [u.name for u in t.graph.units] == ["a", "b"]
    k = _k(m.b)  # [5, 12]: copy r of channel c is column 4r + c, or 3c + r interleaved
    want = k.view(5, 4, 3).sum(2) if how == "interleave" else k.view(5, 3, 4).sum(1)
    torch.testing.assert_close(unit_weights(t)["b"]["a"], want)
    x = torch.randn(5, 3, 6, 6)
    data = ImageData.from_tensors((x * 40 + 128).clamp(0, 255).to(torch.uint8), [0, 1] * 2 + [0],
                                  ["p", "q"])  # fmt: skip
    snap = cv.analyze(m, data, progress=False)
    with torch.no_grad():  # b measures the real values: the copies by hand
        y = torch.relu(m.a(next(data.batches(5))[0]))
        y = y.repeat_interleave(3, 1) if how == "interleave" else torch.cat([y] * 3, 1)
    torch.testing.assert_close(
        torch.from_numpy(np.asarray(snap["units/b/max_response"])), m.b(y).amax((0, 2, 3))
    )


def test_positions_repeated_are_refused():
    with pytest.raises(ModelError, match="unsupported reshape at 'repeat': it moves values"):
        trace_model(_seeded(Repeated("space")), (3, 6, 6))


class CosineHead(nn.Module):
    """A classifier of normalised features by a matrix made from parameters (LDAM-DRW's
    ``NormedLinear``: ``F.normalize(x).mm(F.normalize(W, dim=0))``; a cosine classifier's
    ``s * (x / ‖x‖) @ (V / ‖V‖).t()``; a bare ``x @ W``)."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.w = nn.Parameter(torch.randn(4, 5) if how != "cosine" else torch.randn(5, 4))
        self.s = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        f = torch.relu(self.c(x)).mean((2, 3))
        if self.how == "normed":
            return F.normalize(f, dim=1).mm(F.normalize(self.w, dim=0))
        if self.how == "cosine":
            v = self.w / self.w.norm(dim=1, keepdim=True)
            return self.s * (f / f.norm(dim=1, keepdim=True)) @ v.t()
        return torch.matmul(f, self.w)

    def matrix(self):  # the (classes, features) weight the head applies
        w = self.w.detach()
        if self.how == "normed":
            return F.normalize(w, dim=0).t()
        if self.how == "cosine":  # (the scale s multiplies every weight)
            return self.s.detach() * w / w.norm(dim=1, keepdim=True)
        return w.t()


@pytest.mark.parametrize("how", ["normed", "cosine", "bare"])
def test_a_product_by_a_matrix_of_parameters_is_a_linear_layer(how):
    # (was: "unsupported operation 'mm'"; "matmul … only attention … is supported")
    m = _seeded(CosineHead(how))
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    op = "mm" if how == "normed" else "matmul"
    assert [u.name for u in g.units] == ["c", op]
    head = g.layer(op)
    assert head.kind == "linear" and head.shape == [5] and head.op == op
    # (the normalisations divide by a positive number per image: the weights are the matrix's)
    torch.testing.assert_close(unit_weights(t)[head.name]["c"], m.matrix())
    with torch.no_grad():  # the weights follow the parameters (training)
        m.w.mul_(-2.0)
    torch.testing.assert_close(unit_weights(t)[head.name]["c"], m.matrix())
    x = torch.randn(6, 3, 6, 6)
    data = ImageData.from_tensors((x * 40 + 128).clamp(0, 255).to(torch.uint8), [0, 1] * 3,
                                  ["p", "q"])  # fmt: skip
    snap = cv.analyze(m, data, k=2, progress=False)
    with torch.no_grad():  # the head's neurons measure the logits
        logits = m(next(data.batches(6))[0])
    got = torch.tensor(snap[f"units/{head.name}/topk_value"][:, 0])
    torch.testing.assert_close(got, logits.amax(0), rtol=1e-4, atol=1e-4)
