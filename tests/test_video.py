"""Tours and videos: the tour file format (every damaged field named), the camera flight and the
tour's timeline (math with known answers), and ``cnnvis video`` read back: the MP4 is decoded
(codec, frame count, size, frames that move where the tour moves, the first frame equal to
``cnnvis render --bookmark`` of the first stop), the GIF too, and the time-lapse of a real
recorded training run (one held segment per snapshot, the overlay's step and curves)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_cli import cnnvis
from test_recorder import _train

from cnnvis_gl.errors import SnapshotError
from cnnvis_gl.render.camera import Camera
from cnnvis_gl.render.flight import Flight, Timeline, ease
from cnnvis_gl.run.bookmarks import Bookmark, save_bookmarks
from cnnvis_gl.run.tours import (
    Tour,
    TourStop,
    check_stops,
    list_tours,
    load_tour,
    save_tour,
    tour_path,
)

TOUR = Tour(
    stops=(
        TourStop("overview", hold=1.0, caption="The whole network"),
        TourStop("close", hold=0.5, move=1.0, caption="conv4 up close"),
        TourStop("matrix", hold=0.5, move=0.5, transition="fade"),
        TourStop("overview", hold=0.25, transition="cut", caption="Back"),
    ),
    title="a talk",
)


# ---------------------------------------------------------------------------- the format


def test_tour_round_trip_keeps_unknown_keys_and_lists_tours(tmp_path: Path) -> None:
    path = tour_path(tmp_path, "talk")
    assert path == tmp_path / "tours" / "talk.json"
    save_tour(path, TOUR)
    assert load_tour(path) == TOUR
    assert list_tours(tmp_path) == ["talk"] and not list(path.parent.glob(".tour-*"))
    doc = json.loads(path.read_text())
    doc["stops"][0]["speaker_note"] = "by hand"
    doc["theme_music"] = "none"
    path.write_text(json.dumps(doc))
    again = load_tour(path)
    save_tour(path, again)
    doc = json.loads(path.read_text())
    assert doc["stops"][0]["speaker_note"] == "by hand" and doc["theme_music"] == "none"
    # a path is taken as it is; a name must be a plain file name
    assert tour_path(tmp_path, str(tmp_path / "x.json")) == tmp_path / "x.json"
    with pytest.raises(SnapshotError, match="tour name '../evil'"):
        tour_path(tmp_path, "../evil")


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda d: d.update(format="cnnvis-bookmarks"), "not a tour"),
        (lambda d: d.update(version=7), "version 7"),
        (lambda d: d.update(stops={}), "'stops' must be a list"),
        (lambda d: d["stops"].append(3), "stop 5 must be an object"),
        (lambda d: d["stops"][1].pop("bookmark"), "stop 2: 'bookmark'"),
        (lambda d: d["stops"][1].update(hold=-1), "stop 2: 'hold' must be between 0"),
        (lambda d: d["stops"][1].update(move="2s"), "stop 2: 'move' must be a number"),
        (lambda d: d["stops"][1].update(hold=float("nan")), "stop 2: 'hold'"),
        (lambda d: d["stops"][2].update(transition="wipe"), "stop 3: 'transition' must be one of"),
        (lambda d: d["stops"][0].update(caption=["a"]), "stop 1: 'caption' must be text"),
        (lambda d: d.update(title=1), "'title' must be text"),
    ],
)
def test_a_damaged_tour_names_the_stop_and_field(tmp_path: Path, damage, needle) -> None:
    path = save_tour(tmp_path / "t.json", TOUR)
    doc = json.loads(path.read_text())
    damage(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(SnapshotError, match="t.json") as e:
        load_tour(path)
    assert needle in str(e.value)


def test_stops_must_name_saved_bookmarks(tmp_path: Path) -> None:
    check_stops(TOUR, ["overview", "close", "matrix"])
    with pytest.raises(SnapshotError, match=r"stop 3 names bookmark 'matrix'.*bookmarks: 'overview', 'close'"):
        check_stops(TOUR, ["overview", "close"])
    with pytest.raises(SnapshotError, match="no stops"):
        check_stops(Tour(), ["overview"])
    with pytest.raises(SnapshotError, match="no tour at"):
        load_tour(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SnapshotError, match="bad.json: tour is not valid JSON"):
        load_tour(tmp_path / "bad.json")


# ---------------------------------------------------------------------------- flight and timeline


def test_flight_ends_exactly_zooms_out_between_far_views_and_eases() -> None:
    a, b = Camera((0.0, 0.0), 4.0), Camera((3000.0, 0.0), 4.0)
    f = Flight(a, b, (800, 600))
    assert f.at(0) == a and f.at(1) == b
    zooms = [f.at(t / 20).zoom for t in range(21)]
    assert min(zooms) < 0.25 * a.zoom  # zoomed out to keep both ends in context
    assert abs(zooms[10] - min(zooms)) < 1e-9 * a.zoom  # the farthest out half way (symmetric)
    xs = [f.at(t / 20).center[0] for t in range(21)]
    assert all(x1 >= x0 for x0, x1 in zip(xs, xs[1:], strict=False))  # straight on, never back
    assert all(abs(f.at(t / 20).center[1]) < 1e-9 for t in range(21))
    assert xs[1] - xs[0] < 0.2 * (xs[11] - xs[10])  # slow start (eased)
    # a pure zoom changes the zoom geometrically, monotonically, about a fixed centre
    z = Flight(Camera((5.0, 7.0), 1.0), Camera((5.0, 7.0), 16.0), (800, 600))
    zs = [z.at(t / 10).zoom for t in range(11)]
    assert all(z1 > z0 for z0, z1 in zip(zs, zs[1:], strict=False))
    assert z.at(0.5).center == (5.0, 7.0) and math.isclose(z.at(0.5).zoom, 4.0)
    # views close together: nearly a glide, barely zooming out
    near = Flight(Camera((0.0, 0.0), 1.0), Camera((40.0, 0.0), 1.0), (800, 600))
    assert min(near.at(t / 10).zoom for t in range(11)) > 0.95
    assert ease(0) == 0 and ease(1) == 1 and ease(0.5) == 0.5


def _marks() -> dict[str, Bookmark]:
    return {
        "overview": Bookmark("overview", (0.0, 500.0, 0.5), size=(800, 500)),
        "close": Bookmark("close", (200.0, 900.0, 4.0), size=(800, 500), classes=("cat",)),
        "matrix": Bookmark("matrix", (0.0, 500.0, 0.5), size=(400, 250), facet="matrix"),
    }


def test_timeline_holds_moves_fades_and_cuts() -> None:
    tl = Timeline(TOUR, _marks(), (800, 500))
    assert tl.duration == pytest.approx(1.0 + (1.0 + 0.5) + (0.5 + 0.5) + (0 + 0.25))
    assert len(tl.times(10)) == 38 and tl.times(10)[-1] <= tl.duration
    assert [tl.arrival(k) for k in range(4)] == pytest.approx([0.0, 2.0, 3.0, 3.5])
    f = tl.at(0.5)  # holding the first stop: its caption, fully
    assert (f.stop, f.a, f.b, f.mix, f.caption, f.caption_alpha) == (0, 0, 0, 0.0, "The whole network", 1.0)
    assert f.camera == Camera((0.0, 500.0), 0.5)
    f = tl.at(1.25)  # a quarter into the flight: the first caption fading out, looks mixing
    assert (f.stop, f.a, f.b, f.caption) == (1, 0, 1, "The whole network")
    assert 0 < f.caption_alpha < 1 and 0 < f.mix < 0.5 and f.camera == f.camera_b
    assert f.camera == tl.flight(1).at(0.25)
    f = tl.at(1.75)  # three quarters: the next caption fading in
    assert f.caption == "conv4 up close" and 0 < f.caption_alpha < 1 and f.mix > 0.5
    f = tl.at(2.75)  # half way through the fade: both views where they are
    assert (f.a, f.b, f.mix) == (1, 2, 0.5)
    assert f.camera == Camera((200.0, 900.0), 4.0)
    assert f.camera_b == Camera((0.0, 500.0), 1.0)  # the 400x250 view fitted into 800x500
    assert f.caption_alpha == 0.0  # "conv4 up close" gone, no caption at the matrix stop
    f = tl.at(3.5)  # a cut: at once
    assert (f.stop, f.a, f.b, f.caption) == (3, 3, 3, "Back")
    assert tl.at(99).stop == 3 and tl.at(-1).stop == 0


# ---------------------------------------------------------------------------- cnnvis video


def _decode(path: Path) -> tuple[str, list[np.ndarray]]:
    import av

    with av.open(str(path)) as c:
        name = c.streams.video[0].codec_context.name
        return name, [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def toured_run(tmp_path_factory: pytest.TempPathFactory, small_run: Path) -> Path:
    import shutil

    run = tmp_path_factory.mktemp("video") / "run"
    shutil.copytree(small_run, run)
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene

    scene = build_scene(open_run(run).latest())
    x0, y0, x1, y1 = scene.bounds
    fit = min(320 / (x1 - x0), 200 / (y1 - y0)) * 0.9
    x, y, w, h = (float(v) for v in scene.clusters.rect[-3])
    save_bookmarks(run, [
        Bookmark("overview", ((x0 + x1) / 2, (y0 + y1) / 2, fit), size=(320, 200)),
        Bookmark("close", (x + w / 2, y + h / 2, 3 * fit), size=(320, 200), classes=("cat",)),
        Bookmark("matrix", ((x0 + x1) / 2, (y0 + y1) / 2, fit), size=(320, 200), facet="matrix",
                 theme="light"),
    ])  # fmt: skip
    save_tour(tour_path(run, "talk"), Tour((
        TourStop("overview", hold=0.5, caption="The whole network"),
        TourStop("close", hold=0.3, move=1.0),
        TourStop("matrix", hold=0.3, move=0.5, transition="fade"),
    )))  # fmt: skip
    return run


@pytest.mark.gl
@pytest.mark.slow
def test_video_of_a_tour_reads_back(toured_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "talk.mp4"
    r = cnnvis("video", toured_run, "--tour", "talk", "-o", out, "--size", "320x200", "--fps", "10",
               "--gif", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "26 frames" in r.stdout and "talk.gif" in r.stdout
    assert _gif_frames(tmp_path / "talk.gif") == ((320, 200), 26)  # --gif: the same frames
    codec, frames = _decode(out)
    assert codec == "h264" and len(frames) == 26 and frames[0].shape == (200, 320, 3)
    # the first frame is the first bookmark as `cnnvis render` draws it, plus the caption
    png = tmp_path / "first.png"
    r = cnnvis("render", toured_run, "--bookmark", "overview", "-o", png, "--size", "320x200")
    assert r.returncode == 0, r.stderr
    ref = np.asarray(Image.open(png)).astype(float)
    diff = np.abs(frames[0].astype(float) - ref).mean(axis=2)
    caption = np.zeros(diff.shape, bool)
    caption[130:, :] = True  # the caption box sits in the bottom third
    assert diff[~caption].mean() < 3.0  # H.264 is lossy; the view is the same
    assert diff[caption].mean() > 3 * diff[~caption].mean()  # the caption is drawn there
    # held frames repeat; the flight moves every frame; the fade ends on the light matrix view
    step = [np.abs(a.astype(float) - b).mean() for a, b in zip(frames, frames[1:], strict=False)]
    assert max(step[:4]) < 1.0  # the first stop's hold (5 frames)
    assert min(step[5:14]) > 1.0  # flying: frames 5..15 all differ
    assert frames[-1].mean() > frames[0].mean() + 60  # light theme at the end
    # a GIF alone, smaller, of the tour file given by its path
    gif = tmp_path / "small.gif"
    r = cnnvis("video", toured_run, "--tour", str(tour_path(toured_run, "talk")), "-o", gif,
               "--size", "160x100", "--fps", "5", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _gif_frames(gif) == ((160, 100), 13)


def _gif_frames(path: Path) -> tuple[tuple[int, int], int]:
    """A GIF's size and length in frames of its rate (Pillow merges repeated frames into one
    longer frame, so the durations are counted)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        assert im.info["loop"] == 0  # loops forever
        total = sum(f.info["duration"] for f in ImageSequence.Iterator(im))
        return im.size, round(total / im.info["duration"]) if im.n_frames == 1 else round(
            total / min(f.info["duration"] for f in ImageSequence.Iterator(im))
        )


@pytest.mark.gl
def test_video_errors_name_the_fault_and_keep_the_old_file(toured_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "old.mp4"
    out.write_bytes(b"an older video")
    cases = [
        (["--tour", "nope"], "no tour at"),
        (["--tour", "talk", "--size", "321x200"], "even width and height"),
        (["--tour", "talk", "--hold", "2"], "--hold belongs to --timelapse"),
        (["--timelapse", "--step", "0"], "--step and --fresh belong to --tour"),
        (["--timelapse", "--steps", "0,5"], "no snapshot at step 5"),
        (["--tour", "talk", "--fps", "500"], "--fps 500.0"),
    ]
    r = cnnvis("video", toured_run, "-o", tmp_path / "a.gif", "--tour", "talk", "--gif")
    assert r.returncode == 2 and "is a GIF already" in r.stderr
    for args, needle in cases:
        r = cnnvis("video", toured_run, "-o", out, "--size", "320x200", *args)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stderr)
    r = cnnvis("video", toured_run, "-o", tmp_path / "x.avi", "--tour", "talk")
    assert r.returncode == 2 and ".mp4 or .gif" in r.stderr
    bad = tour_path(toured_run, "broken")
    save_tour(bad, Tour((TourStop("overview"), TourStop("gone"))))
    r = cnnvis("video", toured_run, "-o", out, "--tour", "broken")
    assert r.returncode == 2 and "stop 2 names bookmark 'gone'" in r.stderr
    assert out.read_bytes() == b"an older video"
    assert not list(tmp_path.glob(".*partial*"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    """A real (tiny) training run of BaseCNN×¼ recorded at steps 0, 3 and 6."""
    import torch

    import cnnvis_gl
    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    data = open_data(f"cifar10:{cifar_dir}", "test").subset(48)
    model = build_model("basecnn-x0.25")
    run = tmp_path_factory.mktemp("lapse") / "run"
    with cnnvis_gl.Recorder(model, data, run, every=3, k=3, max_images=48) as rec:
        _train(model, rec, data, 7)  # SGD, as in test_recorder
    return run


@pytest.mark.gl
@pytest.mark.slow
def test_timelapse_shows_each_snapshot_with_its_step(trained_run: Path, tmp_path: Path) -> None:
    from cnnvis_gl.run.annotations import ANNOTATIONS_FILE, Annotation, save_annotations

    out = tmp_path / "learn.mp4"
    save_annotations(trained_run, [Annotation("the first layer", "row", "conv1", (-60.0, 40.0))])
    try:
        r = cnnvis("video", trained_run, "--timelapse", "-o", out, "--size", "320x200", "--fps",
                   "10", "--hold", "0.5", "--morph", "0.3", "-q")  # fmt: skip
    finally:
        (trained_run / ANNOTATIONS_FILE).unlink()
    assert r.returncode == 0, r.stderr
    codec, frames = _decode(out)
    for f in frames:  # the note's callout (yellow) in every frame
        f = f.astype(int)
        assert ((f[..., 0] > 200) & (f[..., 1] > 150) & (f[..., 2] < 110)).sum() > 20
    assert codec == "h264" and len(frames) == 3 * 5 + 2 * 3 and frames[0].shape == (200, 320, 3)
    holds = [frames[0:5], frames[8:13], frames[16:21]]
    for held in holds:  # a snapshot held still
        assert max(np.abs(a.astype(float) - held[0]).mean() for a in held) < 1.0
    # the snapshots differ (the network learned), and so do the morph frames between them
    a, b = holds[0][0].astype(float), holds[1][0].astype(float)
    assert np.abs(a - b).mean() > 1.0
    # the morph (frames 5-7) leaves a and arrives at b: each step closer to b, none a copy
    da = [np.abs(frames[i] - a).mean() for i in (5, 6, 7)]
    db = [np.abs(frames[i] - b).mean() for i in (5, 6, 7)]
    assert da[0] < da[2] and db[2] < db[0] and min(da + db) > 1.0
    # the overlay: the step label (bottom left) and the curves' step marker (top right) move
    def changed(region: tuple) -> int:  # pixels that differ clearly between first and last
        return int((np.abs(holds[0][0][region].astype(float) - holds[2][0][region]).max(axis=2) > 40).sum())

    assert changed((slice(160, 200), slice(0, 120))) > 15  # "step 0 …" → "step 6 …"
    assert changed((slice(0, 50), slice(220, 320))) > 15  # the curves' marker and values
    # a subset of the steps
    r = cnnvis("video", trained_run, "--timelapse", "--steps", "0,6", "-o", tmp_path / "two.gif",
               "--size", "160x100", "--fps", "5", "--hold", "0.4", "--morph", "0.2", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _gif_frames(tmp_path / "two.gif") == ((160, 100), 2 * 2 + 1)


def test_morph_moves_each_neuron_from_its_old_place_to_its_new_one(trained_run: Path) -> None:
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.layout.morph import morph

    run = open_run(trained_run)
    a = build_scene(run.snapshot(0))
    b = build_scene(run.snapshot(6), previous=a)  # identities follow, as in the time-lapse
    old = {(a.units[u], int(i)): a.neurons.rect[k] for k, (u, i) in enumerate(zip(a.neurons.unit, a.neurons.index, strict=True))}
    start = np.array([old[(b.units[u], int(i))] for u, i in zip(b.neurons.unit, b.neurons.index, strict=True)])
    m0, mh, m1 = morph(a, b, 0.0), morph(a, b, 0.5), morph(a, b, 1.0)
    np.testing.assert_allclose(m0.neurons.rect, start, atol=1e-4)  # where each neuron was
    np.testing.assert_allclose(m1.neurons.rect, b.neurons.rect, atol=1e-4)  # where it is now
    np.testing.assert_allclose(mh.neurons.rect, (start + b.neurons.rect) / 2, atol=1e-3)
    np.testing.assert_allclose(m1.clusters.rect, b.clusters.rect, atol=1e-4)
    np.testing.assert_allclose(m1.clusters.features_rect, b.clusters.features_rect, atol=1e-3)
    kept = [k for k, c in enumerate(b.clusters.id) if c in set(a.clusters.id.tolist())]
    assert kept  # some clusters kept their id from step 0 to 6
    for k in kept:  # a cluster that kept its id starts from its old frame
        j = int(np.flatnonzero(a.clusters.id == b.clusters.id[k])[0])
        np.testing.assert_allclose(m0.clusters.rect[k], a.clusters.rect[j], atol=1e-4)
    assert len(mh.edges.weight) == 0 and len(mh.bundles.pos) == 0  # the edges fade instead
    for r0, rh, r1 in zip(a.rows, mh.rows, b.rows, strict=True):
        assert rh.name == r1.name and rh.y == pytest.approx((r0.y + r1.y) / 2)
    assert m1.bounds == pytest.approx(b.bounds) and m0.bounds == pytest.approx(a.bounds)
