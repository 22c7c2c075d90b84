"""Following a run directory written by another process; crash safety under SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings

import pytest

import cnnvis_gl as cv
from cnnvis_gl.run import list_steps, open_snapshot
from cnnvis_gl.run.follow import Follower

TRAINER = """
import sys, torch, torch.nn.functional as F
import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from torch import nn
data = open_data(sys.argv[1], "test")
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Conv2d(8, 16, 3, padding=1),
                      nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
with cv.Recorder(model, data.subset(40), sys.argv[2], every=1, k=3, batch_size=40) as rec:
    batches = list(data.subset(256).batches(16))
    print("ready", rec.start_step, flush=True)
    for step in range(rec.start_step, rec.start_step + int(sys.argv[3])):
        x, y, _ = batches[step % len(batches)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        rec.step(step, train_loss=loss.item())
"""


def _start(script, cifar_dir, run_dir, steps):
    return subprocess.Popen(
        [sys.executable, str(script), f"cifar10:{cifar_dir}", str(run_dir), str(steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all_listed_snapshots_load(run_dir):
    for step in list_steps(run_dir):
        open_snapshot(run_dir, step).load_all()  # raises on any damaged file
    return list_steps(run_dir)


@pytest.mark.slow
def test_sigkill_never_leaves_a_listed_snapshot_that_cannot_load(cifar_dir, tmp_path):
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    run_dir = tmp_path / "run"
    rng = random.Random(0)
    kills = 0
    starts = []
    follower = Follower(run_dir, interval=0.05).start()
    try:
        while kills < 20:
            proc = _start(script, cifar_dir, run_dir, 10_000)
            line = proc.stdout.readline()  # wait until it trains (torch import takes a while)
            assert line.startswith("ready"), proc.stderr.read()
            starts.append(int(line.split()[1]))
            time.sleep(rng.uniform(0.2, 2.0))  # kill at a random moment: often mid-write
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            _all_listed_snapshots_load(run_dir)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                follower.check_now()
    finally:
        follower.stop()
    # each restart resumed the run after the last step the killed trainer got to record
    assert starts[0] == 0 and starts == sorted(starts) and starts[-1] > 20
    assert len(list_steps(run_dir)) > 20
    assert follower.skipped == {}, follower.skipped


def test_follower_picks_up_a_snapshot_written_by_another_process(cifar_dir, tmp_path):
    run_dir = tmp_path / "run"
    with Follower(run_dir, interval=0.05) as f:
        assert f.poll() == []  # no run yet: waits quietly
        cmd = [
            sys.executable,
            "-m",
            "cnnvis_gl.cli",
            "analyze",
            "basecnn-x0.25",
            "--data",
            f"cifar10:{cifar_dir}",
            "--limit",
            "32",
            "-q",
            "-o",
            str(run_dir),
        ]
        assert subprocess.run(cmd, capture_output=True).returncode == 0
        deadline = time.time() + 30
        got = []
        while not got and time.time() < deadline:
            got = f.poll()
            time.sleep(0.05)
    assert [s.step for s, _ in got] == [0]
    assert got[0][0].n_images == 32


def test_corrupt_snapshot_is_skipped_with_a_warning(cifar_dir, tmp_path):
    snap = cv.analyze(
        cv.build_model("basecnn-x0.25"), f"cifar10:{cifar_dir}", limit=16, progress=False
    )
    snap.save(tmp_path, 1)
    bad = snap.save(tmp_path, 2)
    target = max(bad.glob("*.npy"), key=lambda p: p.stat().st_size)
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    f = Follower(tmp_path, prepare=lambda s: s.step * 10)
    with pytest.warns(UserWarning, match="skipping snapshot 2"):
        assert f.check_now() == 1
    assert [(s.step, p) for s, p in f.poll()] == [(1, 10)]
    assert 2 in f.skipped and target.name in f.skipped[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f.check_now() == 0  # not retried (and not warned again) until the folder changes
    snap.save(tmp_path, 2)  # rewritten whole
    assert f.check_now() == 1 and 2 not in f.skipped


def test_following_many_snapshots_holds_no_file_descriptors(cifar_dir, tmp_path):
    snap = cv.analyze(
        cv.build_model("basecnn-x0.25"), f"cifar10:{cifar_dir}", limit=600, progress=False
    )
    assert snap["images"].nbytes >= (1 << 20)  # large enough to be memory-mapped when read
    for step in range(8):
        snap.save(tmp_path, step)
    before = len(os.listdir("/proc/self/fd"))
    f = Follower(tmp_path)
    assert f.check_now() == 8
    got = f.poll()
    assert len(got) == 8 and len(os.listdir("/proc/self/fd")) <= before + 1
    assert got[-1][0]["images"].shape[0] == snap["images"].shape[0]  # still readable, lazily
