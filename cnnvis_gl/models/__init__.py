"""Model zoo (the paper's case-study networks) and loading of user models."""

from __future__ import annotations

from .zoo import ZOO, build_model, load_model, load_weights, model_names

__all__ = ["ZOO", "build_model", "load_model", "load_weights", "model_names"]
