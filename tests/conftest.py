"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parent.parent


#: Set by CI (``.ci/run``): every capability the suite expects is there, so a missing CIFAR-10 or
#: a failing headless OpenGL context is a failure, not a skip (only ``gpu`` tests may skip).
REQUIRE_ALL = os.environ.get("CNNVIS_REQUIRE_ALL", "") == "1"


def missing(what: str) -> None:
    """Skip the test for a capability the machine lacks; fail it under ``CNNVIS_REQUIRE_ALL=1``."""
    if REQUIRE_ALL:
        pytest.fail(f"{what} (CNNVIS_REQUIRE_ALL=1: every capability is expected here)")
    pytest.skip(what)


def gl_context_or_missing():
    """A headless OpenGL context, or :func:`missing` (only the context's own error counts)."""
    from cnnvis_gl.render import create_context

    try:
        return create_context()
    except RuntimeError as e:  # create_context's "no headless OpenGL 3.3 context: …"
        missing(f"no headless OpenGL: {e}")


def _has_cifar(directory: Path) -> bool:
    return (directory / "cifar-10-batches-py" / "test_batch").is_file()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (the folder holding ``pyproject.toml``)."""
    return _REPO_ROOT


@pytest.fixture(scope="session")
def cifar_dir(repo_root: Path) -> Path:
    """Folder holding ``cifar-10-batches-py`` (the real CIFAR-10); skips the test when absent
    (fails it under ``CNNVIS_REQUIRE_ALL=1``).

    Looked up in ``$CNNVIS_DATA/cifar10`` (a relative value is tried from the current directory,
    then from the repository root), then in ``<repo>/../shared/data/cifar10``.
    """
    candidates = []
    env = os.environ.get("CNNVIS_DATA", "").strip()
    if env:
        base = Path(env).expanduser()
        candidates.append(base / "cifar10")
        if not base.is_absolute():
            candidates.append(repo_root / base / "cifar10")
    candidates.append(repo_root.parent / "shared" / "data" / "cifar10")
    for candidate in candidates:
        if _has_cifar(candidate):
            return candidate.resolve()
    missing("real CIFAR-10 not found (looked in " + ", ".join(map(str, candidates)) + ")")


@pytest.fixture(scope="session")
def headless_gl() -> None:
    """Skips the test where the machine has no headless OpenGL (EGL) at all (fails it under
    ``CNNVIS_REQUIRE_ALL=1``)."""
    gl_context_or_missing().release()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    """A real run directory: one snapshot of BaseCNN×¼ (random init, seed 0) on 60 CIFAR-10
    test images.  Shared by the session: copy it (``shutil.copytree``) before writing into it."""
    import torch

    import cnnvis_gl
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("small") / "run"
    model = build_model("basecnn-x0.25")
    cnnvis_gl.analyze(model, f"cifar10:{cifar_dir}", limit=60, progress=False).save(run, 0)
    return run


@pytest.fixture(scope="session")
def recorded_run(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    """A real recorded training run: BaseCNN×¼ (seed 0) trained for 13 SGD steps of 32 CIFAR-10
    training images, snapshots at steps 0, 4, 8 and 12 on 100 test images.  Shared by the
    session: copy it before writing into it."""
    import torch
    import torch.nn.functional as F

    import cnnvis_gl
    from cnnvis_gl.data import open_data
    from cnnvis_gl.models import build_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("recorded") / "run"
    model = build_model("basecnn-x0.25")
    train = open_data(f"cifar10:{cifar_dir}", "train").subset(416)
    probe = open_data(f"cifar10:{cifar_dir}", "test").subset(100)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with cnnvis_gl.Recorder(model, probe, run, every=4, k=4) as rec:
        for step, (x, y, _) in enumerate(train.batches(32, shuffle=True)):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.step(step, train_loss=loss.item())
    return run
