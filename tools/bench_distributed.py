"""Benchmark: ``analyze`` on 1 vs several ranks of torch.distributed (issue: scale out).

Each world size runs under ``torchrun`` (Gloo on the CPU, each rank with cores / ranks threads;
NCCL with one GPU per rank where CUDA works).  Rank 0 reports the probe pass (each rank its
shard), the merge (:func:`cnnvis_gl.stats.distributed.merge_ranks`) and the total, and the
table adds the merge's share and the speed-up over one rank measured in the same run.

    python tools/bench_distributed.py [--model resnet20] [--images 2000] [--ranks 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(a: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from cnnvis_gl.api import image_batches
    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model
    from cnnvis_gl.stats.distributed import (
        init_from_env,
        merge_ranks,
        rank_device,
        rank_world,
        shard_of,
        sync_model,
    )
    from cnnvis_gl.stats.probe import Probe

    init_from_env()
    rank, world = rank_world()
    dev = rank_device()
    data = open_data(a.data, "test").subset(a.images)
    torch.manual_seed(0)
    model = build_model(a.model, num_classes=len(data.classes)).to(dev)
    probe = Probe(model, tuple(data.image_shape))
    sync_model(model)
    mine = shard_of(len(data), rank, world) if world > 1 else None
    # warm-up: one small batch (allocator, kernels)
    probe.collect(image_batches(data.subset(a.batch_size), a.batch_size, dev), 10, progress=False)

    def barrier() -> None:
        if world > 1:
            dist.barrier()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    barrier()
    t0 = time.perf_counter()
    acc = probe.collect(
        image_batches(data, a.batch_size, dev, mine), len(data.classes), progress=False
    )
    barrier()
    t1 = time.perf_counter()
    merge_ranks(acc)
    barrier()
    t2 = time.perf_counter()
    if rank == 0:
        acc.finalize(probe.graph)
    t3 = time.perf_counter()
    n = int(acc.start[-1])
    # what the merge moves per rank: sums (f64), counts (i64), maxima (f32), top-k keys+locs
    k = acc.k
    merged = n * (2 * len(data.classes) + 2) * 8 + n * 2 * 8 + n * 4 + world * n * k * 16
    merged = merged if world > 1 else 0  # (one rank: nothing to merge)
    if rank == 0:
        row = {
            "ranks": world,
            "device": str(dev.type),
            "probe": t1 - t0,
            "merge": t2 - t1,
            "finalize": t3 - t2,
            "neurons": n,
            "merge_bytes": merged,
            "images_kept": len(acc.images),
        }
        print("RESULT " + json.dumps(row), flush=True)
    if world > 1:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--ranks", default=None, help="world sizes, e.g. 1,2 (default 1,2 or 1..GPUs)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    import torch

    gpus = torch.cuda.device_count()
    sizes = [int(s) for s in a.ranks.split(",")] if a.ranks else (
        sorted({1, 2, gpus} - {0}) if gpus > 1 else [1, 2]
    )
    cores = os.cpu_count() or 1
    rows = []
    for w in sizes:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // w))}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(w)]
        cmd += ["--master-port", str(port)]
        cmd += [__file__, "--worker", "--model", a.model, "--data", a.data]
        cmd += ["--images", str(a.images), "--batch-size", str(a.batch_size)]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
        if res.returncode != 0 or line is None:
            print(res.stdout[-2000:], res.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"{w} rank(s) failed")
        rows.append({**json.loads(line[7:]), "wall": wall})
    base = rows[0]["probe"] + rows[0]["merge"]
    print(
        f"\nanalyze {a.model} on {a.images} CIFAR-10 images, batch {a.batch_size}, "
        f"{rows[0]['neurons']} neurons, {cores} cores"
    )
    print(f"{'ranks':>5} {'device':>6} {'probe s':>8} {'merge s':>8} {'merge %':>8} "
          f"{'merged KiB':>10} {'top-k imgs':>10} {'speed-up':>8} {'process s':>9}")
    for r in rows:
        total = r["probe"] + r["merge"]
        print(
            f"{r['ranks']:>5} {r['device']:>6} {r['probe']:>8.2f} {r['merge']:>8.3f} "
            f"{100 * r['merge'] / total:>7.1f}% {r['merge_bytes'] / 1024:>10.0f} "
            f"{r['images_kept']:>10} "
            f"{base / total:>7.2f}x {r['wall']:>9.1f}"
        )
    print(
        "(merged KiB: statistics each rank sends, all-gathered top-k lists included, without the\n"
        " top-k images' pixels gathered to rank 0; speed-up: probe + merge of 1 rank over N "
        "ranks', same run;\n process s: torchrun start to end, imports and data loading included)"
    )


if __name__ == "__main__":
    main()
