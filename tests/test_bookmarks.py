"""Bookmarks: the ``RUN/bookmarks.json`` format (round trip, every damaged field named), and
``cnnvis render --bookmark`` drawing exactly the saved view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import cnnvis

from cnnvis_gl.errors import SnapshotError
from cnnvis_gl.run.bookmarks import BOOKMARKS_FILE, Bookmark, load_bookmarks, save_bookmarks

MARK = Bookmark(
    name="conv3 up close",
    camera=(-12.5, 640.0, 1.75),
    size=(800, 500),
    theme="light",
    facet="matrix",
    edge_fraction=0.4,
    expanded=("conv2",),
    classes=("cat", "dog"),
    cluster=7,
    neuron=("features.12", 3),
)


def test_round_trip_keeps_every_field_and_unknown_keys(tmp_path: Path) -> None:
    assert load_bookmarks(tmp_path) == []  # none saved yet
    other = Bookmark("overview", (0.0, 0.0, 0.2))
    save_bookmarks(tmp_path, [MARK, other])
    assert load_bookmarks(tmp_path) == [MARK, other]
    assert not list(tmp_path.glob(".bookmarks-*"))  # the atomic write left no temporary file
    doc = json.loads((tmp_path / BOOKMARKS_FILE).read_text())
    doc["bookmarks"][0]["note"] = "written by hand"  # a key this version does not know
    (tmp_path / BOOKMARKS_FILE).write_text(json.dumps(doc))
    (first, _) = load_bookmarks(tmp_path)
    assert first.extra == {"note": "written by hand"}
    save_bookmarks(tmp_path, [first])
    assert json.loads((tmp_path / BOOKMARKS_FILE).read_text())["bookmarks"][0]["note"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(format="cnnvis-run"), "not a bookmarks file"),
        (lambda d: d.update(version=9), "version 9"),
        (lambda d: d.update(bookmarks={}), "'bookmarks' must be a list"),
        (lambda d: d["bookmarks"][0].pop("name"), "bookmark 1: 'name'"),
        (lambda d: d["bookmarks"][0].update(camera=[1, 2]), "'camera' must be"),
        (lambda d: d["bookmarks"][0].update(camera=[1, 2, 0]), "camera zoom must be positive"),
        (lambda d: d["bookmarks"][0].update(camera=[1, "x", 2]), "camera y must be a finite"),
        (lambda d: d["bookmarks"][0].update(size=[0, 10]), "'size'"),
        (lambda d: d["bookmarks"][0].update(theme="pink"), "'theme'"),
        (lambda d: d["bookmarks"][0].update(facet="both"), "'facet'"),
        (lambda d: d["bookmarks"][0].update(edge_fraction=2), "'edge_fraction'"),
        (lambda d: d["bookmarks"][0].update(classes="cat"), "'classes'"),
        (lambda d: d["bookmarks"][0].update(cluster="7"), "'cluster'"),
        (lambda d: d["bookmarks"][0].update(neuron=["features.12"]), "'neuron'"),
        (lambda d: d["bookmarks"].append(dict(d["bookmarks"][0])), "two bookmarks are named"),
    ],
)
def test_a_damaged_field_is_named(tmp_path: Path, mutate, needle: str) -> None:
    save_bookmarks(tmp_path, [MARK])
    path = tmp_path / BOOKMARKS_FILE
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(SnapshotError, match=str(BOOKMARKS_FILE)) as e:
        load_bookmarks(tmp_path)
    assert needle in str(e.value)


def test_not_json_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / BOOKMARKS_FILE).write_bytes(b'{"format": "cnnvis-bookmarks", ')
    with pytest.raises(SnapshotError, match="not valid JSON"):
        load_bookmarks(tmp_path)


# ---------------------------------------------------------------------------- cnnvis render


@pytest.mark.gl
def test_render_bookmark_draws_the_saved_view(cifar_dir, tmp_path: Path) -> None:
    from PIL import Image


    run = tmp_path / "r"
    r = cnnvis(
        "analyze", "basecnn-x0.25", "--data", f"cifar10:{cifar_dir}", "--limit", "60", "-q",
        "-o", run,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    mark = Bookmark(
        "close", (0.0, 300.0, 0.8), size=(400, 250), theme="light", facet="matrix",
        edge_fraction=0.5, classes=("cat",),
    )  # fmt: skip
    save_bookmarks(run, [mark])
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    r = cnnvis("render", run, "-o", a, "--bookmark", "close", "--size", "800x500")
    assert r.returncode == 0, r.stderr
    # the same view spelled out: the zoom scaled by 2 for a picture twice the size
    r = cnnvis(
        "render", run, "-o", b, "--size", "800x500", "--camera=0.0,300.0,1.6", "--theme",
        "light", "--facet", "matrix", "--edges", "0.5", "--classes", "cat",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ia, ib = np.asarray(Image.open(a)), np.asarray(Image.open(b))
    assert ia.shape == (500, 800, 3) and np.array_equal(ia, ib)
    # without --size: the bookmark's own size
    r = cnnvis("render", run, "-o", a, "--bookmark", "close")
    assert r.returncode == 0 and np.asarray(Image.open(a)).shape == (250, 400, 3)
    for bad, needle in (
        (["--bookmark", "far"], "no such bookmark"),
        (["--bookmark", "close", "--zoom-to", "conv2"], "leave out --camera"),
    ):
        r = cnnvis("render", run, "-o", a, *bad)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
    (run / BOOKMARKS_FILE).write_text("[")
    r = cnnvis("render", run, "-o", a, "--bookmark", "close")
    assert r.returncode == 2 and BOOKMARKS_FILE in r.stderr


def test_the_viewer_never_overwrites_a_damaged_file(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from cnnvis_gl.ui.bookmarks import Bookmarks
    from cnnvis_gl.ui.state import AppState

    path = tmp_path / BOOKMARKS_FILE
    path.write_text('{"format": "cnnvis-bookmarks", "version": 1, "bookmarks": [{"name": 3}]}')
    st = AppState(run_dir=tmp_path)
    marks = Bookmarks(SimpleNamespace(state=st))
    marks.load()
    assert st.bookmarks == [] and st.bookmarks_damaged
    assert "bookmark 1: 'name'" in st.jobs.error and str(path) in st.jobs.error
    before = path.read_bytes()
    marks.delete("anything")
    assert path.read_bytes() == before and "damaged" in st.jobs.error
