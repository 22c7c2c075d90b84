"""The "Training" panel (docked with Snapshots): learning curves from
``scalars.jsonl``, one per-layer statistic over the snapshots (a combo picks it), the flags of
the snapshot shown and the step to compare with.  A vertical line marks the current step
(yellow) and the compared step (cyan); a click in a plot opens the nearest snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from imgui_bundle import imgui, implot

from ..training import STATS, Line, layer_lines, learning_lines, style_of
from ..widgets import (
    NOW,
    OTHER,
    columns,
    em,
    hint,
)
from .compare import compare_controls

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["training_panel"]



def training_panel(st: AppState, act: Actions) -> None:
    """Learning curves | per-layer statistic | flags and compare (three resizable columns)."""
    if st.snapshot is None:
        hint(st.jobs.message or "Loading …")
        return
    if not columns("training_layout", [("curves", 1.3), ("stats", 1.2), ("flags", 1.0)]):
        return
    implot.push_style_var(implot.StyleVar_.fit_padding, imgui.ImVec2(0.03, 0.1))
    _learning_curves(st, act)
    imgui.table_next_column()
    _layer_statistic(st, act)
    implot.pop_style_var()
    imgui.table_next_column()
    _flag_list(st, act)
    imgui.separator()
    compare_controls(st, act)
    imgui.end_table()


def _step_markers(st: AppState, act: Actions) -> None:
    """Vertical lines at the current and the compared step."""
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


def _click_selects_step(st: AppState, act: Actions, plot: str) -> None:
    """Inside a plot: remember where each snapshot step is; a click opens the nearest one."""
    lim = implot.get_plot_limits()
    ymid = (lim.y.min + lim.y.max) / 2.0
    pts: dict[int, tuple[float, float]] = {}
    for s in st.steps:
        if lim.x.min <= s <= lim.x.max:
            p = implot.plot_to_pixels(implot.Point(float(s), ymid))
            pts[int(s)] = (p.x, p.y)
    st.panels.plot_points[plot] = pts
    if implot.is_plot_hovered():
        m = implot.get_plot_mouse_pos()
        step = act.inspect.nearest_step(m.x)
        if step is not None:
            imgui.set_tooltip(f"click: open the snapshot of step {step}")
            released = imgui.is_mouse_released(imgui.MouseButton_.left)
            moved = imgui.get_io().mouse_drag_max_distance_sqr[0] > 16.0
            if released and not moved and step != st.step:
                act.open_step(step)


def _learning_curves(st: AppState, act: Actions) -> None:
    td = st.debug.training
    imgui.align_text_to_frame_padding()
    imgui.text("Learning curves")
    imgui.text_disabled("loss (left), error (right)")
    if td is None:
        imgui.text_disabled("loading …")
        return
    if not td.curves:
        hint("No scalars recorded (Recorder.step(step, train_loss=…) writes scalars.jsonl).")
        return
    lines = learning_lines(td)
    st.panels.plotted["learning"] = lines
    flags = implot.Flags_.no_menus | implot.Flags_.no_box_select | implot.Flags_.no_title
    if implot.begin_plot("##learning", imgui.ImVec2(-1, -1), flags):
        implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
        _step_ticks(lines)
        if any(line.right for line in lines):
            implot.setup_axis(
                implot.ImAxis_.y2, "", implot.AxisFlags_.auto_fit | implot.AxisFlags_.opposite
            )
        implot.setup_legend(implot.Location_.east, implot.LegendFlags_.outside)
        for line in lines:
            y_axis = implot.ImAxis_.y2 if line.right else implot.ImAxis_.y1
            implot.set_axes(implot.ImAxis_.x1, y_axis)
            _plot(line, marker_size=3.0)
        implot.set_axes(implot.ImAxis_.x1, implot.ImAxis_.y1)
        _step_markers(st, act)
        _click_selects_step(st, act, "learning")
        implot.end_plot()


def _step_ticks(lines: list[Line]) -> None:
    """Few steps (one snapshot): ticks at the steps themselves, not fractions of a step
    (``311.8 312 312.2`` ran into each other)."""
    xs = np.unique(np.concatenate([np.asarray(line.xs, dtype=np.float64) for line in lines] or [np.zeros(0)]))
    xs = xs[np.isfinite(xs)]
    if 0 < len(xs) and xs[-1] - xs[0] < 5:
        ticks = xs[np.linspace(0, len(xs) - 1, min(len(xs), 4)).round().astype(int)]
        implot.setup_axis_ticks(implot.ImAxis_.x1, [float(t) for t in ticks], [f"{t:g}" for t in ticks])


def _plot(line: Line, marker_size: float) -> None:
    spec = implot.Spec(flags=implot.LineFlags_.skip_nan)
    if line.markers:  # evaluations, probe points: show the points
        spec.marker = implot.Marker_.circle
        spec.marker_size = marker_size
    implot.plot_line(line.label, line.xs, line.ys, spec)


def _layer_statistic(st: AppState, act: Actions) -> None:
    dbg = st.debug
    td = dbg.training
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
        name = STATS[dbg.stat][0]
        if dbg.stat == "grad_norm":
            hint(f"No {name} in this run (needs gradients recorded in training).")
        elif td.steps:  # every snapshot's is null: not a number
            hint(f"The {name} is NaN or ±inf at every step: see the flags.")
        else:
            hint(f"No {name} in this run (needs snapshots).")
        return
    groups = st.snapshot.graph.groups if st.snapshot is not None else []
    lines = layer_lines(td, dbg.stat, dbg.all_layers, log, {g.unit for g in groups})
    st.panels.plotted["layerstat"] = lines
    flags = implot.Flags_.no_menus | implot.Flags_.no_box_select | implot.Flags_.no_title
    if implot.begin_plot("##layerstat", imgui.ImVec2(-1, -1), flags):
        implot.setup_axes("step", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
        _step_ticks(lines)
        if log:
            implot.setup_axis_scale(implot.ImAxis_.y1, implot.Scale_.log10)
        implot.setup_legend(implot.Location_.north_east, implot.LegendFlags_.outside)
        for line in lines:
            _plot(line, marker_size=2.5)
        _step_markers(st, act)
        _click_selects_step(st, act, "layerstat")
        implot.end_plot()


def _flag_list(st: AppState, act: Actions) -> None:
    dbg = st.debug
    n = len(st.debug.flags)
    imgui.text(f"Flags at step {st.step}" if st.debug.flags_step == st.step else "Flags")
    imgui.same_line()
    _, dbg.show_flags = imgui.checkbox("on the view", dbg.show_flags)
    if st.debug.flags_step != st.step:
        imgui.text_disabled("diagnosing …")
        return
    if not n:
        imgui.text_disabled("none: nothing looks wrong")
        return
    h = max(imgui.get_content_region_avail().y - em(3.6), em(3))
    if imgui.begin_child("##flaglist", imgui.ImVec2(0, h)):
        clipper = imgui.ListClipper()  # a big network's many flags: only the lines in view
        clipper.begin(n)
        while clipper.step():
            for i in range(clipper.display_start, clipper.display_end):
                f = st.debug.flags[i]
                sty = style_of(f.kind)
                imgui.push_id(i)
                imgui.text_colored(imgui.ImVec4(*sty.color, 1.0), sty.icon)
                imgui.same_line()
                where = f.group if f.unit == f.group else f"{f.group} · {f.unit}"
                if imgui.selectable(f"{where}: {sty.short}##flag", False)[0]:
                    act.zoom_to_flag(f)
                if imgui.is_item_hovered():
                    imgui.set_tooltip(f"{f.message}\nclick: zoom to the row")
                imgui.pop_id()
        clipper.end()
    imgui.end_child()
