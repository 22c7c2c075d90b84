"""The step to compare with (shared by the Snapshots and Training panels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ..widgets import (
    NOW,
    OTHER,
    em,
)

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["compare_controls"]


def compare_controls(st: AppState, act: Actions) -> None:
    """Choose the step to compare with (the matrices show current − other)."""
    other = st.debug.compare
    imgui.align_text_to_frame_padding()
    imgui.text("Compare with")
    imgui.same_line()
    imgui.set_next_item_width(em(7))
    preview = "off" if other is None else f"step {other}"
    opened = imgui.begin_combo("##compare", preview)
    st.panels.widget_ids["compare"] = imgui.get_item_id()  # tests open it by id
    if opened:
        if imgui.selectable("off", other is None)[0]:
            act.set_compare(None)
        for s in st.steps:
            if s == st.step:
                continue
            if imgui.selectable(f"step {s}", s == other)[0]:
                act.set_compare(s)
        imgui.end_combo()
    if imgui.is_item_hovered():
        imgui.set_tooltip("the activation matrices show (this step) − (that step)")
    if other is not None:
        imgui.text_colored(NOW, f"step {st.step}")
        imgui.same_line(0, em(0.3))
        imgui.text("−")
        imgui.same_line(0, em(0.3))
        imgui.text_colored(OTHER, f"step {other}")
        imgui.same_line()
        mx = st.debug.compare_info.get("max_abs") if st.debug.compare_diff is not None else None
        imgui.text_disabled("computing …" if mx is None else f"max |Δ| {mx:.0%}")
