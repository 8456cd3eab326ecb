"""Extractive question answering: predict the answer span inside the context (SQuAD style)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig
from lightning_modules.data.examples import QAExample
from lightning_modules.heads import SpanHead
from lightning_modules.metrics import squad_scores
from lightning_modules.tasks.base import Encoded, Task, pad_rows


class SpanTask(Task):
    """``[CLS] question [SEP] context [SEP]`` -> start and end token of the answer.

    The question comes first so that a causal decoder reads it before the context it must search;
    contexts longer than ``max_len`` are truncated (training examples whose answer is cut off are
    dropped, evaluation examples are kept and scored as misses).
    """

    kind = "span"
    example = "qa"
    metrics = ("f1", "exact_match")
    hub_type = "question-answering"
    predict_example = 'model.predict("{n}", [("Where does Ada live?", "Ada lives in Paris.")])'
    placeholder_input = {"question": "q", "context": "c"}

    @classmethod
    def example_of(cls, raw, i: int) -> QAExample:
        """``(question, context)`` or ``{"question": ..., "context": ...}``."""
        if isinstance(raw, Mapping):
            q, c = raw["question"], raw["context"]
        else:
            q, c = raw
        return QAExample(id=str(i), question=str(q), context=str(c), answers=(("", 0),))

    @classmethod
    def is_single(cls, inputs) -> bool:
        return isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], str)

    def outputs(self, predictions, examples) -> list:
        """The text between the predicted tokens, as ``score`` reads it."""
        encoded = self.encoded("test")
        texts = []
        for i, start, end in sorted(predictions):
            context, offset, offsets, _ = encoded.references[i]
            s, e = start - offset, end - offset
            texts.append(
                context[offsets[s][0] : offsets[e][1]].strip() if 0 <= s <= e < len(offsets) else ""
            )
        return texts

    max_answer_tokens = 30

    def _encode(self, examples: list[QAExample], train: bool) -> Encoded:
        questions = self.tokenizer.encode_batch(
            [e.question for e in examples], add_special_tokens=False
        )
        contexts = self.tokenizer.encode_batch(
            [e.context for e in examples], add_special_tokens=False
        )
        rows, ctx_masks, starts, ends, refs, sources = [], [], [], [], [], []
        for i, (ex, q, c) in enumerate(zip(examples, questions, contexts, strict=True)):
            q_ids = q.ids[: self.max_len // 2]
            offset = len(q_ids) + 2  # [CLS] q [SEP]
            n_ctx = max(0, min(len(c.ids), self.max_len - offset - 1))
            offsets = c.offsets[:n_ctx]
            text, char_start = ex.answers[0]
            char_end = char_start + len(text)
            start = next((i for i, (_, e) in enumerate(offsets) if e > char_start), None)
            end = next((i for i in range(n_ctx - 1, -1, -1) if offsets[i][0] < char_end), None)
            inside = (
                start is not None
                and end is not None
                and start <= end
                and offsets[-1][1] >= char_end
            )
            if train and not inside:
                continue
            sources.append(i)
            rows.append([self.cls_id, *q_ids, self.sep_id, *c.ids[:n_ctx], self.sep_id])
            ctx_masks.append([0] * offset + [1] * n_ctx + [0])
            starts.append(offset + start if inside else 0)
            ends.append(offset + end if inside else 0)
            refs.append((ex.context, offset, offsets, [a for a, _ in ex.answers]))
        ids = pad_rows(rows)
        return Encoded(
            tensors={
                "input_ids": ids,
                "attention_mask": pad_rows([[1] * len(r) for r in rows]),
                "context_mask": pad_rows(ctx_masks).bool(),
                "start": torch.tensor(starts),
                "end": torch.tensor(ends),
            },
            references=refs,
            sources=None if len(sources) == len(examples) else sources,
        )

    def make_head(self, cfg: TransformerConfig) -> nn.Module:
        return SpanHead(cfg)

    def _logits(self, backbone, head, batch) -> tuple[Tensor, Tensor]:
        hidden = backbone(batch["input_ids"], **self.backbone_kwargs(backbone.cfg, batch))
        return head(hidden, batch["attention_mask"])  # (B, T), (B, T)

    def loss(self, backbone, head, batch) -> Tensor:
        start_logits, end_logits = self._logits(backbone, head, batch)
        return (
            F.cross_entropy(start_logits.float(), batch["start"])
            + F.cross_entropy(end_logits.float(), batch["end"])
        ) / 2

    @torch.no_grad()
    def predict(self, backbone, head, batch) -> list[tuple[int, int, int]]:
        """``(example index, start token, end token)`` of the best span inside the context."""
        start_logits, end_logits = self._logits(backbone, head, batch)
        ctx = batch["context_mask"]  # (B, T)
        neg = torch.finfo(torch.float32).min / 4
        s = start_logits.float().masked_fill(~ctx, neg)
        e = end_logits.float().masked_fill(~ctx, neg)
        t = s.shape[1]
        pair = s[:, :, None] + e[:, None, :]  # (B, T_start, T_end)
        # On the logits' device: a CPU mask next to GPU logits fails every QA validation there.
        allowed = torch.ones(t, t, dtype=torch.bool, device=s.device)
        allowed = allowed.triu().tril(self.max_answer_tokens - 1)
        pair = pair.masked_fill(~allowed, neg)
        best = pair.flatten(1).argmax(1)  # (B,)
        return list(
            zip(batch["index"].tolist(), (best // t).tolist(), (best % t).tolist(), strict=True)
        )

    floor_rule = "the first token of the context"

    def trivial_predictions(self, split: str) -> list[tuple[int, int, int]]:
        refs = self.encoded(split).references
        return [(i, offset, offset) for i, (_, offset, _, _) in enumerate(refs)]

    def score(self, predictions, split: str) -> dict[str, float]:
        refs = self.encoded(split).references
        if len(predictions) != len(refs):
            raise ValueError(
                f"task '{self.name}': {len(predictions)} predictions for {len(refs)} examples"
            )
        texts = []
        for i, st, en in sorted(predictions):
            context, offset, offsets, _ = refs[i]
            st, en = st - offset, en - offset
            ok = 0 <= st <= en < len(offsets)
            texts.append(context[offsets[st][0] : offsets[en][1]].strip() if ok else "")
        scores = squad_scores(texts, [r[3] for r in refs])
        scores["score"] = scores[self.metric]
        return scores
