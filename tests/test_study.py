"""The case studies (``cnnvis study depth|width``): a tiny real study on CIFAR-10 whose table is
checked against the saved models and snapshots, resumption, the findings' sentences on
constructed results, and the zoo's width variants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnvis_gl.study import layer_pairs, variant_label
from cnnvis_gl.study.report import findings


def test_width_variants_of_every_vgg_model():
    from cnnvis_gl.models import build_model

    def convs(m):
        return [c.out_channels for c in m.modules() if type(c).__name__ == "Conv2d"]

    assert convs(build_model("basecnn-x0.125")) == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64]
    assert convs(build_model("shallowcnn-x0.5")) == [32, 32, 64, 64, 128, 128, 128]
    deep = convs(build_model("deepcnn-x2"))
    assert len(deep) == 20 and deep[0] == 128 and deep[-1] == 1024
    # width 1 is the paper's model, unchanged
    assert convs(build_model("shallowcnn-x1")) == convs(build_model("shallowcnn"))
    assert variant_label("deepcnn-x0.5") == "DeepCNN×½"
    assert variant_label("basecnn-x0.125") == "BaseCNN×⅛"
    assert variant_label("basecnn-x4") == "BaseCNN×4"
    assert variant_label("basecnn") == "BaseCNN"


def _row(label, train, test, top=0.5, red=0.1, layers=10):
    return {
        "label": label, "train_error": train, "test_error": test, "top_positive": top,
        "bottom_positive": 0.5, "conv_layers": layers,
        "groups": [{"name": "conv4", "redundancy": red, "clusters": 3}],
    }  # fmt: skip


def test_findings_state_what_the_numbers_show():
    # the paper's width case: the widest fits the training set best, yet tests worse
    over = [_row("×¼", 0.30, 0.40, red=0.05), _row("×1", 0.10, 0.30), _row("×4", 0.01, 0.33, red=0.4)]
    text = " ".join(findings("width", over))
    assert "As in the paper, the widest model over-fits" in text
    assert "1.0%" in text and "33.0%" in text and "30.0%" in text
    assert "more with width, as in the paper" in text
    # wider is better on the test images too: said plainly, with the gap
    better = [_row("×¼", 0.30, 0.40, red=0.3), _row("×1", 0.05, 0.28, red=0.1)]
    text = " ".join(findings("width", better))
    assert "does not do worse" in text and "23.0 pt" in text and "not more with width" in text
    # depth: the deepest model's top layers the most positive
    depth = [_row("S", 0.2, 0.3, top=0.6, layers=7), _row("B", 0.2, 0.3, top=0.7),
             _row("D", 0.2, 0.3, top=0.97, layers=20)]  # fmt: skip
    text = " ".join(findings("depth", depth))
    assert "As in the paper" in text and "97%" in text and "nearly no inhibition" in text
    assert "near-duplicate class profile: S 10%, B 10%, D 10%." in text  # a tie: no verdict
    depth[2]["groups"][0]["redundancy"] = 0.7
    assert "D 70%: the deepest model is the most redundant" in " ".join(findings("depth", depth))
    depth[2]["top_positive"] = 0.55
    assert "Unlike the paper" in " ".join(findings("depth", depth))
    # one variant: nothing to compare, no claim
    assert findings("depth", depth[:1]) == ["Test error: S 30.0%; lowest: S."]
    assert len(findings("width", over[:1])) == 1


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, cifar_dir):
    from cnnvis_gl.cli import main

    out = tmp_path_factory.mktemp("study") / "width"
    args = ["study", "width", "--data", f"cifar10:{cifar_dir}", "--variants",
            "basecnn-x0.125,basecnn-x0.25", "--epochs", "1", "--limit", "256", "--test-limit",
            "120", "--probe-size", "80", "-q", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    return out, args


def test_study_table_is_the_saved_models_measured(tiny_study, cifar_dir):
    from cnnvis_gl import open_run
    from cnnvis_gl.analysis.diagnose import redundancy
    from cnnvis_gl.data import open_data
    from cnnvis_gl.run.rebuild import rebuild_model
    from cnnvis_gl.train import evaluate

    out, _ = tiny_study
    doc = json.loads((out / "results.json").read_text())
    assert [v["model"] for v in doc["variants"]] == ["basecnn-x0.125", "basecnn-x0.25"]
    assert doc["recipe"]["epochs"] == 1 and doc["recipe"]["augment"] is False
    test = open_data(f"cifar10:{cifar_dir}", "test").subset(120)
    train = open_data(f"cifar10:{cifar_dir}", "train").subset(256)
    for v in doc["variants"]:
        run_dir = out / v["model"]
        model, why = rebuild_model(run_dir, 10)
        assert why == ""
        # the table's errors are those of the saved weights on the same images
        assert v["test_error"] == pytest.approx(evaluate(model, test)[1])
        assert v["train_error"] == pytest.approx(evaluate(model, train)[1])
        assert v["params"] == sum(p.numel() for p in model.parameters())
        snap = open_run(run_dir).latest()
        assert len(snap["images"]) == 80
        red = {g["name"]: g["redundancy"] for g in v["groups"]}
        for grp in snap.graph.groups:
            assert red[grp.name] == pytest.approx(redundancy(snap.activations(grp.unit)))
        pairs = layer_pairs(snap)
        assert [p["positive"] for p in v["pairs"]] == pytest.approx([p["positive"] for p in pairs])
        assert pairs[0]["from"] == "conv1.1" and pairs[0]["to"] == "conv1.2"
        assert [p["to"] for p in pairs][-2:] == ["fc1", "fc2"]
        conv = [p["positive"] for p in pairs if p["conv"]]
        assert len(conv) == 9 and v["conv_layers"] == 10
        assert v["top_positive"] == pytest.approx(np.mean(conv[-3:]))
    md = (out / "results.md").read_text()
    assert "| BaseCNN×⅛ | 10 |" in md and "## Findings" in md
    assert "![width_matrices](figures/width_matrices.png)" in md


def test_study_figure_shows_each_variant(tiny_study):
    from PIL import Image

    out, _ = tiny_study
    sheet = np.asarray(Image.open(out / "figures" / "width_matrices.png").convert("RGB"))
    panels = [np.asarray(Image.open(out / "figures" / f"basecnn-x{w}_conv4_matrix.png").convert("RGB"))
              for w in ("0.125", "0.25")]  # fmt: skip
    # two panels side by side, each under its caption, on white; each is the render, pasted
    # unchanged
    h, w = panels[0].shape[:2]
    assert sheet.shape[1] == sum(p.shape[1] for p in panels) + 3 * 12
    assert sheet.shape[0] == max(p.shape[0] for p in panels) + 44 + 12
    assert np.array_equal(sheet[44 : 44 + h, 12 : 12 + w], panels[0])
    x1 = 12 + w + 12
    assert np.array_equal(sheet[44 : 44 + h, x1 : x1 + panels[1].shape[1]], panels[1])
    for caption in (sheet[:44, 12 : 12 + w], sheet[:44, x1 : x1 + panels[1].shape[1]]):
        assert (caption < 100).any() and (caption == 255).mean() > 0.8  # dark text on white
    # the render is a matrix (many distinct colours of the colormap), not an empty frame
    assert len(np.unique(panels[1].reshape(-1, 3), axis=0)) > 50


def test_a_study_resumes_and_retrains_on_a_new_recipe(tiny_study, capsys):
    from cnnvis_gl.cli import main

    out, args = tiny_study
    weights = out / "basecnn-x0.125" / "weights.pt"
    before = weights.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--no-figures"]) == 0
    log = capsys.readouterr().out
    assert log.count("already trained with this recipe") == 2
    assert weights.stat().st_mtime_ns == before
    # another seed is another recipe: trained again
    assert main([*args, "--no-figures", "--variants", "basecnn-x0.125", "--seed", "1"]) == 0
    assert weights.stat().st_mtime_ns != before
    assert json.loads((out / "basecnn-x0.125" / "study.json").read_text())["recipe"]["seed"] == 1


def test_study_arguments_are_checked(tmp_path, capsys):
    from cnnvis_gl.cli import main

    assert main(["study", "width", "--data", "cifar10:x", "--variants", "vgg99", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--variants: unknown model 'vgg99'" in err and "basecnn-x0.125" in err
    with pytest.raises(SystemExit):
        main(["study", "height", "--data", "cifar10:x", "-o", str(tmp_path)])
    import torch

    if not torch.cuda.is_available():  # a device that is not there: one line, before any work
        assert main(["study", "width", "--data", "cifar10:x", "--device", "cuda", "-o", str(tmp_path)]) == 2
        assert "--device cuda: this torch" in capsys.readouterr().err
