"""The debugging view's background loads, one small class per kind of result.

Each :class:`Loader` looks at the app once a frame (:meth:`Loader.tick`, cheap): when its result
is stale and none of its jobs is in flight, it submits one job to the pictures worker with a
*key* saying what the result will be of; :meth:`Loader.finish` takes the result (or the
exception) on the UI thread and keeps it only if the key is still what the view shows.  Results
go into :class:`~cnnvis_gl.ui.state.DebugState` (``app.state.debug``), where panels read them.

* :class:`Flags` — ``diagnose()`` of the snapshot shown;
* :class:`Training` — learning curves and per-layer statistics over the run;
* :class:`Compare` — the class-mean difference to another step (compare mode);
* :class:`NeuronEdges` — the neuron-level edges of the clusters in view, zoomed in;
* :class:`Lineage` — a group's cluster lineage over the run's snapshots (Lineage panel);
* :class:`Ablations` — per-class accuracy with a cluster's channels zeroed (Cluster panel).
"""

from __future__ import annotations

import traceback
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import detail
from .training import activation_difference, load_training, scalars_signature

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "Ablations", "Compare", "Flags", "Lineage", "Loader", "Loaders", "NeuronEdges", "Training"
]  # fmt: skip


class Loader:
    """One kind of background result of the debugging view."""

    label = "load"

    def __init__(self, app: App) -> None:
        self.app = app
        self.in_flight: Hashable | None = None  # the key of the job running

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        """The job to run now, as ``(key, fn)``; ``None``: nothing to do."""
        raise NotImplementedError

    def done(self, key: Any, result: Any) -> None:
        """Take a finished job's result (on the UI thread)."""
        raise NotImplementedError

    def failed(self, key: Any, error: Exception) -> None:
        """A job raised ``error`` (already reported in the status bar)."""

    def tick(self, now: float) -> None:
        if self.in_flight is not None or self.app.images is None:
            return
        job = self.due(now)
        if job is None:
            return
        key, fn = job
        self.in_flight = key

        def run() -> Any:
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 - reported in the status bar
                traceback.print_exc()
                return e

        self.app.images.submit(
            self.label, run, then=lambda done: self.finish(key, done.error or done.result)
        )

    def finish(self, key: Any, result: Any) -> None:
        self.in_flight = None
        if isinstance(result, Exception):
            self.app.state.jobs.error = f"{self.label}: {type(result).__name__}: {result}"
            self.app.job_errors.append(self.app.state.jobs.error)
            self.failed(key, result)
        else:
            self.done(key, result)


def _diagnose(snap: Any) -> list[Any]:
    from ..analysis.diagnose import diagnose

    return diagnose(snap)


class Flags(Loader):
    label = "diagnose"

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        st = self.app.state
        snap = st.snapshot
        if snap is None or st.debug.flags_step == st.step:
            return None
        return st.step, lambda: _diagnose(snap)

    def done(self, step: int, result: Any) -> None:
        if step == self.app.state.step:
            self.app.state.debug.flags, self.app.state.debug.flags_step = list(result), step

    def failed(self, step: int, error: Exception) -> None:
        self.app.state.debug.flags, self.app.state.debug.flags_step = [], step


class Training(Loader):
    label = "training statistics"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.loaded: tuple | None = None  # (steps, scalars signature) of the data shown
        self._checked = 0.0
        self._signature: tuple[int, int] | None = None

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        st = self.app.state
        if st.snapshot is None:
            return None
        steps = tuple(st.steps)
        if now - self._checked > (1.0 if st.follow else 5.0):  # scalars.jsonl grew?
            self._checked = now
            self._signature = scalars_signature(st.run_dir)
        key = (steps, self._signature)
        if not steps or key == self.loaded:
            return None
        units = self.app.inspect.training_units()
        known = st.debug.training.metas if st.debug.training is not None else {}
        run_dir = st.run_dir
        return key, lambda: load_training(run_dir, steps, units, known)

    def done(self, key: tuple, result: Any) -> None:
        self.app.state.debug.training = result
        self.loaded = key


class Compare(Loader):
    """Compare mode: loads the other snapshot (a few are cached) and the difference."""

    label = "difference"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.shown: tuple | None = None  # the key of the difference on the renderer
        self._neurons: Any = None  # the scene's neurons it was computed for
        self.snapshots: OrderedDict[int, Any] = OrderedDict()

    def _key(self) -> tuple | None:
        st = self.app.state
        if st.debug.compare is None or st.scene is None or st.snapshot is None:
            return None
        return st.step, int(st.debug.compare), id(st.scene.neurons)

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        app, st, r = self.app, self.app.state, self.app.renderer
        key = self._key()
        if key is None:
            if r is not None and r.matrix_diverging:
                r.set_matrix_values(None)
                app.view.touch()
            st.debug.compare_diff, self.shown = None, None
            return None
        if key == self.shown and self._neurons is st.scene.neurons:
            if st.debug.compare_diff is not None and r is not None and not r.matrix_diverging:
                r.set_matrix_values(st.debug.compare_diff)  # the renderer re-uploaded neurons
                app.view.touch()
            return None
        scene, snap, other, run_dir = st.scene, st.snapshot, key[1], st.run_dir
        cached = self.snapshots.get(other)

        def load() -> tuple[Any, np.ndarray, dict]:
            o = cached
            if o is None:
                from ..run.snapshot import open_run

                o = open_run(run_dir).snapshot(other)
            diff, info = activation_difference(scene, snap, o)
            return o, diff, info

        return key, load

    def done(self, key: tuple, result: Any) -> None:
        app, st = self.app, self.app.state
        other_snap, diff, info = result
        self.snapshots[key[1]] = other_snap
        while len(self.snapshots) > 4:
            self.snapshots.popitem(last=False)
        if key != self._key():
            return  # superseded: the next tick asks again
        st.debug.compare_diff, st.debug.compare_info = diff, info
        self.shown, self._neurons = key, st.scene.neurons
        if app.renderer is not None:
            app.renderer.set_matrix_values(diff)
        app.view.touch()

    def failed(self, key: tuple, error: Exception) -> None:
        self.app.state.debug.compare = None


class NeuronEdges(Loader):
    """Zoomed in and still: the neuron-level edges of the clusters in view, unless the ones
    shown already cover them."""

    label = "neuron edges"

    def __init__(self, app: App) -> None:
        super().__init__(app)
        # what is shown: (scene version, fraction, cluster indices covered)
        self.have: tuple[int, float, set[int]] | None = None

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        st, r = self.app.state, self.app.renderer
        scene, snap = st.scene, st.snapshot
        if r is None or scene is None or snap is None or not st.neuron_edges:
            return None
        cam = st.camera.current
        moving = st.camera.animating or st.camera.panning or st.drag is not None
        if moving or not r.wants_neuron_edges(cam):
            return None
        visible = cam.visible_rect(st.camera.viewport)
        fraction, version = st.edge_fraction, st.scene_version
        if self.have is not None and self.have[:2] == (version, fraction):
            if set(detail.clusters_in_rect(scene, visible).tolist()) <= self.have[2]:
                return None
        want = detail.clusters_for_view(scene, visible)
        st.debug.neuron_edges_info = f"computing the neuron edges of {len(want)} clusters …"
        key = (version, fraction, tuple(want.tolist()))
        return key, lambda: detail.neuron_edges(snap, scene, want, fraction=fraction)

    def done(self, key: tuple, result: Any) -> None:
        app, st = self.app, self.app.state
        version, fraction, _ = key
        if (version, fraction) != (st.scene_version, st.edge_fraction) or not st.neuron_edges:
            return  # superseded: the next tick asks again
        if app.renderer is not None:
            app.renderer.set_neuron_edges(result)
        covered = set(result.clusters.tolist())  # without those the neuron cap left out
        self.have = (version, fraction, covered)
        st.debug.neuron_edges_info = (
            f"{result.kept:,} of {result.weights:,} neuron weights among {len(covered)} clusters"
        )
        app.view.touch()

    def failed(self, key: tuple, error: Exception) -> None:
        # not asked again until the scene or the view changes
        self.have = (key[0], key[1], set(key[2]))
        self.app.state.debug.neuron_edges_info = f"neuron edges failed: {type(error).__name__}"

    def clear(self) -> None:
        """Forget what is shown (neuron edges turned off)."""
        self.have = None
        self.app.state.debug.neuron_edges_info = ""


class Lineage(Loader):
    """The cluster lineage of the group the Lineage panel asks for, over the run's snapshots."""

    label = "cluster lineage"

    def _key(self) -> tuple | None:
        st = self.app.state
        group = st.debug.lineage_group
        if group is None or st.run_dir is None or len(st.steps) < 2:
            return None
        return group, tuple(st.steps)

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        st = self.app.state
        key = self._key()
        if key is None or key == st.debug.lineage_key:
            return None
        group, steps, run_dir = key[0], key[1], st.run_dir

        def load() -> Any:
            from ..layout.lineage import cluster_lineage
            from ..run.snapshot import open_run

            def progress(done: int, total: int) -> None:
                st.debug.lineage_progress = done / total

            return cluster_lineage(open_run(run_dir), group, steps=steps, progress=progress)

        st.debug.lineage_progress = 0.0
        return key, load

    def done(self, key: tuple, result: Any) -> None:
        st = self.app.state
        st.debug.lineage, st.debug.lineage_key = result, key

    def failed(self, key: tuple, error: Exception) -> None:
        st = self.app.state
        st.debug.lineage, st.debug.lineage_key = None, key  # not asked again for this key


class Ablations(Loader):
    """Runs the ablation the Cluster panel asks for on the run's rebuilt model (its saved
    weights) over ``PROBE`` test images of its training data; results are kept per channel set."""

    label = "ablation"
    PROBE = 1000

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self._model: tuple[Any, Any, str] | None = None  # (model, probe images, why not)

    def due(self, now: float) -> tuple[Hashable, Callable[[], Any]] | None:
        st = self.app.state
        want = st.debug.ablation_want
        if want is None or want in st.debug.ablations or st.run_dir is None:
            return None
        run_dir, classes = st.run_dir, len(st.snapshot.classes) if st.snapshot else 0
        _, parts = want
        from ..model.graph import channel_layouts

        watch = {u.name: u.tap for u in st.snapshot.graph.units} if st.snapshot else {}
        layouts = channel_layouts(st.snapshot.graph) if st.snapshot else {}

        def run() -> Any:
            from ..run.rebuild import rebuild_model, rebuild_probe
            from ..stats.ablation import ablate

            if self._model is None:
                model, why = rebuild_model(run_dir, classes)
                data = rebuild_probe(run_dir, self.PROBE) if model is not None else None
                if model is not None and data is None:
                    why = f"the run does not name its data ({run_dir}/train.json)"
                self._model = (model, data, why)
            model, data, why = self._model
            if model is None or data is None:
                return why
            sets = [{unit: list(channels) for unit, channels in parts}]
            return ablate(model, data.batches(250), sets, classes, watch=watch, layouts=layouts)[0]

        return want, run

    def done(self, key: tuple, result: Any) -> None:
        self.app.state.debug.ablations[key] = result

    def failed(self, key: tuple, error: Exception) -> None:
        self.app.state.debug.ablations[key] = f"the ablation failed: {type(error).__name__}: {error}"


class Loaders:
    """One loader of each kind, ticked in this order each frame."""

    def __init__(self, app: App) -> None:
        self.flags = Flags(app)
        self.training = Training(app)
        self.compare = Compare(app)
        self.neuron_edges = NeuronEdges(app)
        self.lineage = Lineage(app)
        self.ablations = Ablations(app)
        self.all: tuple[Loader, ...] = (
            self.ablations,
            self.flags,
            self.training,
            self.compare,
            self.neuron_edges,
            self.lineage,
        )

    def tick(self, now: float) -> None:
        for loader in self.all:
            loader.tick(now)

    @property
    def loading(self) -> bool:
        """Whether a load of the debugging view (flags, curves, a difference, …) is running."""
        return any(ld.in_flight is not None for ld in self.all)
