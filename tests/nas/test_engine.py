"""Searches on the real composed config, shrunk to seconds: samplers, pruners, resume, results."""

from __future__ import annotations

import csv
import re

import optuna
import pytest

from lightning_modules.config import TransformerConfig
from lightning_modules.model import build_model
from lightning_modules.suite import DataError
from nas.config.errors import ConfigError
from nas.engine.run import run_search
from search_spaces import SearchSpaceError

State = optuna.trial.TrialState


def finished(study):
    return study.get_trials(deepcopy=False, states=(State.COMPLETE, State.PRUNED))


def test_search_writes_results_and_resumes(tiny_cfg):
    cfg = tiny_cfg(task="qa", extra=["n_trials=2", "study_name=resume"])
    first = run_search(cfg)
    assert first.ran == 2 and len(finished(first.study)) == 2
    folder = first.folder
    assert folder.name == "resume" and (folder / "study.db").is_file()
    rows = list(csv.DictReader((folder / "leaderboard.csv").open()))
    assert len(rows) == 2 and {"qa", "params", "architecture", "adaptability"} <= set(rows[0])
    arch = TransformerConfig.from_yaml(folder / "best_architecture.yaml")
    assert build_model(arch).num_params() == arch.num_params()

    again = run_search(tiny_cfg(task="qa", extra=["n_trials=3", "study_name=resume"]))
    assert again.ran == 1
    assert len(finished(again.study)) == 3
    assert sorted(t.number for t in again.study.trials) == [0, 1, 2]

    done = run_search(tiny_cfg(task="qa", extra=["n_trials=3", "study_name=resume"]))
    assert done.ran == 0 and len(done.study.trials) == 3


def test_trial_records_architecture_scores_and_timings(tiny_cfg):
    extra = ["n_trials=1", "storage=memory", "pruner=none"]
    result = run_search(tiny_cfg(task="[sentiment,qa]", extra=extra))
    (trial,) = result.study.trials
    attrs = trial.user_attrs
    assert trial.state == State.COMPLETE
    assert TransformerConfig.from_dict(attrs["architecture"]).num_params() == attrs["n_params"]
    assert set(attrs["task_scores"]) == {"sentiment", "qa"}
    assert trial.values[0] == pytest.approx(sum(attrs["task_scores"].values()) / 2)
    assert {"pretrain", "sentiment", "qa", "total"} <= set(attrs["timings"])
    assert attrs["flops_per_token"] > 0
    assert trial.intermediate_values.keys() == {1, 2}
    assert "test_metrics" in attrs  # the first trial is a finalist


def test_a_curve_search_records_the_score_of_every_example_budget(tiny_cfg):
    extra = ["n_trials=1", "storage=memory", "objective.adaptability=curve"]
    result = run_search(tiny_cfg(task="ner", extra=[*extra, "finetune.curve=[8,32]"]))
    (trial,) = result.study.trials
    points = trial.user_attrs["data_curves"]["ner"]
    assert sorted(points) == ["32", "8"]
    assert trial.values[0] == pytest.approx(sum(points.values()) / 2)
    (plain,) = run_search(tiny_cfg(task="ner", extra=extra[:2])).study.trials
    assert "data_curves" not in plain.user_attrs


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2", "cmaes", "gp"])
def test_each_sampler_composes_and_runs(tiny_cfg, sampler):
    extra = [f"sampler={sampler}", "n_trials=2", "storage=memory"]
    result = run_search(tiny_cfg(task="sentiment", extra=extra))
    assert len(finished(result.study)) == 2
    assert type(result.study.sampler).__name__.lower().startswith(sampler[:3])


@pytest.mark.parametrize("pruner", ["hyperband", "median", "none"])
def test_each_pruner_composes_and_runs(tiny_cfg, pruner):
    result = run_search(tiny_cfg(extra=[f"pruner={pruner}", "n_trials=2", "storage=memory"]))
    assert len(finished(result.study)) == 2
    expected = {"hyperband": "HyperbandPruner", "median": "MedianPruner", "none": "NopPruner"}
    assert type(result.study.pruner).__name__ == expected[pruner]


def test_a_pruned_trial_ends_pruned_after_its_task_with_the_reason(tiny_cfg):
    """End to end: the pruner stops each trial after its first task, the second never runs."""
    # ThresholdPruner(lower=1.01) prunes any running adaptability (at most 1; skill below a floor
    # is negative) at its first report:
    # the pruning path is certain, whatever the candidates score.
    extra = [
        "pruner=none",
        "pruner._target_=optuna.pruners.ThresholdPruner",
        "+pruner.lower=1.01",
        "n_trials=2",
        "storage=memory",
    ]
    result = run_search(tiny_cfg(task="[sentiment,ner]", extra=extra))
    assert [t.state for t in result.study.trials] == [State.PRUNED, State.PRUNED]
    for trial in result.study.trials:
        reason = trial.user_attrs["fail_reason"]
        assert re.fullmatch(r"after sentiment \(running adaptability -?\d\.\d{3}\)", reason), reason
        assert set(trial.user_attrs["task_scores"]) == {"sentiment"}  # ner never trained
        assert trial.intermediate_values.keys() == {1}
    rows = list(csv.DictReader(result.files["leaderboard"].open()))
    assert {r["reason"] for r in rows} == {t.user_attrs["fail_reason"] for t in result.study.trials}


def test_multi_objective_gives_a_pareto_front(tiny_cfg):
    result = run_search(
        tiny_cfg(
            task="sentiment",
            extra=["objective.multi_objective=true", "sampler=nsga2", "n_trials=3"],
        )
    )
    assert len(result.study.directions) == 2
    front = list(csv.DictReader(result.files["pareto_front"].open()))
    assert 1 <= len(front) <= 3
    for t in result.study.get_trials(states=(State.COMPLETE,)):
        assert t.values[1] == t.user_attrs["n_params"]


def test_invalid_architecture_is_pruned_with_reason_and_study_goes_on(tiny_cfg, tmp_path):
    space = tmp_path / "odd.yaml"
    space.write_text(
        "name: odd\nfixed: {d_ff: 64, n_layer: 1}\nparams:\n"
        "  d_model: {type: categorical, choices: [30, 32]}\n"
        "  n_head: {type: categorical, choices: [4]}\n"
    )
    result = run_search(
        tiny_cfg(
            task="sentiment",
            extra=[f"search_space={space}", "sampler=random", "n_trials=6", "storage=memory"],
        )
    )
    states = {t.params["d_model"]: t for t in result.study.trials}
    assert set(states) == {30, 32}
    bad, good = states[30], states[32]
    assert bad.state == State.PRUNED
    assert "d_model=30 is not divisible by n_head=4" in bad.user_attrs["fail_reason"]
    assert good.state == State.COMPLETE


def test_diverging_loss_is_pruned_at_once(tiny_cfg):
    result = run_search(
        tiny_cfg(task="sentiment", extra=["pretrain.lr=1e4", "n_trials=1", "storage=memory"])
    )
    (trial,) = result.study.trials
    assert trial.state == State.PRUNED
    assert trial.user_attrs["fail_reason"].startswith("diverged: pretrain loss")
    assert "task_scores" not in trial.user_attrs  # stopped before any fine-tuning


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n_trials=0", "n_trials=0 must be a positive integer"),
        ("finetune.steps=-3", "finetune.steps=-3"),
        ("pretrain.tokens=-1", "pretrain.tokens=-1"),
        ("finetune.lr=-1", "finetune.lr=-1 must be a number >= 0"),
        ("+tasks.qa.stpes=10", "tasks.qa.stpes=10: unknown key for a span task"),
        ("+tasks.qa.num_beams=2", "tasks.qa.num_beams=2: unknown key for a span task"),
        ("tasks.qa.kind=nope", "tasks.qa.kind='nope' must be one of span, sequence, token, "),
        ("study_name=../escape", "study_name='../escape'"),
        ("objective.adaptability=median", "objective.adaptability='median'"),
    ],
)
def test_bad_config_is_a_one_line_error_and_writes_nothing(tiny_cfg, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")) as err:
        run_search(tiny_cfg(extra=[override]))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "studies").exists()


def test_a_task_kind_is_known_by_its_class_alone(tiny_cfg, monkeypatch):
    """The schema takes its kinds from TASK_KINDS: a new kind needs no entry of its own there."""
    from lightning_modules.tasks import TASK_KINDS, SequenceTask
    from nas.config.check import check_config
    from nas.config.schema import TASK_SCHEMAS, TaskConfig

    class Ordinal(SequenceTask):
        kind = "ordinal"
        metrics = ("accuracy",)

    monkeypatch.setitem(TASK_KINDS, "ordinal", Ordinal)
    assert "ordinal" not in TASK_SCHEMAS
    typed = check_config(tiny_cfg(extra=["tasks.qa.kind=ordinal", "tasks.qa.metric=accuracy"]))
    assert type(typed.tasks["qa"]) is TaskConfig and typed.tasks["qa"].kind == "ordinal"
    with pytest.raises(ConfigError, match="tasks.qa.metric='f1' must be one of accuracy"):
        check_config(tiny_cfg(extra=["tasks.qa.kind=ordinal", "tasks.qa.metric=f1"]))


def test_unknown_search_space_names_it(tiny_cfg, tmp_path):
    with pytest.raises(SearchSpaceError, match="nosuch"):
        run_search(tiny_cfg(extra=["search_space=nosuch"]))
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_bad_data_removes_the_study_it_created_and_nothing_else(tiny_cfg, tmp_path, storage):
    # A shared file that already holds another study: only this run's new study goes.
    shared = tmp_path / "shared" / ("study.db" if storage == "sqlite" else "journal.log")
    shared.parent.mkdir()
    url = f"sqlite:///{shared}" if storage == "sqlite" else None
    backend = url or optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(shared))
    )
    other = optuna.create_study(study_name="other", storage=backend)
    other.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    where = f"storage.url={url}" if url else f"storage.path={shared}"
    extra = [f"storage={storage}", where, "study_name=new", "+tasks.sentiment.source.name=nosuch"]
    with pytest.raises(DataError, match="no task 'nosuch'"):
        run_search(tiny_cfg(task="sentiment", extra=extra))
    assert optuna.get_all_study_names(backend) == ["other"]
    assert sorted(p.name for p in shared.parent.iterdir()) == [shared.name]
    assert not (tmp_path / "studies").exists()
