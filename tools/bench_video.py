"""Benchmark: video export (``cnnvis video``) frames per second, by phase, against encoding alone.

A real scene (BaseCNN×¼ analysed on ``--images`` CIFAR-10 test images, or random weights on
random images with ``--synthetic``), three bookmarks and a tour (hold, a camera flight into one
cluster, a fade to the light matrices) rendered at ``--size`` (default 1920x1080) and ``--fps``:

- ``tour, end to end``: :func:`cnnvis_gl.video.tour_video` to an H.264 MP4, all frames;
- ``per GL draw``: the same time over the views OpenGL actually rendered (a held stop is
  drawn once and repeated; a fade draws two views a frame): render + read back + caption (an
  upper bound: the encoding is in it too);
- ``encode only``: the same number of (constant) frames through the H.264 encoder alone — the
  baseline measured in the same run (needs PyAV; left out without it, e.g. on the device);
- ``png render``: one ``cnnvis render``-equivalent PNG of the first bookmark (context, upload,
  draw, read back, PNG write) for scale.

Shared, noisy machines: compare the ratios.

    python tools/bench_video.py [--size 1920x1080] [--fps 30] [--images 500] [--msaa 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_run(run: Path, images: int, synthetic: bool) -> None:
    import torch

    import cnnvis_gl
    from cnnvis_gl.data import ImageData, open_data
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    model = build_model("basecnn-x0.25")
    if synthetic:
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (images, 3, 32, 32), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 10, (images,), generator=g)
        data = ImageData.from_tensors(x, y, [f"c{k}" for k in range(10)])
    else:
        data = open_data("cifar10", "test").subset(images)
    cnnvis_gl.analyze(model, data, progress=False).save(run, 0)


def stage(run: Path, size: tuple[int, int]) -> None:
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.render.camera import Camera
    from cnnvis_gl.run.bookmarks import Bookmark, save_bookmarks
    from cnnvis_gl.run.tours import Tour, TourStop, save_tour, tour_path

    scene = build_scene(open_run(run).latest())
    fit = Camera().fit(scene.bounds, size)
    k = int(np.argmax(scene.clusters.size))
    x, y, w, h = (float(v) for v in scene.clusters.rect[k])
    close = Camera().zoom_to_rect((x, y, x + w, y + h), size, 0.2)
    save_bookmarks(run, [
        Bookmark("overview", (*fit.center, fit.zoom), size=size),
        Bookmark("close", (*close.center, close.zoom), size=size, classes=(scene.classes[3],)),
        Bookmark("matrices", (*fit.center, fit.zoom), size=size, facet="matrix", theme="light"),
    ])  # fmt: skip
    save_tour(tour_path(run, "bench"), Tour((
        TourStop("overview", hold=1.0, caption="the whole network"),
        TourStop("close", move=2.0, hold=1.0, caption="one cluster up close"),
        TourStop("matrices", transition="fade", move=1.0, hold=1.0),
    )))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--msaa", type=int, default=4)
    ap.add_argument("--synthetic", action="store_true", help="random images (no CIFAR-10 needed)")
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.lower().split("x"))
    from cnnvis_gl.render.offscreen import create_context

    ctx = create_context()
    renderer = f"{ctx.info.get('GL_RENDERER', '?')}"
    ctx.release()
    try:
        import av  # noqa: F401

        has_av = True
    except ImportError:
        has_av = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        make_run(run, a.images, a.synthetic)
        stage(run, size)
        from cnnvis_gl import open_run
        from cnnvis_gl.layout import build_scene
        from cnnvis_gl.render.camera import Camera
        from cnnvis_gl.render.offscreen import render_png

        snap = open_run(run).latest()
        scene = build_scene(snap)
        t = time.perf_counter()
        render_png(snap, scene, Path(tmp) / "one.png", size=size, camera=Camera().fit(scene.bounds, size), msaa=a.msaa)
        png_s = time.perf_counter() - t
        if has_av:
            from cnnvis_gl.video import tour_video

            res = tour_video(run, "bench", Path(tmp) / "bench.mp4", size=size, fps=a.fps, msaa=a.msaa,
                             progress=False, annotations=False)  # fmt: skip
            frames, drawn, total = res.frames, res.drawn, res.seconds
            from cnnvis_gl.render.encode import VideoWriter

            still = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            t = time.perf_counter()
            with VideoWriter(Path(tmp) / "encode.mp4", size, a.fps) as w:
                for _ in range(frames):
                    w.write(still)
            enc = time.perf_counter() - t
        else:  # render the tour's frames without encoding them
            from cnnvis_gl.render.flight import Timeline
            from cnnvis_gl.run.bookmarks import load_bookmarks
            from cnnvis_gl.run.tours import load_tour, tour_path
            from cnnvis_gl.video import _Looks

            tl = Timeline(load_tour(tour_path(run, "bench")), {b.name: b for b in load_bookmarks(run)}, size)
            looks = _Looks(snap, None, size, a.msaa)
            times = tl.times(a.fps)
            frames, last = len(times), None
            t = time.perf_counter()
            for s in times:
                f = tl.at(s)
                key = (f.a, f.b, round(f.mix, 6), f.camera, f.camera_b)
                if key != last:
                    looks.draw(tl.marks[f.a], f.camera)
                    if f.b != f.a and f.mix > 0:
                        looks.draw(tl.marks[f.b], f.camera_b)
                    last = key
            total, drawn, enc = time.perf_counter() - t, looks.drawn, None
            looks.release()
    print(f"video export, {size[0]}x{size[1]} at {a.fps:g} fps, msaa {a.msaa}, {renderer}")
    print(f"{'phase':<28}{'frames':>8}{'seconds':>10}{'frames/s':>10}{'ms/frame':>10}")
    rows.append(("tour, end to end" if has_av else "tour, rendered (no encode)", frames, total))
    rows.append(("  per GL draw (at most)", drawn, total))  # held frames repeat a drawn one
    if enc is not None:
        rows.append(("encode only (baseline)", frames, enc))
    rows.append(("png render (one frame)", 1, png_s))
    for name, n, s in rows:
        fps = n / s if s == s and s > 0 else float("nan")
        ms = 1000 * s / n if s == s and n else float("nan")
        print(f"{name:<28}{n:>8}{s:>10.2f}{fps:>10.1f}{ms:>10.1f}")
    if enc is not None:
        print(f"end to end / encode only: {total / enc:.2f}x the time")


if __name__ == "__main__":
    main()
