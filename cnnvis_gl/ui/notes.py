"""Annotations in the viewer: adding, editing and deleting callouts (``RUN/annotations.json``).

The list is ``st.notes``; every change is saved at once (atomically; a damaged file is reported
and never overwritten).  The Notes panel edits the text and the offset; the network view's
context menu adds a note on the cluster or neuron under the pointer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import SnapshotError
from ..run.annotations import ANNOTATIONS_FILE, Annotation, load_annotations, save_annotations

if TYPE_CHECKING:
    from .app import App

__all__ = ["Notes"]


class Notes:
    """The annotation commands, on the app they command."""

    def __init__(self, app: App) -> None:
        self.app = app

    def load(self) -> None:
        """Read ``RUN/annotations.json`` (a damaged file is reported and left untouched)."""
        st = self.app.state
        try:
            st.notes, st.notes_damaged = load_annotations(st.run_dir), False
        except SnapshotError as e:
            st.notes, st.notes_damaged = [], True
            st.jobs.error = f"annotations not loaded: {e}"

    def _set(self, notes: list[Annotation], save: bool = True) -> bool:
        st = self.app.state
        if st.notes_damaged:
            st.jobs.error = f"{ANNOTATIONS_FILE} is damaged: mend or remove it to edit notes"
            return False
        st.notes = notes
        self.app.view.touch()
        return self.save() if save else True

    def save(self) -> bool:
        st = self.app.state
        if st.notes_damaged:
            return False
        try:
            save_annotations(st.run_dir, st.notes)
        except OSError as e:
            st.jobs.error = f"annotations not saved: {e.strerror or e}"
            return False
        return True

    def add(self, kind: str, target: Any, text: str = "note") -> int | None:
        """A new note on a cluster (id), a neuron ``(layer, channel)`` or a row (name);
        returns its index."""
        if not self._set([*self.app.state.notes, Annotation(text, kind, target)]):
            return None
        self.app.state.panels.note_focus = len(self.app.state.notes) - 1
        self.app.actions.show_panel("Notes")
        return len(self.app.state.notes) - 1

    def add_on_selection(self) -> int | None:
        """A note on the selected neuron, else the selected cluster."""
        st = self.app.state
        if st.selection.neuron is not None:
            return self.add("neuron", (str(st.selection.neuron[0]), int(st.selection.neuron[1])))
        if st.selection.cluster is not None:
            return self.add("cluster", int(st.selection.cluster))
        return None

    def change(self, k: int, save: bool = True, **fields: Any) -> None:
        """Change ``text`` or ``offset`` of note ``k`` (``save=False`` while it is edited)."""
        notes = list(self.app.state.notes)
        notes[k] = replace(notes[k], **fields)
        self._set(notes, save)

    def delete(self, k: int) -> None:
        notes = list(self.app.state.notes)
        del notes[k]
        self._set(notes)
