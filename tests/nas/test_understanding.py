"""``task=understanding``: the non-generating suite, where encoders compete with causal models."""

from __future__ import annotations

import optuna

from nas.config.families import allowed_families, restrict_to_tasks
from nas.config.nodes import plain
from nas.engine.run import run_search
from nas.study.storage import open_study
from search_spaces import load_space
from tests.conftest import compose_config

UNDERSTANDING = ["sentiment", "ner", "classification", "qa"]
# classification is not in tests/conftest.py's TINY_TASKS (the catalogue points it at files).
TINY_CLASSIFICATION = [
    f"tasks.classification.{o}"
    for o in ("source.n_train=96", "source.n_val=32", "source.n_test=32", "steps=null")
]


def test_the_understanding_suite_keeps_every_family():
    tasks = plain(compose_config("search", ["task=understanding"]).tasks)
    assert list(tasks) == UNDERSTANDING
    assert not any(t["kind"] in ("generation", "code") for t in tasks.values())
    assert "encoder" in allowed_families(tasks)
    space = load_space(compose_config("search", ["task=understanding"]).search_space)
    assert restrict_to_tasks(space, tasks) is space  # nothing removed: all four families
    assert set(space.param("family").choices) == {
        "decoder",
        "encoder",
        "prefix_lm",
        "encoder_decoder",
    }
    # ... while the default suite's generation tasks remove encoders, and only them
    default = compose_config("search", [])
    suite = plain(default.tasks)
    assert "encoder" not in allowed_families(suite)
    family = restrict_to_tasks(load_space(default.search_space), suite).param("family")
    assert family.choices == ("decoder", "prefix_lm", "encoder_decoder")


def test_a_tiny_understanding_search_trains_and_scores_an_encoder(tiny_cfg):
    extra = ["n_trials=1", "study_name=understanding", "sampler=random", *TINY_CLASSIFICATION]
    cfg = tiny_cfg(task="understanding", extra=extra)
    # The first trial is an encoder (the rest of its architecture is sampled with seed 0).
    open_study(cfg).enqueue_trial({"family": "encoder"})
    study = run_search(cfg).study
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("fail_reason")
    assert trial.params["family"] == "encoder"
    scores = trial.user_attrs["task_scores"]
    assert list(scores) == UNDERSTANDING
    assert all(0.0 <= s <= 1.0 for s in scores.values())
