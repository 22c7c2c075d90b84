"""Cluster lineage over snapshots: hand-computed flows and events, then a real recorded run."""

from __future__ import annotations

import numpy as np
import pytest

from cnnvis_gl.layout.lineage import cluster_lineage, group_clusters, lineage_of

R = lambda a, b: np.arange(a, b)  # noqa: E731


def test_split_merge_new_gone_by_hand():
    lin = lineage_of(
        "conv4",
        [0, 100, 200],
        [
            [R(0, 10), R(10, 20)],  # A, B
            [R(0, 10), R(10, 17), R(17, 20)],  # A; B splits: B keeps 7, C takes 3
            [R(0, 17), R(17, 20)],  # A and B merge into A; C stays
        ],
    )
    A, B = lin.ids[0]
    assert lin.ids[1][:2] == [A, B] and lin.ids[1][2] not in (A, B)
    C = lin.ids[1][2]
    assert lin.ids[2] == [A, C]
    assert [lin.names[c] for c in (A, B, C)] == ["A", "B", "C"]
    np.testing.assert_array_equal(lin.flows[0], [[10, 0, 0], [0, 7, 3]])
    np.testing.assert_array_equal(lin.flows[1], [[10, 0], [7, 0], [0, 3]])
    assert lin.events(0) == [("split", [B], [B, C]), ("new", [], [C])]
    assert lin.events(1) == [("merge", [A, B], [A]), ("gone", [B], [])]
    text = lin.text()
    assert "step 100: 3 clusters  A(10) B(7) C(3)" in text
    assert "→ B splits into B (7), C (3)" in text
    assert "→ A (10), B (7) merge into A" in text
    assert "→ B dissolves" in text


def test_a_stray_neuron_is_not_a_split():
    # one neuron of 20 wandering off is a flow of 1: no event
    lin = lineage_of("g", [0, 1], [[R(0, 20), R(20, 40)], [R(0, 19), R(19, 40)]])
    assert lin.events(0) == []
    np.testing.assert_array_equal(lin.flows[0], [[19, 1], [0, 20]])


def test_lineage_of_a_recorded_run(recorded_run):
    from cnnvis_gl import open_run

    run = open_run(recorded_run)
    group = run.graph.groups[-2].name
    seen = []
    lin = cluster_lineage(run, group, progress=lambda d, n: seen.append((d, n)))
    steps = run.steps()
    assert lin.steps == steps and seen[-1] == (len(steps), len(steps))
    channels = run.graph.unit(run.graph.groups[-2].unit).channels
    for t, step in enumerate(steps):
        # the viewer's clustering of that snapshot, every neuron in exactly one cluster
        assert sorted(np.concatenate(lin.members[t]).tolist()) == list(range(channels))
        viewer = group_clusters(run.snapshot(step), group)
        assert [m.tolist() for m in lin.members[t]] == [m.tolist() for m in viewer]
    for t, f in enumerate(lin.flows):  # flows conserve the neurons
        assert f.sum(1).tolist() == lin.sizes(t) and f.sum(0).tolist() == lin.sizes(t + 1)
    with pytest.raises(KeyError, match="no layer group 'nope'"):
        cluster_lineage(run, "nope")


def test_cnnvis_info_lineage_prints_it(recorded_run, capsys):
    from cnnvis_gl import open_run
    from cnnvis_gl.cli import main

    run = open_run(recorded_run)
    group = run.graph.groups[-3].name
    assert main(["info", str(recorded_run), "--lineage", group]) == 0
    out = capsys.readouterr().out
    assert out.strip() == cluster_lineage(run, group).text()
    assert out.startswith(f"lineage of {group} over 4 snapshot(s)")
    assert [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("step ")] == [
        "step 0", "step 4", "step 8", "step 12"
    ]  # fmt: skip
    # bad groups and a model instead of a run: one line each
    assert main(["info", str(recorded_run), "--lineage", "conv9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnvis info: error: --lineage 'conv9': no such layer group (groups: ")
    assert main(["info", "basecnn", "--lineage", "conv4"]) == 2
    assert "--lineage needs a run directory" in capsys.readouterr().err
