"""Annotations: the ``RUN/annotations.json`` format (round trip, every damaged field named),
where callouts go (targets found by id / neuron / row, arrows ending on the target's border),
and their drawing in ``cnnvis render`` PNG and SVG, checked in the pixels and the elements."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from test_cli import cnnvis

from cnnvis_gl.errors import SnapshotError
from cnnvis_gl.render.callouts import Callout, edge_point, place, target_rect
from cnnvis_gl.render.camera import Camera
from cnnvis_gl.run.annotations import (
    ANNOTATIONS_FILE,
    Annotation,
    load_annotations,
    save_annotations,
)

NOTES = [
    Annotation("planes and birds", "cluster", 12345, (120.0, -40.0)),
    Annotation("one neuron\non two lines", "neuron", ("features.3", 7)),
    Annotation("the first layer", "row", "conv1", (200.0, 0.0)),
]


def test_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    assert load_annotations(tmp_path) == []
    save_annotations(tmp_path, NOTES)
    assert load_annotations(tmp_path) == NOTES
    doc = json.loads((tmp_path / ANNOTATIONS_FILE).read_text())
    doc["annotations"][0]["author"] = "me"
    (tmp_path / ANNOTATIONS_FILE).write_text(json.dumps(doc))
    save_annotations(tmp_path, load_annotations(tmp_path))
    assert json.loads((tmp_path / ANNOTATIONS_FILE).read_text())["annotations"][0]["author"] == "me"


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda d: d.update(format="cnnvis-tour"), "not an annotations file"),
        (lambda d: d.update(annotations=3), "'annotations' must be a list"),
        (lambda d: d["annotations"][0].update(text=" "), "annotation 1: 'text'"),
        (lambda d: d["annotations"][0].update(row="conv1"), "annotation 1: give exactly one of"),
        (lambda d: d["annotations"][0].update(cluster="a"), "'cluster' must be a cluster id"),
        (lambda d: d["annotations"][1].update(neuron=["x"]), "annotation 2: 'neuron' must be [layer, channel]"),
        (lambda d: d["annotations"][2].update(row=""), "annotation 3: 'row' must be a row name"),
        (lambda d: d["annotations"][2].update(offset=[1, "2"]), "annotation 3: 'offset'"),
        (lambda d: d["annotations"][2].update(offset=[1, 1e9]), "annotation 3: 'offset'"),
    ],
)
def test_a_damaged_file_names_the_annotation_and_field(tmp_path: Path, damage, needle) -> None:
    save_annotations(tmp_path, NOTES)
    path = tmp_path / ANNOTATIONS_FILE
    doc = json.loads(path.read_text())
    damage(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(SnapshotError, match=ANNOTATIONS_FILE) as e:
        load_annotations(tmp_path)
    assert needle in str(e.value)


def test_edge_point_and_tip_on_the_border() -> None:
    box = (0.0, 0.0, 100.0, 40.0)
    assert edge_point(box, (250.0, 20.0)) == (100.0, 20.0)  # straight right
    assert edge_point(box, (50.0, -100.0)) == (50.0, 0.0)  # straight up
    assert edge_point(box, (150.0, 40.0)) == (100.0, 30.0)  # shallow: through the right side
    assert edge_point(box, (150.0, 70.0)) == (90.0, 40.0)  # steep: through the bottom
    assert edge_point(box, (60.0, 25.0)) == (60.0, 25.0)  # inside: the point itself
    c = Callout(0, "t", (10.0, 10.0, 50.0, 30.0), (200.0, 20.0))
    assert c.tip == (50.0, 20.0)
    tiny = Callout(0, "t", (10.0, 10.0, 12.0, 12.0), (200.0, 20.0))
    assert tiny.tip == (11.0, 11.0)  # a target of a few pixels: its centre


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, small_run: Path) -> Path:
    import shutil

    run = tmp_path_factory.mktemp("notes") / "run"
    shutil.copytree(small_run, run)
    return run


def test_targets_are_found_by_id_neuron_and_row(run: Path) -> None:
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene

    scene = build_scene(open_run(run).latest())
    k = 3
    cid = int(scene.clusters.id[k])
    n = scene.neurons
    i = int(np.flatnonzero(n.cluster == k)[0])
    unit, ch = scene.units[int(n.unit[i])], int(n.index[i])
    notes = [
        Annotation("c", "cluster", cid),
        Annotation("n", "neuron", (unit, ch)),
        Annotation("r", "row", "conv2"),
        Annotation("gone", "cluster", 1),  # no such cluster
        Annotation("hidden", "neuron", ("features.0", 0)),  # a layer not shown collapsed
    ]
    assert target_rect(scene, notes[0]) == tuple(float(v) for v in scene.clusters.rect[k])
    assert target_rect(scene, notes[1]) == tuple(float(v) for v in n.rect[i])
    row = next(r for r in scene.rows if r.name == "conv2")
    assert target_rect(scene, notes[2])[1:4:2] == (row.y, row.height)
    assert target_rect(scene, notes[3]) is None and target_rect(scene, notes[4]) is None
    cam = Camera((0.0, 0.0), 2.0)
    placed = place(scene, notes, cam, (800, 600))
    assert [c.index for c in placed] == [0, 1, 2]  # the missing targets are left out
    x, y, w, h = scene.clusters.rect[k]
    sx, sy = cam.scene_to_screen(float(x + w), float(y), (800, 600))
    assert placed[0].center == pytest.approx((sx + 70.0, sy - 50.0))  # from the top-right corner


@pytest.mark.gl
def test_render_draws_the_callouts_in_png_and_svg(run: Path, tmp_path: Path) -> None:
    from PIL import Image

    from cnnvis_gl import open_run
    from cnnvis_gl.layout import LayoutOptions, build_scene

    # laid out as `cnnvis render --size 800x500` lays it out (for that view)
    scene = build_scene(open_run(run).latest(), LayoutOptions(view_size=(800, 500)))
    cid = int(scene.clusters.id[int(np.argmax(scene.clusters.size))])
    save_annotations(run, [Annotation("planes and birds", "cluster", cid, (160.0, -30.0))])
    try:
        a, b = tmp_path / "a.png", tmp_path / "b.png"
        for out, extra in ((a, ()), (b, ("--no-annotations",))):
            r = cnnvis("render", run, "-o", out, "--size", "800x500", *extra)
            assert r.returncode == 0, r.stderr
        ia, ib = (np.asarray(Image.open(p)).astype(int) for p in (a, b))
        changed = np.abs(ia - ib).max(axis=2) > 30
        (c,) = place(scene, load_annotations(run), Camera().fit(scene.bounds, (800, 500)), (800, 500))
        ys, xs = np.nonzero(changed)
        # what changed is the callout: around its box and along the arrow to the cluster
        assert changed.sum() > 300
        assert abs(np.median(xs) - c.center[0]) < 80 and abs(np.median(ys) - c.center[1]) < 40
        yellow = (ia[..., 0] > 220) & (ia[..., 1] > 170) & (ia[..., 2] < 100)
        tx, ty = (int(round(v)) for v in c.tip)
        assert yellow[ty - 6 : ty + 7, tx - 6 : tx + 7].any()  # the arrow reaches the target
        svg = tmp_path / "a.svg"
        r = cnnvis("render", run, "-o", svg, "--size", "800x500")
        assert r.returncode == 0, r.stderr
        g = ET.parse(svg).getroot().find(".//{http://www.w3.org/2000/svg}g[@id='annotations']")
        texts = [t.text for t in g.iter("{http://www.w3.org/2000/svg}text")]
        assert texts == ["planes and birds"] and g.find("{http://www.w3.org/2000/svg}line") is not None
        # a damaged file stops the render with its name
        (run / ANNOTATIONS_FILE).write_text("{")
        r = cnnvis("render", run, "-o", a)
        assert r.returncode == 2 and ANNOTATIONS_FILE in r.stderr
    finally:
        (run / ANNOTATIONS_FILE).unlink()
