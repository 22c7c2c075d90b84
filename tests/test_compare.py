"""Comparing two runs: linear CKA against its defining properties, group matching, and
``cnnvis compare`` on two real models trained by ``cnnvis train`` on CIFAR-10."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cnnvis_gl.compare import linear_cka, match_groups


def test_linear_cka_properties():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 12))
    assert linear_cka(X, X) == pytest.approx(1.0)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(X, 3.5 * X @ Q + 2.0) == pytest.approx(1.0)  # rotation, scale, shift
    Y = rng.normal(size=(200, 30))
    assert linear_cka(X, Y) < 0.2  # unrelated representations
    # a hand-computed case: one feature each, y = x² on centred x gives 0 (uncorrelated)
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[:, None]
    assert linear_cka(x, x**2) == pytest.approx(0.0, abs=1e-12)
    assert linear_cka(x, 2 * x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(X, Y[:10])


def test_groups_match_by_name_then_depth():
    assert match_groups(["conv1", "conv2", "fc"], ["conv1", "conv2", "fc"]) == [
        ("conv1", "conv1"), ("conv2", "conv2"), ("fc", "fc")
    ]  # fmt: skip
    # shallow vs deep: names that exist in both, the others by relative depth
    pairs = match_groups(["a", "b", "out"], ["x", "y", "z", "w", "out"])
    assert pairs == [("a", "x"), ("b", "z"), ("out", "out")]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, cifar_dir):
    from cnnvis_gl.cli import main

    root = tmp_path_factory.mktemp("compare")
    for name, model in (("narrow", "basecnn-x0.25"), ("wide", "basecnn-x0.5")):
        args = ["train", model, "--data", f"cifar10:{cifar_dir}", "--epochs", "1", "--limit", "256"]
        args += ["--test-limit", "100", "--analyze-limit", "100", "-q", "-o", str(root / name)]
        assert main(args) == 0
    return root / "narrow", root / "wide"


def test_cnnvis_compare_prints_the_table(two_runs, small_run, tmp_path, capsys):
    from cnnvis_gl import open_run
    from cnnvis_gl.analysis.diagnose import redundancy
    from cnnvis_gl.cli import main

    narrow, wide = two_runs
    capsys.readouterr()
    assert main(["compare", str(narrow), str(narrow), "--limit", "120"]) == 0
    same = capsys.readouterr().out.splitlines()
    rows = [ln.split() for ln in same if ln.startswith(("conv", "fc"))]
    assert [r[0] for r in rows] == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"]
    assert all(r[-1] == "1.000" for r in rows)  # CKA of a group with itself
    assert "CKA: linear, on each neuron's spatial-max response to 120 images" in same[-1]

    assert main(["compare", str(narrow), str(wide), "--limit", "120"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: ln.split() for ln in out if ln.startswith(("conv", "fc"))}
    assert rows["conv4"][2] == "128/256"  # neurons: ×¼ vs ×½
    ckas = [float(r[-1]) for r in rows.values()]
    assert all(0.0 < c < 1.0 for c in ckas)
    # the redundancy column is diagnose.redundancy of each run's class profiles
    snap = open_run(wide).latest()
    unit = next(g.unit for g in snap.graph.groups if g.name == "conv4")
    assert rows["conv4"][4].split("/")[1] == f"{redundancy(snap.activations(unit)):.0%}"

    # a run that cannot rebuild its model: the table without CKA, and why
    other = tmp_path / "other"
    shutil.copytree(small_run, other)
    assert main(["compare", str(narrow), str(other)]) == 0
    out = capsys.readouterr().out
    assert f"no CKA: {other} does not say how to rebuild its model" in out
    assert out.splitlines()[-1].split()[-1] == "—"
