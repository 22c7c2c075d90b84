"""The Neuron panel: the selected neuron's top-k patches, per-class bar chart, strongest
in / out edges, and the command that moves it to another cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from imgui_bundle import imgui, implot

from ..widgets import (
    GREEN,
    RED,
    em,
    hint,
    image_fit,
)

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["neuron_panel"]


def neuron_panel(st: AppState, act: Actions) -> None:
    """The selected neuron: top-k patches, per-class bar chart, strongest edges, move."""
    s = st.scene
    key = st.selection.neuron
    i = st.neuron_index(key)
    if s is None or key is None or i is None or st.snapshot is None:
        hint("Click a neuron (a patch or a matrix row) in the network view.")
        return
    unit, ch = key
    ci = int(s.neurons.cluster[i])
    imgui.text(f"Neuron {ch}")
    imgui.same_line()
    imgui.text_disabled(f"layer {unit} · cluster {st.cluster_name(ci)}")

    avail = imgui.get_content_region_avail().x
    if imgui.begin_table("neuron_top", 2, imgui.TableFlags_.sizing_stretch_prop):
        imgui.table_setup_column("patches", imgui.TableColumnFlags_.width_stretch, 1.0)
        imgui.table_setup_column("classes", imgui.TableColumnFlags_.width_stretch, 1.0)
        imgui.table_next_row()
        imgui.table_next_column()
        if st.snapshot.silent(unit)[ch]:
            hint(
                "It never responds above 0 on the probe images (a dead neuron): no image moves it"
                " more than another, so its top images (grey) show nothing it learned."
            )
        elif (tex := act.inspect.topk_picture(key)) is None:
            imgui.text_disabled("loading top-k patches …")
        else:
            image_fit(tex.glo, tex.size, imgui.get_content_region_avail().x, em(16))
            if imgui.is_item_hovered():
                imgui.set_tooltip("the receptive fields of the images that activate it most")
        imgui.table_next_column()
        _class_bars(st, act, unit, ch, max(avail * 0.5, em(10)))
        imgui.end_table()

    _class_drill_down(st, act, key)
    _edge_lists(st, act, i)
    imgui.separator()
    _move_controls(st, act, i, ci)


def _class_drill_down(st: AppState, act: Actions, key: tuple[str, int]) -> None:
    """The neuron's top images of one class (a clicked matrix cell, or the class chosen here)."""
    snap = st.snapshot
    assert snap is not None
    unit, ch = key
    names = snap.classes
    cls = st.selection.neuron_class
    imgui.align_text_to_frame_padding()
    imgui.text("Top images of class")
    imgui.same_line()
    imgui.set_next_item_width(em(9))
    current = names[cls] if cls is not None and 0 <= cls < len(names) else "(choose)"
    if imgui.begin_combo("##drillclass", current):
        for k, name in enumerate(names):
            if imgui.selectable(name, k == cls)[0]:
                st.selection.neuron_class = k
        imgui.end_combo()
    if cls is None or not 0 <= cls < len(names):
        hint("click a cell of an activation matrix, or choose a class")
        return
    if not snap.has_class_topk(unit):
        hint("this snapshot keeps no per-class top images (analysed before cnnvis_gl kept them,"
             " or more than 100 classes); analyse the model again")  # fmt: skip
        return
    values, index = snap.class_topk(unit, int(ch), int(cls))
    if len(values) == 0:
        hint(f"no image of class {names[cls]} among the probe images")
        return
    tex = act.inspect.class_topk_picture(key, int(cls))
    if tex is None:
        imgui.text_disabled("loading …")
    else:
        image_fit(tex.glo, tex.size, imgui.get_content_region_avail().x, em(6))
        if imgui.is_item_hovered():
            imgui.set_tooltip(
                f"the receptive fields of the {names[cls]} images that activate it most"
            )
    mean = float(act.inspect.class_means(unit)[ch][cls])
    hint(
        "responses " + ", ".join(f"{v:.3g}" for v in values)
        + f" (images {', '.join(str(int(j)) for j in index)}); {names[cls]} mean {mean:.3g}"
    )  # fmt: skip


def _class_bars(st: AppState, act: Actions, unit: str, ch: int, width: float) -> None:
    assert st.snapshot is not None
    vals = act.inspect.class_means(unit)[ch].astype(np.float64)
    names = st.snapshot.classes
    K = len(names)
    h = max(min(em(1.25) * K + em(1.6), em(15)), em(7))
    flags = implot.Flags_.no_legend | implot.Flags_.no_menus | implot.Flags_.no_box_select
    if implot.begin_plot("##classbars", imgui.ImVec2(-1, h), flags):
        implot.setup_axes("", "", implot.AxisFlags_.no_tick_labels, implot.AxisFlags_.invert)
        implot.setup_axis_ticks(implot.ImAxis_.y1, [float(k) for k in range(K)], list(names))
        implot.setup_axis_limits(implot.ImAxis_.y1, -0.6, K - 0.4, imgui.Cond_.always)
        lo = min(0.0, float(vals.min()))
        implot.setup_axis_limits(
            implot.ImAxis_.x1, lo, max(float(vals.max()), 1e-6) * 1.08, imgui.Cond_.always
        )
        spec = implot.Spec(
            flags=implot.BarsFlags_.horizontal, fill_color=imgui.ImVec4(0.33, 0.62, 0.95, 1.0)
        )
        # horizontal bars: ImPlot takes the lengths first, then the positions
        implot.plot_bars("response", vals, np.arange(K, dtype=np.float64), 0.7, spec)
        implot.end_plot()
    hint(f"class means of the max response (largest {float(vals.max()):.3g})")


def _edge_lists(st: AppState, act: Actions, i: int) -> None:
    ins, outs = act.inspect.neuron_edges(i)
    if not imgui.begin_table("edges", 2, imgui.TableFlags_.sizing_stretch_same):
        return
    imgui.table_next_row()
    for title, edges in (("Strongest inputs", ins), ("Strongest outputs", outs)):
        imgui.table_next_column()
        imgui.text(title)
        if edges is None:
            imgui.text_disabled("(none: first / last layer)")
            continue
        for other_key, w in edges:
            imgui.push_style_color(imgui.Col_.text, GREEN if w >= 0 else RED)
            label = f"{w:+.3f}##{title}{other_key}"
            clicked = imgui.selectable(label, False, 0, imgui.ImVec2(em(4.2), 0))[0]
            imgui.pop_style_color()
            imgui.same_line()
            imgui.text(f"{other_key[0]} · {other_key[1]}")
            if clicked:
                act.select_neuron(other_key, keep_cluster=False)
    imgui.end_table()


def _move_controls(st: AppState, act: Actions, i: int, ci: int) -> None:
    s = st.scene
    assert s is not None and st.selection.neuron is not None
    row = int(s.clusters.row[ci])
    others = [int(c) for c in st.row_clusters(row) if int(c) != ci]
    imgui.align_text_to_frame_padding()
    imgui.text("Move to")
    imgui.same_line()
    imgui.set_next_item_width(em(10))
    choice = (
        st.panels.move_choice
        if st.panels.move_choice in [int(s.clusters.id[c]) for c in others]
        else None
    )
    preview = "a new cluster" if choice is None else st.cluster_name(int(st.cluster_index(choice)))
    if imgui.begin_combo("##moveto", preview):
        if imgui.selectable("a new cluster", choice is None)[0]:
            st.panels.move_choice = None
        for c in others:
            cid = int(s.clusters.id[c])
            label = f"{st.cluster_name(c)} ({int(s.clusters.size[c])} neurons)##{cid}"
            if imgui.selectable(label, choice == cid)[0]:
                st.panels.move_choice = cid
        imgui.end_combo()
    imgui.same_line()
    imgui.begin_disabled(act.edit_pending or (int(s.clusters.size[ci]) <= 1 and choice is None))
    if imgui.button("Move"):
        act.move_neuron(st.selection.neuron, choice)
    imgui.end_disabled()
