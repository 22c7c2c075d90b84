"""The Bookmarks panel: named views of the run (``RUN/bookmarks.json``), saved and recalled.

Type a name and press Save (or Enter): the camera, theme, facet, edge fraction, expanded groups,
highlighted classes and selection are kept.  A click on a bookmark flies back to it; the
clipboard button copies the ``cnnvis render RUN --bookmark NAME`` command that draws it.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...run.bookmarks import BOOKMARKS_FILE
from ..widgets import entry, hint

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["bookmarks_panel", "render_command"]


def render_command(st: AppState, name: str) -> str:
    """The command line that renders bookmark ``name``."""
    out = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) + ".png"
    return shlex.join(["cnnvis", "render", str(st.run_dir), "--bookmark", name, "-o", out])


def bookmarks_panel(st: AppState, act: Actions) -> None:
    p = st.panels
    p.bookmark_name, save = entry(
        "##bookmark_name", "name of this view", p.bookmark_name, "Save", st.scene is not None
    )
    if save and act.bookmarks.add(p.bookmark_name) is not None:
        p.bookmark_name = ""
    if st.bookmarks_damaged:
        hint(f"{BOOKMARKS_FILE} could not be read (see the status bar); it is left as it is.")
    if not st.bookmarks:
        hint("Save the view as it is now (camera, colours, classes, selection) to come back to"
             " it, or to render it: cnnvis render RUN --bookmark NAME.")  # fmt: skip
        return
    for k, mark in enumerate(st.bookmarks):
        if imgui.small_button(f"x##del{k}"):
            act.bookmarks.delete(mark.name)
        if imgui.is_item_hovered():
            imgui.set_tooltip("delete this bookmark")
        imgui.same_line()
        if imgui.small_button(f"cmd##cmd{k}"):
            imgui.set_clipboard_text(render_command(st, mark.name))
            st.jobs.message = f"copied: {render_command(st, mark.name)}"
        if imgui.is_item_hovered():
            imgui.set_tooltip(f"copy the command that renders it:\n{render_command(st, mark.name)}")
        imgui.same_line()
        if imgui.selectable(f"{mark.name}##go{k}", False)[0]:
            act.bookmarks.go(mark)
        if imgui.is_item_hovered():
            what = [mark.facet, mark.theme, f"top {mark.edge_fraction:.0%} edges"]
            if mark.classes:
                what.append("classes " + ", ".join(mark.classes))
            if mark.expanded:
                what.append("expanded " + ", ".join(mark.expanded))
            if mark.collapsed:
                what.append("collapsed " + ", ".join(mark.collapsed))
            imgui.set_tooltip("click: fly there\n" + " · ".join(what))
