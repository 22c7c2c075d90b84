"""Parallel branches side by side (issue 11): an expanded Inception module's branches and a
squeeze-and-excitation gate in lanes, their edges down empty lanes, on a real analysed model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cnnvis_gl
from cnnvis_gl.layout import ROW_BETWEEN, LayoutOptions, build_state, set_expanded
from cnnvis_gl.layout.detail import neuron_edges
from cnnvis_gl.layout.lanes import group_units
from cnnvis_gl.layout.search import groups_frame, search

pytestmark = pytest.mark.slow


def _cbr(i: int, o: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, k, 1, k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class Inception(nn.Module):
    """Four branches of 1, 2, 3 and 1 convs (the last after a pool), concatenated."""

    def __init__(self, i: int) -> None:
        super().__init__()
        self.branch1 = _cbr(i, 8)
        self.branch2 = nn.Sequential(_cbr(i, 6), _cbr(6, 8, 3))
        self.branch3 = nn.Sequential(_cbr(i, 4), _cbr(4, 8, 3), _cbr(8, 8, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), _cbr(i, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class Net(nn.Module):
    """Stem, an Inception module, a conv gated by squeeze-and-excitation, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _cbr(3, 16, 3)
        self.inc = Inception(16)
        self.pool = nn.MaxPool2d(2)
        self.conv = _cbr(32, 24, 3)
        self.fc1 = nn.Conv2d(24, 6, 1)
        self.fc2 = nn.Conv2d(6, 24, 1)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(self.inc(self.stem(x))))
        x = x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(x.mean((2, 3)))


@pytest.fixture(scope="module")
def snap(cifar_dir):
    torch.manual_seed(0)
    return cnnvis_gl.analyze(Net(), f"cifar10:{cifar_dir}", limit=96, progress=False)


@pytest.fixture(scope="module")
def state(snap):
    return build_state(snap, LayoutOptions(k=3, expanded=frozenset({"mixed1", "conv2"})))


def test_branches_get_levels_and_lanes(snap):
    names = [g.name for g in snap.graph.groups]
    assert names == ["conv1", "mixed1", "conv2", "fc1"]
    got = {u: (lv, ln) for u, lv, ln in group_units(snap, 1)}
    assert got == {
        "inc.branch1.0": (0, 0),
        "inc.branch2.0.0": (0, 1),
        "inc.branch3.0.0": (0, 2),
        "inc.branch4.1.0": (0, 3),
        "inc.branch2.1.0": (1, 1),  # a branch keeps its lane
        "inc.branch3.1.0": (1, 2),
        "inc.branch3.2.0": (2, 2),
        "inc.cat": (3, -1),  # the join: centred under them all
    }
    # the gate is a side branch: the gated conv keeps lane 0, the gate opens lane 1
    assert group_units(snap, 2) == [("conv.0", 0, 0), ("fc1", 1, 1), ("fc2", 2, 1)]
    assert snap.graph.groups[2].unit == "conv.0"  # the gate never stands for its group


def _rows(scene):
    return {r.name: (k, r) for k, r in enumerate(scene.rows) if r.kind != ROW_BETWEEN}


def _frames(scene, row):
    return scene.clusters.rect[scene.clusters.row == row]


def test_branches_sit_side_by_side_in_lanes_that_never_overlap(state):
    scene = state.scene
    rows = _rows(scene)
    band0 = [f"mixed1/inc.branch{b}" for b in ("1.0", "2.0.0", "3.0.0", "4.1.0")]
    ys = {rows[n][1].y for n in band0}
    assert len(ys) == 1, "the first convs of the four branches share one band"
    # left to right in branch order, frames and labels of different lanes apart
    lefts = [_frames(scene, rows[n][0])[:, 0].min() for n in band0]
    assert lefts == sorted(lefts)
    lanes = [(rows[n][1].x, rows[n][1].x + rows[n][1].width) for n in band0]
    for (_, a1), (b0, _) in zip(lanes[:-1], lanes[1:], strict=True):
        assert a1 < b0
    for n, (x0, x1) in zip(band0, lanes, strict=True):
        f = _frames(scene, rows[n][0])
        assert f[:, 0].min() >= x0 and (f[:, 0] + f[:, 2]).max() <= x1
        label = next(lab for lab in scene.labels if lab.kind == "row" and rows[n][1].y <= lab.y <= rows[n][1].y + rows[n][1].height and x0 <= lab.x <= x1)  # fmt: skip
        assert label.left >= x0 - 1e-6
        assert label.text.startswith(n.split(".", 1)[1])  # the lane names its branch briefly
    # a branch continues straight down its lane; the join is centred below every branch
    b2 = rows["mixed1/inc.branch2.1.0"][1]
    assert (b2.x, b2.width) == (rows["mixed1/inc.branch2.0.0"][1].x, rows["mixed1/inc.branch2.0.0"][1].width)
    cat = rows["mixed1/inc.cat"][1]
    assert cat.y > rows["mixed1/inc.branch3.2.0"][1].y > b2.y > next(iter(ys))


def _points(ctrl: np.ndarray, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[None, :, None]
    p0, p1, p2, p3 = (ctrl[:, k][:, None, :] for k in range(4))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def test_every_branch_reaches_the_join_and_no_edge_crosses_a_frame(state):
    scene = state.scene
    rows = _rows(scene)
    cat = rows["mixed1/inc.cat"][0]
    c = scene.clusters
    e = scene.edges
    direct = (e.src >= 0) & (e.dst >= 0) & (c.row[np.maximum(e.dst, 0)] == cat)
    into_cat = {int(c.row[s]) for s in e.src[direct]}
    # shared pieces (bundle → output) have no source: the links say which rows they join
    linked = {u for u, lo, _ in scene.links if lo == cat}
    ends = {rows[f"mixed1/inc.branch{b}"][0] for b in ("1.0", "2.1.0", "3.2.0", "4.1.0")}
    assert linked == ends and into_cat <= ends
    for u in ends:  # every branch has drawn edges into the join
        assert np.any((c.row[np.maximum(scene.edges.src, 0)] == u) & (scene.edges.src >= 0))
    # every edge leaves its source cluster's frame: a piece starts on its bottom edge
    rect = np.asarray(c.rect, dtype=np.float64)
    lead = e.src >= 0
    for ci in np.unique(e.src[lead]):
        starts = e.ctrl[lead & (e.src == ci), 0]
        assert np.any(np.abs(starts[:, 1] - (rect[ci, 1] + rect[ci, 3])) < 1e-3)
    # sample every edge piece: it meets no cluster frame but its own ends'
    pts = _points(np.asarray(scene.edges.ctrl, dtype=np.float64))
    for e in range(len(pts)):
        own = {int(scene.edges.src[e]), int(scene.edges.dst[e])} - {-1}
        p = pts[e, 1:-1]
        inside = (
            (p[:, None, 0] > rect[None, :, 0] + 0.5)
            & (p[:, None, 0] < rect[None, :, 0] + rect[None, :, 2] - 0.5)
            & (p[:, None, 1] > rect[None, :, 1] + 0.5)
            & (p[:, None, 1] < rect[None, :, 1] + rect[None, :, 3] - 0.5)
        )
        hit = set(np.flatnonzero(inside.any(axis=0)).tolist()) - own
        assert not hit, f"edge piece {e} runs through cluster frames {hit}"


def test_the_gated_conv_feeds_the_next_group_past_its_gate(state, snap):
    scene = state.scene
    rows = _rows(scene)
    conv, gate1, gate2, fc = (rows[n][0] for n in ("conv2/conv.0", "conv2/fc1", "conv2/fc2", "fc1"))
    assert scene.rows[gate1].y > scene.rows[conv].y and scene.rows[gate1].x > scene.rows[conv].x
    assert {(u, lo) for u, lo, _ in scene.links} >= {(conv, gate1), (gate1, gate2), (conv, fc)}
    M = state.cluster_matrix(state.row("conv2/conv.0"), state.row("fc1"))
    W = snap["weights/group/fc1/conv2"]
    assert M is not None and M.shape[1] == len(_frames(scene, fc)) and np.abs(W).sum() > 0
    # neuron-level detail follows the same links, down the lane
    d = neuron_edges(snap, scene, np.flatnonzero(np.isin(scene.clusters.row, [conv, fc])))
    assert d.kept > 0 and any(lo == fc for _, lo in d.thresholds)


def test_collapsing_the_module_brings_back_one_row_and_find_frames_the_lanes(state, snap):
    scene = state.scene
    hit = search(scene, "mixed1", (), {})[0]
    assert hit.kind == "module" and hit.groups == ("mixed1",)
    box = groups_frame(scene, [g.name for g in snap.graph.groups], ["mixed1"])
    rows = [r for r in scene.rows if r.name.startswith("mixed1/")]
    assert box[0] <= min(r.x for r in rows) and box[2] >= max(r.x + r.width for r in rows) - 1
    mine = build_state(snap, state.options)  # the other tests keep the module expanded
    one, _ = set_expanded(mine, "mixed1", False)
    assert [r.name for r in mine.rows][:3] == ["conv1", "mixed1", "conv2/conv.0"]
    assert one.links[0][0] == _rows(one)["conv1"][0]
    assert all(r.width == 0 for r in one.rows if r.name in ("conv1", "mixed1"))


def test_arrow_keys_walk_the_lanes(state):
    from cnnvis_gl.layout.search import neighbour, row_clusters

    scene = state.scene
    rows = _rows(scene)
    b1 = row_clusters(scene, rows["mixed1/inc.branch1.0"][0])
    b2 = row_clusters(scene, rows["mixed1/inc.branch2.0.0"][0])
    assert neighbour(scene, int(b1[-1]), "right") == int(b2[0])  # into the next lane
    assert neighbour(scene, int(b2[0]), "left") == int(b1[-1])
    # down from the stem lands in the branches' band, from a branch in the band below it
    stem = row_clusters(scene, rows["conv1"][0])
    band0 = {rows[f"mixed1/inc.branch{b}"][0] for b in ("1.0", "2.0.0", "3.0.0", "4.1.0")}
    assert int(scene.clusters.row[neighbour(scene, int(stem[0]), "down")]) in band0
    below = int(scene.clusters.row[neighbour(scene, int(b2[0]), "down")])
    assert below in {rows["mixed1/inc.branch2.1.0"][0], rows["mixed1/inc.branch3.1.0"][0]}
    up = int(scene.clusters.row[neighbour(scene, int(row_clusters(scene, rows["mixed1/inc.cat"][0])[0]), "up")])
    assert up == rows["mixed1/inc.branch3.2.0"][0]  # the band right above the join


def test_columns_never_cut_through_the_lanes(snap):
    """A column may end only at a chain link: never inside a module's bands, nor where an edge
    skips over the cut (fc1 fed by the gated conv past its gate)."""
    st = build_state(snap, LayoutOptions(k=3, expanded=frozenset({"mixed1"})))
    names = [r.name for r in st.rows]
    assert [n for n, cut in zip(names, st.bands().breakable(), strict=True) if cut] == ["conv2", "fc1"]
    gated = build_state(snap, LayoutOptions(k=3, expanded=frozenset({"conv2"})))
    names = [r.name for r in gated.rows]
    assert [n for n, cut in zip(names, gated.bands().breakable(), strict=True) if cut] == ["mixed1"]


class MBConv(nn.Module):
    """An inverted residual block with its gate in the middle (EfficientNet's MBConv): expand,
    depthwise conv gated by squeeze-and-excitation, project — the gated conv comes after its
    gate in the units' order (it leaves at the product)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _cbr(3, 8, 3)
        self.expand = _cbr(8, 16)
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.fc1 = nn.Conv2d(16, 4, 1)
        self.fc2 = nn.Conv2d(4, 16, 1)
        self.project = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dw(self.expand(x))
        y = y * torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return self.head((x + self.project(y)).mean((2, 3)))


def test_a_gate_in_the_middle_of_a_block_sits_beside_the_path_it_gates(cifar_dir):
    torch.manual_seed(0)
    snap = cnnvis_gl.analyze(MBConv(), f"cifar10:{cifar_dir}", limit=32, progress=False)
    gi = next(i for i, g in enumerate(snap.graph.groups) if "fc1" in g.units)
    g = snap.graph.groups[gi]
    assert g.units.index("dw.0") > g.units.index("fc2")  # ordered at its product
    assert group_units(snap, gi) == [
        ("expand.0", 0, 0), ("dw.0", 1, 0), ("project.0", 2, 0), ("fc1", 2, 1), ("fc2", 3, 1)
    ]  # fmt: skip
    st = build_state(snap, LayoutOptions(k=2, expanded=frozenset({g.name})))
    rows = _rows(st.scene)
    dw, fc1 = rows[f"{g.name}/dw.0"][0], rows[f"{g.name}/fc1"][0]
    assert any(u == dw and lo == fc1 for u, lo, _ in st.scene.links)  # the gate reads the dw conv
