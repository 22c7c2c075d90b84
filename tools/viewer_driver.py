"""The real viewer, headless, driven by the ImGui Test Engine: shared by the tools that take
pictures of it or time it (make_lineage_image.py, make_ablation_image.py, bench_lineage.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def open_app(run: Path) -> Any:
    """The viewer on ``run``, headless, frames unpaced (the Test Engine paces them)."""
    from cnnvis_gl.ui import App

    app = App(run, headless=True)
    app.frame_period = 0.0
    return app


def wait(ctx: Any, cond: Callable[[], bool], timeout: float = 600.0) -> None:
    """Let frames run until ``cond()``."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting for the viewer")
        ctx.yield_()


def drive(app: Any, test: Callable[[Any], None], size: tuple[int, int]) -> None:
    """Run ``app`` with ``test(ctx)`` driving it; a panel's failure stops the tool."""
    from imgui_bundle.immapp import testing

    from cnnvis_gl.ui.app import runner_params
    from cnnvis_gl.ui.headless import init_headless

    init_headless()
    rp, addons = runner_params(app, size)
    testing.run(test_function=test, runner_params=rp, add_ons_params=addons)
    if app.panel_errors:
        raise SystemExit(f"a panel failed: {app.panel_errors}")
