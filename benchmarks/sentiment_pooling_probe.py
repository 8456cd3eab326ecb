"""Probe: does a decoder's sentiment head gain from reading the last text token, not ``[SEP]``?

A decoder's sequence head reads the state of the last real token (``heads.
SequenceClassificationHead``), which for ``[CLS] text [SEP]`` is ``[SEP]``: a token that
pretraining never shows (documents are joined by ``[EOS]``), while the state one before it is
where the pretrained model predicts the verdict that follows a review in the corpus. This runs
``task_headroom.py`` with that one change (the head reads the token before ``[SEP]``), so its
output compares cell for cell with a ``task_headroom.py`` run of the same arguments.

    python benchmarks/sentiment_pooling_probe.py --seeds 3 --no-pretrain --test \\
        --designs gpt2,llama --tasks sentiment --recipes default --override threads=1 \\
        --json docs/benchmark_results/sentiment_pooling_probe.json
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from benchmarks import task_headroom  # noqa: E402
from lightning_modules import heads  # noqa: E402

_pool = heads.SequenceClassificationHead.pool


def pool_before_sep(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """``pool`` with a decoder reading the token before its last real one (``[SEP]``)."""
    if self.pooling != "last":
        return _pool(self, hidden, attention_mask)
    B, T, _ = hidden.shape
    if attention_mask is None:
        attention_mask = hidden.new_ones(B, T)
    mask = attention_mask.to(hidden.dtype)  # (B, T)
    positions = torch.arange(1, T + 1, device=hidden.device, dtype=hidden.dtype)
    last = ((mask * positions).argmax(dim=-1) - 1).clamp(min=0)  # (B,): the token before [SEP]
    return hidden[torch.arange(B, device=hidden.device), last]  # (B, d)


def main(argv: list[str] | None = None) -> dict:
    heads.SequenceClassificationHead.pool = pool_before_sep
    try:
        return task_headroom.main(argv)
    finally:
        heads.SequenceClassificationHead.pool = _pool


if __name__ == "__main__":
    main()
