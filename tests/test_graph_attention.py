"""Attention over a map's positions in hybrid CNNs (CaFormer, CoAtNet, EfficientFormer, a ViT
block written by hand after a convolutional stem): ``softmax(q kᵀ) @ v`` with ``v`` a map's
tokens, its channels in heads or not, written out or as ``F.scaled_dot_product_attention``
(docs/GRAPH.md, "Attention")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_graph_collections import Attended, _images, _measures_b
from test_graph_rules import _seeded
from torch import nn

import cnnvis_gl as cv
from cnnvis_gl.errors import ModelError
from cnnvis_gl.model import trace_model
from cnnvis_gl.model.graph import channel_layouts, channels_first, decode_map
from cnnvis_gl.model.movement import ID_BITS, base
from cnnvis_gl.model.weights import unit_weights


class TokenAttention(nn.Module):
    """A transformer block's attention on a map's tokens, as timm writes it: a qkv Linear over
    the channels-last tokens, viewed (b, n, 3, heads, d) and permuted (3, b, heads, n, d);
    ``softmax(q kᵀ / √d) @ v`` (``how="matmul"``, or with ``"einsum"``), the fused
    ``F.scaled_dot_product_attention`` (``"sdpa"``), or with the heads folded into the batch
    (``"folded"``); the heads put back, a projection and the residual."""

    def __init__(self, c, heads=2, how="matmul"):
        super().__init__()
        self.heads, self.how = heads, how
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        if how == "bias":  # (a relative-position bias per head looked up by constant indices
            n = 36  # in an nn.Embedding, as lucidrains' LeViT: for 6×6 maps)
            self.pos_bias = nn.Embedding(2 * n - 1, heads)
            ar = torch.arange(n)
            self.register_buffer("pos_index", ar[:, None] - ar[None, :] + n - 1)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        n, d = t.shape[1], c // self.heads
        q, k, v = self.qkv(t).reshape(b, n, 3, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        if self.how == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v)
        elif self.how == "einsum":  # (lucidrains' vit-pytorch)
            a = torch.einsum("bhid,bhjd->bhij", q, k) * d**-0.5
            o = torch.einsum("b h i j, b h j d -> b h i d", a.softmax(-1), v)
        elif self.how == "shared":  # (one head's values for all: multi-query attention)
            o = ((q @ k.transpose(-2, -1)) * d**-0.5).softmax(-1) @ v[:, :1]
        elif self.how == "folded":  # (the heads folded into the batch: (b h) n d)
            q, k, v = (t.reshape(b * self.heads, n, d) for t in (q, k, v))
            o = torch.bmm((q @ k.transpose(1, 2)).softmax(-1), v).view(b, self.heads, n, d)
        elif self.how == "bias":
            bias = self.pos_bias(self.pos_index).permute(2, 0, 1)
            o = ((q @ k.transpose(-2, -1)) * d**-0.5 + bias).softmax(-1) @ v
        else:
            o = ((q @ k.transpose(-2, -1)) * d**-0.5).softmax(-1) @ v
        t = t + self.proj(o.transpose(1, 2).reshape(b, n, c))
        return t.transpose(1, 2).reshape(b, c, h, w)


class MapAttention(nn.Module):
    """CoAtNet's attention on a channels-first map (timm's ``Attention2d``): a 1×1 qkv conv
    viewed (b, heads, 3·d, h·w) and chunked, ``v @ softmax(qᵀk)ᵀ`` viewed back."""

    def __init__(self, c, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).view(b, self.heads, 3 * c // self.heads, -1).chunk(3, dim=2)
        a = (q.transpose(-2, -1) @ k).softmax(-1)
        return x + self.proj((v @ a.transpose(-2, -1)).view(b, c, h, w))


def _channels(select):
    """The source channels a select layer of one source picks."""
    pos, ch = decode_map(select.params["map"])
    assert set(pos.tolist()) == {0}
    return ch.tolist()


def _proj_at(m, columns):
    """The projection's weights as the qkv unit's neurons reach it: v's columns."""
    w = m.att.proj.weight.detach().reshape(4, 4)
    want = torch.zeros(4, 12)
    want[:, columns] = w
    return want


_MIXES = {
    "matmul": ("att.softmax", "att.matmul_1"),
    "sdpa": ("att.unbind", "att.scaled_dot_product_attention"),
    "einsum": ("att.softmax", "att.einsum_1"),
}


@pytest.mark.parametrize("how", ["matmul", "sdpa", "einsum"])
@pytest.mark.parametrize("heads", [1, 2])
def test_attention_on_a_maps_tokens_mixes_the_values_over_all_positions(heads, how):
    # (was: "matmul at 'att.matmul_1': only a map's positions pooled with attention weights
    # …", "unsupported operation 'scaled_dot_product_attention'" and "… 'einsum'")
    m = _seeded(Attended(TokenAttention(4, heads, how)))
    t = trace_model(m, (3, 6, 6))
    weights, mix_name = _MIXES[how]
    assert t.graph.left_out == [f"{weights} → {mix_name}"]
    # q and k only weigh; the values are the qkv projection's last four channels
    assert [u.name for u in t.graph.units] == ["a", "att.qkv", "att.proj", "b"]
    mix = t.graph.layer(mix_name)
    values = t.graph.layer(f"{mix_name}.values")
    assert (mix.kind, mix.inputs, mix.shape) == ("pool", [values.name], [4, 6, 6])
    assert mix.params == {"attention": True, "view": [heads, 36, 4 // heads]}
    assert (values.kind, values.inputs, values.shape) == ("select", ["att.qkv"], [4, 6, 6])
    assert _channels(values) == [8, 9, 10, 11]
    # every position after it sees the whole image
    assert mix.rf_size == [6.0, 6.0] and mix.rf_jump == [0.0, 0.0]
    assert t.graph.layer("b").rf_size == [6.0, 6.0]
    # neuron weights: v's channels reach the projection through the mixing (the identity)
    torch.testing.assert_close(unit_weights(t)["att.proj"]["att.qkv"], _proj_at(m, [8, 9, 10, 11]))
    _measures_b(m, _images())


@pytest.mark.parametrize("how", ["sdpa", "einsum", "bias"])
def test_fused_and_written_out_attention_are_the_same_graph(how):
    # (with a position bias from an nn.Embedding, was: "unsupported module 'att.pos_bias'")
    m = _seeded(Attended(TokenAttention(4, 2, "matmul")))
    fused = Attended(TokenAttention(4, 2, how))
    fused.load_state_dict(m.state_dict(), strict=how != "bias")
    t, f = trace_model(m, (3, 6, 6)), trace_model(fused.eval(), (3, 6, 6))
    assert [(u.name, u.tap) for u in t.graph.units] == [(u.name, u.tap) for u in f.graph.units]
    uw, fw = unit_weights(t), unit_weights(f)
    for unit in uw:
        for src in uw[unit]:
            torch.testing.assert_close(uw[unit][src], fw[unit][src])
    if how == "bias":  # (measured on real images too: the lookup runs in every pass)
        _measures_b(fused, _images())


def test_values_shared_by_the_heads_are_read_once_per_head():
    # (mobilenetv4's multi-query attention: was "shape '[2, 6, 2, 2]' is invalid …", a crash)
    m = _seeded(Attended(TokenAttention(4, 2, "shared")))
    t = trace_model(m, (3, 6, 6))
    values = t.graph.layer("att.matmul_1.values")
    assert _channels(values) == [8, 9, 8, 9]
    want = _proj_at(m, [8, 9, 10, 11])
    want = torch.cat([want[:, 8:10] + want[:, 10:12]], 1)
    got = unit_weights(t)["att.proj"]["att.qkv"]
    assert not got[:, 10:].any()
    torch.testing.assert_close(got[:, 8:10], want)
    _measures_b(m, _images())


def test_a_map_attention_with_heads_reads_each_heads_values_from_the_qkv_conv():
    # CoAtNet: qkv viewed (b, heads, 3·d, h·w): head i's values are channels 6i + 4, 6i + 5
    m = _seeded(Attended(MapAttention(4)))
    t = trace_model(m, (3, 6, 6))
    assert t.graph.left_out == ["att.transpose_1 → att.matmul_1"]
    assert [u.name for u in t.graph.units] == ["a", "att.qkv", "att.proj", "b"]
    mix = t.graph.layer("att.matmul_1")
    assert mix.params == {"attention": True, "view": [2, 2, 36]} and not mix.channels_last
    values = t.graph.layer(mix.inputs[0])
    assert _channels(values) == [4, 5, 10, 11]
    torch.testing.assert_close(unit_weights(t)["att.proj"]["att.qkv"], _proj_at(m, [4, 5, 10, 11]))
    _measures_b(m, _images())


def test_tokens_in_heads_are_read_back_as_the_map():
    # an attention's output (batch, heads, positions, d) is the map with channels h·d + j
    h, n, d = 2, 6, 3
    p, q = base(7, [h * d, 2, 3], True, "cpu", [h, n, d])
    assert p.shape == (2, h, n, d)
    for i in range(h):
        for j in range(d):
            assert (p[0, i, :, j] == (7 << ID_BITS) + i * d + j).all()
            assert (q[0, i, :, j] == torch.arange(n)).all()
    o = torch.randn(5, h, n, d)
    want = o.transpose(1, 2).reshape(5, 2, 3, h * d).permute(0, 3, 1, 2)
    torch.testing.assert_close(channels_first(o, ["heads", h, h * d, 2, 3]), want)
    m = _seeded(Attended(TokenAttention(4, 2)))
    layouts = channel_layouts(trace_model(m, (3, 6, 6)).graph)
    assert layouts["att.matmul_1"] == ["heads", 2, 4, 6, 6]


class Mixer(nn.Module):
    """Tokens mixed by a learned matrix (MLP-Mixer's token mixing): no attention."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(36, 36) / 6)

    def forward(self, x):
        b, c, h, w = x.shape
        return (self.w @ x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)


class WindowAttention(nn.Module):
    """Attention within 3×3 windows, the windows folded into the batch (Swin, DaViT)."""

    def __init__(self, c):
        super().__init__()
        self.qkv = nn.Linear(c, 3 * c)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.view(b, c, 2, 3, 2, 3).permute(0, 2, 4, 3, 5, 1).reshape(b * 4, 9, c)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        o = F.scaled_dot_product_attention(q, k, v)
        return o.view(b, 2, 2, 3, 3, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


class LinearAttention(nn.Module):
    """Attention between the channels, ``(v kᵀ) q`` (EfficientViT's ReLU linear attention,
    without its projections): no attention over the positions."""

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2)
        return ((t @ t.transpose(1, 2)) @ t).float().view(b, c, h, w)


@pytest.mark.parametrize(
    "attention, message",
    [
        (Mixer, "matmul at 'att.matmul': only a map's positions pooled with attention weights"),
        # (the first of two: not the second, whose operands come from the first)
        (
            lambda: nn.Sequential(LinearAttention(), LinearAttention()),
            r"^matmul at 'att.0.matmul_1': only a map's positions pooled with attention weights "
            r"[^;]*supported$",
        ),
        (
            lambda: nn.Sequential(TokenAttention(4, 2, "folded"), LinearAttention()),
            r"^bmm at 'att.0.bmm': attention with the heads or windows folded into the batch "
            r"[^;]*\(b, h, n, d\)$",
        ),
        (lambda: WindowAttention(4), "windows, patches or heads folded into the batch"),
        (
            lambda: TokenAttention(4, 2, "folded"),
            r"bmm at 'att.bmm': attention with the heads or windows folded into the batch",
        ),
    ],
)
def test_what_is_no_attention_over_a_maps_positions_is_one_clear_error(attention, message):
    with pytest.raises(ModelError, match=message):
        trace_model(_seeded(Attended(attention())), (3, 6, 6))


def test_info_names_the_attention_layers(tmp_path, capsys):
    from cnnvis_gl.cli import main

    f = tmp_path / "hybrid.py"
    f.write_text(
        "from test_graph_attention import TokenAttention\n"
        "from test_graph_collections import Attended\n\n\n"
        "def net():\n    return Attended(TokenAttention(4))\n"
    )
    assert main(["info", f"{f}:net"]) == 0
    out = capsys.readouterr().out
    assert "gate branch" not in out
    line = out.strip().splitlines()[-1]
    assert line.startswith("1 attention layer: each value channel mixed over the positions")
    assert line.endswith("(docs/GRAPH.md): att.softmax → att.matmul_1")


class SeqPool(nn.Module):
    """CCT's sequence pooling: the tokens averaged with weights from the data,
    ``softmax(a(t))ᵀ @ t`` (one query), then the classifier."""

    def __init__(self, einsum=False):
        super().__init__()
        self.einsum = einsum
        self.a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.attention_pool = nn.Linear(4, 1)
        self.fc = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        t = F.relu(self.a(x)).flatten(2).transpose(1, 2)
        w = F.softmax(self.attention_pool(t), dim=1)
        if self.einsum:  # (lucidrains' CCT: einsum('b n, b n d -> b d', w, t))
            return self.fc(torch.einsum("b n, b n d -> b d", w.squeeze(-1), t))
        return self.fc(torch.matmul(w.transpose(-1, -2), t).squeeze(-2))


@pytest.mark.parametrize("size", [6, 2])
@pytest.mark.parametrize("einsum", [False, True])
def test_one_query_pools_the_tokens_over_the_whole_image(size, einsum):
    # (was: "matmul at 'matmul': only a map's positions pooled with attention weights …";
    # at 2 px as many positions as channels: the scores' one channel are no values; the
    # einsum: "einsum at 'einsum': only a map's positions pooled …")
    m = _seeded(SeqPool(einsum))
    t = trace_model(m, (3, size, size))
    assert [u.name for u in t.graph.units] == ["a", "fc"]
    op = "einsum" if einsum else "matmul"
    assert t.graph.left_out == [("squeeze" if einsum else "transpose_1") + " → " + op]
    pool = t.graph.layer(op)
    assert (pool.kind, pool.shape, pool.params["attention"]) == ("pool", [4, 1, 1], True)
    assert pool.inputs == ["transpose"]  # (the tokens)
    whole = [float(size)] * 2
    assert pool.rf_size == whole and t.graph.layer("fc").rf_size == whole
    torch.testing.assert_close(unit_weights(t)["fc"]["a"], m.fc.weight.detach())
    if size == 2:
        return
    data = _images()
    snap = cv.analyze(m, data, progress=False)
    with torch.no_grad():
        out = m(next(data.batches(len(data)))[0])
    torch.testing.assert_close(
        torch.from_numpy(np.asarray(snap["units/fc/max_response"])), out.amax(0)
    )


class SeparableAttention(nn.Module):
    """MobileViTv2's separable self-attention: scores (b, n, 1) softmaxed over the tokens weigh
    the keys, summed over the tokens with keepdim — a (b, 1, c) context — which scales the
    values."""

    def __init__(self, c):
        super().__init__()
        self.fc_i, self.fc_k = nn.Linear(c, 1), nn.Linear(c, c)
        self.fc_v, self.fc_o = nn.Linear(c, c), nn.Linear(c, c)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        i = torch.softmax(self.fc_i(t), dim=1)
        context = torch.sum(i * self.fc_k(t), dim=1, keepdim=True)
        o = self.fc_o(self.fc_v(t) * context)
        return o.transpose(1, 2).reshape(b, c, h, w)


def test_tokens_summed_with_keepdim_are_a_global_pool():
    # (was: "unsupported tensor of shape (2, 1, 4) at 'att.sum': … token sequences …")
    m = _seeded(Attended(SeparableAttention(4)))
    t = trace_model(m, (3, 6, 6))
    pool = t.graph.layer("att.sum")
    assert (pool.kind, pool.inputs, pool.shape) == ("pool", ["att.mul"], [4])
    assert pool.params == {"global": True} and pool.channels_last  # ((b, 1, c): a row)
    assert pool.rf_size == [6.0, 6.0]
    # (the scores gate the keys: a small unit of their own, as a squeeze-excitation's)
    units = ["a", "att.fc_i", "att.fc_k", "att.fc_v", "att.fc_o", "b"]
    assert [u.name for u in t.graph.units] == units
    _measures_b(m, _images())


class TorchAttention(nn.Module):
    """torch's own ``nn.MultiheadAttention`` (or a ``nn.TransformerEncoder`` of one layer) on a
    map's tokens, batch first or sequence first."""

    def __init__(self, c, batch_first=True, encoder=False, **kw):
        super().__init__()
        self.batch_first, self.encoder = batch_first, encoder
        if encoder:
            layer = nn.TransformerEncoderLayer(c, 2, 8, 0.0, batch_first=batch_first)
            self.m = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        else:
            self.m = nn.MultiheadAttention(c, 2, batch_first=batch_first, **kw)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t if self.batch_first else t.transpose(0, 1)
        y = self.m(t) if self.encoder else t + self.m(t, t, t)[0]
        y = y if self.batch_first else y.transpose(0, 1)
        return y.transpose(1, 2).reshape(b, c, h, w)


def test_torchs_multihead_attention_is_a_value_projection_attention_and_a_projection():
    # (was: "unsupported module 'att.m' (torch.nn.modules.activation.MultiheadAttention)")
    m = _seeded(Attended(TorchAttention(4)))
    t = trace_model(m, (3, 6, 6))
    # the value projection is the third of its F.linear calls (q, k, v)
    assert [u.name for u in t.graph.units] == ["a", "att.m.linear_2", "att.m.out_proj", "b"]
    mix = t.graph.layer("att.m.scaled_dot_product_attention")
    assert mix.params == {"attention": True, "view": [2, 36, 2]} and mix.channels_last
    uw = unit_weights(t)
    w = m.att.m.in_proj_weight.detach()
    torch.testing.assert_close(uw["att.m.linear_2"]["a"], w[8:])
    torch.testing.assert_close(uw["att.m.out_proj"]["att.m.linear_2"], m.att.m.out_proj.weight)
    _measures_b(m, _images())  # (measured written out; compared with torch's own forward)
    assert "forward" not in vars(m.att.m)  # (torch's forward back after the passes)
    assert torch.backends.mha.get_fastpath_enabled()


def test_torchs_transformer_encoder_runs_its_own_modules():
    # (was: "unsupported module 'att.m' (torch.nn.modules.transformer.TransformerEncoder)";
    # in eval mode it runs one fused kernel, torch._transformer_encoder_layer_fwd)
    m = _seeded(Attended(TorchAttention(4, encoder=True)))
    t = trace_model(m, (3, 6, 6))
    layer = "att.m.layers.0"
    units = ["a", f"{layer}.self_attn.linear_2", f"{layer}.self_attn.out_proj"]
    assert [u.name for u in t.graph.units] == [*units, f"{layer}.linear1", f"{layer}.linear2", "b"]
    _measures_b(m, _images())


@pytest.mark.parametrize("encoder", [False, True])
def test_tokens_sequence_first_are_the_map_too(encoder):
    # (torch's transformer modules' default, batch_first=False: was "unsupported reshape at
    # 'att.transpose_1': it mixes the batch with the channels or positions (36 rows …)")
    m = _seeded(Attended(TorchAttention(4, batch_first=False, encoder=encoder)))
    twin = Attended(TorchAttention(4, encoder=encoder))
    twin.load_state_dict(m.state_dict())
    t, ref = trace_model(m, (3, 6, 6)), trace_model(twin.eval(), (3, 6, 6))
    assert [u.name for u in t.graph.units] == [u.name for u in ref.graph.units]
    first = [lay.name for lay in t.graph.layers if lay.params.get("seq_first")]
    assert "att.transpose_1" in first
    assert channel_layouts(t.graph)["att.transpose_1"] == ["seq", 4, 6, 6]
    uw, uw_ref = unit_weights(t), unit_weights(ref)
    for unit in uw:
        for src in uw[unit]:
            torch.testing.assert_close(uw[unit][src], uw_ref[unit][src])
    data = _images()
    a, b = _measures_b(m, data), cv.analyze(twin.eval(), data, progress=False)
    for u in t.graph.units:
        key = f"units/{u.name}/max_response"
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-5, err_msg=key)


def test_a_mean_over_the_sequence_axis_pools_the_tokens():
    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.norm = nn.LayerNorm(4)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            t = self.norm(F.relu(self.a(x)).flatten(2).permute(2, 0, 1))  # (n, b, c)
            return self.fc(t.mean(0))

    m = _seeded(Pooled())
    t = trace_model(m, (3, 6, 6))
    pool = t.graph.layer("mean")
    assert (pool.kind, pool.shape, pool.params) == ("pool", [4], {"global": True})
    assert t.graph.layer("norm").params == {"view": [36, 4], "seq_first": True}
    # an ablation zeroes the channel of the tokens sequence first
    from cnnvis_gl.stats.ablation import ablate

    data = _images()
    images, labels, _ = next(data.batches(5))
    layouts = channel_layouts(t.graph)
    got = ablate(m, data.batches(5), [{"norm": [1]}], 2, layouts=layouts)[0]
    with torch.no_grad():
        tokens = m.norm(F.relu(m.a(images)).flatten(2).permute(2, 0, 1))
        tokens[..., 1] = 0
        loss = F.cross_entropy(m.fc(tokens.mean(0)), labels, reduction="none").double()
    want = torch.zeros(2, dtype=torch.float64).index_add_(0, labels, loss)
    np.testing.assert_allclose(got.loss, want.numpy(), rtol=1e-6)


def test_what_torchs_attention_cannot_be_written_out_with_is_named():
    m = _seeded(Attended(TorchAttention(4, add_bias_kv=True)))
    with pytest.raises(ModelError, match="nn.MultiheadAttention with a key padding mask, a "
                       "causal mask, add_bias_kv or add_zero_attn is not supported"):  # fmt: skip
        trace_model(m, (3, 6, 6))
    assert "forward" not in vars(m.att.m) and torch.backends.mha.get_fastpath_enabled()


@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_written_out_computes_what_torchs_does(mask, batch_first):
    from cnnvis_gl.model.transformer import mha_forward

    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval()
    x = torch.randn(3, 5, 8) if batch_first else torch.randn(5, 3, 8)
    masks = {"bool": torch.rand(5, 5) > 0.7, "float": torch.randn(5, 5)}
    attn_mask = masks.get(mask)
    if mask == "bool":
        attn_mask.fill_diagonal_(False)  # (every query sees itself)
    with torch.no_grad():
        want, want_w = m(x, x, x, attn_mask=attn_mask)
        got, got_w = mha_forward(m, x, x, x, attn_mask=attn_mask)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_w, want_w)


class PatchEmbed(nn.Module):
    """A ViT's patch embedding written out (``rearrange(x, 'b c (h p1) (w p2) -> b (h w) (p1 p2
    c)')`` and a Linear), or (``conv=True``) the same as a strided convolution."""

    def __init__(self, conv=False):
        super().__init__()
        self.conv = conv
        self.embed = nn.Conv2d(3, 5, 2, stride=2) if conv else nn.Linear(12, 5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        if self.conv:
            t = self.embed(x).flatten(2).transpose(1, 2)
        else:
            b, c, h, w = x.shape
            patches = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1)
            t = self.embed(patches.reshape(b, h * w // 4, 4 * c))
        return self.fc(F.relu(t).mean(1))


def test_a_maps_patches_flattened_to_tokens_are_a_strided_window():
    # (was: "unsupported reshape at 'reshape': a tensor of shape (9, 12) reaches a layer")
    m = _seeded(PatchEmbed())
    twin = PatchEmbed(conv=True)
    with torch.no_grad():
        twin.embed.weight.copy_(m.embed.weight.view(5, 2, 2, 3).permute(0, 3, 1, 2))
        twin.embed.bias.copy_(m.embed.bias)
        twin.fc.load_state_dict(m.fc.state_dict())
    t = trace_model(m, (3, 6, 6))
    patches = t.graph.layer("reshape")
    assert patches.kind == "select" and patches.shape == [12, 3, 3] and patches.channels_last
    assert patches.params["view"] == [9, 12] and patches.params["stride"] == [2, 2]
    embed = t.graph.layer("embed")
    assert embed.rf_size == [2.0, 2.0] and embed.rf_jump == [2.0, 2.0]
    data = _images()
    a, b = cv.analyze(m, data, progress=False), cv.analyze(twin.eval(), data, progress=False)
    for key in ("units/embed/max_response", "units/embed/topk_box", "units/fc/A_max"):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=1e-5, err_msg=key)


class ClassToken(nn.Module):
    """A ViT's class token prepended to a map's tokens."""

    def __init__(self):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, 4))
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        t = x.flatten(2).transpose(1, 2)
        t = self.norm(torch.cat([self.cls.expand(len(t), -1, -1), t], 1))
        return t[:, 1:].transpose(1, 2).reshape(x.shape)


def test_a_class_token_is_named_in_the_error():
    with pytest.raises(ModelError, match=r"at 'att.cat': a tensor of shape \(37, 4\) reaches a "
                       r"layer, its tokens a map's and a constant one \(a class token"):  # fmt: skip
        trace_model(_seeded(Attended(ClassToken())), (3, 6, 6))


def test_only_torchs_own_multihead_attention_is_written_out():
    from cnnvis_gl.model.transformer import WrittenOut

    class Own(nn.MultiheadAttention):  # (a forward of its own: left as it is)
        def forward(self, x):
            return x

    plain, own = nn.MultiheadAttention(4, 2), Own(4, 2)
    written = WrittenOut(nn.Sequential(plain, own))
    assert written.modules == [plain]
    with written:
        assert "forward" in vars(plain) and "forward" not in vars(own)
        assert not torch.backends.mha.get_fastpath_enabled()
    assert "forward" not in vars(plain) and torch.backends.mha.get_fastpath_enabled()


class LinearNorm(nn.Module):
    """LeViT's Linear + BatchNorm1d: the norm over the tokens with the batch flattened in,
    ``bn(x.flatten(0, 1)).reshape_as(x)``."""

    def __init__(self, c):
        super().__init__()
        self.linear = nn.Linear(c, c, bias=False)
        self.bn = nn.BatchNorm1d(c)

    def forward(self, x):
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class LeViTish(nn.Module):
    """LeViT's pattern: LinearNorms on a map's tokens and its subsample, the tokens of every
    other position (``x.view(b, h, w, c)[:, ::2, ::2].reshape(b, -1, c)``)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.ln, self.q = LinearNorm(4), LinearNorm(4)
        self.fc = nn.Linear(4, 2)

    def tokens(self, x):
        b = len(x)
        t = F.relu(self.ln(self.a(x).flatten(2).transpose(1, 2)))
        return t, F.relu(self.q(t.view(b, 6, 6, 4)[:, ::2, ::2].reshape(b, -1, 4)))

    def forward(self, x):
        return self.fc(self.tokens(x)[1].mean(1))


def test_a_norm_over_tokens_with_the_batch_flattened_in_is_a_norm_of_the_map():
    # (was: "unsupported reshape at 'ln.flatten': it mixes the batch with the channels or
    # positions (72 rows from a batch of 2 …)")
    m = _seeded(LeViTish())
    for bn in (m.ln.bn, m.q.bn):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
    t = trace_model(m, (3, 6, 6))
    assert [(u.name, u.tap) for u in t.graph.units] == [
        ("a", "transpose"), ("ln.linear", "relu"), ("q.linear", "relu_1"), ("fc", "fc")
    ]
    bn = t.graph.layer("ln.bn")
    assert (bn.kind, bn.shape, bn.params) == ("norm", [4, 6, 6], {"view": [36, 4], "batch_flat": True})
    # the subsample: every other position of the map, a window of stride 2
    sub = t.graph.layer("reshape")
    assert (sub.kind, sub.shape, sub.params["stride"]) == ("select", [4, 3, 3], [2, 2])
    assert t.graph.layer("q.linear").rf_size == [3.0, 3.0]
    assert channel_layouts(t.graph)["ln.bn"] == ["flat", 4, 6, 6]
    flat = torch.randn(5 * 36, 4)
    want = flat.view(5, 6, 6, 4).permute(0, 3, 1, 2)
    torch.testing.assert_close(channels_first(flat, ["flat", 4, 6, 6]), want)
    data = _images()
    snap = cv.analyze(m, data, progress=False)
    with torch.no_grad():
        ln, q = m.tokens(next(data.batches(len(data)))[0])
    for unit, tokens in (("ln.linear", ln), ("q.linear", q)):
        got = torch.from_numpy(np.asarray(snap[f"units/{unit}/max_response"]))
        torch.testing.assert_close(got, tokens.amax((0, 1)))


class TransposedRows(nn.Module):
    """A BatchNorm1d over every position of every image, the rows made by a transpose (not
    contiguous): ``bn(x.permute(1, 0, 2, 3).reshape(c, -1).t())``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.a(x)
        b, c, h, w = y.shape
        rows = F.relu(self.bn(y.permute(1, 0, 2, 3).reshape(c, -1).t()))
        return self.fc(rows.reshape(b, h, w, c).mean((1, 2)))


def test_rows_of_every_position_made_by_a_transpose_are_the_map_too():
    m = _seeded(TransposedRows())
    t = trace_model(m, (3, 6, 6))
    assert t.graph.layer("bn").params == {"view": [36, 4], "batch_flat": True}
    data = _images()
    snap = cv.analyze(m, data, progress=False)
    with torch.no_grad():
        y = m.a(next(data.batches(len(data)))[0])
        rows = F.relu(m.bn(y.permute(1, 0, 2, 3).reshape(4, -1).t()))
    got = torch.from_numpy(np.asarray(snap["units/a/max_response"]))
    torch.testing.assert_close(got, rows.amax(0))
