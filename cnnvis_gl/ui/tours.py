"""Tours in the viewer: editing one (its stops, their times, transitions and captions) and
presenting it full screen.

The tour being edited is ``st.tour`` (:class:`~cnnvis_gl.ui.state.TourState`); every edit is
saved at once to ``RUN/tours/NAME.json`` (atomically; a damaged file is reported and never
overwritten).  Present mode (:attr:`TourState.present`) plays the tour's
:class:`~cnnvis_gl.render.flight.Timeline` in real time, one stop per key press: the look of the
next stop (theme, facet, classes, selection …) is applied as its move begins and the camera
follows the timeline's flight; ``cnnvis video`` renders the same timeline frame by frame.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import SnapshotError
from ..render.camera import Camera
from ..render.flight import Timeline
from ..run.tours import Tour, TourStop, check_stops, list_tours, load_tour, save_tour, tour_path
from .state import Presenting

if TYPE_CHECKING:
    from .app import App

__all__ = ["Tours"]


class Tours:
    """The tour editor's and present mode's commands, on the app they command."""

    def __init__(self, app: App) -> None:
        self.app = app

    # ------------------------------------------------------------------ files
    def load(self, name: str | None = None) -> None:
        """Edit tour ``name`` (default: the current one, else the first saved, else "tour")."""
        t = self.app.state.tour
        t.names = list_tours(self.app.state.run_dir)
        name = name or (t.name if t.name in t.names else (t.names[0] if t.names else "tour"))
        t.name, t.tour, t.damaged = name, Tour(), False
        path = tour_path(self.app.state.run_dir, name)
        if not path.exists():
            return
        try:
            t.tour = load_tour(path)
        except SnapshotError as e:
            t.damaged = True
            self.app.state.jobs.error = f"tour not loaded: {e}"

    def new(self, name: str) -> bool:
        """Start tour ``name`` (an empty one, saved at its first stop)."""
        name = name.strip()
        try:
            tour_path(self.app.state.run_dir, name)
        except SnapshotError as e:
            self.app.state.jobs.error = str(e)
            return False
        if name in self.app.state.tour.names:
            self.load(name)
        else:
            t = self.app.state.tour
            t.name, t.tour, t.damaged = name, Tour(), False
        return True

    def _save(self, tour: Tour, save: bool = True) -> None:
        st = self.app.state
        t = st.tour
        if t.damaged:
            st.jobs.error = f"tour {t.name!r} is damaged: mend or remove its file to edit it"
            return
        t.tour = tour
        if save:
            self.save()

    def save(self) -> None:
        """Write the tour being edited (``RUN/tours/NAME.json``, atomically)."""
        st = self.app.state
        t = st.tour
        if t.damaged or t.tour is None:
            return
        try:
            save_tour(tour_path(st.run_dir, t.name), t.tour)
        except OSError as e:
            st.jobs.error = f"tour not saved: {e.strerror or e}"
            return
        if t.name not in t.names:
            t.names = sorted([*t.names, t.name])

    # ------------------------------------------------------------------ editing
    @property
    def stops(self) -> tuple[TourStop, ...]:
        tour = self.app.state.tour.tour
        return tour.stops if tour is not None else ()

    def add_stop(self, bookmark: str) -> None:
        """Append a stop at bookmark ``bookmark``."""
        tour = self.app.state.tour.tour or Tour()
        self._save(replace(tour, stops=(*tour.stops, TourStop(bookmark))))

    def set_stop(self, k: int, save: bool = True, **changes: Any) -> None:
        """Change fields of stop ``k`` (``hold``, ``move``, ``transition``, ``caption`` …);
        ``save=False`` while a field is being edited (:meth:`save` when it is done)."""
        stops = list(self.stops)
        stops[k] = replace(stops[k], **changes)
        self._save(replace(self.app.state.tour.tour, stops=tuple(stops)), save)

    def remove_stop(self, k: int) -> None:
        stops = list(self.stops)
        del stops[k]
        self._save(replace(self.app.state.tour.tour, stops=tuple(stops)))

    def move_stop(self, k: int, by: int) -> None:
        """Move stop ``k`` ``by`` places (−1: earlier)."""
        stops = list(self.stops)
        j = k + by
        if 0 <= j < len(stops):
            stops[k], stops[j] = stops[j], stops[k]
            self._save(replace(self.app.state.tour.tour, stops=tuple(stops)))

    # ------------------------------------------------------------------ present mode
    def present(self) -> bool:
        """Start presenting the tour from its first stop (errors go to the status bar)."""
        st = self.app.state
        marks = {b.name: b for b in st.bookmarks}
        try:
            check_stops(self.app.state.tour.tour or Tour(), marks, f"tour {st.tour.name!r}")
        except SnapshotError as e:
            st.jobs.error = str(e)
            return False
        if st.scene is None:
            return False
        timeline = Timeline(st.tour.tour, marks, st.camera.viewport)
        st.tour.present = Presenting(timeline)
        self._arrive(0)
        return True

    def leave(self) -> None:
        """Leave present mode (the view stays where the tour was)."""
        self.app.state.tour.present = None
        self.app.view.touch()

    def next(self) -> None:
        """Move to the next stop (or, while moving, finish the move at once)."""
        p = self.app.state.tour.present
        if p is None:
            return
        if p.moving:
            p.t = p.until
            self._follow()
        elif p.stop + 1 < len(p.timeline.marks):
            p.stop += 1
            p.t = p.timeline.starts[p.stop]
            p.until = p.timeline.arrival(p.stop)
            transition = p.timeline.tour.stops[p.stop].transition
            p.fading = transition == "fade" and p.moving
            if p.fading:  # the view as it is now fades out over the next one
                self.app.view.freeze()
                p.frozen_camera = None
            if transition != "fly" or not p.moving:
                self._look(p.stop)
            self._follow()

    def previous(self) -> None:
        """Back to the stop before (at once)."""
        p = self.app.state.tour.present
        if p is not None and p.stop > 0:
            self._arrive(p.stop - 1)

    def _arrive(self, k: int) -> None:
        p = self.app.state.tour.present
        assert p is not None
        p.stop = k
        p.t = p.until = p.timeline.arrival(k)
        p.fading = False
        self._look(k)
        self._follow()

    def _look(self, k: int) -> None:
        p = self.app.state.tour.present
        assert p is not None
        p.look = k
        self.app.bookmarks.apply_look(p.timeline.marks[k])

    def tick(self, dt: float) -> None:
        """Advance a move by ``dt`` seconds (each frame); refit the timeline to the view."""
        p = self.app.state.tour.present
        if p is None:
            return
        viewport = self.app.state.camera.viewport
        if tuple(viewport) != p.timeline.viewport and min(viewport) > 8:
            p.timeline = Timeline(p.timeline.tour, {m.name: m for m in p.timeline.marks}, viewport)
            self._follow()
        if p.moving:
            p.t = min(p.t + max(dt, 0.0), p.until)
            self._follow()

    def frame(self) -> Any:
        """The timeline's frame now (``None`` outside present mode)."""
        p = self.app.state.tour.present
        return None if p is None else p.timeline.at(p.t)

    def fade(self) -> tuple[float, tuple[float, float, float, float]] | None:
        """How the frozen view is drawn now: its opacity and its rectangle on the view
        (``x0, y0, x1, y1`` pixels; a flight's moves and scales with the camera); ``None``
        when nothing fades."""
        p, f = self.app.state.tour.present, self.frame()
        if p is None or f is None or not p.fading:
            return None
        w, h = self.app.state.camera.viewport
        if p.frozen_camera is None:  # a fade: over the whole move, in place
            return 1.0 - f.mix, (0.0, 0.0, float(w), float(h))
        c0, c1 = p.frozen_camera, self.app.state.camera.current
        x0, y0 = c1.scene_to_screen(*c0.screen_to_scene(0.0, 0.0, (w, h)), (w, h))
        x1, y1 = c1.scene_to_screen(*c0.screen_to_scene(float(w), float(h), (w, h)), (w, h))
        return min(max(2.0 * (1.0 - f.mix), 0.0), 1.0), (x0, y0, x1, y1)

    def _follow(self) -> None:
        """Put the camera where the timeline is; a flight takes the next stop's look half way;
        a fade shows the next view at once (the previous one fades out over it)."""
        p = self.app.state.tour.present
        f = self.frame()
        if f is None or p is None:
            return
        if f.mix >= 0.5 and p.look != p.stop:  # half way through a flight: the next look,
            self.app.view.freeze()  # the last frame fading out over it, moving along
            p.fading, p.frozen_camera = True, self.app.state.camera.current
            self._look(p.stop)
        if not p.moving:
            p.fading = False
        fade = p.fading and p.frozen_camera is None
        cam: Camera = f.camera_b if fade or not p.moving else f.camera
        self.app.state.camera.jump(cam)
        self.app.view.touch()
