"""Every command of the viewer: what panels, menus, shortcuts and tests call.

Panels are functions of ``(state, actions)``: they read the :class:`~cnnvis_gl.ui.state.AppState`
and call an :class:`Actions`.  Layout edits run as jobs (:class:`~cnnvis_gl.ui.feed.SceneFeed`);
an undoable edit is one :class:`~cnnvis_gl.ui.state.HistoryEntry` (its layout edits before and
after), moved between the undo and redo stacks only once the layout job succeeded.  Appearance
commands (facets, selection, theme, the threshold preview) reach the renderer at once.

Besides the commands, :class:`Actions` hands panels the helpers they draw with:
:attr:`~Actions.view` (the network view's canvas), :attr:`~Actions.inspect` (data and pictures
of the inspectors), :attr:`~Actions.shots` (screenshots, the render command) and
:attr:`~Actions.tours` (the tour editor and present mode), :attr:`~Actions.notes` (the
annotations) and :attr:`~Actions.other` (a second run to compare with).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from imgui_bundle import hello_imgui, imgui

from ..layout.search import Hit, groups_frame, neighbour, row_frame
from ..render.camera import Camera
from ..render.text import frame_with_labels
from .state import NeuronKey

if TYPE_CHECKING:
    from .app import App
    from .bookmarks import Bookmarks
    from .canvas import Canvas
    from .inspect import Inspector
    from .notes import Notes
    from .other import OtherView
    from .shots import Screenshots
    from .tours import Tours

__all__ = ["Actions", "apply_imgui_theme"]


class Actions:
    """The viewer's commands, on the app they command."""

    def __init__(self, app: App) -> None:
        self.app = app

    # ------------------------------------------------------------------ helpers for panels
    @property
    def view(self) -> Canvas:
        return self.app.view

    @property
    def inspect(self) -> Inspector:
        return self.app.inspect

    @property
    def shots(self) -> Screenshots:
        return self.app.shots

    @property
    def bookmarks(self) -> Bookmarks:
        return self.app.bookmarks

    @property
    def tours(self) -> Tours:
        return self.app.tours

    @property
    def notes(self) -> Notes:
        return self.app.notes

    @property
    def other(self) -> OtherView:
        return self.app.other

    @property
    def edit_pending(self) -> bool:
        """A layout command is queued or running (edits wait for it)."""
        return self.app.feed.pending

    def _edit(self, label: str, fn: Any, on_success: Any = None) -> None:
        self.app.feed.submit(label, fn, on_success)

    @property
    def _session(self) -> Any:
        return self.app.session

    # ------------------------------------------------------------------ snapshots
    def open_step(self, step: int) -> None:
        """Show snapshot ``step`` (laid out in the background)."""
        if step == self.app.state.step:
            return
        self._edit(f"open step {step}", lambda: self._session.open(int(step)))

    def show_lineage(self, group: str | None) -> None:
        """Ask for ``group``'s cluster lineage over the run (computed in the background; the
        Lineage panel shows it)."""
        self.app.state.debug.lineage_group = group

    def ablate(self, clusters: list[int]) -> None:
        """Ask for the per-class accuracy with these clusters' (indices) channels zeroed
        together (computed in the background on the run's rebuilt model; the Cluster panel
        shows it)."""
        st = self.app.state
        if st.scene is not None and clusters:
            st.debug.ablation_want = st.ablation_key(clusters)

    def toggle_ablation_set(self, cid: int) -> None:
        """Add cluster ``cid`` to the set of clusters zeroed together, or take it out."""
        chosen = self.app.state.debug.ablation_set
        if cid in chosen:
            chosen.remove(cid)
        else:
            chosen.append(cid)

    def go_to_cluster_at(self, step: int, group: str, members: np.ndarray) -> None:
        """Show snapshot ``step`` and select and frame the cluster of ``group``'s row that
        shares the most neurons with ``members`` (a cluster of the lineage at that step)."""
        from ..layout.state import previous_clusters

        def select() -> None:
            scene = self.app.state.scene
            if scene is None or group not in {r.name for r in scene.rows}:
                return
            _, ids, clusters = previous_clusters(scene)[group]
            wanted = set(np.asarray(members).tolist())
            shared = [len(wanted & set(m.tolist())) for m in clusters]
            cid = ids[int(np.argmax(shared))]
            self.select_cluster(cid)
            self.zoom_to_cluster(int(np.flatnonzero(scene.clusters.id == cid)[0]))

        if step == self.app.state.step:
            select()
        else:
            self._edit(f"open step {step}", lambda: self._session.open(int(step)), select)

    def refresh_steps(self) -> None:
        """Re-read the run's list of snapshots (in the background)."""
        assert self.app.worker is not None
        self.app.worker.submit(
            "list snapshots", lambda: self._session._run().steps(), then=self.app.feed.finish
        )

    def set_follow(self, follow: bool) -> None:
        """Switch follow mode on (start the follower, jump to the newest) or off."""
        st, feed = self.app.state, self.app.feed
        st.follow = bool(follow)
        if st.follow:
            feed.start_follower()
            if feed.follower is not None and feed.follower.run is not None:
                steps = feed.follower.run.steps()
                if steps and steps[-1] != st.step:
                    self.open_step(steps[-1])

    # ------------------------------------------------------------------ layout edits
    def move_neuron(self, key: NeuronKey, to: int | None) -> None:
        """Move neuron ``key`` to cluster id ``to`` (same row) or into a new cluster."""
        unit, ch = key
        self._edit(f"move neuron {ch} of {unit}", lambda: self._session.move(unit, int(ch), to))

    def set_clustering(self, group: str, method: str, k: int | None) -> None:
        """Re-cluster one layer group (K-Means with k, None = silhouette; or MeanShift)."""
        self._edit(f"re-cluster {group}", lambda: self._session.set_clustering(group, method, k))

    def set_expanded(self, group: str, expanded: bool) -> None:
        """Expand a group into one row per layer, or collapse it."""
        gs = self.app.state.groups.get(group)
        if gs is not None:
            gs.expanded = bool(expanded)
        verb = "expand" if expanded else "collapse"
        self._edit(f"{verb} {group}", lambda: self._session.set_expanded(group, expanded))

    def set_collapsed(self, stage: str, collapsed: bool) -> None:
        """Collapse a stage (a module holding several groups) into one row, or expand it."""
        have, verb = self.app.state.collapsed, "collapse" if collapsed else "expand"
        self.set_collapsed_stages(have | {stage} if collapsed else have - {stage}, f"{verb} {stage}")

    def set_collapsed_stages(self, stages: set[str] | frozenset[str], label: str = "") -> None:
        """Show exactly ``stages`` collapsed (a stage's box, "Collapse all" / "Expand all")."""
        self.app.state.collapsed = set(stages)
        label = label or (f"collapse {len(stages)} stages" if stages else "expand every stage")
        self._edit(label, lambda: self._session.set_collapsed_stages(frozenset(stages), label))

    def preview_threshold(self, fraction: float) -> None:
        """While the slider moves: hide edges at once (no upload); the re-bundling follows."""
        st, r = self.app.state, self.app.renderer
        st.edge_fraction = float(fraction)
        cur = float(st.edits.edge_fraction)
        if r is not None and cur > 0:
            r.set_edge_quantile(min(fraction / cur, 1.0))
            self.view.touch()

    def set_threshold(self, fraction: float) -> None:
        """Keep the top ``fraction`` of the cluster edges per pair of rows (re-bundled)."""
        self.app.state.edge_fraction = float(fraction)
        self._edit(f"edges: top {fraction:.0%}", lambda: self._session.set_threshold(fraction))

    def set_facet(self, facet: int, cluster_ids: list[int] | None = None) -> None:
        """Switch facets of the given clusters (ids) or of all; shown at once."""
        st, r, feed = self.app.state, self.app.renderer, self.app.feed
        if cluster_ids is None:
            st.facet = int(facet)
        if r is not None and st.scene is not None:
            shown = feed.shown_facets
            if shown is None:
                shown = np.asarray(st.scene.clusters.facet).copy()
            if cluster_ids is None:
                shown[:] = facet
                r.set_facet(int(facet))
            else:
                idx = [i for i in map(st.cluster_index, cluster_ids) if i is not None]
                shown[idx] = facet
                r.set_facet(int(facet), idx)
            feed.shown_facets = shown
            self.view.touch()
        self._edit("switch facet", lambda: self._session.set_facet(facet, cluster_ids))

    def undo(self) -> None:
        """Undo the last clustering edit (Ctrl+Z)."""
        h = self.app.state.history
        if not h.undo or self.edit_pending:
            return
        e = h.undo[-1]
        self._edit(
            f"undo {e.label}",
            lambda: self._session.restore(e.before, f"undo {e.label}"),
            lambda: h.redo.append(h.undo.pop()),  # only once the layout is back
        )

    def redo(self) -> None:
        """Redo the last undone edit (Ctrl+Shift+Z)."""
        h = self.app.state.history
        if not h.redo or self.edit_pending:
            return
        e = h.redo[-1]
        self._edit(
            f"redo {e.label}",
            lambda: self._session.restore(e.after, f"redo {e.label}"),
            lambda: h.undo.append(h.redo.pop()),
        )

    def reset_clustering(self) -> None:
        """Drop the edited clustering; cluster every group afresh (undoable)."""
        self._edit("reset clustering", self._session.reset)

    # ------------------------------------------------------------------ selection
    def select_classes(self, classes: set[int], quantile: float | None = None) -> None:
        """Highlight the neurons most activated by ``classes``; dim the others."""
        sel = self.app.state.selection
        sel.classes = set(int(c) for c in classes)
        if quantile is not None:
            sel.quantile = float(quantile)
        self.push_selection()

    def select_neuron(
        self, key: NeuronKey | None, keep_cluster: bool = False, cls: int | None = None
    ) -> None:
        """Show a neuron in the neuron inspector (its cluster in the cluster inspector); with
        ``cls``, also its top images of that class (the matrix drill-down)."""
        st = self.app.state
        st.selection.neuron = key
        st.selection.neuron_class = cls
        i = st.neuron_index(key)
        if i is not None and st.scene is not None and not keep_cluster:
            st.selection.cluster = int(st.scene.clusters.id[st.scene.neurons.cluster[i]])
        self.push_selection()

    def select_cluster(self, cid: int | None) -> None:
        """Show a cluster in the cluster inspector (an ablation's tint goes: it was another's)."""
        self.app.state.selection.cluster = cid
        self.app.state.debug.tint_key = self.app.state.debug.tint = None
        self.push_selection()

    def push_selection(self) -> None:
        """Send the selection (kept by keys) to the renderer as indices."""
        st, r = self.app.state, self.app.renderer
        if r is None or st.scene is None:
            return
        sel, tint = st.selection, st.debug.tint  # (a tint of another scene's clusters: not)
        ni = st.neuron_index(sel.neuron)
        ci = st.cluster_index(sel.cluster)
        r.set_selection(
            classes=sorted(sel.classes),
            neurons=None if ni is None else [ni],
            clusters=None if ci is None else [ci],
            quantile=sel.quantile,
            emphasis=tint if tint is not None and len(tint) == len(st.scene.clusters.id) else None,
        )
        self.view.touch()

    def set_tint(self, key: tuple | None, emphasis: np.ndarray | None) -> None:
        """Draw the clusters as bright as ``emphasis`` (``None``: the usual rule); ``key``
        says what it shows, so that it is sent once."""
        dbg = self.app.state.debug
        if key == dbg.tint_key:
            return
        dbg.tint_key, dbg.tint = key, emphasis
        self.push_selection()

    # ------------------------------------------------------------------ appearance
    def set_theme(self, name: str) -> None:
        """Switch the colour theme of the view and of the panels (uniforms only)."""
        self.app.state.theme = name
        if self.app.renderer is not None:
            self.app.renderer.set_theme(name)
        apply_imgui_theme(name)
        self.inspect.textures.clear()
        self.view.touch()

    def set_neuron_edges(self, on: bool) -> None:
        """Show neuron-level edges when zoomed in (or only cluster edges)."""
        self.app.state.neuron_edges = bool(on)
        if not on and self.app.renderer is not None:
            self.app.renderer.set_neuron_edges(None)
            self.app.loaders.neuron_edges.clear()
        self.view.touch()

    def set_compare(self, other: int | None) -> None:
        """Compare mode: the activation matrices show ``current − other`` (``None``: off).

        Turning it on shows every cluster's matrix facet (where the difference is drawn).
        """
        st = self.app.state
        was = st.debug.compare
        st.debug.compare = None if other is None else int(other)
        if other is not None and was is None and st.facet != 1 and st.scene is not None:
            self.set_facet(1)
        self.app.loaders.compare.tick(time.perf_counter())

    # ------------------------------------------------------------------ camera
    def fit_all(self, animate: bool = True) -> None:
        """Show the whole network."""
        st = self.app.state
        if st.scene is None or st.camera.viewport == (1, 1):
            return
        cam = Camera().fit(st.scene.bounds, st.camera.viewport, margin=0.03)
        if animate and st.camera.fitted:
            st.camera.go(cam)
        else:
            st.camera.jump(cam)
        st.camera.fitted = True
        self.view.touch()

    def zoom_to_cluster(self, ci: int) -> None:
        """Frame cluster ``ci`` (animated)."""
        st = self.app.state
        if st.scene is None:
            return
        x, y, w, h = (float(v) for v in st.scene.clusters.rect[ci])
        st.camera.go(st.camera.current.zoom_to_rect((x, y, x + w, y + h), st.camera.viewport, 0.12))
        self.view.touch()

    def zoom_to_row(self, row: int) -> None:
        """Frame a scene row (animated): its clusters, with the row's height."""
        st = self.app.state
        s = st.scene
        if s is None or not 0 <= row < len(s.rows):
            return
        st.camera.go(frame_with_labels(s.labels, row_frame(s, row), st.camera.viewport, 0.04))
        self.view.touch()

    def zoom_to_groups(self, names: list[str]) -> None:
        """Frame the rows of these layer groups (animated), e.g. a stage of a ResNet."""
        st = self.app.state
        if st.scene is None or st.snapshot is None:
            return
        rect = groups_frame(st.scene, [g.name for g in st.snapshot.graph.groups], list(names))
        if rect is not None:
            st.camera.go(frame_with_labels(st.scene.labels, rect, st.camera.viewport, 0.04))
            self.view.touch()

    def zoom_to_flag(self, flag: Any) -> None:
        """Zoom the network view to the row of a flag."""
        row = self.inspect.flag_row(flag)
        if row is not None:
            self.zoom_to_row(row)

    def center_on(self, x: float, y: float) -> None:
        """Fly to scene point ``(x, y)`` at the same zoom (the minimap's click)."""
        cam = self.app.state.camera
        cam.go(Camera((float(x), float(y)), cam.target.zoom))
        self.view.touch()

    # ------------------------------------------------------------------ finding the way
    def go_to(self, hit: Hit) -> None:
        """Show a search result: frame its row or cluster (a neuron's cluster, selected), or
        highlight a class."""
        st = self.app.state
        s = st.scene
        if s is None:
            return
        if hit.kind == "module":
            self.zoom_to_groups(list(hit.groups))
        elif hit.kind == "row":
            self.zoom_to_row(hit.index)
        elif hit.kind == "cluster":
            st.selection.neuron = None
            self.select_cluster(int(s.clusters.id[hit.index]))
            self.zoom_to_cluster(hit.index)
        elif hit.kind == "neuron":
            self.select_neuron(st.neuron_key(hit.index))
            self.zoom_to_cluster(int(s.neurons.cluster[hit.index]))
        elif hit.kind == "class":
            self.select_classes({hit.index})

    def step_selection(self, direction: str) -> None:
        """The arrow keys: select the neighbouring cluster (left / right in the row, up / down
        in the adjacent layer) and fly to it at the same zoom; with nothing selected, the
        first cluster of the first layer."""
        st = self.app.state
        s = st.scene
        if s is None or not len(s.clusters.id):
            return
        ci = st.cluster_index(st.selection.cluster)
        if ci is None:
            target: int | None = int(st.row_clusters(st.layer_rows()[0])[0])
        else:
            target = neighbour(s, ci, direction)
        if target is None:
            return
        st.selection.neuron = None
        self.select_cluster(int(s.clusters.id[target]))
        x, y, w, h = (float(v) for v in s.clusters.rect[target])
        self.center_on(x + w / 2, y + h / 2)

    # ------------------------------------------------------------------ the window
    def show_panel(self, title: str) -> None:
        """Bring dockable panel ``title`` to the front of its dock space (next frame)."""
        try:
            windows = hello_imgui.get_runner_params().docking_params.dockable_windows
        except Exception:  # noqa: BLE001 - no runner (tests of the commands alone)
            return
        for w in windows:
            if w.label == title:
                w.is_visible = True
                w.focus_window_at_next_frame = True

    def request_exit(self) -> None:
        """Leave the loop after this frame (the window closes; ``run_app`` returns)."""
        hello_imgui.get_runner_params().app_shall_exit = True


def apply_imgui_theme(theme: str) -> None:
    """Panel colours: the same sizes and spacing in both themes, only colours differ."""
    try:
        hello_imgui.apply_theme(hello_imgui.ImGuiTheme_.darcula_darker)
    except Exception:  # noqa: BLE001 - no ImGui context yet (before the runner)
        return
    style = imgui.get_style()
    style.window_rounding = 0.0
    style.frame_rounding = 3.0
    style.tab_rounding = 3.0
    if theme == "light":
        imgui.style_colors_light(style)
        col = imgui.Col_
        style.set_color_(col.frame_bg, imgui.ImVec4(0.86, 0.87, 0.89, 1.0))
        style.set_color_(col.frame_bg_hovered, imgui.ImVec4(0.80, 0.84, 0.92, 1.0))
        style.set_color_(col.window_bg, imgui.ImVec4(0.96, 0.96, 0.96, 1.0))
        style.frame_border_size = 1.0
    else:
        style.frame_border_size = 0.0
