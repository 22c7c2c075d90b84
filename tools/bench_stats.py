"""Benchmark: ``analyze`` against a bare forward pass over the same images (issue: analysis pipeline).

The forward pass is the floor (every activation must be computed and read once).  Prints a
table with both times, their ratio and the peak memory of each phase.

    python tools/bench_stats.py [--model basecnn] [--limit 2000] [--device cpu] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cnnvis_gl as cv  # noqa: E402
from cnnvis_gl.data import open_data  # noqa: E402
from cnnvis_gl.models import build_model  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the resident set size every 5 ms while the block runs."""

    def __enter__(self) -> PeakRSS:
        self.base = rss_mib()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mib())


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def forward_only(model: torch.nn.Module, data, batch_size: int, dev: torch.device) -> None:
    model.eval()
    with torch.no_grad():
        for x, _y, _idx in data.batches(batch_size, device=dev):
            model(x)
    sync(dev)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="basecnn")
    ap.add_argument(
        "--data",
        default=None,
        help="data spec (default: cifar10 under $CNNVIS_DATA or ../shared/data)",
    )
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="alternating repetitions; the best time of each is kept",
    )
    a = ap.parse_args()
    spec = a.data
    if spec is None:
        root = os.environ.get("CNNVIS_DATA") or str(
            Path(__file__).resolve().parents[2] / "shared" / "data"
        )
        spec = f"cifar10:{root}/cifar10"
    dev = torch.device(a.device)
    data = open_data(spec, "test").subset(a.limit)
    torch.manual_seed(0)
    model = build_model(a.model).to(dev)
    forward_only(model, data.subset(min(256, a.limit)), a.batch_size, dev)  # warm-up
    phases = ("forward", "analyze", "analyze_no_class")
    times: dict[str, list[float]] = {p: [] for p in phases}
    peaks = dict.fromkeys(phases, 0.0)
    gpu_peak = dict.fromkeys(phases, 0.0)
    for _ in range(a.repeat):
        for name in phases:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                if name == "forward":
                    forward_only(model, data, a.batch_size, dev)
                else:  # (without the per-class top lists of the matrix drill-down)
                    class_k = 0 if name == "analyze_no_class" else 3
                    cv.analyze(model, data, batch_size=a.batch_size, class_k=class_k, progress=False)
                    sync(dev)
                times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks[name], mem.peak - mem.base)
            if dev.type == "cuda":
                gpu_peak[name] = max(gpu_peak[name], torch.cuda.max_memory_allocated() / 2**20)
    fwd, ana, plain = (min(times[p]) for p in phases)
    print(
        f"\nbench_stats: {a.model} on {len(data)} CIFAR-10 test images, batch {a.batch_size}, device {dev}, "
        f"torch threads {torch.get_num_threads()}, best of {a.repeat}"
    )
    print(f"{'phase':<22}{'seconds':>10}{'img/s':>10}{'peak RSS +MiB':>15}{'peak GPU MiB':>14}")
    shown = (("forward pass (floor)", "forward", fwd), ("analyze", "analyze", ana),
             ("  no per-class lists", "analyze_no_class", plain))  # fmt: skip
    for name, key, t in shown:
        print(
            f"{name:<22}{t:>10.2f}{len(data) / t:>10.0f}{peaks[key]:>15.0f}{gpu_peak[key]:>14.0f}"
        )
    print(f"{'ratio analyze/forward':<22}{ana / fwd:>10.2f}   (target <= 1.30)")
    print(f"{'  per-class lists cost':<22}{ana / plain:>10.2f}x analyze without them")
    print(
        f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
