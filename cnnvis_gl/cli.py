"""The ``cnnvis`` command line."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EPILOG = """\
data specs:
  cifar10:DIR   CIFAR-10 (DIR holds cifar-10-batches-py or -bin, or is it)
  cifar10       CIFAR-10 under $CNNVIS_DATA (downloaded there when absent)
  folder:DIR    one sub-folder of images per class
models: basecnn, shallowcnn, deepcnn, their widths basecnn-x0.125 … basecnn-x4
        (also shallowcnn-x0.5, deepcnn-x2 …), resnet20,
        torchvision:NAME (any torchvision CNN classifier, e.g. torchvision:resnet50;
        random init, needs torchvision), or path/to/file.py:factory (a function
        returning an nn.Module)
"""


def _device(name: str | None) -> str:
    import torch

    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            from .errors import CnnvisError

            raise CnnvisError(f"--device {name}: this torch ({torch.__version__}) sees no CUDA device")
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def _number(cast: Callable[[str], Any], ok: Callable[[Any], bool], want: str):
    """An argparse type: ``cast`` the text and check it (``want`` says what is accepted)."""

    def parse(text: str) -> Any:
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not {want}")
        return v

    parse.__name__ = want  # argparse names the type in some messages
    return parse


_count = _number(int, lambda v: v >= 1, "a whole number ≥ 1")
_step = _number(int, lambda v: 0 <= v <= 999_999_999, "a step in 0…999999999")
_nonneg_int = _number(int, lambda v: v >= 0, "a whole number ≥ 0")
_positive = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
_nonneg = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number ≥ 0")


def _add_common(p: argparse.ArgumentParser) -> None:
    """The model, data and device of ``analyze`` and ``train``."""
    p.add_argument("model", help="zoo model name or path/to/file.py:factory")
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec (see below)")
    _add_device(p)
    p.add_argument(
        "--batch-size", type=_count, default=256, help="analysis batch size (default 256)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def _add_input(p: argparse.ArgumentParser) -> None:
    """``--input-size`` and ``--normalize`` (analyze and train)."""
    from .data.inputs import INPUT_SIZE_HELP, NORMALIZE_HELP

    p.add_argument("--input-size", metavar="N|HxW", help=INPUT_SIZE_HELP)
    p.add_argument("--normalize", metavar="PRESET|MEAN/STD", help=NORMALIZE_HELP)


def _add_window(p: argparse.ArgumentParser) -> None:
    """The viewer window of ``view`` and ``demo``."""
    p.add_argument(
        "--headless",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="viewer without a window (default: headless when there is no display)",
    )
    p.add_argument(
        "--size", default="1600x1000", help="viewer size WIDTHxHEIGHT (default 1600x1000)"
    )


def _add_theme(p: argparse.ArgumentParser, default: str | None = "dark") -> None:
    p.add_argument("--theme", choices=["dark", "light"], default=default)


def _analyze_parser(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="compute a snapshot of a model on a dataset",
        description="Compute a snapshot of a model on a dataset.\n\n"
        "On several processes or GPUs:\n"
        "  torchrun --nproc-per-node N $(which cnnvis) analyze ...\n"
        "each rank analyses a shard of the images on its own device, the statistics are\n"
        "merged (the same snapshot as one process), rank 0 writes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    _add_input(p)
    p.add_argument(
        "--weights",
        metavar="W.pt",
        help="state dict to load (torch.load weights_only=True), or a checkpoint holding one",
    )
    p.add_argument("--limit", type=_count, help="use the first N images of the split")
    p.add_argument(
        "--split", default="test", choices=["train", "test"], help="dataset split (default test)"
    )
    p.add_argument(
        "-k", "--topk", type=_count, default=9, help="top-k images per neuron (default 9)"
    )
    p.add_argument("--step", type=_step, default=0, help="step number of the snapshot (default 0)")
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run directory to write")


def _train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a model, then save its weights and a snapshot",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    _add_input(p)
    p.add_argument("--epochs", type=_count, default=2)
    p.add_argument("--lr", type=_positive, default=0.05)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--momentum", type=_nonneg, default=0.9)
    p.add_argument("--weight-decay", type=_nonneg, default=5e-4)
    p.add_argument("--train-batch-size", type=_count, default=128)
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    p.add_argument("--no-norm", action="store_true", help="zoo VGG models without BatchNorm")
    p.add_argument("--limit", type=_count, help="train on the first N training images")
    p.add_argument("--test-limit", type=_count, help="evaluate on the first N test images")
    p.add_argument(
        "--analyze-limit",
        type=_count,
        default=2000,
        help="images of the final snapshot (default 2000)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--record", metavar="RUN_DIR", help="record live snapshots into RUN_DIR while training"
    )
    p.add_argument(
        "--every", type=_count, default=200, help="steps between recorded snapshots (default 200)"
    )
    p.add_argument(
        "--probe-size",
        type=_count,
        default=1000,
        help="test images in the recorded probe set (default 1000)",
    )
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR")


def _view_parser(sub: Any) -> None:
    p = sub.add_parser("view", help="open the interactive viewer on a run directory")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--follow", action="store_true", help="follow the run as new snapshots land")
    p.add_argument(
        "--compare", metavar="RUN_B",
        help="open a second run beside it (two models on the same data): run B's network, "
        "framing the layers the view shows, and the two compared group by group (neurons, "
        "clusters, near-duplicates, positive edges, CKA), as cnnvis compare prints them",
    )  # fmt: skip
    _add_window(p)
    p.add_argument(
        "--msaa", type=_nonneg_int, default=0, help="multisampling (default 0: shaders anti-alias)"
    )
    _add_theme(p)
    p.add_argument(
        "--screenshot-dir", metavar="DIR", help="where screenshots go (default RUN_DIR/screenshots)"
    )
    p.add_argument("--frames", type=_count, help="stop after N frames")


def _render_parser(sub: Any) -> None:
    p = sub.add_parser(
        "render",
        help="render a run's network view to PNG, SVG or PDF (headless, no display needed)",
        description="Render the network view headless. The format follows the suffix of -o: "
        ".png (OpenGL, EGL), or .svg / .pdf (vector: rows and frames as shapes, labels as text, "
        "edges as paths, patches as embedded images; the same view, sharp at any zoom, editable "
        "in Inkscape or Illustrator; zoomed in, the vector file keeps cluster edges where the PNG "
        "draws the neurons' edges).",
    )
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("-o", "--out", required=True, metavar="FILE.png|.svg|.pdf")
    p.add_argument("--step", type=_step, help="snapshot step (default: the latest)")
    p.add_argument(
        "--size",
        help="WIDTHxHEIGHT in pixels, up to 16384 (default 1920x1080, or the bookmark's)",
    )
    p.add_argument(
        "--facet",
        choices=["features", "matrix"],
        help="facet of every cluster (default: the saved layout's facets, else features)",
    )
    _add_theme(p, default=None)
    p.add_argument(
        "--bookmark",
        metavar="NAME",
        help="draw a view saved in the viewer's Bookmarks panel (RUN/bookmarks.json): its "
        "camera, size, theme, facet, edges, classes, expanded groups and selection; options "
        "given as well override it",
    )
    p.add_argument(
        "--classes", help="comma-separated class names to highlight (the rest is dimmed)"
    )
    p.add_argument(
        "--edges",
        type=float,
        help="fraction of strongest edges kept (default: the saved layout's, else 0.25)",
    )
    p.add_argument("-k", type=_count, help="clusters per group (default: chosen by silhouette)")
    p.add_argument("--expand", default="", help="comma-separated groups shown one row per layer")
    p.add_argument(
        "--collapse", default="", metavar="STAGES",
        help="comma-separated stages (modules holding several groups, e.g. layer3) shown as one row: "
        "their output, edges through them; 'all': every stage holding no other (`cnnvis info` lists them)",
    )  # fmt: skip
    p.add_argument(
        "--one-column",
        action="store_true",
        help="one row under the other, however long the network (default: a long network wraps"
        " into columns, read top-to-bottom, left-to-right, when that fills the picture better)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="ignore the clustering the viewer saved in RUN/layout.json (implied by -k/--expand)",
    )
    p.add_argument(
        "--camera",
        metavar="CX,CY,ZOOM",
        help="view centre in scene units and zoom in pixels per unit, e.g. --camera=-40,900,2"
        " (the viewer's Network > Copy render command writes it); default: the whole network",
    )
    p.add_argument(
        "--zoom-to",
        metavar="GROUP[:N]",
        help="frame a layer row, or its N-th cluster from the left (0-based); a module holding"
        " several groups (layer3 of a ResNet: as its breadcrumb in the viewer); or what the"
        " viewer's Find box finds: a module path (layer3.1.conv2), 'GROUP #N' (the"
        " cluster as the viewer names it, 1-based), a neuron's cluster (LAYER:CHANNEL with a"
        " module path)",
    )
    p.add_argument(
        "--no-neuron-edges",
        action="store_true",
        help="zoomed in, keep cluster edges instead of drawing the neurons' edges",
    )
    p.add_argument(
        "--no-annotations", action="store_true",
        help="leave out the callouts of RUN/annotations.json (the viewer's Notes panel)",
    )  # fmt: skip
    p.add_argument("--msaa", type=_nonneg_int, default=4, help="multisampling (default 4)")


def _video_parser(sub: Any) -> None:
    p = sub.add_parser(
        "video",
        help="render a guided tour of a run's bookmarks, or a time-lapse of its training, to MP4/GIF",
        description="Render a video headless (no display needed): --tour plays a tour of the "
        "bookmarks (RUN/tours/NAME.json, edited in the viewer's Tour panel or by hand; see "
        "docs/FORMAT.md); --timelapse shows every snapshot of the run in turn, clusters keeping "
        "their identity and morphing into the next step's, with the learning curves. The format follows the suffix of -o: .mp4 "
        "(H.264) or .gif (short loops).",
    )
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("-o", "--out", required=True, metavar="FILE.mp4|FILE.gif")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tour", metavar="NAME|FILE.json", help="a tour saved in RUN/tours/, or a tour file")
    what.add_argument("--timelapse", action="store_true", help="every snapshot in turn")
    p.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT in pixels (default 1280x720)")
    p.add_argument("--fps", type=_positive, default=30.0, help="frames per second (default 30)")
    p.add_argument("--gif", action="store_true", help="also write a GIF of it beside (talk.mp4 → talk.gif), for short loops")
    p.add_argument("--step", type=_step, help="--tour: the snapshot shown (default: the latest)")
    p.add_argument(
        "--fresh", action="store_true",
        help="--tour: ignore the clustering the viewer saved in RUN/layout.json",
    )  # fmt: skip
    p.add_argument(
        "--steps", help="--timelapse: comma-separated snapshot steps (default: all of them)"
    )
    p.add_argument("--hold", type=_nonneg, help="--timelapse: seconds on each snapshot (default 1)")
    p.add_argument("--morph", type=_nonneg, help="--timelapse: seconds of each morph to the next step (default 0.75)")
    p.add_argument("--facet", choices=["features", "matrix"], help="--timelapse: every cluster's facet (default features)")
    p.add_argument("--edges", type=float, help="--timelapse: fraction of strongest edges kept (default 0.25)")
    _add_theme(p)
    p.add_argument(
        "--no-annotations", action="store_true",
        help="leave out the callouts of RUN/annotations.json (the viewer's Notes panel)",
    )  # fmt: skip
    p.add_argument("--msaa", type=_nonneg_int, default=4, help="multisampling (default 4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _ablate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ablate",
        help="per-class accuracy with clusters or neurons of a run zeroed",
        description="Zero channels of the model (forward hooks on the layer's module) and measure"
        " the per-class accuracy and loss on the data against the unablated model, in the same"
        " pass.  The clusters are the run's as the viewer shows them (RUN/layout.json if saved).",
        epilog=EPILOG,
    )
    p.add_argument("run", metavar="RUN_DIR", help="the analysed run (its clusters)")
    p.add_argument(
        "--model",
        help="zoo model name or path/to/file.py:factory (default: what RUN_DIR/train.json of "
        "cnnvis train says, with RUN_DIR/weights.pt)",
    )
    p.add_argument("--weights", help="state dict (.pt) of the model the run was made of")
    p.add_argument(
        "--data", metavar="SPEC", help="dataset spec (see below; default: RUN_DIR/train.json's)"
    )
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=_count, help="use the first N images")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--neurons",
        metavar="SPEC,…",
        help="what to zero, comma-separated: a cluster 'conv3 #2' (as the viewer names it), a"
        " neuron 'conv3:17', or a whole layer 'conv3'",
    )
    what.add_argument(
        "--each-cluster", metavar="GROUP", help="zero each cluster of a layer in turn: a table"
    )
    p.add_argument("--step", type=_step, help="snapshot step of the clusters (default: latest)")
    _add_input(p)
    _add_device(p)
    p.add_argument("--batch-size", type=_count, default=256, help="batch size (default 256)")


def _info_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="print a model's layer groups, or a run's snapshots")
    p.add_argument("target", help="zoo model name, path/to/file.py:factory, or a run directory")
    p.add_argument(
        "--input-shape",
        help="C,H,W (default 3,32,32; a torchvision model's own size, e.g. 3,224,224)",
    )
    p.add_argument(
        "--lineage",
        metavar="GROUP",
        help="a run: how GROUP's clusters persist, split, merge, appear and dissolve from "
        "snapshot to snapshot (each snapshot clustered afresh, as the viewer does by default)",
    )
    p.add_argument(
        "--neuron",
        metavar="LAYER:N",
        help="a run: neuron N of a layer group or layer (e.g. conv3:17): its class means and, per "
        "class, the images of that class that activate it most (the matrix drill-down)",
    )
    p.add_argument("--class", dest="klass", metavar="NAME", help="with --neuron: one class only")
    p.add_argument(
        "--step", type=_step, help="with --neuron: the snapshot (default: the latest)"
    )
    p.add_argument(
        "-o", "--out", metavar="FILE.png",
        help="with --neuron: also save the crops, one row per class, strongest first",
    )  # fmt: skip


def _demo_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small CNN on CIFAR-10 while the viewer follows it live (the main job)",
        description=(
            "Train BaseCNN-x0.25 on CIFAR-10 (on a background thread, a snapshot every --every "
            "steps) while the viewer follows the run.  Without a display the viewer runs "
            "headless and saves screenshots into RUN_DIR/screenshots.  Without CIFAR-10 and "
            "without network, scikit-learn's bundled digits stand in (or ask for them: "
            "--data digits)."
        ),
    )
    p.add_argument(
        "--data",
        default="cifar10",
        metavar="SPEC",
        help="dataset spec, or 'digits' (default: cifar10 under $CNNVIS_DATA, downloaded "
        "when absent; the bundled digits when that fails)",
    )
    p.add_argument("-o", "--out", default="runs/demo", metavar="RUN_DIR")
    p.add_argument(
        "--steps", type=_count, default=600, help="training steps of 128 images (default 600)"
    )
    p.add_argument("--every", type=_count, default=20, help="steps between snapshots (default 20)")
    p.add_argument(
        "--probe", type=_count, default=500, help="test images of each snapshot (default 500)"
    )
    p.add_argument("--no-view", action="store_true", help="train and record only (no viewer)")
    _add_window(p)
    p.add_argument(
        "--pictures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="render features.png and matrix.png of the last snapshot (default on)",
    )
    _add_device(p)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cnnvis",
        description="Visual analytics of convolutional neural networks (CNNVis) for PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    ap.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error (cnnvis --debug COMMAND …)",
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for build, _run in COMMANDS.values():
        build(sub)
    return ap


def cmd_analyze(a: argparse.Namespace) -> int:
    """Under ``torchrun``: joins its process group; each rank analyses a shard of the images and
    rank 0 writes the snapshot."""
    from .stats.distributed import init_from_env

    joined = init_from_env()
    try:
        return _analyze(a)
    finally:
        if joined:
            import torch.distributed as dist

            dist.destroy_process_group()


def _analyze(a: argparse.Namespace) -> int:
    from . import analyze
    from .data import open_data
    from .data.inputs import parse_input_size, parse_normalize
    from .models import load_model
    from .stats.distributed import is_writer, rank_device, rank_world

    size_hw = parse_input_size(a.input_size, "--input-size")
    stats = parse_normalize(a.normalize, "--normalize")
    if a.model.startswith("torchvision:"):  # its natural input size and ImageNet statistics
        from .models.torchvision import natural

        nat = natural(a.model.partition(":")[2])
        if size_hw is None:
            size_hw = (nat["input_size"], nat["input_size"])
            if is_writer():
                print(f"input size {nat['input_size']} px (the architecture's own; --input-size to change)")
        if stats is None:
            stats = (tuple(nat["mean"]), tuple(nat["std"]))
    data = open_data(a.data, a.split)
    world = rank_world()[1]
    device = rank_device() if world > 1 and a.device is None else _device(a.device)
    model = load_model(a.model, a.weights, num_classes=len(data.classes)).to(device)
    t0 = time.perf_counter()
    snap = analyze(
        model,
        data,
        limit=a.limit,
        batch_size=a.batch_size,
        k=a.topk,
        progress=not a.quiet,
        model_name=a.model,
        input_size=size_hw,
        normalize=stats,
    )
    if snap is not None:  # rank 0 (or the only process)
        path = snap.save(a.out, a.step)
        ranks = f" on {world} ranks" if world > 1 else ""
        print(f"{snap} in {time.perf_counter() - t0:.1f} s{ranks}")
        if snap.meta.get("probe_error") is None and snap.n_images:
            print(
                "no probe loss or error: the model's output (the first tensor its forward() "
                f"returns) is not one score for each of the data's {len(snap.classes)} classes "
                "(features or an embedding, as self-supervised models return?); the neurons "
                "are measured all the same"
            )
        for line in _graph_notes(snap.graph):
            print(line)
        print(f"wrote {path}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from . import analyze
    from .models import build_model
    from .run.rebuild import save_trained
    from .train import TrainConfig

    train_data, test_data, size_hw = _train_data(a)
    kw: dict[str, Any] = {"norm": False} if a.no_norm else {}
    model = build_model(a.model, num_classes=len(train_data.classes), **kw).to(_device(a.device))
    if size_hw is not None:
        _check_input_size(model, a.model, test_data.image_shape)
    cfg = TrainConfig(
        epochs=a.epochs,
        batch_size=a.train_batch_size,
        optimizer=a.optimizer,
        lr=a.lr,
        momentum=a.momentum,
        weight_decay=a.weight_decay,
        augment=not a.no_augment,
        seed=a.seed,
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    hist = _train_recorded(a, model, train_data, test_data, cfg)
    save_trained(
        out,
        model,
        {
            "model": a.model,
            "no_norm": bool(a.no_norm),
            "data": a.data,
            "input_size": list(test_data.image_shape[1:]),
            "normalize": {"mean": list(test_data.mean), "std": list(test_data.std)},
            "config": vars(cfg),
            "epochs": hist.epochs,
        },
    )
    last = hist.epochs[-1] if hist.epochs else {}
    names = ("train_loss", "train_error", "test_loss", "test_error")
    snap = analyze(
        model,
        test_data,
        limit=a.analyze_limit,
        batch_size=a.batch_size,
        progress=not a.quiet,
        model_name=a.model,
        scalars={k: v for k, v in last.items() if k in names},
    )
    path = snap.save(out, hist.steps)
    print(f"wrote {out / 'weights.pt'} and {path}")
    return 0


def _train_data(a: argparse.Namespace) -> tuple[Any, Any, Any]:
    """``cmd_train``'s training and test sets, resized per batch to ``--input-size`` (training,
    evaluation, the recorded probe set and the final snapshot), and that size."""
    from .data import open_data
    from .data.inputs import fit_to_model, parse_input_size, parse_normalize

    size_hw = parse_input_size(a.input_size, "--input-size")
    stats = parse_normalize(a.normalize, "--normalize")
    train_data = open_data(a.data, "train")
    test_data = open_data(a.data, "test")
    if a.limit:
        train_data = train_data.subset(a.limit)
    if a.test_limit:
        test_data = test_data.subset(a.test_limit)
    return fit_to_model(train_data, size_hw, stats), fit_to_model(test_data, size_hw, stats), size_hw


def _train_recorded(a: argparse.Namespace, model: Any, train_data: Any, test_data: Any, cfg: Any):
    """Train, with ``--record RUN``: snapshots every ``--every`` steps and the learning curves."""
    from .train import train

    rec = None
    if a.record:
        from .run.recorder import Recorder

        rec = Recorder(
            model, test_data, a.record, every=a.every, max_images=a.probe_size, model_name=a.model
        )
        rec.record(rec.start_step)
    on_step = on_epoch = None
    if rec is not None:

        def on_step(s: int, loss: float) -> None:
            rec.step(s, train_loss=loss)

        def on_epoch(e: int, r: dict) -> None:
            rec.log(r["step"], test_loss=r["test_loss"], test_error=r["test_error"])

    try:
        return train(
            model,
            train_data,
            test_data,
            cfg,
            progress=not a.quiet,
            on_step=on_step,
            on_epoch=on_epoch,
        )
    finally:
        if rec is not None:
            rec.close()


def _check_input_size(model: Any, name: str, shape: tuple[int, int, int]) -> None:
    """One line instead of a traceback mid-training when ``model`` cannot take ``--input-size``."""
    import torch

    from .errors import CnnvisError

    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=dev))
    except Exception as e:  # noqa: BLE001 - whatever the model raises on that shape
        msg = f"{type(e).__name__}: {e}".replace("\n", " ")
        raise CnnvisError(
            f"--input-size {shape[1]}x{shape[2]}: {name} fails on an input of that size ({msg})"
        ) from None
    finally:
        model.train(was)


def _size(text: str) -> tuple[int, int]:
    from .errors import CnnvisError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CnnvisError(f"--size {text!r}: use WIDTHxHEIGHT, e.g. 3840x2160") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise CnnvisError(f"--size {text!r}: each side must be between 16 and 16384 pixels")
    return w, h


def cmd_view(a: argparse.Namespace) -> int:
    from .ui import run_app

    run_app(
        a.run,
        follow=a.follow,
        headless=a.headless,
        size=_size(a.size),
        msaa=a.msaa,
        screenshot_dir=a.screenshot_dir,
        max_frames=a.frames,
        theme=a.theme,
        compare=a.compare,
    )
    return 0


def cmd_ablate(a: argparse.Namespace) -> int:
    from . import open_run
    from .model.graph import channel_layouts
    from .stats.ablation import ablate

    run = open_run(a.run)
    snap = run.snapshot(a.step) if a.step is not None else run.latest()
    scene = _run_scene(a.run, snap)
    if a.each_cluster:
        sets, labels = _each_cluster(scene, a.each_cluster)
    else:
        sets, labels = [_ablation_set(scene, snap, a.neurons)], [a.neurons]
    model, data = _ablation_model_and_data(a, run)
    model = model.to(_device(a.device))
    t0 = time.perf_counter()
    watch = {u.name: u.tap for u in snap.graph.units}
    try:
        results = ablate(
            model, data.batches(a.batch_size), sets, len(data.classes), watch=watch,
            layouts=channel_layouts(snap.graph),
        )  # fmt: skip
    except ValueError as e:
        from .errors import CnnvisError

        raise CnnvisError(f"ablate: {e}") from None
    print(f"{len(data)} images of {data.name}, {len(sets)} ablation(s) in {time.perf_counter() - t0:.1f} s")
    print(_ablation_table(data.classes, results, labels, sets))
    if len(results) == 1 and results[0].change:  # how far the effect reaches
        moved = [(u.name, float(results[0].change[u.name].mean())) for u in snap.graph.units
                 if u.name in results[0].change]  # fmt: skip
        print("responses moved (mean |change| / the layer's mean response): "
              + ", ".join(f"{u} {v:.1%}" for u, v in moved if v > 0))  # fmt: skip
    return 0


def _ablation_model_and_data(a: argparse.Namespace, run: Any) -> tuple[Any, Any]:
    """``cnnvis ablate``'s model and images: as given, else as the run's train.json says."""
    from .data import open_data
    from .data.inputs import fit_to_model, parse_input_size, parse_normalize
    from .errors import CnnvisError
    from .models import load_model
    from .run.rebuild import rebuild_model, train_record

    rec = train_record(a.run)
    spec = a.data or rec.get("data")
    if not isinstance(spec, str):
        raise CnnvisError(f"--data is needed: {a.run} does not name its data (no train.json)")
    data = open_data(spec, a.split)
    if a.limit:
        data = data.subset(a.limit)
    size_hw = parse_input_size(a.input_size, "--input-size")
    stats = parse_normalize(a.normalize, "--normalize")
    if a.model is None:
        model, why = rebuild_model(a.run, len(run.classes))
        if model is None:
            raise CnnvisError(f"--model is needed: {why}")
        norm = rec.get("normalize") or {}
        if size_hw is None and rec.get("input_size"):
            size_hw = tuple(rec["input_size"])
        if stats is None and "mean" in norm and "std" in norm:
            stats = (tuple(norm["mean"]), tuple(norm["std"]))
    else:
        model = load_model(a.model, a.weights, num_classes=len(data.classes))
    return model, fit_to_model(data, size_hw, stats)


def _run_scene(run_dir: str, snap: Any) -> Any:
    """The scene the viewer shows for ``snap``: with RUN/layout.json's edits if saved."""
    from .layout import build_scene
    from .ui.edits import build_with_edits, load_edits

    try:
        edits = load_edits(run_dir)
    except ValueError as e:  # the clusters are still the snapshot's own
        print(f"{e}: ignored, clustered afresh", file=sys.stderr)
        edits = None
    return build_with_edits(snap, edits).scene if edits is not None else build_scene(snap)


def _ablation_set(scene: Any, snap: Any, spec: str) -> dict[str, list[int]]:
    """``--neurons``: module path → channels, from clusters, neurons and whole layers."""
    import numpy as np

    from .errors import CnnvisError
    from .layout.search import search

    groups = {g.name: list(g.units) for g in snap.graph.groups}
    out: dict[str, set[int]] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        hits = search(scene, part, (), groups, limit=1)
        if not hits or (hits[0].kind == "row" and hits[0].label != f"layer {part}"):
            raise CnnvisError(f"--neurons: {part!r} is no cluster, neuron or layer of the run")
        hit = hits[0]
        n = scene.neurons
        if hit.kind == "row":
            members = np.flatnonzero(scene.clusters.row[n.cluster] == hit.index)
        elif hit.kind == "cluster":
            members = np.flatnonzero(n.cluster == hit.index)
        else:
            members = np.array([hit.index])
        for i in members:
            out.setdefault(scene.units[int(n.unit[i])], set()).add(int(n.index[i]))
    if not out:
        raise CnnvisError("--neurons: nothing to zero")
    return {u: sorted(c) for u, c in out.items()}


def _each_cluster(scene: Any, group: str) -> tuple[list[dict[str, list[int]]], list[str]]:

    from .errors import CnnvisError
    from .layout.search import row_clusters

    rows = [k for k, r in enumerate(scene.rows) if r.name == group]
    if not rows:
        names = [r.name for r in scene.rows if not r.name.startswith("between:")]
        raise CnnvisError(f"--each-cluster: no layer {group!r} (layers: {', '.join(names)})")
    c, n = scene.clusters, scene.neurons
    idx = row_clusters(scene, rows[0])
    unit = scene.rows[rows[0]].unit
    sets = [{unit: sorted(int(v) for v in n.index[n.cluster == ci])} for ci in idx]
    labels = [f"{group} #{k + 1} ({int(c.size[ci])})" for k, ci in enumerate(idx)]
    return sets, labels


def _ablation_table(classes: list[str], results: list[Any], labels: list[str], sets: list) -> str:
    """One result: class × (accuracy, ablated, drop); several: set × class accuracy drop."""
    if len(results) == 1:
        r = results[0]
        zeroed = ", ".join(f"{u}: {len(c)} channel(s)" for u, c in sets[0].items())
        lines = [f"zeroed {zeroed}", f"{'class':<14}{'images':>7}{'accuracy':>10}{'ablated':>9}{'drop':>8}"]
        for k, name in enumerate(classes):
            lines.append(
                f"{name:<14}{int(r.count[k]):>7}{r.accuracy_base[k]:>10.1%}{r.accuracy[k]:>9.1%}"
                f"{r.drop[k]:>+8.1%}"
            )
        b, ab = r.overall
        lines.append(f"{'all':<14}{int(r.count.sum()):>7}{b:>10.1%}{ab:>9.1%}{b - ab:>+8.1%}")
        return "\n".join(lines)
    short = [c[:6] for c in classes]
    width = max(len(x) for x in labels) + 2
    lines = ["accuracy drop per class (percentage points) with each cluster zeroed",
             f"{'cluster':<{width}}" + "".join(f"{c:>7}" for c in short) + f"{'all':>7}"]  # fmt: skip
    for label, r in zip(labels, results, strict=True):
        b, ab = r.overall
        cells = "".join(f"{100 * d:>+7.1f}" for d in r.drop)
        lines.append(f"{label:<{width}}{cells}{100 * (b - ab):>+7.1f}")
    return "\n".join(lines)


def cmd_render(a: argparse.Namespace) -> int:
    from dataclasses import replace

    from . import open_run
    from .errors import CnnvisError
    from .layout import LayoutOptions, build_scene
    from .layout.scene import FACET_FEATURES, FACET_MATRIX
    from .ui.edits import LAYOUT_FILE, build_with_edits, load_edits

    run = open_run(a.run)
    snap = run.snapshot(a.step) if a.step is not None else run.latest()
    mark = _apply_bookmark(a) if a.bookmark else None
    size = _size(a.size or "1920x1080")
    groups = {g.name for g in snap.graph.groups}
    expand = {g for g in a.expand.split(",") if g}
    if expand - groups:
        raise CnnvisError(
            f"--expand: no group {sorted(expand - groups)[0]!r} (groups: {', '.join(sorted(groups))})"
        )
    collapse = _collapse_arg(a.collapse, snap.graph)
    selection = None
    if a.classes:
        names = [c.strip() for c in a.classes.split(",") if c.strip()]
        unknown = [c for c in names if c not in snap.classes]
        if unknown:
            raise CnnvisError(
                f"--classes: unknown class {unknown[0]!r} (classes: {', '.join(snap.classes)})"
            )
        selection = {"classes": [snap.classes.index(c) for c in names]}
    if a.edges is not None and not 0.0 < a.edges <= 1.0:
        raise CnnvisError(f"--edges {a.edges}: use a fraction in (0, 1]")
    edits = None
    if not (a.fresh or a.k is not None or ((expand or collapse) and mark is None)):
        try:
            edits = load_edits(a.run)
        except ValueError as e:
            raise CnnvisError(f"{e} (use --fresh to ignore it)") from None
    if edits is not None and mark is not None:
        edits = replace(edits, expanded=frozenset(expand), collapsed=collapse)
    # a long network wraps into columns filling the picture; --one-column keeps the chain
    # (a bookmark's camera is in the layout of the view it was taken in)
    shape = mark.size if mark is not None else size
    view = None if a.one_column else (int(shape[0]), int(shape[1]))
    t0 = time.perf_counter()
    if edits is not None:
        if a.edges is not None:
            edits = replace(edits, edge_fraction=a.edges)
        fraction = edits.edge_fraction
        if a.facet is not None:
            facet = FACET_MATRIX if a.facet == "matrix" else FACET_FEATURES
            edits = replace(edits, facet=facet, facets={})
        scene = build_with_edits(snap, edits, LayoutOptions(view_size=view)).scene
        print(f"using the viewer's layout {Path(a.run) / LAYOUT_FILE} (--fresh to ignore it)")
    else:
        fraction = 0.25 if a.edges is None else a.edges
        facet = FACET_MATRIX if a.facet == "matrix" else FACET_FEATURES
        options = LayoutOptions(
            k=a.k,
            expanded=frozenset(expand),
            collapsed=collapse,
            facet=facet,
            edge_fraction=fraction,
            view_size=view,
        )
        scene = build_scene(snap, options)
    from .layout.hierarchy import stage_groups

    groups = {g.name: list(g.units) for g in snap.graph.groups}
    camera = _render_camera(a, scene, size, groups, stage_groups(snap.graph))
    if mark is not None:
        selection = _bookmark_selection(mark, scene, selection)
    from .run.annotations import load_annotations

    notes = [] if a.no_annotations else load_annotations(a.run)
    if Path(a.out).suffix.lower() in (".svg", ".pdf"):  # vector: text, paths, embedded patches
        from .render.vector import write_vector

        try:
            path = write_vector(snap, scene, a.out, size, camera, a.theme or "dark", selection, notes)
        except ValueError as e:
            raise CnnvisError(str(e)) from None
    else:
        from .render.offscreen import render_png

        path = render_png(
            snap,
            scene,
            a.out,
            size=size,
            camera=camera,
            theme=a.theme or "dark",
            selection=selection,
            msaa=a.msaa,
            annotations=notes,
            neuron_edges=None if a.no_neuron_edges else fraction,
        )
    print(
        f"rendered {snap} ({len(scene.clusters.size)} clusters) to {path} in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _apply_bookmark(a: argparse.Namespace) -> Any:
    """``--bookmark NAME``: fill the options not given on the command line from the saved
    view; the camera keeps the bookmark's view filling the picture."""
    from .errors import CnnvisError
    from .run.bookmarks import BOOKMARKS_FILE, load_bookmarks

    marks = {b.name: b for b in load_bookmarks(a.run)}
    mark = marks.get(a.bookmark)
    if mark is None:
        have = ", ".join(repr(n) for n in marks) or "none saved yet"
        raise CnnvisError(f"--bookmark {a.bookmark!r}: no such bookmark in {a.run}/{BOOKMARKS_FILE} ({have})")
    if a.camera or a.zoom_to:
        raise CnnvisError("--bookmark sets the camera: leave out --camera and --zoom-to")
    a.size = a.size or f"{mark.size[0]}x{mark.size[1]}"
    cx, cy, zoom = mark.camera_for(_size(a.size))  # the same part of the scene, fitted
    a.camera = f"{cx!r},{cy!r},{zoom!r}"
    a.theme = a.theme or mark.theme
    a.facet = a.facet or mark.facet
    a.edges = mark.edge_fraction if a.edges is None else a.edges
    a.classes = a.classes or ",".join(mark.classes)
    a.expand = a.expand or ",".join(mark.expanded)
    a.collapse = a.collapse or ",".join(mark.collapsed)
    return mark


def _collapse_arg(text: str, graph: Any) -> frozenset[str]:
    """``--collapse``'s stages (``all``: the innermost), or a clear error naming the stages."""
    from .errors import CnnvisError
    from .layout.hierarchy import innermost_stages, stages

    want = {s.strip() for s in text.split(",") if s.strip()}
    if want == {"all"}:
        return frozenset(innermost_stages(graph))
    known = stages(graph)
    unknown = sorted(want - set(known))
    if unknown:
        listed = ", ".join(known) if known else "none: no module holds several groups"
        raise CnnvisError(f"--collapse: no stage {unknown[0]!r} (stages: {listed})")
    return frozenset(want)


def _bookmark_selection(mark: Any, scene: Any, selection: dict | None) -> dict | None:
    """The bookmark's selected cluster and neuron as the renderer's indices (if still there)."""
    from .layout.selection import saved_selection

    out = saved_selection(scene, (), mark.cluster, mark.neuron) or {}
    return {**(selection or {}), **out} or None


def _render_camera(
    a: argparse.Namespace,
    scene: Any,
    size: tuple[int, int],
    groups: dict[str, list[str]],
    stages: dict[str, list[str]] | None = None,
) -> object:
    """The camera of ``--camera`` / ``--zoom-to`` (``"fit"`` without them; ``groups``: each
    group's module paths, for ``--zoom-to`` a module path; ``stages``: each stage's groups,
    for a stage that is no module, such as ``inception4``)."""
    import numpy as np

    from .errors import CnnvisError
    from .layout.scene import ROW_BETWEEN
    from .layout.search import groups_frame, row_clusters, row_frame
    from .render.camera import Camera
    from .render.text import frame_with_labels

    if a.camera and a.zoom_to:
        raise CnnvisError("--camera and --zoom-to: give one of them")
    if a.camera:
        try:
            cx, cy, zoom = (float(v) for v in a.camera.split(","))
        except ValueError:
            raise CnnvisError(f"--camera {a.camera!r}: use CX,CY,ZOOM, e.g. 120,900,1.5") from None
        if not (np.isfinite([cx, cy, zoom]).all() and zoom > 0):
            raise CnnvisError(f"--camera {a.camera!r}: the zoom must be a positive number")
        return Camera((cx, cy), zoom)
    if not a.zoom_to:
        return "fit"
    name, _, n = a.zoom_to.partition(":")
    rows = {r.name: k for k, r in enumerate(scene.rows) if r.kind != ROW_BETWEEN}
    if name not in rows:  # what the viewer's Find box finds: a module path, 'conv3 #2', …
        from .layout.search import search

        hits = search(scene, a.zoom_to, (), groups, stages=stages)
        hit = next((h for h in hits if h.kind != "class"), None)
        if hit is None:
            raise CnnvisError(
                f"--zoom-to: no row {name!r} (rows: {', '.join(rows)}; or a module path, a"
                " cluster as the viewer names it, e.g. 'conv3 #2', or a neuron, e.g. conv3:17)"
            )
        if hit.kind == "module":  # a module holding several groups, as its breadcrumb frames it
            box = groups_frame(scene, list(groups), list(hit.groups))
            return frame_with_labels(scene.labels, box, size, 0.04)
        if hit.kind == "row":
            return frame_with_labels(scene.labels, row_frame(scene, hit.index), size, 0.04)
        ci = hit.index if hit.kind == "cluster" else int(scene.neurons.cluster[hit.index])
        x, y, w, h = (float(v) for v in scene.clusters.rect[ci])  # a neuron: its cluster
        return Camera().zoom_to_rect((x, y, x + w, y + h), size, 0.12)
    if not n:  # the row with its name, as the viewer frames it
        return frame_with_labels(scene.labels, row_frame(scene, rows[name]), size, 0.04)
    idx = row_clusters(scene, rows[name])
    if not n.isdigit() or int(n) >= len(idx):
        raise CnnvisError(f"--zoom-to {a.zoom_to!r}: row {name!r} has clusters 0…{len(idx) - 1}")
    x, y, w, h = (float(v) for v in scene.clusters.rect[idx[int(n)]])
    return Camera().zoom_to_rect((x, y, x + w, y + h), size, 0.12)


def cmd_video(a: argparse.Namespace) -> int:
    from .errors import CnnvisError
    from .video import check_video_args, timelapse_video, tour_video

    size = _size(a.size)
    check_video_args(size, a.fps)
    if a.tour:
        for flag in ("steps", "facet", "edges", "hold", "morph"):
            if getattr(a, flag) is not None:
                raise CnnvisError(f"--{flag} belongs to --timelapse (a tour takes its looks from its bookmarks)")
        res = tour_video(a.run, a.tour, a.out, size=size, fps=a.fps, msaa=a.msaa, step=a.step,
                         fresh=a.fresh, progress=not a.quiet, annotations=not a.no_annotations, gif=a.gif)  # fmt: skip
    else:
        if a.step is not None or a.fresh:
            raise CnnvisError("--step and --fresh belong to --tour (a time-lapse shows every step)")
        edges = 0.25 if a.edges is None else a.edges
        if not 0.0 < edges <= 1.0:
            raise CnnvisError(f"--edges {a.edges}: use a fraction in (0, 1]")
        steps = None
        if a.steps:
            try:
                steps = [int(v) for v in a.steps.split(",") if v.strip()]
            except ValueError:
                raise CnnvisError(f"--steps {a.steps!r}: use comma-separated steps, e.g. 0,100,200") from None
        res = timelapse_video(
            a.run, a.out, size=size, fps=a.fps, theme=a.theme, facet=a.facet or "features",
            hold=1.0 if a.hold is None else a.hold, morph=0.75 if a.morph is None else a.morph,
            edge_fraction=edges, steps=steps, msaa=a.msaa, progress=not a.quiet,
            annotations=not a.no_annotations, gif=a.gif,
        )  # fmt: skip
    print(f"wrote {res}")
    return 0


def _print_lineage(run: Any, group: str) -> int:
    from .errors import CnnvisError
    from .layout.lineage import cluster_lineage

    names = [g.name for g in run.graph.groups]
    if group not in names:
        raise CnnvisError(f"--lineage {group!r}: no such layer group (groups: {', '.join(names)})")
    print(cluster_lineage(run, group).text())
    return 0


def _print_neuron(run: Any, a: argparse.Namespace) -> int:
    """``cnnvis info RUN --neuron LAYER:N [--class NAME] [-o crops.png]``."""
    from .errors import CnnvisError

    snap = run.snapshot(a.step) if a.step is not None else run.latest()
    layer, _, n = a.neuron.rpartition(":")
    names = [g.name for g in snap.graph.groups] + [u.name for u in snap.graph.units]
    if layer not in names or not n.isdigit():
        raise CnnvisError(
            f"--neuron {a.neuron!r}: use LAYER:N with a layer group or layer of the run "
            f"({', '.join(g.name for g in snap.graph.groups)}) and a neuron number"
        )
    unit = snap.unit_name(layer)
    channels = snap.graph.unit(unit).channels
    if int(n) >= channels:
        raise CnnvisError(f"--neuron {a.neuron!r}: {layer} has neurons 0…{channels - 1}")
    classes = list(range(len(snap.classes)))
    if a.klass is not None:
        if a.klass not in snap.classes:
            raise CnnvisError(f"--class {a.klass!r}: the classes are {', '.join(snap.classes)}")
        classes = [snap.classes.index(a.klass)]
    means = snap.activations(unit)[int(n)]
    print(f"neuron {n} of {layer} ({unit}) at step {snap.step}, {snap.n_images} probe images")
    if not snap.has_class_topk(unit):
        print("  this snapshot keeps no per-class top images (analyse the model again)")
    rows = []
    for c in classes:
        line = f"  {snap.classes[c]:<12} mean {float(means[c]):9.4g}"
        if snap.has_class_topk(unit):
            crops, values, index = snap.class_patches(unit, int(n), c, size=64)
            line += "   top: " + ", ".join(
                f"image {int(i)} ({float(v):.4g})" for i, v in zip(index, values, strict=True)
            )
            rows.append(crops)
        print(line)
    if a.out and rows:
        import numpy as np
        from PIL import Image

        from .ui.pictures import image_grid

        k = max(len(r) for r in rows)
        pix = np.zeros((len(rows) * k, 64, 64, 3), np.uint8)
        for j, r in enumerate(rows):
            pix[j * k : j * k + len(r)] = r
        Image.fromarray(image_grid(pix, 64, 4, (255, 255, 255), cols=k)).save(a.out)
        print(f"wrote {a.out} (one row per class: {', '.join(snap.classes[c] for c in classes)})")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    target = Path(a.target)
    if target.is_dir():
        from . import open_run

        run = open_run(target)
        if a.lineage:
            return _print_lineage(run, a.lineage)
        if a.neuron:
            return _print_neuron(run, a)
        print(run)
        print(run.graph.summary())
        print(_stages_text(run.graph))
        print(_capture_text(run.graph.capture))
        for line in _graph_notes(run.graph):
            print(line)
        steps = run.steps()
        for step in steps:
            print(f"  step {step}: {run.snapshot(step)}")
        if steps:
            from .analysis.diagnose import diagnose

            flags = diagnose(run.snapshot(steps[-1]))
            print(f"debugging flags at step {steps[-1]}: {len(flags) or 'none'}")
            for f in flags:
                print(f"  [{f.kind}] {f.group}: {f.message}")
        return 0
    from .errors import CnnvisError
    from .model import build_graph
    from .models import build_model

    for flag, given in (("--lineage", a.lineage), ("--neuron", a.neuron)):
        if given:
            raise CnnvisError(f"{flag} needs a run directory; {a.target!r} is not one")
    if a.input_shape:
        try:
            shape = tuple(int(s) for s in a.input_shape.split(","))
        except ValueError:
            raise CnnvisError(
                f"--input-shape {a.input_shape!r}: use C,H,W, e.g. 3,224,224"
            ) from None
    elif a.target.startswith("torchvision:"):
        from .models.torchvision import natural

        size = natural(a.target.partition(":")[2])["input_size"]
        shape = (3, size, size)
    else:
        shape = (3, 32, 32)
    graph = build_graph(build_model(a.target), shape)
    print(graph.summary())
    print(_stages_text(graph))
    print(
        f"{len(graph.groups)} groups, {len(graph.units)} units, {graph.num_neurons} neurons; "
        f"input {'x'.join(map(str, shape))}; {_capture_text(graph.capture)}"
    )
    for line in _graph_notes(graph):
        print(line)
    return 0


def _stages_text(graph: Any) -> str:
    """The stages (modules holding several groups) for ``render --collapse``, one line."""
    from .layout.hierarchy import stages

    found = stages(graph)
    if not found:
        return "stages: none (no module holds several groups)"
    names = [g.name for g in graph.groups]
    parts = [f"{p} ({names[i[0]]}–{names[i[-1]]})" for p, i in found.items()]
    return "stages (render --collapse, the Controls panel): " + ", ".join(parts)


def _graph_notes(graph: Any, shown: int = 3) -> list[str]:
    """What the graph reads in its own way (docs/GRAPH.md), a line each: the gate branches left
    out, the attention layers, the per-sample (dynamic) convolutions; how many, the first few."""

    def first(names: list[str]) -> str:
        more = f", … ({len(names) - shown} more)" if len(names) > shown else ""
        return ", ".join(names[:shown]) + more

    lines = []
    gates, attentions = graph.left_out_kinds()
    if n := len(gates):
        lines.append(
            f"{n} gate branch{'es' * (n > 1)} left out (computed from tensors that are no maps; "
            f"each gate counts as 1, the gated maps keep their channels: docs/GRAPH.md): "
            f"{first(gates)}"
        )
    if n := len(attentions):
        lines.append(
            f"{n} attention layer{'s' * (n > 1)}: each value channel mixed over the positions "
            "by weights from the data, which are left out (queries and keys weigh, they carry "
            "no channels); every position after sees the whole image (docs/GRAPH.md): "
            f"{first(attentions)}"
        )
    dynamic = [lay.name for lay in graph.layers if lay.params.get("per_sample")]
    if n := len(dynamic):
        lines.append(
            f"{n} per-sample (dynamic) convolution{'s' * (n > 1)}: each image measured with its "
            "own kernels; their weights are the kernels the zero image gets, their attention's "
            f"layers dropped (docs/GRAPH.md): {first(dynamic)}"
        )
    return lines


def _capture_text(capture: str) -> str:
    if capture == "forward":
        return "captured from one forward pass (module hooks + torch functions)"
    return "captured with torch.fx (an older cnnvis_gl)" if not capture else f"capture: {capture}"


def _compare_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two runs group by group: redundancy, inhibition, clusters, CKA",
        description="Compare the latest snapshots of two runs (two models on the same data): "
        "matched layer groups (same name, else relative depth), their neurons and clusters, the "
        "share of neurons with a near-duplicate class profile (redundant), the share of "
        "positive weights among the strongest edges into the group (positive edges; ~100%%: no "
        "inhibition), and linear CKA between the two models' responses to the same probe "
        "images (needs runs made by cnnvis train, which record how to rebuild their model).",
    )
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--data", metavar="SPEC", help="probe images for CKA (default: run A's "
                   "training data spec, test split)")  # fmt: skip
    p.add_argument("--limit", type=_count, default=500, help="probe images for CKA (default 500)")
    p.add_argument("--no-cka", action="store_true", help="skip CKA (no models are run)")
    p.add_argument(
        "--figure", metavar="FILE.png",
        help="also draw the two networks side by side, each matched pair of layer rows next to "
        "each other under its numbers, both at one scale (headless)",
    )  # fmt: skip
    p.add_argument("--width", type=_count, default=1800, help="--figure's width (default 1800)")
    _add_theme(p, default="light")
    _add_device(p)


def cmd_compare(a: argparse.Namespace) -> int:
    from . import open_run
    from .compare import compare_runs, table
    from .run.rebuild import rebuild_model, rebuild_probe

    runs = (open_run(a.run_a), open_run(a.run_b))
    models: list[Any] = [None, None]
    data = None
    if not a.no_cka:
        why = []
        for k, path in enumerate((a.run_a, a.run_b)):
            models[k], reason = rebuild_model(path, len(runs[k].classes))
            if reason:
                why.append(reason)
        # the images as run A's model was trained on them: size, normalisation
        data = None if why else rebuild_probe(a.run_a, a.limit, a.data)
        if data is None:
            print("no CKA: " + ("; ".join(why) or "give the probe images with --data"))
            models = [None, None]
        else:
            models = [m.to(_device(a.device)) for m in models]
    rows = compare_runs(runs[0], runs[1], data=data, models=(models[0], models[1]))
    print(table(rows, str(a.run_a), str(a.run_b)))
    if data is not None:
        print(f"CKA: linear, on each neuron's spatial-max response to {len(data)} images of {data.name}")
    if a.figure:
        print(f"wrote {_compare_figure(a, runs, rows)}")
    return 0


def _compare_figure(a: argparse.Namespace, runs: Any, rows: Any) -> Path:
    """``cnnvis compare --figure``: both networks (one column, clustered afresh) side by side."""
    from .layout import build_scene
    from .render.comparison import compare_figure

    snaps = [r.latest() for r in runs]
    scenes = [build_scene(s) for s in snaps]

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.0%}"

    captions = [
        f"{r.a} ↔ {r.b}:  neurons {r.neurons[0]} / {r.neurons[1]} · clusters {r.clusters[0]} / "
        f"{r.clusters[1]} · near-duplicates {pct(r.redundancy[0])} / {pct(r.redundancy[1])} · "
        f"positive edges {pct(r.positive[0])} / {pct(r.positive[1])}"
        + ("" if r.cka is None else f" · CKA {r.cka:.2f}")
        for r in rows
    ]
    titles = []
    for k, (path, snap) in enumerate(zip((a.run_a, a.run_b), snaps, strict=True)):
        name, model = Path(path).name, str(snap.meta.get("model", "?"))
        titles.append(f"{'AB'[k]}: {name}" + ("" if model == name else f" ({model})"))
    return compare_figure(snaps, scenes, [(r.a, r.b) for r in rows], titles, captions, a.figure,
                          width=a.width, theme=a.theme)  # fmt: skip


def _study_parser(sub: Any) -> None:
    from .study import PROFILES

    lines = []
    for study, profiles in PROFILES.items():
        for name, r in profiles.items():
            lines.append(
                f"  {study:<6} {name:<5} {', '.join(r.variants)}; {r.limit or 'all'} training images,"
                f" {r.epochs} epochs{'' if r.augment else ', no augmentation'}"
            )
    p = sub.add_parser(
        "study",
        help="reproduce the paper's case studies: depth (Shallow/Base/DeepCNN) or width (BaseCNN×w)",
        description="Train the variants of one of the paper's case studies with the same recipe, "
        "then measure and draw them: OUT/MODEL is each variant's run (open it with cnnvis view), "
        "OUT/results.md the table (train/test error, clusters, redundancy per group, positive "
        "share of the strongest edges per layer pair) with the findings stated from the numbers, "
        "OUT/figures the pictures. Stopped and started again, a study keeps the variants it "
        "already trained with the same recipe. See docs/CASES.md.",
        epilog="profiles:\n" + "\n".join(lines) + "\n(cpu: about an hour each on 2 cores;"
        " full: for a CUDA machine)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", choices=list(PROFILES), help="which study")
    p.add_argument("--data", required=True, metavar="SPEC", help="CIFAR-10 spec, e.g. cifar10:DIR")
    p.add_argument("--profile", default="cpu", choices=["cpu", "full"], help="default cpu")
    p.add_argument("--variants", metavar="M1,M2,…", help="zoo models instead of the profile's")
    p.add_argument("--epochs", type=_count, help="instead of the profile's")
    p.add_argument("--limit", type=_count, help="training images (instead of the profile's)")
    p.add_argument("--test-limit", type=_count, help="test images (instead of the profile's)")
    p.add_argument("--probe-size", type=_count, help="test images in each variant's snapshot")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-figures", action="store_true", help="tables only (no rendering)")
    _add_device(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-o", "--out", required=True, metavar="DIR")


def cmd_study(a: argparse.Namespace) -> int:
    from .errors import CnnvisError
    from .models import model_names
    from .study import run_study

    over: dict[str, Any] = {}
    if a.variants:
        names = tuple(v.strip() for v in a.variants.split(",") if v.strip())
        unknown = [v for v in names if v not in model_names()]
        if unknown or not names:
            raise CnnvisError(
                f"--variants: unknown model {unknown[0] if unknown else a.variants!r} "
                f"(zoo: {', '.join(model_names())})"
            )
        over["variants"] = names
    for field, value in (("epochs", a.epochs), ("limit", a.limit), ("test_limit", a.test_limit),
                         ("probe", a.probe_size), ("seed", a.seed)):  # fmt: skip
        if value is not None:
            over[field] = value
    run_study(
        a.study, a.out, a.data, profile=a.profile, overrides=over, device=_device(a.device),
        figures=not a.no_figures, progress=not a.quiet,
    )  # fmt: skip
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    run_demo(
        DemoConfig(
            out=Path(a.out),
            data=a.data,
            steps=a.steps,
            every=a.every,
            probe=a.probe,
            view=not a.no_view,
            headless=a.headless,
            size=_size(a.size),
            pictures=a.pictures,
            device=a.device,
        )
    )
    return 0


#: Every command: its parser builder and what runs it, in the order ``cnnvis --help`` lists
#: them.  A new command is one ``_NAME_parser(sub)``, one ``cmd_NAME(args) -> int`` and one line
#: here (shared option groups: ``_add_common``, ``_add_input``, ``_add_window``, …).
COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "analyze": (_analyze_parser, cmd_analyze),
    "train": (_train_parser, cmd_train),
    "view": (_view_parser, cmd_view),
    "render": (_render_parser, cmd_render),
    "info": (_info_parser, cmd_info),
    "ablate": (_ablate_parser, cmd_ablate),
    "compare": (_compare_parser, cmd_compare),
    "study": (_study_parser, cmd_study),
    "video": (_video_parser, cmd_video),
    "demo": (_demo_parser, cmd_demo),
}


#: The viewer's background threads (cnnvis_gl.ui.jobs.Worker): pure computation (layouts,
#: patches); what they save is written atomically.
_VIEWER_THREADS = ("cnnvis-layout", "cnnvis-pictures")


def main(argv: list[str] | None = None) -> int:
    rc = _main(argv)
    if argv is None:  # the `cnnvis` command itself, not a caller passing its arguments
        _exit_if_busy(rc)
    return rc


def _exit_if_busy(rc: int) -> None:
    """Leave at once when a viewer thread still computes — the layout of a big network when
    its window is closed: left to the interpreter's exit, a thread inside torch or BLAS aborts
    the process ("terminate called without an active exception", a core dump)."""
    if any(t.is_alive() and t.name in _VIEWER_THREADS for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def _main(argv: list[str] | None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    if a.version:
        from . import __version__

        print(__version__)
        return 0
    if not a.command:
        ap.print_help()
        return 2
    from .errors import CnnvisError

    try:
        return COMMANDS[a.command][1](a)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnvis info RUN | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except Exception as e:  # one line for the user; the traceback with --debug
        if a.debug:
            import traceback

            traceback.print_exc()
        first = (str(e).splitlines() or [""])[0]
        if isinstance(e, CnnvisError):
            print(f"cnnvis {a.command}: error: {first}", file=sys.stderr)
            return 2
        print(
            f"cnnvis {a.command}: error: {type(e).__name__}: {first}"
            + ("" if a.debug else " (cnnvis --debug … shows where)"),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
