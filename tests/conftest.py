"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _has_cifar(directory: Path) -> bool:
    return (directory / "cifar-10-batches-py" / "test_batch").is_file()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (the folder holding ``pyproject.toml``)."""
    return _REPO_ROOT


@pytest.fixture(scope="session")
def cifar_dir(repo_root: Path) -> Path:
    """Folder holding ``cifar-10-batches-py`` (the real CIFAR-10); skips the test when absent.

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
    pytest.skip("real CIFAR-10 not found (looked in " + ", ".join(map(str, candidates)) + ")")


@pytest.fixture(scope="session")
def headless_gl() -> None:
    """Skips the test where the machine has no headless OpenGL (EGL) at all."""
    from cnnvis_gl.render import create_context

    try:
        create_context().release()
    except Exception as e:  # noqa: BLE001 - a missing capability of the machine
        pytest.skip(f"no headless OpenGL: {e}")
