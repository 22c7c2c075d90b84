"""The Find box (top of the Controls panel): type a layer, a module path, ``conv2:17`` (a
neuron), ``conv2 #3`` (a cluster) or a class; the results are listed, a click (or Enter, for the
first) flies the camera there.  Ctrl+F puts the cursor in the box.  The matching is
:func:`cnnvis_gl.layout.search.search`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...layout.hierarchy import stage_groups
from ...layout.search import Hit, search
from ..widgets import hint

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["find_box", "find_hits"]

SHOWN = 8  # results listed


def find_hits(st: AppState) -> list[Hit]:
    """What the Find box's text finds in the scene shown."""
    if st.scene is None or not st.panels.find.strip():
        return []
    snap = st.snapshot
    groups = {g.name: list(g.units) for g in snap.graph.groups} if snap is not None else {}
    classes = snap.classes if snap is not None else st.scene.classes
    tree = stage_groups(snap.graph) if snap is not None else {}
    return search(st.scene, st.panels.find, classes, groups, limit=SHOWN, stages=tree)


def find_box(st: AppState, act: Actions) -> None:
    p = st.panels
    if imgui.is_key_chord_pressed(imgui.Key.mod_ctrl | imgui.Key.f):
        imgui.set_keyboard_focus_here()
    imgui.set_next_item_width(-1)
    entered, p.find = imgui.input_text_with_hint(
        "##find",
        "Find: layer, module, conv2:17, conv2 #3, class",
        p.find,
        imgui.InputTextFlags_.enter_returns_true,
    )
    if imgui.is_item_hovered():
        imgui.set_tooltip(
            "a layer or module path (features.5; a module of several layers, e.g. layer3,\n"
            "frames them all), a neuron (conv2:17), the N-th cluster of a layer (conv2 #3) or a\n"
            "class; Enter goes to the first result (Ctrl+F: here)"
        )
    if not p.find.strip():
        return
    hits = find_hits(st)
    if entered and hits:
        act.go_to(hits[0])
    if not hits:
        hint("nothing found")
    for k, hit in enumerate(hits):
        if imgui.selectable(f"{hit.label}##hit{k}", False)[0]:
            act.go_to(hit)
