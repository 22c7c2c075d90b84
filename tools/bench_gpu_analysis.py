"""Analysis algorithms on NumPy and, where CUDA works, CuPy: a timing table (best of a few runs).

Run by tools/device_check.sh on the device machine; here it prints the NumPy rows only.

    python tools/bench_gpu_analysis.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnvis_gl import xp as X  # noqa: E402
from cnnvis_gl.analysis import (  # noqa: E402
    cluster_neurons,
    cosine_similarity,
    find_biclusters,
    order_rows,
    pack_cluster,
    path_score,
    threshold_for_top,
)

CP = X.cupy_or_none()
BACKENDS: list[tuple[str, Any]] = [("numpy", np)] + ([("cupy", CP)] if CP is not None else [])
RNG = np.random.default_rng(0)


def best(f: Callable[[], Any], reps: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = f()
        if CP is not None:
            CP.cuda.Device().synchronize()
        times.append(time.perf_counter() - t)
    return min(times), result


def features(n: int, c: int = 10, k: int = 8) -> np.ndarray:
    centres = np.abs(RNG.normal(size=(k, c)))
    return centres[RNG.integers(0, k, n)] + 0.3 * np.abs(RNG.normal(size=(n, c)))


def main() -> None:
    rows: list[tuple[str, str, float, Any]] = []
    for n in (12, 16, 18):
        S = cosine_similarity(features(n))
        for name, mod in BACKENDS:
            t, o = best(lambda mod=mod, S=S: order_rows(mod.asarray(S), exact_max=18))
            rows.append((f"held-karp n={n}", name, t, round(path_score(S, o), 4)))
    for n in (512, 2048):
        S = cosine_similarity(features(n))
        for name, mod in BACKENDS:
            t, o = best(lambda mod=mod, S=S: order_rows(mod.asarray(S)), reps=1 if n > 1000 else 3)
            rows.append((f"hierarchical n={n}", name, t, round(path_score(S, o), 2)))
    for n in (1024, 4096):
        F = features(n)
        for name, mod in BACKENDS:
            t, labels = best(lambda mod=mod, F=F: cluster_neurons(mod.asarray(F)), reps=1)
            rows.append((f"kmeans auto-k n={n}", name, t, f"k={len(set(labels.tolist()))}"))
    for size in (128, 512, 1024):  # 1024²: 262k kept neuron edges between two wide layers
        W = RNG.normal(size=(size, size))
        thr = threshold_for_top(W)
        for name, mod in BACKENDS:
            t, b = best(lambda mod=mod, W=W, thr=thr: find_biclusters(mod.asarray(W), thr), reps=1)
            rows.append((f"biclusters {size}x{size}", name, t, f"{len(b)} found"))
    for n in (200, 512):
        F = np.maximum(RNG.normal(size=(n, 10)), 0) + 0.01
        t, p = best(lambda F=F: pack_cluster(F, F.max(1)))
        rows.append((f"pack n={n}", "numpy", t, f"density {p.density:.3f}"))
    print(f"{'stage':<28}{'backend':<8}{'ms':>10}   result")
    for stage, backend, t, result in rows:
        print(f"{stage:<28}{backend:<8}{t * 1000:>10.1f}   {result}")


if __name__ == "__main__":
    main()
