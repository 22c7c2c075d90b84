"""Layer graph of a torch model: layers, units (neurons), groups, receptive fields, weights."""

from __future__ import annotations

from .graph import Group, Layer, NeuronGraph, Unit
from .trace import TracedModel, build_graph, trace_model

__all__ = ["Group", "Layer", "NeuronGraph", "TracedModel", "Unit", "build_graph", "trace_model"]
