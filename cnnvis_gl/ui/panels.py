"""The dockable panels: each a plain function of the app's state that calls its commands.

* :func:`controls_panel` — facet for all, edge threshold, classes, clustering per layer group,
  expand / collapse, undo / redo, theme;
* :func:`cluster_panel` — the selected cluster: facet, packing, activation matrix, neurons;
* :func:`neuron_panel` — the selected neuron: top-k patches, per-class bar chart, strongest
  in / out edges, move to another cluster;
* :func:`snapshots_panel` — snapshot timeline, follow mode, per-layer debug statistics of the
  step shown, the step to compare with (the learning curves and statistics over the run are
  in the Training panel, :mod:`.debugview`);
* :func:`status_bar`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from imgui_bundle import hello_imgui, imgui, implot

from ..layout.options import METHODS
from ..render.theme import colormap

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "controls_panel",
    "cluster_panel",
    "neuron_panel",
    "snapshots_panel",
    "status_bar",
    "menus",
]

FACETS = ("Learned features", "Activation matrix")
THEMES = ("dark", "light")
GREEN = imgui.ImVec4(0.35, 0.85, 0.45, 1.0)
RED = imgui.ImVec4(1.0, 0.42, 0.40, 1.0)
MUTED = imgui.ImVec4(0.6, 0.62, 0.68, 1.0)


def _em(n: float) -> float:
    return hello_imgui.em_size(n)


def _hint(text: str) -> None:
    imgui.push_text_wrap_pos(0.0)
    imgui.text_disabled(text)
    imgui.pop_text_wrap_pos()


def _section(label: str) -> bool:
    return imgui.collapsing_header(label, imgui.TreeNodeFlags_.default_open)


# ---------------------------------------------------------------------------- controls


def controls_panel(app: App) -> None:
    """Facets, edges, classes, clustering per group, edit history, theme."""
    st = app.state
    if st.scene is None:
        _hint(st.jobs.message or "Loading …")
        return

    if _section("View"):
        imgui.text("Facet of all clusters")
        for f, name in enumerate(FACETS):
            if imgui.radio_button(name, st.facet == f) and st.facet != f:
                app.set_facet(f)
            if f == 0:
                imgui.same_line()
        imgui.spacing()
        imgui.text("Edge threshold")
        imgui.set_next_item_width(-1)
        pct = int(round(st.edge_fraction * 100))
        changed, pct = imgui.slider_int("##edges", pct, 1, 100, "keep top %d%% by |w|")
        if changed:
            app.preview_threshold(pct / 100.0)
        if imgui.is_item_deactivated_after_edit():
            app.set_threshold(pct / 100.0)
        changed, on = imgui.checkbox("Neuron edges when zoomed in", st.neuron_edges)
        if changed:
            app.set_neuron_edges(on)
        if imgui.is_item_hovered():
            imgui.set_tooltip(
                "Zoomed in so that patches are large, the edges join neurons instead of\n"
                "clusters: the same top fraction of the neuron weights between the clusters\n"
                "in view, bundled the same way; cluster edges stay faintly as context."
            )
        if app.neuron_edges_info:
            imgui.text_disabled(app.neuron_edges_info)
        if imgui.button("Fit all"):
            app.fit_all()
        imgui.same_line()
        imgui.text("Theme")
        imgui.same_line()
        imgui.set_next_item_width(_em(6))
        if imgui.begin_combo("##theme", st.theme):
            for t in THEMES:
                if imgui.selectable(t, t == st.theme)[0]:
                    app.set_theme(t)
            imgui.end_combo()

    if _section("Classes"):
        _classes(app)

    if _section("Layer groups"):
        _groups(app)

    if _section("Edits"):
        _edits(app)


def _classes(app: App) -> None:
    st = app.state
    assert st.snapshot is not None
    names = st.snapshot.classes
    sel = set(st.selection.classes)
    _hint("Highlight the neurons a class activates most; dim the rest.")
    cols = 2 if imgui.get_content_region_avail().x > _em(14) else 1
    if imgui.begin_table("classes", cols):
        for c, name in enumerate(names):
            imgui.table_next_column()
            on = c in sel
            changed, on = imgui.checkbox(f"{name}##class{c}", on)
            if changed:
                new = set(sel)
                (new.add if on else new.discard)(c)
                app.select_classes(new)
        imgui.end_table()
    if imgui.button("Clear##classes"):
        app.select_classes(set())
    imgui.same_line()
    imgui.set_next_item_width(-1)
    q = int(round(st.selection.quantile * 100))
    changed, q = imgui.slider_int("##quantile", q, 1, 100, "top %d%% of each layer")
    if changed:
        app.select_classes(sel, quantile=q / 100.0)


def _groups(app: App) -> None:
    st = app.state
    assert st.snapshot is not None
    busy = app.edit_pending
    flags = (
        imgui.TableFlags_.row_bg
        | imgui.TableFlags_.borders_inner_h
        | imgui.TableFlags_.sizing_stretch_prop
    )
    if not imgui.begin_table("groups", 4, flags):
        return
    imgui.table_setup_column("Group", imgui.TableColumnFlags_.width_stretch, 1.0)
    imgui.table_setup_column("Method", imgui.TableColumnFlags_.width_fixed, _em(6.2))
    imgui.table_setup_column("k", imgui.TableColumnFlags_.width_fixed, _em(4.6))
    imgui.table_setup_column("Expand", imgui.TableColumnFlags_.width_fixed, _em(3.4))
    imgui.table_headers_row()
    for g in st.snapshot.graph.groups:
        gs = st.groups.get(g.name)
        if gs is None:
            continue
        imgui.push_id(g.name)
        imgui.table_next_row()
        imgui.table_next_column()
        imgui.align_text_to_frame_padding()
        n = st.snapshot.graph.unit(g.unit).channels
        imgui.text(g.name)
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
                    app.set_clustering(g.name, gs.method, gs.k or None)
            imgui.end_combo()
        imgui.table_next_column()
        imgui.set_next_item_width(-1)
        imgui.begin_disabled(gs.method != "kmeans")
        changed, k = imgui.slider_int("##k", gs.k, 0, min(n, 32), "auto" if gs.k == 0 else "%d")
        if changed:
            gs.k = int(min(max(k, 0), max(n, 1)))
        if imgui.is_item_deactivated_after_edit():
            app.set_clustering(g.name, gs.method, gs.k or None)
        if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
            imgui.set_tooltip("number of clusters (auto: best silhouette)")
        imgui.end_disabled()
        imgui.table_next_column()
        if len(g.units) > 1:
            changed, on = imgui.checkbox("##expand", gs.expanded)
            if changed:
                app.set_expanded(g.name, on)
            if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
                imgui.set_tooltip("expand the group into one row per layer")
        else:
            imgui.text_disabled("–")
        imgui.end_disabled()
        imgui.pop_id()
    imgui.end_table()


def _edits(app: App) -> None:
    st = app.state
    h = st.history
    busy = app.edit_pending
    imgui.begin_disabled(not h.undo or busy)
    if imgui.button("Undo"):
        app.undo()
    imgui.end_disabled()
    if h.undo and imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip(f"Ctrl+Z: {h.undo[-1].label}")
    imgui.same_line()
    imgui.begin_disabled(not h.redo or busy)
    if imgui.button("Redo"):
        app.redo()
    imgui.end_disabled()
    if h.redo and imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip(f"Ctrl+Shift+Z: {h.redo[-1].label}")
    imgui.same_line()
    imgui.begin_disabled(busy or not st.edits.pinned)
    if imgui.button("Reset clustering"):
        app.reset_clustering()
    imgui.end_disabled()
    if h.undo:
        imgui.text_disabled(f"last: {h.undo[-1].label}")
    if st.edits.pinned:
        imgui.text_disabled("edited clustering saved in layout.json")
    _hint("Drag a neuron onto another cluster (or onto empty space of its row) to move it.")


# ---------------------------------------------------------------------------- cluster


def cluster_panel(app: App) -> None:
    """The selected cluster: facet, packing picture, activation matrix, neurons."""
    st = app.state
    s = st.scene
    ci = st.cluster_index(st.selection.cluster)
    if s is None or ci is None:
        _hint("Click a cluster or a neuron in the network view.")
        return
    c = s.clusters
    cid = int(c.id[ci])
    col = c.color[ci]
    imgui.color_button(
        "##idcolor",
        imgui.ImVec4(*(float(v) for v in col), 1.0),
        0,
        imgui.ImVec2(_em(0.9), _em(0.9)),
    )
    imgui.same_line()
    imgui.text(st.cluster_name(ci))
    imgui.same_line()
    imgui.text_disabled(f"{int(c.size[ci])} neurons")
    facet = int(c.facet[ci])
    for f, name in enumerate(FACETS):
        if imgui.radio_button(f"{name}##cf", facet == f) and facet != f:
            app.set_facet(f, [cid])
        if f == 0:
            imgui.same_line()
    imgui.same_line()
    if imgui.small_button("Zoom"):
        app.zoom_to_cluster(ci)
    imgui.text_disabled(
        f"packing density {float(c.density[ci]):.2f} · row order score {float(c.order_score[ci]):.2f}"
    )
    if imgui.begin_tab_bar("cluster_tabs"):
        if imgui.begin_tab_item("Packing")[0]:
            tex = app.packing_picture(ci)
            if tex is None:
                imgui.text_disabled("drawing …")
            else:
                _image_fit(tex.glo, tex.size, imgui.get_content_region_avail().x)
            imgui.end_tab_item()
        if imgui.begin_tab_item("Matrix")[0]:
            _matrix(app, ci)
            imgui.end_tab_item()
        if imgui.begin_tab_item("Neurons")[0]:
            _neuron_table(app, ci)
            imgui.end_tab_item()
        imgui.end_tab_bar()


def _image_fit(glo: int, size: tuple[int, int], width: float, max_h: float | None = None) -> None:
    w, h = size
    scale = min(width / max(w, 1), 1e9 if max_h is None else max_h / max(h, 1))
    scale = max(scale, 0.05)
    imgui.image(imgui.ImTextureRef(glo), imgui.ImVec2(w * scale, h * scale))


_VIRIDIS: np.ndarray | None = None


def _cmap(v: np.ndarray) -> np.ndarray:
    global _VIRIDIS
    if _VIRIDIS is None:
        _VIRIDIS = colormap("viridis").astype(np.uint32)
    idx = np.clip((np.asarray(v) * 255).astype(np.int64), 0, 255)
    rgb = _VIRIDIS[idx]
    return (0xFF << 24) | (rgb[..., 2] << 16) | (rgb[..., 1] << 8) | rgb[..., 0]


def _matrix(app: App, ci: int) -> None:
    """The activation matrix (rows in Held–Karp order, columns in the global class order)."""
    st = app.state
    s = st.scene
    assert s is not None and st.snapshot is not None
    rows = st.cluster_neurons(ci)
    K = len(s.class_order)
    if not len(rows) or not K:
        return
    vals = s.neurons.activation[rows][:, s.class_order]
    avail = imgui.get_content_region_avail()
    label_w = _em(3.2)
    cw = max((avail.x - label_w) / K, 2.0)
    ch = float(np.clip((avail.y - _em(2.0)) / len(rows), 2.0, _em(1.0)))
    p = imgui.get_cursor_screen_pos()
    dl = imgui.get_window_draw_list()
    cols = _cmap(vals)
    # column headers: class names, abbreviated to fit
    chars = max(int(cw / (_em(1) * 0.55)), 1)
    for j in range(K):
        name = st.snapshot.classes[int(s.class_order[j])][:chars]
        dl.add_text(
            imgui.ImVec2(p.x + label_w + j * cw + 1, p.y),
            imgui.get_color_u32(imgui.Col_.text),
            name,
        )
    y0 = p.y + _em(1.3)
    for r in range(len(rows)):
        y = y0 + r * ch
        if ch >= _em(0.8):
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
            cls = st.snapshot.classes[int(s.class_order[j])]
            imgui.set_tooltip(
                f"neuron {int(s.neurons.index[n])} · {cls}: {float(vals[r, j]):.2f} (of layer max)"
            )
            if imgui.is_mouse_clicked(imgui.MouseButton_.left):
                app.select_neuron(st.neuron_key(int(n)))


def _neuron_table(app: App, ci: int) -> None:
    st = app.state
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
                app.select_neuron(st.neuron_key(n))
            imgui.table_next_column()
            imgui.text(f"{float(s.neurons.importance[n]):.2f}")
            imgui.table_next_column()
            top = int(np.argmax(s.neurons.activation[n])) if s.neurons.activation.shape[1] else -1
            imgui.text(st.snapshot.classes[top] if top >= 0 else "–")
    clipper.end()
    imgui.end_table()


# ---------------------------------------------------------------------------- neuron


def neuron_panel(app: App) -> None:
    """The selected neuron: top-k patches, per-class bar chart, strongest edges, move."""
    st = app.state
    s = st.scene
    key = st.selection.neuron
    i = st.neuron_index(key)
    if s is None or key is None or i is None or st.snapshot is None:
        _hint("Click a neuron (a patch or a matrix row) in the network view.")
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
        tex = app.topk_picture(key)
        if tex is None:
            imgui.text_disabled("loading top-k patches …")
        else:
            _image_fit(tex.glo, tex.size, imgui.get_content_region_avail().x, _em(16))
            if imgui.is_item_hovered():
                imgui.set_tooltip("the receptive fields of the images that activate it most")
        imgui.table_next_column()
        _class_bars(app, unit, ch, max(avail * 0.5, _em(10)))
        imgui.end_table()

    _edge_lists(app, i)
    imgui.separator()
    _move_controls(app, i, ci)


def _class_bars(app: App, unit: str, ch: int, width: float) -> None:
    st = app.state
    assert st.snapshot is not None
    vals = app.class_means(unit)[ch].astype(np.float64)
    names = st.snapshot.classes
    K = len(names)
    h = max(min(_em(1.25) * K + _em(1.6), _em(15)), _em(7))
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
    _hint(f"class means of the max response (largest {float(vals.max()):.3g})")


def _edge_lists(app: App, i: int) -> None:
    ins, outs = app.neuron_edges(i)
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
            clicked = imgui.selectable(label, False, 0, imgui.ImVec2(_em(4.2), 0))[0]
            imgui.pop_style_color()
            imgui.same_line()
            imgui.text(f"{other_key[0]} · {other_key[1]}")
            if clicked:
                app.select_neuron(other_key, keep_cluster=False)
    imgui.end_table()


def _move_controls(app: App, i: int, ci: int) -> None:
    st = app.state
    s = st.scene
    assert s is not None and st.selection.neuron is not None
    row = int(s.clusters.row[ci])
    others = [int(c) for c in st.row_clusters(row) if int(c) != ci]
    imgui.align_text_to_frame_padding()
    imgui.text("Move to")
    imgui.same_line()
    imgui.set_next_item_width(_em(10))
    choice = app.move_choice if app.move_choice in [int(s.clusters.id[c]) for c in others] else None
    preview = "a new cluster" if choice is None else st.cluster_name(int(st.cluster_index(choice)))
    if imgui.begin_combo("##moveto", preview):
        if imgui.selectable("a new cluster", choice is None)[0]:
            app.move_choice = None
        for c in others:
            cid = int(s.clusters.id[c])
            label = f"{st.cluster_name(c)} ({int(s.clusters.size[c])} neurons)##{cid}"
            if imgui.selectable(label, choice == cid)[0]:
                app.move_choice = cid
        imgui.end_combo()
    imgui.same_line()
    imgui.begin_disabled(app.edit_pending or (int(s.clusters.size[ci]) <= 1 and choice is None))
    if imgui.button("Move"):
        app.move_neuron(st.selection.neuron, choice)
    imgui.end_disabled()


# ---------------------------------------------------------------------------- snapshots


def snapshots_panel(app: App) -> None:
    """Timeline of snapshots, follow mode, per-layer statistics, learning curves."""
    flags = imgui.TableFlags_.resizable | imgui.TableFlags_.borders_inner_v
    if not imgui.begin_table("snap_layout", 3, flags):
        return
    imgui.table_setup_column("timeline", imgui.TableColumnFlags_.width_stretch, 1.0)
    imgui.table_setup_column("stats", imgui.TableColumnFlags_.width_stretch, 1.5)
    imgui.table_setup_column("curves", imgui.TableColumnFlags_.width_stretch, 1.0)
    imgui.table_next_row()
    imgui.table_next_column()
    _timeline(app)
    imgui.table_next_column()
    _layer_stats(app)
    imgui.table_next_column()
    _debug_summary(app)
    imgui.end_table()


def _timeline(app: App) -> None:
    st = app.state
    changed, follow = imgui.checkbox("Follow the newest snapshot", st.follow)
    if changed:
        app.set_follow(follow)
    steps = st.steps
    if not steps:
        imgui.text_disabled("no snapshots yet")
        return
    pos = steps.index(st.step) if st.step in steps else len(steps) - 1
    imgui.begin_disabled(pos <= 0)
    if imgui.arrow_button("##prev", imgui.Dir.left):
        app.open_step(steps[pos - 1])
    imgui.end_disabled()
    imgui.same_line()
    imgui.set_next_item_width(-_em(2.4))
    changed, new = imgui.slider_int("##step", pos, 0, len(steps) - 1, f"step {steps[pos]}")
    if imgui.is_item_deactivated_after_edit() or (changed and not imgui.is_item_active()):
        app.open_step(steps[new])
    imgui.same_line()
    imgui.begin_disabled(pos >= len(steps) - 1)
    if imgui.arrow_button("##next", imgui.Dir.right):
        app.open_step(steps[pos + 1])
    imgui.end_disabled()
    if not st.follow:
        if imgui.small_button("Look for new snapshots"):
            app.refresh_steps()
    snap = st.snapshot
    if snap is not None:
        meta = snap.meta
        err = meta.get("probe_error")
        _hint(
            f"{len(steps)} snapshot(s) · {meta.get('n_images', '?')} images"
            + (f" · probe error {err:.1%}" if isinstance(err, float) else "")
            + f"\nmodel {meta.get('model', '?')} · {meta.get('dataset', '?')}"
        )


def _layer_stats(app: App) -> None:
    st = app.state
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
        imgui.table_next_column()
        imgui.text(_num(u.get("act_mean")))
        imgui.table_next_column()
        imgui.text(_num(u.get("act_std")))
        imgui.table_next_column()
        dead = u.get("dead_fraction")
        if isinstance(dead, float) and dead >= 0.5:
            imgui.text_colored(RED, f"{dead:.0%}")
            if imgui.is_item_hovered():
                imgui.set_tooltip("dead layer: most neurons never respond")
        else:
            imgui.text(f"{dead:.0%}" if isinstance(dead, float) else "–")
        imgui.table_next_column()
        imgui.text(_num(weights.get(g.unit, {}).get("norm")))
    imgui.end_table()


def _num(v: object) -> str:
    if not isinstance(v, (int, float)):
        return "–"
    v = float(v)
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def _debug_summary(app: App) -> None:
    """Compare with another step; the number of flags (details in the Training panel)."""
    from .debugview import compare_controls

    st = app.state
    compare_controls(app)
    if app.flags_step == st.step:
        n = len(app.flags)
        kinds = sorted({f.kind.replace("_", " ") for f in app.flags})
        if n:
            imgui.text_colored(RED, f"{n} flag(s): {', '.join(kinds)}")
        else:
            imgui.text_disabled("no flags at this step")
    _hint("Learning curves, per-layer statistics over the run and the flags: Training tab.")


# ---------------------------------------------------------------------------- status, menus


def status_bar(app: App) -> None:
    st = app.state
    s = st.scene
    parts = []
    if s is not None:
        parts.append(
            f"step {st.step} · {len(s.neurons.cluster)} neurons · {len(s.clusters.id)} clusters"
            f" · {len(s.edges.weight)} edge pieces"
        )
        parts.append(f"zoom {st.camera.current.zoom:.2f}")
    if st.frame_ms:
        parts.append(f"frame {np.median(list(st.frame_ms)):.1f} ms")
    if st.render_ms:
        parts.append(f"view {np.median(list(st.render_ms)):.1f} ms")
    if st.jobs.pending:
        parts.append(f"working: {st.jobs.pending[0]}")
    elif st.jobs.last:
        parts.append(f"{st.jobs.last} ({st.jobs.last_seconds * 1000:.0f} ms)")
    imgui.text("   ·   ".join(parts))
    if st.jobs.error:
        imgui.same_line()
        imgui.text_colored(RED, "  " + st.jobs.error.splitlines()[0][:120])
    elif st.jobs.message and st.scene is not None:
        imgui.same_line()
        imgui.text_colored(MUTED, "  " + st.jobs.message[:120])


def menus(app: App) -> None:
    if imgui.begin_menu("Edit"):
        h = app.state.history
        if imgui.menu_item("Undo", "Ctrl+Z", False, bool(h.undo))[0]:
            app.undo()
        if imgui.menu_item("Redo", "Ctrl+Shift+Z", False, bool(h.redo))[0]:
            app.redo()
        imgui.separator()
        if imgui.menu_item("Reset clustering", "", False, app.state.edits.pinned)[0]:
            app.reset_clustering()
        imgui.end_menu()
    if imgui.begin_menu("Network"):
        if imgui.menu_item("Fit all", "F", False)[0]:
            app.fit_all()
        if imgui.menu_item("Save screenshot", "", False)[0]:
            app.request_screenshot()
        if imgui.menu_item("Copy render command", "", False)[0]:
            app.copy_render_command()
        if imgui.is_item_hovered():
            imgui.set_tooltip("A `cnnvis render` command line that draws this view to a PNG")
        imgui.end_menu()
