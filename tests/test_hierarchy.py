"""Stages above layer groups (issue 11's hierarchy): which modules are stages, one row for a
collapsed stage, weights composed through it, collapse / expand as an edit, saved and rendered."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_layout import OPTIONS, basecnn_snapshot, check_scene, scenes_equal

from cnnvis_gl.layout import (
    ROW_BETWEEN,
    ROW_GROUP,
    ROW_STAGE,
    LayoutState,
    build_state,
    innermost_stages,
    set_collapsed,
    set_expanded,
    stages,
)
from cnnvis_gl.layout.edges import row_weights
from cnnvis_gl.layout.edit import set_collapsed_stages
from cnnvis_gl.layout.state import row_specs
from cnnvis_gl.model.graph import Group, Layer, NeuronGraph, Unit
from cnnvis_gl.run.snapshot import Snapshot


def tiny(paths: list[str], weights: dict[tuple[str, str], np.ndarray], widths: list[int]) -> Snapshot:
    """A chain of one-unit groups ``g0, g1, …`` whose units have the module ``paths``, with the
    given group weights (``(into, from)``)."""
    layers = [Layer("input", "input", "input", [], [3, 8, 8])]
    units, groups, prev = [], [], "input"
    for gi, (p, c) in enumerate(zip(paths, widths, strict=True)):
        layers.append(Layer(p, "conv", "Conv2d", [prev], [c, 8, 8], group=gi))
        units.append(Unit(p, [p], p, c, [8, 8], gi))
        groups.append(Group(f"g{gi}", [p], [p], [gi - 1] if gi else []))
        prev = p
    rng = np.random.default_rng(0)
    arrays = {f"units/{p}/A_max": rng.random((c, 3)).astype(np.float32) for p, c in zip(paths, widths, strict=True)}
    arrays.update({f"weights/group/{a}/{b}": w.astype(np.float32) for (a, b), w in weights.items()})
    graph = NeuronGraph([3, 8, 8], layers, units, groups)
    return Snapshot(graph, ["a", "b", "c"], arrays, {"n_images": 0}, step=0)


def test_stages_of_a_module_tree() -> None:
    """Stages: modules holding ≥ 2 consecutive groups and not all; nested ones; no group names."""
    snap = tiny(["stem", "body.s1.0", "body.s1.1", "body.s2.0", "body.s2.1", "body.s2.2", "head"],
                {}, [2] * 7)  # fmt: skip
    assert stages(snap.graph) == {"body": (1, 2, 3, 4, 5), "body.s1": (1, 2), "body.s2": (3, 4, 5)}
    assert innermost_stages(snap.graph) == ["body.s1", "body.s2"]
    # interleaved modules are no stage; one holding every group neither
    odd = tiny(["a.0", "b.0", "a.1", "b.1"], {}, [2] * 4)
    assert stages(odd.graph) == {}
    assert stages(tiny(["net.0", "net.1"], {}, [2, 2]).graph) == {}


def test_a_numbered_series_of_modules_is_a_stage() -> None:
    """Sibling modules numbered as a series (GoogLeNet's ``inception4a`` … ``4e``) are a stage
    named by their stem; a module of that name wins; torchvision's GoogLeNet and Inception-v3."""
    snap = tiny(["stem", "inc3a", "inc3b", "inc4a", "inc4b", "inc4c", "head"], {}, [2] * 7)
    assert stages(snap.graph) == {"inc3": (1, 2), "inc4": (3, 4, 5)}
    from cnnvis_gl.model import build_graph
    from cnnvis_gl.models.torchvision import import_torchvision

    tv = import_torchvision()
    g = build_graph(tv.googlenet(num_classes=10, aux_logits=False, init_weights=False).eval(), (3, 64, 64))
    assert {p: len(i) for p, i in stages(g).items()} == {"inception3": 2, "inception4": 5, "inception5": 2}
    g = build_graph(tv.inception_v3(num_classes=10, aux_logits=False, init_weights=False).eval(), (3, 299, 299))
    assert innermost_stages(g) == ["Mixed_5", "Mixed_6", "Mixed_7"]


def test_collapsed_stage_rows_and_composed_weights() -> None:
    """A collapsed stage is one row (its last group's neurons); the weights into it chain its
    groups' weights (with a skip path summed in), the weights out of it are its last group's."""
    rng = np.random.default_rng(1)
    W10, W21, W20, W32 = rng.normal(size=(3, 2)), rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), rng.normal(size=(5, 4))
    W43 = rng.normal(size=(2, 5))
    snap = tiny(
        ["stem", "stage.0", "stage.1", "stage.2", "head"],
        {("g1", "g0"): W10, ("g2", "g1"): W21, ("g2", "g0"): W20, ("g3", "g2"): W32, ("g4", "g3"): W43},
        [2, 3, 4, 5, 2],
    )
    rows = row_specs(snap, frozenset(), frozenset({"stage"}))
    assert [(r.name, r.kind, r.group, r.unit, r.groups) for r in rows] == [
        ("g0", ROW_GROUP, 0, "stem", ()),
        ("stage", ROW_STAGE, 3, "stage.2", (1, 2, 3)),
        ("g4", ROW_GROUP, 4, "head", ()),
    ]
    into = row_weights(snap, rows[0], rows[1])
    np.testing.assert_allclose(into, W32 @ (W21 @ W10 + W20), rtol=1e-5)
    np.testing.assert_allclose(row_weights(snap, rows[1], rows[2]), W43, rtol=1e-6)
    # a name that is no stage changes nothing; a stage inside a collapsed one goes with it
    assert [r.name for r in row_specs(snap, frozenset(), frozenset({"nope"}))] == ["g0", "g1", "g2", "g3", "g4"]


def test_collapse_then_expand_a_stage_of_a_real_cnn(cifar_dir: Path) -> None:
    """BaseCNN's ``features`` (conv1–conv4) collapses into one row carrying conv4's clusters
    (same ids), edges from it into fc1; expanding it back restores the scene exactly."""
    snap = basecnn_snapshot(cifar_dir)
    state = build_state(snap, OPTIONS)
    before = state.scene
    assert "features" in stages(snap.graph)
    conv4 = [r for r in before.rows if r.name == "conv4"][0]
    ids4 = sorted(int(c) for c, r in zip(before.clusters.id, before.clusters.row, strict=True)
                  if before.rows[r] is conv4)  # fmt: skip
    scene, changed = set_collapsed(state, "features", True)
    check_scene(scene, snap)
    names = [r.name for r in scene.rows if not r.name.startswith("between:")]
    assert names[0] == "features" and not {"conv1", "conv2", "conv3", "conv4"} & set(names)
    k = [r.name for r in scene.rows].index("features")
    assert scene.rows[k].kind == ROW_STAGE and len(scene.rows[k].groups) == 4
    assert sorted(int(c) for c in scene.clusters.id[scene.clusters.row == k]) == ids4
    label = next(lab.text for lab in scene.labels if lab.kind == "row" and lab.text.startswith("features"))
    assert label.startswith("features (4 groups)")
    src = np.asarray(scene.edges.src)
    assert np.any(scene.clusters.row[src[src >= 0]] == k), "edges leave the collapsed stage"
    assert changed.structure
    back, _ = set_collapsed(state, "features", False)
    assert scenes_equal(replace(back, stats={}), replace(before, stats={}))  # (stats: the sweeps' start)
    with pytest.raises(KeyError, match="no stage"):
        set_collapsed(state, "conv1", True)


def test_expanded_group_inside_a_collapsed_stage_is_hidden(cifar_dir: Path) -> None:
    snap = basecnn_snapshot(cifar_dir)
    state: LayoutState = build_state(snap, OPTIONS)
    set_expanded(state, "conv3", True)
    scene, _ = set_collapsed(state, "features", True)
    assert not any(r.name.startswith("conv3/") for r in scene.rows)
    scene, _ = set_collapsed(state, "features", False)
    assert any(r.name.startswith("conv3/") for r in scene.rows)  # its own setting comes back


def test_render_collapse(small_run: Path, tmp_path: Path, headless_gl: None, capsys) -> None:
    """``cnnvis render --collapse``: a stage as one row (``all``: the innermost stages), framed by
    ``--zoom-to``; an unknown stage is one line naming the stages; ``info`` lists them."""
    from PIL import Image

    from cnnvis_gl.cli import main

    def render(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / f"{name}.png"
        assert main(["render", str(small_run), "-o", str(out), "--size", "800x500", "--msaa", "0", *extra]) == 0
        return np.asarray(Image.open(out)).astype(np.int16)

    plain, one = render("plain"), render("one", "--collapse", "features")
    assert np.abs(plain - one).mean() > 5 and one.std() > 10
    assert np.array_equal(render("all", "--collapse", "all"), render("both", "--collapse", "features,classifier"))
    framed = render("framed", "--collapse", "features", "--zoom-to", "features")
    assert np.abs(framed - one).mean() > 5
    capsys.readouterr()
    assert main(["render", str(small_run), "-o", str(tmp_path / "x.png"), "--collapse", "layer9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'layer9'" in err and "features" in err and "classifier" in err
    assert main(["info", str(small_run)]) == 0
    assert "stages (render --collapse, the Controls panel): features (conv1–conv4), classifier" in capsys.readouterr().out


def test_a_collapsed_stage_in_the_breadcrumbs_and_find(cifar_dir: Path) -> None:
    """Viewing a collapsed stage's row, the breadcrumbs say the stage (all its groups are
    shown); framing any of its groups (Find, a second run following) frames that row."""
    from cnnvis_gl.layout.search import breadcrumbs, groups_frame, row_frame, shown_groups

    snap = basecnn_snapshot(cifar_dir)
    state = build_state(snap, replace(OPTIONS, collapsed=frozenset({"features"})))
    scene = state.scene
    names = [g.name for g in snap.graph.groups]
    k = [r.name for r in scene.rows].index("features")
    view = row_frame(scene, k)
    shown = shown_groups(scene, names, view)
    assert shown == ["conv1", "conv2", "conv3", "conv4"]
    units = {g.name: list(g.units) for g in snap.graph.groups}
    assert [c.label for c in breadcrumbs("VGGLike", units, shown)] == ["VGGLike", "features"]
    assert groups_frame(scene, names, ["conv2"]) == view


def test_a_series_stage_in_the_breadcrumbs_and_find() -> None:
    """A stage no module names (``inc4`` = ``inc4a`` … ``inc4c``) still has its breadcrumb,
    between the model and the group, and the Find box frames it as a module."""
    from cnnvis_gl.layout.hierarchy import stage_groups
    from cnnvis_gl.layout.search import breadcrumbs, search

    snap = tiny(["stem", "inc3a", "inc3b", "inc4a", "inc4b", "inc4c", "head"], {}, [2] * 7)
    tree = stage_groups(snap.graph)
    assert tree == {"inc3": ["g1", "g2"], "inc4": ["g3", "g4", "g5"]}
    units = {g.name: list(g.units) for g in snap.graph.groups}
    assert [c.label for c in breadcrumbs("net", units, ["g4"])] == ["net", "g4 (inc4b)"]
    crumbs = breadcrumbs("net", units, ["g4"], tree)
    assert [(c.label, c.groups) for c in crumbs] == [
        ("net", tuple(units)), ("inc4", ("g3", "g4", "g5")), ("g4 (inc4b)", ("g4",))
    ]  # fmt: skip
    both = breadcrumbs("net", units, ["g3", "g5"], tree)
    assert [c.label for c in both] == ["net", "inc4"]
    scene = build_state(snap, OPTIONS).scene
    assert not any(h.kind == "module" for h in search(scene, "inc4", (), units))
    hit = search(scene, "inc4", (), units, stages=tree)[0]
    assert hit.kind == "module" and hit.groups == ("g3", "g4", "g5")


def test_collapse_every_stage_at_once(cifar_dir: Path) -> None:
    """``set_collapsed_stages``: BaseCNN's innermost stages (``features``, ``classifier``) as two
    rows, then none (the scene of every group again); an unknown name is refused."""
    snap = basecnn_snapshot(cifar_dir)
    state = build_state(snap, OPTIONS)
    before = state.scene
    scene, changed = set_collapsed_stages(state, frozenset(innermost_stages(snap.graph)))
    assert [r.name for r in scene.rows if r.kind == ROW_STAGE] == ["features", "classifier"]
    assert len([r for r in scene.rows if r.kind != ROW_BETWEEN]) == 2 and changed.structure
    same, unchanged = set_collapsed_stages(state, frozenset({"features", "classifier"}))
    assert same is scene and not unchanged.structure
    back, _ = set_collapsed_stages(state, frozenset())
    assert scenes_equal(replace(back, stats={}), replace(before, stats={}))
    with pytest.raises(KeyError, match="no stage 'nope'"):
        set_collapsed_stages(state, frozenset({"nope"}))


def test_stages_of_a_synthetic_resnet152_chain() -> None:
    """The benchmarks' big synthetic network carries ResNet-152's module paths: its stages are
    ``layer1`` … and their blocks; collapsing every block leaves one row per block."""
    from cnnvis_gl.run.synthetic import huge_channels, huge_paths, synthetic_snapshot

    snap = synthetic_snapshot(huge_channels(20, 2000), 10, paths=huge_paths(20))
    found = stages(snap.graph)
    assert found["layer1"] == tuple(range(1, 11)) and found["layer1.0"] == (1, 2, 3, 4)
    assert innermost_stages(snap.graph) == ["layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2"]
    rows = row_specs(snap, frozenset(), frozenset(innermost_stages(snap.graph)))
    assert [r.name for r in rows] == ["conv1", "layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2"]
    assert [g.name for g in snap.graph.groups][:3] == ["conv1", "conv2", "conv3"]  # group names as before


def test_rows_hidden_by_a_collapse_come_back_as_they_were(cifar_dir: Path, monkeypatch) -> None:
    """Collapsing a stage keeps its other rows' clusters aside: expanding it again brings them
    back without clustering (ids and members as before); a new clustering setting of a hidden
    group is not overridden by them."""
    snap = basecnn_snapshot(cifar_dir)
    state = build_state(snap, OPTIONS)
    conv2 = {c: m.copy() for c, m in state.members["conv2"].items()}
    set_collapsed(state, "features", True)
    assert "conv2" in state.hidden and "conv2" not in state.members
    with monkeypatch.context() as m:  # nothing clustered: every row comes back
        m.setattr(state, "cluster_row", lambda *a, **k: pytest.fail("a row was clustered again"))
        set_collapsed(state, "features", False)
    assert state.members["conv2"].keys() == conv2.keys()
    assert all(np.array_equal(state.members["conv2"][c], conv2[c]) for c in conv2)
    from cnnvis_gl.layout.edit import set_clustering

    set_collapsed(state, "features", True)
    set_clustering(state, "conv2", "kmeans", 2)  # conv2 is hidden: its setting changes
    set_collapsed(state, "features", False)
    assert len(state.members["conv2"]) == 2
