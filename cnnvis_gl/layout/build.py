"""``build_scene``: from a snapshot to the Scene of its DAG (SPEC §4–6).

Pipeline (all deterministic for fixed options):

1. rows: one per layer group from the input side down, one per unit of an expanded group;
2. one global class order: ``order_columns`` on the last hidden group's class means (§5.2);
3. per row: ``cluster_neurons`` on the neuron × class matrix ``A`` (max response);
4. per cluster: ``pack_cluster`` (features facet, patch side from the neuron's importance) and
   ``order_rows`` on cosine similarity (matrix facet); the frame holds the larger of the two;
5. clusters ordered within each row by barycentre sweeps (down and up) to reduce crossings;
6. per pair of consecutive rows: cluster → cluster weights (mean neuron weight), top 25 % by
   ``|w|`` kept, biclusters of each sign bundled through nodes of an in-between row;
7. labels and quality figures (``Scene.stats``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .options import LayoutOptions
from .scene import Scene
from .state import LayoutState

if TYPE_CHECKING:  # torch-free at run time: the layout never needs torch
    from ..run.snapshot import Snapshot


__all__ = ["build_scene", "build_state", "finish_draft"]


def build_state(
    snapshot: Snapshot,
    options: LayoutOptions | None = None,
    previous: LayoutState | Scene | None = None,
) -> LayoutState:
    """Lay out ``snapshot`` and keep the state for incremental edits (see :mod:`.edit`).

    Parameters
    ----------
    snapshot : Snapshot
    options : LayoutOptions or None
    previous : LayoutState or Scene or None
        The layout of another snapshot of the same run (e.g. the one on screen while following
        a run).  Each new cluster then keeps the id (so the colour) of the previous cluster of
        its row that it overlaps most (Jaccard of the member neurons; on a split the larger
        part keeps it), and rows keep the previous cluster order unless re-ordering removes
        enough crossings (:meth:`LayoutState.build`).

    Returns
    -------
    LayoutState
        ``state.scene`` is the Scene; ``state.timings`` the seconds per stage.
    """
    state = LayoutState(snapshot, options)
    state.build(previous)
    return state


def finish_draft(state: LayoutState) -> Scene:
    """A draft laid out without edges (``draft_edges=False``: a big network's first frame)
    with its clusters ordered in their rows and its edges bundled, as ``draft_edges=True``
    would have laid it out; the contents are kept."""
    state.options = replace(state.options, draft_edges=True)
    with state.timed("row_order"):
        state.barycentre_order()
    with state.timed("compose"):
        state.scene = state.compose()
    return state.scene


def build_scene(
    snapshot: Snapshot,
    options: LayoutOptions | None = None,
    previous: LayoutState | Scene | None = None,
) -> Scene:
    """The Scene of ``snapshot``'s DAG of layer groups and neuron clusters.

    Parameters
    ----------
    snapshot : Snapshot
        Statistics and weights of one model state (``cnnvis_gl.analyze`` or a run directory).
    options : LayoutOptions or None
        Clustering, level of detail, edge threshold, patch sizes, seed …
    previous : LayoutState or Scene or None
        Keep the cluster ids (colours) and order of this layout of another snapshot of the
        same run (see :func:`build_state`).

    Returns
    -------
    Scene
        Deterministic: equal inputs give equal scenes.  Quality figures in ``Scene.stats``:
        ``density_mean`` / ``density_area`` (packing), ``order_score`` against
        ``order_score_greedy`` and ``order_score_random`` (matrix row orders, summed over
        clusters), ``ink_bundled`` / ``ink_direct`` and ``crossings_bundled`` /
        ``crossings_direct`` (edges), ``row_crossings_*`` (cluster order in the rows).
    """
    state = build_state(snapshot, options, previous)
    assert state.scene is not None
    return state.scene
