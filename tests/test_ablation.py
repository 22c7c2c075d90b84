"""Ablation (``stats.ablation.ablate`` and ``cnnvis ablate``) against independent oracles:
zeroing a conv's output channels by hooks equals zeroing its weights; zeroing a whole hidden
layer leaves the classifier's bias to decide every image."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_cli import cnnvis

from cnnvis_gl.stats.ablation import ablate


@pytest.fixture(scope="module")
def setup(cifar_dir: Path):
    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    model = build_model("basecnn-x0.25").eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    data = open_data(f"cifar10:{cifar_dir}", "test").subset(96)
    return model, data


def _per_class(model, data, K=10):
    """Accuracy and summed loss per class by a plain loop (the oracle)."""
    right, loss, count = np.zeros(K), np.zeros(K), np.zeros(K)
    with torch.no_grad():
        for x, y, _ in data.batches(32):
            logits = model(x)
            for k in range(K):
                m = y == k
                count[k] += int(m.sum())
                right[k] += int((logits[m].argmax(1) == k).sum())
                loss[k] += float(F.cross_entropy(logits[m], y[m], reduction="sum")) if m.any() else 0
    return right, loss, count


def test_zeroing_channels_by_hooks_equals_zeroing_their_weights(setup) -> None:
    model, data = setup
    chans = [1, 5, 17, 40]
    (res,) = ablate(model, data.batches(40), [{"features.30": chans}], 10)
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.features[30].weight[chans] = 0  # the conv has no bias
    right, loss, count = _per_class(zeroed, data)
    right0, loss0, _ = _per_class(model, data)
    assert res.count.tolist() == count.tolist()
    assert res.correct.tolist() == right.tolist() and res.correct_base.tolist() == right0.tolist()
    assert np.allclose(res.loss, loss, rtol=1e-5) and np.allclose(res.loss_base, loss0, rtol=1e-5)
    assert not model.training  # left as it was


def test_a_dead_hidden_layer_leaves_the_bias_to_decide(setup) -> None:
    model, data = setup
    everything = {"classifier.1": list(range(model.classifier[1].out_features))}
    none, dead = ablate(model, data.batches(64), [{"classifier.1": []}, everything], 10)
    assert none.correct.tolist() == none.correct_base.tolist()  # nothing zeroed: no change
    winner = int(model.classifier[3].bias.argmax())
    want = np.where(np.arange(10) == winner, dead.count, 0)
    assert dead.correct.tolist() == want.tolist()
    assert dead.drop[winner] <= 0 and (dead.drop[np.arange(10) != winner] >= 0).all()


def test_bad_module_and_channel_are_clear(setup) -> None:
    model, data = setup
    with pytest.raises(ValueError, match="'features.99' is not a module"):
        ablate(model, data.batches(64), [{"features.99": [0]}], 10)
    with pytest.raises(ValueError, match="channel 500 of an output with 128"):
        ablate(model, data.batches(64), [{"features.30": [500]}], 10)


def test_cnnvis_ablate_clusters_and_each_cluster(cifar_dir: Path, tmp_path: Path) -> None:
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene

    run = tmp_path / "run"
    data = f"cifar10:{cifar_dir}"
    r = cnnvis("analyze", "basecnn-x0.25", "--data", data, "--limit", "64", "-q", "-o", run)
    assert r.returncode == 0, r.stderr
    common = ["--model", "basecnn-x0.25", "--data", data, "--limit", "64"]
    r = cnnvis("ablate", run, *common, "--neurons", "conv3 #1, conv2:3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    scene = build_scene(open_run(run).latest())
    rows = {s.name: k for k, s in enumerate(scene.rows)}
    first = int(np.argmin(np.where(scene.clusters.row == rows["conv3"], scene.clusters.rect[:, 0], np.inf)))
    n3 = int(scene.clusters.size[first])
    assert f"{scene.rows[rows['conv3']].unit}: {n3} channel(s)" in lines[1]
    assert f"{scene.rows[rows['conv2']].unit}: 1 channel(s)" in lines[1]
    table = [x for x in lines if x.split() and x.split()[0] in ("airplane", "truck", "all")]
    assert len(table) == 3 and table[-1].split()[1] == "64"
    r = cnnvis("ablate", run, *common, "--each-cluster", "conv2")
    assert r.returncode == 0, r.stderr
    n_clusters = int((scene.clusters.row == rows["conv2"]).sum())
    assert sum(x.startswith("conv2 #") for x in r.stdout.splitlines()) == n_clusters
    for bad, needle in (
        (["--neurons", "conv9"], "conv9"),
        (["--each-cluster", "conv9"], "no layer 'conv9'"),
    ):
        r = cnnvis("ablate", run, *common, *bad)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
    # a run of cnnvis analyze does not say how to rebuild its model: one line each
    r = cnnvis("ablate", run, "--each-cluster", "conv2")
    assert r.returncode == 2 and "--data is needed:" in r.stderr, r.stderr
    r = cnnvis("ablate", run, "--data", data, "--each-cluster", "conv2")
    assert r.returncode == 2 and "--model is needed:" in r.stderr, r.stderr
    assert "does not say how to rebuild its model" in r.stderr


def test_downstream_change_equals_two_plain_forward_passes(setup) -> None:
    """``Ablation.change``: each watched unit's response (spatial max at its tap) with and
    without the zeroed channels, |Δ| averaged over the images and scaled by the unit's mean
    |response| — checked against the zeroed-weights copy run by plain hooks; units before the
    ablated layer do not move at all."""
    import cnnvis_gl as cv

    model, data = setup
    graph = cv.build_graph(model)
    watch = {u.name: u.tap for u in graph.units}
    chans = [0, 3]
    (res,) = ablate(model, data.batches(40), [{"features.10": chans}], 10, watch=watch)
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.features[10].weight[chans] = 0

    def responses(m):
        mods, out = dict(m.named_modules()), {}
        hooks = [mods[t].register_forward_hook(
            lambda _m, _i, o, u=u: out.setdefault(u, []).append(
                o.detach().flatten(2).amax(2) if o.dim() == 4 else o.detach())) for u, t in watch.items()]  # fmt: skip
        with torch.no_grad():
            for x, _, _ in data.batches(40):
                m(x)
        for h in hooks:
            h.remove()
        return {u: torch.cat(v) for u, v in out.items()}

    base, abl = responses(model), responses(zeroed)
    assert set(res.change) == set(watch)
    for u in watch:
        want = (abl[u] - base[u]).abs().sum(0) / base[u].abs().sum(0).mean()
        np.testing.assert_allclose(res.change[u], want.numpy(), rtol=1e-4, atol=1e-6, err_msg=u)
    for u in ("features.0", "features.3", "features.7"):  # upstream: untouched
        assert not res.change[u].any()
    own = res.change["features.10"]  # only the zeroed channels of the layer itself move
    assert own[chans].max() > 0 and not np.delete(own, chans).any()
    assert res.change["features.14"].mean() > 0  # and what comes after them
    (plain,) = ablate(model, data.batches(40), [{"features.10": chans}], 10)
    assert plain.change == {} and plain.correct.tolist() == res.correct.tolist()


def test_channels_last_units_are_zeroed_on_their_channel_axis(setup) -> None:
    """A Linear on a channels-last map (ConvNeXt's pointwise layers) and ECA's Conv1d on a
    (batch, 1, C) row hold their channels last: zeroing channels by hooks equals zeroing those
    rows of their weights, and the watched responses are per channel."""
    from torch import nn

    from cnnvis_gl.model import build_graph
    from cnnvis_gl.model.graph import channel_layouts

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 4, stride=4)
            self.pw = nn.Linear(8, 6)
            self.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
            self.gate = nn.Sigmoid()
            self.head = nn.Linear(6, 10)

        def forward(self, x):
            y = F.gelu(self.pw(self.stem(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
            g = self.gate(self.eca(y.mean((2, 3)).view(len(x), 1, -1)))
            return self.head((y * g.view(len(x), -1, 1, 1)).mean((2, 3)))

    _, data = setup
    torch.manual_seed(0)
    model = Block().eval()
    graph = build_graph(model, (3, 32, 32))
    layouts = channel_layouts(graph)
    assert layouts["pw"] == layouts["eca"] == layouts["gate"] == "last"
    assert graph.unit("eca").tap == "gate"
    watch = {u.name: u.tap for u in graph.units}
    chans = [0, 2, 5]
    (res,) = ablate(model, data.batches(32), [{"pw": chans}], 10, watch=watch, layouts=layouts)
    oracle = copy.deepcopy(model)
    with torch.no_grad():
        oracle.pw.weight[chans] = 0
        oracle.pw.bias[chans] = 0
    right, loss, count = _per_class(oracle, data)
    np.testing.assert_array_equal(res.count, count)
    np.testing.assert_array_equal(res.correct, right)
    np.testing.assert_allclose(res.loss, loss, rtol=1e-4)
    # ECA's neurons, measured per channel on its (batch, 1, C) row: zeroing its neuron 3
    (eca,) = ablate(model, data.batches(32), [{"eca": [3]}], 10, watch=watch, layouts=layouts)
    assert eca.change["eca"].shape == (6,) and eca.change["eca"][3] > 0
    np.testing.assert_array_equal(np.delete(eca.change["eca"], 3), 0)


def test_a_stacked_tap_is_measured_and_zeroed_per_neuron(setup) -> None:
    """SKNet's attention: a conv's 8 channels viewed as (N, 2, 4, 1, 1) and softmaxed over the
    two paths by an nn.Softmax module, the unit's tap. Zeroing the conv's channel 5 moves the
    softmax of channels 1 and 5 (one softmax over paths 0 and 1 of channel 1) and nothing else."""
    from torch import nn

    from cnnvis_gl.model import build_graph
    from cnnvis_gl.model.graph import channel_layouts

    class SK(nn.Module):
        def __init__(self):
            super().__init__()
            self.p0, self.p1 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, padding=2)
            self.sel = nn.Conv2d(4, 8, 1)
            self.soft = nn.Softmax(dim=1)
            self.head = nn.Linear(4, 10)

        def forward(self, x):
            s = torch.stack([F.relu(self.p0(x)), F.relu(self.p1(x))], 1)
            a = self.soft(self.sel(s.sum(1).mean((2, 3), keepdim=True)).view(len(x), 2, 4, 1, 1))
            return self.head((s * a).sum(1).mean((2, 3)))

    _, data = setup
    torch.manual_seed(0)
    model = SK().eval()
    graph = build_graph(model, (3, 32, 32))
    layouts = channel_layouts(graph)
    assert graph.unit("sel").tap == "soft" and layouts["soft"] == [8, 1, 1]
    watch = {u.name: u.tap for u in graph.units}
    (res,) = ablate(model, data.batches(32), [{"sel": [5]}], 10, watch=watch, layouts=layouts)
    moved = res.change["sel"]
    assert moved.shape == (8,) and (moved[[1, 5]] > 0).all()
    np.testing.assert_array_equal(np.delete(moved, [1, 5]), 0)


class _Outputs(torch.nn.Module):
    """The same classifier returning its logits as models do: a tensor, ``(logits, features)``
    (distillation models; GoogLeNet and Inception in training mode put auxiliary logits
    there), a dict with ``logits``, or an all-convolutional net's ``[N, K, 1, 1]`` map."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Conv2d(8, 10, 1)

    def forward(self, x):
        f = torch.relu(self.conv(x))
        y = self.head(f).mean((2, 3), keepdim=True)  # [N, 10, 1, 1]
        return {"plain": y.flatten(1), "tuple": (y.flatten(1), [f]), "dict": {"logits": y.flatten(1)},
                "map": y}[self.how]  # fmt: skip


@pytest.mark.parametrize("how", ["tuple", "dict", "map"])
def test_logits_are_found_in_what_forward_returns(setup, how) -> None:
    # (was: train and evaluate raised "cross_entropy_loss(): argument 'input' must be Tensor,
    # not tuple", ablate "'tuple' object has no attribute 'argmax'"; a [N, K, 1, 1] map went
    # unscored: no probe error)
    import cnnvis_gl as cv
    from cnnvis_gl.train import TrainConfig, evaluate, train

    _, data = setup
    torch.manual_seed(0)
    plain, model = _Outputs("plain"), _Outputs(how)
    model.load_state_dict(plain.state_dict())
    sets = [{"conv": [0, 3]}]
    (want,) = ablate(plain, data.batches(48), sets, 10)
    (got,) = ablate(model, data.batches(48), sets, 10)
    assert got.correct.tolist() == want.correct.tolist()
    assert np.allclose(got.loss, want.loss) and np.allclose(got.loss_base, want.loss_base)
    assert evaluate(model, data) == pytest.approx(evaluate(plain, data))
    assert cv.analyze(model, data, progress=False).meta["probe_error"] == pytest.approx(
        evaluate(plain, data)[1]
    )
    cfg = TrainConfig(epochs=1, batch_size=32, augment=False)
    h, h0 = (train(m, data, data, cfg, progress=False, log=lambda s: None) for m in (model, plain))
    assert h.epochs[0]["train_loss"] == pytest.approx(h0.epochs[0]["train_loss"], rel=1e-5)
    torch.testing.assert_close(model.conv.weight, plain.conv.weight)  # trained alike


def test_layers_computed_by_functions_are_zeroed_where_they_are_computed(setup) -> None:
    """A unit whose layer is a function's result, not a module's (a per-sample convolution's
    ``F.conv2d`` inside its module, which returns it viewed back): its channels are zeroed the
    moment they are computed — as zeroing the module's output, which is the same values."""
    # (was: "'att.conv2d' is not a module of the model")
    from test_graph_dynamic import Dynamic
    from test_graph_rules import _seeded

    from cnnvis_gl.model import trace_model
    from cnnvis_gl.model.graph import channel_layouts

    _, data = setup
    model = _seeded(Dynamic(act=False, classes=10))
    with torch.no_grad():
        model.a.weight.mul_(0.1)
        model.att.weight.mul_(0.1)
    graph = trace_model(model, (3, 32, 32)).graph
    layouts = channel_layouts(graph)
    assert layouts["att.conv2d"] == ["batch", 6, 32, 32]  # (the images folded in its output)
    sets = [
        {"att.conv2d": [0, 4]}, {"att": [0, 4]}, {"att.conv2d": [1], "b": [0]}, {"att": [1], "b": [0]}
    ]  # fmt: skip
    watch = {u.name: u.tap for u in graph.units}  # (a's tap is F.relu's result: no module's)
    assert watch == {"a": "relu", "att.conv2d": "att.conv2d", "b": "b"}
    by_call, by_module, both, both_modules = ablate(
        model, data.batches(40), sets, 10, watch=watch, layouts=layouts
    )
    for got, want in ((by_call, by_module), (both, both_modules)):
        assert got.correct.tolist() == want.correct.tolist()
        assert np.allclose(got.loss, want.loss, rtol=1e-5)
        assert set(got.change) == set(watch)  # every unit followed (was: b alone)
        for u in ("a", "b"):
            np.testing.assert_allclose(got.change[u], want.change[u], rtol=1e-5, atol=1e-7)
    assert not np.allclose(by_call.loss, by_call.loss_base)  # (it did change something)
    assert not by_call.change["a"].any() and by_call.change["b"].all()  # upstream, downstream
    # the zeroed neurons as the layers after them see them: moved, the others not (zeroed
    # after it, in the module's output, the layer's own responses do not move)
    moved = by_call.change["att.conv2d"]
    assert (moved[[0, 4]] > 0).all() and not np.delete(moved, [0, 4]).any()
    assert not by_module.change["att.conv2d"].any()
    with pytest.raises(ValueError, match="'att.conv9' is not a module or a layer of the model"):
        ablate(model, data.batches(40), [{"att.conv9": [0]}], 10)
