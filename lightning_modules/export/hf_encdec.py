"""Hugging Face ``transformers`` for ``family=encoder_decoder``: T5, Blenderbot, Pegasus.

Which class computes exactly what an adaptnas encoder-decoder computes (``encdec_family``):

* ``norm=rmsnorm``, pre-norm, ``pos=none`` or ``pos=alibi``, tied embeddings -> **T5**
  (``T5ForConditionalGeneration``). ``T5LayerNorm`` is RMSNorm; T5 does not scale attention scores
  by ``1/sqrt(head_dim)``, so the scale is folded into the query weights. Its relative position
  bias is a table of buckets: zero for ``pos=none``; for ``pos=alibi`` the buckets are made exact
  for every distance up to ``max_seq_len`` and hold ``-slope * distance``. ``mlp`` gelu/relu map
  onto its plain MLP, swiglu onto ``feed_forward_proj="gated-silu"``.
* ``norm=layernorm``, pre-norm, gelu or relu MLP, ``norm_eps=1e-5`` (both fix it):
  ``pos=learned`` -> **Blenderbot** (final norms, no embedding norm, no position offset);
  ``pos=sinusoidal`` -> **Pegasus**, whose table is a frozen ``embed_positions`` weight stored in
  the checkpoint: it gets adaptnas's table (sin/cos interleaved, scaled by ``init_std``), which
  Pegasus's own formula lays out differently. Their linear biases are set to zero.

Post-norm LayerNorm models do not map: BART and BlenderbotSmall (learned positions) normalise
the embeddings (``layernorm_embedding``, which adaptnas models lack; BART also offsets its
positions by 2), and Marian (sinusoidal) drops its table from the checkpoint and rebuilds its own
on loading. mBART (pre-norm) has ``layernorm_embedding`` too. Key/value head sharing (GQA, MQA)
is expanded into full heads, which computes the same attention.

Generation: the exported ``generation_config`` starts the decoder with ``[SEP]`` (what
``lightning_modules.generate`` and denoising pretraining feed it), stops at ``[EOS]`` and pads
with ``[PAD]``, so ``generate`` on ``[BOS] source [SEP]`` gives our greedy decode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import BOS, EOS, PAD, SEP, SPECIAL_TOKENS
from lightning_modules.model import Block, Transformer, alibi_slopes

# The class-name prefix of each mapped family.
ENCDEC_PREFIX = {"t5": "T5", "blenderbot": "Blenderbot", "pegasus": "Pegasus"}
# Seq2seq LM class of each family.
ENCDEC_LM_CLASS = {p: f"{c}ForConditionalGeneration" for p, c in ENCDEC_PREFIX.items()}
# LayerNorm epsilon that Blenderbot and Pegasus hard-code (``nn.LayerNorm``'s default).
BART_LIKE_EPS = 1e-5


def encdec_family(cfg: TransformerConfig) -> tuple[str | None, str]:
    """Which ``transformers`` encoder-decoder ``cfg`` is exactly, or why none is.

    Returns:
        ``(family, "")`` with family ``t5``, ``blenderbot`` or ``pegasus``, or
        ``(None, reason)`` where the reason starts with the knob (``knob=value``) that prevents it.
    """
    n = cfg.n_layer
    if cfg.norm == "rmsnorm":
        if cfg.norm_position != "pre":
            return None, "norm_position=post: T5 (the RMSNorm encoder-decoder) is pre-norm"
        if cfg.pos not in ("none", "alibi"):
            return None, (
                f"pos={cfg.pos}: T5 (the RMSNorm encoder-decoder) has relative position biases "
                "only; pos=none and pos=alibi map onto them"
            )
        if len(set(cfg.d_ff)) > 1:
            return None, f"d_ff={cfg.d_ff}: T5 has one MLP width for every block of both stacks"
        if not cfg.tie_embeddings:
            return None, (
                "tie_embeddings=False: transformers' T5 always ties its LM head to the token "
                "embedding"
            )
        return "t5", ""
    if cfg.mlp == "swiglu":
        return None, (
            "mlp=swiglu: the LayerNorm encoder-decoders of transformers (Blenderbot, Pegasus) "
            "have an ungated MLP; a gated one maps only with norm=rmsnorm (T5)"
        )
    if len(set(cfg.d_ff[:n])) > 1 or len(set(cfg.d_ff[n:])) > 1:
        return None, (f"d_ff={cfg.d_ff}: Blenderbot and Pegasus have one MLP width per stack")
    if cfg.norm_eps != BART_LIKE_EPS:
        return None, (
            f"norm_eps={cfg.norm_eps}: Blenderbot and Pegasus fix their LayerNorm "
            f"epsilon at {BART_LIKE_EPS}"
        )
    if cfg.pos not in ("learned", "sinusoidal"):
        return None, (
            f"pos={cfg.pos}: the LayerNorm encoder-decoders of transformers take learned "
            "(Blenderbot) or sinusoidal (Pegasus) positions"
        )
    if cfg.norm_position != "pre":
        return None, (
            "norm_position=post: the post-norm encoder-decoders of transformers either normalise "
            "their embeddings (BART, BlenderbotSmall: layernorm_embedding, which adaptnas models "
            "lack) or rebuild their own sinusoidal table on loading (Marian)"
        )
    return ("blenderbot" if cfg.pos == "learned" else "pegasus"), ""


def _ids() -> dict[str, int]:
    return {
        "pad_token_id": SPECIAL_TOKENS.index(PAD),
        "bos_token_id": SPECIAL_TOKENS.index(BOS),
        "eos_token_id": SPECIAL_TOKENS.index(EOS),
        # The decoder's first input: [SEP], the prompt's last token (generate.py, denoising).
        "decoder_start_token_id": SPECIAL_TOKENS.index(SEP),
    }


def t5_buckets(cfg: TransformerConfig) -> int:
    """Relative-position buckets of the T5 export: exact distances up to ``max_seq_len``.

    T5's encoder splits its buckets into two directions and keeps the first half of each exact,
    so ``4 * max_seq_len`` buckets make every distance of a ``max_seq_len`` sequence its own
    bucket (the decoder, one direction, then has ``2 * max_seq_len`` exact ones). ``pos=none``
    keeps T5's default 32: its table is zero anyway.
    """
    return 4 * cfg.max_seq_len if cfg.pos == "alibi" else 32


def encdec_config(cfg: TransformerConfig, family: str):
    """The ``transformers`` config of ``family`` for ``cfg`` (dropout off, our special ids)."""
    import transformers as tf

    n = cfg.n_layer
    if family == "t5":
        mlp = {"gelu": "gelu", "relu": "relu", "swiglu": "gated-silu"}[cfg.mlp]
        buckets = t5_buckets(cfg)
        return tf.T5Config(
            vocab_size=cfg.vocab_size,
            d_model=cfg.d_model,
            d_kv=cfg.head_dim,
            d_ff=cfg.d_ff[0],
            num_layers=n,
            num_decoder_layers=cfg.n_dec_layer,
            num_heads=cfg.n_head,
            relative_attention_num_buckets=buckets,
            # Past every exact bucket, so T5's logarithmic buckets stay well defined.
            relative_attention_max_distance=2 * buckets,
            dropout_rate=0.0,
            layer_norm_epsilon=cfg.norm_eps,
            feed_forward_proj=mlp,
            # T5 always ties the head; ``False`` here only turns off its d_model**-0.5 rescale
            # of the decoder output, which adaptnas does not have.
            tie_word_embeddings=False,
            **_ids(),
        )
    cls = {"blenderbot": tf.BlenderbotConfig, "pegasus": tf.PegasusConfig}[family]
    return cls(
        vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.max_seq_len,
        d_model=cfg.d_model,
        encoder_layers=n,
        decoder_layers=cfg.n_dec_layer,
        encoder_attention_heads=cfg.n_head,
        decoder_attention_heads=cfg.n_head,
        encoder_ffn_dim=cfg.d_ff[0],
        decoder_ffn_dim=cfg.d_ff[n],
        # "gelu" is the exact erf GELU, F.gelu's default.
        activation_function=cfg.mlp,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        scale_embedding=False,
        tie_word_embeddings=cfg.tie_embeddings,
        init_std=cfg.init_std,
        forced_eos_token_id=None,
        **_ids(),
    )


def encdec_generation_config(cfg: TransformerConfig):
    """Greedy decoding as ``lightning_modules.generate`` does it (no n-gram blocking, no forcing).

    ``max_length`` counts the decoder's start token too: the decoder's positions end at
    ``max_seq_len``.
    """
    from transformers import GenerationConfig

    return GenerationConfig(max_length=cfg.max_seq_len, num_beams=1, do_sample=False, **_ids())


# ---- weights ---------------------------------------------------------------------------------
def _full_heads(w: Tensor, cfg: TransformerConfig) -> Tensor:
    """Key or value rows ``(kv_dim, d)`` repeated per query head that shares them ``(d, d)``.

    SDPA's ``enable_gqa`` pairs query head h with key/value head ``h // group``; repeating each
    key/value head ``group`` times in place gives full multi-head attention with the same result.
    """
    group = cfg.n_head // cfg.n_kv_head
    w = w.reshape(cfg.n_kv_head, cfg.head_dim, w.shape[-1])
    return w.repeat_interleave(group, dim=0).reshape(cfg.d_model, w.shape[-1])


def _attn(blk: Block, cfg: TransformerConfig, cross: bool) -> tuple[Tensor, ...]:
    """``(q, k, v, o)`` weights of a block's self- or cross-attention, k and v as full heads."""
    d, kv = cfg.d_model, cfg.kv_dim
    if cross:
        q = blk.cross.q.weight
        k, v = blk.cross.kv.weight.split([kv, kv], dim=0)
        o = blk.cross.proj.weight
    else:
        q, k, v = blk.attn.qkv.weight.split([d, kv, kv], dim=0)
        o = blk.attn.proj.weight
    return q, _full_heads(k, cfg), _full_heads(v, cfg), o


def _norm(norm, prefix: str) -> dict[str, Tensor]:
    out = {prefix + ".weight": norm.weight}
    if getattr(norm, "bias", None) is not None:
        out[prefix + ".bias"] = norm.bias
    return out


def _t5_attention(blk: Block, cfg: TransformerConfig, cross: bool, p: str) -> dict[str, Tensor]:
    q, k, v, o = _attn(blk, cfg, cross)
    # T5 takes q.k unscaled: fold our 1/sqrt(head_dim) into the queries.
    scale = 1.0 / math.sqrt(cfg.head_dim)
    return {p + "q.weight": q * scale, p + "k.weight": k, p + "v.weight": v, p + "o.weight": o}


def _t5_mlp(blk: Block, p: str) -> dict[str, Tensor]:
    if blk.mlp.w3 is not None:  # ours: w2(silu(w1 x) * w3 x); T5: wo(act(wi_0 x) * wi_1 x)
        return {
            p + "wi_0.weight": blk.mlp.w1.weight,
            p + "wi_1.weight": blk.mlp.w3.weight,
            p + "wo.weight": blk.mlp.w2.weight,
        }
    return {p + "wi.weight": blk.mlp.w1.weight, p + "wo.weight": blk.mlp.w2.weight}


def t5_bias_table(cfg: TransformerConfig, bidirectional: bool) -> Tensor:
    """``relative_attention_bias`` ``(buckets, n_head)``: zero, or ALiBi's ``-slope * distance``.

    A bidirectional (encoder) table holds keys before or at the query in buckets ``[0, B/2)`` and
    keys after it in ``[B/2, B)``, each at bucket ``offset + distance``; a causal (decoder) table
    holds distance ``b`` in bucket ``b``. Distances within ``max_seq_len`` land in exact buckets
    (``t5_buckets``); the logarithmic buckets past them get the distance they start at.
    """
    buckets = t5_buckets(cfg)
    if cfg.pos != "alibi":
        return torch.zeros(buckets, cfg.n_head)
    side = buckets // 2 if bidirectional else buckets
    distance = torch.arange(side, dtype=torch.float32)  # (side,) exact part
    exact = side // 2
    # Past ``exact`` T5 spaces buckets logarithmically up to ``2 * buckets``; a bucket's distance
    # is the smallest one that falls in it (never reached within max_seq_len).
    large = torch.arange(exact, side, dtype=torch.float32)
    distance[exact:] = exact * (2 * buckets / exact) ** ((large - exact) / (side - exact))
    if bidirectional:
        distance = torch.cat([distance, distance])  # (buckets,) both directions
    return -alibi_slopes(cfg.n_head)[None, :] * distance[:, None]  # (buckets, H)


def t5_state(bb: Transformer, encoder_only: bool = False) -> dict[str, Tensor]:
    """Our backbone's tensors under T5's names (``T5ForConditionalGeneration`` or, with
    ``encoder_only``, ``T5EncoderModel``); tied copies of the embedding included."""
    cfg = bb.cfg
    out = {
        "shared.weight": bb.tok_emb.weight,
        "encoder.embed_tokens.weight": bb.tok_emb.weight,
        "encoder.final_layer_norm.weight": bb.norm_f.weight,
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": t5_bias_table(
            cfg, bidirectional=True
        ),
    }
    for i, blk in enumerate(bb.blocks):
        p = f"encoder.block.{i}.layer."
        out |= _t5_attention(blk, cfg, False, p + "0.SelfAttention.")
        out |= {p + "0.layer_norm.weight": blk.norm1.weight}
        out |= _t5_mlp(blk, p + "1.DenseReluDense.")
        out |= {p + "1.layer_norm.weight": blk.norm2.weight}
    if encoder_only:
        return out
    out |= {
        "decoder.embed_tokens.weight": bb.tok_emb.weight,
        "decoder.final_layer_norm.weight": bb.dec_norm_f.weight,
        "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": t5_bias_table(
            cfg, bidirectional=False
        ),
    }
    for i, blk in enumerate(bb.dec_blocks):
        p = f"decoder.block.{i}.layer."
        out |= _t5_attention(blk, cfg, False, p + "0.SelfAttention.")
        out |= {p + "0.layer_norm.weight": blk.norm1.weight}
        out |= _t5_attention(blk, cfg, True, p + "1.EncDecAttention.")
        out |= {p + "1.layer_norm.weight": blk.norm_cross.weight}
        out |= _t5_mlp(blk, p + "2.DenseReluDense.")
        out |= {p + "2.layer_norm.weight": blk.norm2.weight}
    return out


def _bart_attention(blk: Block, cfg: TransformerConfig, cross: bool, p: str) -> dict[str, Tensor]:
    q, k, v, o = _attn(blk, cfg, cross)
    d = cfg.d_model
    out = {}
    for name, w in (("q_proj", q), ("k_proj", k), ("v_proj", v), ("out_proj", o)):
        out |= {f"{p}{name}.weight": w, f"{p}{name}.bias": torch.zeros(d)}  # ours have none
    return out


def _bart_mlp(blk: Block, p: str) -> dict[str, Tensor]:
    w1, w2 = blk.mlp.w1.weight, blk.mlp.w2.weight
    return {
        p + "fc1.weight": w1,
        p + "fc1.bias": torch.zeros(w1.shape[0]),
        p + "fc2.weight": w2,
        p + "fc2.bias": torch.zeros(w2.shape[0]),
    }


def bart_like_state(bb: Transformer, family: str) -> dict[str, Tensor]:
    """Our backbone's tensors under Blenderbot's or Pegasus's names (``model.``...)."""
    cfg = bb.cfg
    if cfg.pos == "learned":
        positions = bb.pos_emb.weight  # (L, d)
    else:  # the sinusoidal table ours adds, into their frozen position weight
        positions = bb.pos_table  # (L, d)
    out = {"model.shared.weight": bb.tok_emb.weight}
    for stack, blocks, norm_f in (
        ("encoder", bb.blocks, bb.norm_f),
        ("decoder", bb.dec_blocks, bb.dec_norm_f),
    ):
        s = f"model.{stack}."
        out |= {
            s + "embed_tokens.weight": bb.tok_emb.weight,
            s + "embed_positions.weight": positions,
        }
        if norm_f is not None:  # pre-norm: each stack's final norm
            out |= _norm(norm_f, s + "layer_norm")
        for i, blk in enumerate(blocks):
            p = f"{s}layers.{i}."
            out |= _bart_attention(blk, cfg, False, p + "self_attn.")
            out |= _norm(blk.norm1, p + "self_attn_layer_norm")
            if blk.cross is not None:
                out |= _bart_attention(blk, cfg, True, p + "encoder_attn.")
                out |= _norm(blk.norm_cross, p + "encoder_attn_layer_norm")
            out |= _bart_mlp(blk, p)
            out |= _norm(blk.norm2, p + "final_layer_norm")
    return out


def encdec_state(bb: Transformer, family: str, lm_head: Tensor | None) -> dict[str, Tensor]:
    """Every parameter of the ``family`` seq2seq LM, tied copies included; ``lm_head`` is ours."""
    state = t5_state(bb) if family == "t5" else bart_like_state(bb, family)
    state["lm_head.weight"] = bb.tok_emb.weight if lm_head is None else lm_head
    return state


def split_for_decoder(batch: dict[str, Tensor]) -> dict[str, Any]:
    """The encoder and decoder inputs that parity feeds both models, from one batch.

    A generation task's batch (with ``prefix_len``) splits its stream as the task trains on it
    (``split_stream``): the prompt to the encoder, ``[SEP] target`` to the decoder. A block of
    text (the language model's check) goes to the encoder whole, and the decoder reads it shifted
    right behind ``[SEP]``, as denoising pretraining does (teacher forcing).

    Returns:
        ``input_ids``, ``attention_mask`` (encoder), ``decoder_input_ids`` and ``decoder_mask``
        (the decoder positions to compare).
    """
    ids, mask = batch["input_ids"].long().cpu(), batch["attention_mask"].long().cpu()
    if "prefix_len" in batch:
        from lightning_modules.tasks.generation import split_stream

        source_mask, dec_ids, dec_mask, _ = split_stream(ids, mask, batch["prefix_len"].cpu())
        return {
            "input_ids": ids,
            "attention_mask": source_mask,
            "decoder_input_ids": dec_ids,
            "decoder_mask": dec_mask,
        }
    start = torch.full_like(ids[:, :1], SPECIAL_TOKENS.index(SEP))  # (B, 1)
    dec_ids = torch.cat((start, ids[:, :-1]), dim=1)  # (B, T)
    dec_mask = torch.cat((torch.ones_like(mask[:, :1]), mask[:, :-1]), dim=1)  # (B, T)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "decoder_input_ids": dec_ids * dec_mask,
        "decoder_mask": dec_mask,
    }
