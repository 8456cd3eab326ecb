"""One Transformer whose parts are picked from a ``TransformerConfig``.

nanoGPT-style: one ``Block`` class serves every variant; the config decides which norm, MLP,
position scheme and attention pattern it uses, so there is no subclass per variant and the
parameter count always matches ``TransformerConfig.num_params``.

Shapes: B batch, T sequence length, d ``d_model``, H query heads, Hkv key/value heads,
hd ``head_dim``, f ``d_ff`` of the block, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig

__all__ = ["LanguageModel", "Transformer", "build_model"]


def build_model(cfg: TransformerConfig) -> LanguageModel:
    """Build an initialised language model for ``cfg``.

    Args:
        cfg: A validated architecture (``TransformerConfig.__post_init__`` has already rejected
            impossible knob combinations).

    Returns:
        The backbone plus its LM head, in training mode, on the CPU, in float32.
    """
    return LanguageModel(cfg)


# ---- small parts -----------------------------------------------------------------------------
def make_norm(cfg: TransformerConfig) -> nn.Module:
    """A ``LayerNorm`` (weight and bias) or an ``RMSNorm`` (weight only) of width ``d_model``."""
    if cfg.norm == "layernorm":
        return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)


def alibi_slopes(n_head: int) -> Tensor:
    """Per-head ALiBi slopes, the geometric sequence of Press et al. (2022).

    Args:
        n_head: Number of query heads.

    Returns:
        A float tensor of shape ``(n_head,)``.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(power_of_two(n_head))
    # The paper's recipe for other head counts: the closest power of two, then every other
    # slope of twice that many, so the slopes still span the same range.
    closest = 2 ** math.floor(math.log2(n_head))
    extra = power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(power_of_two(closest) + extra)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs ``(x[i], x[i + hd/2])`` by position-dependent angles (GPT-NeoX layout).

    Args:
        x: Queries or keys, ``(B, heads, T, hd)``.
        cos: ``(T, hd/2)`` cosines of the angles.
        sin: ``(T, hd/2)`` sines of the angles.

    Returns:
        A tensor shaped like ``x``.
    """
    x1, x2 = x.chunk(2, dim=-1)  # (B, heads, T, hd/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, heads, T, hd)


class Attention(nn.Module):
    """Multi-head self-attention with ``n_kv_head`` key/value heads (MHA, GQA or MQA)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.d_model, self.kv_dim = cfg.d_model, cfg.kv_dim
        # One matmul for q, k and v: the same parameters as three Linears, one kernel launch.
        self.qkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * cfg.kv_dim, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        is_causal: bool,
        rope: tuple[Tensor, Tensor] | None,
    ) -> Tensor:
        """Attend over the sequence.

        Args:
            x: ``(B, T, d)`` normalised (pre-norm) or raw (post-norm) residual stream.
            mask: ``None``, a bool mask (True = may attend) or a float bias added to the scores,
                broadcastable to ``(B, H, T, T)``.
            is_causal: Let the kernel apply the causal mask itself (only with ``mask=None``).
            rope: ``(cos, sin)`` tables for the first T positions, or ``None``.

        Returns:
            ``(B, T, d)``.
        """
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split([self.d_model, self.kv_dim, self.kv_dim], dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            # Only ask for head broadcasting when there is some: plain MHA keeps every kernel.
            enable_gqa=self.n_kv_head != self.n_head,
        )  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, d)
        return self.proj(y)  # (B, T, d)


class MLP(nn.Module):
    """Position-wise feed-forward: ``w2(act(w1 x))``, or ``w2(silu(w1 x) * w3 x)`` for SwiGLU."""

    _ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
        "gelu": F.gelu,
        "relu": F.relu,
        "swiglu": F.silu,
    }

    def __init__(self, cfg: TransformerConfig, d_ff: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, d_ff, bias=False)
        self.w3 = nn.Linear(cfg.d_model, d_ff, bias=False) if cfg.mlp == "swiglu" else None
        self.w2 = nn.Linear(d_ff, cfg.d_model, bias=False)
        self.act = self._ACTIVATIONS[cfg.mlp]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, d)`` -> ``(B, T, d)``."""
        h = self.act(self.w1(x))  # (B, T, f)
        if self.w3 is not None:
            h = h * self.w3(x)  # (B, T, f) the gate
        return self.w2(h)  # (B, T, d)


class Block(nn.Module):
    """Attention then MLP, each wrapped in a residual with a pre- or post-norm."""

    def __init__(self, cfg: TransformerConfig, d_ff: int) -> None:
        super().__init__()
        self.pre_norm = cfg.norm_position == "pre"
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg, d_ff)
        # Dropout has no state, so one module serves both residual branches.
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        is_causal: bool,
        rope: tuple[Tensor, Tensor] | None,
    ) -> Tensor:
        """``(B, T, d)`` -> ``(B, T, d)``; see ``Attention.forward`` for the other arguments."""
        if self.pre_norm:
            x = x + self.drop(self.attn(self.norm1(x), mask, is_causal, rope))  # (B, T, d)
            return x + self.drop(self.mlp(self.norm2(x)))  # (B, T, d)
        x = self.norm1(x + self.drop(self.attn(x, mask, is_causal, rope)))  # (B, T, d)
        return self.norm2(x + self.drop(self.mlp(x)))  # (B, T, d)


# ---- the backbone ----------------------------------------------------------------------------
class Transformer(nn.Module):
    """Token embedding, positions, ``n_layer`` blocks and (pre-norm only) a final norm.

    Attributes:
        cfg: The architecture this was built from.
        tok_emb: ``nn.Embedding(vocab_size, d_model)``; the LM head may share its weight.
        pos_emb: ``nn.Embedding(max_seq_len, d_model)`` for ``pos='learned'``, else ``None``.
        blocks: The ``n_layer`` blocks.
        norm_f: Final norm for ``norm_position='pre'``; ``None`` for post-norm, whose blocks
            already end in a norm.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, f) for f in cfg.d_ff)
        self.norm_f = make_norm(cfg) if cfg.norm_position == "pre" else None

        # Fixed tables are non-persistent buffers: they follow .to(device) but stay out of
        # checkpoints, which then load into a model with a different max_seq_len.
        positions = torch.arange(cfg.max_seq_len, dtype=torch.float32)
        if cfg.pos == "sinusoidal":
            freqs = torch.exp(
                torch.arange(0, cfg.d_model, 2, dtype=torch.float32)
                * (-math.log(10000.0) / cfg.d_model)
            )  # (d/2,)
            table = torch.zeros(cfg.max_seq_len, cfg.d_model)
            table[:, 0::2] = torch.sin(positions[:, None] * freqs)
            table[:, 1::2] = torch.cos(positions[:, None] * freqs)
            # Scaled to the token embedding's init scale (as learned positions are): at unit
            # amplitude the table would swamp N(0, init_std) token vectors ~35x after the norm.
            self.register_buffer("pos_table", table * cfg.init_std, persistent=False)  # (L, d)
        if cfg.pos == "rope":
            inv_freq = cfg.rope_base ** (
                -torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim
            )  # (hd/2,)
            angles = positions[:, None] * inv_freq  # (L, hd/2)
            self.register_buffer("rope_cos", angles.cos(), persistent=False)  # (L, hd/2)
            self.register_buffer("rope_sin", angles.sin(), persistent=False)  # (L, hd/2)
        if cfg.pos == "alibi":
            self.register_buffer("alibi_slopes", alibi_slopes(cfg.n_head), persistent=False)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, init_std) everywhere, residual outputs shrunk by 1/sqrt(2 n_layer).

        The shrink keeps the residual stream's variance from growing with depth, since every
        block adds two branches to it.
        """
        std = self.cfg.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.LayerNorm | nn.RMSNorm):
                nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        out_std = std / math.sqrt(2 * self.cfg.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=out_std)
            nn.init.normal_(block.mlp.w2.weight, mean=0.0, std=out_std)

    def build_attn_mask(
        self,
        batch: int,
        seq_len: int,
        device: torch.device,
        dtype: torch.dtype,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
    ) -> tuple[Tensor | None, bool]:
        """The one mask every layer of this forward pass shares.

        Args:
            batch: B.
            seq_len: T.
            device: Where the mask lives.
            dtype: Dtype of a float (ALiBi) mask; the hidden states' dtype.
            attention_mask: ``(B, T)``, 1 for real tokens, 0 for padding, or ``None``.
            prefix_len: ``(B,)`` bidirectional prefix lengths (``prefix_lm`` only), or ``None``.

        Returns:
            ``(mask, is_causal)``: ``mask`` is ``None``, a bool ``(B or 1, 1, T, T)`` mask
            (True = may attend) or a float ``(B or 1, H, T, T)`` bias; ``is_causal`` asks the
            kernel for its built-in causal mask and is only True when ``mask`` is ``None``.
        """
        family, alibi = self.cfg.family, self.cfg.pos == "alibi"
        if family == "prefix_lm" and prefix_len is None:
            family = "decoder"  # without a prefix there is nothing bidirectional
        if not alibi:
            # Fast paths, no mask tensor: with right padding a causal query never reaches a pad
            # key, so the decoder can ignore attention_mask altogether.
            if family == "decoder":
                return None, True
            if family == "encoder" and attention_mask is None:
                return None, False

        i = torch.arange(seq_len, device=device)[:, None]  # (T, 1) query positions
        j = torch.arange(seq_len, device=device)[None, :]  # (1, T) key positions
        allowed = torch.ones(1, 1, seq_len, seq_len, dtype=torch.bool, device=device)
        if family in ("decoder", "prefix_lm"):
            allowed = (j <= i).view(1, 1, seq_len, seq_len)
        if family == "prefix_lm":
            prefix = torch.as_tensor(prefix_len, device=device).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
            # Every query may see the whole prefix; queries after it see the prefix anyway.
            allowed = allowed | (j < prefix)  # (B, 1, T, T)
        if attention_mask is not None:
            real = attention_mask.to(device=device, dtype=torch.bool).view(batch, 1, 1, seq_len)
            # Keep the diagonal so that pad queries (and all-pad rows) still attend somewhere
            # instead of softmaxing over nothing into NaN; real queries are unaffected.
            allowed = (allowed & real) | (i == j)  # (B, 1, T, T)
        if not alibi:
            return allowed, False

        # ALiBi: -slope * distance. |i - j| also covers the causal part, where it is i - j.
        distance = (i - j).abs().to(dtype)  # (T, T)
        bias = -self.alibi_slopes.to(dtype).view(1, -1, 1, 1) * distance  # (1, H, T, T)
        return bias.masked_fill(~allowed, float("-inf")), False  # (B or 1, H, T, T)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
    ) -> Tensor:
        """Hidden states of every position.

        Args:
            input_ids: ``(B, T)`` token ids, T <= ``max_seq_len``.
            attention_mask: ``(B, T)``, 1 for real tokens and 0 for right padding. Real tokens
                never attend to padding; pad positions' outputs are meaningless.
            prefix_len: ``(B,)`` length of the bidirectional prefix of each sequence. Used by
                the ``prefix_lm`` family only (ignored by the others, so one data pipeline can
                feed every family); a ``prefix_lm`` without it is causal.

        Returns:
            ``(B, T, d_model)``, after the final norm for pre-norm models.
        """
        B, T = input_ids.shape
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.cfg.max_seq_len}")
        x = self.tok_emb(input_ids)  # (B, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(T, device=input_ids.device))  # (B, T, d)
        elif self.cfg.pos == "sinusoidal":
            x = x + self.pos_table[:T].to(x.dtype)  # (B, T, d)
        x = self.drop(x)

        mask, is_causal = self.build_attn_mask(
            B, T, x.device, x.dtype, attention_mask=attention_mask, prefix_len=prefix_len
        )
        rope = None
        if self.cfg.pos == "rope":
            rope = (self.rope_cos[:T].to(x.dtype), self.rope_sin[:T].to(x.dtype))  # (T, hd/2)
        for block in self.blocks:
            x = block(x, mask, is_causal, rope)  # (B, T, d)
        if self.norm_f is not None:
            x = self.norm_f(x)  # (B, T, d)
        return x


# ---- the language model ----------------------------------------------------------------------
class LanguageModel(nn.Module):
    """A ``Transformer`` backbone plus a bias-free projection onto the vocabulary.

    Attributes:
        cfg: The architecture this was built from.
        backbone: The ``Transformer``.
        lm_head: ``nn.Linear(d_model, vocab_size, bias=False)``; with ``cfg.tie_embeddings``
            its weight is the very tensor ``backbone.tok_emb.weight``.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Transformer(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            # Share the Parameter itself, so optimisers and num_params() see it once.
            self.lm_head.weight = self.backbone.tok_emb.weight
        else:
            # nn.Linear's default (uniform, ~1/sqrt(d)) would not match the rest; see
            # Transformer.reset_parameters.
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=cfg.init_std)

    def hidden(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
    ) -> Tensor:
        """Backbone states ``(B, T, d)``; the arguments are those of ``Transformer.forward``."""
        return self.backbone(input_ids, attention_mask=attention_mask, prefix_len=prefix_len)

    def logits_from_hidden(self, h: Tensor) -> Tensor:
        """Project hidden states ``(..., d)`` onto the vocabulary ``(..., V)``.

        Callers that need only some positions (masked LM, last-token decoding) select them
        first, which saves the largest matmul of a small model.
        """
        return self.lm_head(h)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
    ) -> Tensor:
        """Next-token (or masked-token) logits ``(B, T, V)`` of every position.

        Args:
            input_ids: ``(B, T)`` token ids.
            attention_mask: ``(B, T)`` 1 real / 0 pad (right padding), or ``None``.
            prefix_len: ``(B,)`` bidirectional prefix lengths for ``prefix_lm``, or ``None``.

        Returns:
            ``(B, T, vocab_size)`` logits.
        """
        h = self.hidden(input_ids, attention_mask=attention_mask, prefix_len=prefix_len)
        return self.logits_from_hidden(h)  # (B, T, V)

    def num_params(self) -> int:
        """Number of unique parameters (a tied head counts once); equals ``cfg.num_params()``."""
        return sum(p.numel() for p in self.parameters())
