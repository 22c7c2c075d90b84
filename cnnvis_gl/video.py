"""Videos of a run, rendered headless: a guided tour of its bookmarks, or a time-lapse of training.

``cnnvis video RUN --tour NAME -o talk.mp4`` plays a tour (``RUN/tours/NAME.json``, see
:mod:`cnnvis_gl.run.tours`) through its :class:`~cnnvis_gl.render.flight.Timeline`: every frame
is the bookmark's view as ``cnnvis render --bookmark`` draws it (the same layout, colours and
selection), the camera flying between stops, looks cross-fading and captions drawn over it.
``cnnvis video RUN --timelapse -o learn.mp4`` shows every snapshot in turn, laid out so that
clusters keep their identity (id, colour, order) from step to step, each morphing into the next
(neurons fly to their new clusters, frames and rows move and resize:
:func:`cnnvis_gl.layout.morph.morph`; edges fade out and back in), with the step and the
learning curves drawn over it.

Frames that repeat (a held stop, a held snapshot) are drawn once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CnnvisError

__all__ = ["VideoResult", "timelapse_video", "tour_video"]


@dataclass(frozen=True)
class VideoResult:
    """What was written: the file, its frames, their size and rate, and the seconds it took."""

    path: Path
    frames: int
    size: tuple[int, int]
    fps: float
    seconds: float
    drawn: int  # frames rendered by OpenGL (the rest repeat a drawn one)
    also: tuple[Path, ...] = ()  # the same video in other files (--gif)

    def __str__(self) -> str:
        also = "".join(f" (and {p})" for p in self.also)
        return (
            f"{self.path}{also}: {self.frames} frames ({self.frames / self.fps:.1f} s at"
            f" {self.fps:g} fps), {self.size[0]}x{self.size[1]}, in {self.seconds:.1f} s"
        )


def _writers(out: str | Path, size: tuple[int, int], fps: float, gif: bool) -> Any:
    """The video file, and with ``gif`` a GIF of it beside (``talk.mp4`` → ``talk.gif``)."""
    from .render.encode import VideoWriters

    paths = [Path(out)]
    if gif:
        if paths[0].suffix.lower() == ".gif":
            raise CnnvisError(f"--gif: {out} is a GIF already (--gif adds one beside an .mp4)")
        paths.append(paths[0].with_suffix(".gif"))
    try:
        return VideoWriters(paths, size, fps)
    except ValueError as e:
        raise CnnvisError(str(e)) from None


def _progress(total: int, label: str, show: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="frame", disable=not show, leave=False)


class _Looks:
    """The scenes, renderers and selections of the bookmarks a tour visits (one GL context)."""

    def __init__(self, snap: Any, edits: Any, size: tuple[int, int], msaa: int) -> None:
        from .render.offscreen import create_context

        self.snap, self.edits, self.size, self.msaa = snap, edits, size, msaa
        self.ctx = create_context()
        self._scenes: dict[tuple, Any] = {}
        self._renderers: dict[tuple, Any] = {}
        self._detail: dict[tuple, Any] = {}  # neuron-level edges by (look, clusters in view)
        self.drawn = 0

    def scene(self, mark: Any) -> Any:
        from .layout import LayoutOptions, build_scene, stages
        from .layout.scene import FACET_FEATURES, FACET_MATRIX
        from .ui.edits import build_with_edits

        # laid out for the view the bookmark was taken in (its camera is in that layout)
        view = (int(mark.size[0]), int(mark.size[1]))
        key = (tuple(sorted(mark.expanded)), tuple(sorted(mark.collapsed)), mark.facet, mark.edge_fraction, view)
        if key not in self._scenes:
            facet = FACET_MATRIX if mark.facet == "matrix" else FACET_FEATURES
            expanded = frozenset(mark.expanded) & {g.name for g in self.snap.graph.groups}
            collapsed = frozenset(mark.collapsed) & set(stages(self.snap.graph))
            if self.edits is not None:  # as `cnnvis render --bookmark`: the viewer's layout
                e = replace(self.edits, expanded=expanded, collapsed=collapsed, edge_fraction=mark.edge_fraction,
                            facet=facet, facets={})  # fmt: skip
                self._scenes[key] = build_with_edits(self.snap, e, LayoutOptions(view_size=view)).scene
            else:
                options = LayoutOptions(expanded=expanded, collapsed=collapsed, facet=facet,
                                        edge_fraction=mark.edge_fraction, view_size=view)  # fmt: skip
                self._scenes[key] = build_scene(self.snap, options)
        return key, self._scenes[key]

    def draw(self, mark: Any, camera: Any) -> np.ndarray:
        """The bookmark's look through ``camera`` (RGB)."""
        from .layout.selection import saved_selection
        from .render.offscreen import VIDEO_LOD, render_image
        from .render.renderer import SceneRenderer

        key, scene = self.scene(mark)
        r = self._renderers.get(key)
        if r is None:
            r = SceneRenderer(self.ctx, self.snap, theme=mark.theme, msaa=self.msaa, lod=VIDEO_LOD)
            r.set_scene(scene)
            self._renderers[key] = r
        names = list(self.snap.classes)
        classes = [names.index(c) for c in mark.classes if c in names]
        r.set_selection(**(saved_selection(scene, classes, mark.cluster, mark.neuron) or {}))
        r.set_neuron_edges(self._neuron_edges(key, scene, r, camera, mark.edge_fraction))
        r.set_hover()
        self.drawn += 1
        image = render_image(self.snap, scene, self.size, camera, theme=mark.theme, msaa=self.msaa,
                             renderer=r, neuron_edges=None)  # fmt: skip
        return image[..., :3]

    def _neuron_edges(self, key: tuple, scene: Any, r: Any, camera: Any, fraction: float) -> Any:
        """Zoomed in, the neuron-level edges of the clusters in view, as ``cnnvis render``
        draws them; bundled once per set of clusters (a flight crosses few such sets)."""
        from .layout.detail import clusters_for_view, neuron_edges

        if not r.wants_neuron_edges(camera):
            return None
        cl = clusters_for_view(scene, camera.visible_rect(self.size))
        k = (key, tuple(cl.tolist()))
        if k not in self._detail:
            self._detail[k] = neuron_edges(self.snap, scene, cl, fraction=float(fraction))
        return self._detail[k]

    def release(self) -> None:
        for r in self._renderers.values():
            r.release()
        self.ctx.release()


def _open_tour(run_dir: Path, tour: str) -> tuple[Any, dict[str, Any], Path]:
    from .run.bookmarks import load_bookmarks
    from .run.tours import check_stops, load_tour, tour_path

    path = tour_path(run_dir, tour)
    t = load_tour(path)
    marks = {b.name: b for b in load_bookmarks(run_dir)}
    check_stops(t, marks, path)
    return t, marks, path


def tour_video(
    run_dir: str | Path,
    tour: str,
    out: str | Path,
    size: tuple[int, int] = (1280, 720),
    fps: float = 30.0,
    msaa: int = 4,
    step: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    annotations: bool = True,
    gif: bool = False,
) -> VideoResult:
    """Render tour ``tour`` (a name in ``RUN/tours/`` or a path) of run ``run_dir`` to ``out``
    (``.mp4`` or ``.gif``) at ``size`` and ``fps``, on snapshot ``step`` (default the latest),
    with the viewer's layout (``RUN/layout.json``) unless ``fresh``, and the callouts of
    ``RUN/annotations.json`` unless not ``annotations``; with ``gif`` also a GIF beside it.

    Raises
    ------
    CnnvisError
        A damaged or missing tour, bookmarks or layout file; a stop naming no bookmark; a bad
        size, rate or output format.
    """
    from . import open_run
    from .render.callouts import place
    from .render.flight import Timeline
    from .render.overlay import blend, draw_callouts, draw_caption
    from .run.annotations import load_annotations
    from .ui.edits import load_edits

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    tour_doc, marks, _ = _open_tour(run_dir, tour)
    run = open_run(run_dir)
    snap = run.snapshot(step) if step is not None else run.latest()
    edits = None
    if not fresh:
        try:
            edits = load_edits(run_dir)
        except ValueError as e:
            raise CnnvisError(f"{e} (use --fresh to ignore it)") from None
    notes = [] if not annotations else load_annotations(run_dir)
    timeline = Timeline(tour_doc, marks, size)
    times = timeline.times(fps)
    looks = _Looks(snap, edits, size, msaa)
    try:
        writer = _writers(out, size, fps, gif)
    except BaseException:
        looks.release()
        raise
    last: tuple[Any, np.ndarray] | None = None
    try:
        with writer, _progress(len(times), "tour", progress) as bar:
            for t in times:
                f = timeline.at(t)
                key = (f.a, f.b, round(f.mix, 6), f.camera, f.camera_b, f.caption, round(f.caption_alpha, 4))
                if last is None or last[0] != key:
                    image = looks.draw(timeline.marks[f.a], f.camera)
                    if f.b != f.a and f.mix > 0.0:
                        image = blend(image, looks.draw(timeline.marks[f.b], f.camera_b), f.mix)
                    if notes:  # the callouts of the look that dominates
                        mark, cam = (timeline.marks[f.a], f.camera) if f.mix < 0.5 else (timeline.marks[f.b], f.camera_b)
                        image = draw_callouts(image, place(looks.scene(mark)[1], notes, cam, size))
                    last = (key, draw_caption(image, f.caption, f.caption_alpha))
                writer.write(last[1])
                bar.update()
    finally:
        looks.release()
    return VideoResult(writer.path, writer.frames, size, fps, time.perf_counter() - t0, looks.drawn,
                       tuple(writer.paths[1:]))  # fmt: skip


def _curves(run_dir: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Up to three learning curves of ``scalars.jsonl`` (losses first, then error rates)."""
    from .run.recorder import read_scalars

    series: dict[str, tuple[list[float], list[float]]] = {}
    for rec in read_scalars(run_dir):
        for k, v in rec.items():
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                xs, ys = series.setdefault(k, ([], []))
                xs.append(float(rec["step"]))
                ys.append(float(v))
    order = sorted(series, key=lambda k: ("loss" not in k, "error" not in k, k))
    return {k.replace("_", " "): series[k] for k in order[:3]}


def _snapshots(run: Any, steps: Sequence[int] | None) -> list[int]:
    have = run.steps()
    if steps is None:
        return have
    missing = [s for s in steps if s not in have]
    if missing:
        raise CnnvisError(f"--steps: no snapshot at step {missing[0]} (steps: {', '.join(map(str, have))})")
    return list(steps)


def timelapse_video(
    run_dir: str | Path,
    out: str | Path,
    size: tuple[int, int] = (1280, 720),
    fps: float = 30.0,
    hold: float = 1.0,
    morph: float = 0.75,
    theme: str = "dark",
    facet: str = "features",
    edge_fraction: float = 0.25,
    steps: Sequence[int] | None = None,
    msaa: int = 4,
    progress: bool = True,
    annotations: bool = True,
    gif: bool = False,
) -> VideoResult:
    """Render the run's snapshots (``steps``, default all) to ``out``: each held ``hold``
    seconds, then morphed into the next over ``morph`` seconds; clusters keep their identity
    from step to step; one camera shows every step's whole network; the step and the learning
    curves (``scalars.jsonl``) are drawn over each frame, and the callouts of
    ``RUN/annotations.json`` (unless not ``annotations``) follow their clusters; with ``gif``
    also a GIF beside it.

    Raises
    ------
    CnnvisError
        No snapshot, a missing step, a bad size, rate, duration or output format.
    """
    from . import open_run
    from .layout import LayoutOptions
    from .layout.scene import FACET_FEATURES, FACET_MATRIX
    from .render.flight import ease
    from .render.overlay import draw_curves, draw_label
    from .run.annotations import load_annotations

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not (0 <= hold <= 600 and 0 <= morph <= 600 and hold + morph > 0):
        raise CnnvisError(f"--hold {hold} / --morph {morph}: use 0 to 600 seconds, not both 0")
    run = open_run(run_dir)
    chosen = _snapshots(run, steps)
    if not chosen:
        raise CnnvisError(f"{run_dir}: the run has no snapshot yet")
    options = LayoutOptions(facet=FACET_MATRIX if facet == "matrix" else FACET_FEATURES,
                            edge_fraction=edge_fraction, view_size=size)  # fmt: skip
    curves = _curves(run_dir)
    hold_n, morph_n = int(round(hold * fps)), int(round(morph * fps))
    total = len(chosen) * hold_n + (len(chosen) - 1) * morph_n
    notes = load_annotations(run_dir) if annotations else []
    lapse = _Lapse([run.snapshot(s) for s in chosen], options, size, theme, msaa, notes, progress)
    try:
        writer = _writers(out, size, fps, gif)
    except BaseException:
        lapse.release()
        raise

    def dress(image: np.ndarray, at: float, label: str) -> np.ndarray:
        return draw_curves(draw_label(image, label), curves, at, title="learning curves")

    try:
        with writer, _progress(total, "time-lapse", progress) as bar:
            cur = lapse.draw(0)
            for k, s in enumerate(chosen):
                still = dress(cur, s, f"step {s}  ·  snapshot {k + 1} of {len(chosen)}")
                for _ in range(hold_n):
                    writer.write(still)
                    bar.update()
                if k + 1 == len(chosen):
                    break
                nxt = lapse.draw(k + 1)
                for i in range(morph_n):
                    p = (i + 1) / (morph_n + 1)
                    image = _morph_frame(cur, nxt, p, lambda e, k=k: lapse.draw(k + 1, e))
                    at = s + (chosen[k + 1] - s) * ease(p)
                    writer.write(dress(image, at, f"step {s} → {chosen[k + 1]}"))
                    bar.update()
                cur = nxt
    finally:
        lapse.release()
    return VideoResult(writer.path, writer.frames, size, fps, time.perf_counter() - t0,
                       lapse.drawn, tuple(writer.paths[1:]))  # fmt: skip


class _Lapse:
    """The snapshots of a time-lapse laid out with their identities followed (each scene built
    with the one before as ``previous``), one camera over them all, and their drawing (one GL
    context; one renderer at a time, for the snapshot whose patches are shown)."""

    def __init__(self, snaps: list, options: Any, size: tuple[int, int], theme: str, msaa: int,
                 notes: list, progress: bool) -> None:  # fmt: skip
        from .layout import build_scene
        from .render.camera import Camera
        from .render.offscreen import create_context

        self.snaps, self.size, self.theme, self.msaa, self.notes = snaps, size, theme, msaa, notes
        self.scenes, previous = [], None
        for snap in _with_progress(snaps, "layout", progress):
            previous = build_scene(snap, options, previous=previous)  # ids follow the clusters
            self.scenes.append(previous)
        bounds = np.array([sc.bounds for sc in self.scenes], dtype=np.float64)
        self.camera = Camera().fit((*bounds[:, :2].min(axis=0), *bounds[:, 2:].max(axis=0)), size)
        self.ctx = create_context()
        self._renderer: tuple[int, Any] | None = None
        self.drawn = 0

    def draw(self, k: int, towards: float | None = None) -> np.ndarray:
        """Snapshot ``k`` as laid out, or (``towards`` = t) the morph from snapshot ``k - 1``'s
        layout ``t`` of the way to it, with ``k``'s patches (RGB, callouts drawn)."""
        from .layout.morph import morph
        from .render.callouts import place
        from .render.offscreen import VIDEO_LOD, render_image
        from .render.overlay import draw_callouts
        from .render.renderer import SceneRenderer

        scene = self.scenes[k] if towards is None else morph(self.scenes[k - 1], self.scenes[k], towards)
        if self._renderer is None or self._renderer[0] != k:
            self.release_renderer()
            r = SceneRenderer(
                self.ctx, self.snaps[k], theme=self.theme, msaa=self.msaa, lod=VIDEO_LOD
            )
            self._renderer = (k, r)
        r = self._renderer[1]
        r.set_scene(scene)
        self.drawn += 1
        image = render_image(self.snaps[k], scene, self.size, self.camera, theme=self.theme,
                             msaa=self.msaa, renderer=r, neuron_edges=None)[..., :3]  # fmt: skip
        return draw_callouts(image, place(scene, self.notes, self.camera, self.size))

    def release_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer[1].release()
            self._renderer = None

    def release(self) -> None:
        self.release_renderer()
        self.ctx.release()


def _morph_frame(cur: np.ndarray, nxt: np.ndarray, p: float, drawn_at: Any) -> np.ndarray:
    """A time-lapse frame ``p`` of the way from snapshot image ``cur`` to ``nxt``: the neurons
    and frames move (``drawn_at(eased p)`` draws the morphed scene, without edges); the edges
    fade out over the first quarter and back in over the last."""
    from .render.flight import ease
    from .render.overlay import blend

    moving = drawn_at(ease(p))
    if p < 0.25:
        return blend(cur, moving, ease(p / 0.25))
    if p > 0.75:
        return blend(moving, nxt, ease((p - 0.75) / 0.25))
    return moving


def _with_progress(items: Iterable[Any], label: str, show: bool) -> Iterable[Any]:
    from tqdm import tqdm

    items = list(items)
    return tqdm(items, desc=label, unit="step", disable=not show, leave=False)


def check_video_args(size: tuple[int, int], fps: float) -> None:
    """Raise a CnnvisError for a size or rate no video can have."""
    if not 0 < fps <= 240:
        raise CnnvisError(f"--fps {fps}: use 1 to 240 frames per second")
    if size[0] > 8192 or size[1] > 8192:
        raise CnnvisError(f"--size {size[0]}x{size[1]}: a video is at most 8192 pixels a side")

