"""Task floors (what a trivial baseline scores) and adaptability as skill above them."""

from __future__ import annotations

import pytest
import sacrebleu

from nas.engine.run import load_suite, run_search
from nas.study.references import FLOORS_ATTR
from nas.trial.run import adaptability


def test_skill_is_zero_at_the_floor_and_one_at_a_perfect_score():
    floors = {"sentiment": 0.5, "ner": 0.0, "translation": 0.2}
    assert adaptability({"sentiment": 0.5}, {}, "skill", floors) == 0.0
    assert adaptability({"sentiment": 1.0}, {}, "skill", floors) == 1.0
    # by hand: sentiment (0.6 - 0.5) / 0.5 = 0.2; ner 0.4 / 1 = 0.4; translation
    # (0.1 - 0.2) / 0.8 = -0.125; mean (0.2 + 0.4 - 0.125) / 3 = 0.158333...
    scores = {"sentiment": 0.6, "ner": 0.4, "translation": 0.1}
    assert adaptability(scores, {}, "skill", floors) == pytest.approx(0.475 / 3)
    assert adaptability(scores, {}, "mean", floors) == pytest.approx(1.1 / 3)  # unchanged
    with pytest.raises(ValueError, match="needs the floor of every task"):
        adaptability({"qa": 0.3}, {}, "skill", floors)


def test_each_kinds_floor_is_its_trivial_baseline_on_the_built_in_suite(tiny_cfg):
    suite = load_suite(tiny_cfg(task="[sentiment,ner,qa,translation,summarization]"))
    floors = suite.floors()
    # sentiment: the training majority class, counted on validation from the raw examples
    train = [e.label for e in suite.tasks["sentiment"].splits.train]
    val = [e.label for e in suite.tasks["sentiment"].splits.validation]
    majority = max(sorted(set(train)), key=train.count)
    assert floors["sentiment"] == pytest.approx(val.count(majority) / len(val))
    assert 0.3 < floors["sentiment"] < 0.7
    assert floors["ner"] == 0.0  # "O" for every word names no entity
    # translation: chrF of the sources themselves, by sacrebleu directly
    pairs = suite.tasks["translation"].splits.validation
    copy = sacrebleu.corpus_chrf([p.source for p in pairs], [[p.target for p in pairs]])
    assert floors["translation"] == pytest.approx(copy.score / 100, abs=1e-6)
    assert 0.0 <= floors["qa"] < 0.2 and 0.0 < floors["summarization"] < 1.0
    assert suite.floors("test").keys() == floors.keys()


@pytest.mark.slow
def test_a_skill_search_scores_each_trial_above_the_floors_it_keeps(tiny_cfg):
    extra = ["objective.adaptability=skill", "n_trials=1", "pruner=none"]
    study = run_search(tiny_cfg(task="[sentiment,ner]", extra=extra)).study
    kept = study.user_attrs[FLOORS_ATTR]
    assert kept["adaptability"] == "skill" and set(kept["validation"]) == {"sentiment", "ner"}
    trial = study.trials[0]
    scores, floors = trial.user_attrs["task_scores"], kept["validation"]
    by_hand = sum((scores[t] - floors[t]) / (1 - floors[t]) for t in scores) / 2
    assert trial.value == pytest.approx(by_hand)
