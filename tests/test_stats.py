"""Statistics checked against a direct computation on real CIFAR-10 images (SPEC §3)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.api import image_batches
from cnnvis_gl.data import open_data
from cnnvis_gl.errors import ModelError
from cnnvis_gl.models import build_model
from cnnvis_gl.stats import Probe

N = 300


@pytest.fixture(scope="module")
def cifar(cifar_dir):
    return open_data(f"cifar10:{cifar_dir}", "test").subset(N)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("basecnn-x0.25").eval()


@pytest.fixture(scope="module")
def snap(model, cifar):
    return cv.analyze(model, cifar, batch_size=64, progress=False)


@pytest.fixture(scope="module")
def direct(model, cifar):
    return _direct_taps(model, cifar)


def _direct_taps(model, cifar):
    """Activations of every tap, by forward hooks on the plain model (independent of fx)."""
    seen: dict[str, list[torch.Tensor]] = {}
    mods = dict(model.named_modules())
    graph = cv.build_graph(model)
    hooks = []
    for u in graph.units:

        def hook(_m, _i, out, name=u.name):
            seen.setdefault(name, []).append(out.detach().clone())

        hooks.append(mods[u.tap].register_forward_hook(hook))
    with torch.no_grad():
        for x, _y, _ in cifar.batches(100):
            model(x)
    for h in hooks:
        h.remove()
    return graph, {k: torch.cat(v) for k, v in seen.items()}


def test_class_means_and_topk_match_direct_computation(direct, cifar, snap):
    graph, taps = direct
    labels = torch.from_numpy(cifar.labels())
    for u in graph.units:
        t = taps[u.name]
        resp = t.flatten(2).max(2).values if t.dim() == 4 else t
        mean_resp = t.flatten(2).mean(2) if t.dim() == 4 else t
        direct = torch.stack([resp[labels == c].mean(0) for c in range(10)], 1)
        direct_mean = torch.stack([mean_resp[labels == c].mean(0) for c in range(10)], 1)
        np.testing.assert_allclose(
            snap[f"units/{u.name}/A_max"], direct.numpy(), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            snap[f"units/{u.name}/A_mean"], direct_mean.numpy(), rtol=1e-5, atol=1e-5
        )
        # top-9 images: largest response, ties by smaller dataset index
        img_index = snap["image_index"]
        top_rows = snap[f"units/{u.name}/topk_image"]
        for n in range(0, u.channels, max(1, u.channels // 5)):
            r = resp[:, n].numpy()
            order = np.lexsort((np.arange(N), -r))[:9]
            np.testing.assert_array_equal(img_index[top_rows[n]], order)
            np.testing.assert_allclose(snap[f"units/{u.name}/topk_value"][n], r[order], rtol=1e-6)
        np.testing.assert_allclose(
            snap[f"units/{u.name}/max_response"], resp.max(0).values.numpy(), rtol=1e-6
        )
        np.testing.assert_allclose(
            snap[f"units/{u.name}/active_fraction"], (resp > 0).float().mean(0).numpy(), atol=1e-6
        )
        m = snap.meta["units"][u.name]
        assert m["act_mean"] == pytest.approx(float(t.double().mean()), rel=1e-5)
        assert m["act_std"] == pytest.approx(float(t.double().std(unbiased=False)), rel=1e-4)
    # the stored images are the raw pixels of the referenced dataset images
    idx = snap["image_index"]
    np.testing.assert_array_equal(snap["images"], cifar.raw(idx).permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(snap["image_label"], cifar.labels()[idx])
    np.testing.assert_array_equal(snap["class_count"], np.bincount(cifar.labels(), minlength=10))


def test_receptive_field_crop_of_top_image(direct, snap):
    graph, taps = direct
    unit = graph.unit("features.7")  # 2nd stage: rf 10, jump 2, start 0.5
    t = taps[unit.name]
    n = 3
    best = int(snap["image_index"][snap[f"units/{unit.name}/topk_image"][n, 0]])
    fmap = t[best, n]
    y, x = divmod(int(fmap.flatten().argmax()), fmap.shape[1])
    cy, cx = 0.5 + 2 * y, 0.5 + 2 * x  # centre in input pixels
    expected = [
        max(0, int(np.floor(cy - 4.5))),
        max(0, int(np.floor(cx - 4.5))),
        min(32, int(np.ceil(cy + 4.5)) + 1),
        min(32, int(np.ceil(cx + 4.5)) + 1),
    ]
    assert list(snap[f"units/{unit.name}/topk_box"][n, 0]) == expected
    patches = snap.patches("features.7", k=2, size=24)
    assert patches.shape == (unit.channels, 2, 24, 24, 3) and patches.dtype == np.uint8
    assert patches[n, 0].std() > 0  # a real picture, not a blank


def test_linear_units_crop_the_whole_image(snap):
    box = snap["units/classifier.1/topk_box"]
    assert (box[..., :2] == 0).all() and (box[..., 2:] == 32).all()


def test_probe_loss_and_error(model, cifar, snap):
    with torch.no_grad():
        x, y = cifar.normalize(cifar.raw(np.arange(N))), torch.from_numpy(cifar.labels())
        out = model(x)
    assert snap.meta["probe_error"] == pytest.approx(float((out.argmax(1) != y).float().mean()))
    assert snap.meta["probe_loss"] == pytest.approx(
        float(nn.functional.cross_entropy(out, y)), rel=1e-5
    )


def test_two_halves_merged_equal_the_whole(model, cifar):
    probe = Probe(model, (3, 32, 32))
    whole = probe.collect(image_batches(cifar, 64, "cpu"), 10, progress=False)
    first = probe.collect(image_batches(cifar.subset(130), 50, "cpu"), 10, progress=False)

    def tail():
        for x, y, idx, _fetch in image_batches(cifar, 64, "cpu"):
            keep = idx >= 130
            if keep.any():
                yield (
                    x[keep],
                    y[keep],
                    idx[keep],
                    (lambda pos, idx=idx[keep]: cifar.raw(idx[pos].numpy())),
                )

    second = probe.collect(tail(), 10, progress=False)
    merged = second.merge(first)  # order does not matter
    a, ma = whole.finalize(probe.graph)
    b, mb = merged.finalize(probe.graph)
    assert a.keys() == b.keys()
    for key in a:
        if key.endswith(("A_max", "A_mean", "active_fraction")):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert ma["n_images"] == mb["n_images"] == N
    for u in ma["units"]:
        assert ma["units"][u]["act_mean"] == pytest.approx(mb["units"][u]["act_mean"], rel=1e-6)


def test_state_does_not_grow_with_the_dataset(model, cifar):
    probe = Probe(model, (3, 32, 32))
    small = probe.collect(image_batches(cifar.subset(100), 50, "cpu"), 10, progress=False)
    big = probe.collect(image_batches(cifar, 50, "cpu"), 10, progress=False)
    for f in ("sum_max", "top_val", "top_id", "cls_key", "max_resp", "active", "act_sq"):
        assert getattr(small, f).shape == getattr(big, f).shape
    # only images in some top-k list (overall or of a class) are kept
    from cnnvis_gl.stats.accumulator import key_ids

    referenced = {int(i) for i in big.top_id.flatten() if i >= 0}
    referenced |= {int(i) for i in key_ids(big.cls_key).flatten() if i >= 0}
    assert set(big.images) == referenced


def test_dead_and_saturated_neurons():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([-1.0, 1.0, 5.0, -5.0]))
    dead_model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10)).eval()
    tanh_model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 10)
    ).eval()
    with torch.no_grad():
        tanh_model[0].weight.zero_()
        tanh_model[0].bias.copy_(torch.tensor([10.0, 0.0, -10.0, 0.1]))
    x = torch.randn(40, 3, 8, 8)
    y = torch.arange(40) % 10
    ds = torch.utils.data.TensorDataset(x, y)
    names = [str(i) for i in range(10)]
    s = cv.analyze(dead_model, ds, classes=names, progress=False)
    assert s.meta["units"]["0"]["dead_fraction"] == 0.5
    assert s.meta["units"]["0"]["saturated_fraction"] is None  # ReLU has no saturation
    t = cv.analyze(tanh_model, ds, classes=names, progress=False)
    assert t.meta["units"]["0"]["saturated_fraction"] == 0.5


def test_dataloader_input(model, cifar):
    x = cifar.normalize(cifar.raw(np.arange(64)))
    y = torch.from_numpy(cifar.labels()[:64])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    s = cv.analyze(model, loader, classes=list(cifar.classes), progress=False, limit=40)
    assert s.n_images == 40
    assert (
        s["images"].dtype == np.uint8 and s["images"].max() == 255
    )  # min-max scaled display pixels


class _Conv(nn.Module):
    """GoogLeNet's BasicConv2d: the tap is a function's result that the module returns."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class _SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)
        self.act, self.gate = nn.ReLU(), nn.Sigmoid()

    def forward(self, x):  # torchvision's SqueezeExcitation: the gated product is returned
        s = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s


class _Mixed(nn.Module):
    def __init__(self, functional_tail: bool):
        super().__init__()
        self.a, self.b = _Conv(3, 8), _Conv(8, 8)
        self.se = _SE(8)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()  # one module instance called twice
        self.fc = nn.Linear(8, 10)
        self.functional_tail = functional_tail

    def forward(self, x):
        x = self.se(self.b(self.a(x)))
        if self.functional_tail:  # a tap no module returns: every pass numbered
            x = F.relu(self.c(x) + x)
        else:
            x = self.relu(self.c(x) + x)
        x = self.relu(F.max_pool2d(x, 2))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("functional_tail", [False, True])
def test_module_hooks_and_numbered_passes_measure_the_same(cifar, functional_tail):
    torch.manual_seed(1)
    model = _Mixed(functional_tail).eval()
    probe = Probe(model, (3, 32, 32))
    acc = cv.stats.StatsAccumulator(probe.graph.units, 10)
    assert probe.session(acc).by_module_hooks is (not functional_tail)
    data = cifar.subset(200)
    fast = probe.collect(image_batches(data, 40, "cpu"), 10, progress=False)
    slow = probe.collect(image_batches(data, 40, "cpu"), 10, progress=False, numbered=True)
    a, ma = fast.finalize(probe.graph)
    b, mb = slow.finalize(probe.graph)
    assert a.keys() == b.keys() and ma == mb
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_module_hooks_see_a_block_skipped_after_the_first_batch(cifar):
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = _Conv(3, 4), _Conv(4, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            x = self.a(x)
            if self.calls < 3:  # the capture and the first batch take the block
                x = self.b(x)
            return x.mean((2, 3))

    probe = Probe(Skips().eval(), (3, 32, 32))
    batches = image_batches(cifar.subset(40), 10, "cpu")
    with pytest.raises(ModelError, match="different path.*_Conv module called 0 times instead of 1"):
        probe.collect(batches, 10, progress=False)


def test_per_class_top_images_match_direct_computation(direct, cifar, snap):
    """The matrix drill-down's lists: for every neuron and class, the top-3 images *of that
    class* by response, ties by dataset index; their crops are the receptive field at the arg
    max, like the overall top-k's."""
    graph, taps = direct
    labels = cifar.labels()
    img_index = snap["image_index"]
    assert snap.meta["class_k"] == 3
    for u in graph.units:
        t = taps[u.name]
        resp = (t.flatten(2).max(2).values if t.dim() == 4 else t).numpy()
        rows = snap[f"units/{u.name}/class_topk_image"]
        values = snap[f"units/{u.name}/class_topk_value"]
        assert rows.shape == values.shape == (u.channels, 10, 3)
        for n in range(0, u.channels, max(1, u.channels // 4)):
            for c in range(10):
                members = np.flatnonzero(labels == c)
                order = members[np.lexsort((members, -resp[members, n]))[:3]]
                np.testing.assert_array_equal(img_index[rows[n, c]], order)
                np.testing.assert_allclose(values[n, c], resp[order, n], rtol=1e-6)
                assert (snap["image_label"][rows[n, c]] == c).all()
        # where a class's best image is the neuron's best overall, the crop is the same box
        top = snap[f"units/{u.name}/topk_image"][:, 0]
        best_class = labels[img_index[top]]
        same = rows[np.arange(u.channels), best_class, 0] == top
        assert same.all()
        np.testing.assert_array_equal(
            snap[f"units/{u.name}/class_topk_box"][np.arange(u.channels), best_class, 0],
            snap[f"units/{u.name}/topk_box"][:, 0],
        )
    crops, vals, idx = snap.class_patches("conv2", 5, 3, size=16)
    unit = snap.graph.groups[1].unit
    assert crops.shape == (3, 16, 16, 3) and crops.std() > 0
    np.testing.assert_array_equal(idx, img_index[snap[f"units/{unit}/class_topk_image"][5, 3]])
    assert (cifar.labels()[idx] == 3).all() and list(vals) == sorted(vals, reverse=True)


def test_per_class_lists_with_few_images_of_a_class(model, cifar):
    """A class seen fewer than class_k times keeps empty slots (no image, no crash)."""
    probe = Probe(model, (3, 32, 32))
    small = cifar.subset(12)  # some classes appear once or not at all
    acc = probe.collect(image_batches(small, 5, "cpu"), 10, progress=False)
    arrays, _ = acc.finalize(probe.graph)
    counts = np.bincount(small.labels(), minlength=10)
    rows = arrays["units/features.0/class_topk_image"]
    np.testing.assert_array_equal((rows >= 0).sum(2), np.minimum(counts, 3)[None, :].repeat(16, 0))


def test_per_class_merge_without_host_sync_equals_the_filtered_one():
    """On a GPU the per-class merge takes every (neuron, class) list (finding the few that
    change would wait for the device); on a CPU only the lists some image beats.  Same lists."""
    from types import SimpleNamespace

    from cnnvis_gl.model.graph import Unit
    from cnnvis_gl.stats.accumulator import StatsAccumulator, _class_positions, _merge_classes

    def run(device_type):
        torch.manual_seed(0)
        acc = StatsAccumulator([Unit("u", ["u"], "u", 300, [], 0)], 10, class_k=3)
        acc.device = SimpleNamespace(type=device_type)  # (only the branch reads it)
        for it in range(6):
            y = torch.randint(0, 10, (64,))
            acc._ids_dev = torch.arange(it * 64, (it + 1) * 64)
            acc._by_class = _class_positions(y, torch.device("cpu"))
            entered = torch.zeros(65, dtype=torch.bool)
            _merge_classes(acc, torch.randn(64, 300), torch.randint(0, 50, (64, 300)), entered)
        return acc.cls_key, acc.cls_loc

    (k1, l1), (k2, l2) = run("cpu"), run("cuda")
    assert torch.equal(k1, k2) and torch.equal(l1, l2)
    assert (k1 != torch.iinfo(torch.int64).min).all()  # 6 batches of 64: every list full


@pytest.mark.parametrize(
    "dtype, tol", [(torch.float16, 2e-2), (torch.bfloat16, 8e-2), (torch.float64, 1e-5)]
)
def test_a_model_in_another_precision_takes_images_in_it(model, cifar, snap, dtype, tol):
    """A model in half precision (airbench's CIFAR-10 speedrun nets are ``.half()``), bfloat16
    or float64 is fed images in its own dtype (before: "Input type (float) and bias type
    (c10::Half) should be the same"); its snapshot is the float32 model's up to that
    precision, the weights between units included."""
    other = copy.deepcopy(model).to(dtype)
    s = cv.analyze(other, cifar, batch_size=64, progress=False)
    assert s.graph.to_dict() == snap.graph.to_dict()
    for u in s.graph.units:
        a, b = s[f"units/{u.name}/A_max"], snap[f"units/{u.name}/A_max"]
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=tol * np.abs(b).max(), err_msg=u.name)
    weights = [key for key in snap.arrays if key.startswith("weights/")]
    assert weights and sorted(weights) == sorted(k for k in s.arrays if k.startswith("weights/"))
    for key in weights:
        b = snap[key]
        np.testing.assert_allclose(s[key], b, atol=tol * np.abs(b).max(), err_msg=key)
    assert s.meta["probe_error"] == pytest.approx(snap.meta["probe_error"], abs=0.02)
