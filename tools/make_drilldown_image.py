"""Make the README's matrix drill-down picture with the tool itself: the real viewer (headless,
ImGui Test Engine) on a trained run, every cluster as its activation matrix, zoomed to conv4's
largest cluster; a click on the brightest cell of the matrix selects that neuron and that class,
and the Neuron panel shows the neuron's top images of the class.  The picture is the network
view beside the Neuron panel.  By default it trains BaseCNN×¼ (2 epochs on 5,000 CIFAR-10
images); ``--run`` uses an existing run.

    python tools/make_drilldown_image.py [--run RUN] [--group conv4] [--out docs/images]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from viewer_driver import drive, open_app, wait  # noqa: E402


def shoot(run: Path, group: str, png: Path) -> tuple[str, str]:
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    app = open_app(run)
    picked: dict = {}

    def test(ctx) -> None:
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        ctx.item_click("//Controls/**/Activation matrix")
        wait(ctx, lambda: not app.feed.pending)
        s = app.state.scene
        row = next(k for k, r in enumerate(s.rows) if r.name == group)
        ci = max(np.flatnonzero(s.clusters.row == row), key=lambda c: int(s.clusters.size[c]))
        app.actions.zoom_to_cluster(ci)
        ctx.yield_(3)
        wait(ctx, lambda: not app.state.camera.animating)
        # the brightest cell of the matrix: its neuron's row, its class's column
        members = app.state.cluster_neurons(ci)
        act = s.neurons.activation[members]
        k, c = np.unravel_index(int(np.argmax(act)), act.shape)
        x, y, w, h = (float(v) for v in s.clusters.matrix_rect[ci])
        rows, cols = len(members), act.shape[1]
        order = np.argsort(s.neurons.matrix_row[members])
        r = int(np.flatnonzero(order == k)[0])
        col = int(np.flatnonzero(np.asarray(s.class_order) == c)[0])
        ctx.mouse_move_to_pos(imgui.ImVec2(*app.view.screen_pos(x + w * (col + 0.5) / cols, y + h * (r + 0.5) / rows)))
        ctx.yield_(2)
        ctx.mouse_click(0)
        ctx.yield_(3)
        wait(ctx, lambda: not app.state.jobs.pending)
        ctx.mouse_move_to_pos(imgui.ImVec2(800, 990))  # the status bar: no tooltip
        ctx.yield_(20)
        picked["neuron"] = app.state.selection.neuron
        picked["class"] = app.state.snapshot.classes[app.state.selection.neuron_class]
        testing.capture(ctx, str(png))

    drive(app, test, (1600, 1000))
    im = Image.open(png).convert("RGB")
    w, h = im.size
    im.crop((int(w * 0.22), 20, w, int(h * 0.975))).save(png)  # the network view and inspectors
    return picked["neuron"], picked["class"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="an existing run (default: train BaseCNN×¼)")
    ap.add_argument("--group", default="conv4", help="the layer group (default conv4)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    a = ap.parse_args()
    png = Path(a.out) / "drilldown.png"
    if a.run:
        picked = shoot(Path(a.run), a.group, png)
    else:
        from cnnvis_gl.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            cli(["train", "basecnn-x0.25", "--data", f"cifar10:{a.data}", "--epochs", "2", "--limit", "5000",
                 "--test-limit", "1000", "--analyze-limit", "1000", "-q", "-o", str(run)])  # fmt: skip
            picked = shoot(run, a.group, png)
    print(f"clicked neuron {picked[0]}, class {picked[1]}; wrote {png}")


if __name__ == "__main__":
    main()
