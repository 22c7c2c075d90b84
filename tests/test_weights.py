"""Neuron → neuron weights on tiny models with known weights (SPEC §4)."""

from __future__ import annotations

import torch
from torch import nn

from cnnvis_gl.model import trace_model
from cnnvis_gl.model.weights import group_weights, unit_weights, weight_stats


def _seeded(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p)
    return _random_norms(model).eval()


def _random_norms(model: nn.Module) -> nn.Module:
    """Running statistics and scales far from the defaults (mean 0, variance 1, weight 1), so
    that a weight map leaving out a BatchNorm's scaling cannot pass by accident."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 1.0, generator=g)
                m.running_var.uniform_(0.2, 3.0, generator=g)
                m.weight.uniform_(0.3, 2.5, generator=g)
    return model


def test_conv_weight_is_kernel_sum():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(54, dtype=torch.float32).reshape(3, 2, 3, 3))
    w = unit_weights(trace_model(nn.Sequential(conv), (2, 5, 5)))["0"]["input"]
    expected = torch.tensor(
        [[36.0, 117.0], [198.0, 279.0], [360.0, 441.0]]
    )  # sums of 9 consecutive ints
    torch.testing.assert_close(w, expected)


def test_grouped_conv_is_block_diagonal():
    conv = _seeded(nn.Conv2d(4, 4, 1, groups=2, bias=False))
    w = unit_weights(trace_model(nn.Sequential(conv), (4, 3, 3)))["0"]["input"]
    k = conv.weight.detach()[:, :, 0, 0]
    assert torch.all(w[:2, 2:] == 0) and torch.all(w[2:, :2] == 0)
    torch.testing.assert_close(w[:2, :2], k[:2])
    torch.testing.assert_close(w[2:, 2:], k[2:])


def test_batchnorm_scales_rows():
    conv = nn.Conv2d(2, 3, 1, bias=False)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).reshape(3, 2, 1, 1))
        bn.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]) - bn.eps)
    model = nn.Sequential(conv, bn, nn.ReLU()).eval()
    traced = trace_model(model, (2, 4, 4))
    assert traced.graph.unit("0").tap == "2"  # measured after BN + ReLU
    w = unit_weights(traced)["0"]["input"]
    scale = torch.tensor([2.0 / 2.0, -1.0 / 1.0, 0.5 / 0.5])
    torch.testing.assert_close(w, scale[:, None] * conv.weight[:, :, 0, 0].detach())


def test_flatten_then_linear_sums_positions():
    conv = _seeded(nn.Conv2d(3, 2, 1, bias=False))
    fc = _seeded(nn.Linear(2 * 2 * 2, 4))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc)
    w = unit_weights(trace_model(model, (3, 2, 2)))["3"]["0"]
    torch.testing.assert_close(w, fc.weight.detach().reshape(4, 2, 4).sum(-1))
    g = trace_model(model, (3, 2, 2))
    gw = group_weights(g)
    assert set(gw) == {"conv1", "fc1"}
    torch.testing.assert_close(gw["fc1"]["conv1"], w)


def test_collapsed_group_chains_by_matrix_product():
    c1, c2 = (
        _seeded(nn.Conv2d(3, 4, 3, padding=1, bias=False)),
        _seeded(nn.Conv2d(4, 5, 3, padding=1, bias=False)),
    )
    c3 = _seeded(nn.Conv2d(5, 6, 3, padding=1, bias=False))
    model = nn.Sequential(
        c1, nn.ReLU(), nn.MaxPool2d(2), c2, nn.ReLU(), c3, nn.ReLU(), nn.MaxPool2d(2)
    )
    traced = trace_model(model, (3, 8, 8))
    assert [g.name for g in traced.graph.groups] == ["conv1", "conv2"]
    w2 = c2.weight.detach().sum((2, 3))
    w3 = c3.weight.detach().sum((2, 3))
    torch.testing.assert_close(group_weights(traced)["conv2"]["conv1"], w3 @ w2)
    # expanded: one matrix per layer
    uw = unit_weights(traced)
    torch.testing.assert_close(uw["5"]["3"], w3)
    torch.testing.assert_close(uw["3"]["0"], w2)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(3, 4, 1, bias=False)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x):
        x = torch.relu(self.pre(x))
        return torch.relu(self.c2(torch.relu(self.c1(x))) + x)


def test_skip_connection_is_identity_edge():
    block = _seeded(_Block())
    traced = trace_model(block, (3, 6, 6))
    assert [g.name for g in traced.graph.groups] == ["conv1", "block1"]
    w1, w2 = block.c1.weight.detach().sum((2, 3)), block.c2.weight.detach().sum((2, 3))
    torch.testing.assert_close(group_weights(traced)["block1"]["conv1"], w2 @ w1 + torch.eye(4))
    uw = unit_weights(traced)
    torch.testing.assert_close(uw["c2"]["c1"], w2)
    torch.testing.assert_close(uw["c2"]["pre"], torch.eye(4))


def test_resnet_downsampling_shortcut_is_a_weighted_edge():
    from cnnvis_gl.models import build_model

    model = _random_norms(build_model("resnet20")).eval()
    traced = trace_model(model, (3, 32, 32))
    blk = model.layers[3]
    s_bn = blk.bn2.weight / torch.sqrt(blk.bn2.running_var + blk.bn2.eps)
    s_bn1 = blk.bn1.weight / torch.sqrt(blk.bn1.running_var + blk.bn1.eps)
    s_sc = blk.shortcut[1].weight / torch.sqrt(blk.shortcut[1].running_var + blk.shortcut[1].eps)
    main = (
        s_bn[:, None]
        * blk.conv2.weight.sum((2, 3))
        @ (s_bn1[:, None] * blk.conv1.weight.sum((2, 3)))
    )
    short = s_sc[:, None] * blk.shortcut[0].weight[:, :, 0, 0]
    w = group_weights(traced)["block4"]["block3"]
    assert w.shape == (32, 16)
    torch.testing.assert_close(w, (main + short).detach(), rtol=1e-4, atol=1e-5)


def test_weight_stats():
    conv = nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([3.0, 4.0, 0.0, 0.0]).reshape(1, 1, 2, 2))
    s = weight_stats(trace_model(nn.Sequential(conv), (1, 4, 4)))["0"]
    assert s["mean"] == 1.75 and abs(s["norm"] - 5.0) < 1e-6


def test_grouped_conv_inside_a_group_chains_block_by_block():
    a = _seeded(nn.Conv2d(3, 4, 1, bias=False))
    g = _seeded(nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False))
    d = _seeded(nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False))  # depthwise
    model = nn.Sequential(
        a,
        nn.ReLU(),
        nn.MaxPool2d(2),
        a2 := _seeded(nn.Conv2d(4, 4, 1, bias=False)),
        g,
        d,
        nn.ReLU(),
    )
    traced = trace_model(model, (3, 8, 8))
    assert [x.name for x in traced.graph.groups] == ["conv1", "conv2"]
    kg = g.weight.detach().sum((2, 3))
    dense = torch.zeros(6, 4)
    dense[:3, :2], dense[3:, 2:] = kg[:3], kg[3:]
    kd = torch.diag(d.weight.detach().sum((1, 2, 3)))
    expected = kd @ dense @ a2.weight.detach()[:, :, 0, 0]
    torch.testing.assert_close(group_weights(traced)["conv2"]["conv1"], expected)


def test_a_freed_identity_map_is_not_mistaken_for_a_later_tensor_with_its_id():
    """channel_maps frees the identity maps of sources it no longer needs; a later map can get
    the same ``id`` and must still be multiplied (a DenseNet once lost columns that way)."""
    from cnnvis_gl.model.weights import _Eyes

    eyes = _Eyes()
    eye = torch.eye(3)
    eyes.add(eye)
    assert eye in eyes
    old = id(eye)
    del eye
    later = [torch.zeros(2, 2) for _ in range(200)]
    assert any(id(t) == old for t in later)  # CPython hands the freed slot out again
    assert not any(t in eyes for t in later)
