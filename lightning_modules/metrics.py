"""Task metrics in pure Python, every score in [0, 1] (never percent).

* Extractive QA: the official SQuAD v1.1 evaluation (``normalize_answer``, exact match and
  token-level F1, each the maximum over the accepted answers), averaged by ``squad_scores``.
* Classification: ``accuracy`` and ``macro_f1``.
* Tagging: ``entity_f1`` (seqeval, strict IOB2) and ``token_accuracy``.
* Generation: ``bleu`` (sacrebleu corpus BLEU / 100), ``chrf`` (sacrebleu corpus chrF / 100) and
  ``rouge_l`` (rouge-score F-measure).

Inputs may be Python sequences or anything with ``tolist()`` (NumPy arrays, torch tensors), so
this module needs neither. The tagging and generation metrics delegate to the reference
implementations (seqeval, sacrebleu, rouge-score), imported on first use: seqeval and rouge-score
pull in scikit-learn and NLTK, seconds of import time that runs which never score them should
not pay.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

__all__ = [
    "accuracy",
    "bleu",
    "entity_f1",
    "macro_f1",
    "normalize_answer",
    "qa_exact_match",
    "qa_f1",
    "rouge_l",
    "squad_scores",
    "token_accuracy",
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


# ---- tagging ---------------------------------------------------------------------------------
def _tag_pairs(
    pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    pred, gold = [list(p) for p in pred_tags], [list(g) for g in gold_tags]
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted sentences for {len(gold)} gold sentences")
    for i, (p, g) in enumerate(zip(pred, gold, strict=True)):
        if len(p) != len(g):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(g)} gold tags")
    return pred, gold


def entity_f1(pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> float:
    """Micro-averaged entity-level F1 over IOB2 tag sequences (seqeval, strict mode).

    An entity counts only when its type and both boundaries match exactly: a predicted span one
    token short is a false positive *and* a false negative. Strict mode also refuses malformed
    spans: an entity must open with ``B-``, so a predicted ``I-PER I-PER`` is no entity at all
    (seqeval's default, conlleval-compatible mode would accept it). The gold tags of every
    source are IOB2, so strict mode scores what the data means and does not reward a tagger for
    sequences the scheme forbids.

    Args:
        pred_tags: Predicted tags, one list per sentence.
        gold_tags: Gold tags, one list per sentence, the same lengths.

    Returns:
        F1 in [0, 1]. With no gold and no predicted entity at all it is 1.0 (nothing to find,
        nothing wrongly found); with entities on one side only it is 0.0.

    Raises:
        ValueError: When the numbers of sentences or of tags per sentence differ.
    """
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    pred, gold = _tag_pairs(pred_tags, gold_tags)
    if not gold:
        return 0.0
    # zero_division=1: precision without predictions (or recall without gold entities) is 1,
    # which gives F1 = 1 only when both sides are empty and 0 when one side alone is.
    return float(f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=1))


def token_accuracy(pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> float:
    """Share of words whose predicted tag equals the gold tag, over all sentences.

    Args:
        pred_tags: Predicted tags, one list per sentence.
        gold_tags: Gold tags, one list per sentence, the same lengths.

    Returns:
        The accuracy in [0, 1]; 0.0 when there are no words.

    Raises:
        ValueError: When the numbers of sentences or of tags per sentence differ.
    """
    pred, gold = _tag_pairs(pred_tags, gold_tags)
    total = sum(len(g) for g in gold)
    if not total:
        return 0.0
    right = sum(
        p == g for ps, gs in zip(pred, gold, strict=True) for p, g in zip(ps, gs, strict=True)
    )
    return right / total


# ---- generation ------------------------------------------------------------------------------
def _references(
    hyps: Sequence[str], refs: Sequence[str | Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Hypotheses and references as sacrebleu wants them: one list per reference *stream*."""
    hyps = [str(h) for h in hyps]
    per_hyp = [[r] if isinstance(r, str) else list(r) for r in refs]
    if len(hyps) != len(per_hyp):
        raise ValueError(f"{len(hyps)} hypotheses for {len(per_hyp)} references")
    if any(not r for r in per_hyp):
        raise ValueError("every hypothesis needs at least one reference")
    n_streams = max((len(r) for r in per_hyp), default=1)
    # sacrebleu takes streams of equal length; a hypothesis with fewer references repeats its
    # last one, which changes neither its clipped counts nor its closest reference length.
    streams = [[r[min(k, len(r) - 1)] for r in per_hyp] for k in range(n_streams)]
    return hyps, streams


def bleu(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, 4-grams, brevity penalty) in [0, 1].

    Args:
        hyps: One hypothesis per segment.
        refs: Per segment one reference, or a list of accepted references.

    Returns:
        ``sacrebleu.corpus_bleu(...).score / 100``; 0.0 for an empty corpus.

    Raises:
        ValueError: When the numbers of hypotheses and references differ.
    """
    return _sacrebleu_corpus("bleu", hyps, refs)


def chrf(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2, no word n-grams) in [0, 1].

    Why a second translation metric: BLEU multiplies word 1- to 4-gram precisions, so a
    hypothesis with no correct 4-gram scores 0 whatever else it gets right. After the few hundred
    fine-tuning steps of a search every candidate sits there (corpus BLEU 0.000-0.001 on
    Multi30k and on the built-in language), and a metric that is 0 for all cannot rank them.
    chrF's character n-grams credit right stems, suffixes and partly right words, so it grades
    those outputs; at converged quality it ranks systems much like BLEU (WMT metrics tasks).

    Args:
        hyps: One hypothesis per segment.
        refs: Per segment one reference, or a list of accepted references.

    Returns:
        ``sacrebleu.corpus_chrf(...).score / 100``; 0.0 for an empty corpus.

    Raises:
        ValueError: When the numbers of hypotheses and references differ.
    """
    return _sacrebleu_corpus("chrf", hyps, refs)


def _sacrebleu_corpus(metric: str, hyps, refs) -> float:
    import sacrebleu

    hyps, streams = _references(hyps, refs)
    if not hyps:
        return 0.0
    scorer = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf}[metric]
    return float(scorer(hyps, streams).score) / 100.0


_ROUGE_SCORER = None


def rouge_l(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """Mean ROUGE-L F-measure (rouge-score, with Porter stemming) over segments.

    ROUGE-L is the longest common subsequence of words: with LCS length ``l``, a hypothesis of
    ``m`` words and a reference of ``n``, precision ``l / m``, recall ``l / n`` and F their
    harmonic mean. rouge-score lower-cases and keeps only ``[a-z0-9]`` words; stemming makes
    ``lives``/``live`` match, as in the usual summarisation setting (ROUGE-1.5.5 ``-m``). With
    several references a segment scores its best one.

    Args:
        hyps: One hypothesis per segment.
        refs: Per segment one reference, or a list of accepted references.

    Returns:
        The mean F-measure in [0, 1]; 0.0 for an empty corpus.

    Raises:
        ValueError: When the numbers of hypotheses and references differ.
    """
    global _ROUGE_SCORER
    hyps, streams = _references(hyps, refs)
    if not hyps:
        return 0.0
    if _ROUGE_SCORER is None:
        from rouge_score import rouge_scorer

        _ROUGE_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    total = 0.0
    for i, hyp in enumerate(hyps):
        total += max(_ROUGE_SCORER.score(stream[i], hyp)["rougeL"].fmeasure for stream in streams)
    return total / len(hyps)
