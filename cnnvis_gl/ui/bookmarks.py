"""Bookmarks in the viewer: saving the view as it is under a name, recalling one, deleting one
(``RUN/bookmarks.json``, written atomically; a damaged file is reported and never overwritten).

A bookmark's *look* (theme, facet, edge fraction, expanded groups, classes, selection) is applied
by :meth:`Bookmarks.apply_look`, which present mode also uses; :meth:`Bookmarks.go` adds the
camera flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SnapshotError
from ..layout.hierarchy import stages
from ..layout.scene import FACET_FEATURES, FACET_MATRIX
from ..render.camera import Camera
from ..run.bookmarks import BOOKMARKS_FILE, Bookmark, load_bookmarks, save_bookmarks

if TYPE_CHECKING:
    from .app import App

__all__ = ["Bookmarks"]


class Bookmarks:
    """The bookmark commands, on the app they command."""

    def __init__(self, app: App) -> None:
        self.app = app

    def load(self) -> None:
        """Read ``RUN/bookmarks.json`` (a damaged file is reported and left untouched)."""
        st = self.app.state
        try:
            st.bookmarks, st.bookmarks_damaged = load_bookmarks(st.run_dir), False
        except SnapshotError as e:
            st.bookmarks, st.bookmarks_damaged = [], True
            st.jobs.error = f"bookmarks not loaded: {e}"

    def _save(self, marks: list[Bookmark]) -> bool:
        st = self.app.state
        if st.bookmarks_damaged:
            st.jobs.error = f"{BOOKMARKS_FILE} is damaged: mend or remove it to save bookmarks"
            return False
        try:
            save_bookmarks(st.run_dir, marks)
        except OSError as e:
            st.jobs.error = f"bookmarks not saved: {e.strerror or e}"
            return False
        st.bookmarks = marks
        return True

    def add(self, name: str) -> Bookmark | None:
        """Save the view as it is now under ``name`` (replacing a bookmark of that name)."""
        st = self.app.state
        name = name.strip()
        if not name or st.scene is None:
            return None
        cam = st.camera.target
        sel = st.selection
        names = st.snapshot.classes if st.snapshot is not None else st.scene.classes
        mark = Bookmark(
            name=name,
            camera=(float(cam.center[0]), float(cam.center[1]), float(cam.zoom)),
            size=(int(st.camera.viewport[0]), int(st.camera.viewport[1])),
            theme=st.theme,
            facet="matrix" if st.facet == FACET_MATRIX else "features",
            edge_fraction=float(st.edge_fraction),
            expanded=tuple(sorted(st.edits.expanded)),
            collapsed=tuple(sorted(st.edits.collapsed)),
            classes=tuple(names[c] for c in sorted(sel.classes)),
            cluster=sel.cluster,
            neuron=None if sel.neuron is None else (str(sel.neuron[0]), int(sel.neuron[1])),
        )
        marks = [b for b in st.bookmarks if b.name != name] + [mark]
        if self._save(marks):
            st.jobs.message = f"bookmark {name!r} saved"
            return mark
        return None

    def delete(self, name: str) -> None:
        st = self.app.state
        self._save([b for b in st.bookmarks if b.name != name])

    def go(self, mark: Bookmark) -> None:
        """Show a saved view: its layout choices (re-laid out in the background), colours,
        classes and selection at once, the camera flying to it (fitted to this view's size)."""
        st = self.app.state
        if st.scene is None:
            return
        self.apply_look(mark)
        cx, cy, zoom = mark.camera_for(st.camera.viewport)
        st.camera.go(Camera((cx, cy), zoom))
        self.app.view.touch()

    def apply_look(self, mark: Bookmark) -> None:
        """A saved view's theme, facet, edge fraction, expanded groups, classes and selection
        (not its camera)."""
        st, act = self.app.state, self.app.actions
        s = st.scene
        if s is None:
            return
        if mark.theme != st.theme:
            act.set_theme(mark.theme)
        facet = FACET_MATRIX if mark.facet == "matrix" else FACET_FEATURES
        if facet != st.facet:
            act.set_facet(facet)
        if abs(mark.edge_fraction - st.edge_fraction) > 1e-9:
            act.set_threshold(mark.edge_fraction)
        for g in st.groups:
            if (g in mark.expanded) != st.groups[g].expanded:
                act.set_expanded(g, g in mark.expanded)
        if st.snapshot is not None:
            for path in stages(st.snapshot.graph):
                if (path in mark.collapsed) != (path in st.collapsed):
                    act.set_collapsed(path, path in mark.collapsed)
        names = list(st.snapshot.classes) if st.snapshot is not None else list(s.classes)
        act.select_classes({names.index(c) for c in mark.classes if c in names})
        if mark.neuron is not None and st.neuron_index(mark.neuron) is not None:
            act.select_neuron(mark.neuron)
        else:
            st.selection.neuron = None
            act.select_cluster(mark.cluster if st.cluster_index(mark.cluster) is not None else None)
