"""Tests of lightning_modules/model.py against the TransformerConfig it is built from."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from lightning_modules.config import (
    FAMILIES,
    MLPS,
    NORM_POSITIONS,
    NORMS,
    POSITIONS,
    ArchitectureError,
    TransformerConfig,
)
from lightning_modules.model import LanguageModel, Transformer, build_model

V, T, B = 97, 16, 2


def tiny(**overrides) -> TransformerConfig:
    """A small config (3 layers with different d_ff) that every test starts from."""
    base = dict(
        family="decoder",
        vocab_size=V,
        max_seq_len=T,
        n_layer=3,
        d_model=32,
        n_head=4,
        d_ff=[32, 64, 48],
        pos="rope",
    )
    if overrides.get("family") == "encoder_decoder":
        # Two decoder blocks after the three encoder ones, with d_ff of their own.
        base["n_dec_layer"] = 2
        base["d_ff"] = [32, 64, 48, 40, 56]
    base.update(overrides)
    return TransformerConfig(**base)


def dec(cfg_or_family, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The decoder input an ``encoder_decoder`` needs (``x`` itself); nothing for the others."""
    family = getattr(cfg_or_family, "family", cfg_or_family)
    return {"decoder_input_ids": x} if family == "encoder_decoder" else {}


def ids(seed: int = 0, batch: int = B) -> torch.Tensor:
    return torch.randint(0, V, (batch, T), generator=torch.Generator().manual_seed(seed))


def model(cfg: TransformerConfig) -> LanguageModel:
    torch.manual_seed(0)
    return build_model(cfg).eval()


# ---- every knob builds, runs forward and backward ------------------------------------------
KNOBS = (
    [("mlp", v) for v in MLPS]
    + [("norm", v) for v in NORMS]
    + [("norm_position", v) for v in NORM_POSITIONS]
    + [("pos", v) for v in POSITIONS]
    + [("n_kv_head", v) for v in (4, 2, 1)]
    + [("tie_embeddings", v) for v in (True, False)]
    + [("d_ff", 64), ("d_ff", [32, 64, 48])]
)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("knob", "value"), KNOBS, ids=[f"{k}={v}" for k, v in KNOBS])
def test_every_knob_trains(family, knob, value):
    if family == "encoder_decoder" and knob == "d_ff" and isinstance(value, list):
        value = [*value, 40, 56]  # one per block of both stacks
    cfg = tiny(family=family, dropout=0.1, **{knob: value})
    m = build_model(cfg).train()
    x = ids()
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 11:] = 0
    logits = m(x, attention_mask=mask, prefix_len=torch.tensor([4, 7]), **dec(cfg, x))
    assert logits.shape == (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1), ids(1).flatten())
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pos", POSITIONS)
def test_no_mask_forward_is_finite(family, pos):
    """The mask-free paths (no attention_mask, no prefix_len) of every family and position."""
    out = model(tiny(family=family, pos=pos))(ids(), **dec(family, ids()))
    assert out.shape == (B, T, V) and torch.isfinite(out).all()


# ---- parameter count -----------------------------------------------------------------------
def test_param_count_matches_config_on_grid():
    grid = itertools.product(
        MLPS, NORMS, NORM_POSITIONS, ("learned", "rope", "sinusoidal"), (4, 2, 1), (True, False)
    )
    for mlp, norm, norm_position, pos, kv, tie in grid:
        cfg = tiny(
            mlp=mlp, norm=norm, norm_position=norm_position, pos=pos, n_kv_head=kv,
            tie_embeddings=tie,
        )  # fmt: skip
        m = build_model(cfg)
        unique = sum(p.numel() for p in {id(p): p for p in m.parameters()}.values())
        assert m.num_params() == unique == cfg.num_params(), cfg.describe()
        backbone = sum(p.numel() for p in m.backbone.parameters())
        assert backbone == cfg.num_params(lm_head=False), cfg.describe()


def test_encoder_decoder_param_count_matches_config():
    grid = itertools.product(NORMS, NORM_POSITIONS, ("learned", "rope"), (4, 1), (True, False))
    for norm, norm_position, pos, kv, tie in grid:
        cfg = tiny(
            family="encoder_decoder", mlp="swiglu", norm=norm, norm_position=norm_position,
            pos=pos, n_kv_head=kv, tie_embeddings=tie,
        )  # fmt: skip
        m = build_model(cfg)
        assert len(m.backbone.blocks) == 3 and len(m.backbone.dec_blocks) == 2
        assert [b.mlp.w1.out_features for b in m.backbone.dec_blocks] == [40, 56]
        assert m.num_params() == cfg.num_params(), cfg.describe()
        backbone = sum(p.numel() for p in m.backbone.parameters())
        assert backbone == cfg.num_params(lm_head=False), cfg.describe()
    # Each decoder block adds self-attention, cross-attention, an MLP and three norms.
    one = tiny(family="encoder_decoder", n_dec_layer=1, d_ff=64)
    two = tiny(family="encoder_decoder", n_dec_layer=2, d_ff=64)
    d = 32
    assert two.num_params() - one.num_params() == 2 * 4 * d * d + 2 * d * 64 + 3 * 2 * d


def test_gqa_and_mqa_change_params_not_shapes():
    counts, shapes = [], []
    for kv in (4, 2, 1):
        cfg = tiny(n_kv_head=kv)
        m = model(cfg)
        counts.append(m.num_params())
        shapes.append(m(ids()).shape)
        assert cfg.attention_kind == {4: "mha", 2: "gqa", 1: "mqa"}[kv]
    assert counts[0] > counts[1] > counts[2]
    assert len(set(shapes)) == 1


def test_tied_embeddings_share_storage():
    m = build_model(tiny(tie_embeddings=True))
    assert m.lm_head.weight is m.backbone.tok_emb.weight
    assert m.lm_head.weight.data_ptr() == m.backbone.tok_emb.weight.data_ptr()
    untied = build_model(tiny(tie_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.backbone.tok_emb.weight.data_ptr()
    assert untied.num_params() == m.num_params() + V * 32


def test_yaml_round_trip(tmp_path):
    cfg = tiny(n_kv_head=2, mlp="swiglu", norm="rmsnorm", pos="alibi", tie_embeddings=False)
    path = tmp_path / "arch.yaml"
    cfg.to_yaml(path)
    loaded = TransformerConfig.from_yaml(path)
    assert loaded == cfg
    assert build_model(loaded).num_params() == build_model(cfg).num_params()


def test_encoder_decoder_yaml_round_trip_and_other_families_keep_their_keys(tmp_path):
    cfg = tiny(family="encoder_decoder", n_dec_layer=1, d_ff=[32, 64, 48, 16])
    cfg.to_yaml(tmp_path / "arch.yaml")
    assert TransformerConfig.from_yaml(tmp_path / "arch.yaml") == cfg
    assert cfg.to_dict()["n_dec_layer"] == 1 and "L3+1" in cfg.describe()
    # Fields the other families do not use stay out of their dicts (trial attrs, YAML files).
    assert "n_dec_layer" not in tiny().to_dict()


# ---- init ----------------------------------------------------------------------------------
def test_init_scales():
    cfg = tiny(n_layer=2, d_ff=[64, 64], d_model=64, vocab_size=500, init_std=0.02)
    m = build_model(cfg)

    def close(t, expected):
        return math.isclose(t.std().item(), expected, rel_tol=0.1)

    # The tied head is the embedding: N(0, init_std), not nn.Embedding's N(0, 1).
    assert close(m.lm_head.weight, 0.02)
    assert close(m.backbone.blocks[0].attn.qkv.weight, 0.02)
    assert close(m.backbone.blocks[0].mlp.w1.weight, 0.02)
    assert close(m.backbone.blocks[1].attn.proj.weight, 0.02 / math.sqrt(4))
    assert close(m.backbone.blocks[1].mlp.w2.weight, 0.02 / math.sqrt(4))
    assert torch.equal(m.backbone.norm_f.weight, torch.ones(64))
    assert torch.equal(m.backbone.norm_f.bias, torch.zeros(64))
    untied = build_model(tiny(tie_embeddings=False, d_model=64, vocab_size=500))
    assert close(untied.lm_head.weight, 0.02)
    assert all(not m.bias for m in untied.modules() if isinstance(m, torch.nn.Linear))


def test_structure_follows_knobs():
    post = build_model(tiny(norm_position="post", norm="rmsnorm"))
    assert post.backbone.norm_f is None
    assert isinstance(post.backbone.blocks[0].norm1, torch.nn.RMSNorm)
    assert [b.mlp.w1.out_features for b in post.backbone.blocks] == [32, 64, 48]
    swiglu = build_model(tiny(mlp="swiglu"))
    assert swiglu.backbone.blocks[0].mlp.w3 is not None
    assert build_model(tiny(mlp="gelu")).backbone.blocks[0].mlp.w3 is None
    # Fixed tables follow the model around but stay out of checkpoints.
    for pos in ("rope", "sinusoidal", "alibi"):
        m = build_model(tiny(pos=pos))
        assert len(list(m.buffers())) > 0
        assert not any("rope" in k or "table" in k or "alibi" in k for k in m.state_dict())


# ---- FLOPs ---------------------------------------------------------------------------------
def _cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


FLOP_CONFIGS = [
    dict(),
    dict(family="encoder", mlp="swiglu", n_kv_head=2, tie_embeddings=False, pos="learned"),
    dict(family="prefix_lm", pos="alibi", n_kv_head=1, norm_position="post"),
    dict(family="encoder", pos="sinusoidal", mlp="relu", d_ff=[16, 128, 40]),
]


@pytest.mark.parametrize("overrides", FLOP_CONFIGS, ids=lambda o: ",".join(map(str, o.values())))
def test_flops_match_flop_counter(overrides):
    """cfg.flops_per_sequence(T) == FlopCounterMode on a batch-1 forward.

    On CPU, sdpa runs ``_scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode has
    no formula for (it counts 0 there). The formula's dense 4*T^2*d per layer is what the
    counter reports for the CUDA kernels and for the math backend, so the attention term is
    checked both ways: the math backend, and the CPU kernel mapped to torch's own sdpa formula.
    """
    cfg = tiny(**overrides)
    m = model(cfg)
    x = ids(batch=1)
    mask = torch.ones(1, T, dtype=torch.long)
    prefix = torch.tensor([5])
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flops}
    with torch.no_grad():
        counter = FlopCounterMode(display=False, custom_mapping=mapping)
        with counter:
            m(x, attention_mask=mask, prefix_len=prefix)
        assert counter.get_total_flops() == cfg.flops_per_sequence(T)

        counter = FlopCounterMode(display=False)
        with counter, sdpa_kernel(SDPBackend.MATH):
            m(x, attention_mask=mask, prefix_len=prefix)
        assert counter.get_total_flops() == cfg.flops_per_sequence(T)

        counter = FlopCounterMode(display=False, custom_mapping=mapping)
        with counter:
            m.hidden(x, attention_mask=mask, prefix_len=prefix)
        assert counter.get_total_flops() == cfg.flops_per_sequence(T, lm_head=False)


@pytest.mark.parametrize("overrides", [dict(), dict(n_kv_head=1, mlp="swiglu", pos="alibi")])
def test_encoder_decoder_flops_match_flop_counter(overrides):
    """Encoder over T tokens plus decoder (self and cross) over T tokens, as the formula says."""
    cfg = tiny(family="encoder_decoder", **overrides)
    m = model(cfg)
    x, mask = ids(batch=1), torch.ones(1, T, dtype=torch.long)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter, sdpa_kernel(SDPBackend.MATH):
            m(x, attention_mask=mask, decoder_input_ids=x)
        assert counter.get_total_flops() == cfg.flops_per_sequence(T)
        counter = FlopCounterMode(display=False)
        with counter, sdpa_kernel(SDPBackend.MATH):
            m.decode_hidden(x, m.hidden(x, attention_mask=mask), mask)
        assert counter.get_total_flops() == cfg.flops_per_sequence(T, lm_head=False)


# ---- attention patterns --------------------------------------------------------------------
def _changed_after(x: torch.Tensor, t: int) -> torch.Tensor:
    """Copy of ``x`` with every token after position ``t`` replaced."""
    y = x.clone()
    y[:, t + 1 :] = (y[:, t + 1 :] + 1 + torch.arange(T - t - 1)) % V
    return y


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("family", ["decoder", "prefix_lm"])
def test_causal_families_do_not_see_the_future(family, pos):
    """A decoder, and a prefix_lm called without prefix_len, are causal."""
    m = model(tiny(family=family, pos=pos))
    x = ids()
    for t in (0, 5, 11):
        a, b = m(x), m(_changed_after(x, t))
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-5, rtol=0)
        assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-4)


@pytest.mark.parametrize("pos", POSITIONS)
def test_encoder_decoder_decoder_is_causal_and_reads_the_whole_source(pos):
    m = model(tiny(family="encoder_decoder", pos=pos))
    x, y = ids(0), ids(1)
    base = m(x, decoder_input_ids=y)
    for t in (0, 5, 11):
        out = m(x, decoder_input_ids=_changed_after(y, t))
        torch.testing.assert_close(base[:, : t + 1], out[:, : t + 1], atol=1e-5, rtol=0)
        assert not torch.allclose(base[:, t + 1 :], out[:, t + 1 :], atol=1e-4)
    # The last source token reaches the first decoder position: the encoder is bidirectional.
    out = m(_changed_after(x, T - 2), decoder_input_ids=y)
    assert not torch.allclose(base[:, 0], out[:, 0], atol=1e-4)


@pytest.mark.parametrize("pos", POSITIONS)
def test_encoder_sees_the_future(pos):
    m = model(tiny(family="encoder", pos=pos))
    x = ids()
    a, b = m(x), m(_changed_after(x, 11))
    assert not torch.allclose(a[:, :12], b[:, :12], atol=1e-4)
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-4)


@pytest.mark.parametrize("pos", POSITIONS)
def test_prefix_lm_is_bidirectional_inside_the_prefix_only(pos):
    m = model(tiny(family="prefix_lm", pos=pos))
    x = ids()
    prefix = torch.tensor([6, 9])
    base = m(x, prefix_len=prefix)

    # Changing the last prefix token of each row reaches that row's first position.
    y = x.clone()
    y[0, 5], y[1, 8] = (x[0, 5] + 1) % V, (x[1, 8] + 1) % V
    out = m(y, prefix_len=prefix)
    assert not torch.allclose(base[:, 0], out[:, 0], atol=1e-4)

    # After the prefix it is causal: changing tokens after t >= prefix_len leaves <= t alone.
    for t in (9, 12):
        out = m(_changed_after(x, t), prefix_len=prefix)
        torch.testing.assert_close(base[:, : t + 1], out[:, : t + 1], atol=1e-5, rtol=0)

    # Tokens right after the prefix are not seen by the prefix itself (row 0: prefix is 6).
    y = x.clone()
    y[0, 6:] = (x[0, 6:] + 1) % V
    out = m(y, prefix_len=prefix)
    torch.testing.assert_close(base[0, :6], out[0, :6], atol=1e-5, rtol=0)
    assert not torch.allclose(base[0, 6:], out[0, 6:], atol=1e-4)


def test_prefix_lm_prefix_len_zero_is_causal_and_full_is_encoder():
    cfg = tiny(family="prefix_lm", pos="learned")
    m = model(cfg)
    x = ids()
    causal = m(x)
    torch.testing.assert_close(m(x, prefix_len=torch.tensor([0, 1])), causal, atol=1e-5, rtol=0)
    encoder = build_model(tiny(family="encoder", pos="learned")).eval()
    encoder.load_state_dict(m.state_dict())
    full = torch.tensor([T, T])
    torch.testing.assert_close(m(x, prefix_len=full), encoder(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_pad_tokens_do_not_reach_real_tokens(family, pos):
    m = model(tiny(family=family, pos=pos))
    x = ids()
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 10:] = 0
    mask[1, 4:] = 0
    prefix = torch.tensor([3, 2])
    y = x.clone()
    y[mask == 0] = (x[mask == 0] + 7) % V
    a, b = (
        m(x, attention_mask=mask, prefix_len=prefix, **dec(family, x)),
        m(y, attention_mask=mask, prefix_len=prefix, **dec(family, x)),
    )
    real = mask.bool()
    torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)
    assert torch.isfinite(a).all()
    if family == "encoder":
        # Without the mask the encoder would have seen the pads.
        assert not torch.allclose(m(x)[real], m(y)[real], atol=1e-4)


def test_all_pad_row_stays_finite():
    for family, pos in itertools.product(FAMILIES, ("rope", "alibi")):
        m = model(tiny(family=family, pos=pos))
        mask = torch.ones(B, T, dtype=torch.long)
        mask[1] = 0
        out = m(ids(), attention_mask=mask, prefix_len=torch.tensor([3, 0]), **dec(family, ids()))
        assert torch.isfinite(out).all()


def test_one_mask_per_forward_and_decoder_fast_path():
    mask = torch.ones(B, T)
    dec = Transformer(tiny(family="decoder", pos="rope"))
    assert dec.build_attn_mask(B, T, torch.device("cpu"), torch.float32, mask) == (None, True)
    prefix = Transformer(tiny(family="prefix_lm", pos="none"))
    assert prefix.build_attn_mask(B, T, torch.device("cpu"), torch.float32) == (None, True)
    enc = Transformer(tiny(family="encoder", pos="learned"))
    assert enc.build_attn_mask(B, T, torch.device("cpu"), torch.float32) == (None, False)
    bool_mask, causal = enc.build_attn_mask(B, T, torch.device("cpu"), torch.float32, mask)
    assert bool_mask.dtype == torch.bool and not causal
    alibi = Transformer(tiny(family="decoder", pos="alibi"))
    bias, causal = alibi.build_attn_mask(1, T, torch.device("cpu"), torch.float32)
    assert bias.shape == (1, 4, T, T) and bias.dtype == torch.float32 and not causal
    assert torch.isinf(bias[0, 0, 0, 1]) and bias[0, 0, 3, 1] < 0 and bias[0, 0, 1, 1] == 0

    # Encoders measure ALiBi distance both ways: a symmetric, non-positive bias.
    enc_alibi = Transformer(tiny(family="encoder", pos="alibi"))
    bias, _ = enc_alibi.build_attn_mask(1, T, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(bias, bias.transpose(-1, -2))
    assert (bias <= 0).all() and (bias[0, :, 0, 5] < 0).all()
    # Real queries never see pad keys; pad queries (and all-pad rows) keep their diagonal so
    # that no softmax runs over an empty row.
    pad = torch.ones(B, T)
    pad[0, 10:] = 0
    pad[1] = 0
    allowed, _ = enc.build_attn_mask(B, T, torch.device("cpu"), torch.float32, pad)
    assert not allowed[0, 0, :10, 10:].any() and allowed[0, 0, :10, :10].all()
    assert torch.equal(allowed[1, 0], torch.eye(T, dtype=torch.bool))
    assert allowed[0, 0, 12, 12] and not allowed[0, 0, 12, 11]

    calls = []
    original = enc.build_attn_mask

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    enc.build_attn_mask = counting
    enc(ids(), attention_mask=mask)
    assert len(calls) == 1


@pytest.mark.parametrize("pos", POSITIONS)
def test_relative_positions_are_shift_invariant(pos):
    """rope, alibi and none see only relative positions: shifting a sequence right (left
    padding, masked out) leaves its outputs unchanged; learned and sinusoidal ones change."""
    m = model(tiny(family="encoder", pos=pos))
    n, shift = 10, 6
    x = ids(batch=1)
    right = torch.zeros(1, T, dtype=torch.long)
    right[0, :n] = 1
    shifted = torch.zeros_like(x)
    shifted[0, shift : shift + n] = x[0, :n]
    left = torch.zeros(1, T, dtype=torch.long)
    left[0, shift : shift + n] = 1
    a = m(x, attention_mask=right)[0, :n]
    b = m(shifted, attention_mask=left)[0, shift : shift + n]
    if pos in ("rope", "alibi", "none"):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    else:
        assert not torch.allclose(a, b, atol=1e-4)


# ---- misc behaviour ------------------------------------------------------------------------
def test_hidden_then_head_equals_forward():
    m = model(tiny(tie_embeddings=False))
    x = ids()
    h = m.hidden(x)
    assert h.shape == (B, T, 32)
    torch.testing.assert_close(m.logits_from_hidden(h), m(x))
    # Selecting positions first gives the same logits for them.
    torch.testing.assert_close(m.logits_from_hidden(h[:, [2, 7]]), m(x)[:, [2, 7]])


def test_dropout_only_in_training():
    m = build_model(tiny(dropout=0.3))
    x = ids()
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


def test_embedding_dropout():
    m = build_model(tiny(dropout=0.5, pos="none")).train()
    seen = []
    m.backbone.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    m(ids())
    assert 0.3 < (seen[0] == 0).float().mean() < 0.7


def test_too_long_input_is_rejected():
    m = model(tiny())
    with pytest.raises(ValueError, match="max_seq_len"):
        m(torch.zeros(1, T + 1, dtype=torch.long))


def test_cfg_is_kept():
    cfg = tiny()
    m = build_model(cfg)
    assert m.cfg is cfg and m.backbone.cfg is cfg


# ---- invalid architectures -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "knob"),
    [
        (dict(d_model=30, n_head=4), "d_model"),
        (dict(n_head=4, n_kv_head=3), "n_head"),
        (dict(mlp="geglu"), "mlp"),
        (dict(d_ff=[32, 64]), "d_ff"),
        (dict(norm="batchnorm"), "norm"),
        (dict(pos="xpos"), "pos"),
        (dict(family="seq2seq"), "family"),
        (dict(family="encoder_decoder", n_dec_layer=0), "n_dec_layer"),
        (dict(family="decoder", n_dec_layer=2), "n_dec_layer"),
        (dict(family="encoder_decoder", n_dec_layer=-1), "n_dec_layer"),
        (dict(family="encoder_decoder", d_ff=[32, 64, 48]), "d_ff"),
    ],
)
def test_bad_architectures_name_the_knob(overrides, knob):
    with pytest.raises(ArchitectureError, match=knob):
        tiny(**overrides)


# ---- the KV cache ------------------------------------------------------------------------------
CAUSAL = ["decoder", "prefix_lm"]


@pytest.mark.parametrize("n_kv_head", [4, 1])
@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("family", CAUSAL)
def test_cached_incremental_logits_equal_a_full_forward(family, pos, n_kv_head):
    """Right-padded prompts, then steps of 1 and 2 tokens and a reordering of the rows: the
    logits of every fed position equal a full forward of each row alone (its prompt as the
    prefix for prefix_lm)."""
    m = model(tiny(family=family, pos=pos, n_kv_head=n_kv_head, norm_position="post"))
    lengths = [6, 3, 5]  # prompt of each row
    rows = [ids(seed=i, batch=1)[0, :12].tolist() for i in range(3)]  # prompt + continuation
    width = max(lengths)
    prompt = torch.zeros(3, width, dtype=torch.long)
    mask = torch.zeros(3, width, dtype=torch.long)
    for r, n in enumerate(lengths):
        prompt[r, :n], mask[r, :n] = torch.tensor(rows[r][:n]), 1
    prefix = torch.tensor(lengths) if family == "prefix_lm" else None

    def full(r: int, upto: int) -> torch.Tensor:  # logits of row r's tokens [0, upto)
        x = torch.tensor([rows[r][:upto]])
        p = torch.tensor([lengths[r]]) if family == "prefix_lm" else None
        return m(x, prefix_len=p)[0]  # (upto, V)

    with torch.no_grad():
        cache = m.build_kv_cache(3, width + 6)
        got = m(prompt, attention_mask=mask, prefix_len=prefix, cache=cache)  # (3, width, V)
        for r, n in enumerate(lengths):
            torch.testing.assert_close(got[r, :n], full(r, n), atol=1e-5, rtol=1e-5)
        fed = list(lengths)
        for step, order in ((1, [0, 1, 2]), (2, [0, 1, 2]), (1, [2, 0, 0])):
            cache.reorder(torch.tensor(order))
            rows, lengths, fed = (
                [rows[o] for o in order],
                [lengths[o] for o in order],
                [fed[o] for o in order],
            )
            new = torch.tensor([row[n : n + step] for row, n in zip(rows, fed, strict=True)])
            got = m(new, cache=cache)  # (3, step, V)
            for r, n in enumerate(fed):
                torch.testing.assert_close(got[r], full(r, n + step)[n:], atol=1e-5, rtol=1e-5)
            fed = [n + step for n in fed]
    assert cache.slot == width + 4


@pytest.mark.parametrize("n_kv_head", [4, 1])
@pytest.mark.parametrize("pos", POSITIONS)
def test_encoder_decoder_cached_decoding_equals_a_full_forward(pos, n_kv_head):
    """Right-padded sources of different lengths; the decoder fed 2 tokens, then 1, 2 and 1
    with a reordering of the rows: every fed position's logits equal a full forward of each
    row alone, so cross-attention keys (computed once) and the source mask follow the rows."""
    m = model(tiny(family="encoder_decoder", pos=pos, n_kv_head=n_kv_head))
    src_len = [9, 4, 12]
    sources = [ids(seed=i, batch=1)[0, :n] for i, n in enumerate(src_len)]
    targets = [ids(seed=10 + i, batch=1)[0, :8].tolist() for i in range(3)]
    src = torch.zeros(3, max(src_len), dtype=torch.long)
    mask = torch.zeros_like(src)
    for r, n in enumerate(src_len):
        src[r, :n], mask[r, :n] = sources[r], 1

    def full(r: int, upto: int) -> torch.Tensor:  # decoder logits of row r alone
        return m(sources[r][None], decoder_input_ids=torch.tensor([targets[r][:upto]]))[0]

    with torch.no_grad():
        memory = m.hidden(src, attention_mask=mask)  # (3, S, d)
        cache = m.build_kv_cache(3, 8)
        fed = 0
        order = [0, 1, 2]
        for step, new_order in ((2, [0, 1, 2]), (1, [0, 1, 2]), (2, [2, 0, 0]), (1, [1, 2, 0])):
            cache.reorder(torch.tensor(new_order))
            order = [order[o] for o in new_order]
            new = torch.tensor([targets[r][fed : fed + step] for r in order])
            got = m.decode_hidden(new, memory if fed == 0 else None, mask, cache=cache)
            got = m.logits_from_hidden(got)  # (3, step, V)
            for k, r in enumerate(order):
                torch.testing.assert_close(got[k], full(r, fed + step)[fed:], atol=1e-5, rtol=1e-5)
            fed += step
        assert cache.cross[0] is not None and cache.cross[0][0].shape[0] == 3


def test_encoder_decoder_needs_decoder_ids_and_others_refuse_them():
    m = model(tiny(family="encoder_decoder"))
    assert m.hidden(ids()).shape == (B, T, 32)  # task heads read the encoder's states
    with pytest.raises(ValueError, match="decoder_input_ids"):
        m(ids())
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(tiny())(ids(), decoder_input_ids=ids())
    with pytest.raises(ValueError, match="no decoder stack"):
        model(tiny()).decode_hidden(ids(), None)


def test_encoders_take_no_cache():
    m = model(tiny(family="encoder"))
    with pytest.raises(ValueError, match="encoder"):
        m(ids(), cache=m.build_kv_cache(B, T))
