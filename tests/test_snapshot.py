"""Snapshots through a run directory: round trip, lazy loading, bad inputs (SPEC §9)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.errors import SnapshotError
from cnnvis_gl.models import build_model


@pytest.fixture(scope="module")
def snap(cifar_dir):
    torch.manual_seed(1)
    data = open_data(f"cifar10:{cifar_dir}", "test")
    return cv.analyze(
        build_model("resnet20"),
        data,
        limit=120,
        batch_size=40,
        k=4,
        progress=False,
        scalars={"train_loss": 1.5},
    )


def test_round_trip(snap, tmp_path):
    run_dir = tmp_path / "run"
    snap.save(run_dir, 10)
    snap.save(run_dir, 20)
    run = cv.open_run(run_dir)
    assert run.steps() == [10, 20] and len(run) == 2
    back = run.latest()
    assert back.step == 20 and back.classes == snap.classes
    assert back.graph.to_dict() == snap.graph.to_dict()
    assert sorted(back.keys()) == sorted(snap.keys())
    for key in snap.keys():
        np.testing.assert_array_equal(back[key], snap[key], err_msg=key)
    assert not back[
        "images"
    ].flags.writeable  # read-only view of the file (memory-mapped when large)
    assert back.meta["scalars"] == {"train_loss": 1.5}
    assert back.meta["units"] == snap.meta["units"]
    assert "step=20" in repr(back) and "120 images" in repr(back) and "11 groups" in repr(back)
    np.testing.assert_array_equal(back.patches("block4", k=2), snap.patches("block4", k=2))
    assert set(back.group_weights("block4")) == {"block3"}
    assert "20" in repr(run)


def test_manifest_is_json_with_schema(snap, tmp_path):
    snap.save(tmp_path, 0)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["schema_version"] == 1 and m["classes"][0] == "airplane"
    assert [g["name"] for g in m["graph"]["groups"]][:2] == ["conv1", "block1"]
    assert not list(tmp_path.rglob("*.pkl"))


def test_other_model_in_same_run_is_refused(snap, tmp_path):
    snap.save(tmp_path, 0)
    graph = cv.build_graph(build_model("basecnn-x0.25"))
    fake = cv.Snapshot(graph, snap.classes, {"x": np.zeros(3)}, {}, step=1)
    with pytest.raises(SnapshotError, match="different model"):
        fake.save(tmp_path)
    assert cv.open_run(tmp_path).steps() == [0]  # nothing already saved is lost


def test_bad_run_directories(snap, tmp_path):
    with pytest.raises(SnapshotError, match="not found"):
        cv.open_run(tmp_path / "missing")
    snap.save(tmp_path / "r", 5)
    (tmp_path / "r" / "manifest.json").write_text(
        json.dumps({"format": "cnnvis-run", "schema_version": 99})
    )
    with pytest.raises(SnapshotError, match="newer"):
        cv.open_run(tmp_path / "r")
    empty = tmp_path / "e"
    snap.save(empty, 1)
    for d in (empty / "snapshots").iterdir():
        (d / "snapshot.json").unlink()
    with pytest.raises(SnapshotError, match="no snapshot"):
        cv.open_run(empty).latest()


def test_corrupt_array_is_named(snap, tmp_path):
    path = snap.save(tmp_path, 3)
    target = max(path.glob("*.npy"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    back = cv.open_run(tmp_path).latest()
    with pytest.raises(SnapshotError, match=target.name):
        for key in back.keys():
            back[key]


def test_top_patches_of_several_units_at_once(snap) -> None:
    """``top_patches`` (a draft's mosaics: every unit's chosen neurons in one pass) equals each
    unit's own ``patches(…, k=1)`` of those neurons."""
    names = [g.name for g in snap.graph.groups][:3]
    want = {n: np.arange(snap.graph.unit(snap.graph.groups[i].unit).channels)[::3] for i, n in enumerate(names)}
    got = snap.top_patches(want, size=20)
    assert list(got) == names
    for n, idx in want.items():
        assert np.array_equal(got[n], snap.patches(n, 1, 20, neurons=idx)[:, 0])
    assert snap.top_patches({}) == {}


def test_neurons_that_never_respond_show_a_grey_tile_not_arbitrary_images(cifar_dir) -> None:
    """A ReLU channel that stays at 0 on every image ties on all of them: its "top images" are
    merely the first ones seen.  Its patches are the grey silent tile, everywhere patches are
    drawn (the view, the mosaics, the drill-down); every other neuron's are its crops."""
    from cnnvis_gl.run.snapshot import silent_tile

    torch.manual_seed(0)
    model = build_model("basecnn")
    bn = model.features[1]  # the first conv's BatchNorm, before its ReLU
    with torch.no_grad():
        bn.bias[[3, 7]] = -1e4  # channels 3 and 7: always below 0, so 0 after the ReLU
    s = cv.analyze(model, f"cifar10:{cifar_dir}", limit=60, k=4, progress=False)
    unit = s.graph.units[0].name  # (tapped after features.2, the ReLU)
    silent = s.silent(unit)
    assert np.flatnonzero(silent).tolist() == [3, 7]
    assert np.all(np.asarray(s[f"units/{unit}/topk_value"])[[3, 7]] == 0)
    tile = silent_tile(20)
    pix = s.patches(unit, 4, 20)
    assert np.array_equal(pix[3], np.broadcast_to(tile, pix[3].shape))
    assert np.array_equal(pix[7], np.broadcast_to(tile, pix[7].shape))
    others = np.delete(pix, [3, 7], axis=0)
    assert not (others == tile).all(axis=(2, 3, 4)).any()
    # the same without the rule: the crops of the images that happened to come first
    rows, boxes = (np.asarray(s[f"units/{unit}/topk_{a}"])[:, :4] for a in ("image", "box"))
    raw = s._crops(rows, boxes, 20)
    assert np.array_equal(others, np.delete(raw, [3, 7], axis=0))
    assert np.array_equal(s.top_patches({unit: [2, 3]}, 20)[unit][1], tile)
    assert np.array_equal(s.patches(unit, 1, 20, neurons=[7, 8])[0, 0], tile)
    crops = s.class_patches(unit, 3, int(s["image_label"][0]), size=20)[0]
    assert len(crops) and (crops == tile).all()
    # a tile reads as a picture on both themes: grey, with a lighter diagonal
    assert tile.min() >= 80 and tile.max() <= 170 and tile[0, -1].mean() > tile[0, 0].mean() + 30
