"""Data behind the debugging view (SPEC §8, R5): learning curves, per-layer statistics over the
run's snapshots, the flags' places on the DAG, and the difference of two steps' activations.

Plain NumPy and JSON, no imgui or OpenGL: the loaders run on a worker thread and return
immutable results the UI applies between frames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..layout.scene import ROW_BETWEEN, ROW_GROUP, Scene
from ..remember import Remembered

__all__ = [
    "STATS",
    "FLAG_KINDS",
    "FlagStyle",
    "TrainingData",
    "Line",
    "learning_lines",
    "layer_lines",
    "load_training",
    "scalars_signature",
    "flag_rows",
    "activation_difference",
]

#: The per-layer statistics the Training panel plots: key → (label, log scale helps).
STATS: dict[str, tuple[str, bool]] = {
    "act_mean": ("activation mean", False),
    "act_std": ("activation std", False),
    "dead_fraction": ("dead fraction", False),
    "weight_norm": ("weight norm |W|", True),
    "grad_norm": ("gradient norm |∇W|", True),
}


@dataclass(frozen=True)
class FlagStyle:
    """How a flag kind is drawn: a Font Awesome glyph, an RGB colour and a short name."""

    icon: str
    color: tuple[float, float, float]
    label: str

    @property
    def short(self) -> str:
        """The label shortened for lists."""
        return self.label.replace(" gradient", " grad.")


def _icons() -> dict[str, str]:
    try:
        from imgui_bundle import icons_fontawesome_6 as fa
    except ImportError:  # pragma: no cover - the viewer needs imgui anyway
        return {}
    return {
        "dead": fa.ICON_FA_SKULL,
        "saturated": fa.ICON_FA_TEMPERATURE_FULL,
        "vanishing_gradient": fa.ICON_FA_ARROW_TREND_DOWN,
        "exploding_gradient": fa.ICON_FA_BURST,
        "redundant": fa.ICON_FA_CLONE,
        "all_positive": fa.ICON_FA_PLUS,
        "non_finite": fa.ICON_FA_INFINITY,
    }


_ICONS = _icons()
FLAG_KINDS: dict[str, FlagStyle] = {
    "dead": FlagStyle(_ICONS.get("dead", "D"), (0.62, 0.64, 0.70), "dead layer"),
    "saturated": FlagStyle(_ICONS.get("saturated", "S"), (1.0, 0.62, 0.18), "saturated"),
    "vanishing_gradient": FlagStyle(
        _ICONS.get("vanishing_gradient", "v"), (0.35, 0.62, 1.0), "vanishing gradient"
    ),
    "exploding_gradient": FlagStyle(
        _ICONS.get("exploding_gradient", "!"), (1.0, 0.32, 0.30), "exploding gradient"
    ),
    "redundant": FlagStyle(_ICONS.get("redundant", "R"), (0.78, 0.50, 1.0), "redundant"),
    "all_positive": FlagStyle(_ICONS.get("all_positive", "+"), (0.30, 0.84, 0.45), "all positive"),
    "non_finite": FlagStyle(_ICONS.get("non_finite", "∞"), (1.0, 0.20, 0.55), "NaN / inf"),
}
UNKNOWN_FLAG = FlagStyle("?", (0.9, 0.9, 0.9), "flag")


def style_of(kind: str) -> FlagStyle:
    return FLAG_KINDS.get(kind, UNKNOWN_FLAG)


# ---------------------------------------------------------------------------- curves + stats


Series = tuple[np.ndarray, np.ndarray]  # steps, values


@dataclass(frozen=True)
class TrainingData:
    """What the Training panel plots.

    Attributes
    ----------
    steps
        Snapshot steps whose statistics are included.
    curves
        Learning curves by name (``train_loss``, ``test_loss``, ``test_error`` …, from
        ``scalars.jsonl``; ``probe loss`` / ``probe error`` from the snapshots).
    stats
        ``stats[key][unit]``: per-layer statistic ``key`` (see :data:`STATS`) over the steps.
    units
        ``(unit, group)`` in network order (the lines of the statistics plot).
    metas
        The per-step statistics read so far (reused by the next refresh; never mutated).
    signature
        Size and mtime of ``scalars.jsonl`` when it was read.
    """

    steps: tuple[int, ...] = ()
    curves: dict[str, Series] = field(default_factory=dict)
    stats: dict[str, dict[str, Series]] = field(default_factory=dict)
    units: tuple[tuple[str, str], ...] = ()
    metas: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    signature: tuple[int, int] | None = None

    @property
    def empty(self) -> bool:
        return not self.curves and not any(self.stats.values())


#: A learning curve whose name holds one of these goes on the right axis (0..1 rates).
ERROR_WORDS = ("error", "acc")


@dataclass(frozen=True)
class Line:
    """One line of a Training panel plot, as drawn.

    Attributes
    ----------
    label
        Its legend entry.
    xs, ys
        Steps and values.
    right
        On the right y axis (error rates beside losses).
    markers
        Draw its points (few points: evaluations, snapshots).
    """

    label: str
    xs: np.ndarray
    ys: np.ndarray
    right: bool = False
    markers: bool = False


def learning_lines(td: TrainingData) -> list[Line]:
    """The learning-curves plot: every recorded curve, errors and accuracies on the right."""
    return [
        Line(
            name.replace("_", " "),
            xs,
            ys,
            right=any(w in name for w in ERROR_WORDS),
            markers=len(xs) <= 40,
        )
        for name, (xs, ys) in td.curves.items()
    ]


def layer_lines(
    td: TrainingData, stat: str, all_layers: bool, log: bool, group_units: set[str]
) -> list[Line]:
    """The per-layer plot of statistic ``stat``: one line per layer group (the group's own
    unit, ``group_units``), or per layer with ``all_layers``; on a log scale values ≤ 0 are
    gaps (NaN)."""
    per = td.stats.get(stat, {})
    shown = [(u, g) for u, g in td.units if u in per]
    if not all_layers:
        shown = [(u, g) for u, g in shown if u in group_units] or shown
    lines = []
    for unit, group in shown:
        xs, ys = per[unit]
        if log:
            ys = np.where(ys > 0, ys, np.nan)
        lines.append(Line(f"{group} · {unit}" if all_layers else group, xs, ys, markers=True))
    return lines


def scalars_signature(run_dir: str | Path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of ``RUN/scalars.jsonl`` (``None`` when absent): a cheap change test."""
    from ..run.recorder import SCALARS_FILE

    try:
        st = os.stat(Path(run_dir) / SCALARS_FILE)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _step_stats(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The small part of a snapshot's meta the panel needs (per unit, per statistic)."""
    units = meta.get("units") or {}
    weights = meta.get("weights") or {}
    grads = meta.get("grad_norms") or {}
    out: dict[str, dict[str, float]] = {k: {} for k in STATS}
    for unit, m in units.items():
        if not isinstance(m, Mapping):
            continue
        for key in ("act_mean", "act_std", "dead_fraction"):
            v = _finite(m.get(key))
            if v is not None:
                out[key][unit] = v
    for layer, m in weights.items():
        v = _finite(m.get("norm")) if isinstance(m, Mapping) else None
        if v is not None:
            out["weight_norm"][layer] = v
    for layer, g in grads.items():
        v = _finite(g)
        if v is not None:
            out["grad_norm"][layer] = v
    return {
        "stats": out,
        "probe loss": _finite(meta.get("probe_loss")),
        "probe error": _finite(meta.get("probe_error")),
    }


def load_training(
    run_dir: str | Path,
    steps: list[int] | tuple[int, ...],
    units: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    known: Mapping[int, dict[str, Any]] | None = None,
) -> TrainingData:
    """Read the learning curves and the per-layer statistics of ``steps`` (worker thread).

    Only ``snapshot.json`` of each step is read (through
    :func:`cnnvis_gl.run.store.open_snapshot`, never the arrays), and only for steps not in
    ``known``.  A damaged or vanished snapshot is left out.
    """
    from ..run.recorder import read_scalars
    from ..run.store import open_snapshot

    sig = scalars_signature(run_dir)
    metas: dict[int, dict[str, Any]] = dict(known or {})
    for step in steps:
        if step in metas:
            continue
        try:
            metas[step] = _step_stats(open_snapshot(run_dir, int(step)).meta)
        except Exception:  # noqa: BLE001 - a damaged snapshot has no point on the curves
            continue
    have = sorted(s for s in steps if s in metas)
    # learning curves from scalars.jsonl: every numeric key but the step
    series: dict[str, list[tuple[int, float]]] = {}
    for rec in read_scalars(run_dir):
        for k, v in rec.items():
            fv = _finite(v)
            if k != "step" and fv is not None:
                series.setdefault(k, []).append((int(rec["step"]), fv))
    for name in ("probe loss", "probe error"):
        pts = [(s, metas[s][name]) for s in have if metas[s].get(name) is not None]
        if pts:
            series[name] = pts
    curves = {}
    for name, pts in series.items():
        pts.sort(key=lambda p: p[0])
        curves[name] = (
            np.array([p[0] for p in pts], dtype=np.float64),
            np.array([p[1] for p in pts], dtype=np.float64),
        )
    stats: dict[str, dict[str, Series]] = {}
    for key in STATS:
        per: dict[str, Series] = {}
        for unit, _group in units:
            pts2 = [
                (s, metas[s]["stats"][key][unit]) for s in have if unit in metas[s]["stats"][key]
            ]
            if pts2:
                per[unit] = (
                    np.array([p[0] for p in pts2], dtype=np.float64),
                    np.array([p[1] for p in pts2], dtype=np.float64),
                )
        stats[key] = per
    return TrainingData(tuple(have), curves, stats, tuple(units), metas, sig)


# ---------------------------------------------------------------------------- flags on the DAG


def flag_rows(scene: Scene, group_names: list[str], flags: list[Any]) -> dict[int, list[Any]]:
    """Scene row index → the flags drawn at its right end.

    A flag goes to the row of its unit when its group is expanded (one row per layer), else
    to its group's row.  Flags of groups not shown are left out.
    """
    by_unit: dict[str, int] = {}
    by_group: dict[str, int] = {}
    for i, r in enumerate(scene.rows):
        if r.kind == ROW_BETWEEN:
            continue
        if r.kind == ROW_GROUP and 0 <= r.group < len(group_names):
            by_group[group_names[r.group]] = i
        else:
            by_unit[r.unit] = i
            if 0 <= r.group < len(group_names):
                by_group.setdefault(group_names[r.group], i)
    out: dict[int, list[Any]] = {}
    for f in flags:
        row = by_unit.get(f.unit, by_group.get(f.group))
        if row is not None:
            out.setdefault(row, []).append(f)
    return out


_ends: Remembered[np.ndarray] = Remembered()


def row_right_end(scene: Scene, row: int) -> tuple[float, float, float]:
    """``(x, y_top, y_bottom)`` in scene units: right end of a row's clusters and its band
    (every row's at once, remembered for the last scene: the badges ask every frame)."""

    def make() -> np.ndarray:
        c = scene.clusters
        right = np.full(len(scene.rows), -np.inf)
        np.maximum.at(right, np.asarray(c.row, dtype=np.int64), np.asarray(c.rect[:, 0] + c.rect[:, 2], np.float64))
        band = np.array([r.span(scene.bounds)[1] for r in scene.rows], dtype=np.float64)
        return np.where(np.isfinite(right), right, band)

    ends = _ends.get((scene,), None, make)
    r = scene.rows[row]
    return float(ends[row]), float(r.y), float(r.y + r.height)


# ---------------------------------------------------------------------------- compare two steps


def activation_difference(scene: Scene, current: Any, other: Any) -> tuple[np.ndarray, dict]:
    """The scene's matrix cells as ``current − other`` class means, scaled to ``[-1, 1]``.

    Each unit's difference is divided by the largest class mean of that unit in either step,
    so ``±1`` means "changed by the layer's full range" and layers compare fairly.

    Returns
    -------
    (diff, info)
        ``diff`` is ``[N, K]`` float32 in the scene's neuron order, classes in snapshot order;
        ``info`` holds per-unit ``scale`` and the largest ``|diff|`` overall (``max_abs``).
    """
    n = scene.neurons
    N = len(n.unit)
    K = int(n.activation.shape[1]) if n.activation.ndim == 2 else 0
    out = np.zeros((N, K), dtype=np.float32)
    scales: dict[str, float] = {}
    for u in np.unique(n.unit):
        name = scene.units[int(u)]
        a = np.asarray(current.activations(name), dtype=np.float64)
        b = np.asarray(other.activations(name), dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"layer {name}: {a.shape} at one step, {b.shape} at the other")
        s = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)), 1e-12)
        scales[name] = s
        m = n.unit == u
        ch = np.asarray(n.index[m], dtype=np.int64)
        out[m] = ((a[ch] - b[ch]) / s).astype(np.float32)
    return out, {"scale": scales, "max_abs": float(np.abs(out).max(initial=0.0))}
