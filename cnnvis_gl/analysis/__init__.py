"""Pure analysis algorithms on plain arrays (NumPy, or CuPy where noted): no torch, no GL.

* :mod:`.similarity` — cosine similarity of feature vectors;
* :mod:`.clustering` — neuron clustering (K-Means with silhouette-chosen k, MeanShift);
* :mod:`.ordering` — row/column order maximising adjacent similarity (Held–Karp, hierarchical);
* :mod:`.packing` — hierarchical rectangle packing of a cluster's neuron images;
* :mod:`.bicluster` — biclusters of thresholded signed weights and the bundled edge geometry.

Numeric heavy parts take the array namespace from their input (``cnnvis_gl.xp.get_xp``);
discrete results (labels, permutations, index sets, geometry) are NumPy arrays.
"""

from __future__ import annotations

from cnnvis_gl.analysis.bicluster import (
    Bicluster,
    Bundling,
    bundle_edges,
    find_biclusters,
    ink_and_crossings,
    threshold_for_top,
)
from cnnvis_gl.analysis.clustering import cluster_neurons
from cnnvis_gl.analysis.ordering import order_columns, order_rows, path_score
from cnnvis_gl.analysis.packing import Packing, pack_cluster
from cnnvis_gl.analysis.similarity import cosine_similarity, row_normalize

__all__ = [
    "Bicluster",
    "Bundling",
    "Packing",
    "bundle_edges",
    "cluster_neurons",
    "cosine_similarity",
    "find_biclusters",
    "ink_and_crossings",
    "order_columns",
    "order_rows",
    "pack_cluster",
    "path_score",
    "row_normalize",
    "threshold_for_top",
]
