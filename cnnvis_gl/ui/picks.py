"""What each kind of picked thing means to the viewer: its outline, hover text and clicks.

One :class:`Pick` per :class:`~cnnvis_gl.render.pick.PickKind`, in :data:`PICKS`; the network
view asks the pick under the pointer, never switches on its kind.  A new pickable visual adds
its kind to the enum and one class here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..layout.search import matrix_class_at
from ..layout.selection import class_top_neurons
from ..render.pick import PickKind

if TYPE_CHECKING:
    from .actions import Actions
    from .state import AppState

__all__ = ["PICKS", "Pick"]

Rect = tuple[float, float, float, float]  # scene x, y, w, h
Point = tuple[float, float]  # scene x, y


class Pick:
    """A picked thing of one kind, by its index into the scene (the default: nothing)."""

    kind = PickKind.NONE

    def valid(self, st: AppState, i: int) -> bool:
        return False

    def rect(self, st: AppState, i: int) -> Rect | None:
        """The scene rectangle outlined on hover (``None``: no outline)."""
        return None

    def text(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> list[str]:
        """Tooltip lines (``at``: the pointer's scene position, when known)."""
        return []

    def cluster(self, st: AppState, i: int) -> int | None:
        """Index of the cluster it belongs to (zoom, drop target); ``None``: none."""
        return None

    def click(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> None:
        """Select it (a click on nothing clears the selection; ``at``: the pointer's scene
        position)."""
        st.selection.neuron = None
        act.select_cluster(None)

    def double_click(self, st: AppState, act: Actions, i: int) -> None:
        """Zoom to it (nothing: fit all)."""
        act.fit_all()


class _Cluster(Pick):
    kind = PickKind.CLUSTER

    def valid(self, st: AppState, i: int) -> bool:
        return st.scene is not None and 0 <= i < len(st.scene.clusters.id)

    def rect(self, st: AppState, i: int) -> Rect | None:
        x, y, w, h = (float(v) for v in st.scene.clusters.rect[i])  # type: ignore[union-attr]
        return (x, y, w, h)

    def text(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> list[str]:
        s = st.scene
        row = s.rows[int(s.clusters.row[i])]  # type: ignore[union-attr]
        return [
            f"cluster {st.cluster_name(i)} · {int(s.clusters.size[i])} neurons",  # type: ignore[union-attr]
            f"layer {row.unit} · packing density {float(s.clusters.density[i]):.2f}",  # type: ignore[union-attr]
            "double-click to zoom",
        ]

    def cluster(self, st: AppState, i: int) -> int | None:
        return i

    def click(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> None:
        st.selection.neuron = None
        act.select_cluster(int(st.scene.clusters.id[i]))  # type: ignore[union-attr]

    def double_click(self, st: AppState, act: Actions, i: int) -> None:
        act.zoom_to_cluster(i)


class _Neuron(Pick):
    kind = PickKind.NEURON

    def valid(self, st: AppState, i: int) -> bool:
        return st.scene is not None and 0 <= i < len(st.scene.neurons.cluster)

    def rect(self, st: AppState, i: int) -> Rect | None:
        s = st.scene
        assert s is not None
        ci = int(s.neurons.cluster[i])
        if int(s.clusters.facet[ci]):  # the neuron's row of the activation matrix
            x, y, w, h = (float(v) for v in s.clusters.matrix_rect[ci])
            rh = h / max(int(s.clusters.size[ci]), 1)
            return (x, y + rh * int(s.neurons.matrix_row[i]), w, rh)
        x, y, w, h = (float(v) for v in s.neurons.rect[i])
        return (x, y, w, h)

    def text(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> list[str]:
        s = st.scene
        assert s is not None
        unit = s.units[int(s.neurons.unit[i])]
        ch = int(s.neurons.index[i])
        ci = int(s.neurons.cluster[i])
        lines = [f"neuron {ch} · layer {unit}", f"cluster {st.cluster_name(ci)}"]
        if st.snapshot is not None and st.snapshot.silent(unit)[ch]:
            lines.append("never responds above 0 on the probe images (dead): no picture")
        elif st.snapshot is not None:
            a = act.inspect.class_means(unit)[ch]
            top = np.argsort(-a)[:3]
            names = st.snapshot.classes
            lines.append("top classes: " + ", ".join(f"{names[k]} {a[k]:.3g}" for k in top))
        if at is not None and int(s.clusters.facet[ci]) and st.snapshot is not None:
            lines += _matrix_cell(st, act, i, ci, at[0])
        lines.append("drag onto another cluster to move it")
        return lines

    def cluster(self, st: AppState, i: int) -> int | None:
        return int(st.scene.neurons.cluster[i])  # type: ignore[union-attr]

    def click(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> None:
        # a matrix cell: the neuron, and its top images of that cell's class (drill-down)
        s = st.scene
        assert s is not None
        matrix = at is not None and int(s.clusters.facet[int(s.neurons.cluster[i])])
        act.select_neuron(st.neuron_key(i), cls=matrix_class_at(s, i, at[0]) if matrix else None)

    def double_click(self, st: AppState, act: Actions, i: int) -> None:
        act.zoom_to_cluster(int(st.scene.neurons.cluster[i]))  # type: ignore[union-attr]


def _matrix_cell(st: AppState, act: Actions, i: int, ci: int, x: float) -> list[str]:
    """The matrix cell under scene x in neuron ``i``'s row: its class, the neuron's value, and
    the cluster's neurons that class activates most."""
    s = st.scene
    assert s is not None and st.snapshot is not None
    k = matrix_class_at(s, i, x)
    name = st.snapshot.classes[k]
    top = ", ".join(f"{int(s.neurons.index[n])}" for n, _ in class_top_neurons(s, ci, k))
    return [
        f"{name}: {float(s.neurons.activation[i, k]):.2f} of the layer's max",
        f"{name} activates most here: neurons {top}",
    ]


class _Inert(Pick):
    """Edges and bundle nodes: described on hover; clicks leave the selection as it is."""

    def click(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> None:
        pass

    def double_click(self, st: AppState, act: Actions, i: int) -> None:
        pass


class _Bundle(_Inert):
    kind = PickKind.BUNDLE

    def valid(self, st: AppState, i: int) -> bool:
        return st.scene is not None and 0 <= i < len(st.scene.bundles.pos)

    def text(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> list[str]:
        b = st.scene.bundles  # type: ignore[union-attr]
        sign = "excitatory" if int(b.sign[i]) > 0 else "inhibitory"
        return [f"bundle ({sign})", f"{int(b.n_in[i])} inputs × {int(b.n_out[i])} outputs"]


class _Edge(_Inert):
    kind = PickKind.EDGE

    def valid(self, st: AppState, i: int) -> bool:
        return st.scene is not None and 0 <= i < len(st.scene.edges.weight)

    def text(self, st: AppState, act: Actions, i: int, at: Point | None = None) -> list[str]:
        e = st.scene.edges  # type: ignore[union-attr]
        parts = []
        if int(e.src[i]) >= 0:
            parts.append(f"from {st.cluster_name(int(e.src[i]))}")
        if int(e.dst[i]) >= 0:
            parts.append(f"to {st.cluster_name(int(e.dst[i]))}")
        return [f"edge w = {float(e.weight[i]):+.4f}", " ".join(parts) or "bundled piece"]


#: Every pick kind's meaning, by kind.
PICKS: dict[PickKind, Pick] = {
    p.kind: p for p in (Pick(), _Cluster(), _Neuron(), _Bundle(), _Edge())
}
assert set(PICKS) == set(PickKind), "a PickKind without its Pick"
