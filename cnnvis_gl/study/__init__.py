"""The paper's case studies (§7), reproduced with the tool: depth and width.

``cnnvis study depth`` trains ShallowCNN, BaseCNN and DeepCNN with one recipe; ``cnnvis study
width`` trains BaseCNN×w over a range of widths.  Each variant becomes an ordinary run directory
(``weights.pt``, ``train.json``, a snapshot of the trained model on the probe images) that
``cnnvis view``, ``render``, ``compare`` and ``ablate`` open, and the study writes

* ``results.md`` / ``results.json``: per variant its parameters, train and test error (train
  error measured in eval mode on the training images, without augmentation), clusters, each
  group's redundancy (:func:`~cnnvis_gl.analysis.diagnose.redundancy`: neurons with a
  near-duplicate class profile) and, for every pair of consecutive layers, the share of positive
  weights among the strongest quarter (:func:`~cnnvis_gl.analysis.diagnose.positive_fraction`),
  plus a few sentences stating what the numbers show;
* ``figures/``: the views that show the finding, drawn by ``cnnvis render`` (depth: each
  network's rows with their green/red edges; width: the last conv group's activation matrix of
  the narrowest, a middle and the widest model).

Profiles: ``cpu`` (about an hour per study on a 2-core CPU: narrower models, a subset of
CIFAR-10) and ``full`` (the paper's widths, all of CIFAR-10: for a CUDA machine).  A stopped study
continues where it stopped: a variant whose run directory holds results for the same recipe is
not trained again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.diagnose import positive_fraction, redundancy
from ..errors import CnnvisError
from ..run.snapshot import Snapshot

__all__ = ["PROFILES", "Recipe", "layer_pairs", "measure", "run_study", "variant_label"]

RESULTS_FILE = "study.json"  # in each variant's run directory


@dataclass(frozen=True)
class Recipe:
    """How every variant of a study is trained and measured (the same for all)."""

    variants: tuple[str, ...]  # zoo model names
    limit: int | None  # training images (None: all)
    test_limit: int | None  # test images (None: all)
    epochs: int
    augment: bool
    probe: int = 1000  # test images in each variant's snapshot
    lr: float = 0.05
    batch_size: int = 128
    seed: int = 0


#: ``PROFILES[study][profile]``.  CPU: depth at width ½ on 10k images (ShallowCNN/BaseCNN/DeepCNN
#: train at ~4/6/16 ms per image here); width ⅛ … 1 (×8, as the paper's ¼ … 4) on 5k images
#: without augmentation, so that capacity can show as over-fitting.  Full: the paper's models.
PROFILES: dict[str, dict[str, Recipe]] = {
    "depth": {
        "cpu": Recipe(("shallowcnn-x0.5", "basecnn-x0.5", "deepcnn-x0.5"), 10000, 2000, 6, True),
        "full": Recipe(("shallowcnn", "basecnn", "deepcnn"), None, None, 30, True, 2000),
    },
    "width": {
        "cpu": Recipe(
            ("basecnn-x0.125", "basecnn-x0.25", "basecnn-x0.5", "basecnn-x1"), 5000, 2000, 12, False
        ),
        "full": Recipe(
            ("basecnn-x0.25", "basecnn-x0.5", "basecnn", "basecnn-x2", "basecnn-x4"),
            None, None, 30, False, 2000,
        ),  # fmt: skip
    },
}

_FRACTIONS = {0.125: "⅛", 0.25: "¼", 0.5: "½"}


def variant_label(spec: str) -> str:
    """``"deepcnn-x0.5"`` → ``"DeepCNN×½"``, ``"basecnn"`` → ``"BaseCNN"``."""
    name, _, width = spec.partition("-x")
    base = {"basecnn": "BaseCNN", "shallowcnn": "ShallowCNN", "deepcnn": "DeepCNN"}.get(name, name)
    if not width:
        return base
    w = float(width)
    return f"{base}×{_FRACTIONS.get(w, f'{w:g}')}"


def _unit_labels(snap: Snapshot) -> dict[str, str]:
    """Each unit's short name: its group's, numbered within the group when it has several
    (``conv4.2``: the second conv layer of group conv4)."""
    g = snap.graph
    out = {}
    for grp_index, grp in enumerate(g.groups):
        units = [u for u in g.units if u.group == grp_index]
        for i, u in enumerate(units, 1):
            out[u.name] = grp.name if len(units) == 1 else f"{grp.name}.{i}"
    return out


def layer_pairs(snap: Snapshot) -> list[dict[str, Any]]:
    """For every unit fed by another unit: ``{"from", "to", "positive", "conv"}`` — the share of
    positive weights among the strongest quarter of the edges between them, and whether both
    are convolutions.  In network order."""
    g = snap.graph
    labels = _unit_labels(snap)
    conv = {u.name for u in g.units if any(g.layer(n).op.startswith("Conv") for n in u.layers)}
    out = []
    for u in g.units:
        for src, w in snap.unit_weights(u.name).items():
            if src == "input":
                continue
            out.append(
                {
                    "from": labels.get(src, src),
                    "to": labels[u.name],
                    "positive": positive_fraction(np.asarray(w)),
                    "conv": src in conv and u.name in conv,
                }
            )
    return out


def measure(snap: Snapshot) -> dict[str, Any]:
    """The study's measures of one trained model's snapshot: per group its neurons, clusters
    (as the viewer clusters them) and redundancy; per layer pair its positive-edge share; and
    the mean positive share of the top and the bottom three conv→conv pairs."""
    from ..layout.lineage import group_clusters

    groups = [
        {
            "name": grp.name,
            "neurons": snap.graph.unit(grp.unit).channels,
            "clusters": len(group_clusters(snap, grp.name)),
            "redundancy": redundancy(snap.activations(grp.unit)),
        }
        for grp in snap.graph.groups
    ]
    pairs = layer_pairs(snap)
    conv = [p["positive"] for p in pairs if p["conv"]]
    return {
        "groups": groups,
        "pairs": pairs,
        "conv_layers": len(conv) + 1 if conv else 0,
        "top_positive": float(np.mean(conv[-3:])) if conv else None,
        "bottom_positive": float(np.mean(conv[:3])) if conv else None,
    }


def _train_variant(
    spec: str, recipe: Recipe, data: tuple[Any, Any], data_spec: str, run_dir: Path,
    device: str, progress: bool, log: Callable[[str], Any],
) -> dict[str, Any]:  # fmt: skip
    """Train one variant into ``run_dir`` and measure it (or read what a previous run of the
    same recipe measured)."""
    import torch

    from .. import analyze
    from ..models import build_model
    from ..run.rebuild import save_trained
    from ..train import TrainConfig, evaluate, train

    done = run_dir / RESULTS_FILE
    key = {**asdict(recipe), "variants": None, "data": data_spec}
    if done.is_file():
        try:
            prev = json.loads(done.read_text(encoding="utf-8"))
        except ValueError:
            prev = {}
        if prev.get("recipe") == key and isinstance(prev.get("results"), dict):
            log(f"{variant_label(spec)}: already trained with this recipe ({done}); kept")
            return prev["results"]
    train_data, test_data = data
    torch.manual_seed(recipe.seed)
    model = build_model(spec, num_classes=len(train_data.classes)).to(device)
    cfg = TrainConfig(
        epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
        augment=recipe.augment, seed=recipe.seed,
    )  # fmt: skip
    t0 = time.perf_counter()
    hist = train(model, train_data, test_data, cfg, progress=progress,
                 log=lambda m: log(f"{variant_label(spec)} {m}"))  # fmt: skip
    seconds = time.perf_counter() - t0
    train_loss, train_error = evaluate(model, train_data)
    test_loss, test_error = evaluate(model, test_data)
    save_trained(
        run_dir,
        model,
        {
            "model": spec, "data": data_spec, "input_size": list(test_data.image_shape[1:]),
            "normalize": {"mean": list(test_data.mean), "std": list(test_data.std)},
            "config": vars(cfg), "epochs": hist.epochs,
        },
    )  # fmt: skip
    scalars = {"train_loss": train_loss, "train_error": train_error,
               "test_loss": test_loss, "test_error": test_error}  # fmt: skip
    snap = analyze(model, test_data, limit=recipe.probe, progress=progress, model_name=spec,
                   scalars=scalars)  # fmt: skip
    assert snap is not None  # one process
    snap.save(run_dir, hist.steps)
    results = {
        "model": spec,
        "label": variant_label(spec),
        "params": sum(p.numel() for p in model.parameters()),
        **scalars,
        "train_seconds": seconds,
        "epochs": recipe.epochs,
        **measure(snap),
    }
    tmp = done.with_name(f".{RESULTS_FILE}.tmp")
    tmp.write_text(json.dumps({"recipe": key, "results": results}, indent=1), encoding="utf-8")
    tmp.replace(done)
    log(
        f"{variant_label(spec)}: train error {train_error:.1%}, test error {test_error:.1%} "
        f"({seconds / 60:.1f} min)"
    )
    return results


def _open_data(data_spec: str, recipe: Recipe, data: tuple[Any, Any] | None) -> tuple[Any, Any]:
    from ..data import open_data

    if data is not None:
        train_data, test_data = data
    else:
        train_data, test_data = open_data(data_spec, "train"), open_data(data_spec, "test")
    if recipe.limit:
        train_data = train_data.subset(min(recipe.limit, len(train_data)))
    if recipe.test_limit:
        test_data = test_data.subset(min(recipe.test_limit, len(test_data)))
    return train_data, test_data


def run_study(
    study: str,
    out: str | Path,
    data_spec: str,
    *,
    profile: str = "cpu",
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
    figures: bool = True,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    data: tuple[Any, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run one study (``depth`` or ``width``) into ``out``: a run directory per variant,
    ``results.md``, ``results.json`` and ``figures/``.  ``overrides`` replaces fields of the
    profile's :class:`Recipe` (e.g. ``{"epochs": 2}``); ``data``, the ``(train, test)``
    ImageData to use instead of opening ``data_spec`` (which then only names them).  Returns the
    variants' results."""
    if study not in PROFILES:
        raise CnnvisError(f"unknown study {study!r}: use {' or '.join(PROFILES)}")
    if profile not in PROFILES[study]:
        raise CnnvisError(f"unknown profile {profile!r}: use {' or '.join(PROFILES[study])}")
    recipe = replace(PROFILES[study][profile], **(overrides or {}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = _open_data(data_spec, recipe, data)
    log(
        f"study {study} ({profile}): {', '.join(map(variant_label, recipe.variants))} on "
        f"{len(data[0])} training images, {recipe.epochs} epochs"
        f"{'' if recipe.augment else ', no augmentation'}; tested on {len(data[1])} images"
    )
    rows = []
    for i, spec in enumerate(recipe.variants, 1):
        log(f"[{i}/{len(recipe.variants)}] {variant_label(spec)} → {out / spec}")
        rows.append(
            _train_variant(spec, recipe, data, data_spec, out / spec, device, progress, log)
        )
    from .report import write_figures, write_report

    figs = write_figures(study, out, rows, log) if figures else []
    path = write_report(study, profile, recipe, data_spec, out, rows, figs)
    log(f"wrote {path}")
    return rows
