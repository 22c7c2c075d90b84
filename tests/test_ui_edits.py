"""The viewer's non-GUI parts: layout edits as data (undo/redo, layout.json), the layout
session the worker thread runs, the worker itself, display detection.  No window needed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from cnnvis_gl.layout import LayoutOptions, build_state, move_neuron, set_expanded
from cnnvis_gl.ui.edits import (
    LAYOUT_FILE,
    LayoutEdits,
    build_with_edits,
    capture,
    load_edits,
    restore,
    save_edits,
)


@pytest.fixture(scope="module")
def snapshot(cifar_dir: Path):
    import torch

    import cnnvis_gl
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    return cnnvis_gl.analyze(
        build_model("basecnn-x0.25"), f"cifar10:{cifar_dir}", limit=120, progress=False
    )


OPTIONS = LayoutOptions(k=3)


def _members(scene) -> dict[int, tuple]:
    n = scene.neurons
    return {
        int(cid): tuple(
            sorted(
                zip(n.unit[n.cluster == i].tolist(), n.index[n.cluster == i].tolist(), strict=True)
            )
        )
        for i, cid in enumerate(scene.clusters.id)
    }


def _move_one(state) -> None:
    s = state.scene
    c = s.clusters
    row = int(c.row[np.argmax(c.size)])
    ids = c.id[c.row == row]
    src = int(np.argmax(c.size))
    n = int(np.flatnonzero(s.neurons.cluster == src)[0])
    to = int(next(i for i in ids if i != c.id[src]))
    move_neuron(state, s.units[int(s.neurons.unit[n])], int(s.neurons.index[n]), to)


def test_edits_json_round_trip_and_atomic_save(snapshot, tmp_path: Path) -> None:
    state = build_state(snapshot, OPTIONS)
    _move_one(state)
    edits = capture(state)
    assert edits.pinned
    path = save_edits(tmp_path, edits)
    assert path == tmp_path / LAYOUT_FILE
    assert not list(tmp_path.glob(".layout-*"))
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["format"] == "cnnvis-layout" and data["version"] == 1
    back = load_edits(tmp_path)
    assert back is not None
    assert dict(back.rows) == dict(edits.rows)
    assert back.expanded == edits.expanded and back.edge_fraction == edits.edge_fraction
    # the column order is pinned with the clustering, and a rebuild from the file keeps it
    assert back.class_order == tuple(int(k) for k in state.class_order)
    from cnnvis_gl.ui.edits import build_with_edits

    rebuilt = build_with_edits(snapshot, back, OPTIONS)
    np.testing.assert_array_equal(rebuilt.class_order, state.class_order)
    assert not capture(state, pinned=False).class_order


def test_corrupt_or_newer_layout_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / LAYOUT_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON") as e:
        load_edits(tmp_path)
    assert str(e.value).startswith(str(tmp_path / LAYOUT_FILE))
    (tmp_path / LAYOUT_FILE).write_text(json.dumps({"format": "cnnvis-layout", "version": 99}))
    with pytest.raises(ValueError, match="newer"):
        load_edits(tmp_path)
    assert load_edits(tmp_path / "missing") is None


def test_restore_is_undo_and_build_with_edits_reproduces_the_layout(snapshot) -> None:
    state = build_state(snapshot, OPTIONS)
    before = capture(state)
    scene0 = state.scene
    _move_one(state)
    after = capture(state)
    moved = state.scene
    assert _members(moved) != _members(scene0)
    # undo: back to the first clustering (same clusters, same picture)
    scene, changed = restore(state, before)
    assert _members(scene) == _members(scene0)
    assert np.allclose(scene.clusters.rect, scene0.clusters.rect)
    assert changed.clusters or changed.rows
    # redo
    scene, _ = restore(state, after)
    assert _members(scene) == _members(moved)
    # a fresh layout with the saved edits shows the same clusters without re-clustering them
    fresh = build_with_edits(snapshot, after, OPTIONS)
    assert _members(fresh.scene) == _members(moved)
    assert "cluster" not in fresh.timings or fresh.timings["cluster"] < 1e-3


def test_restore_across_expand_and_stale_rows(snapshot) -> None:
    state = build_state(snapshot, OPTIONS)
    before = capture(state)
    group = next(g.name for g in snapshot.graph.groups if len(g.units) > 1)
    set_expanded(state, group, True)
    expanded = capture(state)
    assert group in expanded.expanded and len(expanded.rows) > len(before.rows)
    scene, changed = restore(state, before)
    assert changed.structure
    assert [r.name for r in scene.rows] == [
        r.name for r in build_state(snapshot, OPTIONS).scene.rows
    ]
    # a saved row that no longer partitions its neurons is clustered afresh, not trusted
    bad_rows = dict(before.rows)
    name = next(iter(bad_rows))
    bad_rows[name] = bad_rows[name][:1]
    from dataclasses import replace

    state2 = build_with_edits(snapshot, replace(before, rows=bad_rows), OPTIONS)
    n = snapshot.graph.unit(state2.rows[0].unit).channels
    got = np.sort(np.concatenate(list(state2.members[name].values())))
    assert np.array_equal(got, np.arange(n))


def test_layout_session_commands(snapshot, tmp_path: Path) -> None:
    from cnnvis_gl.ui.jobs import LayoutSession

    snapshot.save(tmp_path, 3)
    session = LayoutSession(tmp_path, OPTIONS, patch_size=12)
    up = session.open()
    assert up.changed is None and up.snapshot.step == 3 and not up.edits.pinned
    assert not (tmp_path / LAYOUT_FILE).exists()  # opening writes nothing
    # the patch cache serves the atlas's requests without the snapshot
    unit = up.scene.units[int(up.scene.neurons.unit[0])]
    px = up.patches.patches(unit, 1, 12, neurons=[0, 1])
    assert px.shape == (2, 1, 12, 12, 3)
    s = up.scene
    c = s.clusters
    src = int(np.argmax(c.size))
    n = int(np.flatnonzero(s.neurons.cluster == src)[0])
    up2 = session.move(s.units[int(s.neurons.unit[n])], int(s.neurons.index[n]), None)
    assert up2.before is not None and up2.edits.pinned
    assert len(up2.scene.clusters.id) == len(c.id) + 1
    assert (tmp_path / LAYOUT_FILE).exists()
    up3 = session.set_threshold(0.5)
    assert up3.before is None and up3.edits.edge_fraction == 0.5
    up4 = session.restore(up2.before, "undo")
    assert len(up4.scene.clusters.id) == len(c.id)
    # a new session on the same run restores the saved clustering and options
    again = LayoutSession(tmp_path, OPTIONS).open()
    assert again.edits.edge_fraction == 0.5
    assert _members(again.scene) == _members(up4.scene)


def test_worker_runs_jobs_in_order_and_reports_errors() -> None:
    from cnnvis_gl.ui.jobs import Worker

    w = Worker("test-worker")
    order: list[int] = []
    gate = threading.Event()
    w.submit("a", lambda: (gate.wait(5), order.append(1))[1])
    w.submit("b", lambda: order.append(2))
    w.submit("c", lambda: 1 / 0)
    assert w.busy and w.pending == ["a", "b", "c"]
    gate.set()
    assert w.wait_idle(10)
    done = w.poll()
    assert [d.label for d in done] == ["a", "b", "c"] and order == [1, 2]
    assert isinstance(done[2].error, ZeroDivisionError) and "ZeroDivisionError" in done[2].trace
    w.stop()


def test_worker_wait_wakes_when_a_job_ends() -> None:
    """The window idles in `Worker.wait` while a big network's draft is made: it must wake as
    the job ends, not when the wait times out (nor stay awake for a job seen already)."""
    import time

    from cnnvis_gl.ui.jobs import Worker

    w = Worker("test-worker")
    gate = threading.Event()
    w.submit("draft", lambda: gate.wait(5))
    threading.Timer(0.2, gate.set).start()
    t = time.perf_counter()
    w.wait(10.0)
    assert 0.15 < time.perf_counter() - t < 5.0 and [d.label for d in w.poll()] == ["draft"]
    t = time.perf_counter()
    w.wait(0.3)  # nothing ended since: the full timeout
    assert time.perf_counter() - t >= 0.25
    w.stop()


def test_headless_detection(monkeypatch) -> None:
    import sys

    from cnnvis_gl.ui.headless import has_display

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert has_display()


def test_edits_defaults_are_unpinned() -> None:
    e = LayoutEdits()
    assert not e.pinned and e.options().edge_fraction == 0.25
    assert LayoutEdits.from_json(e.to_json()) == LayoutEdits(step=None)


def test_camera_wheel_zoom_keeps_the_point_under_the_cursor() -> None:
    from cnnvis_gl.render.camera import Camera
    from cnnvis_gl.ui.state import CameraState

    cam = CameraState(viewport=(800, 600))
    cam.jump(Camera((10.0, 20.0), 0.5))
    before = cam.current.screen_to_scene(600, 150, cam.viewport)
    cam.zoom_at(1.25**2, 600, 150)
    assert cam.animating
    for _ in range(200):
        cam.step(1 / 60)
        # every frame of the animation keeps the scene point under the cursor
        now = cam.current.screen_to_scene(600, 150, cam.viewport)
        assert now == pytest.approx(before, abs=1e-6)
    assert not cam.animating and cam.current.zoom == pytest.approx(0.5 * 1.25**2)


def test_session_reset_unpins_the_clustering(snapshot, tmp_path: Path) -> None:
    from cnnvis_gl.ui.jobs import LayoutSession

    snapshot.save(tmp_path, 0)
    session = LayoutSession(tmp_path, OPTIONS)
    up = session.open()
    s = up.scene
    src = int(np.argmax(s.clusters.size))
    n = int(np.flatnonzero(s.neurons.cluster == src)[0])
    session.move(s.units[int(s.neurons.unit[n])], int(s.neurons.index[n]), None)
    assert load_edits(tmp_path).pinned
    reset = session.reset()
    assert reset.before is not None and reset.before.pinned  # undoable
    assert not reset.edits.pinned and not load_edits(tmp_path).pinned
    assert _members(reset.scene) == _members(s)  # deterministic clustering: back to the start
