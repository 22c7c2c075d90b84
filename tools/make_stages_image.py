"""Make the README's stages picture with the tool itself: the real viewer (headless, ImGui Test
Engine) on a ResNet-18 run, before and after collapsing stages from the Controls panel
(``layer1`` … ``layer3`` each become one row: their output, with the edges composed through
their blocks).  By default it trains torchvision's ResNet-18 (random init, 4 epochs on 10,000
CIFAR-10 images at 32 px); ``--run`` uses an existing run with stages.

    python tools/make_stages_image.py [--run RUN] [--collapse layer1,layer2,layer3] [--out docs/images]
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

from viewer_driver import drive, open_app, wait  # noqa: E402

SIZE = (1600, 1000)


def shoot(run: Path, collapse: list[str], png: Path) -> list[str]:
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    app = open_app(run)
    rows: list[str] = []

    def settled() -> bool:
        st = app.state
        return st.scene is not None and not app.feed.pending and app.feed.morphing is None and not st.camera.animating

    def test(ctx) -> None:
        wait(ctx, settled)
        for stage in collapse:
            ctx.item_click(f"//Controls/**/stage:{stage}/##stage")
            wait(ctx, settled)
        ctx.mouse_move_to_pos(imgui.ImVec2(800, 990))  # the status bar: no tooltip
        ctx.yield_(10)
        rows.extend(r.name for r in app.state.scene.rows if not r.name.startswith("between:"))
        testing.capture(ctx, str(png))

    drive(app, test, SIZE)
    im = Image.open(png).convert("RGB")
    w, h = im.size
    im.crop((0, 20, int(w * 0.735), int(h * 0.975))).save(png)  # the Controls panel and the view
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="an existing run (default: train torchvision's ResNet-18)")
    ap.add_argument("--collapse", default="layer1,layer2,layer3", help="stages to collapse, in order")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    a = ap.parse_args()
    png = Path(a.out) / "stages.png"
    stages = [s for s in a.collapse.split(",") if s]
    if a.run:
        rows = shoot(Path(a.run), stages, png)
    else:
        from cnnvis_gl.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            cli(["train", "torchvision:resnet18", "--data", f"cifar10:{a.data}", "--epochs", "4", "--limit", "10000",
                 "--test-limit", "1000", "--analyze-limit", "1000", "--optimizer", "adam", "--lr", "0.002",
                 "-q", "-o", str(run)])  # fmt: skip
            rows = shoot(run, stages, png)
    print(f"rows: {', '.join(rows)}; wrote {png}")


if __name__ == "__main__":
    main()
