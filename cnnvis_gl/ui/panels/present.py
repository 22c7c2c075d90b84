"""Present mode: the network view over the whole window, the tour's caption drawn in the scene.

A flight switches to the next stop's look half way (where the view is farthest out), the last
frame before fading out over the new look while it moves and scales with the camera; a fade
draws the view as it was over the next one, fading it out.

A borderless window covers the main viewport (menus, panels and status bar hidden under it)
while ``st.tour.present`` is set.  Keys: → / space / Page Down / Enter the next stop (a second
press finishes a move at once), ← / Page Up / Backspace the stop before, Esc leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...render.text import wrap_words
from .callouts import draw_callouts

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["PRESENT_WINDOW", "present_view"]

PRESENT_WINDOW = "##present"
NEXT = (imgui.Key.right_arrow, imgui.Key.space, imgui.Key.page_down, imgui.Key.enter)
BACK = (imgui.Key.left_arrow, imgui.Key.page_up, imgui.Key.backspace)


def present_view(st: AppState, act: Actions) -> None:
    """Draw present mode (nothing outside it); called once per frame after the panels."""
    p = st.tour.present
    if p is None:
        return
    vp = imgui.get_main_viewport()
    imgui.set_next_window_pos(vp.pos)
    imgui.set_next_window_size(vp.size)
    imgui.set_next_window_focus()  # above every panel, and the keys come here
    imgui.push_style_var(imgui.StyleVar_.window_padding, imgui.ImVec2(0, 0))
    imgui.push_style_var(imgui.StyleVar_.window_border_size, 0.0)
    flags = (
        imgui.WindowFlags_.no_decoration
        | imgui.WindowFlags_.no_move
        | imgui.WindowFlags_.no_saved_settings
        | imgui.WindowFlags_.no_docking
        | imgui.WindowFlags_.no_nav
    )
    imgui.begin(PRESENT_WINDOW, None, flags)
    imgui.pop_style_var(2)
    origin = imgui.get_cursor_screen_pos()
    w, h = int(vp.size.x), int(vp.size.y)
    act.view.origin = (origin.x, origin.y)
    act.view.render((w, h))
    texture, uv0, uv1 = act.view.image
    if texture:
        imgui.image(imgui.ImTextureRef(texture), imgui.ImVec2(w, h), imgui.ImVec2(*uv0), imgui.ImVec2(*uv1))
    frame = act.tours.frame()
    fade = act.tours.fade()
    if fade is not None and act.view.frozen_texture:  # the view before, fading out
        alpha, (x0, y0, x1, y1) = fade
        dl = imgui.get_window_draw_list()
        dl.add_image(imgui.ImTextureRef(act.view.frozen_texture),
                     imgui.ImVec2(origin.x + x0, origin.y + y0), imgui.ImVec2(origin.x + x1, origin.y + y1),
                     imgui.ImVec2(0, 1), imgui.ImVec2(1, 0),
                     imgui.get_color_u32(imgui.ImVec4(1, 1, 1, alpha)))  # fmt: skip
    draw_callouts(st, (origin.x, origin.y), (w, h))
    if frame is not None:
        _caption(frame.caption, frame.caption_alpha, (origin.x, origin.y), (w, h))
        _counter(f"{p.stop + 1} / {len(p.timeline.marks)}", (origin.x, origin.y), (w, h))
    imgui.end()
    if not imgui.get_io().want_text_input:
        if any(imgui.is_key_pressed(k, False) for k in NEXT):
            act.tours.next()
        elif any(imgui.is_key_pressed(k, False) for k in BACK):
            act.tours.previous()
        elif imgui.is_key_pressed(imgui.Key.escape, False):
            act.tours.leave()


def _caption(text: str, alpha: float, origin: tuple[float, float], size: tuple[int, int]) -> None:
    """The caption centred near the bottom, large, on a dark rounded box (as in videos)."""
    if not text.strip() or alpha <= 0.0:
        return
    w, h = size
    font = imgui.get_font()
    px = max(16.0, min(h / 22.0, w / 40.0))
    scale = px / imgui.get_font_size()  # text is measured at the current size, then scaled
    lines = wrap_words(text, 0.7 * w / scale, lambda t: imgui.calc_text_size(t).x)
    th = len(lines) * px * 1.15
    tw = max(imgui.calc_text_size(line).x * scale for line in lines)
    pad = px * 0.6
    x0 = origin[0] + (w - tw) / 2 - pad
    y1 = origin[1] + h - 0.06 * h
    y0 = y1 - th - 1.2 * pad
    dl = imgui.get_window_draw_list()
    dl.add_rect_filled(imgui.ImVec2(x0, y0), imgui.ImVec2(x0 + tw + 2 * pad, y1),
                       imgui.get_color_u32(imgui.ImVec4(0.05, 0.055, 0.07, 0.78 * alpha)), pad * 0.6)  # fmt: skip
    col = imgui.get_color_u32(imgui.ImVec4(0.96, 0.965, 0.98, alpha))
    for k, line in enumerate(lines):
        lw = imgui.calc_text_size(line).x * scale
        pos = imgui.ImVec2(origin[0] + (w - lw) / 2, y0 + 0.6 * pad + k * px * 1.15)
        dl.add_text(font, px, pos, col, line)


def _counter(text: str, origin: tuple[float, float], size: tuple[int, int]) -> None:
    """The stop counter and the keys, small, in the bottom-right corner."""
    label = f"{text}   → next · ← back · Esc leave"
    ts = imgui.calc_text_size(label)
    pos = imgui.ImVec2(origin[0] + size[0] - ts.x - 12, origin[1] + size[1] - ts.y - 8)
    dl = imgui.get_window_draw_list()
    dl.add_rect_filled(imgui.ImVec2(pos.x - 6, pos.y - 3), imgui.ImVec2(pos.x + ts.x + 6, pos.y + ts.y + 3),
                       imgui.get_color_u32(imgui.ImVec4(0.05, 0.055, 0.07, 0.7)), 4.0)  # fmt: skip
    dl.add_text(pos, imgui.get_color_u32(imgui.ImVec4(0.8, 0.82, 0.86, 0.9)), label)
