"""The Two runs panel: a second run's network beside this one, following the view, and the
two runs compared group by group (``cnnvis view RUN --compare RUN_B``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ..widgets import em, entry, hint

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["TITLE", "runs_panel"]

TITLE = "Two runs"
COLUMNS = ("A", "B", "neurons", "clusters", "near-dup.", "positive", "CKA")
TIPS = (
    "the layer group of this run (click: frame it; run B follows)",
    "the matched group of run B (same name, else the same relative depth)",
    "neurons of A / of B",
    "clusters of A / of B",
    "share of neurons with a near-duplicate class profile (redundancy: the paper's sign of an\n"
    "over-wide layer)",
    "share of positive weights among the strongest edges into the group (~100 %: no inhibition)",
    "linear CKA of the two groups' responses to the same probe images (1: the same\n"
    "representation up to rotation and scale)",
)


def runs_panel(st: AppState, act: Actions) -> None:
    other = act.other
    run = other.run
    if run is None:
        _open_row(st, act)
        if other.loading:
            imgui.text_disabled(f"opening and laying out {other.want} …")
        elif other.error:
            hint(f"cannot compare: {other.error}")
        else:
            hint("Open a second run of a model on the same data (a wider model, the model before "
                 "fine-tuning …): its network is drawn beside this one, framing the layers the "
                 "view shows, and the two are compared group by group.")  # fmt: skip
        return
    imgui.text(f"B: {run.name}")
    imgui.same_line()
    imgui.text_disabled(f"step {run.snapshot.step}")
    imgui.same_line()
    if imgui.small_button("Close###close_other"):
        other.open(None)
        return
    avail = imgui.get_content_region_avail()
    table_h = em(1.45) * (min(len(run.rows), 8) + 1) + em(2.6)
    w, h = int(avail.x), int(max(avail.y - table_h, em(8)))
    if w >= 8 and h >= 8:
        _view(st, act, w, h)
    _table(st, act)


def _open_row(st: AppState, act: Actions) -> None:
    p = st.panels
    p.other_path, go = entry("##other_path", "run directory to compare with", p.other_path,
                             "Open###open_other")  # fmt: skip
    if go:
        act.other.open(p.other_path)


def _view(st: AppState, act: Actions, w: int, h: int) -> None:
    """Run B's network, following the network view; hover: what a cluster is."""
    other = act.other
    origin = imgui.get_cursor_screen_pos()
    other.follow((w, h), imgui.get_io().delta_time)
    glo = other.render((w, h))
    st.panels.other_view = (origin.x, origin.y, float(w), float(h))
    if not glo:
        return
    imgui.image(imgui.ImTextureRef(glo), imgui.ImVec2(w, h), imgui.ImVec2(0, 1), imgui.ImVec2(1, 0))
    if imgui.is_item_hovered():
        m = imgui.get_io().mouse_pos
        ci = other.cluster_at(m.x - origin.x, m.y - origin.y)
        if ci is not None:
            imgui.set_tooltip("\n".join(other.cluster_text(ci)))
    dl = imgui.get_window_draw_list()
    shown = ", ".join(other.run.pairs[g] for g in other.shown if g in other.run.pairs)
    dl.add_text(imgui.ImVec2(origin.x + em(0.4), origin.y + em(0.3)),
                imgui.get_color_u32(imgui.Col_.text_disabled), f"B: {shown}")  # fmt: skip


def _table(st: AppState, act: Actions) -> None:
    run = act.other.run
    assert run is not None
    cka = run.cka
    flags = (
        imgui.TableFlags_.row_bg
        | imgui.TableFlags_.borders_inner_v
        | imgui.TableFlags_.scroll_y
        | imgui.TableFlags_.scroll_x
        | imgui.TableFlags_.sizing_fixed_fit
    )
    height = em(1.45) * (min(len(run.rows), 8) + 1) + em(1.2)  # (+ the horizontal scroll bar)
    if not imgui.begin_table("##runs_table", len(COLUMNS), flags, imgui.ImVec2(-1, height)):
        return
    imgui.table_setup_scroll_freeze(0, 1)
    for name in COLUMNS:
        imgui.table_setup_column(name)
    imgui.table_next_row(imgui.TableRowFlags_.headers)
    for k, name in enumerate(COLUMNS):
        imgui.table_set_column_index(k)
        imgui.table_header(name)
        if imgui.is_item_hovered():
            imgui.set_tooltip(TIPS[k])

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    for r in run.rows:
        imgui.table_next_row()
        imgui.table_next_column()
        shown = r.a in act.other.shown
        sel = imgui.selectable(
            f"{r.a}##pair_{r.a}", shown, imgui.SelectableFlags_.span_all_columns
        )[0]
        if sel:
            act.zoom_to_groups([r.a])
        cells = (
            r.b,
            f"{r.neurons[0]} / {r.neurons[1]}",
            f"{r.clusters[0]} / {r.clusters[1]}",
            f"{pct(r.redundancy[0])} / {pct(r.redundancy[1])}",
            f"{pct(r.positive[0])} / {pct(r.positive[1])}",
            "…"
            if cka is None
            else "—"
            if isinstance(cka, str)
            else f"{cka.get(r.a, float('nan')):.2f}",
        )
        for text in cells:
            imgui.table_next_column()
            imgui.text(text)
    imgui.end_table()
    if cka is None:
        imgui.text_disabled("CKA: running both models on the probe images …")
    elif isinstance(cka, str):
        hint(f"no CKA: {cka}")
