"""The Recorder: snapshots from a real training loop on real CIFAR-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.errors import SnapshotError
from cnnvis_gl.models import build_model
from cnnvis_gl.run.recorder import read_scalars


@pytest.fixture(scope="module")
def data(cifar_dir):
    return open_data(f"cifar10:{cifar_dir}", "train").subset(256), open_data(
        f"cifar10:{cifar_dir}", "test"
    ).subset(100)


def _train(model, rec, train, steps, start=0):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = list(train.batches(32, shuffle=True, seed=start))
    for step in range(start, start + steps):
        x, y, _ = batches[step % len(batches)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step(step, train_loss=loss.item())


def test_recorder_equals_analyze_and_resumes(data, tmp_path):
    train, probe = data
    torch.manual_seed(0)
    model = build_model("basecnn-x0.25")
    with cv.Recorder(model, probe, tmp_path, every=3, k=4) as rec:
        assert rec.start_step == 0
        _train(model, rec, train, 7)
    run = cv.open_run(tmp_path)
    assert run.steps() == [0, 3, 6]
    last = run.latest()
    assert set(last.meta["grad_norms"]) == {l.name for l in run.graph.layers if l.weighted}
    assert all(v > 0 for v in last.meta["grad_norms"].values())
    assert last.meta["scalars"]["train_loss"] > 0
    scal = read_scalars(tmp_path)
    assert [r["step"] for r in scal] == list(range(7))

    # resume: a new recorder on the same directory continues the step sequence
    with cv.Recorder(model, probe, tmp_path, every=3, k=4) as rec2:
        assert rec2.start_step == 7
        _train(model, rec2, train, 3, start=rec2.start_step)
    assert cv.open_run(tmp_path).steps() == [0, 3, 6, 9]
    assert [r["step"] for r in read_scalars(tmp_path)] == list(range(10))


def test_recorded_snapshot_equals_analyze(data, tmp_path):
    _, probe = data
    torch.manual_seed(3)
    model = build_model("resnet20")
    # put some gradient on the weights, as in training
    x, y, _ = next(probe.batches(16))
    F.cross_entropy(model(x), y).backward()
    rec = cv.Recorder(model, probe, tmp_path, every=100, k=5)
    rec.step(0, train_loss=1.0)
    rec.close()
    recorded = cv.open_run(tmp_path).snapshot(0)
    direct = cv.analyze(model, probe, k=5, progress=False)
    assert sorted(recorded.keys()) == sorted(direct.keys())
    for key in direct.keys():
        np.testing.assert_allclose(recorded[key], direct[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for u, m in direct.meta["units"].items():
        assert recorded.meta["units"][u]["act_mean"] == pytest.approx(m["act_mean"], rel=1e-6)


def test_torn_scalar_line_is_skipped(tmp_path):
    (tmp_path / "scalars.jsonl").write_text('{"step": 0, "loss": 1}\n{"step": 1, "lo')
    assert read_scalars(tmp_path) == [{"step": 0, "loss": 1}]


def test_recorder_refuses_another_models_run(data, tmp_path):
    _, probe = data
    cv.Recorder(build_model("basecnn-x0.25"), probe, tmp_path, every=10).close()
    with pytest.raises(SnapshotError, match="different model"):
        cv.Recorder(build_model("resnet20"), probe, tmp_path, every=10)


def test_a_snapshot_owns_its_weights_while_training_goes_on(data):
    """The Recorder's writer thread writes a snapshot while the training loop updates the weights
    in place: no array of a snapshot may share memory with a parameter, or the file's checksum
    and its bytes disagree (it happened: 'CRC-32 mismatch' on a fully connected layer's weights)."""
    _, probe = data
    model = build_model("basecnn-x0.25")
    snap = cv.analyze(model, probe.subset(16), k=3, progress=False)
    params = [p.detach().numpy() for p in model.parameters()]
    shared = [k for k in snap.keys() for p in params if np.shares_memory(np.asarray(snap[k]), p)]
    assert shared == []
