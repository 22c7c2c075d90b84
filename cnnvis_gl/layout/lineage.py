"""Cluster lineage over the snapshots of a run: how a layer group's clusters persist, split,
merge, appear and vanish during training (issue: from seeing to knowing).

Each snapshot's group is clustered as the viewer clusters it (same options, same method), and
each clustering takes the ids of the one before wherever the clusters overlap
(:func:`~cnnvis_gl.layout.ids.inherit_ids`: Jaccard of the member neurons, the larger part of a
split keeps the id).  Neurons are the same channels in every snapshot, so between two steps the
*flow* from an old cluster to a new one is simply the number of neurons they share.

A transition's events, from the flows (a flow counts when it carries at least
:data:`SHARE` of the smaller of its two clusters and at least two neurons):

* ``split``: an old cluster sends counting flows to two or more new clusters;
* ``merge``: a new cluster receives counting flows from two or more old clusters;
* ``new``: a new cluster with an id no old one had; ``gone``: an old id absent afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .ids import inherit_ids, unique_id
from .options import LayoutOptions
from .state import LayoutState, row_specs

if TYPE_CHECKING:
    from ..run.snapshot import Run, Snapshot

__all__ = ["Lineage", "SHARE", "cluster_lineage", "lineage_of"]

#: A flow counts in the events when it carries this share of the smaller cluster it joins.
SHARE = 0.2


@dataclass
class Lineage:
    """The clusters of one group at each step and the neuron flows between consecutive steps.

    Attributes
    ----------
    group:
        The layer group.
    steps:
        The snapshots' steps, in order.
    ids:
        Per step, the cluster ids (in the order the clustering numbered them).
    members:
        Per step, each cluster's sorted neuron indices.
    flows:
        Per transition ``t → t + 1``, ``[clusters at t, clusters at t + 1]`` shared neurons.
    names:
        A short name per id: ``A``, ``B``, … in order of first appearance (``AA`` after ``Z``).
    """

    group: str
    steps: list[int]
    ids: list[list[int]]
    members: list[list[np.ndarray]]
    flows: list[np.ndarray] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    def sizes(self, t: int) -> list[int]:
        """Neurons per cluster at step index ``t``."""
        return [len(m) for m in self.members[t]]

    def counting(self, t: int) -> np.ndarray:
        """``[old, new]`` bool: the flows of transition ``t`` that count in the events."""
        f = self.flows[t]
        old = np.asarray(self.sizes(t), dtype=float)[:, None]
        new = np.asarray(self.sizes(t + 1), dtype=float)[None, :]
        return (f >= 2) & (f >= SHARE * np.minimum(old, new))

    def events(self, t: int) -> list[tuple[str, list[int], list[int]]]:
        """Events of transition ``t`` (step ``t`` → ``t + 1``) as ``(kind, old ids, new ids)``:
        ``split``, ``merge``, ``new``, ``gone`` (see the module doc), in that order."""
        c = self.counting(t)
        old_ids, new_ids = self.ids[t], self.ids[t + 1]
        out: list[tuple[str, list[int], list[int]]] = []
        for i, row in enumerate(c):
            if row.sum() >= 2:
                out.append(("split", [old_ids[i]], [new_ids[j] for j in np.flatnonzero(row)]))
        for j, col in enumerate(c.T):
            if col.sum() >= 2:
                out.append(("merge", [old_ids[i] for i in np.flatnonzero(col)], [new_ids[j]]))
        out += [("new", [], [c_]) for c_ in new_ids if c_ not in old_ids]
        out += [("gone", [c_], []) for c_ in old_ids if c_ not in new_ids]
        return out

    def text(self) -> str:
        """The lineage as lines of text (``cnnvis info RUN --lineage GROUP``)."""
        n = lambda cid: self.names[cid]  # noqa: E731
        lines = [
            f"lineage of {self.group} over {len(self.steps)} snapshot(s); clusters named by "
            "identity (A keeps its name while it persists), sizes in neurons"
        ]
        for t, step in enumerate(self.steps):
            order = sorted(range(len(self.ids[t])), key=lambda i: self.names[self.ids[t][i]])
            parts = " ".join(f"{n(self.ids[t][i])}({len(self.members[t][i])})" for i in order)
            lines.append(f"step {step}: {len(self.ids[t])} clusters  {parts}")
            if t + 1 < len(self.steps):
                for kind, old, new in self.events(t):
                    if kind == "split":
                        i = self.ids[t].index(old[0])
                        into = ", ".join(
                            f"{n(c)} ({int(self.flows[t][i, self.ids[t + 1].index(c)])})"
                            for c in new
                        )
                        lines.append(f"  → {n(old[0])} splits into {into}")
                    elif kind == "merge":
                        j = self.ids[t + 1].index(new[0])
                        parts_ = ", ".join(
                            f"{n(c)} ({int(self.flows[t][self.ids[t].index(c), j])})" for c in old
                        )
                        lines.append(f"  → {parts_} merge into {n(new[0])}")
                    elif kind == "new":
                        lines.append(f"  → {n(new[0])} appears")
                    else:
                        lines.append(f"  → {n(old[0])} dissolves")
        return "\n".join(lines)


def _name(k: int) -> str:
    s = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        s = chr(65 + r) + s
    return s


def lineage_of(
    group: str, steps: Sequence[int], clusterings: Sequence[Sequence[np.ndarray]]
) -> Lineage:
    """The lineage of given clusterings (per step, each cluster's neuron indices) of one group.

    The first step's clusters get ids from their members (as the viewer's do); each later
    clustering inherits the ids of the one before (:func:`~cnnvis_gl.layout.ids.inherit_ids`).
    """
    if len(steps) != len(clusterings):
        raise ValueError("one clustering per step")
    ids: list[list[int]] = []
    members: list[list[np.ndarray]] = []
    for t, clusters in enumerate(clusterings):
        ms = [np.sort(np.asarray(m, dtype=np.int64)) for m in clusters]
        taken = {c for row in ids for c in row}
        if t == 0:
            cur = []
            for m in ms:
                cur.append(unique_id(group, m, taken))
                taken.add(cur[-1])
        else:
            cur = inherit_ids(group, members[-1], ids[-1], ms, taken)
        ids.append(cur)
        members.append(ms)
    lin = Lineage(group, [int(s) for s in steps], ids, members)
    for t in range(len(steps) - 1):
        n = 1 + max((int(m.max()) for ms in members[t : t + 2] for m in ms if m.size), default=0)
        a = np.full(n, -1)
        for i, m in enumerate(members[t]):
            a[m] = i
        f = np.zeros((len(members[t]), len(members[t + 1])), dtype=np.int64)
        for j, m in enumerate(members[t + 1]):
            src = a[m]
            np.add.at(f[:, j], src[src >= 0], 1)
        lin.flows.append(f)
    for row in ids:
        for c in row:
            if c not in lin.names:
                lin.names[c] = _name(len(lin.names))
    return lin


def group_clusters(snap: Snapshot, group: str, options: LayoutOptions | None = None) -> list:
    """``group``'s clusters in ``snap`` (neuron index arrays), clustered as the viewer does."""
    names = [g.name for g in snap.graph.groups]
    if group not in names:
        raise KeyError(f"no layer group {group!r} (groups: {', '.join(names)})")
    state = LayoutState(snap, options)
    row = next(r for r in row_specs(snap, frozenset()) if r.name == group)
    state.rows = [row]
    state.cluster_row(row)
    return [state.members[row.name][c] for c in state.order[row.name]]


def cluster_lineage(
    run: Run,
    group: str,
    options: LayoutOptions | None = None,
    steps: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Lineage:
    """The lineage of ``group`` over ``run``'s snapshots (all, or ``steps``).

    ``progress(done, total)`` is called after each snapshot is clustered.
    """
    chosen = list(run.steps() if steps is None else steps)
    clusterings = []
    for i, step in enumerate(chosen):
        clusterings.append(group_clusters(run.snapshot(step), group, options))
        if progress is not None:
            progress(i + 1, len(chosen))
    return lineage_of(group, chosen, clusterings)
