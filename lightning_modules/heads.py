"""Task heads that turn backbone states ``(B, T, d)`` into task outputs.

Every head takes the hidden states of ``LanguageModel.hidden`` (or ``Transformer.forward``) and
the ``(B, T)`` attention mask (1 real, 0 pad), so that padding never reaches a prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig

__all__ = [
    "MASKED_LOGIT",
    "SequenceClassificationHead",
    "SpanHead",
    "TokenClassificationHead",
    "build_head",
]

# Logit given to pad positions of span predictions: far below any real logit, yet finite in
# fp16/bf16, so that softmax and cross-entropy over an all-pad row stay NaN-free.
MASKED_LOGIT = -1e4


def _init_linear(linear: nn.Linear, std: float) -> nn.Linear:
    """Same init as the backbone (N(0, std), zero bias), so heads start as small as the rest."""
    nn.init.normal_(linear.weight, mean=0.0, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class SequenceClassificationHead(nn.Module):
    """Pool the sequence into one vector, then classify it.

    Pooling follows the family's attention pattern: a decoder's last real token is the only one
    that has seen the whole sequence, while encoder and prefix-LM states all see the (prefix)
    context, so they are averaged over the real tokens.
    """

    def __init__(self, cfg: TransformerConfig, num_labels: int) -> None:
        """Build the head.

        Args:
            cfg: The backbone's architecture (``family``, ``d_model``, ``dropout``, ``init_std``).
            num_labels: Number of classes (1 for regression).
        """
        super().__init__()
        self.pooling = "last" if cfg.family == "decoder" else "mean"
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = _init_linear(nn.Linear(cfg.d_model, num_labels), cfg.init_std)

    def pool(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """One vector per sequence.

        Args:
            hidden: ``(B, T, d)`` backbone states.
            attention_mask: ``(B, T)`` 1 real / 0 pad, or ``None`` when nothing is padded.

        Returns:
            ``(B, d)``.
        """
        B, T, _ = hidden.shape
        if attention_mask is None:
            attention_mask = hidden.new_ones(B, T)
        mask = attention_mask.to(hidden.dtype)  # (B, T)
        if self.pooling == "last":
            # argmax of mask * (1..T) is the last real position, whichever side is padded.
            positions = torch.arange(1, T + 1, device=hidden.device, dtype=hidden.dtype)
            last = (mask * positions).argmax(dim=-1)  # (B,)
            return hidden[torch.arange(B, device=hidden.device), last]  # (B, d)
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (B, d)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, d)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Class logits.

        Args:
            hidden: ``(B, T, d)`` backbone states.
            attention_mask: ``(B, T)`` 1 real / 0 pad, or ``None``.

        Returns:
            ``(B, num_labels)``.
        """
        return self.classifier(self.drop(self.pool(hidden, attention_mask)))  # (B, num_labels)


class TokenClassificationHead(nn.Module):
    """One label per token (tagging, NER): dropout then a linear classifier."""

    def __init__(self, cfg: TransformerConfig, num_labels: int) -> None:
        """Build the head.

        Args:
            cfg: The backbone's architecture (``d_model``, ``dropout``, ``init_std``).
            num_labels: Number of tags.
        """
        super().__init__()
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = _init_linear(nn.Linear(cfg.d_model, num_labels), cfg.init_std)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Per-token logits.

        Args:
            hidden: ``(B, T, d)`` backbone states.
            attention_mask: Unused (the loss ignores pad labels); accepted so that every head
                has the same call signature.

        Returns:
            ``(B, T, num_labels)``.
        """
        return self.classifier(self.drop(hidden))  # (B, T, num_labels)


class SpanHead(nn.Module):
    """Extractive QA: a start and an end logit per token; pads can never be chosen."""

    def __init__(self, cfg: TransformerConfig) -> None:
        """Build the head.

        Args:
            cfg: The backbone's architecture (``d_model``, ``init_std``).
        """
        super().__init__()
        self.qa = _init_linear(nn.Linear(cfg.d_model, 2), cfg.init_std)

    def forward(
        self, hidden: Tensor, attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Start and end logits.

        Args:
            hidden: ``(B, T, d)`` backbone states.
            attention_mask: ``(B, T)`` 1 real / 0 pad, or ``None``.

        Returns:
            ``(start_logits, end_logits)``, each ``(B, T)``, with ``MASKED_LOGIT`` at pads.
        """
        logits = self.qa(hidden)  # (B, T, 2)
        if attention_mask is not None:
            pad = ~attention_mask.bool().unsqueeze(-1)  # (B, T, 1)
            logits = logits.masked_fill(pad, MASKED_LOGIT)  # (B, T, 2)
        start, end = logits.unbind(dim=-1)  # (B, T) each
        return start, end


HEAD_KINDS = ("sequence", "token", "span")


def build_head(kind: str, cfg: TransformerConfig, num_labels: int | None = None) -> nn.Module:
    """Build the task head of one kind.

    Args:
        kind: ``sequence`` (classification / regression of the whole input), ``token``
            (one label per token) or ``span`` (start/end pointers).
        cfg: The backbone's architecture.
        num_labels: Number of classes; required for ``sequence`` and ``token``, ignored by
            ``span`` (always two outputs).

    Returns:
        The head, initialised like the backbone.

    Raises:
        ValueError: ``kind`` is unknown, or ``num_labels`` is missing or not positive where
            it is needed.
    """
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r} (known: {', '.join(HEAD_KINDS)})")
    if kind == "span":
        return SpanHead(cfg)
    if num_labels is None or num_labels < 1:
        raise ValueError(f"head kind {kind!r} needs num_labels >= 1, got {num_labels!r}")
    if kind == "sequence":
        return SequenceClassificationHead(cfg, num_labels)
    return TokenClassificationHead(cfg, num_labels)
