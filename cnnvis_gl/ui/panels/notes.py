"""The Notes panel: the run's annotations (``RUN/annotations.json``), callouts with an arrow to a
cluster, a neuron or a row, drawn in the view, in renders and in videos.

Add one on the selected cluster or neuron (or right-click it in the view: "Add a note"), or on a
row by name; edit its text and where its box sits (pixels from its target); delete it.  Every
change is saved at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...render.callouts import target_rect
from ...run.annotations import ANNOTATIONS_FILE
from ..widgets import em, hint

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["notes_panel"]


def notes_panel(st: AppState, act: Actions) -> None:
    if st.notes_damaged:
        hint(f"{ANNOTATIONS_FILE} could not be read (see the status bar); it is left as it is.")
        return
    selected = st.selection.neuron is not None or st.selection.cluster is not None
    imgui.begin_disabled(not selected)
    if imgui.button("Note on the selection"):
        act.notes.add_on_selection()
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("a callout pointing at the selected neuron, else the selected cluster")
    if st.scene is not None:
        imgui.same_line()
        imgui.set_next_item_width(em(10))
        if imgui.begin_combo("##note_row", "note on a row …"):
            for r in st.scene.rows:
                if r.unit and imgui.selectable(r.name, False)[0]:
                    act.notes.add("row", r.name)
            imgui.end_combo()
    if not st.notes:
        hint("Notes are callouts with an arrow, drawn in the view, in cnnvis render (PNG, SVG, PDF)"
             " and in cnnvis video; they follow their cluster, neuron or row.")  # fmt: skip
        return
    focus, st.panels.note_focus = st.panels.note_focus, None
    for k, note in enumerate(list(st.notes)):
        imgui.push_id(f"note{k}")
        shown = st.scene is not None and target_rect(st.scene, note) is not None
        what = note.target if note.kind != "neuron" else f"{note.target[0]}:{note.target[1]}"
        if note.kind == "cluster" and st.scene is not None:
            ci = st.cluster_index(note.target)
            what = st.cluster_name(ci) if ci is not None else f"cluster {note.target}"
        label = f"{note.kind} {what}" + ("" if shown else "  (not in this view)")
        (imgui.text if shown else imgui.text_disabled)(label)
        imgui.set_next_item_width(-em(7))
        if focus == k:
            imgui.set_keyboard_focus_here()
        changed, text = imgui.input_text("##text", note.text)
        if changed and text.strip():
            act.notes.change(k, save=False, text=text)
        if imgui.is_item_deactivated_after_edit():
            act.notes.save()
        imgui.same_line()
        imgui.set_next_item_width(em(5))
        changed, off = imgui.drag_float2("##offset", list(note.offset), 1.0, -2000.0, 2000.0, "%.0f")
        if changed:
            act.notes.change(k, save=False, offset=(float(off[0]), float(off[1])))
        if imgui.is_item_deactivated_after_edit():
            act.notes.save()
        if imgui.is_item_hovered():
            imgui.set_tooltip("where the box sits: pixels right and down from the top-right corner of what it points at (drag)")
        imgui.same_line()
        if imgui.small_button("x"):
            act.notes.delete(k)
            imgui.pop_id()
            break
        imgui.pop_id()
