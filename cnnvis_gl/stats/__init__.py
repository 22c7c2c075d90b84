"""Streaming, mergeable statistics of neurons over a probe dataset."""

from __future__ import annotations

from .accumulator import StatsAccumulator
from .probe import Probe

__all__ = ["Probe", "StatsAccumulator"]
