"""The viewer's parts that need no window, checked by value: the selection rule, the pick kinds
(shared with the shaders), what each picked thing says and outlines, and the level of detail."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_layout import OPTIONS, basecnn_snapshot

from cnnvis_gl.layout import build_scene
from cnnvis_gl.layout.scene import FACET_MATRIX, ROW_BETWEEN
from cnnvis_gl.layout.selection import bundle_emphasis, highlight
from cnnvis_gl.render.camera import Camera
from cnnvis_gl.render.gl import shader_source
from cnnvis_gl.render.lod import LodSettings, level_of_detail
from cnnvis_gl.render.pick import PickKind


def _tiny_scene() -> SimpleNamespace:
    """Two layers (units 0 and 1) of 5 and 3 neurons, 3 classes, 4 clusters."""
    act = np.array(
        [  # class 0, 1, 2
            [0.0, 0.1, 0.0],  # unit 0
            [0.0, 0.5, 0.2],
            [0.0, 0.9, 0.0],
            [0.8, 0.3, 0.0],  # class 0 only: kept when class 0 is selected too
            [0.0, 0.7, 0.0],
            [1.0, 2.0, 3.0],  # unit 1
            [0.0, 0.0, 0.0],
            [5.0, 0.1, 0.0],
        ],
        dtype=np.float32,
    )
    neurons = SimpleNamespace(
        unit=np.array([0, 0, 0, 0, 0, 1, 1, 1]),
        cluster=np.array([0, 0, 1, 1, 1, 2, 3, 3]),
        activation=act,
    )
    clusters = SimpleNamespace(rect=np.zeros((4, 4), np.float32))
    return SimpleNamespace(neurons=neurons, clusters=clusters, class_order=np.array([2, 0, 1]))


def test_class_selection_keeps_each_layers_strongest_neurons() -> None:
    s = _tiny_scene()
    # class 1, 40 %: unit 0 keeps its 2 strongest of 5 (0.9, 0.7), unit 1 its strongest (2.0)
    h = highlight(s, classes={1}, quantile=0.4)
    assert h.neuron_bright.tolist() == [0, 0, 1, 0, 1, 1, 0, 0]
    assert h.cluster_emphasis.tolist() == [0, 1, 1, 0]  # clusters 0 and 3 have none bright
    assert h.class_column.tolist() == [0, 0, 1]  # class 1 is the third matrix column
    assert h.any_class and not h.any_cluster
    # classes 0 and 1: a neuron's score is its strongest selected class (neuron 3: 0.8)
    h = highlight(s, classes={0, 1}, quantile=0.4)
    assert h.neuron_bright.tolist() == [0, 0, 1, 1, 0, 0, 0, 1]
    assert h.class_column.tolist() == [0, 1, 1]


def test_no_class_selection_dims_nothing_and_selection_outlines() -> None:
    s = _tiny_scene()
    h = highlight(s, neurons=[6], clusters=[3])
    assert h.neuron_bright.tolist() == [1] * 8
    assert h.neuron_selected.tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    assert h.cluster_emphasis.tolist() == [1] * 4
    assert h.cluster_selected.tolist() == [0, 0, 0, 1]
    assert not h.any_class and h.any_cluster
    # a selected neuron stays bright under a class selection that would dim it
    h = highlight(s, classes={1}, neurons=[6], quantile=0.4)
    assert h.neuron_bright[6] == 1 and h.cluster_emphasis[3] == 1


def test_bundle_emphasis_follows_the_brightest_touched_cluster() -> None:
    # 3 pieces into 2 bundles: bundle 0 touches clusters 0→2 and 1→2, bundle 1 touches 3→2
    e = SimpleNamespace(
        src=np.array([0, 1, 3]), dst=np.array([2, 2, 2]), bundle=np.array([0, 0, 1])
    )
    b = SimpleNamespace(pos=np.zeros((2, 2)))
    emph = np.array([0, 1, 0, 0], np.float32)  # cluster 1 bright, 2 and 3 dimmed
    csel = np.zeros(4, np.float32)
    assert bundle_emphasis(e, b, None, emph, csel).tolist() == [1, 0]
    csel[3] = 1  # a selected cluster decides instead of the class emphasis
    assert bundle_emphasis(e, b, None, emph, csel).tolist() == [0, 1]


def test_pick_kinds_are_the_shaders_numbers() -> None:
    src = shader_source("edge.frag", None)
    from cnnvis_gl.render.pick import shader_defines

    for name, code in shader_defines().items():
        assert f"#define {name} {code}" not in src  # defines come from `program`, not the file
    assert [k.code for k in PickKind] == list(range(len(PickKind)))
    assert PickKind.from_code(2) is PickKind.NEURON and PickKind.NEURON == "neuron"
    assert PickKind.from_code(200) is PickKind.NONE
    glsl = shader_source("edge.frag", shader_defines())
    assert "#define KIND_EDGE 4" in glsl and "#define KIND_NEURON 2" in glsl


# ---------------------------------------------------------------------------- picks


@pytest.fixture(scope="module")
def state(cifar_dir: Path):
    from cnnvis_gl.ui.state import AppState

    snap = basecnn_snapshot(cifar_dir)
    st = AppState(run_dir=Path("."), snapshot=snap, scene=build_scene(snap, OPTIONS))
    return st


class _Inspect:
    """The one thing a neuron's hover text asks: the class means, read from the snapshot."""

    def __init__(self, snap) -> None:
        self.snap = snap

    def class_means(self, unit: str) -> np.ndarray:
        return np.asarray(self.snap.activations(unit), np.float32)


def test_what_a_neuron_says_and_outlines(state) -> None:
    from cnnvis_gl.ui.picks import PICKS

    s, snap = state.scene, state.snapshot
    act = SimpleNamespace(inspect=_Inspect(snap))
    pick = PICKS[PickKind.NEURON]
    i = 17
    unit, ch = s.units[int(s.neurons.unit[i])], int(s.neurons.index[i])
    a = np.asarray(snap.activations(unit))[ch]
    best = np.argsort(-a)[:3]
    lines = pick.text(state, act, i)
    assert lines[0] == f"neuron {ch} · layer {unit}"
    want = ", ".join(f"{snap.classes[k]} {a[k]:.3g}" for k in best)
    assert lines[2] == f"top classes: {want}"
    ci = int(s.neurons.cluster[i])
    assert pick.cluster(state, i) == ci
    assert pick.rect(state, i) == tuple(float(v) for v in s.neurons.rect[i])
    # in the matrix facet the outline is the neuron's row of the matrix
    facet = s.clusters.facet.copy()
    try:
        s.clusters.facet[ci] = FACET_MATRIX
        x, y, w, h = (float(v) for v in s.clusters.matrix_rect[ci])
        rh = h / int(s.clusters.size[ci])
        row = int(s.neurons.matrix_row[i])
        assert pick.rect(state, i) == pytest.approx((x, y + row * rh, w, rh))
    finally:
        s.clusters.facet[:] = facet
    assert not pick.valid(state, len(s.neurons.cluster))


def test_what_clusters_edges_and_bundles_say(state) -> None:
    from cnnvis_gl.ui.picks import PICKS

    s = state.scene
    act = SimpleNamespace()
    c = PICKS[PickKind.CLUSTER]
    assert c.text(state, act, 3)[0] == f"cluster {state.cluster_name(3)} · {s.clusters.size[3]} neurons"
    assert c.cluster(state, 3) == 3
    j = int(np.argmax(np.abs(s.edges.weight)))
    text = PICKS[PickKind.EDGE].text(state, act, j)
    assert text[0] == f"edge w = {float(s.edges.weight[j]):+.4f}"
    assert PICKS[PickKind.EDGE].cluster(state, j) is None  # a drop on an edge is no cluster
    if len(s.bundles.pos):
        b = s.bundles
        sign = "excitatory" if b.sign[0] > 0 else "inhibitory"
        assert PICKS[PickKind.BUNDLE].text(state, act, 0) == [
            f"bundle ({sign})",
            f"{b.n_in[0]} inputs × {b.n_out[0]} outputs",
        ]
    assert PICKS[PickKind.NONE].text(state, act, -1) == []
    assert set(PICKS) == set(PickKind)


# ---------------------------------------------------------------------------- level of detail


def _lod(zoom: float, still: bool = False, **kw):
    args = dict(
        patch_side=10.0,
        row_height=1.0,
        chord=100.0,
        bounds=(0.0, 0.0, 1000.0, 1000.0),
        edge_count=lambda cap: min(50_000, cap),
    )
    args.update(kw)
    lod = LodSettings(still=still)
    return level_of_detail(lod, Camera((500.0, 500.0), zoom), (1000, 1000), **args)


def test_patches_fade_in_between_the_thresholds() -> None:
    lo, hi = LodSettings().patch_px  # 3 and 6 px: a 10-unit patch at zoom 0.3 and 0.6
    assert _lod(0.2)["patch_alpha"] == 0.0 and _lod(0.7)["patch_alpha"] == 1.0
    mid = _lod(0.45)["patch_alpha"]  # 4.5 px: half way
    assert mid == pytest.approx(0.5)
    assert _lod(0.45)["summary"][0] == pytest.approx(1.0 - mid)


def test_edge_budget_and_neuron_edges_share_the_vertices() -> None:
    s = LodSettings()
    far = _lod(0.1)  # chord 10 px: the far cap applies
    assert far["edges"] == s.far_edges and far["segments"] == s.segments[0]
    assert far["neuron_edges"] == 0
    near = _lod(2.0, detail_chord=20.0, detail_count=10**6)
    verts = near["edges"] * 2 * (near["segments"] + 1)
    detail = near["neuron_edges"] * 2 * (near["neuron_segments"] + 1)
    assert verts <= s.edge_vertices
    assert detail >= s.edge_vertices // 4 - 2 * (near["neuron_segments"] + 1)  # at least ~¼
    assert _lod(2.0, detail_count=5)["neuron_edges"] == 5  # all of few


def test_neuron_edge_lists_are_the_strongest_stored_weights(state) -> None:
    """The Neuron panel's in / out lists: the six largest |w| of the neuron's column / row of
    the weights stored between its layer and the next and previous ones (brute force)."""
    from cnnvis_gl.ui.inspect import Inspector

    s, snap = state.scene, state.snapshot
    inspect = Inspector(SimpleNamespace(state=state))
    layer_rows = [k for k, r in enumerate(s.rows) if r.kind != ROW_BETWEEN]
    groups = [s.rows[k].group for k in layer_rows]
    names = [snap.graph.groups[g].name for g in groups]
    p = 2  # a middle layer: both lists
    i = int(np.flatnonzero(s.clusters.row[s.neurons.cluster] == layer_rows[p])[3])
    ch = int(s.neurons.index[i])
    ins, outs = inspect.neuron_edges(i)

    def stored(lower: str) -> np.ndarray:
        (key,) = [k for k in snap.keys() if k.startswith(f"weights/group/{lower}/")]
        return np.asarray(snap[key], np.float64)

    def top6(vec: np.ndarray) -> list[tuple[int, float]]:
        ranked = sorted(range(len(vec)), key=lambda k: -abs(vec[k]))[:6]
        return [(k, float(vec[k])) for k in ranked]

    W_in, W_out = stored(names[p]), stored(names[p + 1])  # [C_lower, C_upper]
    assert [(k, pytest.approx(w)) for k, w in top6(W_in[ch])] == [
        (c, w) for (_u, c), w in ins
    ]
    assert [(k, pytest.approx(w)) for k, w in top6(W_out[:, ch])] == [
        (c, w) for (_u, c), w in outs
    ]
    assert {u for (u, _c), _w in ins} == {s.rows[layer_rows[p - 1]].unit}
    first = int(np.flatnonzero(s.clusters.row[s.neurons.cluster] == layer_rows[0])[0])
    assert inspect.neuron_edges(first)[0] is None  # the first layer has no inputs


# ---------------------------------------------------------------------------- finding the way


def test_search_finds_layers_modules_neurons_clusters_and_classes(state) -> None:
    from cnnvis_gl.layout.search import search

    s, snap = state.scene, state.snapshot
    groups = {g.name: list(g.units) for g in snap.graph.groups}
    rows = {s.rows[i].name: i for i in state.layer_rows()}

    def find(q):
        return search(s, q, snap.classes, groups)

    hits = find("conv")  # a prefix of every conv layer, in network order
    assert [h.index for h in hits] == [rows[n] for n in ("conv1", "conv2", "conv3", "conv4")]
    assert find("CONV3")[0].index == rows["conv3"]  # case-insensitive, exact first
    conv2 = next(g for g in snap.graph.groups if g.name == "conv2")
    inner = conv2.units[0]  # a module inside the collapsed group (its conv)
    assert [(h.kind, h.index) for h in find(inner)][:1] == [("row", rows["conv2"])]
    # a neuron by layer:channel, through the group name or the unit's module path
    i = int(np.flatnonzero(s.neurons.unit == s.units.index(conv2.unit))[5])
    ch = int(s.neurons.index[i])
    assert [(h.kind, h.index) for h in find(f"conv2:{ch}")] == [("neuron", i)]
    assert [(h.kind, h.index) for h in find(f"{conv2.unit} : {ch}")] == [("neuron", i)]
    assert find("conv2:99999") == []
    # the N-th cluster of a row, numbered as the Cluster panel names it
    (hit,) = find("conv3 #2")
    assert hit.kind == "cluster" and state.cluster_name(hit.index) == "conv3 #2"
    assert find("conv3 #999") == []
    # classes
    assert [(h.kind, h.index) for h in find("cat")] == [("class", snap.classes.index("cat"))]
    assert [h.label for h in find("auto")] == ["class automobile"]
    assert find("   ") == [] and find("no such thing") == []
    # a module holding several groups (BaseCNN's conv groups live in ``features``): first, and
    # holding them all; a module of one group is that group's row
    top = find("features")[0]
    assert top.kind == "module" and top.groups == ("conv1", "conv2", "conv3", "conv4")
    assert top.index == rows["conv1"] and top.label == "module features: conv1 … conv4 (4 groups)"
    assert all(h.kind != "module" for h in find("conv2")) and all(h.kind != "module" for h in find(inner))


def test_breadcrumbs_follow_the_module_tree() -> None:
    """A ResNet-50's groups (blocks of ``layerN.M`` units): the crumbs of one block, of several
    blocks of a stage, of the stem, and of everything; a group of units without a shared module."""
    from cnnvis_gl.layout.search import breadcrumbs, groups_under, module_prefix

    stages = [(1, 3), (2, 4), (3, 6), (4, 3)]
    groups = {"conv1": ["conv1"]}
    k = 1
    for stage, blocks in stages:
        for b in range(blocks):
            groups[f"block{k}"] = [f"layer{stage}.{b}.conv{i}" for i in (1, 2, 3)]
            k += 1
    groups["fc1"] = ["fc"]

    def crumbs(shown):
        return [(c.label, len(c.groups)) for c in breadcrumbs("resnet50", groups, shown)]

    assert module_prefix(groups["block9"]) == ("layer3", "1") and module_prefix(["a.x", "b.y"]) == ()
    assert groups_under(groups, "layer3") == [f"block{k}" for k in range(8, 14)]
    assert crumbs(["block9"]) == [("resnet50", 18), ("layer3", 6), ("block9 (layer3.1)", 1)]
    assert crumbs(["block8", "block9", "block10"]) == [("resnet50", 18), ("layer3", 6)]
    assert crumbs(["block3", "block4"]) == [("resnet50", 18)]  # two stages: only the model
    assert crumbs(["conv1"]) == [("resnet50", 18), ("conv1", 1)]
    assert crumbs(list(groups)) == crumbs([]) == [("resnet50", 18)]


def test_arrow_keys_walk_rows_and_layers(state) -> None:
    from cnnvis_gl.layout.search import neighbour

    s = state.scene
    layer_rows = state.layer_rows()
    row = state.row_clusters(layer_rows[2])
    assert neighbour(s, int(row[0]), "left") is None
    assert neighbour(s, int(row[0]), "right") == int(row[1])
    assert neighbour(s, int(row[-1]), "right") is None
    below = state.row_clusters(layer_rows[3])
    ci = int(row[1])
    cx = s.clusters.rect[:, 0] + s.clusters.rect[:, 2] / 2
    nearest = int(below[np.argmin(np.abs(cx[below] - cx[ci]))])  # brute force
    assert neighbour(s, ci, "down") == nearest
    top = int(state.row_clusters(layer_rows[0])[0])
    assert neighbour(s, top, "up") is None
    with pytest.raises(ValueError, match="direction"):
        neighbour(s, top, "sideways")


def test_minimap_box_keeps_the_scene_aspect_in_a_corner() -> None:
    from imgui_bundle import imgui

    from cnnvis_gl.ui.panels.minimap import minimap_box

    imgui.create_context()  # em sizes need a context
    try:
        x0, y0, x1, y1, k = minimap_box((0.0, 0.0, 400.0, 1000.0), (10.0, 20.0), (1000, 600))
    finally:
        imgui.destroy_context()
    assert (x1 - x0) / (y1 - y0) == pytest.approx(0.4)  # the scene's aspect
    assert y1 - y0 == pytest.approx(0.33 * 600)  # tall: a third of the view's height
    assert x1 - x0 == pytest.approx(400 * k) and x0 >= 10 and y1 <= 620


# ---------------------------------------------------------------------------- semantic zoom


def test_mosaic_shows_each_clusters_most_central_neurons_inside_its_frame(state) -> None:
    from cnnvis_gl.layout.mosaic import mosaic_tiles, representatives

    s = state.scene
    t = mosaic_tiles(s, max_tiles=9)
    n, c = s.neurons, s.clusters
    for ci in range(len(c.id)):
        mine = t.cluster == ci
        members = np.flatnonzero(n.cluster == ci)
        assert mine.sum() == min(len(members), 9)
        # brute force: the members nearest the cluster's mean class profile
        X = n.activation[members].astype(np.float64)
        d = np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1))
        chosen = t.neuron[mine]
        assert set(chosen) <= set(members)
        worst_chosen = max(d[np.searchsorted(members, chosen)])
        others = np.setdiff1d(members, chosen)
        if len(others):
            assert worst_chosen <= min(d[np.searchsorted(members, others)]) + 1e-9
        # square tiles inside the frame, not overlapping
        x, y, w, h = c.rect[ci]
        r = t.rect[mine]
        assert np.allclose(r[:, 2], r[:, 3])
        assert (r[:, 0] >= x - 1e-3).all() and (r[:, 0] + r[:, 2] <= x + w + 1e-3).all()
        assert (r[:, 1] >= y - 1e-3).all() and (r[:, 1] + r[:, 3] <= y + h + 1e-3).all()
        for a in range(len(r)):
            for b in range(a + 1, len(r)):
                ox = min(r[a, 0] + r[a, 2], r[b, 0] + r[b, 2]) - max(r[a, 0], r[b, 0])
                oy = min(r[a, 1] + r[a, 3], r[b, 1] + r[b, 3]) - max(r[a, 1], r[b, 1])
                assert ox <= 1e-6 or oy <= 1e-6
    # ties between equally central neurons go to the more important one
    assert representatives(np.zeros((3, 2)), np.array([0.1, 0.9, 0.5]), 2).tolist() == [1, 2]


def test_mosaic_and_patches_never_show_together() -> None:
    for z in np.linspace(0.05, 1.0, 60):
        lod = _lod(float(z))
        assert lod["mosaic_alpha"] == 0.0 or lod["patches_drawn"] == 0.0
    assert _lod(0.05)["mosaic_alpha"] == 1.0 and _lod(1.0)["patches_drawn"] == 1.0


def test_a_still_picture_is_never_half_faded() -> None:
    """``cnnvis render`` (LodSettings.still): at every zoom the clusters show their mosaics or
    their patches, opaque; the switch is where the patches are half faded in the viewer."""
    for z in np.linspace(0.05, 1.0, 96):
        moving, still = _lod(float(z)), _lod(float(z), still=True)
        assert {still["mosaic_alpha"], still["patches_drawn"]} == {0.0, 1.0}
        assert still["patches_drawn"] == float(moving["patch_alpha"] >= 0.5)
    assert _lod(0.4)["mosaic_alpha"] < 1.0 and _lod(0.4, still=True)["mosaic_alpha"] == 1.0


def test_matrix_cell_hover_names_the_class_and_its_top_neurons(state) -> None:
    from cnnvis_gl.layout.selection import class_top_neurons
    from cnnvis_gl.ui.picks import PICKS

    s, snap = state.scene, state.snapshot
    act = SimpleNamespace(inspect=_Inspect(snap))
    ci = int(np.argmax(s.clusters.size))
    i = int(np.flatnonzero(s.neurons.cluster == ci)[0])
    x0, _, w, _ = (float(v) for v in s.clusters.matrix_rect[ci])
    col = 4
    at = (x0 + (col + 0.5) * w / len(s.class_order), 0.0)  # the middle of column 4
    k = int(s.class_order[col])
    members = np.flatnonzero(s.neurons.cluster == ci)
    brute = sorted(members, key=lambda n: (-float(s.neurons.activation[n, k]), n))[:3]
    assert [n for n, _ in class_top_neurons(s, ci, k)] == brute
    facet = s.clusters.facet.copy()
    try:
        s.clusters.facet[ci] = FACET_MATRIX
        lines = PICKS[PickKind.NEURON].text(state, act, i, at)
    finally:
        s.clusters.facet[:] = facet
    name = snap.classes[k]
    assert f"{name}: {float(s.neurons.activation[i, k]):.2f} of the layer's max" in lines
    want = ", ".join(str(int(s.neurons.index[n])) for n in brute)
    assert f"{name} activates most here: neurons {want}" in lines
    # in the features facet the pointer's column means nothing
    assert not any("activates most" in x for x in PICKS[PickKind.NEURON].text(state, act, i, at))


def test_a_remembered_value_is_made_again_only_for_new_inputs() -> None:
    """The panels' per-frame memo: a new object (by identity) or a new key (by value) makes the
    value again; the same ones, or an equal copy of the key, give what was made."""
    from cnnvis_gl.remember import Remembered

    made: list[int] = []
    memo: Remembered[int] = Remembered()

    def make() -> int:
        made.append(len(made))
        return made[-1]

    a, b = [1], [1]  # equal, not the same object
    assert memo.get((a,), ("x", 1), make) == 0
    assert memo.get((a,), ("x", 1), make) == 0 and memo.get((a,), tuple(["x", 1]), make) == 0
    assert memo.get((b,), ("x", 1), make) == 1  # another scene: made again
    assert memo.get((b,), ("x", 2), make) == 2  # another key
    assert memo.get((b, a), ("x", 2), make) == 3 and made == [0, 1, 2, 3]
