"""Errors the user can act on.  The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class CnnvisError(Exception):
    """Base class: a problem with the user's input (a path, a file, a model, an option)."""


class DataError(CnnvisError):
    """A dataset is missing, corrupt or malformed."""


class ModelError(CnnvisError):
    """A model cannot be built, loaded or analysed (e.g. an unsupported module)."""


class SnapshotError(CnnvisError):
    """A run directory or snapshot is unreadable, corrupt or of a newer schema."""
