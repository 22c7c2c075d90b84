"""Benchmark: the Lineage panel in the real viewer (headless llvmpipe or the GPU's EGL) on a real
recorded run (BaseCNN×¼, six snapshots of ``make_presentation_images.py``'s training run):
frame times while the mouse sweeps the Sankey, against the same viewer with the Training panel
in front (the baseline, same run), and the time to compute the lineage.  Issue target: ≤ 50 ms
frames on BaseCNN.

    python tools/bench_lineage.py [--data ../shared/data/cifar10] [--frames 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from make_presentation_images import record  # noqa: E402
from viewer_driver import drive, open_app, wait  # noqa: E402


def measure(run: Path, frames: int) -> dict:
    from imgui_bundle import imgui

    app = open_app(run)
    out: dict = {}

    def sweep(ctx, x0: float, x1: float, y: float) -> list[float]:
        app.state.frame_ms.clear()
        for k in range(frames):
            ctx.mouse_move_to_pos(imgui.ImVec2(x0 + (x1 - x0) * k / max(frames - 1, 1), y))
            ctx.yield_()
        return list(app.state.frame_ms)

    def test(ctx) -> None:
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending and not app.loaders.loading)
        ctx.yield_(5)
        out["baseline"] = sweep(ctx, 320, 900, 300)  # over the network view, Training in front
        app.actions.show_panel("Lineage")
        app.actions.show_lineage("conv4")
        t0 = time.perf_counter()
        ctx.yield_(2)
        wait(ctx, lambda: app.state.debug.lineage is not None and app.state.panels.lineage_bars)
        out["lineage_s"] = time.perf_counter() - t0
        ctx.yield_(5)
        bars = app.state.panels.lineage_bars
        xs = [b[2][0] for b in bars]
        ys = [(b[2][1] + b[2][3]) / 2 for b in bars]
        out["lineage"] = sweep(ctx, min(xs), max(xs), float(np.median(ys)))

    drive(app, test, (1600, 1000))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--frames", type=int, default=60)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        record(run, a.data)
        r = measure(run, a.frames)
    base, lin = np.asarray(r["baseline"][1:]), np.asarray(r["lineage"][1:])
    print(f"\nLineage panel, BaseCNN×¼ conv4 over 6 snapshots, 1600×1000 viewer, {a.frames} frames each")
    print(f"{'view':<34} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, v in (("Training panel in front (baseline)", base), ("Lineage panel, mouse on the Sankey", lin)):
        print(f"{name:<34} {np.median(v):>10.1f} {np.percentile(v, 90):>8.1f} {np.median(v) / np.median(base):>6.2f}")
    print(f"lineage computed (6 snapshots clustered, flows) in {r['lineage_s']:.2f} s")


if __name__ == "__main__":
    main()
