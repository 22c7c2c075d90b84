"""Benchmark: ablating every cluster of BaseCNN's conv4 on 1,000 CIFAR-10 test images against one
bare forward pass over the same images, measured in the same run (issue: seeing to knowing;
target ≤ 1.5 forward passes per ablated cluster).

:func:`cnnvis_gl.stats.ablation.ablate` runs each batch once unablated (the baseline every set is
compared with) and once per channel set, so the cost per cluster is one forward pass.

    python tools/bench_ablation.py [--model basecnn] [--images 1000] [--group conv4] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cnnvis_gl as cv  # noqa: E402
from cnnvis_gl.cli import _each_cluster  # noqa: E402
from cnnvis_gl.data import open_data  # noqa: E402
from cnnvis_gl.layout import build_scene  # noqa: E402
from cnnvis_gl.models import build_model  # noqa: E402
from cnnvis_gl.stats.ablation import ablate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="basecnn")
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--group", default="conv4")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.manual_seed(0)
    data = open_data(a.data, "test").subset(a.images)
    model = build_model(a.model, num_classes=len(data.classes)).to(a.device).eval()
    snap = cv.analyze(model, data, batch_size=a.batch_size, progress=False)
    sets, labels = _each_cluster(build_scene(snap), a.group)
    batches = [(x.to(a.device), y.to(a.device), i) for x, y, i in data.batches(a.batch_size)]

    def sync() -> None:
        if torch.device(a.device).type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():  # warm-up
        model(batches[0][0])
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        for x, _, _ in batches:
            model(x)
    sync()
    forward = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = ablate(model, batches, sets, len(data.classes))
    sync()
    total = time.perf_counter() - t0
    per = (total - forward) / len(sets)  # the baseline pass is one forward
    print(f"\nablate each of {len(sets)} clusters of {a.model} {a.group} on {a.images} images, "
          f"batch {a.batch_size}, {a.device}")
    print(f"{'what':<36} {'seconds':>8} {'× forward':>10}")
    print(f"{'one bare forward pass':<36} {forward:>8.2f} {1.0:>10.2f}")
    print(f"{'ablate, all clusters + baseline':<36} {total:>8.2f} {total / forward:>10.2f}")
    print(f"{'per ablated cluster':<36} {per:>8.2f} {per / forward:>10.2f}   (target ≤ 1.5)")
    worst = max(range(len(sets)), key=lambda j: results[j].drop.max())
    print(f"largest class drop: {labels[worst]} {results[worst].drop.max():+.1%}")


if __name__ == "__main__":
    main()
