"""Rebuild what a run was made from, where the run says it: ``cnnvis train`` writes
``RUN/train.json`` (the model spec, whether BatchNorm was left out, the data spec, the input size
and normalisation) and ``RUN/weights.pt`` (the final weights, those of the run's last snapshot).
Ablation in the viewer and CKA in ``cnnvis compare`` run the real model again from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import CnnvisError

__all__ = [
    "TRAIN_FILE", "WEIGHTS_FILE", "rebuild_model", "rebuild_probe", "save_trained", "train_record",
    "write_train_record",
]  # fmt: skip

TRAIN_FILE = "train.json"
WEIGHTS_FILE = "weights.pt"


def train_record(run_dir: str | Path) -> dict[str, Any]:
    """What ``cnnvis train`` recorded about a run (``{}`` when nothing readable)."""
    try:
        doc = json.loads((Path(run_dir) / TRAIN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_train_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``RUN/train.json`` (atomically: a temporary file renamed into place).  ``record``
    holds ``model`` (a zoo name or ``file.py:factory``) and, where known, ``data`` (a data spec),
    ``input_size`` ``[H, W]``, ``normalize`` ``{"mean", "std"}`` and ``no_norm``."""
    path = Path(run_dir) / TRAIN_FILE
    tmp = path.with_name(f".{TRAIN_FILE}.tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def save_trained(run_dir: str | Path, model: Any, record: dict[str, Any]) -> None:
    """Write a trained model's ``RUN/weights.pt`` (its state dict) and ``RUN/train.json``
    (``record``, see :func:`write_train_record`), each atomically."""
    import torch

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{WEIGHTS_FILE}.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(run_dir / WEIGHTS_FILE)
    write_train_record(run_dir, record)


def rebuild_model(run_dir: str | Path, num_classes: int) -> tuple[Any, str]:
    """``(model with the run's saved weights, "")``, or ``(None, why not)`` for a run that does
    not say how to rebuild its model.  A damaged weights file raises one-line ``ModelError``."""
    from ..models import build_model, load_weights

    run_dir = Path(run_dir)
    rec = train_record(run_dir)
    weights = run_dir / WEIGHTS_FILE
    if not isinstance(rec.get("model"), str) or not weights.is_file():
        return None, (
            f"{run_dir} does not say how to rebuild its model (no {TRAIN_FILE} + {WEIGHTS_FILE}; "
            "cnnvis train writes them)"
        )
    kw = {"norm": False} if rec.get("no_norm") else {}
    try:
        model = build_model(rec["model"], num_classes=num_classes, **kw)
    except TypeError as e:
        raise CnnvisError(f"{run_dir / TRAIN_FILE}: cannot rebuild {rec['model']!r} ({e})") from None
    load_weights(model, weights)
    return model, ""


def rebuild_probe(run_dir: str | Path, limit: int, spec: str | None = None) -> Any:
    """The first ``limit`` test images of the run's training data (or of ``spec``), resized and
    normalised as the model was trained; ``None`` when the run names no data and no ``spec``."""
    from ..data import open_data
    from ..data.inputs import fit_to_model

    rec = train_record(run_dir)
    spec = spec or rec.get("data")
    if not isinstance(spec, str):
        return None
    size, norm = rec.get("input_size"), rec.get("normalize")
    stats = None
    if isinstance(norm, dict) and "mean" in norm and "std" in norm:
        stats = (tuple(norm["mean"]), tuple(norm["std"]))
    data = open_data(spec, "test")
    return fit_to_model(data.subset(min(limit, len(data))), tuple(size) if size else None, stats)
