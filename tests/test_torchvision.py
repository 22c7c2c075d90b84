"""The public acceptance set: every CNN classifier of ``torchvision.models`` (random init, nothing
downloaded) analyses at its natural input size on real CIFAR-10 images, and one architecture of
each family renders headless.

torchvision's wheels on the registry are built for a CUDA torch; beside the project's CPU torch
their compiled detection ops do not load.  ``import_torchvision`` declares those op schemas and
imports the real package: the architectures tested are torchvision's own Python code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnvis_gl as cv
from cnnvis_gl.data import ImageData, open_data
from cnnvis_gl.data.imagedata import resize_uint8
from cnnvis_gl.models.torchvision import TRANSFORMERS, architectures, build, natural

pytestmark = pytest.mark.slow

NAMES = architectures()

#: One architecture per family: these also go through layout and a headless render.
FAMILIES = [
    "convnext_tiny",
    "densenet121",
    "efficientnet_b0",
    "googlenet",
    "mobilenet_v3_small",
    "regnet_y_400mf",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
]


def test_the_acceptance_set_is_every_cnn_builder():
    from cnnvis_gl.models.torchvision import import_torchvision

    models = import_torchvision()
    every = set(models.list_models(module=models))
    assert len(NAMES) >= 65 and set(NAMES) == {n for n in every if not n.startswith(TRANSFORMERS)}
    assert set(FAMILIES) <= set(NAMES)


def test_cli_analyze_uses_the_natural_size_and_imagenet_statistics(cifar_dir, tmp_path, capsys):
    from cnnvis_gl.cli import main

    assert (
        main(
            [
                "analyze",
                "torchvision:squeezenet1_1",
                "--data",
                f"cifar10:{cifar_dir}",
                "--limit",
                "4",
                "-q",
                "-o",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert "input size 224 px" in capsys.readouterr().out
    run = cv.open_run(tmp_path / "run")
    snap = run.latest()
    assert snap.arrays["images"].shape[1:3] == (224, 224)
    assert main(["info", str(tmp_path / "run")]) == 0
    assert "one forward pass" in capsys.readouterr().out


def _images(cifar_dir, size: int, n: int) -> ImageData:
    d = open_data(f"cifar10:{cifar_dir}", "test").subset(n)
    raw = resize_uint8(d.raw(slice(None)), (size, size))
    return ImageData.from_tensors(
        raw, d.labels(), d.classes, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )


#: Layers over 3,000 channels: the neuron weight matrices (channels² floats per pair of units)
#: make a full analysis take minutes on 2 CPU cores; their graphs are checked here, their
#: analysis is measured by tools/bench_models.py.
WIDE = 3000


@pytest.mark.parametrize("name", NAMES)
def test_every_torchvision_cnn_analyses(name, cifar_dir):
    from cnnvis_gl.model import build_graph

    torch.manual_seed(0)
    size = natural(name)["input_size"]
    model = build(name, 10)
    graph = build_graph(model, (3, size, size))
    assert graph.capture == "forward" and len(graph.groups) >= 3
    if max(u.channels for u in graph.units) > WIDE:
        assert graph.unit(graph.groups[-1].unit).channels == 10
        return
    data = _images(cifar_dir, size, 2)
    snap = cv.analyze(model, data, batch_size=2, k=2, progress=False)
    g = snap.graph
    assert g.capture == "forward" and len(g.groups) >= 3
    assert g.unit(g.groups[-1].unit).channels == 10  # the classes (SqueezeNet: a 1×1 conv)
    for u in g.units:  # every unit measured, with its own channel count
        a = snap.arrays[f"units/{u.name}/A_max"]
        assert a.shape == (u.channels, 10) and np.isfinite(a).all()
        box = snap.arrays[f"units/{u.name}/topk_box"]
        assert (box[..., 2] > box[..., 0]).all() and (box[..., 2:] <= size).all()
    for gr in g.groups[1:]:
        assert gr.inputs, gr.name  # every row is fed by an earlier one
    assert snap.meta["probe_error"] is not None


@pytest.mark.gl
@pytest.mark.parametrize("name", FAMILIES)
def test_one_of_each_family_renders(name, cifar_dir, headless_gl, tmp_path):
    from PIL import Image

    from cnnvis_gl.layout import LayoutOptions, build_scene
    from cnnvis_gl.render.offscreen import render_png

    torch.manual_seed(0)
    size = natural(name)["input_size"]
    snap = cv.analyze(build(name, 10), _images(cifar_dir, size, 10), batch_size=10, progress=False)
    scene = build_scene(snap, LayoutOptions(k=2))
    path = render_png(snap, scene, tmp_path / "net.png", size=(640, 400))
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    # the network is drawn: many distinct colours (patches), not a blank canvas
    assert len(np.unique(pixels.reshape(-1, 3) // 16, axis=0)) > 50
    assert len(scene.clusters.size) >= len(snap.graph.groups)


@pytest.mark.parametrize("where", ["top", "factory", "wrapped"])
def test_a_model_file_importing_torchvision_loads(tmp_path, where):
    """A user's file that imports torchvision — at its top, or inside the factory as a package
    importing its modules by name does (hysts/pytorch_image_classification), or behind a lazy
    import that wraps the error (transformers' "Could not import module …") — loads even where
    torchvision's compiled ops do not (a fresh process: torchvision not yet imported)."""
    import subprocess
    import sys

    body = {
        "top": "",
        "factory": "    import torchvision.models as tvm\n",
        "wrapped": "    try:\n        import torchvision.models as tvm\n    except RuntimeError as e:\n"
        "        raise ModuleNotFoundError('Could not import module') from e\n",
    }[where]
    head = "import torchvision.models as tvm\n" if where == "top" else ""
    (tmp_path / "user.py").write_text(
        f"{head}\n\ndef factory(num_classes):\n{body}"
        "    return tvm.resnet18(num_classes=num_classes)\n"
    )
    code = (
        "from cnnvis_gl.models import load_model\n"
        f"m = load_model({str(tmp_path / 'user.py')!r} + ':factory', num_classes=7)\n"
        "print(type(m).__name__, m.fc.out_features)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ResNet", "7"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_a_quantizable_model_in_float_is_its_float_model(name):
    """torchvision.models.quantization's builders with quantize=False (QuantStub, DeQuantStub,
    FloatFunctional adds): the same units as the float builder (was: "unsupported module
    'quant' (QuantStub)")."""
    from cnnvis_gl.models.torchvision import import_torchvision

    tv = import_torchvision()
    import torchvision.models.quantization as quantization

    q = getattr(quantization, name)(weights=None, quantize=False, num_classes=10).eval()
    f = getattr(tv, name)(weights=None, num_classes=10).eval()
    a, b = cv.build_graph(q, (3, 224, 224)), cv.build_graph(f, (3, 224, 224))
    assert [(u.name, u.channels) for u in a.units] == [(u.name, u.channels) for u in b.units]
    assert [g.units for g in a.groups] == [g.units for g in b.groups]
