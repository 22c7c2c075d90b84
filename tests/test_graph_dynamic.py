"""Per-sample convolutions (docs/GRAPH.md): dynamic convolutions and CondConv fold the batch into
the channels of one image and into the groups of one ``F.conv2d``, each image convolved with
kernels mixed from K by attention computed from the data (kaijieshi7's Dynamic_conv2d,
External-Attention-pytorch's DynamicConv and CondConv, timm's CondConv2d).  Hand-computed
answers: the unit measures each image's real responses, its weights are the kernels the
capture's images get, recomputed from the live parameters, and the attention's layers are
dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_graph_collections import _images
from test_graph_rules import _seeded
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.errors import ModelError
from cnnvis_gl.model import trace_model
from cnnvis_gl.model.graph import channel_layouts
from cnnvis_gl.model.weights import unit_weights


class DynamicConv(nn.Module):
    """K 3×3 kernels mixed per image by a softmax over a squeeze-excitation of its input; the
    images folded into the groups.  ``unfold``: how the output is viewed back to the batch
    (``view`` as Dynamic_conv2d, ``permute`` as timm's CondConv2d, ``relu`` reads it folded)."""

    def __init__(self, cin, cout, k=3, groups=1, unfold="view"):
        super().__init__()
        self.cout, self.k, self.groups, self.unfold = cout, k, groups, unfold
        self.fc1 = nn.Conv2d(cin, 4, 1)
        self.fc2 = nn.Conv2d(4, k, 1)
        self.weight = nn.Parameter(torch.randn(k, cout, cin // groups, 3, 3))
        self.bias = nn.Parameter(torch.randn(k, cout))

    def attention(self, x):
        a = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return F.softmax(a.view(len(x), -1), 1)

    def forward(self, x):
        b, c, h, w = x.shape
        a = self.attention(x)
        kernels = torch.mm(a, self.weight.view(self.k, -1))
        kernels = kernels.view(b * self.cout, c // self.groups, 3, 3)
        bias = torch.mm(a, self.bias).view(-1)
        out = F.conv2d(x.view(1, -1, h, w), kernels, bias, padding=1, groups=self.groups * b)
        if self.unfold == "permute":
            return out.permute(1, 0, 2, 3).view(b, self.cout, h, w)
        if self.unfold == "relu":
            out = F.relu(out)
        return out.view(b, self.cout, h, w)


class OmniConv(nn.Module):
    """ODConv's form: a channel attention gates the input before it is folded, the kernels are
    a sum over K of spatial × kernel attention × weight (``torch.sum(…, dim=1)``), and a filter
    attention gates the output."""

    def __init__(self, cin, cout, k=2):
        super().__init__()
        self.cin, self.cout, self.k = cin, cout, k
        self.fc = nn.Conv2d(cin, 4, 1)
        self.ch, self.fi = nn.Conv2d(4, cin, 1), nn.Conv2d(4, cout, 1)
        self.sp, self.ke = nn.Conv2d(4, 9, 1), nn.Conv2d(4, k, 1)
        self.weight = nn.Parameter(torch.randn(k, cout, cin, 3, 3))

    def attention(self, x):
        h, b = F.relu(self.fc(F.adaptive_avg_pool2d(x, 1))), len(x)
        spatial = torch.sigmoid(self.sp(h)).view(b, 1, 1, 1, 3, 3)
        kernel = F.softmax(self.ke(h).view(b, -1, 1, 1, 1, 1), dim=1)
        return torch.sigmoid(self.ch(h)), torch.sigmoid(self.fi(h)), spatial, kernel

    def kernels(self, x):
        _, _, spatial, kernel = self.attention(x)
        return torch.sum(spatial * kernel * self.weight.unsqueeze(0), dim=1)

    def forward(self, x):
        channel, filters, _, _ = self.attention(x)
        b, _, h, w = x.shape
        x = (x * channel).reshape(1, -1, h, w)
        out = F.conv2d(x, self.kernels(x.view(b, -1, h, w)).view(-1, self.cin, 3, 3), None,
                       padding=1, groups=b)  # fmt: skip
        return out.view(b, self.cout, h, w) * filters


class Dynamic(nn.Module):
    """``act``: a ReLU after the dynamic convolution (its unit's tap), else its own output is."""

    def __init__(self, groups=1, unfold="view", act=True, omni=False, classes=2):
        super().__init__()
        self.act = act
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.att = OmniConv(4, 6) if omni else DynamicConv(4, 6, groups=groups, unfold=unfold)
        self.b = nn.Conv2d(6, classes, 1)

    def forward(self, x):
        y = self.att(F.relu(self.a(x)))
        return self.b(F.relu(y) if self.act else y).mean((2, 3))


def _kernels(m):
    """The dynamic convolution's kernels for the capture's input (zeros): its attention on
    ``relu(a(0))``, by hand."""
    with torch.no_grad():
        a = m.att.attention(F.relu(m.a(torch.zeros(1, 3, 6, 6))))
        return (a @ m.att.weight.view(m.att.k, -1)).view(m.att.weight.shape[1:])


@pytest.mark.parametrize("unfold", ["view", "permute"])
def test_a_dynamic_convolution_is_a_convolution_of_each_image(unfold):
    m = _seeded(Dynamic(unfold=unfold))
    t = trace_model(m, (3, 6, 6))
    g = t.graph
    assert [u.name for u in g.units] == ["a", "att.conv2d", "b"]
    # the attention's layers fed the kernels alone: dropped
    assert not [lay.name for lay in g.layers if "fc" in lay.name or "softmax" in lay.name]
    conv = g.layer("att.conv2d")
    assert (conv.kind, conv.shape, conv.inputs) == ("conv", [6, 6, 6], ["relu"])
    assert conv.params["groups"] == 1 and conv.params["per_sample"]
    assert conv.params["kernel"] == [3, 3] and conv.params["padding"] == [1, 1]
    assert channel_layouts(g)["att.conv2d"] == ["batch", 6, 6, 6]
    assert g.layer("relu_1").inputs == ["att.conv2d"]  # through the view back to the batch
    uw = unit_weights(t)
    torch.testing.assert_close(uw["att.conv2d"]["a"], _kernels(m).sum((2, 3)))
    torch.testing.assert_close(uw["b"]["att.conv2d"], m.b.weight.detach().sum((2, 3)))
    # the kernels follow the parameters (training): recomputed from the live weight
    with torch.no_grad():
        m.att.weight.mul_(-2)
    torch.testing.assert_close(unit_weights(t)["att.conv2d"]["a"], _kernels(m).sum((2, 3)))
    assert torch.allclose(_kernels(m), -2 * _kernels(_seeded(Dynamic(unfold=unfold))))


@pytest.mark.parametrize(("unfold", "act"), [("view", True), ("view", False), ("permute", False)])
def test_each_image_is_measured_with_its_own_kernels(unfold, act):
    m = _seeded(Dynamic(unfold=unfold, act=act))
    tap = "relu_1" if act else "att.conv2d"  # (without the ReLU: the folded output itself)
    assert trace_model(m, (3, 6, 6)).graph.unit("att.conv2d").tap == tap
    data = _images(7)
    snap = cv.analyze(m, data, progress=False)
    x = next(data.batches(len(data)))[0]
    with torch.no_grad():
        y = m.att(F.relu(m.a(x)))
        # by hand, image by image: its own attention's kernels and bias
        h = F.relu(m.a(x))
        a = m.att.attention(h)
        k = (a @ m.att.weight.view(m.att.k, -1)).view(len(x), *m.att.weight.shape[1:])
        own = torch.stack(
            [F.conv2d(h[i : i + 1], k[i], a[i] @ m.att.bias, padding=1)[0] for i in range(len(x))]
        )
    torch.testing.assert_close(y, own)
    if act:
        own = F.relu(own)
    got = torch.from_numpy(np.asarray(snap["units/att.conv2d/max_response"]))
    torch.testing.assert_close(got, own.amax((2, 3)).amax(0))
    got_b = torch.from_numpy(np.asarray(snap["units/b/max_response"]))
    with torch.no_grad():
        torch.testing.assert_close(got_b, m.b(own).amax((2, 3)).amax(0))


def test_a_grouped_dynamic_convolution_keeps_its_groups():
    m = _seeded(Dynamic(groups=2))
    t = trace_model(m, (3, 6, 6))
    assert t.graph.layer("att.conv2d").params["groups"] == 2
    k = _kernels(m).sum((2, 3))  # [6, 2]: outputs 0-2 read inputs 0-1, outputs 3-5 inputs 2-3
    want = torch.zeros(6, 4)
    want[:3, :2], want[3:, 2:] = k[:3], k[3:]
    torch.testing.assert_close(unit_weights(t)["att.conv2d"]["a"], want)


def test_reading_the_folded_output_is_a_clear_error():
    with pytest.raises(ModelError, match=r"relu at 'att.relu_1'.*per-sample convolution "
                       r"'att.conv2d'.*view it back"):  # fmt: skip
        trace_model(_seeded(Dynamic(unfold="relu")), (3, 6, 6))



def test_info_names_the_per_sample_convolutions(tmp_path, capsys):
    from cnnvis_gl.cli import main

    f = tmp_path / "dynamic.py"
    f.write_text("from test_graph_dynamic import Dynamic\n\n\ndef net():\n    return Dynamic()\n")
    assert main(["info", f"{f}:net"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("1 per-sample (dynamic) convolution: each image measured with its own")
    assert line.endswith("(docs/GRAPH.md): att.conv2d")


def test_omni_dimensional_kernels_are_recomputed_through_their_sum():
    m = _seeded(Dynamic(omni=True))
    t = trace_model(m, (3, 6, 6))
    # the gates of the input and the output are units of their own, as a squeeze-excitation's;
    # the spatial and kernel attentions fed the kernels alone: dropped
    assert [u.name for u in t.graph.units] == ["a", "att.fc", "att.ch", "att.fi", "att.conv2d", "b"]
    assert not [lay.name for lay in t.graph.layers if lay.name.startswith(("att.sp", "att.ke"))]

    def kernels():  # by hand: the attention on relu(a(0)), with the weight as it is now
        with torch.no_grad():
            x0 = F.relu(m.a(torch.zeros(1, 3, 6, 6)))
            return m.att.kernels(x0 * m.att.attention(x0)[0])[0]

    # (the channel and filter attentions are gates computed from the data: 1)
    torch.testing.assert_close(unit_weights(t)["att.conv2d"]["a"], kernels().sum((2, 3)))
    with torch.no_grad():
        m.att.weight[1].mul_(3.0)  # the sum over K is computed again
    torch.testing.assert_close(unit_weights(t)["att.conv2d"]["a"], kernels().sum((2, 3)))
    data = _images(5)
    snap = cv.analyze(m, data, progress=False)
    x = next(data.batches(len(data)))[0]
    with torch.no_grad():
        h = F.relu(m.a(x))
        channel, filters, _, _ = m.att.attention(h)
        k = m.att.kernels(h * channel)
        own = torch.stack([F.conv2d(h[i : i + 1] * channel[i], k[i], padding=1)[0]
                           for i in range(len(x))]) * filters  # fmt: skip
        torch.testing.assert_close(m.att(h), own)
    got = torch.from_numpy(np.asarray(snap["units/att.conv2d/max_response"]))
    torch.testing.assert_close(got, F.relu(own).amax((2, 3)).amax(0))
