"""The network view: the scene rendered into a texture, shown in a dockable window.

The renderer draws into an offscreen target the size of the window's content (only when the
camera, the scene or an appearance changed), and ImGui shows it as an image; an invisible
button over it takes the mouse.  Pixel ``(x, y)`` of the image is pixel ``(x, y)`` of the
renderer's view, so picking, zoom-to-cursor and drag-and-drop need no conversion.

Mouse: wheel zooms at the cursor (animated), a drag pans (left on empty space, or right /
middle anywhere), a left drag that starts on a neuron moves it to the cluster it is dropped on
(or into a new cluster when dropped on empty space of its row), a click selects, a
double-click zooms to the cluster (or fits all on empty space).  ``F`` fits all; the arrow keys
select the next cluster left / right in its row, or the nearest one in the layer above / below,
and fly there.  Zoomed in, a minimap in the bottom-left corner shows where the view is
(:mod:`.minimap`).

Over it:

* :func:`flag_badges` / :func:`draw_flag_badges` — the flags drawn on the network view: one
  badge per flag kind at the right end of each flagged row (icon and colour per kind), the
  message in a tooltip, a click zooms to the row.  Rows closer than a badge (zoomed out on a
  big network) do not pile badges up: a row's badges are left out where they would overlap
  another row's (zoom in, or read the Training panel's list).  ImGui items drawn over the view
  image: a flag change costs no GL upload at all.
* :func:`compare_legend` — when comparing two steps, a legend over the view (bottom right) saying
  which step is which and how the diverging scale reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from imgui_bundle import imgui

from ...remember import Remembered
from ...render.theme import diverging_colormap, get_theme
from ..training import flag_rows, row_right_end, style_of
from ..widgets import (
    em,
)
from .callouts import draw_callouts
from .crumbs import crumbs_bar, go, view_crumbs
from .minimap import minimap

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = [
    "WINDOW",
    "CANVAS_ID",
    "network_view",
    "Badge",
    "badge_id",
    "flag_badges",
    "draw_flag_badges",
    "compare_legend",
]


WINDOW = "Network"


CANVAS_ID = "##canvas"


ZOOM_STEP = 1.25  # per wheel notch


DRAG_THRESHOLD = 4.0  # pixels before a press becomes a drag

ARROWS = (
    (imgui.Key.left_arrow, "left"),
    (imgui.Key.right_arrow, "right"),
    (imgui.Key.up_arrow, "up"),
    (imgui.Key.down_arrow, "down"),
)


def network_view(st: AppState, act: Actions) -> None:
    """The dockable network view (hello_imgui calls it; it calls ``begin``/``end`` itself)."""
    imgui.push_style_var(imgui.StyleVar_.window_padding, imgui.ImVec2(0, 0))
    flags = (
        imgui.WindowFlags_.no_scrollbar
        | imgui.WindowFlags_.no_scroll_with_mouse
        | imgui.WindowFlags_.no_collapse
    )
    visible = imgui.begin(WINDOW, None, flags)[0]
    imgui.pop_style_var()
    if visible and st.tour.present is None:  # (present mode draws the view full screen)
        _canvas(st, act)
    imgui.end()


def _canvas(st: AppState, act: Actions) -> None:
    origin = imgui.get_cursor_screen_pos()
    avail = imgui.get_content_region_avail()
    w, h = int(avail.x), int(avail.y)
    if w < 8 or h < 8:
        return
    act.view.origin = (origin.x, origin.y)
    act.view.render((w, h))
    texture, uv0, uv1 = act.view.image
    if texture:
        imgui.image(imgui.ImTextureRef(texture), imgui.ImVec2(w, h), imgui.ImVec2(*uv0), imgui.ImVec2(*uv1))
    # flag badges and the minimap first: their buttons then win the hover over the view's
    badges = flag_badges(st, act, (origin.x, origin.y), (w, h))
    minimap(st, act, (origin.x, origin.y), (w, h))
    top = crumbs_bar(st, act, (origin.x, origin.y)) if st.scene is not None else 0.0
    imgui.set_cursor_screen_pos(origin)
    buttons = (
        imgui.ButtonFlags_.mouse_button_left
        | imgui.ButtonFlags_.mouse_button_right
        | imgui.ButtonFlags_.mouse_button_middle
    )
    imgui.invisible_button(CANVAS_ID, imgui.ImVec2(w, h), buttons)
    if st.scene is not None:
        _input(st, act, (origin.x, origin.y), (w, h))
    draw_flag_badges(st, act, badges)
    st.panels.callouts = draw_callouts(st, (origin.x, origin.y), (w, h))
    compare_legend(st, act, (origin.x, origin.y), (w, h))
    _overlay(st, act, (origin.x, origin.y + top), (w, h))


def _input(st: AppState, act: Actions, origin: tuple[float, float], size: tuple[int, int]) -> None:
    io = imgui.get_io()
    cam = st.camera
    hovered = imgui.is_item_hovered()
    active = imgui.is_item_active()
    mx, my = io.mouse_pos.x - origin[0], io.mouse_pos.y - origin[1]
    inside = 0 <= mx < size[0] and 0 <= my < size[1]

    # hover + tooltip
    if hovered and inside and not (active and st.drag is None and _dragging()):
        act.view.hover_at(mx, my)
    elif not hovered and st.hover[0] != "none":
        act.view.set_hover(("none", -1))

    # zoom at the cursor (animated)
    if hovered and io.mouse_wheel != 0.0:
        factor = ZOOM_STEP ** float(io.mouse_wheel)
        cam.zoom_at(factor, mx, my)
        act.view.touch()

    # press: maybe the start of a neuron drag
    if imgui.is_item_activated() and imgui.is_mouse_clicked(imgui.MouseButton_.left):
        act.view.press_at(mx, my)

    # drag: move a neuron, or pan
    if active:
        delta = io.mouse_delta
        if st.drag is not None and imgui.is_mouse_down(imgui.MouseButton_.left):
            dx, dy = mx - st.drag.start[0], my - st.drag.start[1]
            if not st.drag.active and (dx * dx + dy * dy) ** 0.5 > DRAG_THRESHOLD:
                st.drag.active = True
            if st.drag.active:
                _drag_feedback(st, act, mx, my, origin)
        elif _dragging() and (delta.x or delta.y):
            cam.jump(cam.current.pan(delta.x, delta.y))  # (the camera's move redraws the view:
            cam.panning = True  # no `touch`, so the view shifts its drawing with a margin)

    # release
    if imgui.is_item_deactivated():
        if cam.panning:
            cam.panning = False
            act.view.touch()  # the pan's warped edge layer is drawn afresh
        drag = st.drag
        st.drag = None
        if drag is not None and drag.active:
            act.view.drop_neuron(drag.neuron, mx, my)
        elif imgui.is_mouse_released(imgui.MouseButton_.left) and not _moved(io):
            act.view.click_at(mx, my)

    if hovered and imgui.is_mouse_double_clicked(imgui.MouseButton_.left):
        act.view.double_click_at(mx, my)

    if hovered and imgui.is_key_pressed(imgui.Key.f, False) and not io.want_text_input:
        act.fit_all()
    if hovered and imgui.is_key_pressed(imgui.Key.backspace, False) and not io.want_text_input:
        crumbs = view_crumbs(st)  # up one step of the module tree
        if len(crumbs) >= 2:
            go(act, crumbs, len(crumbs) - 2)
    for key, direction in ARROWS:  # the arrow keys walk the clusters
        if hovered and imgui.is_key_pressed(key) and not io.want_text_input:
            act.step_selection(direction)

    if hovered and imgui.is_mouse_released(imgui.MouseButton_.right) and not _moved(io, 1):
        act.view.click_at(mx, my)
        imgui.open_popup("view_context")
    _context_menu(st, act)

    if hovered and st.drag is None and st.hover[0] != "none":
        _hover_outline(st, act)
        _tooltip(st, act)


def _dragging() -> bool:
    return any(
        imgui.is_mouse_dragging(b, DRAG_THRESHOLD)
        for b in (imgui.MouseButton_.left, imgui.MouseButton_.right, imgui.MouseButton_.middle)
    )


def _moved(io: imgui.IO, button: int = 0) -> bool:
    d = io.mouse_drag_max_distance_sqr[button]
    return d > DRAG_THRESHOLD * DRAG_THRESHOLD


def _drag_feedback(
    st: AppState, act: Actions, mx: float, my: float, origin: tuple[float, float]
) -> None:
    """A line from the dragged neuron to the pointer and a tooltip naming the drop target."""
    assert st.drag is not None and st.scene is not None
    i = st.neuron_index(st.drag.neuron)
    if i is None:
        return
    r = st.scene.neurons.rect[i]
    sx, sy = st.camera.current.scene_to_screen(
        float(r[0] + r[2] / 2), float(r[1] + r[3] / 2), st.camera.viewport
    )
    dl = imgui.get_window_draw_list()
    col = imgui.get_color_u32(imgui.ImVec4(1.0, 0.8, 0.2, 0.9))
    a = imgui.ImVec2(origin[0] + sx, origin[1] + sy)
    b = imgui.ImVec2(origin[0] + mx, origin[1] + my)
    dl.add_line(a, b, col, 2.0)
    dl.add_circle_filled(a, 4.0, col)
    target = act.view.drop_target(st.drag.neuron, mx, my)
    imgui.set_tooltip(f"Move neuron {st.drag.neuron[1]} of {st.drag.neuron[0]}\n→ {target[1]}")


def _hover_outline(st: AppState, act: Actions) -> None:
    rect = act.view.hover_rect()
    if rect is None:
        return
    hover = get_theme(st.theme).hover
    col = imgui.get_color_u32(imgui.ImVec4(*hover))
    x0, y0, x1, y1 = rect
    dl = imgui.get_window_draw_list()
    dl.add_rect(
        imgui.ImVec2(x0 - 1, y0 - 1), imgui.ImVec2(x1 + 1, y1 + 1), col, rounding=0.0, thickness=2.0
    )


def _tooltip(st: AppState, act: Actions) -> None:
    lines = act.view.hover_text()
    if lines:
        imgui.begin_tooltip()
        imgui.text(lines[0])
        for line in lines[1:]:
            imgui.text_disabled(line)
        imgui.end_tooltip()


def _context_menu(st: AppState, act: Actions) -> None:
    if not imgui.begin_popup("view_context"):
        return
    ci = st.cluster_index(st.selection.cluster)
    ni = st.neuron_index(st.selection.neuron)
    if ci is not None:
        imgui.text_disabled(st.cluster_name(ci))
        if imgui.menu_item("Zoom to cluster", "", False)[0]:
            act.zoom_to_cluster(ci)
        facet = int(st.scene.clusters.facet[ci]) if st.scene is not None else 0
        label = "Show learned features" if facet else "Show activation matrix"
        if imgui.menu_item(label, "", False)[0]:
            act.set_facet(1 - facet, [int(st.scene.clusters.id[ci])])
        if ni is None and imgui.menu_item("Add a note", "", False)[0]:
            act.notes.add("cluster", int(st.scene.clusters.id[ci]))
    if ni is not None and st.selection.neuron is not None:
        imgui.separator()
        imgui.text_disabled(f"neuron {st.selection.neuron[1]} of {st.selection.neuron[0]}")
        if imgui.menu_item("Move to a new cluster", "", False)[0]:
            act.move_neuron(st.selection.neuron, None)
        if imgui.menu_item("Add a note", "", False)[0]:
            act.notes.add("neuron", (str(st.selection.neuron[0]), int(st.selection.neuron[1])))
    imgui.separator()
    if imgui.menu_item("Fit all", "F", False)[0]:
        act.fit_all()
    imgui.end_popup()


def _overlay(
    st: AppState, act: Actions, origin: tuple[float, float], size: tuple[int, int]
) -> None:
    """Hints and background-work status drawn over the view's top-left corner."""
    dl = imgui.get_window_draw_list()
    pad = 8.0
    lines = []
    if st.scene is None:
        lines.append(st.jobs.message or "Loading the run …")
    if st.jobs.pending:
        dots = "." * (1 + (st.frames // 10) % 3)
        lines.append(f"{st.jobs.pending[0]}{dots}")
    if not lines:
        return
    text = "\n".join(lines)
    ts = imgui.calc_text_size(text)
    x, y = origin[0] + pad, origin[1] + pad
    bg = imgui.get_color_u32(imgui.ImVec4(0.0, 0.0, 0.0, 0.55))
    dl.add_rect_filled(
        imgui.ImVec2(x - 4, y - 3), imgui.ImVec2(x + ts.x + 6, y + ts.y + 4), bg, 4.0
    )
    dl.add_text(imgui.ImVec2(x, y), imgui.get_color_u32(imgui.ImVec4(1, 1, 1, 0.95)), text)


@dataclass(frozen=True)
class Badge:
    """One badge on the view: the flags of one kind on one row, and where it is."""

    row: int
    kind: str
    flags: tuple[Any, ...]
    rect: tuple[float, float, float, float]  # screen x0, y0, x1, y1

    @property
    def message(self) -> str:
        return "\n".join(f.message for f in self.flags)


def _badges(
    st: AppState, act: Actions, origin: tuple[float, float], size: tuple[int, int]
) -> list[Badge]:
    s, snap = st.scene, st.snapshot
    if s is None or snap is None or not st.debug.flags or st.debug.flags_step != st.step:
        return []
    if not st.debug.show_flags:
        return []
    side = em(1.6)
    gap = em(0.35)
    x_lo, y_lo = origin
    x_hi, y_hi = origin[0] + size[0], origin[1] + size[1]
    out = []
    cam, (vw, vh) = st.camera.current, st.camera.viewport
    rows, right, mid = _badge_rows(s, snap, st.debug.flags)
    # each row's right end on the screen (`view.screen_pos` of all at once)
    sxs = x_lo + (right - cam.center[0]) * cam.zoom + vw / 2.0
    cys = y_lo + (mid - cam.center[1]) * cam.zoom + vh / 2.0
    taken = np.zeros((0, 4))  # the rows' badge strips placed so far
    for k in np.flatnonzero((cys >= y_lo) & (cys <= y_hi)):  # rows out of view: no badge
        (row, kinds), sx, cy = rows[k], float(sxs[k]), float(cys[k])
        total = len(kinds) * side + (len(kinds) - 1) * gap
        bx = min(max(sx + em(0.8), x_lo + gap), x_hi - total - gap)
        strip = (bx, cy - side / 2 - gap / 2, bx + total, cy + side / 2 + gap / 2)
        if ((taken[:, 0] < strip[2]) & (strip[0] < taken[:, 2]) & (taken[:, 1] < strip[3]) & (strip[1] < taken[:, 3])).any():
            continue  # rows closer than a badge (zoomed out): the first one's badges only
        taken = np.vstack([taken, strip])
        for kind, fl in kinds.items():
            out.append(Badge(row, kind, tuple(fl), (bx, cy - side / 2, bx + side, cy + side / 2)))
            bx += side + gap
    return out


_badge_rows_memo: Remembered[tuple[list[tuple[int, dict[str, list[Any]]]], np.ndarray, np.ndarray]] = Remembered()


def _badge_rows(scene: Any, snap: Any, flags: list[Any]) -> tuple[list[tuple[int, dict[str, list[Any]]]], np.ndarray, np.ndarray]:
    """The rows with flags and their flags by kind, their right ends and their bands' middles
    in scene units; the same every frame until the scene or the flags change (remembered for
    the last ones)."""

    def make() -> tuple[list[tuple[int, dict[str, list[Any]]]], np.ndarray, np.ndarray]:
        names = [g.name for g in snap.graph.groups]
        rows, ends = [], []
        for row, fl in sorted(flag_rows(scene, names, flags).items()):
            kinds: dict[str, list[Any]] = {}
            for f in fl:
                kinds.setdefault(f.kind, []).append(f)
            rows.append((row, kinds))
            ends.append(row_right_end(scene, row))
        e = np.array(ends, dtype=np.float64).reshape(-1, 3)
        return rows, e[:, 0], (e[:, 1] + e[:, 2]) / 2.0

    return _badge_rows_memo.get((scene, snap, flags), None, make)


def badge_id(b: Badge) -> str:
    """The ImGui id of a badge's button (``//Network/##flag_<row>_<kind>`` in tests)."""
    return f"##flag_{b.row}_{b.kind}"


def flag_badges(
    st: AppState, act: Actions, origin: tuple[float, float], size: tuple[int, int]
) -> list[tuple[Badge, bool]]:
    """Submit the badges' buttons (call *before* the view's own button, so they win the hover)
    and handle their clicks; returns ``(badge, hovered)`` for :func:`draw_flag_badges`."""
    badges = _badges(st, act, origin, size)
    st.panels.flag_badges = [(b.flags[0], b.rect) for b in badges]
    st.panels.flag_tooltip = None
    out = []
    for b in badges:
        x0, y0, x1, y1 = b.rect
        imgui.set_cursor_screen_pos(imgui.ImVec2(x0, y0))
        if imgui.invisible_button(badge_id(b), imgui.ImVec2(x1 - x0, y1 - y0)):
            act.zoom_to_row(b.row)
        out.append((b, imgui.is_item_hovered()))
    return out


def draw_flag_badges(st: AppState, act: Actions, items: list[tuple[Badge, bool]]) -> None:
    """Draw the badges over the view image; the hovered one shows its message."""
    dl = imgui.get_window_draw_list()
    dark = st.theme == "dark"
    ring = imgui.get_color_u32(
        imgui.ImVec4(0.95, 0.95, 0.97, 0.95) if dark else imgui.ImVec4(0.1, 0.1, 0.12, 0.9)
    )
    ink = imgui.get_color_u32(imgui.ImVec4(0.07, 0.08, 0.10, 1.0))
    for b, hov in items:
        sty = style_of(b.kind)
        x0, y0, x1, y1 = b.rect
        c = imgui.ImVec2((x0 + x1) / 2, (y0 + y1) / 2)
        r = (x1 - x0) / 2
        col = imgui.get_color_u32(imgui.ImVec4(*sty.color, 1.0))
        dl.add_circle_filled(imgui.ImVec2(c.x + 1, c.y + 1.5), r, 0x50000000)  # shadow
        dl.add_circle_filled(c, r, col)
        dl.add_circle(c, r, ring, 0, 2.5 if hov else 1.2)
        ts = imgui.calc_text_size(sty.icon)
        dl.add_text(imgui.ImVec2(c.x - ts.x / 2, c.y - ts.y / 2), ink, sty.icon)
        if len(b.flags) > 1:
            txt = str(len(b.flags))
            tn = imgui.calc_text_size(txt)
            p = imgui.ImVec2(x1 - tn.x * 0.4, y0 - tn.y * 0.45)
            dl.add_rect_filled(
                imgui.ImVec2(p.x - 3, p.y), imgui.ImVec2(p.x + tn.x + 3, p.y + tn.y), ring, 6.0
            )
            dl.add_text(p, ink, txt)
        if hov:
            st.panels.flag_tooltip = b.message
            imgui.begin_tooltip()
            imgui.text_colored(
                imgui.ImVec4(*sty.color, 1.0),
                f"{sty.icon}  {sty.label} · {b.flags[0].group}",
            )
            for f in b.flags:
                imgui.text(f.message)
            imgui.text_disabled("click: zoom to the row")
            imgui.end_tooltip()


def compare_legend(
    st: AppState, act: Actions, origin: tuple[float, float], size: tuple[int, int]
) -> None:
    """Bottom right of the view: which step is which, and the diverging scale."""
    other = st.debug.compare
    if other is None or st.scene is None:
        return
    dl = imgui.get_window_draw_list()
    pad = em(0.5)
    title = f"Activation matrices: step {st.step} − step {other}"
    sub = (
        "computing …"
        if st.debug.compare_diff is None
        else "blue: lower now · red: higher now (per layer, of its range)"
    )
    tw = max(imgui.calc_text_size(title).x, imgui.calc_text_size(sub).x)
    lh = imgui.get_text_line_height()
    bar_h = lh * 0.7
    w = tw + 2 * pad
    h = 2 * lh + bar_h + 3 * pad
    x1 = origin[0] + size[0] - em(0.6)
    x0 = x1 - w
    y0 = origin[1] + size[1] - h - em(0.6)
    dl.add_rect_filled(
        imgui.ImVec2(x0, y0),
        imgui.ImVec2(x1, y0 + h),
        imgui.get_color_u32(imgui.ImVec4(0.0, 0.0, 0.0, 0.62)),
        5.0,
    )
    white = imgui.get_color_u32(imgui.ImVec4(1, 1, 1, 0.96))
    dl.add_text(imgui.ImVec2(x0 + pad, y0 + pad), white, title)
    dl.add_text(
        imgui.ImVec2(x0 + pad, y0 + pad + lh),
        imgui.get_color_u32(imgui.ImVec4(0.8, 0.82, 0.86, 1.0)),
        sub,
    )
    cm = diverging_colormap(st.theme)
    by = y0 + 2 * pad + 2 * lh
    n = 32
    bw = (w - 2 * pad) / n
    for i in range(n):
        rgb = cm[int(i * 255 / (n - 1))]
        col = imgui.get_color_u32(imgui.ImVec4(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, 1.0))
        bx = x0 + pad + i * bw
        dl.add_rect_filled(imgui.ImVec2(bx, by), imgui.ImVec2(bx + bw + 0.5, by + bar_h), col)
