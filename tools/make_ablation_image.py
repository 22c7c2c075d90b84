"""Make the README's ablation picture with the tool itself: train BaseCNN×¼ on CIFAR-10 with
``cnnvis train`` (2 epochs on 10,000 images), find conv4's cluster whose removal costs one class
the most (``cnnvis ablate --each-cluster`` in the library), then select it in the real viewer
(headless, ImGui Test Engine), run the Cluster panel's Ablate tab and save the panel.

    python tools/make_ablation_image.py [--data ../shared/data/cifar10] [--out docs/images]
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


def shoot(run: Path, cid: int, png: Path) -> None:
    from imgui_bundle import imgui
    from imgui_bundle.immapp import testing

    app = open_app(run)
    box: dict = {}

    def test(ctx) -> None:
        wait(ctx, lambda: app.state.scene is not None and not app.feed.pending)
        s = app.state.scene
        ci = int(np.flatnonzero(s.clusters.id == cid)[0])
        app.state.selection.cluster = cid  # (the panel reads it; no outline is needed here)
        ctx.yield_(2)
        ctx.item_click("//Cluster/cluster_tabs/Ablate")
        ctx.yield_(2)
        ctx.item_click("//Cluster/**/###ablate")
        want = app.state.debug.ablation_want
        wait(ctx, lambda: want in app.state.debug.ablations)
        ctx.mouse_move_to_pos(imgui.ImVec2(700, 893))  # the status bar: no tooltip over the bars
        ctx.yield_(3)
        box["ci"] = ci
        testing.capture(ctx, str(png))

    drive(app, test, (1400, 900))
    im = Image.open(png).convert("RGB")
    w, h = im.size
    im.crop((int(w * 0.737), 20, w, int(h * 0.47))).save(png)  # the Cluster panel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    a = ap.parse_args()
    from cnnvis_gl import open_run
    from cnnvis_gl.cli import _each_cluster, _run_scene
    from cnnvis_gl.cli import main as cli
    from cnnvis_gl.run.rebuild import rebuild_model, rebuild_probe
    from cnnvis_gl.stats.ablation import ablate

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cli(["train", "basecnn-x0.25", "--data", f"cifar10:{a.data}", "--epochs", "2", "--limit", "10000",
             "--test-limit", "1000", "--analyze-limit", "1000", "-q", "-o", str(run)])  # fmt: skip
        snap = open_run(run).latest()
        scene = _run_scene(str(run), snap)
        sets, labels = _each_cluster(scene, "conv4")
        model, _ = rebuild_model(run, 10)
        data = rebuild_probe(run, 1000)
        results = ablate(model, data.batches(250), sets, 10)
        best = int(np.argmax([r.drop.max() for r in results]))
        print(f"{labels[best]}: largest class drop {results[best].drop.max():+.1%}")
        from cnnvis_gl.layout.search import row_clusters

        row = next(k for k, r in enumerate(scene.rows) if r.name == "conv4")
        cid = int(scene.clusters.id[row_clusters(scene, row)[best]])
        png = Path(a.out) / "ablation.png"
        shoot(run, cid, png)
        print(f"wrote {png}")


if __name__ == "__main__":
    main()
