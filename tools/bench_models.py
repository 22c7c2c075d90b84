"""Every torchvision CNN classifier through cnnvis_gl: capture, analyze vs a bare forward pass,
layout, peak memory.  One table.

    python tools/bench_models.py                      # all CNN builders, 100 CIFAR-10 images
    python tools/bench_models.py --images 1000 resnet50 densenet121 efficientnet_b0
    python tools/bench_models.py --device cuda --images 1000

Each architecture runs in a fresh subprocess (so peak memory is its own), at its natural input size
(224 px; Inception-v3 299; larger EfficientNets more), on the first N CIFAR-10 test images resized
lazily per batch, with ImageNet normalisation and random weights.  In that process, the bare
forward pass over the same batches (same batch size, same data pipeline) is timed first, then
``cnnvis_gl.analyze`` (statistics + weights), then the bare pass again (the baseline is the faster
of the two: the first also warms the kernels up), then the statistics pass alone of a prepared
probe ("stats s": what grows with the images; analyze minus it is the fixed cost of capturing the
graph, the weight matrices and writing out the summaries), then ``build_scene`` (clustering,
packing, ordering, bundling).  ratio = analyze / bare forward, stream = stats pass / bare forward;
the target at 224 px is ≤ 1.3.  On a fast GPU the bare pass over 1,000 images takes a fraction
of a second, so there the fixed cost dominates the ratio: measure with more images
(``--images 10000``) to see what an ImageNet-sized probe costs.  Peak memory is the process's
maximum resident set (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(name: str, images: int, device: str, batch: int, data_spec: str) -> dict:
    import torch

    import cnnvis_gl as cv
    from cnnvis_gl.api import image_batches
    from cnnvis_gl.data import open_data
    from cnnvis_gl.data.inputs import fit_to_model
    from cnnvis_gl.layout import LayoutOptions, build_scene
    from cnnvis_gl.model import build_graph
    from cnnvis_gl.models.torchvision import build, natural
    from cnnvis_gl.stats import Probe

    nat = natural(name)
    size = nat["input_size"]
    data = open_data(data_spec, "test").subset(images)
    data = fit_to_model(data, (size, size), (tuple(nat["mean"]), tuple(nat["std"])))
    torch.manual_seed(0)
    model = build(name, len(data.classes)).to(device).eval()
    t0 = time.perf_counter()
    graph = build_graph(model, (3, size, size))
    capture = time.perf_counter() - t0
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def bare_pass() -> float:
        sync()
        t = time.perf_counter()
        with torch.no_grad():
            for x, _, _ in data.batches(batch, device=device):
                model(x)
        sync()
        return time.perf_counter() - t

    before = bare_pass()  # also the warm-up (kernel selection, allocator)
    t0 = time.perf_counter()
    snap = cv.analyze(model, data, batch_size=batch, progress=False)
    sync()
    analyze = time.perf_counter() - t0
    bare = min(before, bare_pass())
    # the streaming part alone: the statistics pass of a prepared probe (no capture, no weights)
    probe = Probe(model, (3, size, size))
    sync()
    t0 = time.perf_counter()
    probe.collect(image_batches(data, batch, device), len(data.classes), progress=False)
    sync()
    stream = time.perf_counter() - t0
    t0 = time.perf_counter()
    scene = build_scene(snap, LayoutOptions())
    layout = time.perf_counter() - t0
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": name,
        "size": size,
        "capture": graph.capture,
        "groups": len(graph.groups),
        "units": len(graph.units),
        "neurons": graph.num_neurons,
        "capture_s": capture,
        "bare_s": bare,
        "analyze_s": analyze,
        "ratio": analyze / bare,
        "stream_s": stream,
        "stream_ratio": stream / bare,
        "layout_s": layout,
        "clusters": len(scene.clusters.size),
        "peak_mib": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("models", nargs="*", help="architectures (default: every CNN builder)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--data",
        default=None,
        help="dataset spec (default: CIFAR-10 from $CNNVIS_DATA or ../shared/data)",
    )
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per architecture")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    spec = a.data
    if spec is None:
        base = os.environ.get("CNNVIS_DATA") or str(ROOT.parent / "shared" / "data")
        spec = f"cifar10:{Path(base) / 'cifar10'}"
    if a.one:
        print("RESULT " + json.dumps(one(a.one, a.images, a.device, a.batch_size, spec)))
        return
    from cnnvis_gl.models.torchvision import architectures

    names = a.models or architectures()
    head = (
        f"{'model':<22}{'px':>4}{'capture':>9}{'groups':>7}{'neurons':>8}{'capt s':>7}"
        f"{'bare s':>8}{'analyze s':>10}{'ratio':>7}{'stats s':>8}{'stream':>7}{'layout s':>9}"
        f"{'peak MiB':>9}"
    )
    print(f"{a.images} CIFAR-10 images per model, batch {a.batch_size}, device {a.device}")
    print(head)
    print("-" * len(head))
    for name in names:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--images",
            str(a.images),
            "--device",
            a.device,
            "--batch-size",
            str(a.batch_size),
            "--data",
            spec,
        ]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            print(f"{name:<22} timed out after {a.timeout} s", flush=True)
            continue
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            err = (out.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name:<22} FAILED: {err[:150]}", flush=True)
            continue
        r = json.loads(line[7:])
        print(
            f"{r['model']:<22}{r['size']:>4}{r['capture']:>9}{r['groups']:>7}{r['neurons']:>8}"
            f"{r['capture_s']:>7.1f}{r['bare_s']:>8.2f}{r['analyze_s']:>10.2f}{r['ratio']:>7.2f}"
            f"{r['stream_s']:>8.2f}{r['stream_ratio']:>7.2f}{r['layout_s']:>9.1f}{r['peak_mib']:>9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
