"""The Controls panel: facet for all, edge threshold, classes, clustering per layer group,
expand / collapse (groups into layers, stages into one row), undo / redo, theme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...layout.hierarchy import innermost_stages, stages
from ...layout.options import METHODS
from ...remember import Remembered
from ..widgets import (
    FACETS,
    THEMES,
    em,
    hint,
    section,
)
from .find import find_box

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["controls_panel"]


def controls_panel(st: AppState, act: Actions) -> None:
    """Facets, edges, classes, clustering per group, edit history, theme."""
    if st.scene is None:
        hint(st.jobs.message or "Loading …")
        return

    find_box(st, act)
    if section("View"):
        imgui.text("Facet of all clusters")
        for f, name in enumerate(FACETS):
            if imgui.radio_button(name, st.facet == f) and st.facet != f:
                act.set_facet(f)
            if f == 0:
                imgui.same_line()
        imgui.spacing()
        imgui.text("Edge threshold")
        imgui.set_next_item_width(-1)
        pct = int(round(st.edge_fraction * 100))
        changed, pct = imgui.slider_int("##edges", pct, 1, 100, "keep top %d%% by |w|")
        if changed:
            act.preview_threshold(pct / 100.0)
        if imgui.is_item_deactivated_after_edit():
            act.set_threshold(pct / 100.0)
        changed, on = imgui.checkbox("Neuron edges when zoomed in", st.neuron_edges)
        if changed:
            act.set_neuron_edges(on)
        if imgui.is_item_hovered():
            imgui.set_tooltip(
                "Zoomed in so that patches are large, the edges join neurons instead of\n"
                "clusters: the same top fraction of the neuron weights between the clusters\n"
                "in view, bundled the same way; cluster edges stay faintly as context."
            )
        if st.debug.neuron_edges_info:
            imgui.text_disabled(st.debug.neuron_edges_info)
        if imgui.button("Fit all"):
            act.fit_all()
        imgui.same_line()
        imgui.text("Theme")
        imgui.same_line()
        imgui.set_next_item_width(em(6))
        if imgui.begin_combo("##theme", st.theme):
            for t in THEMES:
                if imgui.selectable(t, t == st.theme)[0]:
                    act.set_theme(t)
            imgui.end_combo()

    if section("Classes"):
        _classes(st, act)

    if section("Layer groups"):
        _all_stages(st, act)
        _groups(st, act)

    if section("Edits"):
        _edits(st, act)


def _classes(st: AppState, act: Actions) -> None:
    assert st.snapshot is not None
    names = st.snapshot.classes
    sel = set(st.selection.classes)
    hint("Highlight the neurons a class activates most; dim the rest.")
    cols = 2 if imgui.get_content_region_avail().x > em(14) else 1
    if imgui.begin_table("classes", cols):
        for c, name in enumerate(names):
            imgui.table_next_column()
            on = c in sel
            changed, on = imgui.checkbox(f"{name}##class{c}", on)
            if changed:
                new = set(sel)
                (new.add if on else new.discard)(c)
                act.select_classes(new)
        imgui.end_table()
    if imgui.button("Clear##classes"):
        act.select_classes(set())
    imgui.same_line()
    imgui.set_next_item_width(-1)
    q = int(round(st.selection.quantile * 100))
    changed, q = imgui.slider_int("##quantile", q, 1, 100, "top %d%% of each layer")
    if changed:
        act.select_classes(sel, quantile=q / 100.0)


def _all_stages(st: AppState, act: Actions) -> None:
    """"Collapse all stages" (the network's overview: every stage holding no other as one row)
    and "Expand all", when the network has stages."""
    assert st.snapshot is not None
    inner = innermost_stages(st.snapshot.graph)
    if not inner:
        return
    imgui.begin_disabled(act.edit_pending or st.collapsed == set(inner))
    if imgui.button("Collapse all stages"):
        act.set_collapsed_stages(set(inner))
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip(f"{', '.join(inner)}: each as one row (its output)")
    imgui.same_line()
    imgui.begin_disabled(act.edit_pending or not st.collapsed)
    if imgui.button("Expand all"):
        act.set_collapsed_stages(set())
    imgui.end_disabled()


def _groups(st: AppState, act: Actions) -> None:
    assert st.snapshot is not None
    busy = act.edit_pending
    flags = (
        imgui.TableFlags_.row_bg
        | imgui.TableFlags_.borders_inner_h
        | imgui.TableFlags_.sizing_stretch_prop
    )
    if not imgui.begin_table("groups", 4, flags):
        return
    imgui.table_setup_column("Group", imgui.TableColumnFlags_.width_stretch, 1.0)
    imgui.table_setup_column("Method", imgui.TableColumnFlags_.width_fixed, em(6.2))
    imgui.table_setup_column("k", imgui.TableColumnFlags_.width_fixed, em(4.6))
    imgui.table_setup_column("Expand", imgui.TableColumnFlags_.width_fixed, em(3.4))
    imgui.table_headers_row()
    graph = st.snapshot.graph
    items = _table_lines(graph, frozenset(st.collapsed))
    clipper = imgui.ListClipper()  # a 150-layer network: only the lines in view are submitted
    clipper.begin(len(items))
    while clipper.step():
        for line in items[clipper.display_start : clipper.display_end]:
            if line[0] == "stage":
                _stage_row(st, act, *line[1:])
            else:
                _group_row(st, act, *line[1:], busy=busy)
    clipper.end()
    imgui.end_table()


_lines: Remembered[list[tuple]] = Remembered()


def _table_lines(graph, collapsed: frozenset[str]) -> list[tuple]:
    """The table's lines in order: ``("stage", path, groups, depth)`` before a stage's first
    group, ``("group", index, depth, in a collapsed stage)``; a collapsed stage's groups but
    its last (whose clustering its row shows) are left out.  Remembered for the last graph."""
    return _lines.get((graph,), collapsed, lambda: _make_lines(graph, collapsed))


def _make_lines(graph, collapsed: frozenset[str]) -> list[tuple]:
    tree = stages(graph)
    hidden = {gi for p in collapsed if p in tree for gi in tree[p][:-1]}
    inside = {gi for p in collapsed if p in tree for gi in tree[p]}
    lines = []
    for gi in range(len(graph.groups)):
        for path, idx in tree.items():
            if idx[0] == gi and not hidden.issuperset(idx):
                lines.append(("stage", path, idx, _depth(tree, idx)))
        if gi not in hidden:
            lines.append(("group", gi, _depth(tree, (gi,)), gi in inside))
    return lines


def _group_row(st: AppState, act: Actions, gi: int, depth: int, in_collapsed: bool, busy: bool) -> None:
    """A group's line: clustering method and k, and (several layers) its Expand box."""
    assert st.snapshot is not None
    graph = st.snapshot.graph
    g = graph.groups[gi]
    gs = st.groups.get(g.name)
    if gs is None:
        return
    imgui.push_id(g.name)
    imgui.table_next_row()
    imgui.table_next_column()
    imgui.align_text_to_frame_padding()
    n = graph.unit(g.unit).channels
    imgui.text("  " * depth + g.name)
    if imgui.is_item_hovered():
        imgui.set_tooltip(f"{n} neurons · layers {', '.join(g.units)}")
    imgui.table_next_column()
    imgui.set_next_item_width(-1)
    imgui.begin_disabled(busy)
    if imgui.begin_combo("##method", "K-Means" if gs.method == "kmeans" else "MeanShift"):
        for m in METHODS:
            label = "K-Means" if m == "kmeans" else "MeanShift"
            if imgui.selectable(label, m == gs.method)[0] and m != gs.method:
                gs.method = m
                act.set_clustering(g.name, gs.method, gs.k or None)
        imgui.end_combo()
    imgui.table_next_column()
    imgui.set_next_item_width(-1)
    imgui.begin_disabled(gs.method != "kmeans")
    changed, k = imgui.slider_int("##k", gs.k, 0, min(n, 32), "auto" if gs.k == 0 else "%d")
    if changed:
        gs.k = int(min(max(k, 0), max(n, 1)))
    if imgui.is_item_deactivated_after_edit():
        act.set_clustering(g.name, gs.method, gs.k or None)
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("number of clusters (auto: best silhouette)")
    imgui.end_disabled()
    imgui.table_next_column()
    if len(g.units) > 1 and not in_collapsed:
        changed, on = imgui.checkbox("##expand", gs.expanded)
        if changed:
            act.set_expanded(g.name, on)
        if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
            imgui.set_tooltip("expand the group into one row per layer")
    else:
        imgui.text_disabled("–")
    imgui.end_disabled()
    imgui.pop_id()


def _depth(tree: dict[str, tuple[int, ...]], idx: tuple[int, ...]) -> int:
    """How many stages hold all of ``idx`` (and more): the indent of its line."""
    return sum(1 for j in tree.values() if set(idx) < set(j) or (len(idx) == 1 and idx[0] in j))


def _stage_row(st: AppState, act: Actions, path: str, idx: tuple[int, ...], depth: int) -> None:
    """A stage's line: its module path and an Expand box (unticked: one row, the stage's output)."""
    imgui.push_id(f"stage:{path}")
    imgui.table_next_row()
    imgui.table_next_column()
    imgui.align_text_to_frame_padding()
    collapsed = path in st.collapsed
    imgui.text("  " * depth + ("+ " if collapsed else "- ") + path)
    groups = st.snapshot.graph.groups if st.snapshot is not None else []
    tip = f"stage {path}: " + ", ".join(groups[i].name for i in idx) if groups else path
    if imgui.is_item_hovered():
        imgui.set_tooltip(tip)
    imgui.table_next_column()
    imgui.text_disabled(f"{len(idx)} groups")
    if imgui.is_item_hovered():
        imgui.set_tooltip(tip)
    imgui.table_next_column()
    imgui.table_next_column()
    imgui.begin_disabled(act.edit_pending)
    changed, on = imgui.checkbox("##stage", not collapsed)
    if changed:
        act.set_collapsed(path, not on)
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("untick: the stage as one row (its output, edges through its groups)")
    imgui.end_disabled()
    imgui.pop_id()


def _edits(st: AppState, act: Actions) -> None:
    h = st.history
    busy = act.edit_pending
    _history_button("Undo", "Ctrl+Z", h.undo, busy, act.undo)
    imgui.same_line()
    _history_button("Redo", "Ctrl+Shift+Z", h.redo, busy, act.redo)
    imgui.same_line()
    imgui.begin_disabled(busy or not st.edits.pinned)
    if imgui.button("Reset clustering"):
        act.reset_clustering()
    imgui.end_disabled()
    if h.undo:
        imgui.text_disabled(f"last: {h.undo[-1].label}")
    if st.edits.pinned:
        imgui.text_disabled("edited clustering saved in layout.json")
    hint("Drag a neuron onto another cluster (or onto empty space of its row) to move it.")


def _history_button(label: str, keys: str, entries: list, busy: bool, act) -> None:
    """Undo or redo: disabled with nothing to do or while an edit runs; the tooltip names it."""
    imgui.begin_disabled(not entries or busy)
    if imgui.button(label):
        act()
    imgui.end_disabled()
    if entries and imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip(f"{keys}: {entries[-1].label}")
