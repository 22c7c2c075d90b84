"""Benchmark: frame times of the real viewer window on a BaseCNN run (headless, software GL).

The viewer runs with its panels (GLFW null platform + EGL, every frame finished before the next
one starts, no frame-rate cap) while a hook moves the camera the way a user does: idle, a
drag pan over the whole network (the view drawn once with a margin is shifted while the
mouse drags, as in the view), a wheel zoom (animated), zoomed in on a cluster and still (neuron-level edges arrive),
and a drag pan zoomed in.  Prints the median and 95th percentile of the frame times per
phase; the goal on this CPU is ≤ 50 ms per frame while panning.

    python tools/bench_window.py [--model basecnn] [--images 500] [--frames 120]
"""

from __future__ import annotations

import time

import numpy as np
from viewer_bench import parser, real_run, run_viewer


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--frames", type=int, default=120, help="frames per phase")
    args = ap.parse_args()

    from cnnvis_gl.ui import App

    snap, run = real_run(args.model, args.images, "cnnvis-window-")
    app = App(run, headless=True)
    app.frame_period = 0.0  # no cap: measure what a frame costs
    phases = ["idle", "drag pan", "wheel zoom", "zoomed in, still", "drag pan zoomed in"]
    times: dict[str, list[float]] = {p: [] for p in phases}
    state = {"phase": -1, "n": 0, "last": 0.0, "settle": 0, "neuron_edges": 0}

    def hook(a: App) -> None:
        now = time.perf_counter()
        st = a.state
        cam = st.camera
        if state["phase"] < 0:  # wait until the view has settled (layout, pictures, plots)
            state["settle"] = state["settle"] + 1 if a.settled else 0
            if state["settle"] >= 10:
                state["phase"], state["last"] = 0, now
            return
        name = phases[state["phase"]]
        times[name].append(now - state["last"])
        state["last"] = now
        state["n"] += 1
        w, h = cam.viewport
        if name.startswith("drag pan"):  # as the view does while the mouse drags
            step = -6.0 if name == "drag pan" else -3.0
            cam.jump(cam.current.pan(step, 0.0 if state["n"] % 40 < 20 else 4.0))
            cam.panning = True  # (no `touch`: the drawn view with its margin is shifted)
        elif name == "wheel zoom":  # a wheel notch every 4 frames, about the view's centre
            if state["n"] % 4 == 1:
                cam.zoom_at(1.25, w / 2, h / 2)
        elif name == "zoomed in, still":
            state["neuron_edges"] = a.renderer.last_frame.get("neuron_edges", 0)
        if state["n"] >= args.frames:
            state["n"] = 0
            cam.panning = False
            a.view.touch()
            state["phase"] += 1
            if state["phase"] == len(phases):
                a.actions.request_exit()
                return
            if phases[state["phase"]] == "wheel zoom":
                a.actions.fit_all(animate=False)
            if phases[state["phase"]] == "zoomed in, still":  # a cluster of a middle row
                s = st.scene
                mid = [k for k, r in enumerate(s.rows) if r.kind != 2][2]
                ci = int(np.flatnonzero(s.clusters.row == mid)[0])
                x, y, cw, ch = (float(v) for v in s.clusters.rect[ci])
                cam.jump(cam.current.zoom_to_rect((x, y - ch / 2, x + cw, y + 1.5 * ch), (w, h)))

    size = run_viewer(app, args.size, hook)

    print(f"{args.model}, {snap}, viewer {size[0]}x{size[1]} with panels, headless llvmpipe")
    print(f"{'phase':<16}{'frames':>8}{'median ms':>12}{'p95 ms':>10}")
    for p in phases:
        t = np.asarray(times[p][1:]) * 1000.0  # the first frame of a phase includes its set-up
        if len(t):
            print(f"{p:<16}{len(t):>8}{np.median(t):>12.1f}{np.percentile(t, 95):>10.1f}")
    print(f"neuron-level edge pieces drawn zoomed in: {state['neuron_edges']}")


if __name__ == "__main__":
    main()
