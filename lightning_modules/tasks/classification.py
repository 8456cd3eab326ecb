"""Sequence classification: one label per text (or text pair); sentiment is one such task."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig
from lightning_modules.data.examples import TextExample
from lightning_modules.heads import SequenceClassificationHead
from lightning_modules.metrics import accuracy, macro_f1
from lightning_modules.tasks.base import Encoded, Task, pad_rows


class SequenceTask(Task):
    """``[CLS] text [SEP] (pair [SEP])`` -> a class; scored by accuracy or macro-F1."""

    kind = "sequence"
    example = "text"
    metrics = ("accuracy", "macro_f1")
    hub_type = "text-classification"
    predict_example = 'model.predict("{n}", ["a truly wonderful day"])'

    @classmethod
    def example_of(cls, raw, i: int) -> TextExample:
        """``text`` or ``(text, text_pair)``."""
        parts = (raw,) if isinstance(raw, str) else tuple(raw)
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"input {i}: give a text or a (text, text_pair) tuple")
        text, pair = parts[0], (parts[1] if len(parts) == 2 else None)
        return TextExample(text=str(text), label=0, text_pair=pair)

    @classmethod
    def is_single(cls, inputs) -> bool:
        return isinstance(inputs, tuple) and all(isinstance(x, str) for x in inputs)

    def outputs(self, predictions, examples) -> list:
        """The label names (the class indices where the task has none)."""
        labels = self.splits.labels
        return [labels[c] if labels else c for _, c in sorted(predictions)]

    def _encode(self, examples: list[TextExample], train: bool) -> Encoded:
        texts = self.tokenizer.encode_batch([e.text for e in examples], add_special_tokens=False)
        pairs = [e.text_pair for e in examples]
        pair_enc = (
            self.tokenizer.encode_batch([p or "" for p in pairs], add_special_tokens=False)
            if any(p is not None for p in pairs)
            else None
        )
        rows = []
        for i, t in enumerate(texts):
            row = [self.cls_id, *t.ids, self.sep_id]
            if pair_enc is not None and pairs[i] is not None:
                row += [*pair_enc[i].ids, self.sep_id]
            rows.append(row[: self.max_len])
        labels = [e.label for e in examples]
        n = self.num_labels
        bad = next((j for j, y in enumerate(labels) if not 0 <= y < n), None)
        if bad is not None:
            raise ValueError(
                f"task '{self.name}': example {bad} has label {labels[bad]} outside 0..{n - 1}"
            )
        return Encoded(
            tensors={
                "input_ids": pad_rows(rows),
                "attention_mask": pad_rows([[1] * len(r) for r in rows]),
                "label": torch.tensor(labels),
            },
            references=labels,
        )

    def make_head(self, cfg: TransformerConfig) -> nn.Module:
        return SequenceClassificationHead(cfg, self.num_labels)

    def _logits(self, backbone, head, batch) -> Tensor:
        hidden = backbone(batch["input_ids"], **self.backbone_kwargs(backbone.cfg, batch))
        return head(hidden, batch["attention_mask"])  # (B, C)

    def loss(self, backbone, head, batch) -> Tensor:
        return F.cross_entropy(self._logits(backbone, head, batch).float(), batch["label"])

    @torch.no_grad()
    def predict(self, backbone, head, batch) -> list[tuple[int, int]]:
        """``(example index, predicted class)``."""
        pred = self._logits(backbone, head, batch).argmax(-1)
        return list(zip(batch["index"].tolist(), pred.tolist(), strict=True))

    floor_rule = "the majority class of the training examples"

    def trivial_predictions(self, split: str) -> list[tuple[int, int]]:
        labels = list(self.encoded("train").references)
        majority = max(sorted(set(labels)), key=labels.count)
        return [(i, majority) for i in range(len(self.encoded(split).references))]

    def score(self, predictions, split: str) -> dict[str, float]:
        refs = self.encoded(split).references
        if len(predictions) != len(refs):
            raise ValueError(
                f"task '{self.name}': {len(predictions)} predictions for {len(refs)} examples"
            )
        pred = [p for _, p in sorted(predictions)]
        scores = {
            "accuracy": accuracy(pred, refs),
            "macro_f1": macro_f1(pred, refs, self.num_labels),
        }
        scores["score"] = scores[self.metric]
        return scores
