"""Make the README's presentation pictures with the tool itself: record a short real training run
(BaseCNN×¼ on CIFAR-10, six snapshots), save bookmarks, a tour and a note, render the tour and
the time-lapse with ``cnnvis video``, and lay frames of each out as contact sheets (and the tour
as a small GIF).

    python tools/make_presentation_images.py [--data ../shared/data/cifar10] [--out docs/images]

About two minutes on two CPU cores.  Also prints the encode figures (frames, seconds, frames
drawn by OpenGL against frames written).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def record(run: Path, data: str) -> None:
    import torch
    import torch.nn.functional as F

    import cnnvis_gl
    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    probe = open_data(f"cifar10:{data}", "test").subset(300)
    train = open_data(f"cifar10:{data}", "train").subset(4000)
    model = build_model("basecnn-x0.25")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = list(train.batches(64, shuffle=True, seed=0))
    xt, yt, _ = next(probe.batches(300))
    with cnnvis_gl.Recorder(model, probe, run, every=60, max_images=300) as rec:
        for step in range(301):
            x, y, _ = batches[step % len(batches)]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.step(step, train_loss=loss.item())
            if step % 30 == 0:
                model.eval()
                with torch.no_grad():
                    err = (model(xt).argmax(1) != yt).float().mean().item()
                model.train()
                rec.log(step, test_error=err)


def stage(run: Path) -> None:
    """Bookmarks (the whole network; conv4 up close, cat highlighted; the matrices in the light
    theme), a three-stop tour with captions, and a note on conv4's largest cluster."""
    from cnnvis_gl import open_run
    from cnnvis_gl.layout import build_scene
    from cnnvis_gl.render.camera import Camera
    from cnnvis_gl.run.annotations import Annotation, save_annotations
    from cnnvis_gl.run.bookmarks import Bookmark, save_bookmarks
    from cnnvis_gl.run.tours import Tour, TourStop, save_tour, tour_path

    scene = build_scene(open_run(run).latest())
    size = (1280, 720)
    fit = Camera().fit(scene.bounds, size)
    row = next(k for k, r in enumerate(scene.rows) if r.name == "conv4")
    members = np.flatnonzero(scene.clusters.row == row)
    big = int(members[np.argmax(scene.clusters.size[members])])
    x, y, w, h = (float(v) for v in scene.clusters.rect[big])
    close = Camera().zoom_to_rect((x, y, x + w, y + h), size, 0.25)
    save_bookmarks(run, [
        Bookmark("overview", (*fit.center, fit.zoom), size=size),
        Bookmark("conv4", (*close.center, close.zoom), size=size, classes=("cat",)),
        Bookmark("matrices", (*fit.center, fit.zoom), size=size, facet="matrix", theme="light"),
    ])  # fmt: skip
    save_tour(tour_path(run, "talk"), Tour((
        TourStop("overview", hold=1.5, caption="BaseCNN×¼ after 300 steps on CIFAR-10"),
        TourStop("conv4", move=2.0, hold=1.5, caption="conv4's largest cluster; cat highlighted"),
        TourStop("matrices", transition="fade", move=1.0, hold=1.5, caption="neuron × class activations"),
    )))  # fmt: skip
    save_annotations(run, [Annotation("largest conv4 cluster", "cluster", int(scene.clusters.id[big]), (40.0, -30.0))])


def video(run: Path, out: Path, *args: str) -> list[np.ndarray]:
    import av

    cmd = [sys.executable, "-m", "cnnvis_gl.cli", "video", str(run), "-o", str(out), *args, "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode:
        sys.exit(r.stderr)
    print(r.stdout.strip())
    with av.open(str(out)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def sheet(frames: list[np.ndarray], picks: list[int], labels: list[str], path: Path, cols: int = 3) -> None:
    tw, th = 640, 360
    rows = (len(picks) + cols - 1) // cols
    out = Image.new("RGB", (cols * tw + (cols - 1) * 6, rows * th + (rows - 1) * 6), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for k, (i, label) in enumerate(zip(picks, labels, strict=True)):
        x, y = (k % cols) * (tw + 6), (k // cols) * (th + 6)
        out.paste(Image.fromarray(frames[i]).resize((tw, th), Image.LANCZOS), (x, y))
        d.rectangle((x, y, x + 11 + 7 * len(label), y + 18), fill=(0, 0, 0))
        d.text((x + 5, y + 3), label, fill=(255, 255, 255))
    out.save(path, optimize=True)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    a = ap.parse_args()
    out = Path(a.out)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        record(run, a.data)
        stage(run)
        fps = 10
        frames = video(run, Path(tmp) / "talk.mp4", "--tour", "talk", "--size", "1280x720", "--fps", str(fps))
        t = [0.5, 2.1, 2.8, 4.2, 5.5, 6.8]
        sheet(frames, [int(s * fps) for s in t], [f"t = {s:.1f} s" for s in t], out / "tour.png")
        gif = out / "tour.gif"  # the same tour as a small looping GIF
        video(run, gif, "--tour", "talk", "--size", "480x270", "--fps", "8", "--msaa", "0")
        print(f"wrote {gif} ({gif.stat().st_size / 1e6:.1f} MB)")
        frames = video(run, Path(tmp) / "learn.mp4", "--timelapse", "--size", "1280x720", "--fps", str(fps),
                       "--hold", "1", "--morph", "1.2", "--steps", "0,60")  # fmt: skip
        picks = [5, 12, 15, 18, 21, 27]
        labels = ["step 0", "morph 3/13", "morph 6/13", "morph 9/13", "morph 12/13", "step 60"]
        sheet(frames, picks, labels, out / "timelapse.png")


if __name__ == "__main__":
    main()
