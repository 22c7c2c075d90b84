"""Benchmark of the DAG layout (``cnnvis_gl.layout``): time per stage, edits, quality figures.

Two inputs:

* ``basecnn``: a real snapshot of BaseCNN (random weights are fine) on real CIFAR-10;
* ``resnet50``: a synthetic ResNet-50-sized snapshot: every conv of ResNet-50 as one group
  (53 groups, 26,560 neurons), class means with a few prototype profiles per group plus noise,
  weights coupling the prototypes of consecutive groups plus noise.  No torch model needed.

Usage::

    .venv/bin/python tools/bench_layout.py [--cifar DIR] [--limit 500] [--classes 100]
        [--only basecnn|resnet50|huge] [--huge] [--moves 20]

Targets on the 2-core CPU machine: BaseCNN build <= 2 s, 26k neurons <= 30 s, a move <= 100 ms;
the synthetic 100k-neuron / 150-row network (``--huge``) <= 30 s.
Timings are wall-clock on a shared machine: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnnvis_gl.layout import (  # noqa: E402
    LayoutOptions,
    build_state,
    move_neuron,
    set_clustering,
    set_expanded,
    set_facet,
    set_threshold,
)
from cnnvis_gl.layout.scene import FACET_MATRIX  # noqa: E402
from cnnvis_gl.run.snapshot import Snapshot  # noqa: E402
from cnnvis_gl.run.synthetic import huge_channels, synthetic_snapshot  # noqa: E402


#: Output channels of ResNet-50's convolutions in forward order (downsample convs included).
def resnet50_channels() -> list[int]:
    ch = [64]
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            ch += [width, width, 4 * width]
            if b == 0:
                ch.append(4 * width)  # the shortcut projection
    return ch


def basecnn_snapshot(cifar: str, limit: int) -> Snapshot:
    import torch

    import cnnvis_gl
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    return cnnvis_gl.analyze(
        build_model("basecnn"), f"cifar10:{cifar}", limit=limit, progress=False
    )


def time_moves(state, n_moves: int, seed: int = 0) -> list[float]:
    """Move ``n_moves`` random neurons to another cluster of their row (or a new one)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_moves):
        sc = state.scene
        i = int(rng.integers(len(sc.neurons.unit)))
        unit = sc.units[sc.neurons.unit[i]]
        row = sc.clusters.row[sc.neurons.cluster[i]]
        others = [
            int(c)
            for c in sc.clusters.id[sc.clusters.row == row]
            if c != sc.clusters.id[sc.neurons.cluster[i]]
        ]
        to = int(rng.choice(others)) if others else None
        t = time.perf_counter()
        move_neuron(state, unit, int(sc.neurons.index[i]), to)
        out.append(time.perf_counter() - t)
    return out


def peak_mib(pid: int | str = "self") -> float:
    """A process's peak resident memory (``VmHWM``), MiB; nan where /proc is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def bench(name: str, snapshot: Snapshot, options: LayoutOptions, moves: int) -> dict[str, float]:
    from cnnvis_gl.layout import parallel

    t = time.perf_counter()
    state = build_state(snapshot, options)
    total = time.perf_counter() - t
    tm = dict(state.timings)
    st = state.scene.stats
    res = {"neurons": st["neurons"], "groups": len(snapshot.graph.groups), "build_s": total}
    res["peak_mib"] = peak_mib()  # this process (the snapshot, the scene, the state)
    pool = parallel._pool  # the worker processes, if the network was big enough for them
    res["worker_peak_mib"] = max((peak_mib(pid) for pid in (pool._processes if pool else {})), default=0.0)
    for k in ("class_order", "cluster", "pack", "order", "baselines", "row_order", "edges"):
        res[f"{k}_s"] = tm.get(k, 0.0)
    res["assemble_s"] = tm.get("compose", 0.0) - tm.get("edges", 0.0)
    mv = time_moves(state, moves)
    res["move_median_ms"] = 1000 * statistics.median(mv)
    res["move_max_ms"] = 1000 * max(mv)
    # Baseline in the same run: the same kind of moves, re-packing the two clusters from scratch.
    state.replace_options(incremental_min=0)
    rp = time_moves(state, moves, seed=1)
    state.replace_options(incremental_min=options.incremental_min)
    res["move_repack_median_ms"] = 1000 * statistics.median(rp)
    res["move_speedup_x"] = res["move_repack_median_ms"] / res["move_median_ms"]
    res["build_over_move_x"] = 1000 * total / res["move_median_ms"]
    t = time.perf_counter()
    set_threshold(state, 0.5)
    res["threshold_ms"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    set_facet(state, FACET_MATRIX)
    res["facet_ms"] = 1000 * (time.perf_counter() - t)
    g = snapshot.graph.groups[len(snapshot.graph.groups) // 2]
    t = time.perf_counter()
    set_clustering(state, g.name, k=4)
    res["set_k_ms"] = 1000 * (time.perf_counter() - t)
    multi = next((gr for gr in snapshot.graph.groups if len(gr.units) > 1), None)
    if multi is not None:
        t = time.perf_counter()
        set_expanded(state, multi.name)
        res["expand_ms"] = 1000 * (time.perf_counter() - t)
    for k in (
        "clusters",
        "columns",
        "density_mean",
        "density_area",
        "order_score",
        "order_score_greedy",
        "order_score_random",
        "edges",
        "bundles",
        "ink_bundled",
        "ink_direct",
        "crossings_bundled",
        "crossings_direct",
        "row_crossings_initial",
        "row_crossings_ordered",
    ):
        res[k] = st.get(k, float("nan"))
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent
    p.add_argument(
        "--cifar", default=os.environ.get("CNNVIS_CIFAR", str(here.parent / "shared/data/cifar10"))
    )
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--classes", type=int, default=100, help="classes of the synthetic snapshot")
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--only", choices=("basecnn", "resnet50", "huge"))
    p.add_argument(
        "--huge", action="store_true",
        help="also the synthetic 100k-neuron, 150-row network (laid out for a 1600x1000 view)",
    )  # fmt: skip
    a = p.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    if a.only in (None, "basecnn"):
        snap = basecnn_snapshot(a.cifar, a.limit)
        results["BaseCNN"] = bench("basecnn", snap, LayoutOptions(), a.moves)
        results["BaseCNN k=6"] = bench("basecnn", snap, LayoutOptions(k=6), a.moves)
    if a.only in (None, "resnet50"):
        snap = synthetic_snapshot(resnet50_channels(), a.classes)
        results["ResNet-50 synth"] = bench("resnet50", snap, LayoutOptions(), a.moves)
    if a.only == "huge" or a.huge:
        snap = synthetic_snapshot(huge_channels(), a.classes)
        results["100k/150 synth"] = bench("huge", snap, LayoutOptions(view_size=(1600, 1000)), a.moves)
    names = list(results)
    keys = list(next(iter(results.values())).keys())
    print(f"{'':24}" + "".join(f"{n:>18}" for n in names))
    for k in keys:
        vals = [results[n].get(k, float("nan")) for n in names]
        print(f"{k:24}" + "".join(f"{v:>18.4g}" for v in vals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
