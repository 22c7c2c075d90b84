"""The Tour panel: an ordered walk through the bookmarks, edited here and presented full screen.

Each stop names a bookmark, how long it is held, how the view gets there (fly, fade, cut) and in
how many seconds, and a caption.  Every edit is saved to ``RUN/tours/NAME.json`` at once (a drag
or a text field when it ends).
Present (F5) shows the tour full screen: → / space / Page Down step forward, ← / Page Up back,
Esc leaves.  The clipboard button copies the ``cnnvis video`` command that renders it to MP4.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from imgui_bundle import imgui

from ...run.tours import TRANSITIONS
from ..widgets import em, hint

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = ["tour_panel", "video_command"]


def video_command(st: AppState) -> str:
    """The command line that renders the tour being edited to an MP4."""
    out = "".join(c if c.isalnum() or c in "-_" else "_" for c in st.tour.name) + ".mp4"
    return shlex.join(["cnnvis", "video", str(st.run_dir), "--tour", st.tour.name, "-o", out])


def tour_panel(st: AppState, act: Actions) -> None:
    t, tours = st.tour, act.tours
    _choose(st, act)
    if t.damaged:
        hint("This tour's file could not be read (see the status bar); it is left as it is.")
        return
    stops = tours.stops
    imgui.begin_disabled(not stops or st.scene is None)
    if imgui.button("Present (F5)"):
        tours.present()
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("full screen: → / space next, ← back, Esc leave")
    imgui.same_line()
    imgui.begin_disabled(not stops)
    if imgui.button("Copy video command"):
        imgui.set_clipboard_text(video_command(st))
        st.jobs.message = f"copied: {video_command(st)}"
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip(f"renders this tour to MP4, headless:\n{video_command(st)}")
    if not st.bookmarks:
        hint("Save views in the Bookmarks panel first; a tour visits them in order.")
        return
    _add(st, act)
    if not stops:
        hint("Add bookmarks as stops: the tour flies from one to the next.")
        return
    _stops(st, act)


def _choose(st: AppState, act: Actions) -> None:
    t = st.tour
    imgui.set_next_item_width(em(10))
    if imgui.begin_combo("##tour", t.name):
        for name in t.names:
            if imgui.selectable(name, name == t.name)[0]:
                act.tours.load(name)
        imgui.end_combo()
    imgui.same_line()
    imgui.set_next_item_width(em(9))
    entered, st.panels.tour_name = imgui.input_text_with_hint(
        "##new_tour", "new tour name", st.panels.tour_name, imgui.InputTextFlags_.enter_returns_true
    )
    imgui.same_line()
    imgui.begin_disabled(not st.panels.tour_name.strip())
    if (imgui.button("New") or entered) and st.panels.tour_name.strip():
        if act.tours.new(st.panels.tour_name):
            st.panels.tour_name = ""
    imgui.end_disabled()


def _add(st: AppState, act: Actions) -> None:
    imgui.set_next_item_width(em(14))
    if imgui.begin_combo("##add_stop", "+ add a stop …"):
        for mark in st.bookmarks:
            if imgui.selectable(mark.name, False)[0]:
                act.tours.add_stop(mark.name)
        imgui.end_combo()


def _stops(st: AppState, act: Actions) -> None:
    tours = act.tours
    known = {b.name for b in st.bookmarks}
    flags = imgui.TableFlags_.borders_inner_h | imgui.TableFlags_.sizing_fixed_fit
    if not imgui.begin_table("stops", 6, flags):
        return
    for name, w in (("#", 0), ("bookmark", em(8)), ("hold s", em(4)), ("move", em(8)),
                    ("caption", 0), ("", 0)):  # fmt: skip
        stretch = imgui.TableColumnFlags_.width_stretch if name == "caption" else 0
        imgui.table_setup_column(name, stretch, w)
    imgui.table_headers_row()
    playing = st.tour.present.stop if st.tour.present is not None else None
    for k, stop in enumerate(tours.stops):
        imgui.push_id(f"stop{k}")
        imgui.table_next_row()
        imgui.table_next_column()
        imgui.text(f"{k + 1}" + (" ▶" if playing == k else ""))
        imgui.table_next_column()
        if stop.bookmark in known:
            imgui.text(stop.bookmark)
        else:
            imgui.text_colored(imgui.ImVec4(1.0, 0.42, 0.40, 1.0), f"{stop.bookmark} (missing)")
        imgui.table_next_column()
        imgui.set_next_item_width(em(4))
        changed, hold = imgui.drag_float("##hold", stop.hold, 0.05, 0.0, 600.0, "%.1f")
        _edited(tours, k, changed, hold=float(hold))
        imgui.table_next_column()
        if k > 0:
            imgui.set_next_item_width(em(4))
            if imgui.begin_combo("##transition", stop.transition):
                for tr in TRANSITIONS:
                    if imgui.selectable(tr, tr == stop.transition)[0]:
                        tours.set_stop(k, transition=tr)
                imgui.end_combo()
            imgui.same_line()
            imgui.set_next_item_width(em(3.5))
            imgui.begin_disabled(stop.transition == "cut")
            changed, move = imgui.drag_float("##move", stop.move, 0.05, 0.0, 600.0, "%.1f")
            _edited(tours, k, changed, move=float(move))
            imgui.end_disabled()
        imgui.table_next_column()
        imgui.set_next_item_width(-1)
        changed, caption = imgui.input_text_with_hint("##caption", "caption", stop.caption)
        _edited(tours, k, changed, caption=caption)
        imgui.table_next_column()
        up = imgui.small_button("^")
        imgui.same_line()
        down = imgui.small_button("v")
        imgui.same_line()
        drop = imgui.small_button("x")
        imgui.pop_id()
        if up:
            tours.move_stop(k, -1)
        elif down:
            tours.move_stop(k, 1)
        elif drop:
            tours.remove_stop(k)
        if up or down or drop:  # the rows below changed: drawn next frame
            break
    imgui.end_table()


def _edited(tours, k: int, changed: bool, **value: object) -> None:
    """A drag or a text field: the tour follows every change, the file when the edit ends."""
    if changed:
        tours.set_stop(k, save=False, **value)
    if imgui.is_item_deactivated_after_edit():
        tours.save()
