"""The networks of the paper's case studies (SPEC §10) and a small ResNet.

Choices (the paper gives no kernel sizes or widths): VGG-like 3×3 convolutions, stage widths
64-128-256-512 for width 1, conv layers per stage 2-2-3-3, 2×2 max-pooling after every stage,
then two linear layers.  BatchNorm is on by default (``norm=False`` gives the 2016-style plain
network, used for the failed-training case).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import pickle
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..model.capture import unwrap

BASE_WIDTHS = (64, 128, 256, 512)


class VGGLike(nn.Module):
    """Conv stages (each: ``n`` × [conv3×3, (BN), ReLU], then 2×2 max-pool) + 2 linear layers."""

    def __init__(
        self,
        widths: tuple[int, ...],
        convs_per_stage: tuple[int, ...],
        num_classes: int = 10,
        image_size: int = 32,
        hidden: int = 512,
        norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for width, n in zip(widths, convs_per_stage, strict=True):
            for _ in range(n):
                layers.append(nn.Conv2d(c_in, width, 3, padding=1, bias=not norm))
                if norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        if side < 1:
            raise ModelError(
                f"image size {image_size} is too small for {len(widths)} pooling stages"
            )
        head: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(c_in * side * side, hidden),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _widths(width: float, stages: int = 4) -> tuple[int, ...]:
    return tuple(max(4, int(round(w * width))) for w in BASE_WIDTHS[:stages])


def basecnn(width: float = 1.0, num_classes: int = 10, norm: bool = True, **kw) -> VGGLike:
    """BaseCNN: 10 conv layers (2-2-3-3), 4 pooling layers, 2 linear layers."""
    return VGGLike(
        _widths(width), (2, 2, 3, 3), num_classes, hidden=max(32, int(512 * width)), norm=norm, **kw
    )


def shallowcnn(width: float = 1.0, num_classes: int = 10, norm: bool = True, **kw) -> VGGLike:
    """ShallowCNN: BaseCNN with 3 conv layers and 1 pooling layer fewer (7 conv, 3 pool)."""
    return VGGLike(
        _widths(width, 3), (2, 2, 3), num_classes, hidden=max(32, int(512 * width)), norm=norm, **kw
    )


def deepcnn(width: float = 1.0, num_classes: int = 10, norm: bool = True, **kw) -> VGGLike:
    """DeepCNN: twice the conv layers of BaseCNN (4-4-6-6 = 20 conv layers)."""
    return VGGLike(
        _widths(width), (4, 4, 6, 6), num_classes, hidden=max(32, int(512 * width)), norm=norm, **kw
    )


class BasicBlock(nn.Module):
    """ResNet basic block; a 1×1 conv + BN shortcut where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016): 3 stages of ``n`` basic blocks, widths 16-32-64."""

    def __init__(
        self, n: int = 3, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                blocks.append(BasicBlock(c_in, width, 2 if (stage > 0 and i == 0) else 1))
                c_in = width
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(self.flatten(self.pool(x)))


def resnet20(num_classes: int = 10) -> ResNet:
    return ResNet(3, num_classes)


ZOO: dict[str, Callable[..., nn.Module]] = {
    "basecnn": basecnn,
    "shallowcnn": shallowcnn,
    "deepcnn": deepcnn,
    "resnet20": resnet20,
}
#: width variants of the VGG-like models: ``basecnn-x4``, ``deepcnn-x0.5`` … (the paper's ¼ … 4,
#: and ⅛ for the CPU-scale case studies)
WIDTHS = {"x0.125": 0.125, "x0.25": 0.25, "x0.5": 0.5, "x1": 1.0, "x2": 2.0, "x4": 4.0}
for _suffix, _w in WIDTHS.items():
    for _name, _f in (("basecnn", basecnn), ("shallowcnn", shallowcnn), ("deepcnn", deepcnn)):
        ZOO[f"{_name}-{_suffix}"] = lambda w=_w, f=_f, **kw: f(width=w, **kw)


def model_names() -> list[str]:
    return sorted(ZOO)


def _import_file(path: Path) -> types.ModuleType:
    """Import a model file as ``python FILE.py`` from the current directory would see it: its
    own folder, the folder above its package (``senet/se_resnet.py`` importing
    ``senet.se_module``) and the current directory are on ``sys.path`` (appended: installed
    packages keep their names).  A file inside a package (``models/resnet.py`` next to
    ``models/__init__.py``) that imports its siblings relatively (``from .layers import …``) is
    imported as the package's module."""
    here = path.resolve().parent
    parts, top = [path.stem], here  # its dotted name in its package; the package's parent
    while (top / "__init__.py").is_file():
        parts.insert(0, top.name)
        top = top.parent
    for folder in (here, top, Path.cwd()):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    mod_name = f"cnnvis_user_model_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
        return module
    except ImportError as e:
        if "relative import" not in str(e):
            raise
        del sys.modules[mod_name]
    if len(parts) == 1:
        raise ImportError(
            f"it imports relatively (from .x import …) but {path.parent} is no package "
            "(no __init__.py)"
        )
    name = ".".join(parts)
    loaded = sys.modules.get(parts[0])
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").parent.parent != top:
        raise ImportError(f"another package named {parts[0]!r} is already imported")
    return importlib.import_module(name)


def build_model(spec: str, num_classes: int = 10, **kw) -> nn.Module:
    """A zoo model by name (``basecnn``, ``basecnn-x4``, ``resnet20`` …) or a user factory.

    ``spec`` may be ``path/to/file.py:factory``: the file is imported and ``factory()`` (or
    ``factory(num_classes=…)`` if it accepts it) must return an ``nn.Module``.
    """
    if spec in ZOO:
        return ZOO[spec](num_classes=num_classes, **kw)
    if spec.startswith("torchvision:"):
        from .torchvision import build

        return build(spec.partition(":")[2], num_classes=num_classes)
    m = re.fullmatch(r"(.+\.py):([A-Za-z_][A-Za-z0-9_]*)", spec)
    if m is None:
        raise ModelError(
            f"unknown model {spec!r}: use one of {', '.join(model_names())}, "
            "torchvision:NAME (e.g. torchvision:resnet50) or path/to/file.py:factory"
        )
    path, factory_name = Path(m.group(1)), m.group(2)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with _eager_torchscript():
            module = _with_torchvision(lambda: _import_file(path))
    except Exception as e:  # the user's code: report where it failed
        raise ModelError(f"importing {path} failed: {type(e).__name__}: {e}") from e
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ModelError(f"{path} has no callable {factory_name!r}")
    try:
        params = inspect.signature(factory).parameters.values()
        takes = any(p.name == "num_classes" or p.kind is p.VAR_KEYWORD for p in params)
    except (TypeError, ValueError):  # a builtin or a C extension: call it plainly
        takes = False
    try:
        with _eager_torchscript():
            model = _with_torchvision(
                lambda: factory(num_classes=num_classes) if takes else factory()
            )
    except Exception as e:  # the user's code: say which call failed, in one line
        first = (str(e).splitlines() or [""])[0]
        raise ModelError(f"{path}:{factory_name}() raised {type(e).__name__}: {first}") from e
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{path}:{factory_name}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    return unwrap(model)  # (a DataParallel: the model inside, as a checkpoint of it would be)


class _EagerScriptModule(nn.Module):
    """``torch.jit.ScriptModule`` as torch defines it when TorchScript is off (PYTORCH_JIT=0)."""

    def __init__(self, arg: Any = None) -> None:
        super().__init__()


@contextlib.contextmanager
def _eager_torchscript() -> Iterator[None]:
    """TorchScript off while a model file is imported and its factory runs, as PYTORCH_JIT=0
    would have it: ``torch.jit.ScriptModule`` subclasses (pytorch-cifar100's stochastic-depth
    ResNet), ``@torch.jit.script_method`` and ``@torch.jit.script`` functions and modules are
    plain Python, whose operations the capture sees (scripted ones it cannot)."""
    jit = torch.jit
    saved = jit.ScriptModule, jit.script_method, jit.script
    jit.ScriptModule = _EagerScriptModule  # type: ignore[misc]
    jit.script_method = jit.script = lambda obj, *a, **k: obj  # type: ignore[assignment]
    try:
        yield
    finally:
        jit.ScriptModule, jit.script_method, jit.script = saved  # type: ignore[misc]


def _with_torchvision(call: Callable[[], Any]) -> Any:
    """``call()``; where it fails on importing torchvision because its compiled ops do not load
    (a wheel built for another torch — at the top of the user's file, or inside the factory,
    as a package that imports its modules by name does, or transformers' lazy imports), once
    more after making torchvision's models importable (they need none of those ops; see
    models/torchvision.py)."""
    try:
        return call()
    except Exception as e:
        if not _torchvision_ops_missing(e):
            raise
    from .torchvision import import_torchvision

    import_torchvision()
    return call()


def _torchvision_ops_missing(e: BaseException | None) -> bool:
    """Whether ``e``, or an error it was raised from (transformers wraps its lazy imports'
    errors), is torchvision's "operator torchvision::nms does not exist"."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, RuntimeError) and "torchvision::" in str(e):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict saved with ``torch.save`` (safe: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelError(
            f"cannot read weights {path}: it holds objects other than tensors, which are not loaded "
            "for safety (save a plain state_dict)"
        ) from e
    except Exception as e:
        raise ModelError(
            f"cannot read weights {path}: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from e
    state = _state_dict(state)
    if not isinstance(state, dict):
        raise ModelError(f"weights {path} hold a {type(state).__name__}, not a state dict")
    own = model.state_dict()
    for prefix in ("module.", "_orig_mod."):  # saved from a DataParallel, a torch.compile'd
        if state and all(k.startswith(prefix) for k in state) and not any(
            k.startswith(prefix) for k in own
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or first[0]
        raise ModelError(f"weights {path} do not fit the model: {detail}") from e
    return model


#: Where training scripts keep the state dict in the checkpoints they save (kuangliu's
#: pytorch-cifar: ``{"net": …, "acc": …, "epoch": …}``; ImageNet examples: ``"state_dict"``).
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "state")


def _state_dict(saved: Any) -> Any:
    """The state dict in what ``torch.save`` wrote: itself, or a checkpoint's entry."""
    if isinstance(saved, dict) and not any(isinstance(v, torch.Tensor) for v in saved.values()):
        for key in _CHECKPOINT_KEYS:
            if isinstance(saved.get(key), dict):
                return saved[key]
    return saved


def load_model(spec: str, weights: str | Path | None = None, num_classes: int = 10) -> nn.Module:
    model = build_model(spec, num_classes=num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model
