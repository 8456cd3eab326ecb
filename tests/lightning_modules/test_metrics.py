"""Metrics: SQuAD v1.1 exact match / F1 and classification scores, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_modules.metrics import (
    accuracy,
    macro_f1,
    normalize_answer,
    qa_exact_match,
    qa_f1,
    squad_scores,
)


def test_normalize_answer_as_the_official_script() -> None:
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("An apple, a day.") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # only whole-word articles go
    assert normalize_answer("Kestrel-Labs") == "kestrellabs"  # punctuation removed, not spaced
    assert normalize_answer("  New\tVaren \n") == "new varen"


def test_exact_match() -> None:
    assert qa_exact_match("The Cat!", ["cat"]) == 1.0
    assert qa_exact_match("cat", "the cat") == 1.0  # one answer as a plain string
    assert qa_exact_match("New Varen", ["Varen"]) == 0.0
    assert qa_exact_match("Varen", ["New Varen", "Varen"]) == 1.0  # best over answers
    assert qa_exact_match("x", []) == 0.0


def test_f1() -> None:
    assert qa_f1("x b c", ["b c d"]) == pytest.approx(2 / 3)
    # "a" is an article, so "a b c" normalises to "b c": precision 1, recall 2/3.
    assert qa_f1("a b c", ["b c d"]) == pytest.approx(0.8)
    assert qa_f1("red", ["red bike", "blue"]) == pytest.approx(2 / 3)
    assert qa_f1("red bike", ["blue bike", "red bike"]) == 1.0  # best over answers
    assert qa_f1("b b", ["b"]) == pytest.approx(2 * 0.5 * 1 / 1.5)  # counts clipped
    assert qa_f1("nothing", ["else"]) == 0.0
    assert qa_f1("", [""]) == 0.0  # as the official script
    assert qa_f1("the", ["a"]) == 0.0


def test_squad_scores() -> None:
    scores = squad_scores(["Varen", "New Varen"], [["Varen"], ["Varen", "Port Lena"]])
    assert scores["exact_match"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert squad_scores([], []) == {"exact_match": 0.0, "f1": 0.0}
    with pytest.raises(ValueError):
        squad_scores(["a"], [])


def test_accuracy() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert accuracy(np.array([2, 2]), np.array([2, 2])) == 1.0
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy([1], [1, 2])


def test_macro_f1() -> None:
    preds, labels = [0, 0, 1, 1, 2], [0, 1, 1, 2, 2]
    # per class F1 = 2 TP / (predicted + true): 2/3, 2/4, 2/3
    assert macro_f1(preds, labels) == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    # a fourth class that never occurs scores 0 (sklearn's labels=range(4), zero_division=0)
    assert macro_f1(preds, labels, num_labels=4) == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 4)
    assert macro_f1(np.array(preds), np.array(labels)) == pytest.approx(11 / 18)
    assert macro_f1([1, 1, 1, 1], [1, 1, 1, 0]) == pytest.approx((0 + 2 * 3 / 7) / 2)
    assert macro_f1(["pos", "neg"], ["pos", "neg"]) == 1.0
    assert macro_f1([], []) == 0.0
    with pytest.raises(ValueError):
        macro_f1([0], [0, 1])
