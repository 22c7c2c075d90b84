"""The Cluster panel: the selected cluster's facet, packing, activation matrix and neurons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from imgui_bundle import imgui, implot

from ...layout.selection import class_top_neurons, downstream_clusters
from ...render.theme import colormap
from ..widgets import (
    FACETS,
    em,
    hint,
    image_fit,
)

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["cluster_panel"]


def cluster_panel(st: AppState, act: Actions) -> None:
    """The selected cluster: facet, packing picture, activation matrix, neurons."""
    s = st.scene
    ci = st.cluster_index(st.selection.cluster)
    if s is None or ci is None:
        hint("Click a cluster or a neuron in the network view.")
        return
    c = s.clusters
    cid = int(c.id[ci])
    col = c.color[ci]
    imgui.color_button(
        "##idcolor",
        imgui.ImVec4(*(float(v) for v in col), 1.0),
        0,
        imgui.ImVec2(em(0.9), em(0.9)),
    )
    imgui.same_line()
    imgui.text(st.cluster_name(ci))
    imgui.same_line()
    imgui.text_disabled(f"{int(c.size[ci])} neurons")
    facet = int(c.facet[ci])
    for f, name in enumerate(FACETS):
        if imgui.radio_button(f"{name}##cf", facet == f) and facet != f:
            act.set_facet(f, [cid])
        if f == 0:
            imgui.same_line()
    imgui.same_line()
    if imgui.small_button("Zoom"):
        act.zoom_to_cluster(ci)
    imgui.text_disabled(
        f"packing density {float(c.density[ci]):.2f} · row order score {float(c.order_score[ci]):.2f}"
    )
    if imgui.begin_tab_bar("cluster_tabs"):
        if imgui.begin_tab_item("Packing")[0]:
            tex = act.inspect.packing_picture(ci)
            if tex is None:
                imgui.text_disabled("drawing …")
            else:
                image_fit(tex.glo, tex.size, imgui.get_content_region_avail().x)
            imgui.end_tab_item()
        if imgui.begin_tab_item("Matrix")[0]:
            _matrix(st, act, ci)
            imgui.end_tab_item()
        if imgui.begin_tab_item("Neurons")[0]:
            _neuron_table(st, act, ci)
            imgui.end_tab_item()
        if imgui.begin_tab_item("Ablate")[0]:
            _ablation(st, act, ci)
            imgui.end_tab_item()
        else:
            act.set_tint(None, None)  # the tint belongs to the Ablate tab
        imgui.end_tab_bar()


_VIRIDIS: np.ndarray | None = None


def _cmap(v: np.ndarray) -> np.ndarray:
    global _VIRIDIS
    if _VIRIDIS is None:
        _VIRIDIS = colormap("viridis").astype(np.uint32)
    idx = np.clip((np.asarray(v) * 255).astype(np.int64), 0, 255)
    rgb = _VIRIDIS[idx]
    return (0xFF << 24) | (rgb[..., 2] << 16) | (rgb[..., 1] << 8) | rgb[..., 0]


def _matrix(st: AppState, act: Actions, ci: int) -> None:
    """The activation matrix (rows in Held–Karp order, columns in the global class order)."""
    s = st.scene
    assert s is not None and st.snapshot is not None
    rows = st.cluster_neurons(ci)
    K = len(s.class_order)
    if not len(rows) or not K:
        return
    vals = s.neurons.activation[rows][:, s.class_order]
    avail = imgui.get_content_region_avail()
    label_w = em(3.2)
    cw = max((avail.x - label_w) / K, 2.0)
    ch = float(np.clip((avail.y - em(2.0)) / len(rows), 2.0, em(1.0)))
    p = imgui.get_cursor_screen_pos()
    dl = imgui.get_window_draw_list()
    cols = _cmap(vals)
    # column headers: class names, abbreviated to fit
    chars = max(int(cw / (em(1) * 0.55)), 1)
    for j in range(K):
        name = st.snapshot.classes[int(s.class_order[j])][:chars]
        dl.add_text(
            imgui.ImVec2(p.x + label_w + j * cw + 1, p.y),
            imgui.get_color_u32(imgui.Col_.text),
            name,
        )
    y0 = p.y + em(1.3)
    for r in range(len(rows)):
        y = y0 + r * ch
        if ch >= em(0.8):
            dl.add_text(
                imgui.ImVec2(p.x, y),
                imgui.get_color_u32(imgui.Col_.text_disabled),
                str(int(s.neurons.index[rows[r]])),
            )
        for j in range(K):
            x = p.x + label_w + j * cw
            dl.add_rect_filled(
                imgui.ImVec2(x, y),
                imgui.ImVec2(x + cw - (1 if cw > 6 else 0), y + ch - (1 if ch > 5 else 0)),
                int(cols[r, j]),
            )
    imgui.set_cursor_screen_pos(imgui.ImVec2(p.x + label_w, y0))
    imgui.invisible_button("##matrix", imgui.ImVec2(max(K * cw, 1), max(len(rows) * ch, 1)))
    if imgui.is_item_hovered():
        m = imgui.get_mouse_pos()
        j = int((m.x - p.x - label_w) // cw)
        r = int((m.y - y0) // ch)
        if 0 <= j < K and 0 <= r < len(rows):
            n = rows[r]
            k = int(s.class_order[j])
            cls = st.snapshot.classes[k]
            top = ", ".join(
                f"{int(s.neurons.index[i])} ({a:.2f})" for i, a in class_top_neurons(s, ci, k)
            )
            imgui.set_tooltip(
                f"neuron {int(s.neurons.index[n])} · {cls}: {float(vals[r, j]):.2f} (of layer max)\n"
                f"{cls} activates most here: neurons {top}"
            )
            if imgui.is_mouse_clicked(imgui.MouseButton_.left):  # the cell: drill down
                act.select_neuron(st.neuron_key(int(n)), cls=k)


def _neuron_table(st: AppState, act: Actions, ci: int) -> None:
    s = st.scene
    assert s is not None and st.snapshot is not None
    rows = st.cluster_neurons(ci)
    flags = (
        imgui.TableFlags_.row_bg
        | imgui.TableFlags_.scroll_y
        | imgui.TableFlags_.borders_inner_v
        | imgui.TableFlags_.sizing_stretch_prop
    )
    if not imgui.begin_table("neurons", 3, flags):
        return
    imgui.table_setup_scroll_freeze(0, 1)
    imgui.table_setup_column("Neuron")
    imgui.table_setup_column("Importance")
    imgui.table_setup_column("Top class")
    imgui.table_headers_row()
    sel = st.neuron_index(st.selection.neuron)
    clipper = imgui.ListClipper()
    clipper.begin(len(rows))
    while clipper.step():
        for r in range(clipper.display_start, clipper.display_end):
            n = int(rows[r])
            imgui.table_next_row()
            imgui.table_next_column()
            label = f"{s.units[int(s.neurons.unit[n])]} · {int(s.neurons.index[n])}##n{n}"
            if imgui.selectable(label, n == sel, imgui.SelectableFlags_.span_all_columns)[0]:
                act.select_neuron(st.neuron_key(n))
            imgui.table_next_column()
            imgui.text(f"{float(s.neurons.importance[n]):.2f}")
            imgui.table_next_column()
            top = int(np.argmax(s.neurons.activation[n])) if s.neurons.activation.shape[1] else -1
            imgui.text(st.snapshot.classes[top] if top >= 0 else "–")
    clipper.end()
    imgui.end_table()


def _ablation(st: AppState, act: Actions, ci: int) -> None:
    """Zero the cluster's channels (or the set of clusters it belongs to) in the real model
    and show what each class loses."""
    s = st.scene
    assert s is not None and st.snapshot is not None
    latest = st.steps[-1] if st.steps else st.step
    if st.step != latest:
        hint(f"The run's saved weights are those of its last snapshot (step {latest}): open it to "
             "ablate.")  # fmt: skip
        return
    chosen = st.ablation_set()
    clusters = chosen if ci in chosen else [ci]
    key = st.ablation_key(clusters)
    channels = sum(len(ch) for _, ch in key[1])
    if len(clusters) == 1:
        row = s.rows[int(s.clusters.row[ci])].name
        unit = key[1][0][0]
        what = f"its {channels} channels of {unit if row == unit else f'{row} ({unit})'}"
    else:
        what = f"the set's {len(clusters)} clusters ({channels} channels)"
    if imgui.button(f"Zero {what}###ablate"):
        act.ablate(clusters)
    if imgui.is_item_hovered():
        imgui.set_tooltip("per-class accuracy of the model with these channels zeroed (forward "
                          "hooks), against the unablated model on the same images")  # fmt: skip
    _ablation_set(st, act, ci, chosen)
    result = st.debug.ablations.get(key)
    if result is None:
        if st.debug.ablation_want == key:
            imgui.text_disabled("running the model on the probe images …")
        else:
            hint("Does this cluster matter, and for which classes? The run's model (rebuilt from "
                 "train.json + weights.pt) runs on its test images with and without it.")  # fmt: skip
        return
    if isinstance(result, str):
        hint(f"cannot ablate: {result}")
        return
    names = st.snapshot.classes
    K = len(names)
    drop = 100.0 * result.drop.astype(np.float64)
    base, ablated = result.overall
    imgui.text(f"accuracy {base:.1%} → {ablated:.1%} ({100 * (base - ablated):+.1f} points lost)")
    h = max(min(em(1.25) * K + em(1.6), em(15)), em(7))
    flags = implot.Flags_.no_legend | implot.Flags_.no_menus | implot.Flags_.no_box_select
    if implot.begin_plot("##ablation_bars", imgui.ImVec2(-1, h), flags):
        implot.setup_axes("accuracy lost (points)", "", 0, implot.AxisFlags_.invert)
        implot.setup_axis_ticks(implot.ImAxis_.y1, [float(k) for k in range(K)], list(names))
        implot.setup_axis_limits(implot.ImAxis_.y1, -0.6, K - 0.4, imgui.Cond_.always)
        lo, hi = min(0.0, float(drop.min())), max(float(drop.max()), 1.0)
        implot.setup_axis_limits(implot.ImAxis_.x1, lo - 1, hi * 1.08, imgui.Cond_.always)
        spec = implot.Spec(
            flags=implot.BarsFlags_.horizontal, fill_color=imgui.ImVec4(0.95, 0.45, 0.38, 1.0)
        )
        implot.plot_bars("lost", drop, np.arange(K, dtype=np.float64), 0.7, spec)
        implot.end_plot()
    hint(f"{int(result.count.sum())} test images; bars: accuracy lost per class (negative: gained)")
    _downstream(st, act, result, key[1][0][0], clusters)


def _ablation_set(st: AppState, act: Actions, ci: int, chosen: list[int]) -> None:
    """The set of clusters zeroed together: add or remove this one, list the others."""
    cid = int(st.scene.clusters.id[ci])
    inside = ci in chosen
    if imgui.small_button(("Remove it from" if inside else "Add it to") + " the set###ablate_set"):
        act.toggle_ablation_set(cid)
    if imgui.is_item_hovered():
        imgui.set_tooltip("clusters in the set are zeroed together: select any of them to\n"
                          "ablate the whole set (clusters of several layers may join)")  # fmt: skip
    if not chosen:
        return
    imgui.same_line()
    if imgui.small_button("Clear the set"):
        st.debug.ablation_set.clear()
    imgui.text_disabled("set:")
    for k, other in enumerate(chosen):
        imgui.same_line()
        label = st.cluster_name(other) + ("" if k == len(chosen) - 1 else ",")
        if other == ci:
            imgui.text(label)
        elif imgui.small_button(f"{label}##set{other}"):
            act.select_cluster(int(st.scene.clusters.id[other]))


def _downstream(st: AppState, act: Actions, result: Any, unit: str, ablated: list[int]) -> None:
    """The clusters after the (first) ablated layer whose responses moved most, the ablated
    ones left out (click: go there)."""
    s = st.scene
    assert s is not None
    everything = [
        (c, v) for c, v in downstream_clusters(s, result.change, unit) if c not in ablated
    ]
    moved = everything[:5]
    if not moved:
        return
    _, st.debug.ablation_tint = imgui.checkbox("Tint the network by it", st.debug.ablation_tint)
    if imgui.is_item_hovered():
        imgui.set_tooltip("the ablated cluster and the clusters after it as bright as their\n"
                          "responses moved; the rest dimmed")  # fmt: skip
    if st.debug.ablation_tint:
        act.set_tint((st.scene_version, id(result)), ablation_tint(s, everything, ablated))
    else:
        act.set_tint(None, None)
    imgui.text("Responses moved most downstream")
    for ci, v in moved:
        if imgui.selectable(f"{st.cluster_name(ci)}: {v:.0%}##moved{ci}", False)[0]:
            act.select_cluster(int(st.scene.clusters.id[ci]))
            act.zoom_to_cluster(ci)
    hint("mean |change| of the neurons' responses, against the layer's mean response")


def ablation_tint(scene: Any, moved: list[tuple[int, float]], ablated: list[int]) -> np.ndarray:
    """Per-cluster emphasis: the ablated clusters (indices) full, the ones after them as
    bright as they moved (against the most moved), the rest dim."""
    emph = np.zeros(len(scene.clusters.id), np.float32)
    top = max((v for _, v in moved), default=0.0)
    for ci, v in moved:
        emph[ci] = 0.15 + 0.85 * v / top if top > 0 else 0.0
    emph[list(ablated)] = 1.0
    return emph
