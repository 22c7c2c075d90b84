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


@pytest.mark.gui
def test_compare_figure_sets_matched_rows_side_by_side(two_runs, tmp_path, capsys, headless_gl):
    """``--figure``: both networks at one scale, each matched pair of rows next to each other
    under its numbers; a wider layer is drawn wider."""
    from PIL import Image

    from cnnvis_gl import open_run
    from cnnvis_gl.cli import main
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.render.comparison import CAPTION, HEAD, PAD

    narrow, wide = two_runs
    out = tmp_path / "side.png"
    assert main(["compare", str(narrow), str(wide), "--no-cka", "--figure", str(out), "--width", "1400"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape[1] == 1400
    scenes = [build_scene(open_run(r).latest()) for r in (narrow, wide)]
    half = (1400 - 3 * PAD) // 2
    zoom = min(half / (s.bounds[2] - s.bounds[0]) for s in scenes)
    heights = []
    for name in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2"):
        rows = [next(r for r in s.rows if r.name == name) for s in scenes]
        heights.append(max(r.height for r in rows) * zoom)
    want = HEAD + sum(CAPTION + h + PAD for h in heights)
    assert abs(img.shape[0] - want) <= 6 * len(heights)  # (2 px margins, rounding, per band)
    # the last band (fc2, 10 neurons each): both sides drawn; the first band's conv1 of the wide
    # model spans more columns than the narrow one's (same scale)
    y = HEAD
    spans = []
    for h in heights:
        band = img[y + CAPTION : y + CAPTION + int(h), :]
        left, right = band[:, PAD : PAD + half], band[:, 2 * PAD + half :]
        spans.append([int((np.abs(np.diff(side, axis=1)).sum(2) > 60).any(0).sum()) for side in (left, right)])
        y += CAPTION + int(round(h)) + PAD
    assert all(a > 0 and b > 0 for a, b in spans)
    assert spans[0][1] > spans[0][0]  # conv1: 16 vs 8 neurons
