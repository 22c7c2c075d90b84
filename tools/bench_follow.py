"""Benchmark: time from a snapshot landing in a followed run to it being on screen.

The real viewer runs headless (GLFW null platform + EGL) in follow mode on a run directory;
a writer thread saves a new snapshot of a real model every few seconds (``Snapshot.save``:
temporary folder + rename, as the Recorder does).  For each one it measures, from the moment
the save returned ("landed"), the time until the viewer showed it (its Scene applied and drawn
into the view), and the longest frame meanwhile (the UI never waits on the load).

    python tools/bench_follow.py [--model basecnn] [--images 500] [--snapshots 6]
"""

from __future__ import annotations

import statistics
import threading
import time

from viewer_bench import parser, real_run, run_viewer


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--snapshots", type=int, default=6)
    args = ap.parse_args()

    from cnnvis_gl.ui import App

    snap, run = real_run(args.model, args.images, "cnnvis-follow-")
    app = App(run, follow=True, headless=True)
    app.idle_period = app.frame_period  # pace idle frames like a 60 Hz window, not headless 2 fps
    landed: dict[int, float] = {}
    shown: dict[int, float] = {}
    worst_frame: dict[int, float] = {}
    ready = threading.Event()
    done = threading.Event()

    def writer() -> None:
        ready.wait()
        for k in range(1, args.snapshots + 1):
            time.sleep(1.0)
            snap.save(run, k)
            landed[k] = time.perf_counter()
            while k not in shown and not done.is_set():
                time.sleep(0.01)
        done.set()

    last = [time.perf_counter()]

    def hook(a: App) -> None:
        now = time.perf_counter()
        st = a.state
        pending = [k for k in landed if k not in shown]
        for k in pending:
            worst_frame[k] = max(worst_frame.get(k, 0.0), now - last[0])
        last[0] = now
        drawn = a.view.drawn
        if st.scene is not None and drawn and not a.feed.pending:
            ready.set()
            if st.step in landed and st.step not in shown:
                shown[st.step] = now
        if done.is_set():
            a.actions.request_exit()

    threading.Thread(target=writer, daemon=True).start()
    size = run_viewer(app, args.size, hook)

    lat = [shown[k] - landed[k] for k in sorted(shown)]
    print(f"{args.model}, {snap}, viewer {size[0]}x{size[1]} headless (llvmpipe), "
          f"follower poll every {app.follower.interval if app.follower else 0.5:.1f} s")  # fmt: skip
    print(f"{'snapshot':>8} {'landed → on screen (s)':>24} {'longest frame meanwhile (ms)':>30}")
    for k in sorted(shown):
        print(f"{k:>8} {shown[k] - landed[k]:>24.2f} {worst_frame.get(k, 0.0) * 1000:>30.0f}")
    if lat:
        print(f"median {statistics.median(lat):.2f} s, max {max(lat):.2f} s")


if __name__ == "__main__":
    main()
