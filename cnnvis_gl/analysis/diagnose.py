"""Debugging flags of a snapshot (SPEC §8, requirement R5).

Each :class:`Flag` names a layer group (and unit) and says what looks wrong:

- ``dead``: at least half of a unit's neurons never respond (> 0) on the probe set;
- ``saturated``: at least half of a bounded unit's neurons sit at the bound;
- ``vanishing_gradient`` / ``exploding_gradient``: a layer's gradient norm relative to its weight
  norm is tiny (absolutely, or compared with the largest layer's) / huge compared with the median
  layer's or not finite (needs gradients recorded in training);
- ``redundant``: most neurons of a group have a near-duplicate activation-matrix row (the paper's
  BaseCNN×4 over-fitting case);
- ``all_positive``: almost all strong edges into a group are positive, so no inhibition (the
  paper's DeepCNN redundancy case);
- ``non_finite``: some of a unit's neurons respond NaN or ±inf, or a layer's weights hold such
  values (a diverged training run, an overflow).  Those neurons count as neither dead nor alive.

Thresholds are module constants; they are heuristics, shown to the user with their numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..run.snapshot import Snapshot

DEAD_FRACTION = 0.5
SATURATED_FRACTION = 0.5
VANISHING_RATIO = 1e-3  # relative gradient below this × the largest layer's …
VANISHING_ABS = 1e-4  # … or below this (healthy CIFAR nets measure 1e-2 … 1e-1 here)
EXPLODING_RATIO = 1e3  # relative gradient above this × the median layer's
DUPLICATE_COSINE = 0.99  # centred activation rows this similar count as duplicates
REDUNDANT_FRACTION = 0.5
POSITIVE_FRACTION = 0.95
STRONG_EDGES = 0.25  # the top quarter of |w| are the strong edges
RELU_OPS = {"ReLU", "ReLU6", "relu", "relu6"}


@dataclass(frozen=True)
class Flag:
    group: str
    unit: str
    kind: str
    value: float  # the measured figure behind the flag
    message: str


def diagnose(snap: Snapshot) -> list[Flag]:
    """All flags of ``snap``, in network order."""
    g = snap.graph
    flags: list[Flag] = []
    units_meta = snap.meta.get("units", {})
    weights = snap.meta.get("weights") or {}
    for unit in g.units:
        group = g.groups[unit.group].name
        m = units_meta.get(unit.name, {})
        flags += _non_finite_flags(group, unit.name, m, unit.layers, weights)
        dead = m.get("dead_fraction")
        # "never > 0" means dead only after a ReLU; raw outputs (logits) are often negative
        if dead is not None and dead >= DEAD_FRACTION and g.layer(unit.tap).op in RELU_OPS:
            flags.append(
                Flag(
                    group,
                    unit.name,
                    "dead",
                    dead,
                    f"{dead:.0%} of the neurons of {unit.name} never activate",
                )
            )
        sat = m.get("saturated_fraction")
        if sat is not None and sat >= SATURATED_FRACTION:
            flags.append(
                Flag(
                    group,
                    unit.name,
                    "saturated",
                    sat,
                    f"{sat:.0%} of the neurons of {unit.name} are saturated",
                )
            )
    flags += _gradient_flags(snap)
    for grp in g.groups:
        red = redundancy(snap.activations(grp.unit))
        if red >= REDUNDANT_FRACTION:
            flags.append(
                Flag(
                    grp.name,
                    grp.unit,
                    "redundant",
                    red,
                    f"{red:.0%} of the neurons of {grp.name} have a near-duplicate",
                )
            )
        for src, w in snap.group_weights(grp.name).items():
            if src == "input":
                continue
            pos = positive_fraction(np.asarray(w))
            if pos >= POSITIVE_FRACTION:
                flags.append(
                    Flag(
                        grp.name,
                        grp.unit,
                        "all_positive",
                        pos,
                        f"{pos:.0%} of the strong edges {src} → {grp.name} are positive (no inhibition)",
                    )
                )
    order = {u.name: i for i, u in enumerate(g.units)}
    flags.sort(key=lambda f: order.get(f.unit, 0))
    return flags


def _non_finite_flags(
    group: str, unit: str, m: dict, layers: list[str], weights: dict
) -> list[Flag]:
    """A unit's ``non_finite`` flag (at most one): its neurons' responses, its layers' weights
    (a weight statistic that is null: written so because it was NaN or ±inf)."""
    bad = m.get("nonfinite_fraction") or 0.0
    broken = [
        layer
        for layer in layers
        if isinstance(weights.get(layer), dict) and "norm" in weights[layer]
        and weights[layer]["norm"] is None
    ]  # fmt: skip
    says = [f"{bad:.0%} of the neurons of {unit} respond NaN or ±inf"] if bad > 0 else []
    if broken:
        says.append(f"the weights of {', '.join(broken)} hold NaN or ±inf")
    return [Flag(group, unit, "non_finite", bad, "; ".join(says))] if says else []


def _gradient_flags(snap: Snapshot) -> list[Flag]:
    grads = snap.meta.get("grad_norms") or {}
    weights = snap.meta.get("weights") or {}
    rel = {}
    for layer, gn in grads.items():
        wn = weights.get(layer, {}).get("norm")
        if wn:  # a gradient norm that is null was NaN or ±inf when recorded
            rel[layer] = gn / wn if gn is not None and math.isfinite(gn) else math.inf
    if len(rel) < 2:
        return []
    finite = [v for v in rel.values() if math.isfinite(v)]
    top = max(finite) if finite else 0.0
    med = float(np.median(finite)) if finite else 0.0
    out = []
    unit_of = {name: u for u in snap.graph.units for name in u.layers}
    for layer, r in rel.items():
        u = unit_of[layer]
        group = snap.graph.groups[u.group].name
        if not math.isfinite(r) or (med > 0 and r > EXPLODING_RATIO * med):
            out.append(
                Flag(
                    group,
                    u.name,
                    "exploding_gradient",
                    r,
                    f"gradient of {layer} is {r:.3g}× its weights (median {med:.3g})",
                )
            )
        elif r < max(VANISHING_ABS, VANISHING_RATIO * top):
            out.append(
                Flag(
                    group,
                    u.name,
                    "vanishing_gradient",
                    r,
                    f"gradient of {layer} is only {r:.3g}× its weights (largest layer {top:.3g})",
                )
            )
    return out


def redundancy(A: np.ndarray) -> float:
    """Fraction of neurons (rows of ``A``, neuron × class) with a near-duplicate row.

    Rows are centred (the class pattern matters, not the overall level) and compared by cosine;
    neurons that never respond are left out.
    """
    A = np.asarray(A, dtype=np.float64)
    A = A[np.isfinite(A).all(1)]
    A = A[np.abs(A).sum(1) > 0]
    if len(A) < 2:
        return 0.0
    C = A - A.mean(1, keepdims=True)
    norms = np.linalg.norm(C, axis=1)
    C = C[norms > 1e-12] / norms[norms > 1e-12, None]
    if len(C) < 2:
        return 0.0
    S = C @ C.T
    np.fill_diagonal(S, -1.0)
    return float((S.max(1) >= DUPLICATE_COSINE).mean())


def positive_fraction(w: np.ndarray) -> float:
    """Fraction of positive weights among the strongest quarter by |w|."""
    w = w.ravel()
    w = w[(w != 0) & np.isfinite(w)]
    if w.size == 0:
        return 0.0
    thr = np.quantile(np.abs(w), 1 - STRONG_EDGES)
    strong = w[np.abs(w) >= thr]
    return float((strong > 0).mean())
