"""A second run beside the first (the Two runs panel, ``cnnvis view RUN --compare RUN_B``).

Two models on the same data — BaseCNN and BaseCNN×4, a model before and after fine-tuning —
are compared group by group (:func:`cnnvis_gl.compare.compare_runs`): matched groups, neurons,
clusters, near-duplicate neurons, positive edges and, when both runs say how to rebuild their
models, linear CKA on the same probe images.  The second run's network is drawn in the panel by
its own renderer into its own target, and follows the network view: it frames the layers
matched to the ones the view shows (:func:`~cnnvis_gl.layout.search.groups_frame`), so zooming to a layer of run A shows
the same layer of run B beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout.scene import Scene
from ..layout.search import groups_frame, shown_groups
from ..render.text import frame_with_labels
from .state import CameraState

if TYPE_CHECKING:
    from .app import App

__all__ = ["OtherRun", "OtherView"]

CKA_PROBE = 500  # probe images for CKA (as `cnnvis compare`'s default)


@dataclass
class OtherRun:
    """The second run, loaded and laid out: its latest snapshot, scene and the comparison."""

    path: Path
    name: str
    snapshot: Any
    patches: Any  # its patch pixels (a PatchCache)
    scene: Scene
    groups: list[str]  # run B's group names, by ``Row.group``
    rows: list[Any]  # GroupComparison per matched pair, run A's order
    cka: dict[str, float] | str | None = None  # by group of A; str: why there is none
    pairs: dict[str, str] = field(default_factory=dict)  # group of A → group of B

    def __post_init__(self) -> None:
        self.pairs = {r.a: r.b for r in self.rows}


def _load(path: Path, run_a: Path, patch_size: int) -> OtherRun:
    """Open, lay out and compare run ``path`` with ``run_a`` (a background job)."""
    from ..compare import compare_runs
    from ..layout import build_scene
    from ..run.snapshot import open_run
    from .jobs import PatchCache

    run_b = open_run(path)  # SnapshotError names what is wrong with it
    snap = run_b.latest()
    scene = build_scene(snap)
    patches = PatchCache(snap, patch_size)
    patches.prefetch(scene.units[u] for u in np.unique(scene.neurons.unit))
    rows = compare_runs(open_run(run_a), run_b)
    model = str(snap.meta.get("model", ""))
    name = path.name + ("" if not model or model == path.name else f" ({model})")
    return OtherRun(path, name, snap, patches, scene, [g.name for g in snap.graph.groups], rows)


def _cka(path: Path, run_a: Path) -> dict[str, float] | str:
    """CKA between matched groups on run A's probe images, or why it cannot be computed."""
    from ..compare import compare_runs
    from ..run.rebuild import rebuild_model, rebuild_probe
    from ..run.snapshot import open_run

    models = []
    for run in (run_a, path):
        k = len(open_run(run).classes)
        model, why = rebuild_model(run, k)
        if model is None:
            return why
        models.append(model)
    data = rebuild_probe(run_a, CKA_PROBE)
    if data is None:
        return f"{run_a} does not name its data (train.json)"
    rows = compare_runs(open_run(run_a), open_run(path), data=data, models=(models[0], models[1]))
    return {r.a: float(r.cka) for r in rows if r.cka is not None}


class OtherView:
    """The second run: its loads, its renderer and view target, its camera linked to the view."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.want: Path | None = None  # the run asked for
        self.run: OtherRun | None = None
        self.error: str | None = None
        self.loading = False
        self.camera = CameraState()
        self.shown: list[str] = []  # run A's groups the view shows (run B frames their matches)
        self.renderer: Any = None
        self.target: Any = None
        self._drawn: tuple | None = None
        self._scene_set: Scene | None = None
        self._framed_for: tuple[int, int] = (0, 0)  # the view size B was framed for

    # ------------------------------------------------------------------ loading
    def open(self, path: str | Path | None) -> None:
        """Compare with run ``path`` (laid out in the background); ``None`` closes it."""
        self.want = None if path is None or not str(path).strip() else Path(str(path).strip())
        self.run, self.error, self._drawn = None, None, None
        self.camera, self.shown = CameraState(), []  # (the next run is framed afresh)
        if self.want is None:
            return
        app = self.app
        if app.images is None:  # (before the window exists: opened by post_init)
            return
        self.loading = True
        want, run_a = self.want, app.state.run_dir
        size = app.renderer.atlas.patch_size if app.renderer is not None else 28

        def then(done: Any) -> None:
            if want != self.want:
                return
            self.loading = False
            if done.error is not None:
                self.error = f"{type(done.error).__name__}: {done.error}"
                return
            self.run = done.result
            self._ask_cka()

        app.images.submit(f"opening {want.name}", lambda: _load(want, run_a, size), then)

    def _ask_cka(self) -> None:
        run, app = self.run, self.app
        if run is None or app.images is None:
            return
        path, run_a = run.path, app.state.run_dir

        def then(done: Any) -> None:
            if self.run is run:
                run.cka = done.result if done.error is None else f"CKA failed: {done.error}"

        app.images.submit("CKA of the two runs", lambda: _cka(path, run_a), then)

    # ------------------------------------------------------------------ following the view
    def follow(self, size: tuple[int, int], dt: float) -> None:
        """Frame run B's layers matched to the ones the network view shows (animated)."""
        st, run = self.app.state, self.run
        if run is None or st.scene is None or st.snapshot is None:
            return
        self.camera.viewport = size
        groups_a = [g.name for g in st.snapshot.graph.groups]
        visible = st.camera.current.visible_rect(st.camera.viewport)
        shown = shown_groups(st.scene, groups_a, visible)
        resized = size != self._framed_for
        if (shown and shown != self.shown) or resized or not self.camera.fitted:
            self._framed_for = size
            self.shown = shown or self.shown or groups_a
            names = [run.pairs[g] for g in self.shown if g in run.pairs]
            rect = groups_frame(run.scene, run.groups, names) if names else None
            if rect is None:
                rect = run.scene.bounds
            cam = frame_with_labels(run.scene.labels, rect, size, 0.03)
            if self.camera.fitted and not resized:
                self.camera.go(cam)
            else:  # (a resized panel is framed at once)
                self.camera.jump(cam)
                self.camera.fitted = True
        self.camera.step(dt)

    # ------------------------------------------------------------------ drawing and picking
    def render(self, size: tuple[int, int]) -> int:
        """Draw run B into its target when its view changed; the texture's GL name (0: none)."""
        app, run = self.app, self.run
        if run is None or app.ctx is None:
            return 0
        from ..render import SceneRenderer
        from ..render.targets import ViewTarget

        if self.renderer is None:
            self.renderer = SceneRenderer(app.ctx, run.patches, theme=app.state.theme)
            self.target = ViewTarget(app.ctx)
        r = self.renderer
        if self._scene_set is not run.scene:
            r.set_snapshot(run.patches)
            r.set_scene(run.scene)
            self._scene_set = run.scene
            self._drawn = None
        if r.theme.name != app.state.theme:
            r.set_theme(app.state.theme)
            self._drawn = None
        if self.target.ensure(size, park=r.park):
            self._drawn = None
        key = (self.camera.current, size, id(run.scene), app.state.theme)
        if key != self._drawn:
            r.draw(self.camera.current, size, target=self.target.fbo, moving=self.camera.animating)
            app.ctx.screen.use()
            self._drawn = key
        return self.target.glo

    def cluster_at(self, x: float, y: float) -> int | None:
        """Index of run B's cluster at pixel ``(x, y)`` of its view (``None``: none)."""
        from ..render.pick import PickKind

        if self.renderer is None or self.run is None or self._drawn is None:
            return None
        kind, i = self.renderer.pick(x, y, self.camera.current, self.camera.viewport)
        self.app.ctx.screen.use()
        if kind == PickKind.CLUSTER:
            return i
        if kind == PickKind.NEURON:
            return int(self.run.scene.neurons.cluster[i])
        return None

    def cluster_text(self, ci: int) -> list[str]:
        """Tooltip lines of run B's cluster ``ci``: its layer, size and top classes."""
        run = self.run
        assert run is not None
        s = run.scene
        row = s.rows[int(s.clusters.row[ci])]
        members = np.flatnonzero(s.neurons.cluster == ci)
        lines = [f"{row.name}: a cluster of {len(members)} neurons (run B)"]
        act = s.neurons.activation[members]
        if act.size:
            top = np.argsort(-act.mean(0))[:3]
            lines.append("top classes: " + ", ".join(run.snapshot.classes[k] for k in top))
        return lines

    def release(self) -> None:
        """Free the GL objects (the context is current)."""
        if self.renderer is not None:
            self.renderer.park()
        if self.target is not None:
            self.target.release()
        if self.renderer is not None:
            self.renderer.release()
        self.renderer = self.target = None
