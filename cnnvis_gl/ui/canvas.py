"""The network view's canvas: drawing the scene when it changed, picking, hover and mouse.

The panel (:mod:`.panels.network`) lays out the ImGui items and reads the mouse; this class
does what the mouse means.  What a picked thing means (outline, hover text, click) is
:data:`.picks.PICKS`' business, so nothing here switches on the kind.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..render.pick import PickKind
from .picks import PICKS, Pick
from .state import DragState, NeuronKey

if TYPE_CHECKING:
    from .app import App

__all__ = ["Canvas"]

Hover = tuple[str, int]


class Canvas:
    """Draws the scene into the view target and answers "what is at this pixel?"."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.origin: tuple[float, float] = (0.0, 0.0)  # screen position of the view
        self.drawn_key: tuple | None = None  # what the view target shows
        self._version = 0  # bumped by `touch`
        self._last_hover_pos: tuple | None = None
        self._panned: tuple | None = None  # the image of a panned view (`image`), if shown

    # ------------------------------------------------------------------ drawing
    def touch(self) -> None:
        """Something shown changed: redraw the view on the next frame."""
        self._version += 1

    @property
    def texture(self) -> int:
        """The GL name of the texture the view is drawn into (0: none yet)."""
        target = self.app.target
        return int(target.glo) if target is not None and target.glo else 0

    @property
    def image(self) -> tuple[int, tuple[float, float], tuple[float, float]]:
        """What to show as the view: a texture's GL name (0: none yet) and the texture
        coordinates of the view's top-left and bottom-right corners — the view target, or
        while the camera pans the scene drawn with a margin (its part in view)."""
        return self._panned or (self.texture, (0.0, 1.0), (1.0, 0.0))

    def freeze(self) -> None:
        """Keep a copy of the view as drawn now (:attr:`frozen_texture`), to fade from."""
        app = self.app
        if app.target is not None and app.frozen is not None and app.renderer is not None:
            if self._panned is not None:  # the target is behind the panned view: catch up
                app.renderer.pan_cache.paint(app.target.fbo)
                self._panned = None
            app.target.copy_to(app.frozen, park=app.renderer.park)
            app.ctx.screen.use()

    @property
    def frozen_texture(self) -> int:
        """The GL name of the frozen copy (0: none)."""
        frozen = self.app.frozen
        return int(frozen.glo) if frozen is not None and frozen.glo else 0

    @property
    def drawn(self) -> bool:
        """The view shows the current scene (it has been drawn since it arrived)."""
        key = self.drawn_key
        return key is not None and key[3] == self.app.state.scene_version

    def render(self, size: tuple[int, int]) -> None:
        """Draw the scene into the view target when anything shown changed."""
        app, st = self.app, self.app.state
        r, target = app.renderer, app.target
        if r is None or target is None:
            return
        if target.ensure(size, park=r.park):
            self.drawn_key = None
        if st.camera.viewport != size:
            old = st.camera.viewport
            st.camera.viewport = size
            if st.scene is not None and (not st.camera.fitted or old == (1, 1)):
                app.actions.fit_all(animate=False)
        present = st.tour.present
        moving = st.camera.animating or st.camera.panning or (present is not None and present.moving)
        key = (st.camera.current, size, self._version, st.scene_version)
        if key == self.drawn_key:
            return
        t = time.perf_counter()
        # while it only pans, the view is the scene drawn once with a margin (shown shifted)
        self._panned = r.panned_view(st.camera.current, size, (self._version, st.scene_version)) if moving else None
        if self._panned is None:
            r.draw(st.camera.current, size, target=target.fbo, moving=moving)
        app.ctx.screen.use()
        st.render_ms.append((time.perf_counter() - t) * 1000.0)
        self.drawn_key = key

    def scene_changed(self) -> None:
        """The renderer dropped its selection state with new geometry: forget the hover."""
        self.app.state.hover = (PickKind.NONE, -1)
        self._last_hover_pos = None

    # ------------------------------------------------------------------ picking
    def pick(self, x: float, y: float) -> Hover:
        """What the view shows at pixel ``(x, y)``: ``(kind, index)``."""
        app, st = self.app, self.app.state
        if app.renderer is None or st.scene is None or self.drawn_key is None:
            return (PickKind.NONE, -1)
        res = app.renderer.pick(x, y, st.camera.current, st.camera.viewport)
        app.ctx.screen.use()
        return res

    def _meaning(self, hover: Hover) -> tuple[Pick, int]:
        pick = PICKS[PickKind(hover[0])]
        if not pick.valid(self.app.state, hover[1]):
            return PICKS[PickKind.NONE], -1
        return pick, hover[1]

    def set_hover(self, hover: Hover) -> None:
        """Remember what the pointer is over.

        The outline is drawn by ImGui over the view (:meth:`hover_rect`), not by the renderer:
        a hover change then costs no redraw of the scene (a full redraw is tens of ms on
        software GL).
        """
        self.app.state.hover = hover

    def hover_at(self, x: float, y: float) -> None:
        """Pick under the pointer when it moved or the view changed (one 1-pixel ID pass)."""
        st = self.app.state
        if st.camera.animating:
            return  # picking a moving view is wasted work; the pointer is re-picked when it stops
        key = (x, y, st.camera.current, st.scene_version)
        if key == self._last_hover_pos:
            return
        self._last_hover_pos = key
        self.set_hover(self.pick(x, y))

    def hover_rect(self) -> tuple[float, float, float, float] | None:
        """Screen rectangle ``(x0, y0, x1, y1)`` of the hovered thing's outline."""
        pick, i = self._meaning(self.app.state.hover)
        rect = pick.rect(self.app.state, i)
        if rect is None:
            return None
        x, y, w, h = rect
        return (*self.screen_pos(x, y), *self.screen_pos(x + w, y + h))

    def hover_text(self) -> list[str]:
        """Tooltip lines for what the pointer is over."""
        st = self.app.state
        pick, i = self._meaning(st.hover)
        at = None
        if self._last_hover_pos is not None:  # the pointer, in scene units
            at = st.camera.current.screen_to_scene(*self._last_hover_pos[:2], st.camera.viewport)
        return pick.text(st, self.app.actions, i, at)

    def screen_pos(self, scene_x: float, scene_y: float) -> tuple[float, float]:
        """Window (screen) coordinates of a scene point in the network view."""
        st = self.app.state
        x, y = st.camera.current.scene_to_screen(scene_x, scene_y, st.camera.viewport)
        return (self.origin[0] + x, self.origin[1] + y)

    # ------------------------------------------------------------------ mouse
    def press_at(self, x: float, y: float) -> None:
        """Mouse down in the view: a press on a neuron may start a drag."""
        st = self.app.state
        kind, i = self.pick(x, y)
        st.drag = DragState(st.neuron_key(i), i, (x, y)) if kind == PickKind.NEURON else None

    def click_at(self, x: float, y: float) -> None:
        """Select what is under the pointer (nothing: clear the selection)."""
        st = self.app.state
        pick, i = self._meaning(self.pick(x, y))
        at = st.camera.current.screen_to_scene(x, y, st.camera.viewport)  # (as hover_text)
        pick.click(st, self.app.actions, i, at)

    def double_click_at(self, x: float, y: float) -> None:
        """Zoom to the cluster under the pointer, or fit all on empty space."""
        pick, i = self._meaning(self.pick(x, y))
        pick.double_click(self.app.state, self.app.actions, i)

    def drop_target(self, key: NeuronKey, x: float, y: float) -> tuple[int | None | str, str]:
        """Where a neuron dropped at ``(x, y)`` would go: ``(cluster id | None | "", text)``.

        ``None`` means a new cluster, ``""`` no valid target.
        """
        st = self.app.state
        s = st.scene
        i = st.neuron_index(key)
        if s is None or i is None:
            return "", "nothing"
        src = int(s.neurons.cluster[i])
        row = int(s.clusters.row[src])
        pick, j = self._meaning(self.pick(x, y))
        tgt = pick.cluster(st, j)
        if tgt is not None:
            if int(s.clusters.row[tgt]) != row:
                return "", "another layer: neurons stay in their layer"
            if tgt == src:
                return "", "its own cluster (no change)"
            return int(s.clusters.id[tgt]), f"cluster {st.cluster_name(tgt)}"
        _, sy = st.camera.current.screen_to_scene(x, y, st.camera.viewport)
        r = s.rows[row]
        if r.y <= sy <= r.y + r.height:
            if int(s.clusters.size[src]) <= 1:
                return "", "a new cluster (it is alone already)"
            return None, "a new cluster"
        return "", "outside its layer row"

    def drop_neuron(self, key: NeuronKey, x: float, y: float) -> None:
        """Finish a drag: move the neuron to the cluster under ``(x, y)`` or a new one."""
        to, text = self.drop_target(key, x, y)
        if to == "":
            self.app.state.jobs.message = f"not moved: {text}"
            return
        self.app.actions.move_neuron(key, to)  # type: ignore[arg-type]
