"""The entry points as users run them: real processes, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest

from tests.conftest import REPO, SEARCH_ONLY, tiny_overrides

State = optuna.trial.TrialState


def run(script: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(REPO / "nas" / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sampler=tpee"], "sampler=tpee: no such option"),
        (["task=nosuchtask"], "task=nosuchtask: no such option"),
        (["pruner=medain"], "did you mean pruner=median?"),
        (["n_trialz=3"], "n_trialz"),
    ],
)
def test_bad_override_is_one_line_and_exit_2(args, needle, tmp_path):
    proc = run("search.py", *args, f"paths.root={tmp_path}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adaptnas: error:"), proc.stderr
    assert needle in lines[0]
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        (
            "params:\n  d_ff: {type: int, low: 512, high: 128}\n",
            "entry 'd_ff': low (512) is above high (128)",
        ),
        ("params:\n  d_modle: {type: int, low: 32, high: 64}\n", "d_modle"),
    ],
)
def test_invalid_space_is_one_line_and_exit_2(space, needle, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(space)
    proc = run("search.py", f"search_space={path}", f"paths.root={tmp_path}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "studies").exists()


@pytest.mark.slow
def test_search_then_resume_from_the_command_line(tmp_path):
    common = tiny_overrides(tmp_path, task="qa")
    first = run("search.py", *common, "n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run("search.py", *common, "n_trials=3")
    assert second.returncode == 0, second.stderr[-3000:]
    study = optuna.load_study(
        study_name="qa-tiny", storage=f"sqlite:///{tmp_path}/studies/qa-tiny/study.db"
    )
    assert len(study.get_trials(states=(State.COMPLETE, State.PRUNED))) == 3
    assert (tmp_path / "studies" / "qa-tiny" / "leaderboard.csv").is_file()
    # The winner retrains through the same staged trial.
    arch = tmp_path / "studies" / "qa-tiny" / "best_architecture.yaml"
    train_args = [o for o in common if not o.startswith(SEARCH_ONLY)]
    trained = run("train.py", *train_args, f"arch={arch}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "adaptability" in trained.stdout + trained.stderr


def test_train_rejects_a_file_that_is_not_an_architecture(tmp_path):
    bad = tmp_path / "arch.yaml"
    bad.write_text("layers: 3\n")
    proc = run("train.py", f"arch={bad}", f"paths.root={tmp_path}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown architecture field(s): layers" in lines[0], proc.stderr
