"""Where ``cnnvis_gl.analyze`` spends its time on one torchvision model: phases and a profile.

    python tools/profile_analyze.py resnet50 --device cuda --images 1000 --batch-size 100

Prints the phases (capture, statistics pass, finalize, weights) timed with the device
synchronised, then the functions with the largest cumulative time under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from pathlib import Path

import torch

from cnnvis_gl.api import image_batches, make_snapshot
from cnnvis_gl.data import open_data
from cnnvis_gl.data.inputs import fit_to_model
from cnnvis_gl.models.torchvision import build, natural
from cnnvis_gl.stats import Probe

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--top", type=int, default=30, help="rows of the profile")
    a = ap.parse_args()
    base = os.environ.get("CNNVIS_DATA") or str(ROOT.parent / "shared" / "data")
    nat = natural(a.model)
    size = nat["input_size"]
    data = open_data(f"cifar10:{Path(base) / 'cifar10'}", "test").subset(a.images)
    data = fit_to_model(data, (size, size), (tuple(nat["mean"]), tuple(nat["std"])))
    model = build(a.model, len(data.classes)).to(a.device).eval()
    cuda = a.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.no_grad():  # warm-up: kernels chosen, allocator grown
        for x, _, _ in data.batches(a.batch_size, device=a.device):
            model(x)
    times: dict[str, float] = {}

    def phase(name, fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        times[name] = time.perf_counter() - t
        return out

    prof = cProfile.Profile()
    prof.enable()
    probe = phase("capture (Probe)", lambda: Probe(model, (3, size, size)))
    acc = phase(
        "statistics pass",
        lambda: probe.collect(
            image_batches(data, a.batch_size, a.device), 10, progress=False
        ),
    )
    arrays, meta = phase("finalize", lambda: acc.finalize(probe.graph))
    phase("weights + snapshot", lambda: make_snapshot(probe, arrays, meta, data.classes, {}))
    prof.disable()
    print(f"{a.model} at {size} px, {a.images} images, batch {a.batch_size}, {a.device}")
    for name, t in times.items():
        print(f"  {name:<22}{t:8.3f} s")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(a.top)


if __name__ == "__main__":
    main()
