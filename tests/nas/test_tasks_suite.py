"""The five built-in tasks through the engine: family restriction, subsets, the whole suite."""

from __future__ import annotations

import csv

import optuna
import pytest

from lightning_modules.config import TransformerConfig
from lightning_modules.tasks import SequenceTask
from nas.config.errors import ConfigError
from nas.config.families import allowed_families, task_families
from nas.engine.run import load_suite, run_search, run_train
from search_spaces import SearchSpaceError
from tests.conftest import compose_config

State = optuna.trial.TrialState
SUITE = ["sentiment", "ner", "qa", "translation", "summarization"]
CAUSAL = ("decoder", "prefix_lm")  # the generating families of the tiny space
GENERATING = ("decoder", "prefix_lm", "encoder_decoder")


def test_the_default_suite_is_the_tasks_that_clear_their_floors():
    # docs/tasks.md "The default suite": sentiment and summarization sit at their floors at the
    # default budget and are in task=suite_all; translation adapts 90 steps at 3e-3 from a corpus
    # with target-language stories.
    cfg = compose_config("search", [])
    assert list(cfg.tasks) == ["qa", "ner", "translation"]
    assert (cfg.tasks.translation.steps, cfg.tasks.translation.lr) == (90, 3e-3)
    assert cfg.data.corpus.target_stories == 0.5
    assert list(compose_config("search", ["task=suite_all"]).tasks) == SUITE


def test_families_follow_the_task_kinds(tiny_cfg):
    tasks = tiny_cfg(task="suite_all").tasks
    families = task_families(tasks)
    assert list(families) == SUITE
    assert families["translation"] == families["summarization"] == GENERATING
    assert families["ner"] == ("decoder", "encoder", "prefix_lm", "encoder_decoder")
    assert allowed_families(tasks) == list(GENERATING)
    assert allowed_families(tiny_cfg(task="[qa,ner]").tasks) == [
        "decoder",
        "encoder",
        "prefix_lm",
        "encoder_decoder",
    ]


def test_generation_keeps_encoders_out_of_the_search(tiny_cfg, caplog):
    cfg = tiny_cfg(
        task="translation",
        extra=["n_trials=3", "sampler=random", "pruner=none", "storage=memory"],
    )
    with caplog.at_level("INFO", logger="adaptnas"):
        result = run_search(cfg)
    trials = result.study.get_trials(states=(State.COMPLETE,))
    assert len(trials) == 3
    for t in trials:
        assert t.params["family"] in CAUSAL  # never sampled, so never scored 0
        assert t.distributions["family"].choices == CAUSAL
        assert 0.0 <= t.user_attrs["task_scores"]["translation"] <= 1.0
        assert set(t.user_attrs["task_metrics"]["translation"]) == {
            "bleu",
            "chrf",
            "rouge_l",
            "score",
        }
    assert "family limited to decoder, prefix_lm (task 'translation' needs" in caplog.text


def test_a_subset_of_tasks_runs_and_keeps_every_family(tiny_cfg):
    cfg = tiny_cfg(task="[qa,ner]", extra=["n_trials=1", "pruner=none", "storage=memory"])
    assert list(cfg.tasks) == ["qa", "ner"]
    result = run_search(cfg)
    (trial,) = result.study.trials
    assert trial.state == State.COMPLETE
    assert set(trial.user_attrs["task_scores"]) == {"qa", "ner"}
    assert set(trial.user_attrs["task_metrics"]["ner"]) == {"entity_f1", "accuracy", "score"}
    assert trial.distributions["family"].choices == ("decoder", "encoder", "prefix_lm")


@pytest.mark.slow
def test_whole_suite_search_scores_every_task(tiny_cfg):
    # python nas/search.py task=suite_all search_space=tiny n_trials=2, shrunk to seconds.
    result = run_search(tiny_cfg(task="suite_all", extra=["n_trials=2", "pruner=none"]))
    rows = list(csv.DictReader(result.files["leaderboard"].open()))
    assert len(rows) == 2
    for row in rows:
        assert row["state"] == "complete"
        for name in SUITE:
            assert 0.0 <= float(row[name]) <= 1.0
    for t in result.study.trials:
        assert list(t.user_attrs["task_scores"]) == SUITE  # run order: cheapest first
        metrics = t.user_attrs["task_metrics"]
        assert {"entity_f1", "bleu", "rouge_l", "f1", "accuracy"} <= {
            k for m in metrics.values() for k in m
        }
        assert t.params["family"] in CAUSAL


def test_a_space_that_only_has_encoders_is_a_one_line_error(tiny_cfg, tmp_path):
    space = tmp_path / "enc.yaml"
    space.write_text("name: enc\nfixed: {family: encoder, n_layer: 1, d_model: 32, n_head: 2}\n")
    with pytest.raises(SearchSpaceError) as err:
        run_search(tiny_cfg(task="[ner,summarization]", extra=[f"search_space={space}"]))
    message = str(err.value)
    assert "family='encoder' is fixed" in message and "task 'summarization' needs" in message
    assert "\n" not in message
    assert not (tmp_path / "studies").exists()


def test_train_refuses_an_encoder_for_generation(tiny_cfg, tmp_path):
    arch = tmp_path / "arch.yaml"
    TransformerConfig(family="encoder", n_layer=1, d_model=32, n_head=2, d_ff=64).to_yaml(arch)
    cfg = tiny_cfg(task="[ner,translation]", config_name="train", extra=[f"arch={arch}"])
    with pytest.raises(ConfigError) as err:
        run_train(cfg)
    assert str(err.value) == (
        "arch: family 'encoder' cannot serve task 'translation' (kind generation needs decoder "
        "or prefix_lm or encoder_decoder); choose another architecture or leave the task out, "
        "e.g. task=[ner]"
    )


def test_train_runs_a_prefix_lm_on_generation(tiny_cfg, tmp_path):
    arch = tmp_path / "arch.yaml"
    TransformerConfig(family="prefix_lm", n_layer=1, d_model=32, n_head=2, d_ff=64).to_yaml(arch)
    cfg = tiny_cfg(task="summarization", config_name="train", extra=[f"arch={arch}"])
    result = run_train(cfg)
    assert set(result.task_metrics["summarization"]) == {"bleu", "chrf", "rouge_l", "score"}
    assert result.test_metrics["summarization"]["score"] == pytest.approx(
        result.test_metrics["summarization"]["rouge_l"]
    )


def test_generic_classification_defaults_to_the_built_in_sentiment(tiny_cfg):
    sizes = ["n_train=40", "n_val=10", "n_test=10"]
    cfg = tiny_cfg(task="classification", extra=[f"tasks.classification.source.{s}" for s in sizes])
    assert cfg.tasks.classification.kind == "sequence"
    suite = load_suite(cfg)
    task = suite.tasks["classification"]
    assert isinstance(task, SequenceTask) and task.metric == "accuracy"
    assert task.splits.labels == ["negative", "positive"] and len(task.splits.train) == 40
