"""The minimap: the whole network in a corner of the view while zoomed in, with the part on
screen outlined; a click or a drag in it flies the view there.

Drawn with ImGui over the view image (no GL): the clusters as rectangles in their identity
colours, the rows' bands behind them.  Its button is submitted before the view's own, so it
wins the mouse over its corner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgui_bundle import imgui

from ...remember import Remembered
from ..widgets import em

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["MINIMAP_ID", "minimap", "minimap_box"]

MINIMAP_ID = "##minimap"


def minimap_box(
    bounds: tuple[float, float, float, float], origin: tuple[float, float], size: tuple[int, int]
) -> tuple[float, float, float, float, float]:
    """Where the minimap goes in the view: ``(x0, y0, x1, y1, scale)`` in screen pixels, at
    the bottom-left corner, at most a fifth of the view's width and a third of its height,
    with the scene's aspect; ``scale`` is pixels per scene unit."""
    bx0, by0, bx1, by1 = bounds
    bw, bh = max(bx1 - bx0, 1e-9), max(by1 - by0, 1e-9)
    scale = min(size[0] * 0.2 / bw, size[1] * 0.33 / bh)
    w, h = bw * scale, bh * scale
    pad = em(0.6)
    x0, y1 = origin[0] + pad, origin[1] + size[1] - pad
    return x0, y1 - h, x0 + w, y1, scale


def _shows_all(st: AppState) -> bool:
    vx0, vy0, vx1, vy1 = st.camera.current.visible_rect(st.camera.viewport)
    x0, y0, x1, y1 = st.scene.bounds  # type: ignore[union-attr]
    return vx0 <= x0 and vy0 <= y0 and vx1 >= x1 and vy1 >= y1


_rects: Remembered[list[tuple[imgui.ImVec2, imgui.ImVec2, int]]] = Remembered()


def _cluster_rects(s: Any, box: tuple[float, float, float]) -> list[tuple[imgui.ImVec2, imgui.ImVec2, int]]:
    """Each cluster's rectangle in the minimap (corners on the screen, colour) — the same
    every frame while the scene and the minimap's place are (remembered for the last ones)."""

    def make() -> list[tuple[imgui.ImVec2, imgui.ImVec2, int]]:
        x0, y0, k = box
        r = s.clusters.rect
        ax, ay = x0 + (r[:, 0] - s.bounds[0]) * k, y0 + (r[:, 1] - s.bounds[1]) * k
        bx, by = ax + r[:, 2] * k, ay + r[:, 3] * k
        return [
            (imgui.ImVec2(a, b), imgui.ImVec2(c, d), imgui.get_color_u32(imgui.ImVec4(*rgb, 0.85)))
            for a, b, c, d, rgb in zip(ax.tolist(), ay.tolist(), bx.tolist(), by.tolist(), s.clusters.color.tolist(), strict=True)
        ]

    return _rects.get((s,), box, make)


def minimap(st: AppState, act: Actions, origin: tuple[float, float], size: tuple[int, int]) -> bool:
    """Submit the minimap's button and draw it (only when part of the network is off screen);
    returns whether it was drawn."""
    s = st.scene
    if s is None or st.camera.viewport == (1, 1) or _shows_all(st):
        return False
    x0, y0, x1, y1, k = minimap_box(s.bounds, origin, size)
    bx, by = float(s.bounds[0]), float(s.bounds[1])

    def to_screen(x: float, y: float) -> imgui.ImVec2:
        return imgui.ImVec2(x0 + (x - bx) * k, y0 + (y - by) * k)

    imgui.set_cursor_screen_pos(imgui.ImVec2(x0, y0))
    imgui.invisible_button(MINIMAP_ID, imgui.ImVec2(max(x1 - x0, 1), max(y1 - y0, 1)))
    if imgui.is_item_active() or imgui.is_item_clicked():
        m = imgui.get_mouse_pos()
        act.center_on(bx + (m.x - x0) / k, by + (m.y - y0) / k)
    if imgui.is_item_hovered():
        imgui.set_tooltip("the whole network: click or drag to fly there")
    dl = imgui.get_window_draw_list()
    dl.add_rect_filled(
        imgui.ImVec2(x0 - 3, y0 - 3),
        imgui.ImVec2(x1 + 3, y1 + 3),
        imgui.get_color_u32(imgui.ImVec4(0.0, 0.0, 0.0, 0.6)),
        3.0,
    )
    for a, b, colour in _cluster_rects(s, (x0, y0, k)):
        dl.add_rect_filled(a, b, colour)
    vx0, vy0, vx1, vy1 = st.camera.current.visible_rect(st.camera.viewport)
    a, b = to_screen(vx0, vy0), to_screen(vx1, vy1)
    a = imgui.ImVec2(max(a.x, x0), max(a.y, y0))
    b = imgui.ImVec2(min(b.x, x1), min(b.y, y1))
    dl.add_rect(a, b, imgui.get_color_u32(imgui.ImVec4(1.0, 1.0, 1.0, 0.9)), 0.0, 1.5)
    return True
