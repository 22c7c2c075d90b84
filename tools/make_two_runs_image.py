"""Make the README's picture of two runs side by side with the tool itself: the real viewer
(headless, ImGui Test Engine) on run A with ``--compare`` run B, the network view framing one
layer group, run B's panel following it, and the comparison table with CKA.  By default it
trains BaseCNN×¼ and BaseCNN×1 with ``cnnvis train`` (2 epochs on 5,000 CIFAR-10 images);
``--runs A B`` uses two existing runs instead (e.g. those of ``cnnvis study width``).

    python tools/make_two_runs_image.py [--runs A B] [--group conv4] [--out docs/images]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from viewer_driver import drive, wait  # noqa: E402


def shoot(run_a: Path, run_b: Path, group: str, png: Path) -> None:
    from imgui_bundle.immapp import testing

    from cnnvis_gl.ui import App

    app = App(run_a, headless=True, compare=run_b)
    app.frame_period = 0.0

    def test(ctx) -> None:
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        wait(ctx, lambda: app.other.run is not None and app.other.run.cka is not None)
        wait(ctx, lambda: not app.feed.pending)
        app.actions.zoom_to_groups([group])
        ctx.yield_(3)
        wait(ctx, lambda: not app.state.camera.animating and not app.other.camera.animating)
        ctx.mouse_move_to_pos((800, 990))  # the status bar: no tooltip, no cursor on the views
        ctx.yield_(5)
        testing.capture(ctx, str(png))

    drive(app, test, (1600, 1000))
    im = Image.open(png).convert("RGB")
    w, h = im.size
    im.crop((int(w * 0.22), 20, int(w * 0.735), int(h * 0.69))).save(png)  # the two views


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs=2, metavar=("A", "B"), help="two existing runs (default: train two)")
    ap.add_argument("--group", default="conv4", help="the layer group framed (default conv4)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    a = ap.parse_args()
    png = Path(a.out) / "two_runs.png"
    if a.runs:
        shoot(Path(a.runs[0]), Path(a.runs[1]), a.group, png)
    else:
        from cnnvis_gl.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            runs = []
            for model in ("basecnn-x0.25", "basecnn"):
                runs.append(Path(tmp) / model)
                cli(["train", model, "--data", f"cifar10:{a.data}", "--epochs", "2", "--limit", "5000",
                     "--test-limit", "1000", "--analyze-limit", "1000", "-q", "-o", str(runs[-1])])  # fmt: skip
            shoot(runs[0], runs[1], a.group, png)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
