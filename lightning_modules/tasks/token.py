"""Token classification: one tag per word (named entities in IOB2 and other taggings).

Words come pre-split (``TokenExample.tokens``); the tokenizer splits each into sub-tokens. Only
the FIRST sub-token of a word carries its label (the others are ignored by the loss and by
prediction), the usual BERT recipe: every word gets exactly one prediction, whatever its length
in sub-tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import TokenExample
from lightning_modules.heads import TokenClassificationHead
from lightning_modules.metrics import entity_f1, token_accuracy
from lightning_modules.tasks.base import Encoded, Task, pad_rows

IGNORE = -100  # cross_entropy's ignore_index: sub-tokens after the first, specials, padding


class TokenTask(Task):
    """``[CLS] w1 w2 ... [SEP]`` -> a tag per word; scored by entity F1 or word accuracy.

    Inputs longer than ``max_len`` are truncated; words cut off are predicted ``O`` (evaluation
    keeps every word, so truncation costs recall rather than vanishing from the score).

    ``entity_f1`` is seqeval's strict IOB2 mode (exact type and boundaries, entities must open
    with ``B-``): see ``lightning_modules.metrics.entity_f1``. ``accuracy`` is per word.
    """

    kind = "token"
    example = "token"
    metrics = ("entity_f1", "accuracy")
    hub_type = "token-classification"
    predict_example = 'model.predict("{n}", ["Ada visited Paris"])'

    @classmethod
    def example_of(cls, raw, i: int) -> TokenExample:
        """``"a sentence"`` (split on whitespace) or a list of words."""
        words = tuple(raw.split()) if isinstance(raw, str) else tuple(map(str, raw))
        return TokenExample(tokens=words, tags=("O",) * len(words))

    @classmethod
    def is_single(cls, inputs) -> bool:
        # A list of words is one pre-split sentence; a list of sentences is a batch.
        return isinstance(inputs, tuple) or (
            isinstance(inputs, list)
            and bool(inputs)
            and all(isinstance(x, str) for x in inputs)
            and not any(" " in x for x in inputs)
        )

    def outputs(self, predictions, examples) -> list:
        """``[(word, tag), ...]`` per input."""
        tags = self.tags_of(predictions, "test")
        return [list(zip(ex.tokens, t, strict=True)) for ex, t in zip(examples, tags, strict=True)]

    def __init__(self, name, splits, tokenizer, max_len, metric=None):
        super().__init__(name, splits, tokenizer, max_len, metric)
        if "O" not in self.splits.labels:
            raise DataError(f"task '{self.name}': the tag set has no 'O' tag: {splits.labels}")
        self.tag_ids = {tag: i for i, tag in enumerate(self.splits.labels)}

    def _encode(self, examples: list[TokenExample], train: bool) -> Encoded:
        encodings = self.tokenizer.encode_batch(
            [list(e.tokens) for e in examples], is_pretokenized=True, add_special_tokens=False
        )
        rows, labels, firsts, refs = [], [], [], []
        room = self.max_len - 2  # [CLS] ... [SEP]
        for n, (ex, enc) in enumerate(zip(examples, encodings, strict=True)):
            if len(ex.tags) != len(ex.tokens):
                raise DataError(
                    f"task '{self.name}': example {n} has {len(ex.tokens)} words "
                    f"but {len(ex.tags)} tags"
                )
            ids = enc.ids[:room]
            row_labels = [IGNORE] * len(ids)
            kept: list[int] = []  # words whose first sub-token survived truncation, in order
            previous = None
            for pos, word in enumerate(enc.word_ids[: len(ids)]):
                if word is not None and word != previous:
                    tag = ex.tags[word]
                    if tag not in self.tag_ids:
                        raise DataError(
                            f"task '{self.name}': example {n} has tag {tag!r} outside the tag "
                            f"set ({', '.join(self.splits.labels)})"
                        )
                    row_labels[pos] = self.tag_ids[tag]
                    kept.append(word)
                previous = word
            rows.append([self.cls_id, *ids, self.sep_id])
            labels.append([IGNORE, *row_labels, IGNORE])
            firsts.append([0, *(int(y != IGNORE) for y in row_labels), 0])
            refs.append((tuple(ex.tags), tuple(kept)))
        return Encoded(
            tensors={
                "input_ids": pad_rows(rows),
                "attention_mask": pad_rows([[1] * len(r) for r in rows]),
                "labels": pad_rows(labels, value=IGNORE),
                "first": pad_rows(firsts).bool(),
            },
            references=refs,
        )

    def make_head(self, cfg: TransformerConfig) -> nn.Module:
        return TokenClassificationHead(cfg, self.num_labels)

    def _logits(self, backbone, head, batch) -> Tensor:
        hidden = backbone(batch["input_ids"], **self.backbone_kwargs(backbone.cfg, batch))
        return head(hidden, batch["attention_mask"])  # (B, T, C)

    def loss(self, backbone, head, batch) -> Tensor:
        logits = self._logits(backbone, head, batch)  # (B, T, C)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
        )

    @torch.no_grad()
    def predict(self, backbone, head, batch) -> list[tuple[int, list[int]]]:
        """``(example index, predicted tag id of each kept word, in order)``."""
        pred = self._logits(backbone, head, batch).argmax(-1)  # (B, T)
        first = batch["first"]  # (B, T)
        return [
            (i, row[mask].tolist())
            for i, row, mask in zip(batch["index"].tolist(), pred, first, strict=True)
        ]

    def tags_of(self, predictions, split: str) -> list[list[str]]:
        """Predicted tags per word of every example of ``split`` (cut-off words: ``O``)."""
        refs = self.encoded(split).references
        if len(predictions) != len(refs):
            raise ValueError(
                f"task '{self.name}': {len(predictions)} predictions for {len(refs)} examples"
            )
        predictions = sorted(predictions)
        if [i for i, _ in predictions] != list(range(len(refs))):
            raise ValueError(f"task '{self.name}': predictions do not cover every example once")
        labels = self.splits.labels
        out = []
        for (_, ids), (gold, kept) in zip(predictions, refs, strict=True):
            tags = ["O"] * len(gold)
            for word, tag_id in zip(kept, ids, strict=True):
                tags[word] = labels[tag_id]
            out.append(tags)
        return out

    floor_rule = "the most frequent tag of the training words, for every word"

    def trivial_predictions(self, split: str) -> list[tuple[int, list[int]]]:
        tags = [t for gold, _ in self.encoded("train").references for t in gold]
        common = self.splits.labels.index(max(sorted(set(tags)), key=tags.count))
        refs = self.encoded(split).references
        return [(i, [common] * len(kept)) for i, (_, kept) in enumerate(refs)]

    def score(self, predictions, split: str) -> dict[str, float]:
        pred = self.tags_of(predictions, split)
        gold = [list(g) for g, _ in self.encoded(split).references]
        scores = {"entity_f1": entity_f1(pred, gold), "accuracy": token_accuracy(pred, gold)}
        scores["score"] = scores[self.metric]
        return scores
