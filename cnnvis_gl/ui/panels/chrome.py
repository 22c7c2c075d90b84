"""The window's chrome: the status bar and the menus."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from imgui_bundle import imgui

from ..widgets import (
    MUTED,
    RED,
)

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["status_bar", "menus"]


def status_bar(st: AppState, act: Actions) -> None:
    s = st.scene
    parts = []
    if s is not None:
        parts.append(
            f"step {st.step} · {len(s.neurons.cluster)} neurons · {len(s.clusters.id)} clusters"
            f" · {len(s.edges.weight)} edge pieces"
        )
        parts.append(f"zoom {st.camera.current.zoom:.2f}")
    if st.frame_ms:
        parts.append(f"frame {np.median(list(st.frame_ms)):.1f} ms")
    if st.render_ms:
        parts.append(f"view {np.median(list(st.render_ms)):.1f} ms")
    if st.jobs.pending:
        parts.append(f"working: {st.jobs.pending[0]}")
    elif st.jobs.last:
        parts.append(f"{st.jobs.last} ({st.jobs.last_seconds * 1000:.0f} ms)")
    imgui.text("   ·   ".join(parts))
    if st.jobs.error:
        imgui.same_line()
        imgui.text_colored(RED, "  " + st.jobs.error.splitlines()[0][:120])
    elif st.jobs.message and st.scene is not None:
        imgui.same_line()
        imgui.text_colored(MUTED, "  " + st.jobs.message[:120])


def menus(st: AppState, act: Actions) -> None:
    if imgui.begin_menu("Edit"):
        h = st.history
        if imgui.menu_item("Undo", "Ctrl+Z", False, bool(h.undo))[0]:
            act.undo()
        if imgui.menu_item("Redo", "Ctrl+Shift+Z", False, bool(h.redo))[0]:
            act.redo()
        imgui.separator()
        if imgui.menu_item("Reset clustering", "", False, st.edits.pinned)[0]:
            act.reset_clustering()
        imgui.end_menu()
    if imgui.begin_menu("Network"):
        if imgui.menu_item("Fit all", "F", False)[0]:
            act.fit_all()
        if imgui.menu_item("Save screenshot", "", False)[0]:
            act.shots.request()
        if imgui.menu_item("Copy render command", "", False)[0]:
            act.shots.copy_render_command()
        if imgui.is_item_hovered():
            imgui.set_tooltip("A `cnnvis render` command line that draws this view to a PNG")
        imgui.end_menu()
