"""Breadcrumbs over the network view: where the view is in the network's module tree (the
model › a stage such as ``layer3`` › a block), each a button that frames what it holds
(:func:`cnnvis_gl.layout.search.breadcrumbs`); Backspace goes up one.  A stage's crumb has a
small - (collapse it into one row) or + (expand it into its groups) beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...layout.hierarchy import stage_groups, stages
from ...layout.search import Crumb, breadcrumbs, shown_groups
from ...remember import Remembered
from ..widgets import em

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["crumbs_bar", "view_crumbs"]


_crumbs: Remembered[list[Crumb]] = Remembered()


def view_crumbs(st: AppState) -> list[Crumb]:
    """The breadcrumbs of what the view shows now (the same while the view shows the same
    groups: remembered for the last ones — panning asks every frame)."""
    s, snap = st.scene, st.snapshot
    if s is None or snap is None:
        return []
    names = [g.name for g in snap.graph.groups]
    visible = st.camera.current.visible_rect(st.camera.viewport)
    model = str(snap.meta.get("model") or (st.run_dir.name if st.run_dir else "network"))
    shown = tuple(shown_groups(s, names, visible))

    def make() -> list[Crumb]:
        groups = {g.name: list(g.units) for g in snap.graph.groups}
        return breadcrumbs(model, groups, list(shown), stage_groups(snap.graph))

    return _crumbs.get((snap,), (model, shown), make)


def go(act: Actions, crumbs: list[Crumb], k: int) -> None:
    """Frame crumb ``k`` (the first: the whole network)."""
    if k == 0:
        act.fit_all()
    else:
        act.zoom_to_groups(list(crumbs[k].groups))


def crumbs_bar(st: AppState, act: Actions, origin: tuple[float, float]) -> float:
    """Submit the breadcrumbs at the view's top-left; their height (0: none drawn)."""
    crumbs = view_crumbs(st)
    st.panels.crumbs = [c.label for c in crumbs]
    if not crumbs:
        return 0.0
    pad = em(0.4)
    tree = stages(st.snapshot.graph) if st.snapshot is not None else {}
    imgui.set_cursor_screen_pos(imgui.ImVec2(origin[0] + pad, origin[1] + pad))
    for k, c in enumerate(crumbs):
        if k:
            imgui.same_line(0, em(0.25))
            imgui.text_disabled("›")
            imgui.same_line(0, em(0.25))
        last = k == len(crumbs) - 1
        if imgui.small_button(f"{c.label}##crumb{k}") and not last:
            go(act, crumbs, k)
        stage = c.label if c.label in tree else None
        if imgui.is_item_hovered():
            what = "the whole network" if k == 0 else f"{len(c.groups)} layer group(s)"
            imgui.set_tooltip(f"{what}: {', '.join(c.groups[:8])}{' …' if len(c.groups) > 8 else ''}"
                              + ("" if last else "\nclick: frame it · Backspace: up one"))  # fmt: skip
        if stage is not None:
            collapsed = stage in st.collapsed
            imgui.same_line(0, em(0.15))
            imgui.begin_disabled(act.edit_pending)
            if imgui.small_button(f"{'+' if collapsed else '-'}##stage{k}"):
                act.set_collapsed(stage, not collapsed)
            imgui.end_disabled()
            if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
                imgui.set_tooltip(f"expand {stage} into its groups" if collapsed else
                                  f"collapse {stage} into one row (its output)")  # fmt: skip
    return imgui.get_frame_height() + pad
