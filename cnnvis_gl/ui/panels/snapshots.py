"""The Snapshots panel: the snapshot timeline, follow mode, per-layer debug statistics of
the step shown and the step to compare with (the learning curves and statistics over the
run are in the Training panel, :mod:`.training`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...analysis.diagnose import DEAD_FRACTION, RELU_OPS
from ..widgets import (
    RED,
    columns,
    em,
    hint,
    num,
)
from .compare import compare_controls

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["snapshots_panel"]


def snapshots_panel(st: AppState, act: Actions) -> None:
    """Timeline of snapshots, follow mode, per-layer statistics, learning curves."""
    if not columns("snap_layout", [("timeline", 1.0), ("stats", 1.5), ("curves", 1.0)]):
        return
    _timeline(st, act)
    imgui.table_next_column()
    _layer_stats(st, act)
    imgui.table_next_column()
    _debug_summary(st, act)
    imgui.end_table()


def _timeline(st: AppState, act: Actions) -> None:
    changed, follow = imgui.checkbox("Follow the newest snapshot", st.follow)
    if changed:
        act.set_follow(follow)
    steps = st.steps
    if not steps:
        imgui.text_disabled("no snapshots yet")
        return
    pos = steps.index(st.step) if st.step in steps else len(steps) - 1
    imgui.begin_disabled(pos <= 0)
    if imgui.arrow_button("##prev", imgui.Dir.left):
        act.open_step(steps[pos - 1])
    imgui.end_disabled()
    imgui.same_line()
    imgui.set_next_item_width(-em(2.4))
    changed, new = imgui.slider_int("##step", pos, 0, len(steps) - 1, f"step {steps[pos]}")
    if imgui.is_item_deactivated_after_edit() or (changed and not imgui.is_item_active()):
        act.open_step(steps[new])
    imgui.same_line()
    imgui.begin_disabled(pos >= len(steps) - 1)
    if imgui.arrow_button("##next", imgui.Dir.right):
        act.open_step(steps[pos + 1])
    imgui.end_disabled()
    if not st.follow:
        if imgui.small_button("Look for new snapshots"):
            act.refresh_steps()
    snap = st.snapshot
    if snap is not None:
        meta = snap.meta
        err = meta.get("probe_error")
        hint(
            f"{len(steps)} snapshot(s) · {meta.get('n_images', '?')} images"
            + (f" · probe error {err:.1%}" if isinstance(err, float) else "")
            + f"\nmodel {meta.get('model', '?')} · {meta.get('dataset', '?')}"
        )
        gates, attentions = snap.graph.left_out_kinds()
        st.panels.left_out, st.panels.left_out_tooltip = _note(
            gates,
            f"{len(gates)} gate branch{'es' * (len(gates) > 1)} left out",
            "Gates computed from tensors that are no maps (coordinate or triplet attention, SGE,\n"
            "SRM) count as 1: the gated maps keep their channels, the units after them measure\n"
            "the real values (docs/GRAPH.md).",
        )
        st.panels.attention, st.panels.attention_tooltip = _note(
            attentions,
            f"{len(attentions)} attention layer{'s' * (len(attentions) > 1)}",
            "Attention (non-local blocks, transformer blocks on a map's tokens) mixes each value\n"
            "channel over the positions with weights from the data: the value channels keep\n"
            "their identity, the queries and keys that weigh them are left out, and every\n"
            "position after it sees the whole image (docs/GRAPH.md).",
        )
        dynamic = [lay.name for lay in snap.graph.layers if lay.params.get("per_sample")]
        st.panels.per_sample, st.panels.per_sample_tooltip = _note(
            dynamic,
            f"{len(dynamic)} per-sample convolution{'s' * (len(dynamic) > 1)}",
            "Dynamic convolutions (CondConv, DynamicConv, ODConv) convolve each image with its\n"
            "own kernels: their units measure every image's real responses; the weights of\n"
            "their edges are the kernels a zero image gets, their attention's layers dropped\n"
            "(docs/GRAPH.md).",
        )


def _note(
    names: list[str], what: str, why: str, shown: int = 12
) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """A line saying how many of something the graph reads in its own way (the list and why
    on hover); its screen rect and the tooltip shown this frame (None where there is none)."""
    if not names:
        return None, None
    imgui.push_text_wrap_pos(0.0)  # (wrapped in a narrow column)
    imgui.text_disabled(f"{what} (hover)")
    imgui.pop_text_wrap_pos()
    lo, hi = imgui.get_item_rect_min(), imgui.get_item_rect_max()
    tip = None
    if imgui.is_item_hovered():
        more = f"\n… and {len(names) - shown} more" if len(names) > shown else ""
        tip = why + "\n\n" + "\n".join(names[:shown]) + more
        imgui.set_tooltip(tip)
    return (lo.x, lo.y, hi.x, hi.y), tip


def _layer_stats(st: AppState, act: Actions) -> None:
    snap = st.snapshot
    if snap is None:
        return
    units = snap.meta.get("units", {})
    weights = snap.meta.get("weights", {})
    flags = (
        imgui.TableFlags_.row_bg
        | imgui.TableFlags_.scroll_y
        | imgui.TableFlags_.borders_inner_v
        | imgui.TableFlags_.sizing_stretch_prop
    )
    if not imgui.begin_table("layerstats", 5, flags, imgui.ImVec2(0, -1)):
        return
    imgui.table_setup_scroll_freeze(0, 1)
    for name in ("Group", "act mean", "act std", "dead", "|W|"):
        imgui.table_setup_column(name)
    imgui.table_headers_row()
    for g in snap.graph.groups:
        u = units.get(g.unit, {})
        imgui.table_next_row()
        imgui.table_next_column()
        imgui.text(g.name)
        if imgui.is_item_hovered():
            imgui.set_tooltip(f"layer {g.unit} (the group's neurons)")
        bad = u.get("nonfinite_fraction") or 0.0
        for key in ("act_mean", "act_std"):
            imgui.table_next_column()
            _number_cell(u.get(key), bad > 0, f"{bad:.0%} of the neurons respond NaN or ±inf")
        imgui.table_next_column()
        dead = u.get("dead_fraction")
        # (as the flags: "never > 0" is dead only after a ReLU; logits are often negative)
        relu = snap.graph.layer(snap.graph.unit(g.unit).tap).op in RELU_OPS
        if isinstance(dead, float) and dead >= DEAD_FRACTION and relu:
            imgui.text_colored(RED, f"{dead:.0%}")
            if imgui.is_item_hovered():
                imgui.set_tooltip("dead layer: most neurons never respond")
        else:
            imgui.text(f"{dead:.0%}" if isinstance(dead, float) else "–")
        imgui.table_next_column()
        w = weights.get(g.unit, {})
        _number_cell(w.get("norm"), "norm" in w and w["norm"] is None, "the weights hold NaN or ±inf")
    imgui.end_table()


def _number_cell(v: object, broken: bool, why: str) -> None:
    """A statistic, or a red "NaN/inf" (with ``why`` on hover) where it is not a number."""
    if broken and not isinstance(v, (int, float)):
        imgui.text_colored(RED, "NaN/inf")
        if imgui.is_item_hovered():
            imgui.set_tooltip(why)
    else:
        imgui.text(num(v))


def _debug_summary(st: AppState, act: Actions) -> None:
    """Compare with another step; the number of flags (details in the Training panel)."""

    compare_controls(st, act)
    if st.debug.flags_step == st.step:
        n = len(st.debug.flags)
        kinds = sorted({f.kind.replace("_", " ") for f in st.debug.flags})
        if n:
            imgui.text_colored(RED, f"{n} flag(s): {', '.join(kinds)}")
        else:
            imgui.text_disabled("no flags at this step")
    hint("Learning curves, per-layer statistics over the run and the flags: Training tab.")
