"""Benchmark: recording overhead.  The same training steps with and without a Recorder
(a snapshot every ``--every`` steps on a ``--probe``-image probe set), in the same run; prints
both wall times and their ratio (target ≤ 1.05), the time the loop waited per recording, and the
time from a recording starting to its snapshot being readable on disk.

    python tools/bench_recorder.py [--model basecnn-x0.25] [--steps 400] [--every 200] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cnnvis_gl as cv  # noqa: E402
from cnnvis_gl.data import open_data  # noqa: E402
from cnnvis_gl.models import build_model  # noqa: E402
from cnnvis_gl.run import list_steps  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def run(model, batches, steps, dev, rec=None) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    sync(dev)
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if rec is not None:
            rec.step(step, train_loss=loss.item())
        else:
            loss.item()  # the same host sync a real loop does for logging
    if rec is not None:
        rec.close()
    sync(dev)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="basecnn-x0.25")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--probe", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    root = os.environ.get("CNNVIS_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    dev = torch.device(a.device)
    test = open_data(f"cifar10:{root}/cifar10", "test")
    train_src = test.subset(4096)  # the training images' content does not matter for timing
    batches = [
        (x, y)
        for x, y, _ in train_src.batches(a.batch_size, shuffle=True, device=dev, drop_last=True)
    ]
    torch.manual_seed(0)
    model = build_model(a.model).to(dev)
    run(model, batches, 5, dev)  # warm-up
    base = run(model, batches, a.steps, dev)
    with tempfile.TemporaryDirectory() as tmp:
        rec = cv.Recorder(model, test.subset(a.probe), tmp, every=a.every, model_name=a.model)
        t_rec = run(model, batches, a.steps, dev, rec)
        n_snap = len(list_steps(tmp))
        # latency: a recording started → its snapshot listed by a reader
        rec2 = cv.Recorder(model, test.subset(a.probe), tmp, every=a.every, model_name=a.model)
        t0 = time.perf_counter()
        rec2.record(10**6)
        while 10**6 not in list_steps(tmp):
            time.sleep(0.001)
        latency = time.perf_counter() - t0
        rec2.close()
    base2 = run(model, batches, a.steps, dev)  # the baseline again, to show the noise
    print(
        f"\nbench_recorder: {a.model}, {a.steps} steps of batch {a.batch_size}, snapshot every {a.every} "
        f"steps on {a.probe} probe images, device {dev}"
    )
    print(f"{'run':<28}{'seconds':>10}")
    print(f"{'without recorder':<28}{base:>10.2f}")
    print(f"{'with recorder':<28}{t_rec:>10.2f}   ({n_snap} snapshots)")
    print(f"{'without recorder (again)':<28}{base2:>10.2f}")
    ratio = t_rec / min(base, base2)
    print(f"{'ratio with/without':<28}{ratio:>10.3f}   (target <= 1.05)")
    print(f"loop waited per recording: {', '.join(f'{s:.2f}' for s in rec.record_seconds)} s")
    print(f"recording start -> snapshot on disk: {latency:.2f} s")


if __name__ == "__main__":
    main()
