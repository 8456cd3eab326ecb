"""Keep held-out task examples out of the pretraining corpus.

Once pretraining counts, a validation or test example that the model already read during
pretraining inflates its score: the built-in corpus draws review, entity and story sentences from
the same generators as the sentiment, NER and translation tasks, and a real corpus may quote a
real task's text. ``remove_held_out`` drops them before the corpus is tokenised.

Texts are compared after normalisation (lower case, words only), so detokenisation and
punctuation do not hide a copy. A held-out text of one sentence (a review, a tagged sentence, a
translation source or target, a code task's description or reference code) is removed wherever
a corpus sentence equals it; the rest of that document stays. A held-out text of several
sentences (a QA context, a document to summarise) removes every corpus document that contains it
whole. Single facts of the built-in world are world knowledge shared by the corpus and every
split, not examples, and stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lightning_modules.data.code import CodeExample
from lightning_modules.data.examples import (
    PairExample,
    QAExample,
    Splits,
    TextExample,
    TokenExample,
)

__all__ = ["held_out_texts", "normalise", "remove_held_out", "sentences"]

_WORD = re.compile(r"\w+")
# A sentence ends at . ! or ? followed by white space (abbreviations may split one in two, which
# only makes the single-sentence rule stricter).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def normalise(text: str) -> str:
    """Lower-cased words joined by single spaces (``"Don't!"`` -> ``"don t"``)."""
    return " ".join(_WORD.findall(text.lower()))


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (non-empty after normalisation)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if normalise(s)]


def held_out_texts(splits: Splits) -> list[str]:
    """The texts of a task's validation and test examples that a corpus must not contain."""
    texts: list[str] = []
    for example in [*splits.validation, *splits.test]:
        if isinstance(example, TextExample):
            texts += [example.text] + ([example.text_pair] if example.text_pair else [])
        elif isinstance(example, TokenExample):
            texts.append(" ".join(example.tokens))
        elif isinstance(example, PairExample):
            texts += [example.source, example.target]
        elif isinstance(example, QAExample):
            texts.append(example.context)
        elif isinstance(example, CodeExample):
            # The description (or HumanEval's signature and docstring) and the reference code;
            # the tests are mostly numbers and the function's name, already in both.
            texts += [example.source, example.target]
        else:  # a new example kind must say what of it can leak
            raise TypeError(f"no held-out text rule for {type(example).__name__}")
    return texts


def remove_held_out(corpus: list[str], held_out: Iterable[str]) -> tuple[list[str], int]:
    """``corpus`` without any held-out text, and how many sentences were dropped.

    Args:
        corpus: Pretraining documents.
        held_out: Validation and test texts of every task (``held_out_texts``).

    Returns:
        The documents left (documents left empty are dropped) and the number of corpus
        sentences removed.
    """
    single: set[str] = set()
    whole: dict[str, list[str]] = {}  # first sentence -> normalised multi-sentence texts
    for text in held_out:
        parts = sentences(text)
        if len(parts) == 1:
            single.add(normalise(parts[0]))
        elif parts:
            whole.setdefault(normalise(parts[0]), []).append(normalise(text))
    kept: list[str] = []
    removed = 0
    for document in corpus:
        parts = sentences(document)
        norms = [normalise(p) for p in parts]
        candidates = [t for n in norms for t in whole.get(n, ())]
        joined = f" {' '.join(norms)} "
        if candidates and any(f" {t} " in joined for t in candidates):
            removed += len(parts)
            continue
        left = [p for p, n in zip(parts, norms, strict=True) if n not in single]
        removed += len(parts) - len(left)
        if len(left) == len(parts):
            kept.append(document)
        elif left:
            kept.append(" ".join(left))
    return kept, removed
