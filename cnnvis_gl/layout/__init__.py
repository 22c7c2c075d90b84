"""DAG layout: from a snapshot to a :class:`~cnnvis_gl.layout.scene.Scene` (plain data).

* :func:`build_scene` / :func:`build_state` — the whole layout (clustering, packing, matrix
  orders, row order, bundled edges, labels, quality figures);
* :mod:`.edit` — incremental edits on a :class:`LayoutState` returning ``(scene, changed)``;
* :class:`LayoutOptions` — every knob.

No OpenGL or GUI import here: the renderer reads the Scene.

Choices made here (SPEC leaves them open):

* **Frames**: all cluster frames of a row have the row's height (as in the paper's figures);
  a frame holds a label band and the larger of its two facets, so a facet switch moves
  nothing.  Row heights are rounded up to ``row_quantum`` so most edits leave the rows below
  in place.  Each row is centred on ``x = 0``.
* **Columns**: given the view's size (``LayoutOptions.view_size``), a long chain of rows wraps
  into columns read top-to-bottom, left-to-right (:mod:`.columns`) when that draws the network
  at least 1.25× larger; the in-between row of a pair split across columns sits at the top of
  the next column, its edges starting at the upper clusters' x mapped into it.  The columns leave
  room for the row labels as drawn when the whole is fitted (never under 11 px).
* **Edges** leave a frame at its bottom centre and enter at its top centre, so they run only
  through the in-between row.  A bundled edge is drawn as *shared* pieces (one per input ×
  bundle, one per bundle × output: ``dst = -1`` / ``src = -1``), a leftover edge as one piece;
  ``Edges.row`` / ``piece`` / ``count`` say where a piece is, what it is and how many edges it
  carries.  Shared pieces are what saves ink (and fill rate on software GL).
* **Row order**: barycentre sweeps weighted by ``w²`` of *every* cluster pair, so the order is
  independent of the edge threshold (a threshold change never moves a cluster).
* **Identity**: a cluster's id is a hash of its row and members (equal clusters of two
  snapshots share id and colour); a move keeps the ids of the clusters it changes.
* **Moves** on clusters of ``incremental_min`` neurons or more update the packing and the matrix
  order incrementally (the patch leaves a hole / fills the best free spot next to its most
  similar neuron; the matrix row is spliced out / inserted where it adds most similarity): the
  user's picture stays put and a move costs milliseconds.  Contents are cached by member set, so
  moving a neuron back restores the cluster exactly.
* **BLAS threads** are limited to 1 during layout: the matrices are small, and on a shared
  2-core machine multi-threaded OpenBLAS made K-Means up to 20x slower.
"""

from __future__ import annotations

from .build import build_scene, build_state
from .edit import (
    Changed,
    diff_scenes,
    move_neuron,
    set_clustering,
    set_collapsed,
    set_expanded,
    set_facet,
    set_threshold,
    set_view_size,
)
from .hierarchy import innermost_stages, stages
from .options import GroupClustering, LayoutOptions
from .scene import FACET_FEATURES, FACET_MATRIX, ROW_BETWEEN, ROW_GROUP, ROW_LAYER, ROW_STAGE, Scene
from .state import LayoutState

__all__ = [
    "FACET_FEATURES",
    "FACET_MATRIX",
    "ROW_BETWEEN",
    "ROW_GROUP",
    "ROW_LAYER",
    "ROW_STAGE",
    "Changed",
    "GroupClustering",
    "LayoutOptions",
    "LayoutState",
    "Scene",
    "build_scene",
    "build_state",
    "diff_scenes",
    "innermost_stages",
    "move_neuron",
    "set_clustering",
    "set_collapsed",
    "set_expanded",
    "set_facet",
    "set_threshold",
    "set_view_size",
    "stages",
]
