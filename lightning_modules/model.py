"""One Transformer whose parts are picked from a ``TransformerConfig``.

nanoGPT-style: one ``Block`` class serves every variant; the config decides which norm, MLP,
position scheme and attention pattern it uses, so there is no subclass per variant and the
parameter count always matches ``TransformerConfig.num_params``.

Shapes: B batch, T sequence length, d ``d_model``, H query heads, Hkv key/value heads,
hd ``head_dim``, f ``d_ff`` of the block, V vocabulary, S columns of a KV cache.

Incremental decoding (litgpt's design): ``LanguageModel.build_kv_cache`` returns a ``KVCache``
that the forward pass takes as an optional argument. The first call with an empty cache runs the
prompt exactly as the uncached forward does and keeps every layer's keys and values; each later
call feeds only the new tokens, which attend to the kept keys (``lightning_modules.generate``
holds the decoding strategies only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig

__all__ = ["KVCache", "LanguageModel", "LayerKV", "Transformer", "build_model"]


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
        cos: Cosines of the angles, broadcastable to ``(B, 1, T, hd/2)``.
        sin: Sines of the angles, the same shape.

    Returns:
        A tensor shaped like ``x``.
    """
    x1, x2 = x.chunk(2, dim=-1)  # (B, heads, T, hd/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, heads, T, hd)


# ---- the KV cache ----------------------------------------------------------------------------
class LayerKV:
    """Keys and values of one attention layer, appended to as decoding goes on.

    The tensors are allocated on the first ``append``, in the dtype of the keys it gets (under
    autocast attention runs in bf16/fp16, not in the parameters' dtype).
    """

    def __init__(self, batch: int, n_kv_head: int, length: int, head_dim: int) -> None:
        self.shape = (batch, n_kv_head, length, head_dim)  # (B, Hkv, S, hd)
        self.keys: Tensor | None = None
        self.values: Tensor | None = None
        self.length = 0  # columns filled

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``k``, ``v`` (B, Hkv, T, hd) after the kept columns; all keys/values so far."""
        if self.keys is None or self.values is None:
            self.keys, self.values = k.new_zeros(self.shape), v.new_zeros(self.shape)
        start, end = self.length, self.length + k.shape[2]
        if end > self.shape[2]:
            raise ValueError(f"KV cache of {self.shape[2]} columns cannot take {end}")
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        if start == 0:  # the prompt pass attends over the fresh tensors, as without a cache
            return k, v
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, Hkv, end, hd)

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows ``index`` (B',), in that order (beam search)."""
        if self.keys is not None and self.values is not None:
            self.keys = self.keys.index_select(0, index)
            self.values = self.values.index_select(0, index)
        self.shape = (len(index), *self.shape[1:])


class KVCache:
    """What incremental decoding keeps between forward calls: one ``LayerKV`` per block plus
    which position of which row each cache column holds.

    Rows may be right-padded in the prompt pass; pad columns stay masked afterwards, and each
    row's next token takes its own row's next position (not the padded width), so a batch
    decodes what each prompt decodes alone.

    Attributes:
        layers: One ``LayerKV`` per block (per decoder block, for ``encoder_decoder``).
        cross: ``encoder_decoder`` only: each decoder block's cross-attention keys and values,
            ``(B, Hkv, S_enc, hd)`` each, computed from the encoder's states on the first call.
        memory_mask: ``(B, 1, 1, S_enc)`` real encoder positions, kept with them.
        valid: ``(B, S)`` True where a column holds a real (not pad) key.
        key_pos: ``(B, S)`` position of the token in each column (ALiBi distances).
        next_pos: ``(B,)`` position of each row's next token.
    """

    def __init__(self, cfg: TransformerConfig, batch: int, length: int, device) -> None:
        self.length = length
        n = cfg.n_dec_layer or cfg.n_layer  # an encoder_decoder caches its decoder
        self.layers = [LayerKV(batch, cfg.n_kv_head, length, cfg.head_dim) for _ in range(n)]
        # encoder_decoder: each decoder block's cross-attention keys/values, computed once from
        # the encoder's states, and the (B, 1, 1, S_enc) mask of their real columns.
        self.cross: list[tuple[Tensor, Tensor] | None] = [None] * n
        self.memory_mask: Tensor | None = None
        self.valid = torch.zeros(batch, length, dtype=torch.bool, device=device)  # (B, S)
        self.key_pos = torch.zeros(batch, length, dtype=torch.long, device=device)  # (B, S)
        self.next_pos = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)
        self.slot = 0  # cache column of the next token (the same for every row)

    def positions(self, T: int, device: torch.device) -> Tensor:
        """Positions of the T tokens of this call: ``(T,)`` in the prompt pass, else ``(B, T)``."""
        if self.slot == 0:
            return torch.arange(T, device=device)
        return self.next_pos[:, None] + torch.arange(T, device=device)

    def record(self, pos: Tensor, real: Tensor | None) -> None:
        """Mark the columns of this call's tokens: ``real`` (B, T) in the prompt pass."""
        T = pos.shape[-1]
        if self.slot == 0:
            real = torch.ones_like(self.valid[:, :T]) if real is None else real.bool()
            self.valid[:, :T] = real
            self.key_pos[:, :T] = pos
            self.next_pos = real.sum(1)  # (B,) right padding: the length of each row
        else:
            self.valid[:, self.slot : self.slot + T] = True
            self.key_pos[:, self.slot : self.slot + T] = pos
            self.next_pos = self.next_pos + T

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows ``index`` (finished rows dropped, beams repeated), in order."""
        if len(index) == self.valid.shape[0] and bool(
            (index == torch.arange(len(index), device=index.device)).all()
        ):
            return
        for layer in self.layers:
            layer.reorder(index)
        self.cross = [
            None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index))
            for kv in self.cross
        ]
        if self.memory_mask is not None:
            self.memory_mask = self.memory_mask.index_select(0, index)
        self.valid = self.valid.index_select(0, index)
        self.key_pos = self.key_pos.index_select(0, index)
        self.next_pos = self.next_pos.index_select(0, index)


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
        cache: LayerKV | None = None,
    ) -> Tensor:
        """Attend over the sequence (and, with ``cache``, over the kept keys before it).

        Args:
            x: ``(B, T, d)`` normalised (pre-norm) or raw (post-norm) residual stream.
            mask: ``None``, a bool mask (True = may attend) or a float bias added to the scores,
                broadcastable to ``(B, H, T, S)`` (S = T without a cache).
            is_causal: Let the kernel apply the causal mask itself (only with ``mask=None``).
            rope: ``(cos, sin)`` tables of the T positions, ``(T or B, 1, T, hd/2)``, or ``None``.
            cache: This layer's kept keys/values; the new ones are appended to it.

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
        if cache is not None:
            k, v = cache.append(k, v)  # (B, Hkv, S, hd)
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


class CrossAttention(nn.Module):
    """Decoder queries attend over the encoder's states (``encoder_decoder``).

    No positions here (T5 and BART add none to cross-attention): the encoder's states already
    carry theirs. Keys and values depend on the encoder only, so a cache computes them once.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.d_model, self.kv_dim = cfg.d_model, cfg.kv_dim
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.kv_dim, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(
        self, x: Tensor, memory: Tensor | None, memory_mask: Tensor | None, cache, layer: int
    ) -> Tensor:
        """Attend from ``x`` (B, T, d) over ``memory`` (B, S, d).

        Args:
            x: Decoder states, normalised (pre-norm) or raw (post-norm).
            memory: The encoder's states; may be ``None`` once ``cache`` holds their keys.
            memory_mask: ``(B, 1, 1, S)`` bool, True = a real encoder position, or ``None``.
            cache: A ``KVCache`` or ``None``; ``cache.cross[layer]`` keeps keys and values.
            layer: Index of this decoder block.

        Returns:
            ``(B, T, d)``.
        """
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        if cache is not None and cache.cross[layer] is not None:
            k, v = cache.cross[layer]  # (B, Hkv, S, hd)
        else:
            S = memory.shape[1]
            k, v = self.kv(memory).split([self.kv_dim, self.kv_dim], dim=-1)
            k = k.view(B, S, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, S, hd)
            v = v.view(B, S, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, S, hd)
            if cache is not None:
                cache.cross[layer] = (k, v)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=memory_mask,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_kv_head != self.n_head,
        )  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, self.d_model))  # (B, T, d)


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
    """Attention (then cross-attention, in a decoder block of an ``encoder_decoder``) then MLP,
    each wrapped in a residual with a pre- or post-norm."""

    def __init__(self, cfg: TransformerConfig, d_ff: int, cross: bool = False) -> None:
        super().__init__()
        self.pre_norm = cfg.norm_position == "pre"
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm_cross = make_norm(cfg) if cross else None
        self.cross = CrossAttention(cfg) if cross else None
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg, d_ff)
        # Dropout has no state, so one module serves every residual branch.
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        is_causal: bool,
        rope: tuple[Tensor, Tensor] | None,
        cache: KVCache | None = None,
        layer: int = 0,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """``(B, T, d)`` -> ``(B, T, d)``; see ``Attention.forward`` and ``CrossAttention``."""
        kv = None if cache is None else cache.layers[layer]
        if self.pre_norm:
            x = x + self.drop(self.attn(self.norm1(x), mask, is_causal, rope, kv))  # (B, T, d)
            if self.cross is not None:
                h = self.cross(self.norm_cross(x), memory, memory_mask, cache, layer)
                x = x + self.drop(h)  # (B, T, d)
            return x + self.drop(self.mlp(self.norm2(x)))  # (B, T, d)
        x = self.norm1(x + self.drop(self.attn(x, mask, is_causal, rope, kv)))  # (B, T, d)
        if self.cross is not None:
            h = self.cross(x, memory, memory_mask, cache, layer)
            x = self.norm_cross(x + self.drop(h))  # (B, T, d)
        return self.norm2(x + self.drop(self.mlp(x)))  # (B, T, d)


# ---- the backbone ----------------------------------------------------------------------------
class Transformer(nn.Module):
    """Token embedding, positions, ``n_layer`` blocks and (pre-norm only) a final norm.

    An ``encoder_decoder`` adds a decoder stack (``decode``): ``n_dec_layer`` causal blocks with
    cross-attention and their own final norm. Both stacks share the token embedding and the
    position scheme (T5 and BART share the embedding); ``forward`` runs the encoder, so every
    task head reads the encoder's states.

    Attributes:
        cfg: The architecture this was built from.
        tok_emb: ``nn.Embedding(vocab_size, d_model)``; the LM head may share its weight.
        pos_emb: ``nn.Embedding(max_seq_len, d_model)`` for ``pos='learned'``, else ``None``.
        blocks: The ``n_layer`` blocks (of the encoder, for ``encoder_decoder``).
        norm_f: Final norm for ``norm_position='pre'``; ``None`` for post-norm, whose blocks
            already end in a norm.
        dec_blocks: The ``n_dec_layer`` decoder blocks (empty unless ``encoder_decoder``).
        dec_norm_f: The decoder's final norm (pre-norm ``encoder_decoder`` only).
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, f) for f in cfg.d_ff[: cfg.n_layer])
        self.norm_f = make_norm(cfg) if cfg.norm_position == "pre" else None
        self.dec_blocks = nn.ModuleList(Block(cfg, f, cross=True) for f in cfg.d_ff[cfg.n_layer :])
        self.dec_norm_f = make_norm(cfg) if cfg.n_dec_layer and cfg.norm_position == "pre" else None

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
        # Each stack's residual stream grows with its own depth and branches per block:
        # attention and MLP, plus cross-attention in a decoder block of an encoder_decoder.
        for blocks, branches in ((self.blocks, 2), (self.dec_blocks, 3)):
            out_std = std / math.sqrt(branches * max(1, len(blocks)))
            for block in blocks:
                nn.init.normal_(block.attn.proj.weight, mean=0.0, std=out_std)
                nn.init.normal_(block.mlp.w2.weight, mean=0.0, std=out_std)
                if block.cross is not None:
                    nn.init.normal_(block.cross.proj.weight, mean=0.0, std=out_std)

    def build_attn_mask(
        self,
        batch: int,
        seq_len: int,
        device: torch.device,
        dtype: torch.dtype,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
        family: str | None = None,
    ) -> tuple[Tensor | None, bool]:
        """The one mask every layer of this forward pass shares.

        Args:
            batch: B.
            seq_len: T.
            device: Where the mask lives.
            dtype: Dtype of a float (ALiBi) mask; the hidden states' dtype.
            attention_mask: ``(B, T)``, 1 for real tokens, 0 for padding, or ``None``.
            prefix_len: ``(B,)`` bidirectional prefix lengths (``prefix_lm`` only), or ``None``.
            family: The attention pattern; ``cfg.family`` by default (an ``encoder_decoder``'s
                encoder is an ``encoder``, its decoder a ``decoder``).

        Returns:
            ``(mask, is_causal)``: ``mask`` is ``None``, a bool ``(B or 1, 1, T, T)`` mask
            (True = may attend) or a float ``(B or 1, H, T, T)`` bias; ``is_causal`` asks the
            kernel for its built-in causal mask and is only True when ``mask`` is ``None``.
        """
        family, alibi = family or self.cfg.family, self.cfg.pos == "alibi"
        if family == "encoder_decoder":
            family = "encoder"
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

    def cached_attn_mask(self, cache: KVCache, pos: Tensor, dtype: torch.dtype) -> Tensor | None:
        """The mask of T new tokens over the cache's columns, theirs included (decoding steps).

        Args:
            cache: The cache, with the new tokens' columns already marked valid.
            pos: ``(B, T)`` positions of the new tokens.
            dtype: Dtype of a float (ALiBi) mask.

        Returns:
            ``None`` (one new token and no pad column to hide: the plain kernel), a bool
            ``(B, 1, T, S)`` mask or a float ``(B, H, T, S)`` ALiBi bias.
        """
        T, S = pos.shape[1], cache.slot + pos.shape[1]
        valid = cache.valid[:, :S]  # (B, S)
        i = cache.slot + torch.arange(T, device=pos.device)[:, None]  # (T, 1) query columns
        j = torch.arange(S, device=pos.device)[None, :]  # (1, S) key columns
        allowed = valid[:, None, None, :] & (j <= i)  # (B, 1, T, S): new tokens are causal
        if self.cfg.pos == "alibi":
            distance = (pos[:, :, None] - cache.key_pos[:, None, :S]).abs().to(dtype)  # (B, T, S)
            bias = -self.alibi_slopes.to(dtype).view(1, -1, 1, 1) * distance[:, None]
            return bias.masked_fill(~allowed, float("-inf"))  # (B, H, T, S)
        if T == 1 and bool(valid.all()):
            return None
        return allowed

    def _embed(self, input_ids: Tensor, pos: Tensor) -> Tensor:
        """Token (plus absolute position) embeddings ``(B, T, d)`` at positions ``pos``."""
        if input_ids.shape[1] > self.cfg.max_seq_len:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds max_seq_len={self.cfg.max_seq_len}"
            )
        x = self.tok_emb(input_ids)  # (B, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb(pos)  # (B, T, d)
        elif self.cfg.pos == "sinusoidal":
            x = x + self.pos_table[pos].to(x.dtype)  # (B, T, d)
        return self.drop(x)

    def _rope(self, pos: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor] | None:
        """RoPE tables of positions ``pos`` (T,) or (B, T), shaped ``(T or B, 1, T, hd/2)``."""
        if self.cfg.pos != "rope":
            return None
        cos, sin = self.rope_cos[pos].unsqueeze(-3), self.rope_sin[pos].unsqueeze(-3)
        return cos.to(dtype), sin.to(dtype)  # broadcast over the heads (and batch)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Hidden states of every position (of the encoder, for ``encoder_decoder``).

        Args:
            input_ids: ``(B, T)`` token ids, T <= ``max_seq_len``.
            attention_mask: ``(B, T)``, 1 for real tokens and 0 for right padding. Real tokens
                never attend to padding; pad positions' outputs are meaningless.
            prefix_len: ``(B,)`` length of the bidirectional prefix of each sequence. Used by
                the ``prefix_lm`` family only (ignored by the others, so one data pipeline can
                feed every family); a ``prefix_lm`` without it is causal.
            cache: ``None``, or a ``KVCache`` from ``LanguageModel.build_kv_cache``. Empty: this
                is the prompt pass (masks and positions as without a cache; its keys and values
                are kept). Filled: ``input_ids`` are the next tokens of each row (no padding,
                no ``attention_mask``), attending causally to everything kept.

        Returns:
            ``(B, T, d_model)``, after the final norm for pre-norm models.
        """
        if cache is not None and self.cfg.family in ("encoder", "encoder_decoder"):
            # An encoder_decoder caches its decoder stack (``decode``), never the encoder.
            raise ValueError(f"family {self.cfg.family!r}'s encoder takes no KV cache")
        return self._stack(
            self.blocks, self.norm_f, None, input_ids, attention_mask, prefix_len, cache
        )

    def decode(
        self,
        input_ids: Tensor,
        memory: Tensor | None,
        memory_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Decoder states of an ``encoder_decoder``: causal over ``input_ids``, cross over memory.

        Args:
            input_ids: ``(B, T)`` decoder token ids (right padding is harmless: causal).
            memory: ``(B, S, d)`` the encoder's states (``forward``); may be ``None`` on the
                steps after a cache's first call, which keeps their keys and values.
            memory_mask: ``(B, S)`` 1 for real encoder positions, 0 for padding, or ``None``.
            cache: A ``KVCache`` for incremental decoding, as in ``forward``.

        Returns:
            ``(B, T, d_model)``.
        """
        if not self.cfg.n_dec_layer:
            raise ValueError(f"family {self.cfg.family!r} has no decoder stack to decode with")
        mask = None
        if cache is not None and cache.slot > 0:
            mask = cache.memory_mask
        elif memory_mask is not None:
            mask = memory_mask.to(device=input_ids.device, dtype=torch.bool)[:, None, None, :]
            # An all-pad source would softmax over nothing (NaN on some kernels): let its row
            # see the pads instead; real rows are unaffected.
            mask = mask | ~mask.any(-1, keepdim=True)  # (B, 1, 1, S)
            if cache is not None:
                cache.memory_mask = mask  # (B, 1, 1, S)
        return self._stack(
            self.dec_blocks, self.dec_norm_f, "decoder", input_ids, None, None, cache, memory, mask
        )

    def _stack(
        self,
        blocks: nn.ModuleList,
        norm_f: nn.Module | None,
        family: str | None,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        prefix_len: Tensor | None,
        cache: KVCache | None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """Embed, run ``blocks`` and ``norm_f`` with ``family``'s attention pattern (``None``:
        the config's); the other arguments are those of ``forward`` and ``decode``."""
        B, T = input_ids.shape
        decoding = cache is not None and cache.slot > 0
        if cache is None:
            pos = torch.arange(T, device=input_ids.device)  # (T,)
        else:
            pos = cache.positions(T, input_ids.device)  # (T,) prompt pass, (B, T) after
        x = self._embed(input_ids, pos)  # (B, T, d)
        if cache is not None:
            cache.record(pos, attention_mask)
        if decoding:
            mask, is_causal = self.cached_attn_mask(cache, pos, x.dtype), False
        else:
            mask, is_causal = self.build_attn_mask(
                B, T, x.device, x.dtype, attention_mask, prefix_len, family=family
            )
        rope = self._rope(pos, x.dtype)
        for i, block in enumerate(blocks):
            x = block(x, mask, is_causal, rope, cache, i, memory, memory_mask)  # (B, T, d)
        if norm_f is not None:
            x = norm_f(x)  # (B, T, d)
        if cache is not None:
            cache.slot += T
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
        cache: KVCache | None = None,
    ) -> Tensor:
        """Backbone states ``(B, T, d)`` (the encoder's, for ``encoder_decoder``); the arguments
        are those of ``Transformer.forward``."""
        return self.backbone(
            input_ids, attention_mask=attention_mask, prefix_len=prefix_len, cache=cache
        )

    def decode_hidden(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor | None,
        memory_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Decoder states ``(B, T, d)`` of an ``encoder_decoder`` (``Transformer.decode``)."""
        return self.backbone.decode(decoder_input_ids, memory, memory_mask, cache=cache)

    def build_kv_cache(self, batch: int, length: int) -> KVCache:
        """An empty cache for ``batch`` rows of up to ``length`` tokens (prompt + new ones)."""
        return KVCache(self.cfg, batch, length, self.lm_head.weight.device)

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
        cache: KVCache | None = None,
        decoder_input_ids: Tensor | None = None,
    ) -> Tensor:
        """Next-token (or masked-token) logits ``(B, T, V)`` of every position.

        Args:
            input_ids: ``(B, T)`` token ids (the encoder's input, for ``encoder_decoder``).
            attention_mask: ``(B, T)`` 1 real / 0 pad (right padding), or ``None``.
            prefix_len: ``(B,)`` bidirectional prefix lengths for ``prefix_lm``, or ``None``.
            cache: A ``KVCache`` for incremental decoding (see ``Transformer.forward``).
            decoder_input_ids: ``(B, T_dec)`` the decoder's input; required by (and only by)
                ``encoder_decoder``, whose logits are those of the decoder positions.

        Returns:
            ``(B, T, vocab_size)`` logits (``(B, T_dec, vocab_size)`` for ``encoder_decoder``).
        """
        if (decoder_input_ids is None) == (self.cfg.family == "encoder_decoder"):
            raise ValueError(
                "decoder_input_ids is required by, and only by, family 'encoder_decoder' "
                f"(family is {self.cfg.family!r})"
            )
        if decoder_input_ids is None:
            h = self.hidden(input_ids, attention_mask, prefix_len, cache=cache)  # (B, T, d)
        else:
            memory = self.hidden(input_ids, attention_mask)  # (B, T, d)
            h = self.decode_hidden(decoder_input_ids, memory, attention_mask, cache=cache)
        return self.logits_from_hidden(h)  # (B, T, V)

    def num_params(self) -> int:
        """Number of unique parameters (a tied head counts once); equals ``cfg.num_params()``."""
        return sum(p.numel() for p in self.parameters())
