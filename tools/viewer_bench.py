"""Shared set-up of the viewer benchmarks (``bench_follow.py``, ``bench_window.py``): a real
run directory of a zoo model analysed on CIFAR-10 test images, and the real viewer run
headless (GLFW null platform + EGL) with a per-frame hook."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parser(doc: str) -> argparse.ArgumentParser:
    """``--model``, ``--images`` and ``--size``, with the benchmark's docstring as help."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--model", default="basecnn")
    ap.add_argument("--images", type=int, default=500, help="probe images (CIFAR-10 test set)")
    ap.add_argument("--size", default="1600x1000", help="window WIDTHxHEIGHT")
    return ap


def real_run(model: str, images: int, prefix: str) -> tuple[Any, Path]:
    """``(snapshot, run directory)``: ``model`` (seed 0) analysed and saved as step 0."""
    import torch

    import cnnvis_gl as cv
    from cnnvis_gl.models import build_model

    data = os.environ.get("CNNVIS_DATA", "../shared/data")
    torch.manual_seed(0)
    snap = cv.analyze(build_model(model), f"cifar10:{data}/cifar10", limit=images, progress=False)
    run = Path(tempfile.mkdtemp(prefix=prefix)) / "run"
    snap.save(run, 0)
    return snap, run


def run_viewer(app: Any, size: str, hook: Callable[[Any], None]) -> tuple[int, int]:
    """Run ``app`` headless at ``size`` (``WxH``) with ``hook`` called every frame."""
    from imgui_bundle import immapp

    from cnnvis_gl.ui.app import runner_params
    from cnnvis_gl.ui.headless import init_headless

    wh = tuple(int(v) for v in size.split("x"))
    app.on_frame.append(hook)
    init_headless()
    rp, addons = runner_params(app, wh)
    immapp.run(rp, addons)
    return wh
