"""Tagging and generation metrics (entity F1, word accuracy, BLEU, ROUGE-L), checked by hand."""

from __future__ import annotations

import math

import pytest

from lightning_modules.metrics import bleu, chrf, entity_f1, rouge_l, token_accuracy


def test_entity_f1_counts_only_exact_spans() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    # Sentence 1: PER predicted one token short (wrong), LOC right.
    # Sentence 2: ORG right. Gold 3 entities, predicted 3, correct 2 -> P = R = F = 2/3.
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    assert entity_f1(pred, gold) == pytest.approx(2 / 3)
    # One token too long is wrong too, and so is the right span with the wrong type.
    assert entity_f1([["B-PER", "I-PER", "I-PER", "B-LOC"]], [gold[0]]) == pytest.approx(0.5)
    assert entity_f1([["B-ORG", "I-ORG", "O", "B-LOC"]], [gold[0]]) == pytest.approx(0.5)
    # Precision and recall differ: 1 of 1 predicted is right, 1 of 2 gold found -> F = 2/3.
    assert entity_f1([["O", "O", "O", "B-LOC"]], [gold[0]]) == pytest.approx(2 / 3)
    assert entity_f1(gold, gold) == 1.0


def test_entity_f1_is_strict_iob2() -> None:
    gold = [["B-PER", "I-PER", "O"]]
    # An entity must open with B-: "I-PER I-PER" is no entity in strict mode (conlleval would
    # count it as a correct PER).
    assert entity_f1([["I-PER", "I-PER", "O"]], gold) == 0.0
    # Nothing to find and nothing found is perfect; entities on one side only score 0.
    assert entity_f1([["O", "O"]], [["O", "O"]]) == 1.0
    assert entity_f1([["B-LOC", "O"]], [["O", "O"]]) == 0.0
    assert entity_f1([["O", "O"]], [["B-LOC", "O"]]) == 0.0


def test_tag_metrics_reject_misaligned_input() -> None:
    with pytest.raises(ValueError, match="sentence 0: 1 predicted tags for 2 gold tags"):
        entity_f1([["O"]], [["O", "O"]])
    with pytest.raises(ValueError, match="1 predicted sentences for 2"):
        token_accuracy([["O"]], [["O"], ["O"]])


def test_token_accuracy_counts_words() -> None:
    gold = [["B-PER", "I-PER", "O"], ["O"]]
    assert token_accuracy([["B-PER", "O", "O"], ["O"]], gold) == pytest.approx(3 / 4)
    assert token_accuracy([], []) == 0.0


def test_bleu_identical_disjoint_and_brevity() -> None:
    refs = ["the red bike is in the garden today", "Anna buys a small green lamp now"]
    assert bleu(refs, refs) == pytest.approx(1.0)
    assert bleu(["x y z w v u", "q r s t p o"], refs) == 0.0
    # Every n-gram of a 4-word prefix of an 8-word reference matches: BLEU is the brevity
    # penalty alone, exp(1 - 8 / 4).
    assert bleu(["a b c d"], ["a b c d e f g h"]) == pytest.approx(math.exp(-1), abs=1e-4)
    # Several references: the best-matching one counts.
    assert bleu(["a b c d e"], [["x y z w v", "a b c d e"]]) == pytest.approx(1.0)
    assert bleu([], []) == 0.0
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        bleu(["a", "b"], ["a"])


def test_chrf_grades_outputs_that_bleu_scores_zero() -> None:
    refs = ["ein Mann sitzt auf einer Bank", "zwei Hunde spielen im Schnee"]
    assert chrf(refs, refs) == pytest.approx(1.0)
    assert chrf(["xq", "jo"], refs) == 0.0  # no character in common with any reference
    # No hypothesis has a correct 4-gram, so BLEU is 0 for both; chrF still orders them.
    near = ["ein Mann sitzt", "zwei Hunde"]
    far = ["ein Hund", "die Katze"]
    assert bleu(near, refs) == 0.0 and bleu(far, refs) == 0.0
    assert 0.0 < chrf(far, refs) < chrf(near, refs) < 1.0
    assert chrf([], []) == 0.0
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        chrf(["a", "b"], ["a"])


def test_rouge_l_by_hand() -> None:
    # LCS("the cat lay on a mat", "the cat sat on the mat") = "the cat on mat": 4 of 6 words
    # on both sides -> P = R = F = 2/3.
    assert rouge_l(["the cat lay on a mat"], ["the cat sat on the mat"]) == pytest.approx(2 / 3)
    # Order matters: LCS("cat the mat", "the cat mat") has 2 words. P = 2/3, R = 2/4.
    p, r = 2 / 3, 2 / 4
    assert rouge_l(["cat the mat"], ["the cat big mat"]) == pytest.approx(2 * p * r / (p + r))
    # Mean over segments; case and stemming ("lives" ~ "live") do not matter.
    assert rouge_l(["Anna lives in Varen", "x"], ["anna live in varen", "y"]) == pytest.approx(0.5)
    assert rouge_l(["a b"], [["c d", "a b"]]) == pytest.approx(1.0)
    assert rouge_l([], []) == 0.0
