"""``cnnvis demo``: train a small CNN while the viewer follows the run.

The training loop (:func:`cnnvis_gl.train.train`) runs on a background thread with a
:class:`~cnnvis_gl.run.recorder.Recorder` that writes a snapshot every ``every`` steps (on a
fixed probe set of test images) into the run directory.  The viewer runs on the main thread:

* **with a display**, :func:`cnnvis_gl.ui.run_app` with ``follow=True`` shows each new snapshot
  as it lands; closing the window ends the demo (training stops at the next step);
* **without one**, the same viewer follows the run headless (null GLFW platform + EGL): every
  few new snapshots, once the new view is drawn, it saves a screenshot of the whole window into
  ``RUN/screenshots`` (``stepNNNNNN.png``), and one of the final snapshot
  (``final-stepNNNNNN.png``) once training has finished.

Data: CIFAR-10 under ``$CNNVIS_DATA`` (downloaded there when absent).  When it is absent and
cannot be downloaded, the demo says so and uses scikit-learn's bundled handwritten digits
(1797 images of 8×8 pixels, 10 classes) upscaled to 32×32 RGB, so it works offline.

Budget: the default (BaseCNN×¼, 600 steps of 128 images = 2 epochs of 38 400 images, a snapshot
of 500 test images every 20 steps, the headless viewer following all 31 snapshots, 6
screenshots) took 2 min 16 s to 2 min 32 s on an idle 2-core CPU (test error about 32 %;
training 130-141 s of it); the first screenshot is written within seconds.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CnnvisError, DataError

__all__ = ["DemoConfig", "DemoResult", "digits_data", "load_demo_data", "run_demo"]

MODEL = "basecnn-x0.25"
DIGITS = "digits"  # the data spec of the offline fallback
#: headless: seconds the viewer may take after training ends to show and screenshot the final
#: snapshot (it is skipped, say, when that snapshot cannot be read)
FINAL_SHOT_TIMEOUT = 60.0
# what a demo run directory may hold: cleared without asking before a new demo
_RUN_FILES = {
    "manifest.json",
    "snapshots",
    "scalars.jsonl",
    "layout.json",
    "screenshots",
    "weights.pt",
    "features.png",
    "matrix.png",
    "demo.json",
    "train.json",
}


@dataclass
class DemoConfig:
    """Options of :func:`run_demo` (the ``cnnvis demo`` flags)."""

    out: Path = Path("runs/demo")
    data: str = "cifar10"
    steps: int = 600
    every: int = 20
    probe: int = 500
    batch_size: int = 128
    lr: float = 0.05
    view: bool = True
    headless: bool | None = None  # None: headless when there is no display
    size: tuple[int, int] = (1600, 1000)
    pictures: bool = True  # features.png / matrix.png of the final snapshot
    device: str | None = None
    seed: int = 0
    screenshots: int = 6  # headless: about this many screenshots over the run (plus the final)


@dataclass
class DemoResult:
    """What a demo did (returned by :func:`run_demo`; the CLI prints it as it goes)."""

    out: Path
    data: str  # name of the data set used
    fallback: bool  # the bundled digits stood in for CIFAR-10
    steps: int = 0
    snapshots: list[int] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)
    train_seconds: float = 0.0
    seconds: float = 0.0
    stopped: bool = False  # the viewer was closed before training ended
    test_error: float | None = None


# ---------------------------------------------------------------------------- data


def digits_data(test_size: int = 500, seed: int = 0) -> tuple[Any, Any]:
    """scikit-learn's bundled 8×8 handwritten digits as 32×32 RGB ``ImageData`` (train, test).

    Shipped inside scikit-learn, so it needs no download.  Images are upscaled bilinearly and
    repeated over the three channels; the split is a fixed shuffle (``test_size`` test images).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from .data import ImageData

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # [N, 1, 8, 8] in [0, 1]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).contiguous()
    y = np.asarray(d.target, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[torch.as_tensor(perm)], y[perm]
    classes = [str(c) for c in range(10)]
    src = "scikit-learn load_digits (8x8, upscaled to 32x32 RGB)"
    n = len(y) - test_size
    train = ImageData.from_tensors(x[:n], y[:n], classes, name="digits-train", source=src)
    test = ImageData.from_tensors(
        x[n:], y[n:], classes, name="digits-test", mean=train.mean, std=train.std, source=src
    )
    return train, test


def load_demo_data(spec: str, log: Callable[[str], Any] = print) -> tuple[Any, Any, bool]:
    """Train and test ``ImageData`` for the demo, and whether the digits fallback stood in.

    ``spec`` is a data spec of :func:`cnnvis_gl.data.open_data`, or ``"digits"``.  For the bare
    ``"cifar10"`` spec, a CIFAR-10 that is absent and cannot be downloaded falls back to
    :func:`digits_data` with a message; any other failure is an error.
    """
    from .data import data_root, open_data

    spec = str(spec).strip()
    if spec.lower() == DIGITS:
        return (*digits_data(), False)
    bare = spec.lower().replace("-", "") == "cifar10"
    if bare:
        log(f"data: CIFAR-10 from {data_root() / 'cifar10'} (downloaded there when absent)")
    try:
        return open_data(spec, "train"), open_data(spec, "test"), False
    except DataError as e:
        if not bare:
            raise
        log(
            f"data: CIFAR-10 is not available ({e}).\n"
            "data: falling back to scikit-learn's bundled handwritten digits "
            "(1797 images, 8x8 upscaled to 32x32 RGB, classes 0-9) — no download needed.\n"
            "data: for CIFAR-10, set CNNVIS_DATA to a folder holding cifar10/ or allow the "
            "download, then run the demo again."
        )
        return (*digits_data(), True)


def plan_steps(n_train: int, steps: int, batch_size: int) -> tuple[int, int]:
    """``(epochs, training images)`` so that ``epochs × images // batch_size ≈ steps``."""
    per_epoch_max = max(1, n_train // batch_size)
    epochs = max(1, math.ceil(steps / per_epoch_max))
    per_epoch = max(1, math.ceil(steps / epochs))
    return epochs, per_epoch * batch_size


def _clear_run(out: Path) -> None:
    """Empty a previous demo's run directory; refuse a folder holding anything else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise CnnvisError(f"--out {out} is a file: choose a folder")
    entries = list(out.iterdir())
    foreign = [
        p.name
        for p in entries
        if p.name not in _RUN_FILES and not p.name.startswith((".layout-", ".manifest.json."))
    ]
    if foreign:
        raise CnnvisError(
            f"--out {out} holds files a demo did not write ({', '.join(sorted(foreign)[:3])}): "
            "choose another folder"
        )
    for p in entries:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


# ---------------------------------------------------------------------------- training thread


class _Stop(Exception):
    """Raised inside the training loop when the viewer asks it to stop."""


class _Trainer:
    """Trains on a background thread, recording into the run directory."""

    def __init__(self, cfg: DemoConfig, model: Any, train_data: Any, test_data: Any, log) -> None:
        self.cfg = cfg
        self.model = model
        self.train_data = train_data
        self.test_data = test_data
        self.log = log
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.steps = 0
        self.total = 0
        self.hist: Any = None
        self.seconds = 0.0
        self.stopped = False
        self.last_step: int | None = None  # the last recorded step, once training ended
        self.thread = threading.Thread(target=self._run, name="cnnvis-demo-train", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._train()
        except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
            self.error = e
            self.log(f"train: failed: {type(e).__name__}: {e}")
        finally:
            self.done.set()

    def _train(self) -> None:
        from .run.recorder import Recorder
        from .train import TrainConfig, train

        cfg, log = self.cfg, self.log
        epochs, limit = plan_steps(len(self.train_data), cfg.steps, cfg.batch_size)
        train_data = self.train_data.subset(limit)
        self.total = epochs * max(1, len(train_data) // cfg.batch_size)
        eval_data = self.test_data.subset(min(1000, len(self.test_data)))
        tc = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed)
        rec = Recorder(
            self.model,
            self.test_data,
            cfg.out,
            every=cfg.every,
            max_images=cfg.probe,
            model_name=MODEL,
        )
        t0 = time.perf_counter()
        log(
            f"train: {MODEL} on {len(train_data)} {train_data.name} images, {epochs} epoch(s) = "
            f"{self.total} steps of {cfg.batch_size}; a snapshot every {cfg.every} steps on "
            f"{min(cfg.probe, len(self.test_data))} test images"
        )
        recorded = [0]
        rec.record(0)

        def on_step(step: int, loss: float) -> None:
            if self.stop.is_set():
                raise _Stop
            self.steps = step
            rec.step(step, train_loss=loss)
            if step % cfg.every == 0:
                recorded.append(step)
                dt = time.perf_counter() - t0
                log(
                    f"train: step {step}/{self.total}  loss {loss:.3f}  "
                    f"snapshot {len(recorded)}  ({dt:.0f} s)"
                )

        def on_epoch(epoch: int, r: dict[str, float]) -> None:
            rec.log(r["step"], test_loss=r["test_loss"], test_error=r["test_error"])

        try:
            self.hist = train(
                self.model,
                train_data,
                eval_data,
                tc,
                progress=False,
                on_step=on_step,
                on_epoch=on_epoch,
                log=lambda m: log(f"train: {m}"),
            )
        except _Stop:
            self.stopped = True
            log(f"train: stopped at step {self.steps} (the viewer was closed)")
        finally:
            try:
                if self.steps and recorded[-1] != self.steps:
                    rec.record(self.steps)  # the final state is always a snapshot
                    recorded.append(self.steps)
            finally:
                rec.close()
        self.seconds = time.perf_counter() - t0
        self.last_step = recorded[-1]
        log(f"train: done, {self.steps} steps in {self.seconds:.0f} s, {len(recorded)} snapshots")


# ---------------------------------------------------------------------------- the viewer


def _wait_first_snapshot(out: Path, trainer: _Trainer) -> bool:
    """Block until the run holds a snapshot (the viewer needs one); False if training failed."""
    from .run import store

    while not store.list_steps(out):
        if trainer.done.wait(0.2) and not store.list_steps(out):
            return False
    return True


def _view_live(cfg: DemoConfig, trainer: _Trainer, log) -> None:
    """With a display: the viewer follows the run in a window until the user closes it."""
    from .ui import run_app

    def finished() -> None:
        trainer.done.wait()
        if trainer.error is None:
            log(
                f"view: training finished at step {trainer.last_step}; the window shows the "
                "final snapshot — close it to end the demo"
            )

    threading.Thread(target=finished, name="cnnvis-demo-note", daemon=True).start()
    log(f"view: the viewer follows {cfg.out} in a window; close it to end the demo")
    run_app(cfg.out, follow=True, headless=False, size=cfg.size)


def _view_headless(cfg: DemoConfig, trainer: _Trainer, shots: Path, log) -> list[Path]:
    """Without a display: one headless viewer follows the run while it trains.

    The real viewer (null GLFW platform + EGL) follows the run directory exactly as a window
    would; every few new snapshots, as soon as the new view is drawn, it saves a screenshot of
    the whole window, and one of the final snapshot once everything has loaded after training.
    """
    from .run import store
    from .ui import run_app

    expected = max(1, cfg.steps // cfg.every) + 1
    shot_every = max(1, math.ceil(expected / max(1, cfg.screenshots - 1)))
    shots.mkdir(parents=True, exist_ok=True)
    log(
        f"view: no display — the viewer follows the run headless and saves a screenshot every "
        f"~{shot_every} snapshot(s) and of the final one into {shots}"
    )
    saved: list[Path] = []
    requested: dict[Path, int] = {}  # screenshot → step
    shown: list[int] = []  # steps shown, in order
    final: list[Path] = []
    finished: list[float] = []  # when training ended (monotonic)
    due: list[int] = []  # the step whose screenshot is to be taken once its view is drawn

    def on_frame(app: Any) -> None:
        app.shots.follow = app.shots.on_exit = False  # this hook takes them
        for p in app.shots.saved:
            if p not in saved:
                saved.append(p)
                log(f"view: screenshot of step {requested.get(p, '?')}: {p}")
        done = trainer.done.is_set()
        if done and not finished:
            finished.append(time.monotonic())
        if (final and final[0] in saved) or (done and trainer.error is not None):
            app.actions.request_exit()
            return
        if finished and time.monotonic() - finished[0] > FINAL_SHOT_TIMEOUT:
            log(f"view: no final screenshot {FINAL_SHOT_TIMEOUT:.0f} s after training; stopping")
            app.actions.request_exit()
            return
        step = app.state.step
        if step is None or app.feed.pending or final:
            return
        if done and step == store.list_steps(cfg.out)[-1]:
            # the final picture waits for everything (curves, flags) to have loaded
            final.append(shots / f"final-step{step:06d}.png")
            requested[final[0]] = step
            app.shots.when_settled(final[0], step)
            return
        if not shown or shown[-1] != step:
            shown.append(step)
            due[:] = [] if (len(shown) - 1) % shot_every else [step]
        # the others as soon as their view is drawn: the next snapshot may come any second
        if due and due[0] == step and app.view.drawn:
            path = shots / f"step{step:06d}.png"
            requested[path] = step
            app.shots.request(path)
            due.clear()

    with contextlib.redirect_stdout(io.StringIO()):  # the viewer's own "running headless" note
        run_app(cfg.out, follow=True, headless=True, size=cfg.size, screenshot_dir=shots,
                on_frame=on_frame)  # fmt: skip
    return saved


def _view(cfg: DemoConfig, trainer: _Trainer, shots: Path, log) -> list[Path]:
    """Run the viewer on the main thread while the training thread records the run."""
    from .ui.headless import has_display

    headless = (not has_display()) if cfg.headless is None else bool(cfg.headless)
    saved: list[Path] = []
    try:
        if not _wait_first_snapshot(cfg.out, trainer):
            return saved
        if headless:
            saved = _view_headless(cfg, trainer, shots, log)
        else:
            _view_live(cfg, trainer, log)
    except KeyboardInterrupt:
        log("interrupted: stopping the training")
    except Exception as e:  # noqa: BLE001 - no viewer here (e.g. no OpenGL): training goes on
        log(f"view: the viewer could not run ({type(e).__name__}: {e}); training goes on")
        return saved
    if not trainer.done.is_set():
        trainer.stop.set()  # the window was closed (or Ctrl+C): stop at the next step
    return saved


def _render_pictures(out: Path, log) -> list[Path]:
    """``features.png`` and ``matrix.png`` of the run's latest snapshot (skipped without GL)."""
    from .layout import LayoutOptions, build_scene
    from .run.snapshot import open_run

    snap = open_run(out).latest()
    try:
        from .render.offscreen import render_png

        scene = build_scene(snap, LayoutOptions(k=4))
        paths = []
        for facet in ("features", "matrix"):
            png = render_png(
                snap, scene, out / f"{facet}.png", size=(1920, 1200), facet=facet, msaa=4
            )
            paths.append(png)
            log(f"rendered the {facet} view of step {snap.step} to {png}")
        return paths
    except RuntimeError as e:  # no OpenGL context on this machine
        log(f"no pictures: {e}")
        return []


def run_demo(cfg: DemoConfig | None = None, log: Callable[[str], Any] | None = None) -> DemoResult:
    """Train BaseCNN×¼ with live snapshots while the viewer follows the run (see the module doc).

    Returns
    -------
    DemoResult
        The run directory, data set, steps, snapshots, screenshots and pictures.
    """
    import json

    import torch

    from .models import build_model

    cfg = cfg or DemoConfig()
    t_start = time.perf_counter()
    if log is None:
        stdout = sys.stdout  # the headless viewer's own messages are muted, not ours

        def log(message: str) -> None:
            print(message, file=stdout, flush=True)

    if cfg.steps < 1 or cfg.every < 1 or cfg.probe < 1:
        raise CnnvisError("--steps, --every and the probe size must be at least 1")
    cfg.out = Path(cfg.out)
    train_data, test_data, fallback = load_demo_data(cfg.data, log)
    log(
        f"data: {train_data.name} ({len(train_data)} images) and {test_data.name} "
        f"({len(test_data)} images), {len(train_data.classes)} classes"
    )
    _clear_run(cfg.out)
    cfg.out.mkdir(parents=True, exist_ok=True)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(MODEL, num_classes=len(train_data.classes)).to(device)
    result = DemoResult(out=cfg.out, data=train_data.name.removesuffix("-train"), fallback=fallback)
    (cfg.out / "demo.json").write_text(
        json.dumps(
            {
                "model": MODEL,
                "data": result.data,
                "fallback": fallback,
                "steps": cfg.steps,
                "every": cfg.every,
                "probe": cfg.probe,
                "device": device,
            },
            indent=1,
        )
    )
    trainer = _Trainer(cfg, model, train_data, test_data, log)
    shots = cfg.out / "screenshots"
    trainer.start()
    if cfg.view:
        result.screenshots = _view(cfg, trainer, shots, log)
    if not trainer.done.is_set():
        log("train: finishing …")
    try:
        trainer.thread.join()
    except KeyboardInterrupt:
        trainer.stop.set()
        trainer.thread.join()
    if trainer.error is not None:
        raise trainer.error
    result.steps = trainer.steps
    result.stopped = trainer.stopped
    result.train_seconds = trainer.seconds
    if trainer.hist is not None and trainer.hist.epochs:
        result.test_error = trainer.hist.epochs[-1].get("test_error")
    torch.save(model.state_dict(), cfg.out / "weights.pt")
    from .run.rebuild import write_train_record

    # how to rebuild the model (the viewer's Ablate tab, cnnvis ablate / compare): the weights
    # are those of the last snapshot; the digits fallback is no data spec
    write_train_record(
        cfg.out,
        {
            "model": MODEL,
            "data": None if fallback else cfg.data,
            "input_size": list(test_data.image_shape[1:]),
            "normalize": {"mean": list(test_data.mean), "std": list(test_data.std)},
        },
    )
    from .run.snapshot import open_run

    result.snapshots = open_run(cfg.out).steps()
    if cfg.pictures:
        result.pictures = _render_pictures(cfg.out, log)
    result.seconds = time.perf_counter() - t_start
    _summary(result, log)
    return result


def _summary(r: DemoResult, log) -> None:
    err = "" if r.test_error is None else f", test error {r.test_error:.1%}"
    what = "digits (fallback)" if r.fallback else r.data
    log(
        f"demo: {r.steps} steps on {what}{err}; {len(r.snapshots)} snapshots in {r.out} "
        f"(training {r.train_seconds:.0f} s, all {r.seconds:.0f} s)"
    )
    if r.screenshots:
        log(f"demo: {len(r.screenshots)} screenshots in {r.screenshots[0].parent}:")
        for p in r.screenshots[:: max(1, len(r.screenshots) // 8)][:8]:
            log(f"  {p}")
        if r.screenshots[-1] not in r.screenshots[:: max(1, len(r.screenshots) // 8)][:8]:
            log(f"  {r.screenshots[-1]}  (final)")
    log(
        f"next: cnnvis view {r.out}    (explore it: timeline, inspector, moves)\n"
        f"      cnnvis info {r.out}    (snapshots and debugging flags)\n"
        f"      cnnvis render {r.out} -o fig.png --size 3840x2160"
    )
