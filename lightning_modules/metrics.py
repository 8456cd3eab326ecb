"""Task metrics in pure Python, every score in [0, 1] (never percent).

* Extractive QA: the official SQuAD v1.1 evaluation (``normalize_answer``, exact match and
  token-level F1, each the maximum over the accepted answers), averaged by ``squad_scores``.
* Classification: ``accuracy`` and ``macro_f1``.

Inputs may be Python sequences or anything with ``tolist()`` (NumPy arrays, torch tensors), so
this module needs neither. Entity-level F1 (seqeval style), BLEU and ROUGE belong here too when a
task needs them; they should stay dependency-free in the same way.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

__all__ = [
    "accuracy",
    "macro_f1",
    "normalize_answer",
    "qa_exact_match",
    "qa_f1",
    "squad_scores",
]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace.

    The same steps, in the same order, as the official SQuAD v1.1 evaluation script.

    Args:
        s: An answer or a prediction.

    Returns:
        The normalised text.
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _as_answers(ground_truths: str | Iterable[str]) -> list[str]:
    return [ground_truths] if isinstance(ground_truths, str) else list(ground_truths)


def _f1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:  # as the official script: also 0 when both are empty
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_exact_match(prediction: str, ground_truths: str | Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised accepted answer, else 0.0.

    Args:
        prediction: The predicted answer text.
        ground_truths: The accepted answers (a single string is one answer).

    Returns:
        The best exact match over the accepted answers; 0.0 when there are none.
    """
    normalised = normalize_answer(prediction)
    answers = _as_answers(ground_truths)
    return max((float(normalised == normalize_answer(a)) for a in answers), default=0.0)


def qa_f1(prediction: str, ground_truths: str | Iterable[str]) -> float:
    """Token-level F1 between the normalised prediction and the best accepted answer.

    Args:
        prediction: The predicted answer text.
        ground_truths: The accepted answers (a single string is one answer).

    Returns:
        The best F1 over the accepted answers; 0.0 when there are none.
    """
    return max((_f1(prediction, a) for a in _as_answers(ground_truths)), default=0.0)


def squad_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Mean exact match and F1 over a dataset, as the SQuAD v1.1 script (but in [0, 1]).

    Args:
        predictions: One predicted answer text per question.
        references: The accepted answers of each question, in the same order.

    Returns:
        ``{"exact_match": float, "f1": float}``; both 0.0 for an empty dataset.

    Raises:
        ValueError: If the two lists differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    em = sum(qa_exact_match(p, r) for p, r in zip(predictions, references, strict=True))
    f1 = sum(qa_f1(p, r) for p, r in zip(predictions, references, strict=True))
    return {"exact_match": em / len(predictions), "f1": f1 / len(predictions)}


def _as_list(values: Any) -> list:
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values)


def _pair(preds: Any, labels: Any) -> tuple[list, list]:
    preds, labels = _as_list(preds), _as_list(labels)
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    return preds, labels


def accuracy(preds: Any, labels: Any) -> float:
    """Fraction of predictions equal to their label.

    Args:
        preds: Predicted labels (a sequence, or an array/tensor with ``tolist()``).
        labels: True labels, in the same order.

    Returns:
        The accuracy in [0, 1]; 0.0 when there are no examples.

    Raises:
        ValueError: If the two differ in length.
    """
    preds, labels = _pair(preds, labels)
    if not labels:
        return 0.0
    return sum(p == y for p, y in zip(preds, labels, strict=True)) / len(labels)


def macro_f1(preds: Any, labels: Any, num_labels: int | None = None) -> float:
    """Unweighted mean over classes of the per-class F1 (one class against the rest).

    Matches ``sklearn.metrics.f1_score(average="macro", zero_division=0)``: with ``num_labels``
    the classes are ``0 .. num_labels - 1`` (``labels=range(num_labels)``) and a class that
    appears in neither predictions nor labels scores 0; without it the classes are those that
    appear in either.

    Args:
        preds: Predicted labels (a sequence, or an array/tensor with ``tolist()``).
        labels: True labels, in the same order.
        num_labels: Number of classes, when labels are indices ``0 .. num_labels - 1``.

    Returns:
        The macro-averaged F1 in [0, 1]; 0.0 when there are no examples.

    Raises:
        ValueError: If the two differ in length.
    """
    preds, labels = _pair(preds, labels)
    if not labels:
        return 0.0
    classes: list[Hashable]
    if num_labels is not None:
        classes = list(range(num_labels))
    else:
        classes = list(dict.fromkeys(labels + preds))
    if not classes:
        return 0.0
    true_pos: Counter = Counter()
    pred_count: Counter = Counter(preds)
    label_count: Counter = Counter(labels)
    for p, y in zip(preds, labels, strict=True):
        if p == y:
            true_pos[y] += 1
    total = 0.0
    for c in classes:
        denominator = pred_count[c] + label_count[c]
        total += 2 * true_pos[c] / denominator if denominator else 0.0
    return total / len(classes)
