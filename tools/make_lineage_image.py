"""Make the README's Lineage picture with the tool itself: record the short real training run of
``make_presentation_images.py`` (BaseCNN×¼ on CIFAR-10, six snapshots), open it in the real
viewer (headless, driven by the ImGui Test Engine), show the Lineage panel on conv4, hover a
ribbon, and save the panel (docs/images/lineage.png); print ``cnnvis info --lineage conv4``.

    python tools/make_lineage_image.py [--data ../shared/data/cifar10] [--out docs/images]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from make_presentation_images import record  # noqa: E402
from viewer_driver import drive, open_app, wait  # noqa: E402


def shoot(run: Path, group: str, png: Path) -> None:
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    app = open_app(run)

    def test(ctx) -> None:
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        app.actions.show_panel("Lineage")
        app.actions.show_lineage(group)
        ctx.yield_(3)
        wait(ctx, lambda: app.state.debug.lineage is not None and app.state.panels.lineage_bars)
        bars = app.state.panels.lineage_bars
        # hover the ribbon leaving the first step's largest cluster
        _, _, (x0, y0, x1, y1) = max(bars, key=lambda b: (b[0] == bars[0][0], b[2][3] - b[2][1]))
        ctx.mouse_move_to_pos(imgui.ImVec2(x1 + 40, (y0 + y1) / 2))
        ctx.yield_(3)
        testing.capture(ctx, str(png))

    drive(app, test, (1400, 900))
    # the bottom dock (Snapshots … Lineage): crop to it
    bars = app.state.panels.lineage_bars
    top = min(b[2][1] for b in bars) - 70
    left = min(b[2][0] for b in bars) - 16
    right = max(b[2][2] for b in bars) + 30
    bottom = max(b[2][3] for b in bars) + 14
    im = Image.open(png).convert("RGB")
    im.crop((int(left), int(top), int(right), int(bottom))).save(png)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--group", default="conv4")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        record(run, a.data)
        png = Path(a.out) / "lineage.png"
        shoot(run, a.group, png)
        print(f"wrote {png}")
        cnnvis = Path(sys.executable).with_name("cnnvis")
        subprocess.run([str(cnnvis), "info", str(run), "--lineage", a.group], check=True)


if __name__ == "__main__":
    main()
