"""Benchmark: opening a big run in the real viewer (headless, software GL) — the progressive
opening of issue 11.  A synthetic network (``bench_layout.py --huge``'s: 100k neurons in 150
rows, class profiles drawn from a few prototypes per layer) is saved as a run and opened: the
time to the first drawn frame (the draft layout: clusters by strongest class, shelf packing,
unbundled edges; grey clusters until the time its mosaics' pictures are on screen, also
timed), frame times while the mouse drags the view and the real layout runs in the
background, the time until the real layout is on screen, and frame times dragging it.  The
real layout's own time is the baseline: without the draft, the first frame would wait for it.
Then the hierarchy: "Collapse all stages" (the layers carry ResNet-152's module paths: each
block as one row) and "Expand all", timed to the new layout.  Goals: first frame ≤ 2 s, median frame ≤ 50 ms while panning (1600×1000).

    python tools/bench_open.py [--rows 150] [--neurons 100000] [--frames 60] [--size 1600x1000]
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

from bench_layout import peak_mib  # noqa: E402
from viewer_bench import run_viewer  # noqa: E402

from cnnvis_gl.layout.hierarchy import innermost_stages  # noqa: E402
from cnnvis_gl.run.synthetic import huge_channels, huge_paths, synthetic_snapshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=150)
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=60, help="frames per panning phase")
    ap.add_argument("--size", default="1600x1000", help="window WIDTHxHEIGHT")
    ap.add_argument("--first", action="store_true", help="stop at the first frame (with --profile: where it went)")
    ap.add_argument("--profile", action="store_true", help="profile the UI thread up to the first frame")
    ap.add_argument("--profile-pan", action="store_true", help="profile the UI thread panning the real layout")
    ap.add_argument("--idle", action="store_true", help="leave the draft alone (frames paced as in use) until the real layout")
    a = ap.parse_args()

    from cnnvis_gl.ui import App

    snap = synthetic_snapshot(huge_channels(a.rows, a.neurons), 10, images=500, paths=huge_paths(a.rows))
    run = Path(tempfile.mkdtemp(prefix="cnnvis-open-")) / "run"
    snap.save(run, 0)
    t0 = time.perf_counter()
    app = App(run, headless=True)
    if not a.idle:
        app.frame_period = 0.0
    marks: dict[str, float] = {}
    frames: dict[str, list[float]] = {"pan, draft on screen": [], "pan, real layout": []}
    state = {"last": 0.0, "n": 0}

    def label() -> str:
        u = app.feed.last_update
        return "" if u is None else u.label

    def pan(name: str, now: float) -> bool:
        """One frame of a drag pan; True once ``--frames`` frames are in."""
        cam = app.state.camera
        if state["n"]:
            frames[name].append(now - state["last"])
        state["last"], state["n"] = now, state["n"] + 1
        cam.jump(cam.current.pan(-6.0, 0.0 if state["n"] % 40 < 20 else 4.0))
        cam.panning = True  # (as a drag in the view does)
        if state["n"] > a.frames:
            cam.panning, state["n"] = False, 0
            return True
        return False

    def hook(app_: App) -> None:
        now = time.perf_counter()
        if app.job_errors:
            raise SystemExit(f"bench_open: {app.job_errors[0]}")
        drawn = app.view.drawn and app.state.scene is not None
        marks.setdefault("window", now - t0)  # the first frame of the window (empty)
        if "first" not in marks:
            if drawn:
                marks["first"] = now - t0
                marks["first_label"] = label()  # type: ignore[assignment]
                marks["draft_timings"] = dict(app.feed.last_update.timings)  # type: ignore[assignment]
            return
        if "pictures" not in marks and app.renderer is not None and not app.renderer.pixels_pending:
            marks["pictures"] = now - t0  # the draft's mosaics filled in
            if a.first:
                app.actions.request_exit()
            return
        if "draft_pan" not in marks and label().startswith("draft") and not a.idle:
            if pan("pan, draft on screen", now):
                marks["draft_pan"] = now
            return
        if "real" not in marks:
            if label().startswith("open") and drawn:
                marks["real"] = now - t0
                timings = app.feed.last_update.timings
                marks["layout"] = float(timings.get("open", np.nan))
                marks["layout_stages"] = {k: round(v, 2) for k, v in timings.items() if k != "open"}  # type: ignore[assignment]
            return
        if "real_pan" not in marks:
            if a.profile_pan and state["n"] == 0:
                pan_prof.enable()
            if pan("pan, real layout", now):  # then the hierarchy: every block as one row …
                if a.profile_pan:
                    pan_prof.disable()
                    app.actions.request_exit()
                marks["real_pan"] = marks["asked"] = now
                app.actions.set_collapsed_stages(set(innermost_stages(app.state.snapshot.graph)))
            return
        if app.feed.pending:
            return
        if "collapsed" not in marks and label().startswith("collapse"):
            marks["collapsed"] = now - marks["asked"]
            marks["collapsed_rows"] = sum(1 for r in app.state.scene.rows if not r.name.startswith("between:"))
            marks["asked"] = now
            app.actions.set_collapsed_stages(set())  # … and back
        elif "collapsed" in marks and label().startswith("expand"):
            marks["expanded"] = now - marks["asked"]
            app.actions.request_exit()

    import cProfile
    import pstats

    pan_prof = cProfile.Profile()
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
    w, h = run_viewer(app, a.size, hook)
    if a.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    if a.profile_pan:
        pstats.Stats(pan_prof).sort_stats("tottime").print_stats(30)
        pstats.Stats(pan_prof).sort_stats("cumulative").print_stats(30)
    n = int(app.state.scene.stats["neurons"]) if app.state.scene is not None else 0
    print(f"\nbench_open: synthetic network, {n:,} neurons in {a.rows} rows, viewer {w}x{h}, headless llvmpipe")
    dt = marks.get("draft_timings", {})
    print(f"first frame: {marks.get('first', float('nan')):.2f} s ({marks.get('first_label')}; the window "
          f"itself {marks.get('window', float('nan')):.2f} s, the draft job {dt.get('open', float('nan')):.2f} s "
          f"of which layout {sum(v for k, v in dt.items() if k not in ('open', 'edges')):.2f} s)")  # fmt: skip
    print(f"the draft's pictures on screen: {marks.get('pictures', float('nan')):.2f} s")
    print(f"real layout on screen: {marks.get('real', float('nan')):.1f} s "
          f"(laying it out took {marks.get('layout', float('nan')):.1f} s in the background: the first "
          f"frame's wait without the draft)")  # fmt: skip
    print(f"  its stages (s; pack and order summed over the worker processes): {marks.get('layout_stages', {})}")
    print(f"{'phase':<24}{'frames':>8}{'median ms':>12}{'p95 ms':>10}")
    for name, t in frames.items():
        v = np.asarray(t) * 1000.0
        if len(v):
            print(f"{name:<24}{len(v):>8}{np.median(v):>12.1f}{np.percentile(v, 95):>10.1f}")
    print(f"collapse all stages: {marks.get('collapsed', float('nan')):.1f} s to a layout of "
          f"{marks.get('collapsed_rows', 0)} rows; expand all again: {marks.get('expanded', float('nan')):.1f} s")
    from cnnvis_gl.layout import parallel

    pool = parallel._pool
    workers = max((peak_mib(pid) for pid in (pool._processes if pool else {})), default=0.0)
    print(f"peak memory: the viewer {peak_mib():.0f} MiB, each layout worker up to {workers:.0f} MiB")
    print("goals: first frame <= 2 s, median <= 50 ms while panning")


if __name__ == "__main__":
    main()
