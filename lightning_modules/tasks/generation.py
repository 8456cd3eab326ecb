"""Sequence-to-sequence generation (translation, summarisation) on one causal stream.

A decoder-only seq2seq: ``[BOS] source [SEP] target [EOS]`` is one sequence; the loss covers the
target tokens and ``[EOS]`` only. For the ``prefix_lm`` family ``[BOS] source [SEP]`` is the
bidirectional prefix (as in its pretraining), for ``decoder`` everything is causal. An
``encoder_decoder`` reads the same stream split in two (``split_stream``): its encoder reads the
prompt ``[BOS] source [SEP]``, its decoder reads ``[SEP] target`` and predicts ``target [EOS]``
(``[SEP]`` is its start token, in denoising pretraining too). An ``encoder`` cannot generate, so
the task declares ``families = (decoder, prefix_lm, encoder_decoder)`` and the engine keeps
encoders out of the search space when it is selected.

Generation reuses the pretrained LM head, so the task fine-tunes the whole ``LanguageModel``
(``needs_lm_head``): ``nas/trial/run.py::finetune`` hands it the full model as the "backbone" and
``make_head`` adds nothing. Decoding (greedy or beam search) is ``lightning_modules.generate``.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import PairExample
from lightning_modules.data.tokenizer import BOS, EOS
from lightning_modules.generate import generate_ids, prompt_ids
from lightning_modules.metrics import bleu, chrf, rouge_l
from lightning_modules.tasks.base import Encoded, Task, pad_rows

IGNORE = -100


def split_stream(
    input_ids: Tensor, attention_mask: Tensor, prefix_len: Tensor, labels: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """An ``encoder_decoder``'s two inputs from the one right-padded stream of the task.

    Args:
        input_ids: ``(B, W)`` streams ``[BOS] source [SEP] target [EOS]``.
        attention_mask: ``(B, W)`` 1 real / 0 pad.
        prefix_len: ``(B,)`` prompt lengths (``[BOS] source [SEP]``).
        labels: ``(B, W)`` stream labels (``IGNORE`` on the prompt), or ``None``.

    Returns:
        ``(source_mask, decoder_ids, decoder_mask, decoder_labels)``: the encoder reads
        ``input_ids`` under ``source_mask`` (B, W) (the prompt only); the decoder reads each row
        from its prompt's last token (``[SEP]``) on, left-aligned: ``(B, Wd)`` ids, mask and
        labels (``IGNORE`` past each row's end).
    """
    W = input_ids.shape[1]
    cols = torch.arange(W, device=input_ids.device)
    source_mask = (cols[None, :] < prefix_len[:, None]).long() * attention_mask  # (B, W)
    start = (prefix_len - 1).clamp(min=0)  # (B,) column of [SEP]
    length = attention_mask.sum(1) - start  # (B,) decoder tokens of each row
    Wd = int(length.max())
    index = (start[:, None] + cols[None, :Wd]).clamp(max=W - 1)  # (B, Wd)
    decoder_mask = (cols[None, :Wd] < length[:, None]).long()  # (B, Wd)
    decoder_ids = input_ids.gather(1, index) * decoder_mask  # pads -> PAD_ID (0)
    decoder_labels = None
    if labels is not None:
        decoder_labels = labels.gather(1, index).masked_fill(decoder_mask == 0, IGNORE)
    return source_mask, decoder_ids, decoder_mask, decoder_labels


class GenerationTask(Task):
    """Source text -> target text; scored by corpus BLEU or ROUGE-L F-measure, in [0, 1].

    Args:
        name: Task name.
        splits: ``PairExample`` splits.
        tokenizer: The run's tokenizer.
        max_len: Longest stream in tokens. Sources are cut to ``max_len - max_new_tokens - 2``
            tokens so that every prompt plus ``max_new_tokens`` fits; a training target cut by
            ``max_len`` loses its ``[EOS]`` (the model must not learn to stop there).
        metric: ``bleu``, ``chrf`` or ``rouge_l``.
        max_new_tokens: Most tokens decoded per example at evaluation (and the room kept for
            training targets).
        num_beams: 1 for greedy decoding, more for beam search.
        length_penalty: Beam search's length normalisation exponent.
    """

    kind = "generation"
    example = "pair"
    metrics = ("bleu", "chrf", "rouge_l")
    predict_example = 'model.predict("{n}", ["the source sentence"])'

    @classmethod
    def example_of(cls, raw, i: int) -> PairExample:
        """``source text``."""
        return PairExample(source=str(raw), target="")

    families = ("decoder", "prefix_lm", "encoder_decoder")
    needs_lm_head = True
    options = ("max_new_tokens", "num_beams", "length_penalty")

    def __init__(
        self,
        name,
        splits,
        tokenizer,
        max_len,
        metric=None,
        max_new_tokens: int = 64,
        num_beams: int = 1,
        length_penalty: float = 1.0,
    ):
        super().__init__(name, splits, tokenizer, max_len, metric)
        for key, value in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"task '{name}': {key}={value!r} must be a positive integer")
        if max_len - max_new_tokens - 2 < 1:
            raise DataError(
                f"task '{name}': max_len={max_len} leaves no room for a source next to "
                f"max_new_tokens={max_new_tokens} (needs max_len >= max_new_tokens + 3)"
            )
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.length_penalty = float(length_penalty)
        self.bos_id = tokenizer.token_to_id(BOS)
        self.eos_id = tokenizer.token_to_id(EOS)
        self.max_source_tokens = max_len - max_new_tokens - 2

    def _encode(self, examples: list[PairExample], train: bool) -> Encoded:
        sources = self.tokenizer.encode_batch(
            [e.source for e in examples], add_special_tokens=False
        )
        prompts = [prompt_ids(self.tokenizer, s.ids, self.max_source_tokens) for s in sources]
        if not train:
            # Evaluation feeds the prompt only; the references are the target texts.
            return Encoded(
                tensors={
                    "input_ids": pad_rows(prompts),
                    "attention_mask": pad_rows([[1] * len(p) for p in prompts]),
                    "prefix_len": torch.tensor([len(p) for p in prompts]),
                },
                references=[e.target for e in examples],
            )
        targets = self.tokenizer.encode_batch(
            [e.target for e in examples], add_special_tokens=False
        )
        rows, labels = [], []
        for prompt, target in zip(prompts, targets, strict=True):
            row = (prompt + target.ids + [self.eos_id])[: self.max_len]
            rows.append(row)
            labels.append([IGNORE] * len(prompt) + row[len(prompt) :])
        return Encoded(
            tensors={
                "input_ids": pad_rows(rows),
                "attention_mask": pad_rows([[1] * len(r) for r in rows]),
                "labels": pad_rows(labels, value=IGNORE),
                "prefix_len": torch.tensor([len(p) for p in prompts]),
            },
            references=[e.target for e in examples],
        )

    def _check_family(self, cfg: TransformerConfig) -> None:
        if cfg.family not in self.families:
            raise ValueError(
                f"task '{self.name}' (generation) cannot be served by family '{cfg.family}' "
                f"(needs one of {', '.join(self.families)})"
            )

    def make_head(self, cfg: TransformerConfig) -> nn.Module:
        """No new parameters: the language model's own head generates (see ``needs_lm_head``)."""
        self._check_family(cfg)
        return nn.Identity()

    @staticmethod
    def _language_model(model):
        if not hasattr(model, "logits_from_hidden"):
            raise TypeError(
                "a generation task fine-tunes the whole LanguageModel (needs_lm_head); "
                f"got {type(model).__name__}"
            )
        return model

    def loss(self, backbone, head, batch) -> Tensor:
        """Next-token cross-entropy on the target tokens and ``[EOS]`` only."""
        model = self._language_model(backbone)
        labels = batch["labels"]
        if model.cfg.family == "encoder_decoder":
            source_mask, dec_ids, _, labels = split_stream(
                batch["input_ids"], batch["attention_mask"], batch["prefix_len"], labels
            )
            memory = model.hidden(batch["input_ids"], attention_mask=source_mask)  # (B, W, d)
            hidden = model.decode_hidden(dec_ids, memory, source_mask)  # (B, Wd, d)
        else:
            prefix = batch["prefix_len"] if model.cfg.family == "prefix_lm" else None
            hidden = model.hidden(
                batch["input_ids"], attention_mask=batch["attention_mask"], prefix_len=prefix
            )  # (B, T, d)
        target = labels[:, 1:]  # (B, T-1): position t predicts token t+1
        chosen = target != IGNORE
        # Only target positions reach the vocabulary matmul, the largest one of a small model.
        logits = model.logits_from_hidden(hidden[:, :-1][chosen])  # (N, V)
        return F.cross_entropy(logits.float(), target[chosen])

    @torch.no_grad()
    def predict(self, backbone, head, batch) -> list[tuple[int, str]]:
        """``(example index, generated text)``."""
        model = self._language_model(backbone)
        self._check_family(model.cfg)
        lengths = batch["attention_mask"].sum(1).tolist()
        prompts = [row[:n].tolist() for row, n in zip(batch["input_ids"], lengths, strict=True)]
        ids = generate_ids(
            model,
            prompts,
            self.max_new_tokens,
            self.eos_id,
            num_beams=self.num_beams,
            length_penalty=self.length_penalty,
        )
        texts = [self.tokenizer.decode(seq, skip_special_tokens=True) for seq in ids]
        return list(zip(batch["index"].tolist(), texts, strict=True))

    floor_rule = "a copy of the source (ROUGE: its first sentence)"

    def trivial_predictions(self, split: str) -> list[tuple[int, str]]:
        sources = [e.source for e in getattr(self.splits, split)]
        if self.metric == "rouge_l":  # summarisation: the lead sentence
            sources = [re.split(r"(?<=[.!?])\s+", s.strip(), maxsplit=1)[0] for s in sources]
        return list(enumerate(sources))

    def score(self, predictions, split: str) -> dict[str, float]:
        refs = self.encoded(split).references
        predictions = sorted(predictions)
        if [i for i, _ in predictions] != list(range(len(refs))):
            raise ValueError(
                f"task '{self.name}': {len(predictions)} predictions do not cover the "
                f"{len(refs)} examples once each"
            )
        hyps = [text for _, text in predictions]
        scores = {
            "bleu": bleu(hyps, refs),
            "chrf": chrf(hyps, refs),
            "rouge_l": rouge_l(hyps, refs),
        }
        scores["score"] = scores[self.metric]
        return scores
