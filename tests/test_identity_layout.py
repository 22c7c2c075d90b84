"""Cluster identities survive a new snapshot of the same run (``build_state(previous=...)``).

Two real snapshots of a short real training run: BaseCNN×¼ recorded by a ``Recorder`` on 100
real CIFAR-10 test images before and after a few SGD steps on real training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def snapshots(cifar_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    import torch
    import torch.nn.functional as F

    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model
    from cnnvis_gl.run.recorder import Recorder
    from cnnvis_gl.run.snapshot import open_run

    torch.manual_seed(0)
    model = build_model("basecnn-x0.25")
    test = open_data(f"cifar10:{cifar_dir}", "test")
    train = open_data(f"cifar10:{cifar_dir}", "train").subset(512)
    run = tmp_path_factory.mktemp("idrun") / "run"
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with Recorder(model, test, run, every=4, max_images=100, batch_size=100) as rec:
        rec.record(0)
        step = 0
        for x, y, _ in train.batches(128, shuffle=True, seed=0):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            rec.step(step, train_loss=loss.item())
    r = open_run(run)
    assert r.steps() == [0, 4]
    return r.snapshot(0), r.snapshot(4)


def _rows(state) -> dict[str, dict[int, frozenset[int]]]:
    return {
        r.name: {
            c: frozenset(int(n) for n in state.members[r.name][c]) for c in state.order[r.name]
        }
        for r in state.rows
    }


def _unique(state) -> None:
    ids = [c for r in state.rows for c in state.order[r.name]]
    assert len(ids) == len(set(ids))
    sc = state.scene
    assert sorted(int(i) for i in sc.clusters.id) == sorted(ids)


def test_identical_clusters_keep_id_colour_and_order(snapshots):
    from cnnvis_gl.layout import LayoutOptions, build_state

    s0, s1 = snapshots
    opts = LayoutOptions(k=4)
    a = build_state(s0, opts)
    # the same snapshot again, after the previous: every cluster keeps id, colour and place
    again = build_state(s0, opts, previous=a)
    assert again.order == a.order and _rows(again) == _rows(a)
    # the next snapshot: a cluster with the same members as a previous one has its id
    b = build_state(s1, opts, previous=a)
    _unique(b)
    old, new = _rows(a), _rows(b)
    same = 0
    for row, clusters in new.items():
        by_members = {m: c for c, m in old[row].items()}
        for cid, members in clusters.items():
            if members in by_members:
                assert cid == by_members[members]
                same += 1
    assert same >= 1, "no cluster kept its members between the snapshots"
    # every row matches one-to-one where clusters overlap: most ids carry over
    carried = sum(len(set(new[r]) & set(old[r])) for r in new)
    assert carried >= 0.5 * sum(len(c) for c in new.values())
    # colours follow ids
    colour = {
        int(i): tuple(c) for i, c in zip(a.scene.clusters.id, a.scene.clusters.color, strict=True)
    }
    for i, c in zip(b.scene.clusters.id, b.scene.clusters.color, strict=True):
        if int(i) in colour:
            assert tuple(c) == colour[int(i)]
    # a Scene works as the previous layout and gives the same ids
    b2 = build_state(s1, opts, previous=a.scene)
    assert _rows(b2) == new
    # the previous layout changes ids and order only, never the clustering itself
    fresh = _rows(build_state(s1, opts))
    assert all(set(fresh[r].values()) == set(new[r].values()) for r in new)


def _biggest_two(state, row: str) -> tuple[int, int]:
    ids = sorted(state.order[row], key=lambda c: -len(state.members[row][c]))
    return ids[0], ids[1]


def test_split_keeps_the_larger_parts_id(snapshots):
    """Previous: clusters X and Z merged (by moves) into X; new: X and Z apart again."""
    from cnnvis_gl.layout import LayoutOptions, build_state, move_neuron

    _, s1 = snapshots
    opts = LayoutOptions(k=4)
    prev = build_state(s1, opts)
    row = prev.rows[2]
    x, z = _biggest_two(prev, row.name)
    xm, zm = set(prev.members[row.name][x]), set(prev.members[row.name][z])
    assert len(xm) > len(zm)
    for n in sorted(zm):
        move_neuron(prev, row.unit, int(n), x)
    assert z not in prev.members[row.name]
    assert set(prev.members[row.name][x]) == xm | zm
    new = build_state(s1, opts, previous=prev)
    _unique(new)
    got = {frozenset(int(n) for n in m): c for c, m in new.members[row.name].items()}
    assert got[frozenset(xm)] == x  # the larger part keeps the merged cluster's id
    assert got[frozenset(zm)] != x
    # the other rows are untouched: all their ids carry over
    for r in new.rows:
        if r.name != row.name:
            assert set(new.order[r.name]) == set(prev.order[r.name])


def test_merge_keeps_the_main_parents_id(snapshots):
    """Previous: a third of X moved out into a new cluster Y; new: X whole again."""
    from cnnvis_gl.layout import LayoutOptions, build_state, move_neuron

    _, s1 = snapshots
    opts = LayoutOptions(k=4)
    prev = build_state(s1, opts)
    row = prev.rows[1]
    x, _ = _biggest_two(prev, row.name)
    xm = [int(n) for n in prev.members[row.name][x]]
    assert len(xm) >= 3
    out = xm[: len(xm) // 3]
    before = set(prev.order[row.name])
    move_neuron(prev, row.unit, out[0], None)
    (y,) = set(prev.order[row.name]) - before
    for n in out[1:]:
        move_neuron(prev, row.unit, n, y)
    assert sorted(prev.members[row.name][y].tolist()) == sorted(out)
    new = build_state(s1, opts, previous=prev)
    _unique(new)
    got = {frozenset(int(n) for n in m): c for c, m in new.members[row.name].items()}
    assert got[frozenset(xm)] == x
    assert y not in new.members[row.name]


def test_follow_layout_inherits_the_ids_on_screen(snapshots, tmp_path: Path):
    """The viewer's layout session lays out a new snapshot with the shown scene as previous."""
    from cnnvis_gl.ui.jobs import LayoutSession

    s0, s1 = snapshots
    s0.save(tmp_path / "run", 0)
    session = LayoutSession(tmp_path / "run", save=False)
    shown = session.open(0).scene
    state, _ = session.prepare(s1)
    old = {int(i) for i in shown.clusters.id}
    new = [int(i) for i in state.scene.clusters.id]
    assert len(set(new)) == len(new)
    assert len(old & set(new)) >= 0.5 * len(new)
    update = session.open(snapshot=s1, prepared=(state, _))
    assert update.scene is state.scene
    assert np.array_equal(update.scene.clusters.id, state.scene.clusters.id)


def test_class_order_stays_unless_clearly_worse(snapshots):
    """The matrices' class columns keep the order on screen across snapshots unless the new
    snapshot's own order is clearly better (``class_order_gain`` > KEEP_CLASS_ORDER_GAIN); the
    pinned (edited) path of the viewer keeps it too."""
    from cnnvis_gl.analysis import cosine_similarity, order_rows, path_score
    from cnnvis_gl.layout import build_state
    from cnnvis_gl.layout.state import KEEP_CLASS_ORDER_GAIN, class_order_gain
    from cnnvis_gl.ui.edits import build_with_edits, capture

    s0, s1 = snapshots
    a = build_state(s0)
    fresh = build_state(s1)
    A = np.asarray(fresh.data(s1.graph.groups[-2].unit).A, dtype=np.float64)
    follow = build_state(s1, previous=a)
    gain = class_order_gain(A, fresh.class_order, a.class_order)
    expect = fresh.class_order if gain > KEEP_CLASS_ORDER_GAIN else a.class_order
    np.testing.assert_array_equal(follow.class_order, expect)
    np.testing.assert_array_equal(follow.scene.class_order, expect)
    # the worst order (a maximum path on -S) on screen gives way, on the pinned path too
    S = cosine_similarity(A.T)
    worst = order_rows(-S).astype(np.int32)
    assert path_score(S, worst) < path_score(S, fresh.class_order)
    assert class_order_gain(A, fresh.class_order, worst) > 1.0  # worse than a random order
    assert class_order_gain(A, fresh.class_order, fresh.class_order) == 0.0
    # by hand: classes (1, 0), (1, 1), (0, 1) as columns have cosines 1/√2, 1/√2 and 0; the
    # order 0-1-2 scores √2, 0-2-1 scores 1/√2, a random order 2/3 · √2: gain (√2/2) / (√2/3)
    hand = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    assert class_order_gain(hand, np.array([0, 1, 2]), np.array([0, 2, 1])) == pytest.approx(1.5)
    # 0-2-1 is worse than random (1/√2 < 2/3 · √2): no structure, no gain
    assert class_order_gain(hand, np.array([0, 2, 1]), np.array([0, 1, 2])) == 0.0
    pinned = capture(a, pinned=True)
    replaced = build_with_edits(s1, pinned, class_order=worst)
    np.testing.assert_array_equal(replaced.class_order, fresh.class_order)
    kept = build_with_edits(s1, pinned, class_order=a.class_order)
    np.testing.assert_array_equal(kept.class_order, expect)
