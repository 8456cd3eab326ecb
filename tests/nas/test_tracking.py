"""Tracking: W&B runs written offline and read back, CSV logs with the same metrics, masking."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import optuna
import pytest

from nas.config.errors import ConfigError
from nas.config.nodes import plain
from nas.engine.optuna_objective import Objective
from nas.engine.run import load_suite, run_search
from nas.reporting.tracking import (
    TrackingHook,
    mask_secrets,
    open_run,
    read_wandb_run,
    run_config,
    summary_of,
)
from nas.trial.hooks import TrialHook
from nas.trial.record import TrialRecord
from search_spaces import load_space

# Two tasks whatever the default suite holds; sentiment's own 400 steps would dominate; log
# every 2 steps so that training losses show up.
TASKS = "[sentiment,qa]"
QUICK = ["trainer.log_every_n_steps=2", "pruner=none", "plots=false"]
FAST = ["tasks.sentiment.steps=8", *QUICK]
# What every trial's history holds, in W&B as in the CSV files.
HISTORY = {
    "pretrain/loss",
    "pretrain/val_loss",
    "sentiment/loss",
    "sentiment/validation_score",
    "sentiment/validation_accuracy",
    "qa/loss",
    "qa/validation_score",
    "qa/validation_f1",
    "qa/validation_exact_match",
}


def read_finished(folder: Path, timeout: float = 30.0) -> dict:
    """The run in ``folder`` once its file holds the exit record (W&B's service writes the
    file in the background: on a busy machine it may lag behind ``run.finish()``)."""
    deadline = time.monotonic() + timeout
    while True:
        run = read_wandb_run(folder)
        if run["exit_code"] is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def wandb_runs(root: Path) -> dict[str, dict]:
    """Every run under ``<root>/wandb``, read from its .wandb file, by run name."""
    runs = [read_finished(d) for d in sorted((root / "wandb").glob("offline-run-*"))]
    return {r["name"]: r for r in runs}


def last(history: list[dict], key: str):
    values = [row[key] for row in history if key in row]
    return values[-1] if values else None


def test_wandb_offline_run_per_trial_and_study(tiny_cfg, tmp_path, offline_wandb):
    cfg = tiny_cfg(task=TASKS, extra=["logger=wandb", "n_trials=2", "study_name=tracked", *FAST])
    result = run_search(cfg)
    runs = wandb_runs(tmp_path)
    assert set(runs) == {"study", "trial-0", "trial-1"}
    for trial in result.study.trials:
        run, attrs = runs[f"trial-{trial.number}"], trial.user_attrs
        assert (run["group"], run["job_type"], run["exit_code"]) == ("tracked", "trial", 0)
        assert run["project"] == "adaptnas"
        # config: the architecture, the sampled params and the budgets
        assert run["config"]["arch"] == attrs["architecture"]
        assert run["config"]["params"] == trial.params
        assert run["config"]["trial"] == trial.number
        assert run["config"]["pretrain"]["tokens"] == cfg.pretrain.tokens
        assert run["config"]["tasks"]["sentiment"]["steps"] == 8
        assert "logger" not in run["config"] and "paths" not in run["config"]
        # history: each stage's losses and metrics, against the stage's own step
        keys = {k for row in run["history"] for k in row}
        assert HISTORY | {"pretrain/step", "qa/step", "adaptability"} <= keys
        assert last(run["history"], "qa/validation_score") == pytest.approx(
            attrs["task_scores"]["qa"]
        )
        # summary: what the trial's user attrs say
        summary = run["summary"]
        assert summary["state"] == "complete"
        assert summary["adaptability"] == pytest.approx(trial.value)
        assert summary["adaptability"] == pytest.approx(attrs["adaptability"])
        assert summary["n_params"] == attrs["n_params"]
        assert summary["describe"] == attrs["describe"]
        for task, score in attrs["task_scores"].items():
            assert summary[f"score/{task}"] == pytest.approx(score)
        for task, metrics in attrs.get("test_metrics", {}).items():
            assert summary[f"test/{task}"] == pytest.approx(metrics["score"])
        assert summary["time/total"] == pytest.approx(attrs["timings"]["total"])
    study_run = runs["study"]
    assert study_run["job_type"] == "study" and study_run["exit_code"] == 0
    assert [row["trial"] for row in study_run["history"] if "pruned" in row] == [0, 1]
    assert last(study_run["history"], "best_adaptability") == pytest.approx(result.study.best_value)
    assert study_run["summary"]["best_trial"] == result.study.best_trial.number
    assert study_run["summary"]["leaderboard"]["nrows"] == 2


def test_csv_logs_hold_the_same_metrics_as_wandb(tiny_cfg, tmp_path, offline_wandb):
    """Same seed, same trials: the CSV files hold the metrics the W&B runs hold."""
    wandb_cfg = tiny_cfg(
        task=TASKS, extra=["logger=wandb", "logger.study_run=false", "n_trials=1", *FAST]
    )
    run_search(wandb_cfg)
    (run,) = wandb_runs(tmp_path).values()

    csv_cfg = tiny_cfg(
        task=TASKS, extra=["logger=csv", "n_trials=1", "study_name=csv", "storage=memory", *FAST]
    )
    result = run_search(csv_cfg)
    (trial,) = result.study.trials
    folder = Path(csv_cfg.logger.dir) / "csv" / "trial-0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "pretrain",
        "qa",
        "sentiment",
        "summary.json",
    ]
    columns: set[str] = set()
    for stage in ("pretrain", "sentiment", "qa"):
        rows = list(csv.DictReader((folder / stage / "metrics.csv").open()))
        columns |= {k for r in rows for k, v in r.items() if v != ""} - {"step", "epoch"}
        for key in {k for r in rows for k in r if k.startswith(f"{stage}/")}:
            logged = [float(r[key]) for r in rows if r[key] != ""]
            assert logged[-1] == pytest.approx(last(run["history"], key), rel=1e-5), key
    assert HISTORY <= columns
    internal = {"adaptability", "pretrain/step", "sentiment/step", "qa/step"}
    logged = {k for row in run["history"] for k in row if not k.startswith("_")} - internal
    assert logged == columns
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == summary_of(TrialRecord.from_trial(trial), "complete") | {
        "trial": 0,
        "best_adaptability_so_far": trial.value,
    }
    assert (
        json.loads((folder / "config.json").read_text())["arch"] == trial.user_attrs["architecture"]
    )


def test_storage_password_never_reaches_a_logged_config(tiny_cfg, tmp_path, offline_wandb):
    cfg = tiny_cfg(
        task=TASKS, extra=["logger=wandb", "storage.url=postgresql://u:secret@h:5432/db"]
    )
    config = run_config(plain(cfg), trial=0)
    assert config["storage"]["url"] == "postgresql://u:***@h:5432/db"
    run = open_run(plain(cfg), "trial-0", "masked", "trial", config)
    run.finish("complete", {"adaptability": 0.5})
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    logged = read_finished(folder)
    assert b"secret" not in next(folder.glob("*.wandb")).read_bytes()
    assert logged["config"]["storage"]["url"] == "postgresql://u:***@h:5432/db"
    assert logged["summary"]["adaptability"] == 0.5


def test_mask_secrets_reaches_nested_values():
    masked = mask_secrets({"a": ["x", {"url": "redis://me:pw@host/0"}], "n": 3})
    assert masked == {"a": ["x", {"url": "redis://me:***@host/0"}], "n": 3}


class ExplodeAfterPretrain(TrialHook):
    """A hook that raises after pretraining: a bug in the middle of a trial."""

    def on_search_start(self, *a):
        pass

    def on_trial_start(self, *a):
        pass

    def logger_for(self, *a):
        return None

    def on_stage(self, trial, stage, seconds, info):
        raise RuntimeError("disk full")

    def on_trial_end(self, *a):
        pass


def test_a_trial_that_crashes_closes_its_run_as_failed(tiny_cfg, tmp_path, offline_wandb):
    cfg = tiny_cfg(task="qa", extra=["logger=wandb", "logger.study_run=false", *QUICK])
    cfg.study_name = "crash"
    study = optuna.create_study(study_name="crash", directions=["maximize"])
    tracking = TrackingHook(plain(cfg))
    tracking.on_search_start(study, plain(cfg))
    objective = Objective(
        plain(cfg),
        load_suite(cfg),
        load_space("tiny"),
        n_trials=1,
        hooks=[tracking, ExplodeAfterPretrain()],
    )
    with pytest.raises(RuntimeError, match="disk full"):
        study.optimize(objective, n_trials=1)
    (run,) = wandb_runs(tmp_path).values()
    assert run["exit_code"] == 1
    assert run["summary"]["state"] == "fail"
    assert run["summary"]["reason"] == "RuntimeError: disk full"
    assert not tracking.runs  # nothing left open


def test_pruned_and_invalid_trials_get_a_run_with_the_reason(tiny_cfg, tmp_path, offline_wandb):
    bad_space = tmp_path / "bad.yaml"
    # d_model 30 is not divisible by 4 heads: those trials are invalid and pruned.
    bad_space.write_text(
        "fixed: {family: decoder, n_layer: 1, d_ff: 64, pos: learned}\n"
        "params:\n  d_model: {type: categorical, choices: [30, 32]}\n"
        "  n_head: {type: categorical, choices: [4]}\n"
    )
    cfg = tiny_cfg(
        task="qa",
        extra=[f"search_space={bad_space}", "logger=wandb", "n_trials=4", "sampler=random", *QUICK],
    )
    result = run_search(cfg)
    pruned = [t for t in result.study.trials if t.state.name == "PRUNED"]
    assert pruned, "d_model=30 with 4 heads should have been drawn in 4 trials"
    runs = wandb_runs(tmp_path)
    for t in pruned:
        run = runs[f"trial-{t.number}"]
        assert run["summary"]["state"] == "pruned"
        assert run["summary"]["reason"] == t.user_attrs["fail_reason"]
        assert "invalid architecture" in run["summary"]["reason"]
        assert run["config"]["params"] == t.params
        assert run["exit_code"] == 0
    study_rows = [r for r in runs["study"]["history"] if "pruned" in r]
    assert [r["trial"] for r in study_rows] == [t.number for t in result.study.trials]
    assert sum(r["pruned"] for r in study_rows) == len(pruned)


def test_bad_logger_settings_fail_before_any_trial(tiny_cfg):
    cfg = tiny_cfg(task="qa", extra=["logger=wandb", "logger.mode=onlin", "storage=memory"])
    with pytest.raises(ConfigError, match=r"logger.mode='onlin' is not one of online, offline"):
        run_search(cfg)
