"""torch's transformer modules written out while cnnvis_gl watches a forward pass.

``nn.MultiheadAttention`` folds the heads into the batch (``F.multi_head_attention_forward``),
and ``nn.TransformerEncoderLayer`` runs one fused kernel in eval mode.  While a model is
captured or measured (:class:`~cnnvis_gl.model.capture._Session`), each
``nn.MultiheadAttention`` runs :func:`mha_forward` instead — the same computation with the
heads on their own axis: q, k and v projections, ``F.scaled_dot_product_attention``, the output
projection — and the fused fast path is off, so an encoder layer calls its own modules.  The
results are those of the original (up to rounding); the graph sees a map's tokens, a value
projection, attention over the positions and a projection (docs/GRAPH.md).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

#: torch.nn modules that are entered (their forward is written with supported operations).
ENTERED = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)


def mha_forward(
    m: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    need_weights: bool = True,
    attn_mask: torch.Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``m(query, key, value, …)`` with the heads kept apart from the batch."""
    if key_padding_mask is not None or is_causal or m.bias_k is not None or m.add_zero_attn:
        raise ModelError(
            f"nn.MultiheadAttention with a key padding mask, a causal mask, add_bias_kv or "
            f"add_zero_attn is not supported (in {type(m).__name__}): images have no padding"
        )
    if not m.batch_first:  # (sequence, batch, channels)
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    e, h = m.embed_dim, m.num_heads
    if m._qkv_same_embed_dim:
        weights = m.in_proj_weight.chunk(3)
    else:
        weights = (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
    biases = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None, None, None)
    inputs = (query, key, value)
    q, k, v = (F.linear(t, w, bias) for t, w, bias in zip(inputs, weights, biases, strict=True))
    b, n = q.shape[:2]
    q, k, v = (t.view(b, t.shape[1], h, -1).transpose(1, 2) for t in (q, k, v))
    if attn_mask is not None and attn_mask.dim() == 3:  # (batch · heads, n, n)
        attn_mask = attn_mask.view(b, h, *attn_mask.shape[1:])
    if attn_mask is not None and attn_mask.dtype == torch.bool:  # (True: not allowed)
        attn_mask = ~attn_mask
    p = m.dropout if m.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
    out = m.out_proj(out.transpose(1, 2).reshape(b, n, e))
    if not m.batch_first:
        out = out.transpose(0, 1)
    if not need_weights:
        return out, None
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask
    weights_out = scores.softmax(-1)
    return out, weights_out.mean(1) if average_attn_weights else weights_out


class WrittenOut:
    """While entered: every ``nn.MultiheadAttention`` of ``model`` runs :func:`mha_forward`,
    and torch's fused transformer fast path is off (for an encoder layer's own modules: off
    whenever ``model`` holds torch's attention)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = [  # (not a subclass with a forward of its own)
            m for m in model.modules() if type(m).forward is nn.MultiheadAttention.forward
        ]
        self.used = any(isinstance(m, ENTERED) for m in model.modules())
        self.fastpath: bool | None = None

    def __enter__(self) -> WrittenOut:
        if self.used and self.fastpath is None:
            self.fastpath = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
            for m in self.modules:
                m.forward = functools.partial(mha_forward, m)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fastpath is not None:
            for m in self.modules:
                del m.forward
            torch.backends.mha.set_fastpath_enabled(self.fastpath)
            self.fastpath = None
