"""Statistics and recording on several real processes (torch.distributed, Gloo on the CPU).

Each test starts two ranks — with ``torchrun`` as a user would, or as two plain processes where
a rank must be seen to die without a supervisor killing the other — on real CIFAR-10 images.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.models import build_model
from cnnvis_gl.run.recorder import read_scalars

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("dist_worker.py")
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-port", str(_free_port())]
    return subprocess.run(
        [*cmd, *args], env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _two_ranks(*args: str, timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """The two ranks as plain processes (no torchrun agent to stop the survivor)."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _assert_same(one, two, *, rtol=1e-5, atol=1e-5):
    assert sorted(one.keys()) == sorted(two.keys())
    for key in one.keys():
        a, b = np.asarray(one[key]), np.asarray(two[key])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)
    for key in ("n_images", "k"):
        assert one.meta[key] == two.meta[key]
    for key in ("probe_loss", "probe_error"):
        assert one.meta[key] == pytest.approx(two.meta[key], rel=1e-6)
    for unit, m in one.meta["units"].items():
        other = two.meta["units"][unit]
        assert other["dead_fraction"] == m["dead_fraction"]
        assert other["act_mean"] == pytest.approx(m["act_mean"], rel=1e-5, abs=1e-7)
        assert other["act_std"] == pytest.approx(m["act_std"], rel=1e-5)


def test_torchrun_analyze_equals_one_process(cifar_dir, tmp_path):
    torch.manual_seed(1)
    weights = tmp_path / "w.pt"
    torch.save(build_model("basecnn-x0.25").state_dict(), weights)
    common = ["basecnn-x0.25", "--weights", str(weights), "--data", f"cifar10:{cifar_dir}"]
    # 101 images: uneven shards (51 + 50)
    common += ["--limit", "101", "-k", "5", "--batch-size", "16", "-q"]
    two = _torchrun(str(BIN / "cnnvis"), "analyze", *common, "-o", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1 and "on 2 ranks" in two.stdout  # rank 0 alone
    one = subprocess.run(
        [str(BIN / "cnnvis"), "analyze", *common, "-o", str(tmp_path / "one")],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr
    snap_two = cv.open_run(tmp_path / "two").latest()
    snap_one = cv.open_run(tmp_path / "one").latest()
    assert snap_two.meta["ranks"] == 2 and snap_two.meta["n_images"] == 101
    # the same top-k images (ids, pixels, crops) and statistics to float tolerance
    _assert_same(snap_one, snap_two)
    assert len(snap_two["images"]) > 5


def test_dataloader_analysis_on_two_ranks_equals_one_process(cifar_dir, tmp_path):
    sys.path.insert(0, str(WORKER.parent))
    import dist_worker

    res = _torchrun(str(WORKER), "loader", str(cifar_dir), str(tmp_path / "two"), "90")
    assert res.returncode == 0, res.stderr[-3000:]
    two = cv.open_run(tmp_path / "two").latest()
    assert two.meta["n_images"] == 90 and two.meta["ranks"] == 2
    # one process, rank 0's weights (broadcast to rank 1, which had built other random ones)
    model = build_model("basecnn-x0.25")
    model.load_state_dict(torch.load(tmp_path / "two" / "weights.pt", weights_only=True))
    loader = dist_worker.loader(str(cifar_dir), 90)
    one = cv.analyze(model, loader, classes=dist_worker.CLASSES, k=4, progress=False)
    _assert_same(one, two)


def test_recorder_under_ddp_equals_one_process(cifar_dir, tmp_path):
    run = tmp_path / "run"
    res = _torchrun(str(WORKER), "record", str(cifar_dir), str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    rec = cv.open_run(run)
    assert rec.steps() == [0, 2, 4]
    # named after the module inside DistributedDataParallel, not the wrapper
    assert rec.manifest["model"] == type(build_model("basecnn-x0.25")).__name__
    # scalars written once (rank 0's), not once per rank
    assert [r["step"] for r in read_scalars(run)] == list(range(5))
    last = rec.latest()
    assert last.meta["n_images"] == 101 and all(v > 0 for v in last.meta["grad_norms"].values())
    # the last recording equals one process analysing the final weights on the probe set
    model = build_model("basecnn-x0.25")
    model.load_state_dict(torch.load(run / "final.pt", weights_only=True))
    probe = open_data(f"cifar10:{cifar_dir}", "test").subset(101)
    direct = cv.analyze(model, probe, k=4, batch_size=16, progress=False)
    _assert_same(direct, last)


def test_a_dead_rank_is_a_clear_error_and_loses_nothing(cifar_dir, tmp_path):
    run = tmp_path / "run"
    rank0, rank1 = _two_ranks("die1", str(cifar_dir), str(run))
    assert rank1.returncode == 3
    assert rank0.returncode != 0
    assert "across ranks failed (did another rank stop?)" in rank0.stderr, rank0.stderr[-3000:]
    snaps = cv.open_run(run)
    assert snaps.steps() == [0]
    first = snaps.snapshot(0)
    assert first.meta["n_images"] == 101
    assert all(np.asarray(first[key]).size >= 0 for key in first.keys())  # every array loads


def test_writer_killed_mid_snapshot_keeps_the_saved_ones(cifar_dir, tmp_path):
    run = tmp_path / "run"
    rank0, rank1 = _two_ranks("die0", str(cifar_dir), str(run))
    assert rank0.returncode == -9  # SIGKILL half way through the step-2 snapshot
    assert rank1.returncode != 0
    assert any(p.name.startswith(".tmp-step_000000002") for p in (run / "snapshots").iterdir())
    snaps = cv.open_run(run)
    assert snaps.steps() == [0]
    first = snaps.snapshot(0)
    for key in first.keys():
        np.asarray(first[key]).sum()  # every array of the saved snapshot reads
    # a new recorder on the run resumes after the saved step
    model = build_model("basecnn-x0.25")
    probe = open_data(f"cifar10:{cifar_dir}", "test").subset(20)
    with cv.Recorder(model, probe, run, every=2, k=4) as again:
        assert again.start_step >= 1


FSDP = """
import os, sys, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.errors import CnnvisError
from cnnvis_gl.models import build_model
dist.init_process_group("gloo", rank=0, world_size=1, init_method="tcp://127.0.0.1:" + sys.argv[2])
model = build_model("basecnn-x0.25")
fully_shard(model)
probe = open_data("cifar10:" + sys.argv[1], "test").subset(8)
for attempt in (lambda: cv.Recorder(model, probe, sys.argv[3]), lambda: cv.analyze(model, probe)):
    try:
        attempt()
    except CnnvisError as e:
        print("REFUSED", e)
"""


def test_sharded_weights_are_refused_with_a_clear_error(cifar_dir, tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", FSDP, str(cifar_dir), str(_free_port()), str(tmp_path / "run")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    refused = "REFUSED the model's weights are sharded over ranks (FSDP): cnnvis needs whole weights"
    assert res.stdout.count(refused) == 2, res.stdout + res.stderr  # Recorder and analyze
    assert not (tmp_path / "run").exists()  # nothing written
