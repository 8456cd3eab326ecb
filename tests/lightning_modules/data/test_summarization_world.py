"""The built-in summarisation task: documents of facts, summaries of the titled person's facts."""

from __future__ import annotations

import re

import pytest

from lightning_modules.data.examples import PairExample
from lightning_modules.data.texts import BUILTIN_TASKS, task_splits
from lightning_modules.data.world import World

PHRASE = r"(?:lives in|was born in|works at|owns an?|likes|is \d+ years old)"


@pytest.fixture(scope="module")
def splits():
    return World(0).summarization(n_train=150, n_val=40, n_test=40)


def _check(example: PairExample) -> None:
    title, _, body = example.source.partition(": ")
    person = next(p for p in World(0).people if title.endswith(f" {p}"))
    sentences = re.split(r"(?<=\.) ", body)
    # "Port Greta" is a city, not Greta: the name must not follow "Port ".
    about = [s for s in sentences if re.search(rf"(?<!Port )\b{re.escape(person)}\b", s)]
    assert 1 <= len(about) < len(sentences)  # the titled person and at least one other
    assert example.target.startswith(f"{person} ") and example.target.endswith(".")
    summary = example.target[len(person) + 1 : -1]
    # One canonical phrase per fact about the person, in document order, with its value.
    phrases = re.split(rf"(?:, | and )(?={PHRASE}\b)", summary)
    assert len(phrases) == len(about)
    for phrase, sentence in zip(phrases, about, strict=True):
        assert re.match(rf"{PHRASE}\b", phrase), phrase
        value = re.sub(
            r"^(lives in|was born in|works at|owns an?|likes|is) | years old$", "", phrase
        )
        assert all(word in sentence for word in value.split()), (value, sentence)


def test_summaries_keep_exactly_the_titled_persons_facts(splits):
    for example in splits.train + splits.validation + splits.test:
        _check(example)
    counts = {len(re.split(rf"(?:, | and )(?={PHRASE}\b)", e.target)) for e in splits.train}
    assert {1, 2, 3} <= counts  # one to several facts per summary


def test_deterministic_disjoint_and_built_in(splits):
    again = World(0).summarization(n_train=150, n_val=40, n_test=40)
    assert again.train == splits.train and again.test == splits.test
    sources = [e.source for e in splits.train + splits.validation + splits.test]
    assert len(set(sources)) == len(sources)
    assert World(1).summarization(n_train=5, n_val=5, n_test=5).test != splits.test[:5]
    # More training data leaves validation and test as they are.
    more = World(0).summarization(n_train=200, n_val=40, n_test=40)
    assert more.validation == splits.validation and more.test == splits.test
    assert "summarization" in BUILTIN_TASKS
    assert task_splits("summarization", {"n_train": 3, "n_val": 2, "n_test": 2}, 0).test == (
        World(0).summarization(n_train=3, n_val=2, n_test=2).test
    )
