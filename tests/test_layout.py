"""Layout (``cnnvis_gl.layout``): Scene invariants and determinism on a real BaseCNN snapshot.

The snapshot is BaseCNN (seeded random weights) analysed on 200 real CIFAR-10 test images.
``check_scene`` is shared with ``test_layout_edit.py``.
"""

from __future__ import annotations

import functools
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from cnnvis_gl.layout import (
    FACET_FEATURES,
    ROW_BETWEEN,
    LayoutOptions,
    Scene,
    build_scene,
    build_state,
)
from cnnvis_gl.layout.edges import PIECE_DIRECT, PIECE_IN, PIECE_OUT, cluster_weights
from cnnvis_gl.run.snapshot import Snapshot

EPS = 1e-3


@functools.lru_cache(maxsize=2)
def basecnn_snapshot(cifar_dir: Path, limit: int = 200) -> Snapshot:
    """One real snapshot per test process (shared by the layout test modules)."""
    import torch

    import cnnvis_gl
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    return cnnvis_gl.analyze(
        build_model("basecnn"), f"cifar10:{cifar_dir}", limit=limit, progress=False
    )


@pytest.fixture(scope="module")
def snapshot(cifar_dir: Path) -> Snapshot:
    return basecnn_snapshot(cifar_dir)


# Fixed k: a few clusters per row, so there are edges and bundles to check.
OPTIONS = LayoutOptions(k=5)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise interior overlap of rectangles ``a[i]`` and ``b[j]`` (x, y, w, h)."""
    ax0, ay0, ax1, ay1 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    return (
        (ax0[:, None] < bx1[None] - EPS)
        & (bx0[None] < ax1[:, None] - EPS)
        & (ay0[:, None] < by1[None] - EPS)
        & (by0[None] < ay1[:, None] - EPS)
    )


def _inside(inner: np.ndarray, outer: np.ndarray) -> bool:
    return bool(
        np.all(inner[..., 0] >= outer[..., 0] - EPS)
        and np.all(inner[..., 1] >= outer[..., 1] - EPS)
        and np.all(inner[..., 0] + inner[..., 2] <= outer[..., 0] + outer[..., 2] + EPS)
        and np.all(inner[..., 1] + inner[..., 3] <= outer[..., 1] + outer[..., 3] + EPS)
    )


def check_scene(scene: Scene, snapshot: Snapshot) -> None:
    """Every structural invariant of a Scene built from ``snapshot``."""
    graph = snapshot.graph
    rows, cl, ne = scene.rows, scene.clusters, scene.neurons
    C, N = len(cl.id), len(ne.unit)
    assert len(set(cl.id.tolist())) == C, "cluster ids are unique"
    assert np.all((cl.color >= 0) & (cl.color <= 1))
    assert cl.size.sum() == N
    # rows: layer rows and between rows alternate, stacked top-down without gaps
    layer_rows = [i for i, r in enumerate(rows) if r.kind != ROW_BETWEEN]
    assert all(rows[i].kind == ROW_BETWEEN for i in range(1, len(rows), 2))
    for a, b in zip(rows[:-1], rows[1:], strict=False):
        assert b.y == pytest.approx(a.y + a.height)
    # every neuron of every shown unit is in exactly one cluster, of that unit's row
    for i in layer_rows:
        r = rows[i]
        mine = np.flatnonzero(cl.row[ne.cluster] == i)
        assert np.all(np.asarray(scene.units)[ne.unit[mine]] == r.unit)
        idx = np.sort(ne.index[mine])
        assert np.array_equal(idx, np.arange(graph.unit(r.unit).channels))
    # neurons are grouped by cluster, in cluster order, sizes agree
    assert np.all(np.diff(ne.cluster) >= 0)
    assert np.array_equal(np.bincount(ne.cluster, minlength=C), cl.size)
    assert ne.activation.shape == (N, len(scene.classes))
    assert np.all((ne.importance >= 0) & (ne.importance <= 1))
    assert sorted(scene.class_order.tolist()) == list(range(len(scene.classes)))
    for ci in range(C):
        row = rows[cl.row[ci]]
        assert row.kind != ROW_BETWEEN
        band = np.array([-1e9, row.y, 2e9, row.height])
        assert _inside(cl.rect[ci], band), "cluster inside its row"
        assert _inside(cl.features_rect[ci], cl.rect[ci])
        assert _inside(cl.matrix_rect[ci], cl.rect[ci])
        m = ne.cluster == ci
        pr = ne.rect[m].astype(np.float64)
        assert _inside(pr, cl.features_rect[ci].astype(np.float64)), "patches in features rect"
        ov = _overlap(pr, pr)
        np.fill_diagonal(ov, False)
        assert not ov.any(), "patches do not overlap"
        assert sorted(ne.matrix_row[m].tolist()) == list(range(int(cl.size[ci])))
    for i in layer_rows:
        rr = cl.rect[cl.row == i].astype(np.float64)
        ov = _overlap(rr, rr)
        np.fill_diagonal(ov, False)
        assert not ov.any(), "clusters of a row do not overlap"
    # edges connect consecutive layer rows through the between row in the middle
    e, b = scene.edges, scene.bundles
    E = len(e.weight)
    for arr in (e.ctrl, e.sign, e.src, e.dst, e.bundle, e.row, e.piece, e.count):
        assert len(arr) == E
    assert np.all(e.sign == np.where(e.weight >= 0, 1, -1))
    for k in range(E):
        br = e.row[k]
        assert rows[br].kind == ROW_BETWEEN
        if e.src[k] >= 0:
            s = e.src[k]
            assert cl.row[s] == br - 1
            bottom = (cl.rect[s, 0] + cl.rect[s, 2] / 2, cl.rect[s, 1] + cl.rect[s, 3])
            assert np.allclose(e.ctrl[k, 0], bottom, atol=EPS)
        if e.dst[k] >= 0:
            d = e.dst[k]
            assert cl.row[d] == br + 1
            top = (cl.rect[d, 0] + cl.rect[d, 2] / 2, cl.rect[d, 1])
            assert np.allclose(e.ctrl[k, 3], top, atol=EPS)
        if e.piece[k] == PIECE_DIRECT:
            assert e.bundle[k] == -1 and e.src[k] >= 0 and e.dst[k] >= 0
        else:
            bi = e.bundle[k]
            assert 0 <= bi < len(b.pos) and b.row[bi] == br and b.sign[bi] == e.sign[k]
            end = e.ctrl[k, 3] if e.piece[k] == PIECE_IN else e.ctrl[k, 0]
            assert np.allclose(end, b.pos[bi], atol=EPS)
            assert (e.piece[k] == PIECE_IN) == (e.dst[k] == -1)
    # bundle nodes lie between their ends (vertically between the rows, x within the ends)
    for bi in range(len(b.pos)):
        m = e.bundle == bi
        ins, outs = e.src[m & (e.piece == PIECE_IN)], e.dst[m & (e.piece == PIECE_OUT)]
        assert len(ins) == b.n_in[bi] and len(outs) == b.n_out[bi]
        assert max(b.n_in[bi], b.n_out[bi]) >= 2
        xs = np.concatenate(
            [cl.rect[ins, 0] + cl.rect[ins, 2] / 2, cl.rect[outs, 0] + cl.rect[outs, 2] / 2]
        )
        assert xs.min() - EPS <= b.pos[bi, 0] <= xs.max() + EPS
        assert np.all(cl.rect[ins, 1] + cl.rect[ins, 3] <= b.pos[bi, 1])
        assert np.all(cl.rect[outs, 1] >= b.pos[bi, 1])
        assert rows[b.row[bi]].y <= b.pos[bi, 1] <= rows[b.row[bi]].y + rows[b.row[bi]].height
    # labels: one per layer row, one (size) per cluster
    row_labels = [lab for lab in scene.labels if lab.kind == "row"]
    assert len(row_labels) == len(layer_rows)
    size_labels = {lab.cluster: lab.text for lab in scene.labels if lab.kind == "cluster"}
    assert size_labels == {int(c): str(int(s)) for c, s in zip(cl.id, cl.size, strict=True)}
    x0, y0, x1, y1 = scene.bounds
    assert x0 <= float(cl.rect[:, 0].min()) and x1 >= float((cl.rect[:, 0] + cl.rect[:, 2]).max())
    assert y0 <= rows[0].y and y1 >= rows[-1].y + rows[-1].height


def scenes_equal(a: Scene, b: Scene) -> bool:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("clusters", "neurons", "edges", "bundles"):
            for g in fields(x):
                u, v = getattr(x, g.name), getattr(y, g.name)
                if u.dtype != v.dtype or not np.array_equal(u, v):
                    return False
        elif isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("options", [LayoutOptions(), OPTIONS], ids=["silhouette", "k5"])
def test_scene_invariants(snapshot: Snapshot, options: LayoutOptions) -> None:
    scene = build_scene(snapshot, options)
    check_scene(scene, snapshot)
    assert [r.name for r in scene.rows if r.kind != ROW_BETWEEN] == [
        g.name for g in snapshot.graph.groups
    ]
    assert np.all(scene.clusters.facet == FACET_FEATURES)
    st = scene.stats
    assert 0 < st["density_mean"] <= 1
    assert st["order_score"] >= st["order_score_random"]
    for k in ("ink_bundled", "ink_direct", "crossings_bundled", "crossings_direct"):
        assert st[k] >= 0


def test_scene_has_bundles_and_edges(snapshot: Snapshot) -> None:
    scene = build_scene(snapshot, OPTIONS)
    assert len(scene.edges.weight) > 0 and len(scene.bundles.pos) > 0
    assert set(np.unique(scene.edges.sign).tolist()) <= {-1, 1}
    # about the top 25 % of the cluster pairs are kept per pair of rows
    n_pairs = sum(
        int((scene.clusters.row == i).sum() * (scene.clusters.row == i + 2).sum())
        for i in range(0, len(scene.rows) - 2, 2)
    )
    assert 0.2 * n_pairs <= scene.stats["edges"] <= 0.3 * n_pairs + 5
    assert scene.stats["ink_bundled"] <= scene.stats["ink_direct"]


def test_build_is_deterministic(snapshot: Snapshot) -> None:
    a = build_scene(snapshot, OPTIONS)
    b = build_scene(snapshot, OPTIONS)
    assert scenes_equal(a, b)


def test_cluster_ids_are_stable_across_builds_with_other_options(snapshot: Snapshot) -> None:
    a = build_scene(snapshot, OPTIONS)
    b = build_scene(snapshot, LayoutOptions(k=5, edge_fraction=0.5, patch_max=40))
    # same clusters (row + members) -> same ids and colours, whatever the geometry options
    order = np.argsort(a.clusters.id)
    assert np.array_equal(a.clusters.id[order], np.sort(b.clusters.id))
    assert np.array_equal(a.clusters.color[order], b.clusters.color[np.argsort(b.clusters.id)])


def test_cluster_weight_is_mean_of_neuron_weights() -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(7, 5))  # [C_lower, C_upper]
    up = np.array([0, 1, 1, 0, 2])
    lo = np.array([1, 0, 0, 1, 1, 0, 1])
    M = cluster_weights(W, up, lo)
    for a in range(3):
        for b in range(2):
            assert M[a, b] == pytest.approx(W[np.ix_(lo == b, up == a)].mean())


def test_edge_threshold_option(snapshot: Snapshot) -> None:
    few = build_scene(snapshot, LayoutOptions(k=5, edge_fraction=0.1))
    many = build_scene(snapshot, LayoutOptions(k=5, edge_fraction=0.6))
    assert few.stats["edges"] < many.stats["edges"]
    none = build_scene(snapshot, LayoutOptions(k=5, edge_threshold=1e9))
    assert none.stats["edges"] == 0 and len(none.edges.weight) == 0
    check_scene(none, snapshot)


def test_expanded_group_rows(snapshot: Snapshot) -> None:
    group = next(g for g in snapshot.graph.groups if len(g.units) > 1)
    scene = build_scene(snapshot, LayoutOptions(k=3, expanded=frozenset({group.name})))
    check_scene(scene, snapshot)
    names = [r.name for r in scene.rows if r.kind != ROW_BETWEEN]
    assert [n for n in names if n.startswith(group.name + "/")] == [
        f"{group.name}/{u}" for u in group.units
    ]
    assert len(scene.edges.weight) > 0


def test_meanshift_and_matrix_facet(snapshot: Snapshot) -> None:
    from cnnvis_gl.layout import FACET_MATRIX, GroupClustering

    options = LayoutOptions(
        k=4, facet=FACET_MATRIX, clustering={"conv2": GroupClustering("meanshift")}
    )
    scene = build_scene(snapshot, options)
    check_scene(scene, snapshot)
    assert np.all(scene.clusters.facet == FACET_MATRIX)


def test_state_timings_cover_the_stages(snapshot: Snapshot) -> None:
    state = build_state(snapshot, OPTIONS)
    for stage in ("cluster", "pack", "order", "row_order", "compose", "edges"):
        assert stage in state.timings


def test_layout_imports_without_torch_or_gl() -> None:
    """The layout is core: it runs in a process where torch, OpenGL and imgui are absent."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('torch', 'OpenGL', 'moderngl', 'imgui_bundle', 'glfw'):\n"
        "    sys.modules[m] = None\n"
        "import cnnvis_gl.layout as L\n"
        "assert callable(L.build_scene) and callable(L.move_neuron)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_draft_labels_and_content_by_hand() -> None:
    """The draft layout's pieces on hand-made class profiles."""
    from cnnvis_gl.layout.content import draft_content, draft_labels, unit_data

    A = np.array(
        [[5, 1, 0], [4, 0, 1], [0, 3, 1], [1, 0, 2], [0, 2, 1], [6, 0, 0], [0, 0, 9]], float
    )
    # strongest classes 0,0,1,2,1,0,2: three groups; capped at two clusters the smallest
    # groups (classes 1 and 2, two neurons each; class 1 kept first by the stable sort) pool
    assert draft_labels(A, 8).tolist() == [0, 0, 1, 2, 1, 0, 2]
    assert draft_labels(A, 2).tolist() == [0, 0, 1, 1, 1, 0, 1]
    data = unit_data(A)
    members = np.array([0, 1, 5, 3, 6])
    c = draft_content(data, members, LayoutOptions(patch_min=10, patch_max=20, aspect=1.0))
    assert c.members.tolist() == [0, 1, 3, 5, 6]
    # sides by importance (largest class mean, normalised over the unit): 9 → 20, 2 → 10
    sides = c.rects[:, 2]
    assert np.array_equal(c.rects[:, 2], c.rects[:, 3])
    assert sides[c.members.tolist().index(6)] == 20 and sides[c.members.tolist().index(3)] == 10
    assert not _overlap(c.rects, c.rects)[~np.eye(5, dtype=bool)].any()
    assert (c.rects[:, 0] + c.rects[:, 2]).max() == pytest.approx(c.fw)
    assert (c.rects[:, 1] + c.rects[:, 3]).max() == pytest.approx(c.fh)
    # matrix rows: by strongest class (0: neurons 0, 1, 5 — strongest first; 2: neurons 6, 3)
    order = c.members[np.argsort(c.matrix_row)]
    assert order.tolist() == [5, 0, 1, 6, 3]


def test_draft_layout_of_a_real_network(snapshot: Snapshot) -> None:
    """``draft=True``: every neuron once, rows as the real layout's, clusters of neurons that
    share their strongest class (but one pool per row of the rarer classes), edges unbundled."""
    draft = build_scene(snapshot, LayoutOptions(draft=True))
    full = build_scene(snapshot, LayoutOptions())
    check_scene(draft, snapshot)
    assert [r.name for r in draft.rows] == [r.name for r in full.rows]
    assert len(draft.bundles.pos) == 0 and len(draft.edges.weight) > 0
    n = draft.neurons
    mixed = np.zeros(len(draft.rows), dtype=int)
    for ci in range(len(draft.clusters.id)):
        idx = np.flatnonzero(n.cluster == ci)
        unit = draft.units[int(n.unit[idx[0]])]
        top = np.asarray(snapshot.activations(unit))[n.index[idx]].argmax(1)
        mixed[int(draft.clusters.row[ci])] += len(np.unique(top)) > 1
    assert mixed.max() <= 1
    per_row = np.bincount(draft.clusters.row, minlength=len(draft.rows))
    assert per_row.max() <= LayoutOptions().k_range[1]


def test_a_draft_without_edges_reads_no_weights_and_finishes_as_the_draft(snapshot: Snapshot, monkeypatch) -> None:
    """``draft_edges=False`` (a big network's first frame): no edges, no weights read, rows in
    class order; ``finish_draft`` then gives the scene a draft with edges is, field for field."""
    from cnnvis_gl.layout import build_state
    from cnnvis_gl.layout.build import finish_draft

    whole = build_state(snapshot, LayoutOptions(draft=True)).scene
    read: list[str] = []
    get = type(snapshot).__getitem__
    monkeypatch.setattr(type(snapshot), "__getitem__", lambda self, k: read.append(k) or get(self, k))
    quick = build_state(snapshot, LayoutOptions(draft=True, draft_edges=False))
    first = quick.scene
    check_scene(first, snapshot)
    assert len(first.edges.weight) == 0 and not [k for k in read if k.startswith("weights/")]
    assert sorted(first.clusters.id.tolist()) == sorted(whole.clusters.id.tolist())
    done = finish_draft(quick)
    assert quick.options.draft_edges and len(done.edges.weight) > 0
    for part in ("clusters", "neurons", "edges", "bundles"):
        a, b = getattr(whole, part), getattr(done, part)
        for f in fields(a):
            assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), (part, f.name)
    assert done.bounds == whole.bounds and done.stats == whole.stats
    assert [(lab.text, lab.x, lab.y) for lab in done.labels] == [(lab.text, lab.x, lab.y) for lab in whole.labels]


def test_a_big_network_is_laid_out_alike_on_several_processes() -> None:
    """``workers=2`` (clustering and packing/ordering in two spawned processes) gives the
    scene one process gives; a script without a main guard is not run again in the workers
    (this test's module is imported by pytest's main, which the workers must not import)."""
    from cnnvis_gl.layout import build_state
    from cnnvis_gl.run.synthetic import huge_channels, synthetic_snapshot

    snap = synthetic_snapshot(huge_channels(12, 1500), 10)
    one = build_state(snap, LayoutOptions(workers=1)).scene
    two = build_state(snap, LayoutOptions(workers=2))
    assert two.timings["pack"] > 0 and two.timings["order"] > 0  # (summed over the workers)
    for part in ("clusters", "neurons"):
        a, b = getattr(one, part), getattr(two.scene, part)
        for f in fields(a):
            assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), (part, f.name)
    assert one.bounds == two.scene.bounds and one.stats == two.scene.stats


def test_parallel_workers_start_without_the_main_module(tmp_path: Path) -> None:
    """A user's script that lays out a big network at top level, without ``if __name__ ==
    "__main__"``: the spawned workers do not run it again (it would print twice, or fail)."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "from cnnvis_gl.layout import LayoutOptions, build_scene\n"
        "from cnnvis_gl.run.synthetic import huge_channels, synthetic_snapshot\n"
        "print('top level ran')\n"
        "snap = synthetic_snapshot(huge_channels(6, 600), 10)\n"
        "scene = build_scene(snap, LayoutOptions(workers=2))\n"
        "print('clusters', len(scene.clusters.id))\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("top level ran") == 1 and "clusters" in r.stdout
