"""Incremental layout edits (``cnnvis_gl.layout.edit``) on a real BaseCNN snapshot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_layout import OPTIONS, basecnn_snapshot, check_scene, scenes_equal

from cnnvis_gl.layout import (
    FACET_MATRIX,
    LayoutState,
    Scene,
    build_scene,
    build_state,
    move_neuron,
    set_clustering,
    set_expanded,
    set_facet,
    set_threshold,
)
from cnnvis_gl.run.snapshot import Snapshot


@pytest.fixture(scope="module")
def snapshot(cifar_dir: Path) -> Snapshot:
    return basecnn_snapshot(cifar_dir)


@pytest.fixture
def state(snapshot: Snapshot) -> LayoutState:
    return build_state(snapshot, OPTIONS)


def view(scene: Scene, cid: int, absolute: bool = False) -> dict[str, bytes]:
    """A cluster's arrays (relative to its frame unless ``absolute``), for comparisons."""
    c, n = scene.clusters, scene.neurons
    i = int(np.flatnonzero(c.id == cid)[0])
    m = n.cluster == i
    o = np.zeros(4) if absolute else np.array([c.rect[i, 0], c.rect[i, 1], 0, 0])
    return {
        "size": c.size[i].tobytes(),
        "w": c.rect[i, 2].tobytes(),
        "color": c.color[i].tobytes(),
        "feat": np.round(c.features_rect[i] - o, 2).tobytes(),
        "mat": np.round(c.matrix_rect[i] - o, 2).tobytes(),
        "rects": np.round(n.rect[m] - o, 2).tobytes(),
        "index": n.index[m].tobytes(),
        "matrix_row": n.matrix_row[m].tobytes(),
        "density": c.density[i].tobytes(),
    }


def pick_move(scene: Scene) -> tuple[str, int, int, int]:
    """(unit, neuron, source id, target id): a neuron of the biggest cluster of a row with
    at least two clusters, and the next cluster of that row."""
    c, n = scene.clusters, scene.neurons
    best = None
    for r in np.unique(c.row):
        ids = np.flatnonzero(c.row == r)
        if len(ids) >= 2:
            i = ids[np.argmax(c.size[ids])]
            if best is None or c.size[i] > c.size[best[0]]:
                best = (i, next(j for j in ids if j != i))
    assert best is not None
    i, j = best
    k = int(np.flatnonzero(n.cluster == i)[0])
    return scene.units[n.unit[k]], int(n.index[k]), int(c.id[i]), int(c.id[j])


def cluster_of(scene: Scene, unit: str, neuron: int) -> int:
    u = scene.units.index(unit)
    k = int(np.flatnonzero((scene.neurons.unit == u) & (scene.neurons.index == neuron))[0])
    return int(scene.clusters.id[scene.neurons.cluster[k]])


def test_move_changes_only_the_touched_clusters(state: LayoutState, snapshot: Snapshot) -> None:
    old = state.scene
    unit, neuron, a, b = pick_move(old)
    new, ch = move_neuron(state, unit, neuron, b)
    check_scene(new, snapshot)
    assert new is state.scene
    assert ch.clusters == {a, b} and not ch.removed and not ch.structure and not ch.appearance
    assert cluster_of(new, unit, neuron) == b
    size = dict(zip(new.clusters.id.tolist(), new.clusters.size.tolist(), strict=True))
    old_size = dict(zip(old.clusters.id.tolist(), old.clusters.size.tolist(), strict=True))
    assert size[a] == old_size[a] - 1 and size[b] == old_size[b] + 1
    assert {k: v for k, v in size.items() if k not in (a, b)} == {
        k: v for k, v in old_size.items() if k not in (a, b)
    }
    # ids and colours survive the move
    assert set(size) == set(old_size)
    row = int(old.clusters.row[old.clusters.id == a][0])
    for cid in old.clusters.id.tolist():
        if cid in (a, b):
            continue
        assert view(new, cid) == view(old, cid), "untouched cluster content identical"
        if cid not in ch.moved:
            assert view(new, cid, absolute=True) == view(old, cid, absolute=True)
    if ch.rows == {row}:  # the row kept its height: nothing below moved, two edge rows changed
        assert ch.edges <= {row - 1, row + 1}
        assert all(int(new.clusters.row[new.clusters.id == c][0]) == row for c in ch.moved)


def test_move_back_restores_the_scene(state: LayoutState) -> None:
    old = state.scene
    unit, neuron, a, b = pick_move(old)
    move_neuron(state, unit, neuron, b)
    back, ch = move_neuron(state, unit, neuron, a)
    assert ch.clusters == {a, b}
    assert scenes_equal(back, old)


def test_move_into_a_new_cluster_and_remove_emptied_cluster(
    state: LayoutState, snapshot: Snapshot
) -> None:
    old = state.scene
    unit, neuron, a, b = pick_move(old)
    new, ch = move_neuron(state, unit, neuron, None)
    check_scene(new, snapshot)
    c = cluster_of(new, unit, neuron)
    assert c not in old.clusters.id and ch.clusters == {a, c}
    i = int(np.flatnonzero(new.clusters.id == c)[0])
    assert new.clusters.size[i] == 1
    assert new.clusters.id[i - 1] == a  # placed right of its source cluster
    new2, ch2 = move_neuron(state, unit, neuron, b)
    check_scene(new2, snapshot)
    assert ch2.removed == {c} and ch2.clusters == {b}
    assert c not in new2.clusters.id


def test_move_errors(state: LayoutState) -> None:
    unit, neuron, a, _ = pick_move(state.scene)
    other_row = int(
        state.scene.clusters.id[
            state.scene.clusters.row != state.scene.clusters.row[state.scene.clusters.id == a][0]
        ][0]
    )
    with pytest.raises(KeyError):
        move_neuron(state, unit, neuron, other_row)
    same, ch = move_neuron(state, unit, neuron, a)
    assert ch.empty and same is state.scene


def test_non_incremental_move_repacks(snapshot: Snapshot) -> None:
    state = build_state(snapshot, replace(OPTIONS, incremental_min=0))
    unit, neuron, a, b = pick_move(state.scene)
    new, ch = move_neuron(state, unit, neuron, b)
    check_scene(new, snapshot)
    assert ch.clusters == {a, b}
    # without incremental updates the two clusters are packed as a fresh layout of the same
    # member sets packs them (built from scratch through the edits path, not by this edit)
    from cnnvis_gl.ui.edits import build_with_edits, capture

    fresh = build_with_edits(snapshot, capture(state, pinned=True), state.options).scene
    for cid in (a, b):
        i = int(np.flatnonzero(new.clusters.id == cid)[0])
        j = int(np.flatnonzero(fresh.clusters.id == cid)[0])
        m, f = new.neurons.cluster == i, fresh.neurons.cluster == j
        assert new.neurons.index[m].tolist() == fresh.neurons.index[f].tolist()
        own = new.neurons.rect[m, :2] - new.clusters.features_rect[i, :2]
        ref = fresh.neurons.rect[f, :2] - fresh.clusters.features_rect[j, :2]
        assert np.allclose(own, ref, atol=1e-3)
        assert np.array_equal(new.neurons.matrix_row[m], fresh.neurons.matrix_row[f])


def test_threshold_change_keeps_cluster_geometry(state: LayoutState, snapshot: Snapshot) -> None:
    old = state.scene
    new, ch = set_threshold(state, fraction=0.6)
    check_scene(new, snapshot)
    assert new.clusters is old.clusters and new.neurons is old.neurons and new.rows is old.rows
    assert not (ch.clusters or ch.moved or ch.rows or ch.removed or ch.structure)
    assert ch.edges and new.stats["edges"] > old.stats["edges"]
    # the same as building with that threshold (cluster order does not depend on it)
    assert scenes_equal(new, build_scene(snapshot, replace(OPTIONS, edge_fraction=0.6)))
    absolute, _ = set_threshold(state, value=float(np.abs(new.edges.weight).max()) * 2)
    assert len(absolute.edges.weight) == 0 and absolute.clusters is old.clusters


def test_facet_switch_changes_no_geometry(state: LayoutState) -> None:
    old = state.scene
    cid = int(old.clusters.id[3])
    new, ch = set_facet(state, FACET_MATRIX, [cid])
    assert ch.appearance == {cid} and not (ch.clusters or ch.moved or ch.edges or ch.rows)
    assert new.neurons is old.neurons and new.edges is old.edges and new.labels is old.labels
    for name in ("rect", "features_rect", "matrix_rect", "id", "size", "color"):
        assert getattr(new.clusters, name) is getattr(old.clusters, name)
    assert np.flatnonzero(new.clusters.facet != old.clusters.facet).tolist() == [3]
    everything, ch = set_facet(state, FACET_MATRIX)
    assert np.all(everything.clusters.facet == FACET_MATRIX)
    assert len(ch.appearance) == len(old.clusters.id) - 1
    # a later move keeps the facets
    unit, neuron, a, b = pick_move(everything)
    moved, _ = move_neuron(state, unit, neuron, b)
    assert np.all(moved.clusters.facet == FACET_MATRIX)


def test_set_clustering_touches_one_group(state: LayoutState, snapshot: Snapshot) -> None:
    old = state.scene
    group = snapshot.graph.groups[2].name
    row = next(i for i, r in enumerate(old.rows) if r.name == group)
    new, ch = set_clustering(state, group, k=2)
    check_scene(new, snapshot)
    assert int((new.clusters.row == row).sum()) == 2
    kept = old.clusters.id[old.clusters.row != row].tolist()
    assert set(kept) <= set(new.clusters.id.tolist())
    for cid in kept:
        assert view(new, cid) == view(old, cid)
    assert ch.removed == set(old.clusters.id[old.clusters.row == row].tolist()) - set(
        new.clusters.id.tolist()
    )
    assert row in ch.rows and {row - 1, row + 1} <= ch.edges
    new2, _ = set_clustering(state, group, method="meanshift")
    check_scene(new2, snapshot)


def test_expand_then_collapse(state: LayoutState, snapshot: Snapshot) -> None:
    old = state.scene
    group = next(g for g in snapshot.graph.groups if len(g.units) > 1)
    wide, ch = set_expanded(state, group.name)
    check_scene(wide, snapshot)
    assert ch.structure and len(wide.rows) == len(old.rows) + 2 * (len(group.units) - 1)
    # the group's last unit keeps the group row's clusters (ids included)
    last = next(i for i, r in enumerate(wide.rows) if r.name == f"{group.name}/{group.unit}")
    old_row = next(i for i, r in enumerate(old.rows) if r.name == group.name)
    assert sorted(wide.clusters.id[wide.clusters.row == last].tolist()) == sorted(
        old.clusters.id[old.clusters.row == old_row].tolist()
    )
    back, ch = set_expanded(state, group.name, False)
    check_scene(back, snapshot)
    assert ch.structure
    assert [r.name for r in back.rows] == [r.name for r in old.rows]
    assert np.array_equal(back.clusters.id, old.clusters.id)
    assert np.array_equal(back.clusters.rect, old.clusters.rect)
    assert np.array_equal(back.neurons.rect, old.neurons.rect)
