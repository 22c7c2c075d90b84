"""What the inspectors ask of the data: class means, neuron weights, flags' rows, pictures.

Cached per snapshot (:meth:`Inspector.new_snapshot` drops the caches); pictures are made on the
pictures worker and kept as textures (:class:`~cnnvis_gl.ui.textures.TextureCache`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout.edges import RowSpec, row_weights
from ..layout.scene import ROW_BETWEEN
from .jobs import Done, PatchCache
from .pictures import image_grid, packing_image, topk_grid
from .state import NeuronKey
from .textures import TextureCache

if TYPE_CHECKING:
    from .app import App

__all__ = ["Inspector"]

EdgeList = list[tuple[NeuronKey, float]]


class Inspector:
    """Data and pictures of the selected neuron and cluster, and of the debugging view."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.textures = TextureCache()
        self._class_means: dict[tuple[int | None, str], np.ndarray] = {}
        self._weights: dict[tuple, np.ndarray | None] = {}

    def new_snapshot(self) -> None:
        """Another snapshot is shown: its numbers differ."""
        self._class_means.clear()
        self._weights.clear()

    # ------------------------------------------------------------------ numbers
    def class_means(self, unit: str) -> np.ndarray:
        """Raw class means ``A`` (neurons × classes) of a unit, cached per snapshot."""
        st = self.app.state
        key = (st.step, unit)
        a = self._class_means.get(key)
        if a is None:
            assert st.snapshot is not None
            a = np.asarray(st.snapshot.activations(unit), dtype=np.float32)
            self._class_means[key] = a
        return a

    def _row_weights(self, upper: int, lower: int) -> np.ndarray | None:
        st = self.app.state
        s = st.scene
        assert s is not None and st.snapshot is not None
        key = (st.step, s.rows[upper].name, s.rows[lower].name)
        if key not in self._weights:
            W = row_weights(st.snapshot, RowSpec.of(s.rows[upper]), RowSpec.of(s.rows[lower]))
            self._weights[key] = None if W is None else np.asarray(W, dtype=np.float32)
        return self._weights[key]

    def neuron_edges(self, i: int, top: int = 6) -> tuple[EdgeList | None, EdgeList | None]:
        """Strongest incoming and outgoing neuron weights of ``scene.neurons[i]``."""
        s = self.app.state.scene
        assert s is not None
        row = int(s.clusters.row[s.neurons.cluster[i]])
        rows = [k for k, r in enumerate(s.rows) if r.kind != ROW_BETWEEN]
        p = rows.index(row)
        ch = int(s.neurons.index[i])
        out: list[EdgeList | None] = []
        for other, incoming in ((p - 1, True), (p + 1, False)):
            if not 0 <= other < len(rows):
                out.append(None)
                continue
            up, lo = (rows[other], row) if incoming else (row, rows[other])
            W = self._row_weights(up, lo)
            if W is None:
                out.append(None)
                continue
            vec = W[ch] if incoming else W[:, ch]
            order = np.argsort(-np.abs(vec))[:top]
            unit = s.rows[rows[other]].unit
            out.append([((unit, int(k)), float(vec[k])) for k in order])
        return out[0], out[1]

    def training_units(self) -> list[tuple[str, str]]:
        """``(unit, group)`` of every layer, in network order."""
        snap = self.app.state.snapshot
        if snap is None:
            return []
        g = snap.graph
        return [(u.name, g.groups[u.group].name) for u in g.units]

    def flag_row(self, flag: Any) -> int | None:
        """The scene row a flag is drawn on."""
        from .training import flag_rows

        st = self.app.state
        if st.scene is None or st.snapshot is None:
            return None
        names = [g.name for g in st.snapshot.graph.groups]
        return next(iter(flag_rows(st.scene, names, [flag])), None)

    def nearest_step(self, x: float) -> int | None:
        """The snapshot step nearest to ``x`` (a plot's step axis)."""
        steps = self.app.state.steps
        if not steps:
            return None
        return int(min(steps, key=lambda s: abs(s - x)))

    # ------------------------------------------------------------------ pictures
    def _picture(self, key: tuple, make: Callable[[], np.ndarray]) -> Any:
        images = self.app.images
        if images is None:
            return self.textures.get(key, make, None)
        return self.textures.get(key, make, lambda label, fn: images.submit(label, fn, self._made))

    def _made(self, done: Done) -> None:
        """A picture was made (on the UI thread): its texture is created."""
        if done.error is not None:
            self.app.job_errors.append(f"{done.label} failed: {done.error}")
            print(done.trace, file=sys.stderr)
            return
        key, img = done.result
        self.textures.put(self.app.ctx, key, img)

    def _background(self) -> tuple[int, int, int]:
        return (236, 237, 240) if self.app.state.theme == "light" else (40, 42, 48)

    def topk_picture(self, key: NeuronKey) -> Any:
        """The neuron's top-k patches as a texture (``None`` while it is being made)."""
        st = self.app.state
        snap = st.snapshot
        if snap is None:
            return None
        unit, ch = key
        bg = self._background()
        k = int(snap.meta.get("k", 9))
        return self._picture(
            ("topk", st.step, unit, int(ch), bg),
            lambda: topk_grid(snap, unit, int(ch), k=k, size=64, background=bg),
        )

    def class_topk_picture(self, key: NeuronKey, cls: int) -> Any:
        """The neuron's top images of class ``cls`` (receptive-field crops, strongest first)
        as a texture; ``None`` while being made or when the snapshot keeps no per-class lists."""
        st = self.app.state
        snap = st.snapshot
        unit, ch = key
        if snap is None or not snap.has_class_topk(unit):
            return None
        bg = self._background()

        def make() -> np.ndarray:
            crops = snap.class_patches(unit, int(ch), int(cls), size=64)[0]
            return image_grid(crops, 64, background=bg, cols=max(len(crops), 1))

        return self._picture(("class_topk", st.step, unit, int(ch), int(cls), bg), make)

    def packing_picture(self, ci: int) -> Any:
        """The cluster's learned-features packing as a texture (``None`` while being made)."""
        st = self.app.state
        scene = st.scene
        src: PatchCache | None = getattr(self.app.renderer, "snapshot", None)
        if scene is None or src is None:
            return None
        cid = int(scene.clusters.id[ci])
        bg = self._background()
        return self._picture(
            ("pack", st.scene_version, cid, bg),
            lambda: packing_image(src, scene, ci, background=bg),
        )
