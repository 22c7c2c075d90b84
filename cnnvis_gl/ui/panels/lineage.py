"""The Lineage panel: an alluvial (Sankey) view of how a layer group's clusters persist, split
and merge over the run's snapshots (:mod:`cnnvis_gl.layout.lineage`).

One column per snapshot; each cluster is a bar as tall as its neuron count, named A, B, … by
identity and coloured by its name (a fixed categorical palette: identities stay told apart); a ribbon from one step to the next
carries the neurons two clusters share.  Hover a bar or a ribbon for its figures; click a bar
(or a ribbon: its cluster at the later step) to show that cluster at that step in the network
view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from imgui_bundle import imgui

from ..widgets import em, hint

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["lineage_panel"]

_SEGMENTS = 20  # quads per ribbon

#: Colours of the identities A, B, C, … (Tableau 10), repeated after ten.
_PALETTE = (
    (0.31, 0.47, 0.65), (0.95, 0.56, 0.17), (0.88, 0.34, 0.35), (0.46, 0.72, 0.70),
    (0.35, 0.63, 0.31), (0.93, 0.79, 0.28), (0.69, 0.48, 0.63), (1.00, 0.62, 0.65),
    (0.61, 0.46, 0.37), (0.73, 0.69, 0.67),
)  # fmt: skip


@dataclass
class _Bar:
    t: int  # step index
    i: int  # cluster index at that step
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 on the screen


@dataclass
class _Ribbon:
    t: int
    i: int
    j: int
    x0: float
    x1: float
    src: tuple[float, float]  # top, bottom at x0
    dst: tuple[float, float]  # top, bottom at x1

    def edges_at(self, x: float) -> tuple[float, float]:
        s = _ease((x - self.x0) / max(self.x1 - self.x0, 1e-6))
        top = self.src[0] + (self.dst[0] - self.src[0]) * s
        bottom = self.src[1] + (self.dst[1] - self.src[1]) * s
        return top, bottom


def _ease(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3 - 2 * s)


def lineage_panel(st: AppState, act: Actions) -> None:
    snap = st.snapshot
    if snap is None:
        return
    if len(st.steps) < 2:
        hint("The lineage follows a group's clusters from snapshot to snapshot: it needs a run "
             "with two or more snapshots (record one with cv.Recorder or cnnvis train --record).")  # fmt: skip
        return
    groups = [g.name for g in snap.graph.groups]
    if st.debug.lineage_group not in groups:
        act.show_lineage(_default_group(st, groups))
    imgui.set_next_item_width(em(9))
    if imgui.begin_combo("group##lineage", st.debug.lineage_group or ""):
        for g in groups:
            if imgui.selectable(g, g == st.debug.lineage_group)[0]:
                act.show_lineage(g)
        imgui.end_combo()
    lin = st.debug.lineage
    want = (st.debug.lineage_group, tuple(st.steps))
    imgui.same_line()
    if lin is None or st.debug.lineage_key != want:
        imgui.text_disabled(f"clustering the snapshots … {st.debug.lineage_progress:.0%}")
        st.panels.lineage_bars = []
        if lin is None or lin.group != st.debug.lineage_group:
            return
    else:
        n_events = sum(len(lin.events(t)) for t in range(len(lin.steps) - 1))
        imgui.text_disabled(
            f"{len(lin.steps)} snapshots · {len(lin.names)} cluster identities · "
            f"{n_events} split/merge/new/dissolve events"
        )
    _sankey(st, act, lin)


def _default_group(st: AppState, groups: list[str]) -> str:
    """The selected cluster's group, else the last hidden group (the paper's focus)."""
    scene, cid = st.scene, st.selection.cluster
    if scene is not None and cid is not None:
        hit = np.flatnonzero(scene.clusters.id == cid)
        if hit.size:
            row = scene.rows[int(scene.clusters.row[hit[0]])]
            if row.name in groups:
                return row.name
    return groups[-2] if len(groups) > 1 else groups[0]


def _layout(lin: Any, x0: float, y0: float, w: float, h: float) -> tuple[list, list]:
    """Screen bars and ribbons of a lineage in the rectangle (x0, y0, w, h)."""
    n_steps = len(lin.steps)
    bar_w = max(6.0, min(14.0, w / (n_steps * 6)))
    gap = 4.0
    xs = [x0 + bar_w / 2 + (w - bar_w) * t / max(n_steps - 1, 1) for t in range(n_steps)]
    most = max(len(ids) for ids in lin.ids)
    neurons = max(sum(lin.sizes(t)) for t in range(n_steps))
    scale = max(h - gap * (most - 1), h * 0.5) / max(neurons, 1)
    bars: list[_Bar] = []
    order: list[list[int]] = []
    for t in range(n_steps):
        idx = sorted(range(len(lin.ids[t])), key=lambda i, t=t: lin.names[lin.ids[t][i]])
        order.append(idx)
        y = y0
        for i in idx:
            hh = len(lin.members[t][i]) * scale
            bars.append(_Bar(t, i, (xs[t] - bar_w / 2, y, xs[t] + bar_w / 2, y + hh)))
            y += hh + gap
    where = {(b.t, b.i): b for b in bars}
    ribbons: list[_Ribbon] = []
    for t, f in enumerate(lin.flows):
        out_y = {i: where[(t, i)].rect[1] for i in order[t]}
        in_y = {j: where[(t + 1, j)].rect[1] for j in order[t + 1]}
        # ribbons leave a bar in the order of their targets and enter in the order of sources
        rank_new = {j: k for k, j in enumerate(order[t + 1])}
        rank_old = {i: k for k, i in enumerate(order[t])}
        pairs = [(i, j) for i in order[t] for j in order[t + 1] if f[i, j] > 0]
        starts, ends = {}, {}
        for i, j in sorted(pairs, key=lambda p: (rank_old[p[0]], rank_new[p[1]])):
            starts[(i, j)] = out_y[i]
            out_y[i] += f[i, j] * scale
        for i, j in sorted(pairs, key=lambda p: (rank_new[p[1]], rank_old[p[0]])):
            ends[(i, j)] = in_y[j]
            in_y[j] += f[i, j] * scale
        for i, j in pairs:
            hh = f[i, j] * scale
            a, b = starts[(i, j)], ends[(i, j)]
            x_a = where[(t, i)].rect[2]
            x_b = where[(t + 1, j)].rect[0]
            ribbons.append(_Ribbon(t, i, j, x_a, x_b, (a, a + hh), (b, b + hh)))
    return bars, ribbons


def _col(lin: Any, cid: int, alpha: float) -> int:
    """The colour of identity ``cid``: by the rank of its name (A first; ``names`` is in the
    order the identities appeared)."""
    rank = list(lin.names).index(cid)
    r, g, b = _PALETTE[rank % len(_PALETTE)]
    return imgui.color_convert_float4_to_u32(imgui.ImVec4(r, g, b, alpha))


def _sankey(st: AppState, act: Actions, lin: Any) -> None:
    avail = imgui.get_content_region_avail()
    label_h = imgui.get_text_line_height() + 4
    w, h = max(avail.x - em(1.5), 120.0), max(avail.y - label_h - 6, 80.0)
    origin = imgui.get_cursor_screen_pos()
    x0, y0 = origin.x + em(0.5), origin.y + label_h
    imgui.invisible_button("##lineage_canvas", imgui.ImVec2(w + em(1), h + label_h + 2))
    hovered_canvas = imgui.is_item_hovered()
    clicked = imgui.is_item_clicked()
    bars, ribbons = _layout(lin, x0, y0, w, h)
    st.panels.lineage_bars = [
        (lin.steps[b.t], lin.names[lin.ids[b.t][b.i]], b.rect) for b in bars
    ]
    mouse = imgui.get_mouse_pos()
    hot_bar = next(
        (b for b in bars if b.rect[0] - 2 <= mouse.x <= b.rect[2] + 2 and b.rect[1] <= mouse.y <= b.rect[3]),
        None,
    ) if hovered_canvas else None  # fmt: skip
    hot_ribbon = None
    if hovered_canvas and hot_bar is None:
        for r in ribbons:
            if r.x0 <= mouse.x <= r.x1:
                top, bottom = r.edges_at(mouse.x)
                if top - 1 <= mouse.y <= max(bottom, top + 2) + 1:
                    hot_ribbon = r
                    break
    dl = imgui.get_window_draw_list()
    for r in ribbons:  # each one polygon: its top edge left to right, its bottom edge back
        cid = lin.ids[r.t][r.i]
        col = _col(lin, cid, 0.8 if r is hot_ribbon else 0.42)
        xs = [r.x0 + (r.x1 - r.x0) * k / _SEGMENTS for k in range(_SEGMENTS + 1)]
        edges = [r.edges_at(x) for x in xs]
        top = [imgui.ImVec2(x, e[0]) for x, e in zip(xs, edges, strict=True)]
        bottom = [imgui.ImVec2(x, max(e[1], e[0] + 1.0)) for x, e in zip(xs, edges, strict=True)]
        dl.add_concave_poly_filled(top + bottom[::-1], col)
    text_col = imgui.get_color_u32(imgui.Col_.text)
    for b in bars:
        cid = lin.ids[b.t][b.i]
        x_a, y_a, x_b, y_b = b.rect
        dl.add_rect_filled(imgui.ImVec2(x_a, y_a), imgui.ImVec2(x_b, max(y_b, y_a + 1)), _col(lin, cid, 1.0))
        if b is hot_bar:
            dl.add_rect(
                imgui.ImVec2(x_a - 2, y_a - 2), imgui.ImVec2(x_b + 2, y_b + 2), text_col, thickness=2.0
            )
        if y_b - y_a >= imgui.get_text_line_height() * 0.8:
            name = lin.names[cid]
            last = b.t == len(lin.steps) - 1
            tx = x_a - imgui.calc_text_size(name).x - 3 if last else x_b + 3
            dl.add_text(imgui.ImVec2(tx, (y_a + y_b) / 2 - imgui.get_text_line_height() / 2), text_col, name)
    for t, step in enumerate(lin.steps):  # step labels over the columns
        xs = [b.rect for b in bars if b.t == t]
        cx = (xs[0][0] + xs[0][2]) / 2 if xs else x0
        label = f"step {step}"
        lw = imgui.calc_text_size(label).x
        lx = min(max(cx - lw / 2, origin.x), origin.x + w + em(1) - lw)
        now = step == st.step
        dl.add_text(imgui.ImVec2(lx, origin.y), text_col if now else imgui.get_color_u32(imgui.Col_.text_disabled), label)
    _hover_and_click(act, lin, hot_bar, hot_ribbon, clicked)


def _hover_and_click(act: Actions, lin: Any, bar: _Bar | None, ribbon: _Ribbon | None, clicked: bool) -> None:
    if bar is not None:
        cid = lin.ids[bar.t][bar.i]
        n = len(lin.members[bar.t][bar.i])
        imgui.set_tooltip(
            f"{lin.group} {lin.names[cid]} at step {lin.steps[bar.t]}: {n} neurons\n"
            "click: show it in the network view"
        )
        if clicked:
            act.go_to_cluster_at(lin.steps[bar.t], lin.group, lin.members[bar.t][bar.i])
    elif ribbon is not None:
        a = lin.names[lin.ids[ribbon.t][ribbon.i]]
        b = lin.names[lin.ids[ribbon.t + 1][ribbon.j]]
        n = int(lin.flows[ribbon.t][ribbon.i, ribbon.j])
        s0, s1 = lin.steps[ribbon.t], lin.steps[ribbon.t + 1]
        imgui.set_tooltip(
            f"{n} neurons of {a} (step {s0}) are in {b} at step {s1}\n"
            f"click: show {b} at step {s1}"
        )
        if clicked:
            t = ribbon.t + 1
            act.go_to_cluster_at(lin.steps[t], lin.group, lin.members[t][ribbon.j])
