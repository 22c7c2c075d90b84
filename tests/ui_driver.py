"""Drive the real viewer headless through the ImGui Test Engine (shared by the GUI tests)."""

from __future__ import annotations

import time
from collections.abc import Callable


def drive(app, test: Callable, size: tuple[int, int], job_errors: int = 0) -> None:
    """Run ``app`` headless with ``test(ctx)`` driving it through the Test Engine.

    Fails when a panel raised, or when background jobs failed (``job_errors``: how many the
    test provokes on purpose)."""
    from imgui_bundle.immapp import testing

    from cnnvis_gl.ui.app import runner_params
    from cnnvis_gl.ui.headless import init_headless

    app.frame_period = 0.0  # no frame-rate cap: the test engine paces the frames
    init_headless()
    rp, addons = runner_params(app, size)
    testing.run(test_function=test, runner_params=rp, add_ons_params=addons)
    assert not app.panel_errors, app.panel_errors
    assert len(app.job_errors) == job_errors, app.job_errors


def wait(ctx, cond: Callable[[], bool], timeout: float = 120.0) -> None:
    """Let frames run until ``cond()`` (the layout works on its own thread meanwhile)."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting for the app"
        ctx.yield_()
