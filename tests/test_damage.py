"""Damaged run files and bad arguments: one clear line naming the file (or argument), never a
traceback and never silently different values (issue 17's twelve cases, then a seeded fuzzer).

Each test damages a copy of one real run (BaseCNN×¼ on 120 CIFAR-10 images) the way a hostile
user, a crash or another tool's buggy writer would, and reads it back as ``cnnvis`` does.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnvis_gl import open_run
from cnnvis_gl.errors import SnapshotError
from cnnvis_gl.run import store

UNIT = "features.10"  # a conv unit of BaseCNN×¼ (checked in the fixture)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    import torch

    import cnnvis_gl as cv
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    snap = cv.analyze(
        build_model("basecnn-x0.25"), f"cifar10:{cifar_dir}", limit=120, progress=False
    )
    assert UNIT in {u.name for u in snap.graph.units}
    run = tmp_path_factory.mktemp("damage") / "run"
    snap.save(run, 0)
    return run


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(template, dst)
    return dst


def cnnvis(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnvis_gl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_error(r: subprocess.CompletedProcess, *names: str) -> str:
    """The command failed with one line on stderr (no traceback) naming each of ``names``."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def snap_dir(run: Path) -> Path:
    return run / "snapshots" / "step_000000000"


def edit_json(path: Path, fn, seal: bool = True) -> None:
    """Change a run's JSON file; ``seal``: with a matching CRC-32, as another tool's (buggy)
    writer would (otherwise the damage is caught by the seal before any field is read)."""
    doc = json.loads(path.read_text())
    fn(doc)
    if seal:
        doc = store._sealed(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("name", ["snapshot.json", "manifest.json"])
def test_a_hand_edit_of_a_run_json_breaks_its_seal(run: Path, name: str):
    path = snap_dir(run) / name if name == "snapshot.json" else run / name
    if name == "snapshot.json":
        edit_json(path, lambda d: d["meta"].update(n_images=7), seal=False)  # plausible value
    else:
        edit_json(path, lambda d: d["classes"].reverse(), seal=False)
    with pytest.raises(SnapshotError, match="CRC-32") as e:
        open_run(run).latest()
    assert str(path) in str(e.value)


def array_file(run: Path, key: str) -> Path:
    doc = json.loads((snap_dir(run) / "snapshot.json").read_text())
    return snap_dir(run) / doc["arrays"][key]["file"]


def rewrite(run: Path, fn) -> None:
    """A buggy writer: arrays changed by ``fn(arrays)``, stored with valid checksums."""
    old = store.open_snapshot(run, 0)
    arrays = {k: np.array(old[k]) for k in old.keys()}
    fn(arrays)
    store.write_snapshot(run, 0, arrays, old.meta)


# ---------------------------------------------------------------------------- the twelve cases


def test_1_byte_order_flipped_in_an_npy_header_is_refused(run: Path):
    path = array_file(run, f"units/{UNIT}/A_max")
    raw = path.read_bytes()
    assert raw.count(b"'<f4'") == 1
    path.write_bytes(raw.replace(b"'<f4'", b"'>f4'"))
    with pytest.raises(SnapshotError, match="big-endian") as e:
        open_run(run).latest().activations(UNIT)
    assert str(path) in str(e.value)
    one_line_error(cnnvis("render", run, "-o", run / "x.png", "--size", "200x150"), str(path))


@pytest.mark.parametrize(
    "damage",
    [
        lambda h: h.replace(b"{'descr'", b"{('descr'"),  # unclosed bracket: TokenError
        lambda h: h[:8] + b"\xff\xff" + h[10:],  # header length field
        lambda h: h.replace(b"'shape': (", b"'shape': ((("),
    ],
)
def test_2_damaged_npy_header_is_an_error_naming_the_file(run: Path, damage):
    path = array_file(run, f"units/{UNIT}/topk_box")
    raw = path.read_bytes()
    path.write_bytes(damage(raw[:128]) + raw[128:])
    with pytest.raises(SnapshotError) as e:
        open_run(run).latest()[f"units/{UNIT}/topk_box"]
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_3_an_array_missing_from_snapshot_json(run: Path):
    json_path = snap_dir(run) / "snapshot.json"
    edit_json(json_path, lambda d: d["arrays"].pop(f"units/{UNIT}/A_max"))
    with pytest.raises(SnapshotError, match=f"units/{UNIT}/A_max") as e:
        open_run(run).latest()
    assert str(json_path) in str(e.value)
    one_line_error(cnnvis("info", run), str(json_path), f"units/{UNIT}/A_max")


def test_4_a_huge_shape_number(run: Path):
    json_path = snap_dir(run) / "snapshot.json"
    edit_json(json_path, lambda d: d["arrays"][f"units/{UNIT}/A_max"].update(shape=[10**25, 10]))
    one_line_error(cnnvis("info", run), str(json_path), "shape")


@pytest.mark.parametrize(
    ("field", "damage"),
    [
        (UNIT, lambda m: m["units"].update({UNIT: 0})),
        ("dead_fraction", lambda m: m["units"][UNIT].update(dead_fraction="half")),
        ("n_images", lambda m: m.update(n_images=math.nan)),
        ("probe_error", lambda m: m.update(probe_error=[1])),
    ],
)
def test_5_snapshot_meta_is_checked(run: Path, field: str, damage):
    json_path = snap_dir(run) / "snapshot.json"
    edit_json(json_path, lambda d: damage(d["meta"]))
    with pytest.raises(SnapshotError, match=field) as e:
        open_run(run).latest()
    assert str(json_path) in str(e.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda g: g["groups"][1].update(units=[]),  # a group with no units
        lambda g: g.update(units=[]),  # no units at all
        lambda g: g.update(groups=[]),  # no groups
        lambda g: g["groups"][0].update(units=["no such unit"]),
        lambda g: g["units"][0].update(group=99),
        lambda g: g["layers"][1].update(inputs=["later"]),
    ],
)
def test_6_manifest_graph_is_checked(run: Path, damage):
    path = run / "manifest.json"
    edit_json(path, lambda d: damage(d["graph"]))
    with pytest.raises(SnapshotError) as e:
        open_run(run)
    assert str(path) in str(e.value) and "graph" in str(e.value)


def test_6_a_damaged_graph_is_one_line_from_the_cli(run: Path):
    path = run / "manifest.json"
    edit_json(path, lambda d: d["graph"]["groups"][1].update(units=[]))
    one_line_error(cnnvis("info", run), str(path), "groups[1].units")


def _past_the_end(arrays):
    a = arrays[f"units/{UNIT}/topk_image"].copy()
    a[0, 0] = len(arrays["images"])  # one past the last image row
    arrays[f"units/{UNIT}/topk_image"] = a


def _float_rows(arrays):
    arrays[f"units/{UNIT}/topk_image"] = arrays[f"units/{UNIT}/topk_image"].astype(np.float32)


def _boxes_outside(arrays):
    arrays[f"units/{UNIT}/topk_box"] = arrays[f"units/{UNIT}/topk_box"] + 1000


def _wrong_shape(arrays):
    arrays[f"units/{UNIT}/A_max"] = arrays[f"units/{UNIT}/A_max"][:, :3]


@pytest.mark.parametrize(
    ("key", "damage", "says"),
    [
        ("topk_image", _past_the_end, "refers to image rows"),
        ("topk_image", _float_rows, "expected integer rows"),
        ("topk_box", _boxes_outside, "outside"),
        ("A_max", _wrong_shape, "neurons × classes"),
    ],
)
def test_7_impossible_values_with_valid_checksums(run: Path, key: str, damage, says: str):
    full = f"units/{UNIT}/{key}"
    rewrite(run, damage)
    snap = open_run(run).latest()
    with pytest.raises(SnapshotError, match=says) as e:
        snap.activations(UNIT) if key == "A_max" else snap.patches(UNIT)
    assert full in str(e.value) and "snapshot.json" in str(e.value)
    if damage is _past_the_end:
        one_line_error(cnnvis("render", run, "-o", run / "x.png", "--size", "200x150"), full)


@pytest.mark.parametrize("name", ["snapshot.json", "manifest.json", "layout.json"])
def test_8_json_nested_too_deep(run: Path, name: str):
    path = snap_dir(run) / name if name == "snapshot.json" else run / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    args = ("render", run, "-o", run / "x.png", "--size", "200x150")
    line = one_line_error(cnnvis(*args), str(path))
    assert "nests" in line


@pytest.mark.parametrize("version", [None, [2], "1"])
def test_9_layout_json_with_a_bad_version(run: Path, version):
    from cnnvis_gl.ui.edits import load_edits

    path = run / "layout.json"
    path.write_text(json.dumps({"format": "cnnvis-layout", "version": version}))
    with pytest.raises(ValueError, match="version") as e:
        load_edits(run)
    assert str(e.value).startswith(str(path))
    if version is None:
        args = ("render", run, "-o", run / "x.png", "--size", "200x150")
        line = one_line_error(cnnvis(*args), str(path))
        assert "version" in line and "--fresh" in line


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (json.dumps({"format": "cnnvis-layout", "version": 99}), "newer"),
        (b"\xff\xfe{}", "UTF-8"),
        (
            json.dumps(
                {
                    "format": "cnnvis-layout",
                    "version": 1,
                    "rows": {"g": [{"id": 1, "members": ["a"]}]},
                }
            ),
            "invalid literal",
        ),
        (
            '{"format": "cnnvis-layout", "version": 1, "options": {"edge_fraction": NaN}}',
            "edge_fraction",
        ),
    ],
)
def test_10_layout_json_errors_name_the_file(run: Path, content, says: str):
    from cnnvis_gl.ui.edits import load_edits

    path = run / "layout.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=says) as e:
        load_edits(run)
    assert str(e.value).startswith(str(path))


def test_11_a_model_factory_that_raises(tmp_path: Path, cifar_dir: Path):
    f = tmp_path / "net.py"
    f.write_text("def make(num_classes=10):\n    raise RuntimeError('no GPU here\\nsecond line')\n")
    r = cnnvis(
        "analyze", f"{f}:make", "--data", f"cifar10:{cifar_dir}", "--limit", 8, "-o", tmp_path / "r"
    )
    line = one_line_error(r, "make() raised RuntimeError: no GPU here")
    assert "second line" not in line
    # a TypeError inside the factory is reported, not retried without arguments
    f.write_text("def make(num_classes=10):\n    return len(3)\n")
    r = cnnvis(
        "analyze", f"{f}:make", "--data", f"cifar10:{cifar_dir}", "--limit", 8, "-o", tmp_path / "r"
    )
    one_line_error(r, "make() raised TypeError")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--limit", "-5"), ("--limit", "-5")),
        (("--batch-size", "0"), ("--batch-size", "0")),
        (("-k", "0"), ("--topk", "0")),
        (("--step", "-1"), ("--step", "-1")),
    ],
)
def test_12_bad_numbers_are_refused_by_the_cli(tmp_path: Path, args, names):
    r = cnnvis("analyze", "basecnn", "--data", "cifar10:/nowhere", *args, "-o", tmp_path / "r")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    for n in names:
        assert n in last, last


def test_damaged_scalars_lines_are_skipped(run: Path):
    from cnnvis_gl.run.recorder import read_scalars

    (run / "scalars.jsonl").write_text(
        '{"step": 1, "loss": 2.0}\n' + "[" * 100_000 + "\n" + "\xff garbage\n" + '{"step": 2}\n'
    )
    assert [r["step"] for r in read_scalars(run)] == [1, 2]


def test_debug_flag_shows_the_traceback(run: Path):
    (snap_dir(run) / "snapshot.json").write_text("[" * 100_000)
    r = cnnvis("--debug", "info", run)
    assert r.returncode == 2 and "Traceback" in r.stderr and "nests" in r.stderr


# ---------------------------------------------------------------------------- fuzzing


def test_fuzz_damaged_copies_of_a_real_run(template: Path, repo_root: Path):
    """Seeded mutants of the real run (bit flips, truncations, deletions, JSON fields set to odd
    values with and without a matching seal, .npy header edits, arrays rewritten with valid
    checksums): each reads back exactly as the original or fails with the project's error
    naming a file of the run (``tools/fuzz_runs.py`` runs the same for longer)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_runs", repo_root / "tools" / "fuzz_runs.py")
    fuzz_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz_runs)
    counts = fuzz_runs.fuzz(template, mutants=280, minutes=None, seed=17)
    print(fuzz_runs.table(counts))
    assert list(counts["_failures"]) == []
    for kind in fuzz_runs.KINDS:  # every kind of damage was tried, and most raw damage is seen
        assert sum(counts[kind].values()) == 40
    for kind in fuzz_runs.RAW:
        assert counts[kind]["error"] >= 30, (kind, counts[kind])
