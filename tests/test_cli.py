"""The ``cnnvis`` commands end to end on a small --limit (real CIFAR-10, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cnnvis_gl as cv


def cnnvis(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "cnnvis_gl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.slow
def test_train_then_analyze(cifar_dir, tmp_path):
    out = tmp_path / "base"
    r = cnnvis(
        "train",
        "basecnn-x0.25",
        "--data",
        f"cifar10:{cifar_dir}",
        "--epochs",
        "1",
        "--limit",
        "512",
        "--test-limit",
        "256",
        "--analyze-limit",
        "128",
        "--train-batch-size",
        "64",
        "--record",
        tmp_path / "rec",
        "--every",
        "4",
        "--probe-size",
        "32",
        "-q",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert "test error" in r.stdout
    # --record: snapshots while training and the learning curves beside them
    rec = cv.open_run(tmp_path / "rec")
    assert rec.steps() == [0, 4, 8] and rec.latest().n_images == 32
    scalars = [json.loads(x) for x in (tmp_path / "rec" / "scalars.jsonl").read_text().splitlines()]
    assert [x["step"] for x in scalars if "train_loss" in x] == list(range(1, 9))
    assert [x["step"] for x in scalars if "test_error" in x] == [8]
    assert (out / "weights.pt").is_file() and (out / "train.json").is_file()
    run = cv.open_run(out)
    assert run.steps() == [8]  # 512 / 64 optimiser steps
    snap = run.latest()
    assert snap.n_images == 128 and "test_error" in snap.meta["scalars"]
    # the saved weights load safely and reproduce the snapshot's statistics
    r = cnnvis(
        "analyze",
        "basecnn-x0.25",
        "--data",
        f"cifar10:{cifar_dir}",
        "--weights",
        out / "weights.pt",
        "--limit",
        "128",
        "--step",
        "9",
        "-q",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    again = cv.open_run(out).snapshot(9)
    np.testing.assert_allclose(
        again["units/features.7/A_max"], snap["units/features.7/A_max"], rtol=1e-5, atol=1e-6
    )
    r = cnnvis("info", out)
    assert r.returncode == 0 and "conv4" in r.stdout and "step 9" in r.stdout


def test_analyze_and_open_run_from_python(cifar_dir, tmp_path):
    r = cnnvis(
        "analyze",
        "resnet20",
        "--data",
        f"cifar10:{cifar_dir}",
        "--limit",
        "64",
        "-o",
        tmp_path / "r",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    code = "import cnnvis_gl as cv; run = cv.open_run('r'); print(run.latest())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Snapshot(step=0, 64 images, 11 groups")


def test_user_model_file(cifar_dir, tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "def make(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),"
        " nn.Flatten(), nn.Linear(8 * 64, num_classes))\n"
    )
    torch.manual_seed(0)
    r = cnnvis(
        "analyze",
        f"{tmp_path / 'net.py'}:make",
        "--data",
        f"cifar10:{cifar_dir}",
        "--limit",
        "50",
        "-o",
        tmp_path / "r",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert cv.open_run(tmp_path / "r").latest().graph.groups[0].name == "conv1"


def test_a_model_wrapped_in_data_parallel_is_the_model_inside(cifar_dir, tmp_path):
    """A factory returning ``nn.DataParallel(net)`` (as CIFAR training scripts wrap it), and a
    checkpoint saved from one as kuangliu's pytorch-cifar saves it (``{"net": state dict with
    "module." keys, "acc": …, "epoch": …}``): the model inside, its own module paths; its
    statistics are those of the bare model."""
    from cnnvis_gl.data import ImageData
    from cnnvis_gl.models import build_model

    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "def bare():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),"
        " nn.Flatten(), nn.Linear(8 * 64, 10))\n"
        "def make():\n"
        "    return nn.DataParallel(bare())\n"
    )
    torch.manual_seed(0)
    wrapped = nn.DataParallel(build_model(f"{tmp_path / 'net.py'}:bare"))
    for p in wrapped.parameters():
        torch.nn.init.normal_(p, std=0.1)
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"net": wrapped.state_dict(), "acc": 12.5, "epoch": 3}, ckpt)
    assert all(k.startswith("module.") for k in wrapped.state_dict())
    r = cnnvis(
        "analyze", f"{tmp_path / 'net.py'}:make", "--weights", ckpt, "--data",
        f"cifar10:{cifar_dir}", "--limit", "40", "-o", tmp_path / "r", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    snap = cv.open_run(tmp_path / "r").latest()
    assert [u.name for u in snap.graph.units] == ["0", "4"]  # (not "module.0")
    torch.save(wrapped.module.state_dict(), tmp_path / "plain.pt")  # the bare model's own
    r = cnnvis(
        "analyze", f"{tmp_path / 'net.py'}:bare", "--weights", tmp_path / "plain.pt", "--data",
        f"cifar10:{cifar_dir}", "--limit", "40", "-o", tmp_path / "b", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    bare = cv.open_run(tmp_path / "b").latest()
    for key in ("units/0/A_mean", "units/0/topk_image", "units/4/max_response"):
        np.testing.assert_array_equal(np.asarray(snap[key]), np.asarray(bare[key]))
    x = torch.rand(6, 3, 32, 32)
    data = ImageData.from_tensors((x * 255).to(torch.uint8), np.arange(6) % 2, ["p", "q"])
    via_api = cv.analyze(wrapped, data, progress=False)  # the Python API unwraps it too
    assert [u.name for u in via_api.graph.units] == ["0", "4"]
    # torch.compile's wrapper (never run: the eager model inside is captured and measured)
    compiled = cv.analyze(torch.compile(wrapped.module), data, progress=False)
    assert [u.name for u in compiled.graph.units] == ["0", "4"]  # (not "_orig_mod.0")
    for key in ("units/0/A_mean", "units/4/max_response"):
        np.testing.assert_array_equal(np.asarray(compiled[key]), np.asarray(via_api[key]))


def test_a_model_returning_no_class_scores_is_measured_and_says_why_no_error(cifar_dir, tmp_path):
    """A self-supervised model returns an embedding, not one score per class: analysed all the
    same, with no probe loss or error, and a line saying why (a classifier prints none)."""
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn, torch.nn.functional as F\n"
        "class Embed(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.f = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),\n"
        "                               nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
        "        self.g = nn.Linear(8, d)\n"
        "    def forward(self, x):\n"
        "        h = self.f(x)\n"
        "        return F.normalize(self.g(h), dim=-1), h\n"
        "def embed():\n"
        "    return Embed(16)\n"
        "def classify():\n"
        "    return Embed(10)\n"
    )
    for factory, scored in (("embed", False), ("classify", True)):
        r = cnnvis(
            "analyze", f"{tmp_path / 'net.py'}:{factory}", "--data", f"cifar10:{cifar_dir}",
            "--limit", "20", "-o", tmp_path / factory, "-q",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        said = "no probe loss or error" in r.stdout
        assert said != scored, r.stdout
        snap = cv.open_run(tmp_path / factory).latest()
        assert (snap.meta.get("probe_error") is not None) == scored
        assert [u.name for u in snap.graph.units] == ["f.0", "g"]


SCRIPTED = """
import torch
import torch.nn as nn


@torch.jit.script
def swish(x):
    return x * torch.sigmoid(x)


class Block(torch.jit.ScriptModule):  # (as pytorch-cifar100's stochastic-depth ResNet)
    def __init__(self, p):
        super().__init__()
        self.p = p
        self.residual = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))

    @torch.jit.script_method
    def forward(self, x):
        if self.training:
            return self.residual(x) + x
        return swish(self.residual(x) * self.p + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block(0.5)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.block(torch.relu(self.stem(x))).mean((2, 3)))


def make():
    return torch.jit.script(Net())
"""


def test_torchscript_in_a_model_file_is_plain_python(cifar_dir, tmp_path):
    """``torch.jit.ScriptModule`` subclasses with ``@torch.jit.script_method``, ``@torch.jit.script``
    functions and a factory returning ``torch.jit.script(model)`` are the plain Python model
    (TorchScript off, as PYTORCH_JIT=0 has it, while the file is imported and the factory
    runs), whose operations the capture sees."""
    # (was: "module 'block' is a TorchScript module (torch.jit.ScriptModule), which cannot be
    # captured"; the scripted swish and a scripted model are opaque to the capture)
    from cnnvis_gl.models import build_model

    (tmp_path / "scripted.py").write_text(SCRIPTED)
    real = torch.jit.ScriptModule, torch.jit.script, torch.jit.script_method
    model = build_model(f"{tmp_path / 'scripted.py'}:make").eval()
    assert (torch.jit.ScriptModule, torch.jit.script, torch.jit.script_method) == real  # restored
    assert not isinstance(model, real[0]) and not isinstance(model.block, real[0])
    r = cnnvis(
        "analyze", f"{tmp_path / 'scripted.py'}:make", "--data", f"cifar10:{cifar_dir}",
        "--limit", "20", "-o", tmp_path / "r", "-q",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    g = cv.open_run(tmp_path / "r").graph
    # the block's eager ops: its conv, norm, the scaled residual sum and the swish
    assert {"block.residual.0", "block.residual.1", "block.add", "block.sigmoid"} <= {
        lay.name for lay in g.layers
    }


def test_a_model_file_that_imports_its_package_siblings(cifar_dir, tmp_path):
    """``models/net.py`` with ``from .blocks import Block`` (a model in a package, as most
    repositories keep them) loads; the same file outside a package is a one-line error."""
    from cnnvis_gl.models import build_model

    pkg = tmp_path / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(
        "import torch.nn as nn\n"
        "class Block(nn.Sequential):\n"
        "    def __init__(self, i, o):\n"
        "        super().__init__(nn.Conv2d(i, o, 3, padding=1), nn.ReLU())\n"
    )
    net = "import torch.nn as nn\nfrom .blocks import Block\ndef make():\n    return Block(3, 5)\n"
    (pkg / "net.py").write_text(net)
    model = build_model(f"{pkg / 'net.py'}:make")
    assert type(model).__module__ == "mynets.blocks" and model[0].out_channels == 5
    (tmp_path / "net.py").write_text(net)
    spec = f"{tmp_path / 'net.py'}:make"
    r = cnnvis("analyze", spec, "--data", f"cifar10:{cifar_dir}", "-o", tmp_path / "r")
    assert r.returncode == 2 and "no package (no __init__.py)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_model_file_imports_as_python_would_run_it(tmp_path):
    """In a fresh interpreter started elsewhere: a file that imports its own package by name
    (``from senet.se_module import SELayer``, as senet.pytorch does) and one that imports
    torchvision (whose compiled ops may not load beside the CPU torch) both build."""
    pkg = tmp_path / "repo" / "senet"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "se_module.py").write_text(
        "import torch.nn as nn\nclass SELayer(nn.Conv2d):\n    pass\n"
    )
    (pkg / "se_resnet.py").write_text(
        "import torch.nn as nn\n"
        "from torchvision.models import resnet18\n"
        "from senet.se_module import SELayer\n"
        "def make(num_classes=10):\n"
        "    return nn.Sequential(SELayer(3, 4, 3), nn.ReLU(), nn.Flatten())\n"
        "def tv(num_classes=10):\n"
        "    return resnet18(num_classes=num_classes)\n"
    )
    code = (
        "from cnnvis_gl.models import build_model\n"
        f"print(type(build_model({str(pkg / 'se_resnet.py')!r} + ':make')[0]).__name__)\n"
        f"print(type(build_model({str(pkg / 'se_resnet.py')!r} + ':tv')).__name__)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["SELayer", "ResNet"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["analyze", "nosuchnet", "--data", "cifar10:{c}", "-o", "{t}/x"],
            "unknown model 'nosuchnet'",
        ),
        (["analyze", "basecnn", "--data", "cifar10:{t}/nowhere", "-o", "{t}/x"], "{t}/nowhere"),
        (["analyze", "basecnn", "--data", "imagenet:{t}", "-o", "{t}/x"], "imagenet"),
        (
            ["analyze", "basecnn", "--data", "cifar10:{c}", "--weights", "{t}/w.pt", "-o", "{t}/x"],
            "{t}/w.pt",
        ),
        (
            [
                "analyze",
                "basecnn",
                "--data",
                "cifar10:{c}",
                "--weights",
                "{t}/evil.pt",
                "-o",
                "{t}/x",
            ],
            "{t}/evil.pt",
        ),
        (
            [
                "analyze",
                "basecnn",
                "--data",
                "cifar10:{c}",
                "--weights",
                "{t}/small.pt",
                "-o",
                "{t}/x",
            ],
            "do not fit",
        ),
        (["analyze", "{t}/missing.py:f", "--data", "cifar10:{c}", "-o", "{t}/x"], "{t}/missing.py"),
        (["info", "{t}/norun_here"], "unknown model"),
    ],
)
def test_bad_input_is_one_clear_line(cifar_dir, tmp_path, args, needle):
    import pickle

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(print))
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "small.pt")
    fmt = {"c": cifar_dir, "t": tmp_path}
    r = cnnvis(*[a.format(**fmt) for a in args])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnvis ") and "error:" in lines[0], r.stderr
    assert needle.format(**fmt) in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_help_lists_commands():
    r = cnnvis("--help")
    assert r.returncode == 0
    for cmd in ("analyze", "train", "info", "demo"):
        assert cmd in r.stdout


@pytest.fixture(scope="module")
def small_run(cifar_dir, tmp_path_factory) -> Path:
    """A run directory made by `cnnvis analyze` (BaseCNN×¼ on 100 test images); read-only."""
    run = tmp_path_factory.mktemp("cli") / "r"
    r = cnnvis(
        "analyze", "basecnn-x0.25", "--data", f"cifar10:{cifar_dir}", "--limit", "100", "-q",
        "-o", run,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return run


@pytest.mark.gl
def test_render_a_real_run_headless(small_run, tmp_path):
    from PIL import Image

    out = tmp_path / "fig.png"
    r = cnnvis(
        "render",
        small_run,
        "-o",
        out,
        "--size",
        "800x600",
        "--facet",
        "matrix",
        "--classes",
        "cat,dog",
        "-k",
        "3",
    )
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out))
    assert img.shape == (600, 800, 3)
    assert img.std() > 10  # a picture, not a blank canvas
    for bad, needle in (
        (["--size", "10"], "WIDTHxHEIGHT"),
        (["--classes", "unicorn"], "unicorn"),
        (["--expand", "conv9"], "conv9"),
        (["--zoom-to", "conv9"], "conv9"),
        (["--zoom-to", "conv2:99"], "conv2"),
        (["--camera=1,2"], "CX,CY,ZOOM"),
        (["--camera=1,2,0"], "zoom"),
    ):
        r = cnnvis("render", small_run, "-o", out, *bad)
        assert r.returncode == 2 and needle in r.stderr
    # a cluster framed: zoomed in, so the neuron-level edges are drawn too
    r = cnnvis("render", small_run, "-o", out, "--size", "640x400", "--zoom-to", "conv3:0")
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(out)).std() > 10
    # the same cluster as the viewer names it (1-based): the same picture
    same = tmp_path / "same.png"
    r = cnnvis("render", small_run, "-o", same, "--size", "640x400", "--zoom-to", "conv3 #1")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(same)))
    # what the Find box finds: a module path frames its group's row, a neuron its cluster
    pictures = {}
    for name, target in (("row", "conv2"), ("path", "features.10"), ("cluster", "conv2 #1"),
                         ("neuron", "features.10:0")):  # fmt: skip
        pictures[name] = tmp_path / f"{name}.png"
        r = cnnvis("render", small_run, "-o", pictures[name], "--size", "640x400", "--zoom-to", target)
        assert r.returncode == 0, r.stderr
    def pixels(name):
        return np.asarray(Image.open(pictures[name]))

    assert np.array_equal(pixels("row"), pixels("path"))
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.layout.search import neuron_at, row_clusters

    scene = build_scene(open_run(small_run).latest())
    row = next(k for k, r in enumerate(scene.rows) if r.name == "conv2")
    ci = int(scene.neurons.cluster[neuron_at(scene, "features.10", 0)])
    k = int(np.flatnonzero(row_clusters(scene, row) == ci)[0])
    r = cnnvis("render", small_run, "-o", tmp_path / "k.png", "--size", "640x400", "--zoom-to", f"conv2:{k}")
    assert r.returncode == 0 and np.array_equal(pixels("neuron"), np.asarray(Image.open(tmp_path / "k.png")))


def test_zoom_to_a_module_frames_its_groups_as_the_breadcrumb_does(small_run, tmp_path):
    """``--zoom-to features`` (BaseCNN's module holding conv1–conv4) frames those four groups'
    rows, as the viewer's breadcrumb "features" does."""
    import argparse

    from cnnvis_gl import open_run
    from cnnvis_gl.cli import _render_camera
    from cnnvis_gl.layout import LayoutOptions, build_scene
    from cnnvis_gl.layout.search import groups_frame, groups_under
    from cnnvis_gl.render.text import frame_with_labels

    snap = open_run(small_run).latest()
    groups = {g.name: list(g.units) for g in snap.graph.groups}
    assert groups_under(groups, "features") == ["conv1", "conv2", "conv3", "conv4"]
    assert groups_under(groups, "classifier") == ["fc1", "fc2"]
    scene = build_scene(snap, LayoutOptions(view_size=(640, 400)))
    a = argparse.Namespace(camera=None, zoom_to="features")
    cam = _render_camera(a, scene, (640, 400), groups)
    box = groups_frame(scene, list(groups), ["conv1", "conv2", "conv3", "conv4"])
    assert cam == frame_with_labels(scene.labels, box, (640, 400), 0.04)
    vx0, vy0, vx1, vy1 = cam.visible_rect((640, 400))
    assert vx0 <= box[0] and vy0 <= box[1] and box[2] <= vx1 and box[3] <= vy1
    fc2 = next(r for r in scene.rows if r.name == "fc2")
    assert fc2.y >= vy1 or fc2.x >= vx1  # the classifier's last row is not in the picture
    r = cnnvis("render", small_run, "-o", tmp_path / "f.png", "--size", "640x400", "--zoom-to", "features")
    assert r.returncode == 0, r.stderr


def test_zoom_to_a_row_frames_its_name_and_clusters(small_run):
    """``--zoom-to ROW`` and the viewer's zoom-to-row frame the same box: the row's clusters,
    its height and its name on the left (the name used to be cut off by --zoom-to)."""
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.layout.scene import ROW_BETWEEN
    from cnnvis_gl.layout.search import row_frame

    scene = build_scene(open_run(small_run).latest())
    framed = 0
    for k, r in enumerate(scene.rows):
        if r.kind == ROW_BETWEEN:
            continue
        x0, y0, x1, y1 = row_frame(scene, k)
        rect = scene.clusters.rect[scene.clusters.row == k]
        assert x0 < rect[:, 0].min() and x1 > (rect[:, 0] + rect[:, 2]).max()
        assert y0 < r.y and y1 > r.y + r.height
        names = [lab for lab in scene.labels if lab.kind == "row" and r.y <= lab.y <= r.y + r.height]
        assert names and x0 < min(lab.left for lab in names)
        framed += 1
    assert framed == len([r for r in scene.rows if r.kind != ROW_BETWEEN]) >= 5


@pytest.mark.gui
def test_view_headless_writes_a_screenshot(small_run, tmp_path):
    from PIL import Image

    env_free = cnnvis(
        "view",
        small_run,
        "--headless",
        "--size",
        "1000x700",
        "--screenshot-dir",
        tmp_path / "shots",
    )
    assert env_free.returncode == 0, env_free.stderr
    assert "headless" in env_free.stdout + env_free.stderr
    shots = list((tmp_path / "shots").glob("*.png"))
    assert len(shots) == 1 and Image.open(shots[0]).size == (1000, 700)
    r = cnnvis("view", tmp_path / "missing", "--headless")
    assert r.returncode == 2 and "missing" in r.stderr
    r = cnnvis("view", small_run, "--compare", tmp_path / "other", "--headless")
    assert r.returncode == 2 and "--compare" in r.stderr and "other" in r.stderr


def test_info_neuron_prints_the_matrix_drill_down(small_run, tmp_path):
    """``cnnvis info RUN --neuron conv3:5 --class cat``: the neuron's top images of that class
    (dataset indices and responses, as the snapshot keeps them) and their crops as a PNG."""
    from PIL import Image

    from cnnvis_gl import open_run

    snap = open_run(small_run).latest()
    unit = snap.graph.groups[2].unit
    values, index = snap.class_topk("conv3", 5, 3)
    out = tmp_path / "cat.png"
    r = cnnvis("info", small_run, "--neuron", "conv3:5", "--class", "cat", "-o", out)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("cat"))
    want = ", ".join(f"image {int(i)} ({float(v):.4g})" for i, v in zip(index, values, strict=True))
    assert line.endswith(want) and len(index) == 3
    assert f"{float(snap.activations(unit)[5, 3]):.4g}" in line
    img = np.asarray(Image.open(out))
    assert img.shape == (64, 3 * 64 + 2 * 4, 3)
    np.testing.assert_array_equal(img[:, :64], snap.class_patches("conv3", 5, 3, size=64)[0][0])
    # every class: one line each
    r = cnnvis("info", small_run, "--neuron", "features.3:0")
    assert r.returncode == 0 and sum(ln.startswith("  ") for ln in r.stdout.splitlines()) == 10
    for bad, needle in ((["--neuron", "conv9:1"], "conv9"), (["--neuron", "conv3:9999"], "0…"),
                        (["--neuron", "conv3:1", "--class", "unicorn"], "unicorn")):  # fmt: skip
        r = cnnvis("info", small_run, *bad)
        assert r.returncode == 2 and needle in r.stderr


def test_info_read_only_in_part_through_a_pipe_ends_quietly(small_run):
    """`cnnvis info RUN | head -1`: the reader has closed the pipe; no error, exit 0."""
    code = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)  # every write to stdout: BrokenPipeError\n"
        "from cnnvis_gl.cli import main\n"
        f"sys.exit(main(['info', {str(small_run)!r}]))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and p.stderr == ""


def test_a_viewer_thread_still_computing_at_exit_does_not_abort_the_process():
    """Closing the viewer while it lays out a big network left its worker thread inside torch
    at the interpreter's exit: "terminate called without an active exception", exit code 134
    and a core dump.  The command now leaves at once with its own exit code."""
    code = (
        "import sys, threading, time, torch\n"
        "from cnnvis_gl import cli\n"
        "def busy():\n"
        "    a = torch.randn(400, 400)\n"
        "    while True:\n"
        "        a = torch.tanh(a @ a)\n"
        "threading.Thread(target=busy, name='cnnvis-layout', daemon=True).start()\n"
        "time.sleep(0.5)\n"
        "sys.argv = ['cnnvis', '--version']\n"
        "sys.exit(cli.main())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "terminate called" not in r.stderr, (r.returncode, r.stderr)
    assert r.stdout.strip()  # the version, printed before leaving
