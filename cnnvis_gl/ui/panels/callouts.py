"""The annotations' callouts drawn over the network view (the docked view and present mode):
a dark box with the text and an arrow to the target, as in renders and videos
(:mod:`cnnvis_gl.render.callouts` places them; ImGui draws them, costing no GL upload)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...render.callouts import edge_point, place
from ..widgets import em

if TYPE_CHECKING:
    from ..state import AppState

__all__ = ["draw_callouts"]

ACCENT = imgui.ImVec4(1.0, 0.80, 0.18, 1.0)


def draw_callouts(st: AppState, origin: tuple[float, float], size: tuple[int, int]) -> list:
    """Draw ``st.notes`` over the view at ``origin``; returns the callouts drawn (tests)."""
    if st.scene is None or not st.notes:
        return []
    callouts = place(st.scene, st.notes, st.camera.current, st.camera.viewport)
    dl = imgui.get_window_draw_list()
    dl.push_clip_rect(imgui.ImVec2(*origin), imgui.ImVec2(origin[0] + size[0], origin[1] + size[1]), True)
    accent = imgui.get_color_u32(ACCENT)
    fill = imgui.get_color_u32(imgui.ImVec4(0.05, 0.055, 0.07, 0.88))
    ink = imgui.get_color_u32(imgui.ImVec4(0.96, 0.965, 0.98, 1.0))
    pad = em(0.45)
    ox, oy = origin
    for c in callouts:
        ts = imgui.calc_text_size(c.text, wrap_width=em(22))
        cx, cy = c.center
        box = (cx - ts.x / 2 - pad, cy - ts.y / 2 - pad, cx + ts.x / 2 + pad, cy + ts.y / 2 + pad)
        tip = c.tip
        start = edge_point(box, tip)
        a, b = imgui.ImVec2(ox + start[0], oy + start[1]), imgui.ImVec2(ox + tip[0], oy + tip[1])
        dl.add_line(a, b, accent, 2.0)
        _arrowhead(dl, a, b, accent)
        p0, p1 = imgui.ImVec2(ox + box[0], oy + box[1]), imgui.ImVec2(ox + box[2], oy + box[3])
        dl.add_rect_filled(p0, p1, fill, pad * 0.7)
        dl.add_rect(p0, p1, accent, pad * 0.7, 1.0)
        dl.add_text(imgui.get_font(), imgui.get_font_size(), imgui.ImVec2(p0.x + pad, p0.y + pad), ink,
                    c.text, em(22))  # fmt: skip
    dl.pop_clip_rect()
    return callouts


def _arrowhead(dl: imgui.ImDrawList, a: imgui.ImVec2, b: imgui.ImVec2, col: int) -> None:
    dx, dy = b.x - a.x, b.y - a.y
    n = (dx * dx + dy * dy) ** 0.5
    if n < 1e-6:
        return
    ux, uy, s = dx / n, dy / n, 7.0
    bx, by = b.x - ux * s * 1.6, b.y - uy * s * 1.6
    dl.add_triangle_filled(b, imgui.ImVec2(bx - uy * s, by + ux * s), imgui.ImVec2(bx + uy * s, by - ux * s), col)
