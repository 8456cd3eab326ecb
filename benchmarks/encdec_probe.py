"""Probe: why does the T5-like design's QA and NER not gain from its own pretraining?

An ``encoder_decoder``'s sequence, token and span heads read its encoder's states, and its
pretraining is BART's text infilling (``lightning_modules.objectives.denoising_loss``: spans
covering 15% of the text, the decoder rebuilding the whole block). Two changes, each alone:

* ``--heads-read decoder``: the heads read the decoder's states instead, as BART's
  classification and QA heads do: the decoder reads the input shifted right after the start
  token (``[SEP]``, as in pretraining) and attends over the encoder's states of the same input,
  so position t's state is the one that predicted token t in pretraining.
* ``--mask-share S``: pretraining corrupts a share S of the text (BART's default is 0.3).

(``pretrain.encoder_mlm=true``, BERT's masked LM on the encoder's own states beside infilling,
is a setting of the framework: ``task_headroom.py --override pretrain.encoder_mlm=true``.)

This runs ``task_headroom.py`` with the change, so its output compares cell for cell with a
``task_headroom.py`` run of the same arguments (the untrained rows of ``--mask-share`` runs
equal the plain run's: an untrained model never sees the objective).

    python benchmarks/encdec_probe.py --heads-read decoder --seeds 3 --no-pretrain --test \\
        --designs t5 --tasks qa,ner --recipes default --override threads=1 \\
        --json docs/benchmark_results/encdec_probe_decoder_states.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from benchmarks import task_headroom  # noqa: E402
from lightning_modules import objectives  # noqa: E402
from lightning_modules.data.tokenizer import SEP, SPECIAL_TOKENS  # noqa: E402
from lightning_modules.tasks import classification, span, token  # noqa: E402

START = SPECIAL_TOKENS.index(SEP)  # the decoder's start token in pretraining
#: The task classes whose heads read the backbone's states (``_logits(backbone, head, batch)``).
READERS = (classification.SequenceTask, token.TokenTask, span.SpanTask)


class DecoderStates:
    """A backbone stand-in: an ``encoder_decoder``'s decoder states over its own input."""

    def __init__(self, backbone):
        self.backbone, self.cfg = backbone, backbone.cfg

    def __call__(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, prefix_len=None
    ) -> Tensor:
        memory = self.backbone(input_ids, attention_mask=attention_mask)  # (B, T, d)
        start = torch.full_like(input_ids[:, :1], START)  # (B, 1)
        shifted = torch.cat((start, input_ids[:, :-1]), dim=1)  # (B, T): as in pretraining
        return self.backbone.decode(shifted, memory, attention_mask)  # (B, T, d)


@contextlib.contextmanager
def heads_read_decoder() -> Iterator[None]:
    """Within: every ``encoder_decoder`` head reads ``DecoderStates``; other families as before."""
    saved = {cls: cls._logits for cls in READERS}

    def wrap(original):
        def _logits(self, backbone, head, batch):
            if backbone.cfg.family == "encoder_decoder":
                backbone = DecoderStates(backbone)
            return original(self, backbone, head, batch)

        return _logits

    for cls, original in saved.items():
        cls._logits = wrap(original)
    try:
        yield
    finally:
        for cls, original in saved.items():
            cls._logits = original


@contextlib.contextmanager
def mask_share(share: float) -> Iterator[None]:
    """Within: text infilling corrupts a share ``share`` of each block."""
    original = objectives.denoising_loss
    objectives.denoising_loss = functools.partial(original, mask_prob=share)
    try:
        yield
    finally:
        objectives.denoising_loss = original


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False)
    p.add_argument("--heads-read", choices=("encoder", "decoder"), default="encoder")
    p.add_argument("--mask-share", type=float, default=None)
    args, rest = p.parse_known_args(argv)
    mine = ["--heads-read", args.heads_read]
    if args.mask_share is not None:
        mine += ["--mask-share", f"{args.mask_share:g}"]
    with contextlib.ExitStack() as stack:
        if args.heads_read == "decoder":
            stack.enter_context(heads_read_decoder())
        if args.mask_share is not None:
            stack.enter_context(mask_share(args.mask_share))
        return task_headroom.main(rest, script="benchmarks/encdec_probe.py " + " ".join(mine))


if __name__ == "__main__":
    main()
