"""Benchmark: recording overhead.  Blocks of ``--every`` training steps with and without a
Recorder (one snapshot per block on a ``--probe``-image probe set), alternating in the same run;
prints the median block times and their ratio (target ≤ 1.05), the time the loop waited per
recording, and the time from a recording starting to its snapshot being readable on disk.

    python tools/bench_recorder.py [--model basecnn-x0.25] [--every 200] [--repeat 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def block(model, opt, batches, steps, dev, rec=None, first=0) -> float:
    """Time ``steps`` training steps; with ``rec``, its step() is called as in a real loop."""
    sync(dev)
    t0 = time.perf_counter()
    for step in range(first, first + steps):
        x, y = batches[step % len(batches)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if rec is not None:
            rec.step(step, train_loss=loss.item())
        else:
            loss.item()  # the same host sync a real loop does for logging
    sync(dev)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="basecnn-x0.25")
    ap.add_argument("--repeat", type=int, default=3, help="blocks per arm (default 3)")
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
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    block(model, opt, batches, 5, dev)  # warm-up
    # Blocks of `every` steps, alternating without / with the recorder (which records at the
    # first step of its block): machine noise hits both arms alike; medians are compared.
    plain, recorded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        rec = cv.Recorder(model, test.subset(a.probe), tmp, every=a.every, model_name=a.model)
        for r in range(a.repeat):
            plain.append(block(model, opt, batches, a.every, dev))
            recorded.append(block(model, opt, batches, a.every, dev, rec, first=r * a.every))
        t0 = time.perf_counter()
        rec.close()
        drain = time.perf_counter() - t0
        n_snap = len(list_steps(tmp))
        # latency: a recording started -> its snapshot listed by a reader
        rec2 = cv.Recorder(model, test.subset(a.probe), tmp, every=a.every, model_name=a.model)
        t0 = time.perf_counter()
        rec2.record(10**6)
        while 10**6 not in list_steps(tmp):
            time.sleep(0.001)
        latency = time.perf_counter() - t0
        rec2.close()
    med_p, med_r = statistics.median(plain), statistics.median(recorded)
    print(
        f"\nbench_recorder: {a.model}, blocks of {a.every} steps of batch {a.batch_size}, {a.repeat} blocks "
        f"per arm (alternating), one snapshot per recorded block on {a.probe} probe images, device {dev}"
    )
    print(f"{'arm':<26}{'median s':>10}{'min s':>10}{'max s':>10}")
    print(f"{'without recorder':<26}{med_p:>10.2f}{min(plain):>10.2f}{max(plain):>10.2f}")
    print(
        f"{'with recorder':<26}{med_r:>10.2f}{min(recorded):>10.2f}{max(recorded):>10.2f}   ({n_snap} snapshots)"
    )
    print(f"{'ratio of medians':<26}{med_r / med_p:>10.3f}   (target <= 1.05)")
    waits = rec.record_seconds
    print(
        f"loop waited per recording: median {statistics.median(waits):.2f} s "
        f"= {statistics.median(waits) / med_p:.1%} of a plain block; writer drain at close {drain:.2f} s"
    )
    print(f"recording start -> snapshot on disk: {latency:.2f} s")


if __name__ == "__main__":
    main()
