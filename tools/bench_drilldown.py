"""Benchmark: the matrix drill-down in the real viewer (headless llvmpipe or the GPU's EGL) on a
real BaseCNN run: frame times while the mouse sweeps the rows of a cluster's activation matrix
and clicks a cell every few frames (each click selects the neuron and shows its top images of
that class in the Neuron panel), against the same sweep without clicks (the baseline, same run).
Issue target: ≤ 50 ms frames on BaseCNN.

    python tools/bench_drilldown.py [--model basecnn] [--images 500] [--frames 60]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from viewer_bench import parser, real_run  # noqa: E402
from viewer_driver import drive, open_app, wait  # noqa: E402


def measure(run: Path, frames: int, size: tuple[int, int]) -> dict:
    from imgui_bundle import imgui

    app = open_app(run)
    out: dict = {}

    def sweep(ctx, cells: list[tuple[float, float]], click_every: int) -> list[float]:
        app.state.frame_ms.clear()
        for k, (x, y) in enumerate(cells):
            ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x, y)))
            if click_every and k % click_every == 0:
                ctx.mouse_click(0)
            ctx.yield_()
        return list(app.state.frame_ms)

    def test(ctx) -> None:
        ctx.engine_io.config_watchdog_kill_test = 1e9
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        ctx.item_click("//Controls/**/Activation matrix")
        wait(ctx, lambda: not app.feed.pending)
        s = app.state.scene
        ci = int(np.argmax(s.clusters.size))
        app.actions.zoom_to_cluster(ci)
        ctx.yield_(2)
        wait(ctx, lambda: not app.state.camera.animating, 20.0)
        x, y, w, h = (float(v) for v in s.clusters.matrix_rect[ci])
        rng = np.random.default_rng(0)
        cells = [(x + w * rng.uniform(0.05, 0.95), y + h * rng.uniform(0.05, 0.95)) for _ in range(frames)]
        out["baseline"] = sweep(ctx, cells, 0)
        out["drilldown"] = sweep(ctx, cells, 4)
        out["cluster"] = (app.state.cluster_name(ci), int(s.clusters.size[ci]))
        out["picked"] = (app.state.selection.neuron, app.state.selection.neuron_class)

    drive(app, test, size)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--frames", type=int, default=60)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    _, run = real_run(a.model, a.images, "bench_drill_")
    out = measure(run, a.frames, (w, h))
    name, size = out["cluster"]
    print(f"\nbench_drilldown: {a.model} on {a.images} CIFAR-10 test images, window {a.size}; "
          f"matrix of {name} ({size} neurons), {a.frames} frames per sweep; last pick {out['picked']}")
    print(f"{'sweep':<34}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}")
    for label, key in (("rows, no clicks (baseline)", "baseline"),
                       ("rows, a cell clicked every 4th", "drilldown")):  # fmt: skip
        v = np.asarray(out[key][2:])  # (the first frames carry the move's own work)
        print(f"{label:<34}{np.median(v):>10.1f}{np.percentile(v, 95):>9.1f}{v.max():>9.1f}")
    print("target: median <= 50 ms")


if __name__ == "__main__":
    main()
