"""Locate packaged resources (``shaders/``, ``assets/``) and the user's cache folder.

In a wheel they live inside the package (``cnnvis_gl/shaders``); in a source checkout they are
the top-level folders beside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _root(name: str) -> Path:
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cnnvis_gl resource folder {name!r} not found beside {_PKG}")


def shader_dir() -> Path:
    return _root("shaders")


def asset_dir() -> Path:
    return _root("assets")


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnnvis_gl`` (when that is an absolute path), else ``~/.cache/cnnvis_gl``;
    not created."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else None
    return (base if base is not None else Path.home() / ".cache") / "cnnvis_gl"


def read_shader(name: str) -> str:
    """Source text of ``shaders/<name>`` (e.g. ``"patch.vert"``)."""
    path = shader_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"shader {name!r} not found in {path.parent}")
    return path.read_text(encoding="utf-8")
