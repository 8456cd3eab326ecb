"""One read of a study for every report: the leaderboard, the winner, the verdict, the files."""

from __future__ import annotations

import optuna
import yaml

from nas.reporting.leaderboard import best_trials, leaderboard_rows, report_results
from nas.reporting.standing import Standing
from nas.study import finalists as fin
from nas.study import references as R
from tests.nas.studies import add_finished


def _study():
    """A reference (trial 0) and two searched trials; the top one and the reference repeated."""
    study = optuna.create_study(direction="maximize")
    fin.FinalistSettings(top_k=1, seeds=2).record(study)
    add_finished(study, 0.50, "llama", 0.50)
    add_finished(study, 0.60, None, 0.56)
    add_finished(study, 0.40, None, 0.41)
    for r, (test_ref, test_searched) in enumerate([(0.50, 0.57), (0.50, 0.55)], start=1):
        add_finished(study, 0.50, None, test_ref, of=0, r=r)
        add_finished(study, 0.58, None, test_searched, of=1, r=r)
    return study


def _count_reads(study, monkeypatch) -> list[int]:
    """Count the storage's reads of every trial of the study (``get_all_trials``)."""
    storage = study._storage
    real = storage.get_all_trials
    calls: list[int] = []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, "get_all_trials", counted)
    return calls


def test_the_reports_read_the_trials_once(tmp_path, monkeypatch, capsys):
    study = _study()
    expected_rows = leaderboard_rows(study)  # each reads the storage itself
    expected_verdict = R.record_verdict(study)
    calls = _count_reads(study, monkeypatch)
    now = Standing.of(study)
    assert R.record_verdict(study, now.ranked) == expected_verdict
    files = report_results(now, tmp_path, "study t")
    assert [t.number for t in best_trials(now)] == [1]
    assert len(calls) == 1  # the Standing's own read; every report reads it
    assert leaderboard_rows(now) == expected_rows
    assert sorted(files) == ["best_architecture", "leaderboard"]
    winner = yaml.safe_load(files["best_architecture"].read_text())
    assert winner["trial"] == 1 and winner["n_seeds"] == 3
    assert winner["verdict"] == expected_verdict  # beats Llama-like on test
    assert winner["verdict"]["text"].startswith("beats Llama-like by +0.060")
    assert "study t" in capsys.readouterr().out


def test_a_report_given_the_study_reads_it_itself(monkeypatch):
    study = _study()
    calls = _count_reads(study, monkeypatch)
    leaderboard_rows(study)
    best_trials(study)
    assert len(calls) == 2  # no Standing passed: each reads the storage afresh


def test_a_standing_is_the_study_when_it_was_read():
    study = _study()
    now = Standing.of(study)
    add_finished(study, 0.99)  # a trial that finishes after the read
    assert [s.trial.number for s in now.ranked] == [1, 0]
    assert [s.trial.number for s in Standing.of(study).ranked][0] == 7
