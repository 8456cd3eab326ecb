"""The architecture of one candidate: a dataclass that round-trips through YAML, Optuna and W&B.

Variant knobs are plain strings (litgpt style); derived values and every validity check live in
``__post_init__`` so that an invalid combination is rejected once, with a message that names the
knob, before any tensor is allocated.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FAMILIES = ("decoder", "encoder", "prefix_lm", "encoder_decoder")
MLPS = ("gelu", "relu", "swiglu")
NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post")
POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")


class ArchitectureError(ValueError):
    """A ``TransformerConfig`` that cannot be built; the message names the offending knob."""


@dataclass
class TransformerConfig:
    """One Transformer architecture.

    Attributes:
        family: ``decoder`` (causal), ``encoder`` (bidirectional), ``prefix_lm`` (bidirectional
            over the input prefix, causal over the rest) or ``encoder_decoder`` (T5/BART-like: a
            bidirectional encoder of ``n_layer`` blocks and a causal decoder of ``n_dec_layer``
            blocks with cross-attention over the encoder's states).
        vocab_size: Number of token ids (set from the tokenizer, not searched).
        max_seq_len: Longest sequence the model accepts (learned positions are this long).
        n_layer: Number of Transformer blocks (of the encoder, for ``encoder_decoder``).
        n_dec_layer: Decoder blocks of an ``encoder_decoder`` (at least 1); 0 for the other
            families, which have one stack.
        d_model: Width of the residual stream.
        n_head: Query heads per attention layer.
        n_kv_head: Key/value heads: ``n_head`` is MHA, 1 is MQA, anything between is GQA.
            ``None`` means ``n_head``.
        d_ff: Hidden width of each block's MLP: one int for all blocks, or one per block
            (encoder blocks first, then decoder blocks).
        mlp: ``gelu``, ``relu`` or ``swiglu`` (gated; three matrices).
        norm: ``layernorm`` or ``rmsnorm``.
        norm_position: ``pre`` (norm inside the residual branch, final norm at the top) or
            ``post`` (norm after each residual add, as in the original Transformer).
        pos: ``learned``, ``sinusoidal``, ``rope``, ``alibi`` or ``none``.
        dropout: Dropout on attention output, MLP output and embeddings.
        tie_embeddings: Share the token embedding with the LM head.
        rope_base: RoPE frequency base.
        norm_eps: Epsilon of the normalisation layers.
        init_std: Standard deviation of the normal initialisation of every matrix.
    """

    family: str = "decoder"
    vocab_size: int = 1024
    max_seq_len: int = 256
    n_layer: int = 2
    n_dec_layer: int = 0
    d_model: int = 128
    n_head: int = 4
    n_kv_head: int | None = None
    d_ff: int | list[int] = 512
    mlp: str = "gelu"
    norm: str = "layernorm"
    norm_position: str = "pre"
    pos: str = "rope"
    dropout: float = 0.0
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    # Derived in __post_init__; not init arguments so that asdict() -> TransformerConfig(**d) works.
    head_dim: int = field(init=False)

    def __post_init__(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ArchitectureError(f"{name}={value!r} is not one of {', '.join(allowed)}")

        choice("family", FAMILIES)
        choice("mlp", MLPS)
        choice("norm", NORMS)
        choice("norm_position", NORM_POSITIONS)
        choice("pos", POSITIONS)
        for name in ("vocab_size", "max_seq_len", "n_layer", "d_model", "n_head"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ArchitectureError(f"{name}={value!r} must be a positive integer")
        dec = self.n_dec_layer
        if isinstance(dec, bool) or not isinstance(dec, int) or dec < 0:
            raise ArchitectureError(f"n_dec_layer={dec!r} must be a non-negative integer")
        if self.family == "encoder_decoder" and dec < 1:
            raise ArchitectureError(
                f"n_dec_layer={dec} must be at least 1 for family 'encoder_decoder'"
            )
        if self.family != "encoder_decoder" and dec:
            raise ArchitectureError(
                f"n_dec_layer={dec} only applies to family 'encoder_decoder' (family is "
                f"{self.family!r}; leave it 0)"
            )
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        kv = self.n_kv_head
        if isinstance(kv, bool) or not isinstance(kv, int) or kv < 1:
            raise ArchitectureError(f"n_kv_head={self.n_kv_head!r} must be a positive integer")
        if self.d_model % self.n_head:
            raise ArchitectureError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}"
            )
        if self.n_head % self.n_kv_head:
            raise ArchitectureError(
                f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}"
            )
        self.head_dim = self.d_model // self.n_head
        if self.pos == "rope" and self.head_dim % 2:
            raise ArchitectureError(f"pos='rope' needs an even head_dim, got {self.head_dim}")
        if self.pos == "sinusoidal" and self.d_model % 2:
            raise ArchitectureError(f"pos='sinusoidal' needs an even d_model, got {self.d_model}")
        # One d_ff per block, always a list afterwards, so YAML and W&B see a single shape.
        d_ff = self.d_ff
        if isinstance(d_ff, int) and not isinstance(d_ff, bool):
            d_ff = [d_ff] * self.n_blocks
        d_ff = list(d_ff)
        if len(d_ff) != self.n_blocks:
            where = f"n_layer={self.n_layer}"
            if self.n_dec_layer:
                where += f" + n_dec_layer={self.n_dec_layer}"
            raise ArchitectureError(f"d_ff has {len(d_ff)} entries but {where}")
        if any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in d_ff):
            raise ArchitectureError(f"d_ff={d_ff} must hold positive integers")
        self.d_ff = d_ff
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ArchitectureError(f"dropout={self.dropout} must be in [0, 1)")
        self.dropout = float(self.dropout)

    # ---- derived properties ------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        """Blocks of both stacks: ``n_layer`` plus ``n_dec_layer``."""
        return self.n_layer + self.n_dec_layer

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection."""
        return self.n_kv_head * self.head_dim

    @property
    def attention_kind(self) -> str:
        """``mha``, ``gqa`` or ``mqa``: a readable name for the key/value head sharing."""
        if self.n_kv_head == self.n_head:
            return "mha"
        return "mqa" if self.n_kv_head == 1 else "gqa"

    @property
    def can_generate(self) -> bool:
        """Whether the family has a causal part that can decode text left to right."""
        return self.family in ("decoder", "prefix_lm", "encoder_decoder")

    # ---- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The init arguments as plain Python values (derived fields left out).

        ``n_dec_layer`` is left out unless the family is ``encoder_decoder``: the other
        families' dicts (YAML files, trial attrs, keys) stay what they were before it existed.
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if self.family != "encoder_decoder":
            del out["n_dec_layer"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        """Build from a mapping, rejecting keys that are not fields (typos fail early)."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ArchitectureError(
                f"unknown architecture field(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(names))})"
            )
        return cls(**data)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of ``to_dict()``; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> TransformerConfig:
        """Load a config written by ``to_yaml`` (or by ``nas/export.py``).

        A file may hold the fields at top level or under an ``architecture:`` key.
        """
        path = Path(path)
        if not path.is_file():
            raise ArchitectureError(f"{path}: no such architecture file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ArchitectureError(f"{path}: not valid YAML ({err})") from None
        if isinstance(data, dict) and isinstance(data.get("architecture"), dict):
            data = data["architecture"]
        if not isinstance(data, dict):
            raise ArchitectureError(f"{path}: expected a mapping of architecture fields")
        try:
            return cls.from_dict(data)
        except (ArchitectureError, TypeError) as err:
            raise ArchitectureError(f"{path}: {err}") from None

    # ---- analytic size and cost --------------------------------------------------------------
    def num_params(self, lm_head: bool = True) -> int:
        """Parameters of the backbone (plus the LM head when ``lm_head``), counted analytically.

        Tests check this against ``sum(p.numel())`` of the built model.
        """
        d, v = self.d_model, self.vocab_size
        norm = 2 * d if self.norm == "layernorm" else d
        n = v * d  # token embedding
        if self.pos == "learned":
            n += self.max_seq_len * d
        attn = 2 * d * d + 2 * d * self.kv_dim  # q, o; k, v (no biases)
        for i, f in enumerate(self.d_ff):
            mlp = (3 if self.mlp == "swiglu" else 2) * d * f
            n += attn + mlp + 2 * norm
            if i >= self.n_layer:  # a decoder block: cross-attention and its norm
                n += attn + norm
        if self.norm_position == "pre":
            n += norm * (2 if self.n_dec_layer else 1)  # final norm of each stack
        if lm_head and not self.tie_embeddings:
            n += v * d
        return n

    def flops_per_sequence(self, seq_len: int, lm_head: bool = True) -> int:
        """Forward FLOPs of one sequence of ``seq_len`` tokens: matmuls and attention, 2 per MAC.

        Attention is counted dense (``4 * T^2 * d`` per layer) whatever the mask, as
        ``torch.utils.flop_counter`` does for the math and GPU kernels (on a CPU, torch 2.13's
        counter has no rule for the fused attention op and counts it as 0); a causal mask really
        needs about half of it. Element-wise work (norms, activations, softmax) is left out.
        Training costs about three times this. An ``encoder_decoder`` counts ``seq_len`` tokens
        on each side (the encoder reads them, the decoder writes as many, as in denoising).
        """
        d, t = self.d_model, seq_len
        flops = 0
        for i, f in enumerate(self.d_ff):
            flops += 2 * t * (2 * d * d + 2 * d * self.kv_dim)
            flops += 2 * t * (3 if self.mlp == "swiglu" else 2) * d * f
            flops += 4 * t * t * d
            if i >= self.n_layer:  # cross-attention: the same matmuls over t encoder states
                flops += 2 * t * (2 * d * d + 2 * d * self.kv_dim) + 4 * t * t * d
        if lm_head:
            flops += 2 * t * d * self.vocab_size
        return flops

    def describe(self) -> str:
        """One line that names the architecture, for logs and leaderboards."""
        ff = self.d_ff[0] if len(set(self.d_ff)) == 1 else "/".join(map(str, self.d_ff))
        depth = f"{self.n_layer}+{self.n_dec_layer}" if self.n_dec_layer else f"{self.n_layer}"
        return (
            f"{self.family} L{depth} d{self.d_model} h{self.n_head}/{self.n_kv_head} "
            f"ff{ff} {self.mlp} {self.norm}-{self.norm_position} {self.pos}"
        )


def params_human(n: int) -> str:
    """``1234567`` -> ``'1.23M'``."""
    if n < 1000:
        return str(n)
    exp = min(int(math.log10(n) // 3), 3)
    return f"{n / 10 ** (3 * exp):.3g}{' kMG'[exp]}"
