"""Layer graph: groups, units, receptive fields (checked against hand-computed values)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnvis_gl.errors import ModelError
from cnnvis_gl.model import NeuronGraph, build_graph
from cnnvis_gl.models import build_model, model_names


def test_basecnn_groups_and_units():
    g = build_graph(build_model("basecnn"))
    assert [gr.name for gr in g.groups] == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"]
    assert [g.unit(gr.unit).channels for gr in g.groups] == [64, 128, 256, 512, 512, 10]
    # 10 conv units + 2 linear units; conv units tapped after their ReLU
    assert len(g.units) == 12
    assert sum(g.layer(u.name).kind == "conv" for u in g.units) == 10
    u = g.unit("features.0")
    assert (u.tap, g.layer(u.tap).op, u.spatial) == ("features.2", "ReLU", [32, 32])
    # 4 pooling layers, each closing a conv stage
    pools = [l for l in g.layers if l.kind == "pool"]
    assert len(pools) == 4 and all(g.groups[p.group].layers[-1] == p.name for p in pools)
    assert [gr.inputs for gr in g.groups] == [[], [0], [1], [2], [3], [4]]


def test_zoo_layer_counts():
    def counts(name):
        g = build_graph(build_model(name))
        kinds = [l.kind for l in g.layers]
        return kinds.count("conv"), kinds.count("pool"), kinds.count("linear")

    assert counts("basecnn") == (10, 4, 2)
    assert counts("shallowcnn") == (7, 3, 2)  # 3 conv and 1 pooling fewer
    assert counts("deepcnn") == (20, 4, 2)  # twice the conv layers
    widths = {
        n: build_graph(build_model(n)).unit("features.0").channels
        for n in model_names()
        if n.startswith("basecnn-")
    }
    assert widths == {
        "basecnn-x0.125": 8,
        "basecnn-x0.25": 16,
        "basecnn-x0.5": 32,
        "basecnn-x1": 64,
        "basecnn-x2": 128,
        "basecnn-x4": 256,
    }


def test_basecnn_receptive_fields_by_hand():
    g = build_graph(build_model("basecnn"))
    # conv3x3 p1 adds 2*jump; maxpool 2x2 s2 adds 1*jump and doubles the jump
    expected = {
        "features.0": (3, 1),
        "features.3": (5, 1),
        "features.7": (10, 2),
        "features.10": (14, 2),
        "features.14": (24, 4),
        "features.17": (32, 4),
        "features.20": (40, 4),
        "features.24": (60, 8),
        "features.27": (76, 8),
        "features.30": (92, 8),
    }
    for unit, (size, jump) in expected.items():
        tap = g.layer(g.unit(unit).tap)
        assert tap.rf_size == [size, size], unit
        assert tap.rf_jump == [jump, jump], unit
    # centre of output position 0: pooling shifts by (k-1)/2 * jump
    assert g.layer("features.7").rf_start == [0.5, 0.5]
    assert g.layer("features.14").rf_start == [1.5, 1.5]
    # linear layers see the whole image
    assert g.layer("classifier.1").rf_size == [32, 32]


def test_alexnet_receptive_field_by_hand():
    features = nn.Sequential(
        nn.Conv2d(3, 8, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 8, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )
    g = build_graph(features, (3, 224, 224))
    sizes = [g.layer(n).rf_size[0] for n in ("0", "2", "3", "5", "6", "8", "10", "12")]
    jumps = [g.layer(n).rf_jump[0] for n in ("0", "2", "3", "5", "6", "8", "10", "12")]
    assert sizes == [11, 19, 51, 67, 99, 131, 163, 195]  # AlexNet's published 195-pixel field
    assert jumps == [4, 8, 8, 16, 16, 16, 16, 32]
    # strided conv with padding: centre of position 0 = (11-1)/2 - 2 = 3
    assert g.layer("0").rf_start == [3, 3]
    assert g.layer("12").shape == [8, 6, 6]


def test_dilated_conv_receptive_field():
    g = build_graph(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 4, 3, padding=1)),
        (3, 16, 16),
    )
    assert g.layer("0").rf_size == [5, 5]
    assert g.layer("1").rf_size == [7, 7]


def test_resnet20_groups_skip_and_rf():
    g = build_graph(build_model("resnet20"))
    names = [gr.name for gr in g.groups]
    assert names == ["conv1"] + [f"block{i}" for i in range(1, 10)] + ["fc1"]
    b4 = g.groups[4]
    # the downsampling block's shortcut conv shares the block's output unit
    out_unit = g.unit(b4.unit)
    assert out_unit.layers == ["layers.3.conv2", "layers.3.shortcut.0"]
    assert g.layer(out_unit.tap).op == "ReLU"
    assert [u for u in b4.units] == ["layers.3.conv1", "layers.3.conv2"]
    assert all(gr.inputs == [i] for i, gr in enumerate(g.groups[1:]))
    # receptive field grows by 2 per 3x3 conv at stride 1, by 2*jump after downsampling
    assert g.layer(g.unit("layers.0.conv2").tap).rf_size == [7, 7]
    assert g.layer(g.unit("layers.3.conv1").tap).rf_size == [17, 17]
    assert g.layer(g.unit("layers.3.conv2").tap).rf_size == [21, 21]


def test_graph_json_round_trip():
    g = build_graph(build_model("resnet20"))
    g2 = NeuronGraph.from_dict(g.to_dict())
    assert g2.to_dict() == g.to_dict()
    assert g2.num_neurons == g.num_neurons == 16 + 3 * 16 + 3 * 32 + 3 * 64 + 10


def test_functional_ops_are_supported():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            x = torch.relu(self.a(x))
            x = torch.nn.functional.max_pool2d(x, 2)
            x = x + torch.nn.functional.relu(self.b(x))
            return self.fc(x.mean((2, 3)))

    g = build_graph(Net(), (3, 8, 8))
    assert [gr.name for gr in g.groups] == ["conv1", "block1", "fc1"]
    assert g.layer("max_pool2d").rf_jump == [2, 2]


def test_unsupported_module_names_its_path():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.PixelShuffle(2)))
    with pytest.raises(ModelError, match=r"'1\.1'.*PixelShuffle"):
        build_graph(model, (3, 8, 8))


def test_unsupported_function_names_it_and_the_module_path():
    class Rolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return torch.roll(self.c(x), 1, -1)

    model = nn.Sequential(nn.Conv2d(3, 3, 1), Rolled())
    with pytest.raises(ModelError, match=r"'roll' in '1'"):
        build_graph(model, (3, 8, 8))


def test_forward_with_python_control_flow_is_captured():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)
            self.d = nn.Conv2d(4, 4, 3)

        def forward(self, x):
            x = self.c(x)
            for _ in range(int(x.shape[-1]) // 4):  # fx cannot trace int() of a size
                x = torch.relu(x)
            if x.sum() >= 0:
                x = self.d(x)
            return x.mean((2, 3))

    g = build_graph(Branchy(), (3, 8, 8))
    assert [u.name for u in g.units] == ["c", "d"]
    assert g.capture == "forward"


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ModelError, match="shape"):
        build_graph(build_model("basecnn"), (1, 32, 32))


def test_adaptive_pool_receptive_field():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.AdaptiveAvgPool2d(4),
        nn.Conv2d(4, 4, 1),
        nn.AdaptiveMaxPool2d(1),
    )
    g = build_graph(model, (3, 16, 16))
    assert g.layer("1").rf_size == [6, 6] and g.layer("1").rf_jump == [
        4,
        4,
    ]  # a 4×4 window, stride 4
    assert g.layer("1").rf_start == [1.5, 1.5]
    assert g.layer("3").rf_size == [16, 16]  # global pooling sees the whole image


def test_a_torchscript_submodule_is_named_in_one_line():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(torch.jit.script(nn.Conv2d(4, 4, 1))))
    with pytest.raises(ModelError, match=r"module '1\.0' is a TorchScript module") as e:
        build_graph(model, (3, 8, 8))
    assert "\n" not in str(e.value)
