"""Debugging flags (R5) on real models whose faults we plant, probed with real CIFAR-10."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.analysis.diagnose import diagnose, positive_fraction, redundancy
from cnnvis_gl.data import open_data


@pytest.fixture(scope="module")
def probe(cifar_dir):
    return open_data(f"cifar10:{cifar_dir}", "test").subset(64)


def _net(depth=3, width=8):
    layers, c = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * (32 // 2**depth) ** 2, 10))


def _kinds(snap):
    return {(f.group, f.kind) for f in diagnose(snap)}


def test_healthy_net_has_no_dead_or_redundant_flags(probe):
    torch.manual_seed(0)
    snap = cv.analyze(_net(), probe, progress=False)
    kinds = _kinds(snap)
    assert not {k for k in kinds if k[1] in ("dead", "redundant")}


def test_dead_layer(probe):
    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():
        net[3].bias.fill_(-100.0)  # conv2 never activates
    kinds = _kinds(cv.analyze(net, probe, progress=False))
    assert ("conv2", "dead") in kinds and ("conv1", "dead") not in kinds


def test_redundant_neurons(probe):
    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():
        net[3].weight[:] = net[3].weight[0:1]  # every conv2 filter is the same
        net[3].bias[:] = net[3].bias[0]
    assert ("conv2", "redundant") in _kinds(cv.analyze(net, probe, progress=False))


def test_all_positive_edges(probe):
    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():
        net[6].weight.abs_()  # conv3 has no inhibitory weights
    kinds = _kinds(cv.analyze(net, probe, progress=False))
    assert ("conv3", "all_positive") in kinds and ("conv2", "all_positive") not in kinds


def test_vanishing_gradient_recorded_in_training(probe, tmp_path):
    torch.manual_seed(0)
    net = _net(depth=5, width=8)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(
                    0.05
                )  # each layer shrinks the signal: gradients vanish towards the input
                m.bias.zero_()
    x, y, _ = next(probe.batches(32))
    F.cross_entropy(net(x), y).backward()
    with cv.Recorder(net, probe, tmp_path, every=1) as rec:
        rec.step(0, train_loss=1.0)
    snap = cv.open_run(tmp_path).latest()
    flags = [f for f in diagnose(snap) if f.kind == "vanishing_gradient"]
    assert flags and flags[0].group == "conv1"


def test_figures():
    import numpy as np

    A = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 1.0, 0.0]])
    assert redundancy(A) == pytest.approx(2 / 3)
    assert positive_fraction(np.array([5.0, 4.0, -0.1, 0.2, 3.0, -6.0, 0.1, 0.05])) == 0.5


def test_a_diverged_run_is_recorded_readable_and_flagged(probe, tmp_path):
    """A NaN weight (a diverged training step): the snapshot is written in strict JSON and reads
    back; the neurons that respond NaN are counted, neither dead nor given top images."""
    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():
        net[3].weight[0, 0, 0, 0] = float("nan")  # conv2's neuron 0 answers NaN, all of conv3 too
    x, y, _ = next(probe.batches(32))
    F.cross_entropy(net(x), y).backward()  # every gradient is NaN
    with cv.Recorder(net, probe, tmp_path, every=1) as rec:
        rec.step(0, train_loss=float("nan"))
    text = next(tmp_path.glob("snapshots/*/snapshot.json")).read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    snap = cv.open_run(tmp_path).latest()
    units = snap.meta["units"]
    assert [units[u]["nonfinite_fraction"] for u in ("0", "3", "6", "10")] == [0, 1 / 8, 1, 1]
    assert units["0"]["act_mean"] > 0 and units["3"]["act_mean"] is None
    assert units["6"]["dead_fraction"] == 0  # broken, not dead
    assert snap.meta["weights"]["3"]["norm"] is None and snap.meta["weights"]["0"]["norm"] > 0
    assert snap.meta["probe_loss"] is None and snap.meta["scalars"]["train_loss"] is None
    assert set(snap.meta["grad_norms"].values()) == {None}
    top = snap["units/3/topk_image"]
    assert (top[0] == -1).all() and (top[1:] >= 0).all()
    flags = {(f.group, f.kind): f for f in diagnose(snap)}
    assert ("conv1", "non_finite") not in flags and ("conv3", "dead") not in flags
    assert flags["conv2", "non_finite"].message == (
        "12% of the neurons of 3 respond NaN or ±inf; the weights of 3 hold NaN or ±inf"
    )
    assert flags["conv3", "non_finite"].value == 1.0
    assert ("conv1", "exploding_gradient") in flags  # its gradient norm is no number


def test_an_overflow_is_flagged_where_it_happens(probe):
    torch.manual_seed(0)
    net = _net()
    with torch.no_grad():
        net[3].weight.mul_(1e20)  # large but finite weights: conv3's responses overflow
        net[6].weight.mul_(1e20)
    snap = cv.analyze(net, probe, progress=False)
    units = snap.meta["units"]
    assert units["3"]["nonfinite_fraction"] == 0 and units["6"]["nonfinite_fraction"] > 0.5
    assert snap.meta["weights"]["6"]["norm"] == pytest.approx(
        float(torch.linalg.vector_norm(net[6].weight.detach().double())), rel=1e-6
    )  # finite weights whose float32 norm would overflow: measured in float64
    flags = {(f.group, f.kind): f.message for f in diagnose(snap)}
    assert ("conv2", "non_finite") not in flags
    assert "weights" not in flags["conv3", "non_finite"]
