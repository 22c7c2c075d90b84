"""The debugging view (SPEC §8, requirement R5).

* :func:`training_panel` — the "Training" panel (docked with Snapshots): learning curves from
  ``scalars.jsonl``, one per-layer statistic over the snapshots (a combo picks it), the flags of
  the snapshot shown and the step to compare with.  A vertical line marks the current step
  (yellow) and the compared step (cyan); a click in a plot opens the nearest snapshot.
* :func:`flag_badges` / :func:`draw_flag_badges` — the flags drawn on the network view: one
  badge per flag kind at the right end of each flagged row (icon and colour per kind), the
  message in a tooltip, a click zooms to the row.  ImGui items drawn over the view image: a
  flag change costs no GL upload at all.
* :func:`compare_legend` — when comparing two steps, a legend over the view (bottom right) saying
  which step is which and how the diverging scale reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from imgui_bundle import imgui, implot

from .panels import _em, _hint
from .training import STATS, flag_rows, row_right_end, style_of

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "training_panel",
    "compare_controls",
    "compare_legend",
    "flag_badges",
    "draw_flag_badges",
    "badge_id",
    "Badge",
]

NOW = imgui.ImVec4(1.0, 0.80, 0.20, 1.0)  # current step (as the view's selection colour)
OTHER = imgui.ImVec4(0.35, 0.85, 1.0, 1.0)  # the compared step
ERROR_WORDS = ("error", "acc")


def _pretty(name: str) -> str:
    return name.replace("_", " ")


# ---------------------------------------------------------------------------- Training panel


def training_panel(app: App) -> None:
    """Learning curves | per-layer statistic | flags and compare (three resizable columns)."""
    st = app.state
    if st.snapshot is None:
        _hint(st.jobs.message or "Loading …")
        return
    flags = imgui.TableFlags_.resizable | imgui.TableFlags_.borders_inner_v
    if not imgui.begin_table("training_layout", 3, flags):
        return
    imgui.table_setup_column("curves", imgui.TableColumnFlags_.width_stretch, 1.3)
    imgui.table_setup_column("stats", imgui.TableColumnFlags_.width_stretch, 1.2)
    imgui.table_setup_column("flags", imgui.TableColumnFlags_.width_stretch, 1.0)
    imgui.table_next_row()
    imgui.table_next_column()
    implot.push_style_var(implot.StyleVar_.fit_padding, imgui.ImVec2(0.03, 0.1))
    _learning_curves(app)
    imgui.table_next_column()
    _layer_statistic(app)
    implot.pop_style_var()
    imgui.table_next_column()
    _flag_list(app)
    imgui.separator()
    compare_controls(app)
    imgui.end_table()


def _step_markers(app: App) -> None:
    """Vertical lines at the current and the compared step."""
    st = app.state
    if st.step is not None:
        implot.plot_inf_lines(
            f"step {st.step}##now",
            np.array([float(st.step)]),
            implot.Spec(line_color=NOW, flags=implot.ItemFlags_.no_legend),
        )
    other = st.debug.compare
    if other is not None:
        implot.plot_inf_lines(
            f"step {other} (compared)##other",
            np.array([float(other)]),
            implot.Spec(line_color=OTHER, line_weight=1.5, flags=implot.ItemFlags_.no_legend),
        )


def _click_selects_step(app: App, plot: str) -> None:
    """Inside a plot: remember where each snapshot step is; a click opens the nearest one."""
    st = app.state
    lim = implot.get_plot_limits()
    ymid = (lim.y.min + lim.y.max) / 2.0
    pts: dict[int, tuple[float, float]] = {}
    for s in st.steps:
        if lim.x.min <= s <= lim.x.max:
            p = implot.plot_to_pixels(implot.Point(float(s), ymid))
            pts[int(s)] = (p.x, p.y)
    app.plot_points[plot] = pts
    if implot.is_plot_hovered():
        m = implot.get_plot_mouse_pos()
        step = app.nearest_step(m.x)
        if step is not None:
            imgui.set_tooltip(f"click: open the snapshot of step {step}")
            released = imgui.is_mouse_released(imgui.MouseButton_.left)
            moved = imgui.get_io().mouse_drag_max_distance_sqr[0] > 16.0
            if released and not moved and step != st.step:
                app.open_step(step)


def _learning_curves(app: App) -> None:
    td = app.training
    imgui.align_text_to_frame_padding()
    imgui.text("Learning curves")
    imgui.text_disabled("loss (left), error (right)")
    if td is None:
        imgui.text_disabled("loading …")
        return
    if not td.curves:
        _hint("No scalars recorded (Recorder.step(step, train_loss=…) writes scalars.jsonl).")
        return
    flags = implot.Flags_.no_menus | implot.Flags_.no_box_select | implot.Flags_.no_title
    if implot.begin_plot("##learning", imgui.ImVec2(-1, -1), flags):
        has_err = any(any(w in n for w in ERROR_WORDS) for n in td.curves)
        implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
        if has_err:
            implot.setup_axis(
                implot.ImAxis_.y2, "", implot.AxisFlags_.auto_fit | implot.AxisFlags_.opposite
            )
        implot.setup_legend(implot.Location_.east, implot.LegendFlags_.outside)
        for name, (xs, ys) in td.curves.items():
            err = any(w in name for w in ERROR_WORDS)
            implot.set_axes(implot.ImAxis_.x1, implot.ImAxis_.y2 if err else implot.ImAxis_.y1)
            spec = implot.Spec()
            if len(xs) <= 40:  # evaluations, probe points: show the points
                spec.marker = implot.Marker_.circle
                spec.marker_size = 3.0
            implot.plot_line(_pretty(name), xs, ys, spec)
        implot.set_axes(implot.ImAxis_.x1, implot.ImAxis_.y1)
        _step_markers(app)
        _click_selects_step(app, "learning")
        implot.end_plot()


def _layer_statistic(app: App) -> None:
    st = app.state
    dbg = st.debug
    td = app.training
    imgui.align_text_to_frame_padding()
    imgui.text("Per layer")
    imgui.same_line()
    imgui.set_next_item_width(-1)
    if imgui.begin_combo("##stat", STATS[dbg.stat][0]):
        for key, (label, _log) in STATS.items():
            if imgui.selectable(label, key == dbg.stat)[0]:
                dbg.stat = key
                dbg.log_scale = None
        imgui.end_combo()
    _, dbg.all_layers = imgui.checkbox("every layer", dbg.all_layers)
    if imgui.is_item_hovered():
        imgui.set_tooltip("one line per layer (off: one per layer group, its last layer)")
    imgui.same_line()
    log = STATS[dbg.stat][1] if dbg.log_scale is None else dbg.log_scale
    changed, log = imgui.checkbox("log scale", log)
    if changed:
        dbg.log_scale = log
    if td is None:
        imgui.text_disabled("loading …")
        return
    per = td.stats.get(dbg.stat, {})
    if not per:
        what = "gradients recorded in training" if dbg.stat == "grad_norm" else "snapshots"
        _hint(f"No {STATS[dbg.stat][0]} in this run (needs {what}).")
        return
    groups = app.state.snapshot.graph.groups if app.state.snapshot is not None else []
    shown = [(u, g) for u, g in td.units if u in per]
    if not dbg.all_layers:
        rep = {g.unit for g in groups}
        # group statistics: the group's unit; weights and gradients: the group's last layer
        shown = [(u, g) for u, g in shown if u in rep] or shown
    flags = implot.Flags_.no_menus | implot.Flags_.no_box_select | implot.Flags_.no_title
    if implot.begin_plot("##layerstat", imgui.ImVec2(-1, -1), flags):
        implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
        if log:
            implot.setup_axis_scale(implot.ImAxis_.y1, implot.Scale_.log10)
        implot.setup_legend(implot.Location_.north_east, implot.LegendFlags_.outside)
        for unit, group in shown:
            xs, ys = per[unit]
            if log:
                ys = np.where(ys > 0, ys, np.nan)
            label = f"{group} · {unit}" if dbg.all_layers else group
            spec = implot.Spec(
                marker=implot.Marker_.circle, marker_size=2.5, flags=implot.LineFlags_.skip_nan
            )
            implot.plot_line(label, xs, ys, spec)
        _step_markers(app)
        _click_selects_step(app, "layerstat")
        implot.end_plot()


def _flag_list(app: App) -> None:
    st = app.state
    dbg = st.debug
    n = len(app.flags)
    imgui.text(f"Flags at step {st.step}" if app.flags_step == st.step else "Flags")
    imgui.same_line()
    _, dbg.show_flags = imgui.checkbox("on the view", dbg.show_flags)
    if app.flags_step != st.step:
        imgui.text_disabled("diagnosing …")
        return
    if not n:
        imgui.text_disabled("none: nothing looks wrong")
        return
    h = max(imgui.get_content_region_avail().y - _em(3.6), _em(3))
    if imgui.begin_child("##flaglist", imgui.ImVec2(0, h)):
        for i, f in enumerate(app.flags):
            sty = style_of(f.kind)
            imgui.push_id(i)
            imgui.text_colored(imgui.ImVec4(*sty.color, 1.0), sty.icon)
            imgui.same_line()
            where = f.group if f.unit == f.group else f"{f.group} · {f.unit}"
            if imgui.selectable(f"{where}: {sty.short}##flag", False)[0]:
                app.zoom_to_flag(f)
            if imgui.is_item_hovered():
                imgui.set_tooltip(f"{f.message}\nclick: zoom to the row")
            imgui.pop_id()
    imgui.end_child()


def compare_controls(app: App) -> None:
    """Choose the step to compare with (the matrices show current − other)."""
    st = app.state
    other = st.debug.compare
    imgui.align_text_to_frame_padding()
    imgui.text("Compare with")
    imgui.same_line()
    imgui.set_next_item_width(_em(7))
    preview = "off" if other is None else f"step {other}"
    opened = imgui.begin_combo("##compare", preview)
    app.widget_ids["compare"] = imgui.get_item_id()  # tests open it by id
    if opened:
        if imgui.selectable("off", other is None)[0]:
            app.set_compare(None)
        for s in st.steps:
            if s == st.step:
                continue
            if imgui.selectable(f"step {s}", s == other)[0]:
                app.set_compare(s)
        imgui.end_combo()
    if imgui.is_item_hovered():
        imgui.set_tooltip("the activation matrices show (this step) − (that step)")
    if other is not None:
        imgui.text_colored(NOW, f"step {st.step}")
        imgui.same_line(0, _em(0.3))
        imgui.text("−")
        imgui.same_line(0, _em(0.3))
        imgui.text_colored(OTHER, f"step {other}")
        imgui.same_line()
        mx = app.compare_info.get("max_abs") if app.compare_diff is not None else None
        imgui.text_disabled("computing …" if mx is None else f"max |Δ| {mx:.0%}")


# ---------------------------------------------------------------------------- flags on the view


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


def _badges(app: App, origin: tuple[float, float], size: tuple[int, int]) -> list[Badge]:
    st = app.state
    s, snap = st.scene, st.snapshot
    if s is None or snap is None or not app.flags or app.flags_step != st.step:
        return []
    if not st.debug.show_flags:
        return []
    names = [g.name for g in snap.graph.groups]
    side = _em(1.6)
    gap = _em(0.35)
    x_lo, y_lo = origin
    x_hi, y_hi = origin[0] + size[0], origin[1] + size[1]
    out = []
    for row, flags in sorted(flag_rows(s, names, app.flags).items()):
        kinds: dict[str, list[Any]] = {}
        for f in flags:
            kinds.setdefault(f.kind, []).append(f)
        x, y0, y1 = row_right_end(s, row)
        sx, sy0 = app.screen_pos(x, y0)
        _, sy1 = app.screen_pos(x, y1)
        cy = (sy0 + sy1) / 2.0
        if cy < y_lo or cy > y_hi:
            continue
        total = len(kinds) * side + (len(kinds) - 1) * gap
        bx = min(max(sx + _em(0.8), x_lo + gap), x_hi - total - gap)
        for kind, fl in kinds.items():
            out.append(Badge(row, kind, tuple(fl), (bx, cy - side / 2, bx + side, cy + side / 2)))
            bx += side + gap
    return out


def badge_id(b: Badge) -> str:
    """The ImGui id of a badge's button (``//Network/##flag_<row>_<kind>`` in tests)."""
    return f"##flag_{b.row}_{b.kind}"


def flag_badges(
    app: App, origin: tuple[float, float], size: tuple[int, int]
) -> list[tuple[Badge, bool]]:
    """Submit the badges' buttons (call *before* the view's own button, so they win the hover)
    and handle their clicks; returns ``(badge, hovered)`` for :func:`draw_flag_badges`."""
    badges = _badges(app, origin, size)
    app.flag_badges = [(b.flags[0], b.rect) for b in badges]
    app.flag_tooltip = None
    out = []
    for b in badges:
        x0, y0, x1, y1 = b.rect
        imgui.set_cursor_screen_pos(imgui.ImVec2(x0, y0))
        if imgui.invisible_button(badge_id(b), imgui.ImVec2(x1 - x0, y1 - y0)):
            app.zoom_to_row(b.row)
        out.append((b, imgui.is_item_hovered()))
    return out


def draw_flag_badges(app: App, items: list[tuple[Badge, bool]]) -> None:
    """Draw the badges over the view image; the hovered one shows its message."""
    dl = imgui.get_window_draw_list()
    dark = app.state.theme == "dark"
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
            app.flag_tooltip = b.message
            imgui.begin_tooltip()
            imgui.text_colored(
                imgui.ImVec4(*sty.color, 1.0),
                f"{sty.icon}  {sty.label} · {b.flags[0].group}",
            )
            for f in b.flags:
                imgui.text(f.message)
            imgui.text_disabled("click: zoom to the row")
            imgui.end_tooltip()


def compare_legend(app: App, origin: tuple[float, float], size: tuple[int, int]) -> None:
    """Bottom right of the view: which step is which, and the diverging scale."""
    st = app.state
    other = st.debug.compare
    if other is None or st.scene is None:
        return
    dl = imgui.get_window_draw_list()
    pad = _em(0.5)
    title = f"Activation matrices: step {st.step} − step {other}"
    sub = (
        "computing …"
        if app.compare_diff is None
        else "blue: lower now · red: higher now (per layer, of its range)"
    )
    tw = max(imgui.calc_text_size(title).x, imgui.calc_text_size(sub).x)
    lh = imgui.get_text_line_height()
    bar_h = lh * 0.7
    w = tw + 2 * pad
    h = 2 * lh + bar_h + 3 * pad
    x1 = origin[0] + size[0] - _em(0.6)
    x0 = x1 - w
    y0 = origin[1] + size[1] - h - _em(0.6)
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
    from ..render.theme import diverging_colormap

    cm = diverging_colormap(st.theme)
    by = y0 + 2 * pad + 2 * lh
    n = 32
    bw = (w - 2 * pad) / n
    for i in range(n):
        rgb = cm[int(i * 255 / (n - 1))]
        col = imgui.get_color_u32(imgui.ImVec4(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, 1.0))
        bx = x0 + pad + i * bw
        dl.add_rect_filled(imgui.ImVec2(bx, by), imgui.ImVec2(bx + bw + 0.5, by + bar_h), col)
