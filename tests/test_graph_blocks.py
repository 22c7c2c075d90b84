"""The graph rules of docs/GRAPH.md for the blocks of timm-style CNNs, on tiny models with
hand-computed answers: weight-standardised convolutions (weights computed in forward()),
StarReLU (``relu(x) ** 2``), channel pooling (CBAM, GRN), ECA's Conv1d along the channels,
space-to-depth, and stacked maps with attention over them (SKNet, ResNeSt)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_graph_rules import _k, _seeded
from torch import nn

from cnnvis_gl.errors import ModelError
from cnnvis_gl.model import trace_model
from cnnvis_gl.model.params import band_matrix
from cnnvis_gl.model.weights import group_weights, unit_weights


class StdConv(nn.Conv2d):
    """timm's StdConv2d: the kernel standardised per output channel in forward()."""

    def forward(self, x):
        w = self.weight
        mean = w.mean((1, 2, 3), keepdim=True)
        std = w.std((1, 2, 3), keepdim=True, unbiased=False)
        return F.conv2d(x, (w - mean) / (std + 1e-5), self.bias, self.stride, self.padding)


class Standardised(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = StdConv(3, 4, 3, padding=1, bias=False)
        self.b = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))).mean((2, 3))


def _standardised(w: torch.Tensor) -> torch.Tensor:
    mean = w.mean((1, 2, 3), keepdim=True)
    return (w - mean) / (w.std((1, 2, 3), keepdim=True, unbiased=False) + 1e-5)


def test_a_weight_computed_from_parameters_is_the_layers_weight_and_follows_training():
    m = _seeded(Standardised())
    t = trace_model(m, (3, 6, 6))
    name = next(lay.name for lay in t.graph.layers if lay.kind == "conv" and lay.op == "conv2d")
    assert name == "a.conv2d" and t.graph.layer(name).params["kernel"] == [3, 3]
    with torch.no_grad():
        torch.testing.assert_close(t.weight(name), _standardised(m.a.weight))
        torch.testing.assert_close(
            unit_weights(t)[name]["input"], _standardised(m.a.weight).sum((2, 3))
        )
        m.a.weight.mul_(-3.0).add_(1.0)  # a training step: the weight is computed again
        torch.testing.assert_close(t.weight(name), _standardised(m.a.weight))


class DynamicConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        w = torch.sigmoid(self.a(x)).mean((2, 3))[:1].view(3, 1, 1, 1)
        return F.conv2d(self.a(x), w, groups=3).mean((2, 3))


def test_a_weight_computed_from_the_input_is_a_clear_error():
    # (not a per-sample convolution: the batch is not folded into the groups)
    with pytest.raises(ModelError, match=r"conv2d .* takes its weight from the data.*"
                       r"folds the batch into its groups \(x.view\(1, -1, h, w\), groups=g \* batch"):  # fmt: skip
        trace_model(_seeded(DynamicConv()), (3, 4, 4))


class StarReLU(nn.Module):
    """MetaFormer's StarReLU, s · relu(x)² + b: element-wise, a scale on the way through."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.s = nn.Parameter(torch.tensor(2.5))
        self.b = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        return self.b(self.s * F.relu(self.a(x)) ** 2 + 0.1).mean((2, 3))


def test_star_relu_is_element_wise_and_its_scale_passes_on():
    m = _seeded(StarReLU())
    t = trace_model(m, (3, 4, 4))
    assert [lay.kind for lay in t.graph.layers if lay.op == "pow"] == ["act"]
    assert t.graph.unit("a").tap == "add"  # the activation's chain ends after "+ b"
    uw = unit_weights(t)
    torch.testing.assert_close(uw["a"]["input"], _k(m.a) * m.s.detach())
    torch.testing.assert_close(uw["b"]["a"], _k(m.b))


class CBAM(nn.Module):
    """CBAM's spatial attention: the channels' mean and max, a 3×3 conv, a sigmoid gate."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.att = nn.Conv2d(2, 1, 3, padding=1, bias=False)
        self.b = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        if self.how == "max":
            peak = torch.max(y, dim=1, keepdim=True)[0]
        elif self.how == "amax":
            peak = y.amax(1, keepdim=True)
        else:  # the CBAM paper's code: without keepdim, then unsqueeze
            peak = torch.max(y, 1)[0].unsqueeze(1)
        gate = torch.sigmoid(self.att(torch.cat([y.mean(1, keepdim=True), peak], 1)))
        return self.b(y * gate).mean((2, 3))


@pytest.mark.parametrize("how", ["amax", "max", "unsqueezed"])
def test_channel_pooling_of_cbam(how):
    m = _seeded(CBAM(how))
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    pools = [lay for lay in g.layers if lay.params.get("channels")]
    assert [p.shape for p in pools] == [[1, 6, 6], [1, 6, 6]]
    # the gate conv reads the mean of a's 4 channels and their maximum (its linear stand-in:
    # the mean too): each of a's channels weighs (k_mean + k_max) / 4
    k = _k(m.att)  # [1, 2]
    uw = unit_weights(t)
    torch.testing.assert_close(uw["att"]["a"], (k[:, :1] + k[:, 1:]).expand(1, 4) / 4)
    # the gated channels pass on; the gate counts as 1
    torch.testing.assert_close(uw["b"]["a"], _k(m.b))
    assert g.layer("att").rf_size == [3, 3]


class GRN(nn.Module):
    """ConvNeXt-V2's global response normalisation (channels first)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1, 4, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, 4, 1, 1))
        self.b = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.gelu(self.a(x))
        gx = y.norm(p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        return self.b(y + torch.addcmul(self.beta, self.gamma, y * nx)).mean((2, 3))


def test_global_response_normalisation():
    m = _seeded(GRN())
    t = trace_model(m, (3, 4, 4))
    g = t.graph
    assert g.layer("norm").params == {"global": True} and g.layer("mean").params == {
        "channels": "mean"
    }
    assert g.layer("div").params["carriers"] == [0]  # gx / (its channel mean): gx passes on
    # y + gamma · (y · gate): row c of the map from a to b's input is 1 + gamma_c
    scale = 1.0 + m.gamma.detach().flatten()
    torch.testing.assert_close(unit_weights(t)["b"]["a"], _k(m.b) * scale[None, :])


class ECA(nn.Module):
    """ECA-Net: a one-channel Conv1d along the pooled channels, a sigmoid gate."""

    def __init__(self, transpose: bool):
        super().__init__()
        self.transpose = transpose
        self.a = nn.Conv2d(3, 5, 1, bias=False)
        self.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.b = nn.Conv2d(5, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        if self.transpose:  # the paper's code: pool to (b, c, 1, 1), squeeze, transpose
            p = F.adaptive_avg_pool2d(y, 1)
            gate = self.eca(p.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
            gate = torch.sigmoid(gate)
        else:  # timm's: the mean viewed as a row, the gate on the row
            gate = torch.sigmoid(self.eca(y.mean((2, 3)).view(x.shape[0], 1, -1)))
            gate = gate.view(x.shape[0], -1, 1, 1)
        return self.b(y * gate.expand_as(y)).mean((2, 3))


@pytest.mark.parametrize("transpose", [False, True])
def test_eca_conv1d_along_the_channels_is_a_band_matrix(transpose):
    m = _seeded(ECA(transpose))
    t = trace_model(m, (3, 4, 4))
    g = t.graph
    eca = g.layer("eca")
    assert eca.kind == "linear" and eca.shape == [5] and "eca" in [u.name for u in g.units]
    w = m.eca.weight.detach().flatten()  # out[i] = w0·in[i-1] + w1·in[i] + w2·in[i+1]
    band = torch.zeros(5, 5)
    for i in range(5):
        for j, d in enumerate((-1, 0, 1)):
            if 0 <= i + d < 5:
                band[i, i + d] = w[j]
    torch.testing.assert_close(t.weight("eca"), band)
    uw = unit_weights(t)
    torch.testing.assert_close(uw["eca"]["a"], band)
    torch.testing.assert_close(uw["b"]["a"], _k(m.b))


def test_band_matrix_with_dilation_and_no_padding():
    w = torch.tensor([[[1.0, 2.0]]])
    want = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    # M[i, i - pad + j·dil], pad 1, dil 2: row 0 reads (-1, 1), row 1 (0, 2), row 2 (1, 3)
    torch.testing.assert_close(band_matrix(w, 3, 1, 2), want)


class WideConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.c = nn.Conv1d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.c(self.a(x).mean((2, 3)).view(x.shape[0], 1, -1)).flatten(1)


def test_other_conv1d_is_a_clear_error():
    with pytest.raises(ModelError, match="only a one-channel convolution along the channels"):
        trace_model(_seeded(WideConv1d()), (3, 4, 4))


class SpaceToDepth(nn.Module):
    """TResNet's stem: 4×4 blocks of pixels to channels, then a 3×3 conv."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.unshuffle = nn.PixelUnshuffle(4)
        self.c = nn.Conv2d(48, 4, 3, padding=1, bias=False)

    def forward(self, x):
        n, c, h, w = x.shape
        if self.how == "module":  # channel c·16 + dy·4 + dx
            return self.c(self.unshuffle(x)).mean((2, 3))
        x = x.view(n, c, h // 4, 4, w // 4, 4).permute(0, 3, 5, 1, 2, 4).contiguous()
        return self.c(x.view(n, c * 16, h // 4, w // 4)).mean((2, 3))  # (dy·4 + dx)·3 + c


@pytest.mark.parametrize("how", ["reshape", "module"])
def test_space_to_depth_is_a_window_of_its_block(how):
    m = _seeded(SpaceToDepth(how))
    t = trace_model(m, (3, 16, 16))
    g = t.graph
    s2d = g.layer(g.layer("c").inputs[0])
    assert s2d.kind == "select" and s2d.shape == [48, 4, 4]
    assert (s2d.params["kernel"], s2d.params["stride"], s2d.params["padding"]) == (
        [4, 4],
        [4, 4],
        [0, 0],
    )
    # by hand: a 4×4 window, stride 4 (centre 1.5), then a 3×3 conv on that grid
    assert (s2d.rf_size, s2d.rf_jump, s2d.rf_start) == ([4.0, 4.0], [4.0, 4.0], [1.5, 1.5])
    assert g.layer("c").rf_size == [12.0, 12.0]
    # channel (dy, dx, c) holds input channel c (PixelUnshuffle: channel (c, dy, dx))
    k = _k(m.c)  # [4, 48]
    want = k.view(4, 16, 3).sum(1) if how == "reshape" else k.view(4, 3, 16).sum(2)
    torch.testing.assert_close(unit_weights(t)["c"]["input"], want)


class SelectiveKernel(nn.Module):
    """SKNet: two paths stacked, attention over the stack (softmax over the paths), summed."""

    def __init__(self):
        super().__init__()
        self.p0 = nn.Conv2d(3, 4, 1, bias=False)
        self.p1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Conv2d(4, 8, 1, bias=False)
        self.d = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        s = torch.stack([F.relu(self.p0(x)), F.relu(self.p1(x))], dim=1)  # [B, 2, 4, H, W]
        a = self.fc(s.sum(1).mean((2, 3), keepdim=True))
        a = torch.softmax(a.view(x.shape[0], 2, 4, 1, 1), dim=1)
        return self.d((s * a).sum(dim=1)).mean((2, 3))


def test_selective_kernel_stack_attention_and_sum():
    m = _seeded(SelectiveKernel())
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    stack = g.layer("stack")
    assert stack.kind == "cat" and stack.shape == [8, 6, 6]
    assert stack.params["view"] == [2, 4, 6, 6]
    assert g.layer("mul").params["carriers"] == [0]  # the attention is a gate
    uw = unit_weights(t)
    # the stack is a unit of both paths' neurons (like a concatenation), path 0 first
    torch.testing.assert_close(uw["stack"]["p0"], torch.cat([torch.eye(4), torch.zeros(4, 4)]))
    # the sums over the stack add the paths: d and the attention read each path alike
    torch.testing.assert_close(uw["d"]["stack"], torch.cat([_k(m.d), _k(m.d)], 1))
    torch.testing.assert_close(uw["fc"]["stack"], torch.cat([_k(m.fc), _k(m.fc)], 1))
    # d's group reads the input through both paths
    gw = group_weights(t)
    d_group = next(gr.name for gr in g.groups if gr.unit == "d")
    src = next(iter(gw[d_group]))
    assert list(gw[d_group]) == [src]
    assert next(gr for gr in g.groups if gr.name == src).unit == "stack"
    assert g.layer("sum_1").rf_size == [3, 3]  # the widest path


class SplitAttention(nn.Module):
    """ResNeSt: one conv makes radix 2 splits, a radix softmax (view, transpose) gates them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.fc1 = nn.Conv2d(4, 2, 1, bias=False)
        self.fc2 = nn.Conv2d(2, 8, 1, bias=False)
        self.d = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        b = x.shape[0]
        y = F.relu(self.conv(x))
        y = y.reshape(b, 2, 4, *y.shape[2:])
        gap = F.relu(self.fc1(y.sum(dim=1).mean((2, 3), keepdim=True)))
        att = self.fc2(gap).view(b, 1, 2, -1).transpose(1, 2)
        att = F.softmax(att, dim=1).reshape(b, -1).view(b, -1, 1, 1)
        out = (y * att.reshape(b, 2, 4, 1, 1)).sum(dim=1)
        return self.d(out).mean((2, 3))


def test_split_attention_radix_softmax():
    m = _seeded(SplitAttention())
    t = trace_model(m, (3, 4, 4))
    g = t.graph
    soft = g.layer("softmax")
    assert soft.shape == [8] and soft.params["view"] == [2, 1, 4]
    uw = unit_weights(t)
    # the two radix splits of conv's 8 channels add up: d reads channel c and c + 4
    k = _k(m.d)
    torch.testing.assert_close(uw["d"]["conv"], torch.cat([k, k], 1))
    torch.testing.assert_close(uw["fc1"]["conv"], torch.cat([_k(m.fc1), _k(m.fc1)], 1))


def test_rows_stacks_and_rearranged_gates_are_measured_per_neuron(cifar_dir):
    """End to end on CIFAR-10: each unit's best response is the largest value of the tensor
    the rules say it taps, laid out as its neurons: ECA's gate on a (B, 1, C) row, SKNet's
    attention softmaxed over a (B, 2, C, 1, 1) stack; ResNeSt's fc2 is measured before its
    radix softmax (a rearrangement ends a unit's chain)."""
    import cnnvis_gl as cv
    from cnnvis_gl.data import open_data

    def eca(m, x):
        y = F.relu(m.a(x))
        return torch.sigmoid(m.eca(y.mean((2, 3)).view(len(x), 1, -1))).flatten(1)

    def sk(m, x):
        s = torch.stack([F.relu(m.p0(x)), F.relu(m.p1(x))], dim=1)
        a = m.fc(s.sum(1).mean((2, 3), keepdim=True))
        return torch.softmax(a.view(len(x), 2, 4, 1, 1), dim=1).flatten(1)

    def split(m, x):
        y = F.relu(m.conv(x)).reshape(len(x), 2, 4, *x.shape[2:])
        gap = F.relu(m.fc1(y.sum(dim=1).mean((2, 3), keepdim=True)))
        return m.fc2(gap).flatten(1)

    data = open_data(f"cifar10:{cifar_dir}", "test")
    images = data.normalize(data.raw(torch.arange(40)))
    for model, unit, tap in (
        (ECA(transpose=False), "eca", eca),
        (SelectiveKernel(), "fc", sk),
        (SplitAttention(), "fc2", split),
    ):
        m = _seeded(model)
        snap = cv.analyze(m, data, limit=40, batch_size=16, k=3, progress=False)
        assert snap.graph.unit(unit).tap == {"eca": "sigmoid", "fc": "softmax"}.get(unit, unit)
        with torch.no_grad():
            want = tap(m, images).amax(0)
        got = torch.tensor(snap[f"units/{unit}/topk_value"][:, 0])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _separable(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(),
    ]  # fmt: skip


def _inverted(cin: int, cout: int, stride: int, same: bool = False) -> nn.Sequential:
    """An inverted-residual block; ``same``: TensorFlow-style padding before its depthwise
    conv (timm's tf_* models), a layer of its own."""
    mid = cin * 4
    pad = [nn.ZeroPad2d((0, 1, 0, 1))] if same else []
    return nn.Sequential(
        nn.Conv2d(cin, mid, 1), nn.ReLU6(), *pad,
        nn.Conv2d(mid, mid, 3, stride, 0 if same else 1, groups=mid), nn.ReLU6(),
        nn.Conv2d(mid, cout, 1),
    )  # fmt: skip


class InvertedResidual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = _inverted(c, c, 1)

    def forward(self, x):
        return x + self.body(x)


@pytest.mark.parametrize("style", ["v1", "v2", "v2_same"])
def test_strided_depthwise_convs_start_groups(style):
    """MobileNet v1 (depthwise-separable pairs, no residuals): one group per resolution, each
    starting at its strided depthwise conv. MobileNet v2: a block without a residual (stride
    2) is one group from its expansion on, not split at its depthwise conv."""
    if style == "v1":
        layers = [nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), *_separable(8, 16, 1)]
        layers += [*_separable(16, 16, 2), *_separable(16, 16, 1), *_separable(16, 32, 2)]
        want = [["0", "2", "5"], ["8", "11", "14", "17"], ["20", "23"], ["fc"]]
    elif style == "v2":
        layers = [nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6(), _inverted(8, 8, 1), _inverted(8, 16, 2)]
        layers += [InvertedResidual(16), _inverted(16, 24, 2)]
        want = [["0", "2.0", "2.2", "2.4"], ["3.0", "3.2", "3.4"], ["4.body.0", "4.body.2",
                "4.body.4"], ["5.0", "5.2", "5.4"], ["fc"]]  # fmt: skip
    else:
        layers = [nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6(), _inverted(8, 8, 1)]
        layers += [_inverted(8, 16, 2, same=True), _inverted(16, 24, 2, same=True)]
        want = [["0", "2.0", "2.2", "2.4"], ["3.0", "3.3", "3.5"], ["4.0", "4.3", "4.5"], ["fc"]]
    head = nn.Linear(32 if style == "v1" else 24, 10)
    m = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    g = trace_model(_seeded(m), (3, 32, 32)).graph
    fc = str(len(m) - 1)  # the Linear's module path
    assert [["fc" if u == fc else u for u in gr.units] for gr in g.groups] == want


class GlobalContext(nn.Module):
    """GCNet: positions pooled with softmax attention weights (a matmul), a 1×1 conv on the
    context, added back to every position."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.attn = nn.Conv2d(4, 1, 1, bias=False)
        self.fc = nn.Conv2d(4, 4, 1, bias=False)
        self.d = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        b, c, h, w = y.shape
        weights = F.softmax(self.attn(y).reshape(b, 1, h * w), dim=-1).unsqueeze(3)
        context = (y.reshape(b, c, h * w).unsqueeze(1) @ weights).view(b, c, 1, 1)
        return self.d(y + self.fc(context)).mean((2, 3))


def test_global_context_attention_pooling():
    m = _seeded(GlobalContext())
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    pool = g.layer("matmul")
    assert pool.kind == "pool" and pool.inputs == ["relu", "unsqueeze"] and pool.shape == [4]
    assert g.layer("unsqueeze").inputs == ["softmax"]
    # the context is the same at every position: the sum keeps y's field (the 3×3 conv's)
    assert g.layer("add").rf_size == g.layer("a").rf_size == [3.0, 3.0]
    uw = unit_weights(t)
    # pooling passes each channel on (its attention weights come from the data: 1)
    torch.testing.assert_close(uw["fc"]["a"], _k(m.fc))
    torch.testing.assert_close(uw["attn"]["a"], _k(m.attn))
    torch.testing.assert_close(uw["d"]["a"], _k(m.d))
    torch.testing.assert_close(uw["d"]["fc"], _k(m.d))
    # any other matmul is refused with the layer named
    with pytest.raises(ModelError, match=r"matmul at 'matmul': only a map's positions pooled"):
        trace_model(_seeded(MatmulTokens()), (3, 4, 4))


class MatmulTokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.a(x).flatten(2)  # [b, 4, 16]
        return (y @ y.transpose(1, 2)).flatten(1)


class Cell(nn.Module):
    """A NASNet-style cell: reads the two cells before it, adds branches, concatenates."""

    def __init__(self):
        super().__init__()
        self.fit_x, self.fit_p = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 1)
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x, prev):
        fx, fp = self.fit_x(F.relu(x)), self.fit_p(F.relu(prev))
        return torch.cat([self.a(fx) + fp, self.b(fp) + fx], 1)


class Cells(nn.Module):
    def __init__(self, n: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.cells = nn.ModuleList(Cell() for _ in range(n))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        prev = cur = self.stem(x)
        for cell in self.cells:
            prev, cur = cur, cell(cur, prev)
        return self.fc(cur.mean((2, 3)))


def test_cells_that_read_the_two_before_are_rows_of_their_own():
    """Every layer of a NASNet lies under some edge (each cell reads the one before last), yet
    each cell is a row; a residual block with joins inside stays one row (the ResNet-style
    blocks of the other tests)."""
    g = trace_model(_seeded(Cells()), (3, 8, 8)).graph
    rows = [[u for u in gr.units if not u.endswith(("fit_x", "fit_p"))] for gr in g.groups]
    assert rows[0] == ["stem"] and rows[-1] == ["fc"]
    cells = [sorted({u.split(".")[1] for u in r}) for r in rows[1:-1]]
    assert cells == [["0"], ["1"], ["2"], ["3"]]
    # each cell's row shows its concatenation (all its neurons)
    assert [g.layer(g.unit(gr.unit).tap).kind for gr in g.groups[1:-1]] == ["cat"] * 4


class Res2Block(nn.Module):
    """A residual block with joins inside it (Res2Net's hierarchical adds, a concatenation) and
    a conv shortcut: the skip edges cross the inner joins, which must not end the block."""

    def __init__(self, cin: int):
        super().__init__()
        self.conv1, self.short = nn.Conv2d(cin, 8, 1), nn.Conv2d(cin, 8, 1)
        self.c1, self.c2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        a, b = F.relu(self.conv1(x)).chunk(2, 1)
        a2 = F.relu(self.c1(a))
        b2 = F.relu(self.c2(b + a2))
        return F.relu(self.conv3(torch.cat([a2, b2], 1)) + self.short(x))


def test_residual_blocks_with_joins_inside_stay_one_row():
    m = nn.Sequential(nn.Conv2d(3, 6, 3), Res2Block(6), Res2Block(8))
    g = trace_model(_seeded(m), (3, 8, 8)).graph
    assert [sorted({u.split(".")[0] for u in gr.units}) for gr in g.groups] == [["0"], ["1"], ["2"]]


class ScaledSkip(nn.Module):
    """An in-place division on a skip path, and a one-channel 7×7 conv added to a map."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1, bias=False)
        self.b = nn.Conv2d(4, 4, 1, bias=False)
        self.s = nn.Conv2d(4, 1, 7, padding=3, bias=False)
        self.c = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.a(x))
        z = y.clone().div_(2) + self.b(y)
        return self.c(z + self.s(z)).mean((2, 3))


def test_in_place_division_and_a_sum_with_a_channel_broadcast_map():
    m = _seeded(ScaledSkip())
    t = trace_model(m, (3, 9, 9))
    g = t.graph
    uw = unit_weights(t)
    # y.clone().div_(2) + b(y): the skip's rows are halved, not doubled (b's tap is the sum)
    torch.testing.assert_close(uw["b"]["a"], torch.eye(4) * 0.5 + _k(m.b))
    # z + s(z): s's one channel reaches each of c's four input channels
    torch.testing.assert_close(uw["c"]["s"], _k(m.c).sum(1, keepdim=True))
    torch.testing.assert_close(uw["c"]["b"], _k(m.c))
    # a one-channel map that varies over positions widens the field: 1×1 convs + a 7×7
    assert g.layer("add_1").rf_size == [7.0, 7.0]


class CircularECA(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.eca = nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular", bias=False)

    def forward(self, x):
        y = self.a(x)
        g = torch.sigmoid(self.eca(y.mean((2, 3)).view(len(x), 1, -1))).view(len(x), -1, 1, 1)
        return (y * g).mean((2, 3))


def test_circular_eca_is_a_clear_error():
    with pytest.raises(ModelError, match="padding_mode='circular' along the channels"):
        trace_model(_seeded(CircularECA()), (3, 4, 4))
