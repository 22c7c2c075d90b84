"""A plain, honest training loop for the zoo models (SGD or Adam, CIFAR augmentation).

Live recording plugs in through ``on_step(step, loss)``, called after every optimiser step, and
``on_epoch(epoch, record)``, called after every evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageData
from .model.capture import logits_of
from .model.cpu_fallback import model_on_cpu_constructors


@dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    schedule: str = "cosine"  # cosine | constant
    seed: int = 0


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0


@torch.no_grad()
@model_on_cpu_constructors
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 512) -> tuple[float, float]:
    """Mean cross-entropy and error rate of ``model`` on ``data`` (eval mode; mode restored)."""
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    loss = correct = n = 0.0
    for x, y, _ in data.batches(batch_size, device=dev):
        out = logits_of(model(x))
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += float((out.argmax(1) == y).sum())
        n += int(y.shape[0])
    model.train(was)
    return loss / max(n, 1), 1.0 - correct / max(n, 1)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.momentum > 0,
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (use sgd or adam)")


@model_on_cpu_constructors
def train(
    model: nn.Module,
    train_data: ImageData,
    test_data: ImageData | None,
    cfg: TrainConfig,
    *,
    progress: bool = True,
    on_step: Callable[[int, float], Any] | None = None,
    on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    log: Callable[[str], Any] = print,
) -> History:
    """Train ``model`` in place; returns per-epoch train loss, test loss and test error."""
    torch.manual_seed(cfg.seed)
    dev = next(model.parameters()).device
    opt = make_optimizer(model, cfg)
    steps_per_epoch = max(1, len(train_data) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    hist = History()
    model.train()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        run_loss = run_correct = seen = 0.0
        batches = train_data.batches(
            cfg.batch_size,
            shuffle=True,
            augment=cfg.augment,
            seed=cfg.seed + epoch,
            device=dev,
            drop_last=True,
        )
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            leave=False,
        )
        for x, y, _ in bar:
            out = logits_of(model(x))  # (auxiliary outputs are not trained)
            loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                log(
                    f"epoch {epoch + 1}: loss is {float(loss)} at step {hist.steps}; training diverged"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            hist.steps += 1
            lv = float(loss.detach())
            run_loss += lv * y.shape[0]
            run_correct += float((out.detach().argmax(1) == y).sum())
            seen += int(y.shape[0])
            bar.set_postfix(loss=f"{run_loss / seen:.3f}")
            if on_step is not None:
                on_step(hist.steps, lv)
        record = {
            "epoch": epoch + 1,
            "step": hist.steps,
            "train_loss": run_loss / max(seen, 1),
            "train_error": 1.0 - run_correct / max(seen, 1),
            "seconds": time.perf_counter() - t0,
        }
        if test_data is not None:
            record["test_loss"], record["test_error"] = evaluate(model, test_data)
        hist.epochs.append(record)
        msg = f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.3f}, train error {record['train_error']:.1%}"
        if test_data is not None:
            msg += f", test loss {record['test_loss']:.3f}, test error {record['test_error']:.1%}"
        log(msg + f" ({record['seconds']:.0f} s)")
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    return hist
