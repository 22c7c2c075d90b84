"""Compare two runs (two models on the same data: BaseCNN vs BaseCNN×4, before/after
fine-tuning): matched layer groups, their redundancy, their inhibition, their clusters, and how
similar their representations are (``cnnvis compare RUN_A RUN_B``).

* **Matching**: groups with the same name are matched; the rest by relative depth (a group at
  40 % of network A's depth with the unmatched group of B nearest 40 %).
* **Redundancy** (:func:`~cnnvis_gl.analysis.diagnose.redundancy`): the fraction of a group's
  neurons with a near-duplicate class profile — the paper's sign of an over-wide model.
* **Positive edges** (:func:`~cnnvis_gl.analysis.diagnose.positive_fraction`): the share of
  positive weights among the strongest quarter into the group from the one before — near 100 %
  means no inhibition (the paper's DeepCNN case).
* **Linear CKA** (Kornblith et al. 2019) between the matched groups' responses to the same probe
  images (each neuron's spatial-max response, the response the statistics use), from the real
  models: a run made by ``cnnvis train`` says how to rebuild its model (``RUN/train.json``,
  ``RUN/weights.pt``); other runs compare without CKA.  CKA is 1 for a group with itself and does
  not change under rotations or uniform scaling of either side's neurons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .analysis.diagnose import positive_fraction, redundancy
from .layout.lineage import group_clusters
from .run.snapshot import Run, Snapshot
from .stats.probe import Probe

__all__ = ["GroupComparison", "compare_runs", "linear_cka", "match_groups", "unit_responses"]


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of two representations of the same ``n`` inputs (``[n, p]`` and ``[n, q]``):
    ``‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F)`` with column-centred ``Xᶜ``, ``Yᶜ``; in [0, 1]."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA needs the same inputs on both sides: {X.shape[0]} vs {Y.shape[0]}")
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    xy = np.linalg.norm(Y.T @ X) ** 2
    xx = np.linalg.norm(X.T @ X)
    yy = np.linalg.norm(Y.T @ Y)
    return float(xy / (xx * yy)) if xx > 0 and yy > 0 else 0.0


class _Responses:
    """Collects each unit's per-image neuron responses (spatial max) in a probe session."""

    def __init__(self, n_units: int) -> None:
        self.parts: list[list[torch.Tensor]] = [[] for _ in range(n_units)]

    def update_unit(self, i: int, t: torch.Tensor) -> None:
        t = t.detach().float()
        self.parts[i].append((t.flatten(2).amax(2) if t.dim() == 4 else t).cpu())


@torch.no_grad()
def unit_responses(model: torch.nn.Module, data: Any, batch_size: int = 250) -> dict[str, np.ndarray]:
    """``{unit: [n, channels]}``: every unit's neuron responses (spatial max) to each image of
    ``data`` (an :class:`~cnnvis_gl.data.ImageData`), in dataset order, in eval mode."""
    probe = Probe(model, tuple(data.image_shape))
    col = _Responses(len(probe.graph.units))
    was = model.training
    model.eval()
    try:
        with probe.session(col) as session:  # type: ignore[arg-type]
            for x, _, _ in data.batches(batch_size, device=probe.device):
                session.run(x)
    finally:
        model.train(was)
    return {
        u.name: torch.cat(p).numpy() for u, p in zip(probe.graph.units, col.parts, strict=True)
    }


def match_groups(names_a: list[str], names_b: list[str]) -> list[tuple[str, str]]:
    """Pairs of matched groups, in A's order: same names first, the rest by relative depth."""
    pairs = {a: a for a in names_a if a in names_b}
    free = [b for b in names_b if b not in pairs.values()]
    depth_b = {b: names_b.index(b) / max(len(names_b) - 1, 1) for b in names_b}
    for i, a in enumerate(names_a):
        if a in pairs or not free:
            continue
        d = i / max(len(names_a) - 1, 1)
        b = min(free, key=lambda b: abs(depth_b[b] - d))
        pairs[a] = b
        free.remove(b)
    return [(a, pairs[a]) for a in names_a if a in pairs]


@dataclass
class GroupComparison:
    """One matched pair of groups (``a`` of run A, ``b`` of run B)."""

    a: str
    b: str
    neurons: tuple[int, int]
    clusters: tuple[int, int]
    redundancy: tuple[float, float]
    positive: tuple[float | None, float | None]  # strongest edges into it that are positive
    cka: float | None


def _positive(snap: Snapshot, group: str, prev: str | None) -> float | None:
    if prev is None:
        return None
    w = snap.group_weights(group).get(prev)
    return None if w is None else positive_fraction(np.asarray(w))


def compare_runs(
    run_a: Run,
    run_b: Run,
    *,
    data: Any = None,
    models: tuple[torch.nn.Module | None, torch.nn.Module | None] = (None, None),
    batch_size: int = 250,
) -> list[GroupComparison]:
    """Compare the latest snapshots of two runs group by group; CKA on ``data`` (an
    ``ImageData``, the same images for both models) when both ``models`` are given."""
    sa, sb = run_a.latest(), run_b.latest()
    ga = [g.name for g in sa.graph.groups]
    gb = [g.name for g in sb.graph.groups]
    resp = None
    if data is not None and all(m is not None for m in models):
        resp = (unit_responses(models[0], data, batch_size), unit_responses(models[1], data, batch_size))
    out = []
    for a, b in match_groups(ga, gb):
        i, j = ga.index(a), gb.index(b)
        ua, ub = sa.graph.groups[i].unit, sb.graph.groups[j].unit
        out.append(
            GroupComparison(
                a,
                b,
                (sa.graph.unit(ua).channels, sb.graph.unit(ub).channels),
                (len(group_clusters(sa, a)), len(group_clusters(sb, b))),
                (redundancy(sa.activations(ua)), redundancy(sb.activations(ub))),
                (_positive(sa, a, ga[i - 1] if i else None), _positive(sb, b, gb[j - 1] if j else None)),
                linear_cka(resp[0][ua], resp[1][ub]) if resp is not None else None,
            )
        )
    return out


def table(rows: list[GroupComparison], name_a: str, name_b: str) -> str:
    """The comparison as a text table."""

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    head = f"{'group A':<10} {'group B':<10} {'neurons':>11} {'clusters':>9} {'redundant':>11} {'positive edges':>15} {'CKA':>6}"
    lines = [f"A = {name_a}", f"B = {name_b}", head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.a:<10} {r.b:<10} {r.neurons[0]:>5}/{r.neurons[1]:<5} {r.clusters[0]:>4}/{r.clusters[1]:<4}"
            f" {pct(r.redundancy[0]):>5}/{pct(r.redundancy[1]):<5} {pct(r.positive[0]):>7}/{pct(r.positive[1]):<7}"
            f" {'—' if r.cka is None else f'{r.cka:.3f}':>6}"
        )
    return "\n".join(lines)
