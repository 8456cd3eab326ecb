"""Finalists re-evaluated: repeats shared through the storage, the winner by mean, resume."""

from __future__ import annotations

import csv
import statistics
import threading
from pathlib import Path

import optuna
import pytest
import yaml

from nas.config.errors import ConfigError
from nas.engine.run import run_search
from nas.engine.workers import run_trials
from nas.reporting.leaderboard import best_trials, leaderboard_rows
from nas.study import finalists as fin
from nas.study.finalists import FinalistSettings
from nas.study.storage import count_finished, fail_orphans
from nas.trial.record import SURPLUS as SURPLUS_ATTR

State = optuna.trial.TrialState
FINISHED = (State.COMPLETE, State.PRUNED)
# Search trial n scores VALUES[n]; repeat r of trial n scores VALUES[n] + NOISE[n][r - 1].
VALUES = [0.50, 0.80, 0.60, 0.75, 0.10, 0.70]
NOISE = {1: [-0.20, -0.10], 3: [0.05, 0.00], 5: [0.00, 0.02]}


def journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def toy(trial: optuna.Trial) -> float:
    """Trial n (or its repeat) takes arm n: one categorical, like an architecture."""
    if fin.REPEAT_OF in trial.user_attrs:
        of, r = int(trial.user_attrs[fin.REPEAT_OF]), int(trial.user_attrs[fin.REPEAT])
        arm = trial.suggest_int("arm", 0, 9)
        assert arm == of  # the finalist's parameters
        return VALUES[of] + NOISE[of][r - 1]
    trial.suggest_int("arm", trial.number, trial.number)
    return VALUES[trial.number]


def study_at(tmp_path: Path, name: str = "toy") -> optuna.Study:
    return optuna.create_study(
        study_name=name, storage=journal(tmp_path / "j.log"), direction="maximize"
    )


def test_top_k_rerun_with_more_seeds_and_the_best_mean_wins(tmp_path):
    study = study_at(tmp_path)
    settings = FinalistSettings(top_k=3, seeds=2)
    settings.record(study)
    ran = run_trials(study, toy, len(VALUES), finalists=settings, gc_after_trial=False)
    assert ran == 6 + 3 * 2
    assert count_finished(study) == 6  # repeats never count towards n_trials
    repeats = fin.repeats_by_key(study.trials)
    assert sorted(repeats) == [(1, 1), (1, 2), (3, 1), (3, 2), (5, 1), (5, 2)]
    assert all(len(tries) == 1 and tries[0].state == State.COMPLETE for tries in repeats.values())
    # Each repeat completes with its own seed's value (the search's value semantics).
    assert repeats[(1, 1)][0].values[0] == pytest.approx(0.60)
    ranked = fin.ranked(study)
    # Trial 1 led on one seed (0.80) but its mean is 0.70; trial 3's is 0.7667; trial 5's 0.7067.
    assert [s.trial.number for s in ranked] == [3, 5, 1]
    assert ranked[0].mean == pytest.approx(0.7667, abs=1e-4)
    assert ranked[0].sd == pytest.approx(statistics.stdev([0.75, 0.80, 0.75]))
    assert [t.number for t in best_trials(study)] == [3]
    assert study.best_trial.number != 3  # Optuna's best is trial 1: a lucky seed is not the winner

    rows = leaderboard_rows(study)
    assert [(r["rank"], r["trial"], r["seeds"]) for r in rows] == [
        (1, 3, 3), (2, 5, 3), (3, 1, 3), (4, 2, 1), (5, 0, 1), (6, 4, 1),
    ]  # fmt: skip
    assert rows[0]["adaptability"] == pytest.approx(0.7667, abs=1e-4) and rows[3]["sd"] == ""
    # Everything is done: a second pass enqueues nothing.
    assert fin.enqueue_missing(study, settings).done
    assert run_trials(study, toy, len(VALUES), finalists=settings) == 0


def test_a_repeat_enqueued_twice_runs_once(tmp_path):
    """Two workers that enqueue at the same moment: the later copy is surplus when it starts."""
    study = study_at(tmp_path)
    settings = FinalistSettings(top_k=1, seeds=1)
    run_trials(study, toy, len(VALUES), gc_after_trial=False)  # the search alone
    for _ in range(2):  # both workers saw the repeat missing
        study.enqueue_trial({"arm": 1}, user_attrs={fin.REPEAT_OF: 1, fin.REPEAT: 1})
    todo = fin.work(study, settings)
    assert (todo.missing, todo.waiting) == ([], 2)  # both are taken, so none stays queued
    assert run_trials(study, toy, len(VALUES), finalists=settings) == 1
    first, second = [t for t in study.trials if fin.is_repeat(t)]
    assert first.state == State.COMPLETE
    assert second.state == State.FAIL and second.system_attrs[SURPLUS_ATTR] is True
    assert (
        second.user_attrs["fail_reason"]
        == f"surplus: trial {first.number} runs the same finalist repeat"
    )
    assert second.params == {}  # failed before sampling or training anything


def test_workers_racing_on_the_finalists_run_each_repeat_exactly_once(tmp_path):
    name = "race"
    optuna.create_study(study_name=name, storage=journal(tmp_path / "j.log"), direction="maximize")
    settings = FinalistSettings(top_k=3, seeds=2)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            storage = fin_storage(tmp_path)
            study = optuna.load_study(study_name=name, storage=storage)
            barrier.wait()
            run_trials(study, toy, len(VALUES), finalists=settings, poll=0.1, gc_after_trial=False)
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    study = optuna.load_study(study_name=name, storage=journal(tmp_path / "j.log"))
    done = [t for t in study.trials if fin.is_repeat(t) and t.state == State.COMPLETE]
    assert sorted(fin.repeat_key(t) for t in done) == [
        (1, 1),
        (1, 2),
        (3, 1),
        (3, 2),
        (5, 1),
        (5, 2),
    ]
    others = [t for t in study.trials if t.state not in FINISHED]
    assert all(t.system_attrs.get(SURPLUS_ATTR) and not t.params for t in others)
    assert not [t for t in study.trials if t.state in (State.RUNNING, State.WAITING)]


def fin_storage(tmp_path: Path):
    from nas.study.storage import JournalHeartbeatStorage

    return JournalHeartbeatStorage(
        tmp_path / "j.log", 1, 3, optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    )


def test_a_killed_repeat_is_run_again(tmp_path):
    study = study_at(tmp_path)
    settings = FinalistSettings(top_k=1, seeds=2)
    run_trials(study, toy, len(VALUES), gc_after_trial=False)
    fin.enqueue_missing(study, settings)
    # A worker took repeat 1 and was SIGKILLed mid-training: RUNNING, its pid gone.
    victim = study.ask()
    assert fin.repeat_key(study.trials[victim.number]) == (1, 1)
    victim.set_user_attr("host", "here")
    victim.set_user_attr("pid", 999_999)
    assert fail_orphans(study, max_retry=1, host="here", alive=lambda pid: False) == [victim.number]
    # The retry copy keeps the key; the next worker runs it and the other repeat, nothing twice.
    assert run_trials(study, toy, len(VALUES), finalists=settings) == 2
    tries = fin.repeats_by_key(study.trials)
    assert [t.state for t in tries[(1, 1)]] == [State.FAIL, State.COMPLETE]
    assert [t.state for t in tries[(1, 2)]] == [State.COMPLETE]
    # Without a retry copy (max_retry=0) a failed repeat is queued again by the finalist phase.
    later = study_at(tmp_path, name="no-retry")
    run_trials(later, toy, len(VALUES), gc_after_trial=False)
    fin.enqueue_missing(later, settings)
    victim = later.ask()
    later.tell(victim, state=State.FAIL)
    assert run_trials(later, toy, len(VALUES), finalists=settings) == 2
    assert [t.state for t in fin.repeats_by_key(later.trials)[(1, 1)]] == [
        State.FAIL,
        State.COMPLETE,
    ]


def test_a_repeat_that_keeps_failing_is_given_up(tmp_path):
    study = study_at(tmp_path)
    settings = FinalistSettings(top_k=1, seeds=1)
    run_trials(study, toy, len(VALUES), gc_after_trial=False)

    def broken(trial: optuna.Trial) -> float:
        if fin.REPEAT_OF in trial.user_attrs:
            raise RuntimeError("out of memory")
        return toy(trial)

    ran = run_trials(study, broken, len(VALUES), finalists=settings, catch=(RuntimeError,))
    assert ran == fin.MAX_FAILURES
    assert fin.work(study, settings).given_up == [(1, 1)]
    assert [t.number for t in best_trials(study)] == [1]  # the winner on the seeds it has


def test_multi_objective_repeats_the_most_adaptable_of_the_pareto_front(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    size = [5, 9, 3, 6, 1, 4]  # parameters of arms 0-5: the front is 1, 3, 5, 2, 4

    def two(trial: optuna.Trial) -> tuple[float, float]:
        value = toy(trial)
        return value, size[trial.params["arm"]]

    settings = FinalistSettings(top_k=2, seeds=2)
    settings.record(study)
    run_trials(study, two, len(VALUES), finalists=settings, gc_after_trial=False)
    assert sorted(fin.repeats_by_key(study.trials)) == [(1, 1), (1, 2), (3, 1), (3, 2)]
    front = best_trials(study)
    assert {t.number for t in front} == {1, 2, 3, 4, 5}
    # By mean adaptability: 3 (0.7667), then 1 (0.70 over 3 seeds) and 5 (0.70, one seed): a tie,
    # the earlier trial first.
    assert [t.number for t in front][:3] == [3, 1, 5]


def test_bad_settings_are_one_line_errors(tiny_cfg):
    for override, message in [
        ("finalists.seeds=-1", "finalists.seeds=-1 must be an integer >= 0; 0 = off"),
        ("finalists.top_k=0", "finalists.top_k=0 must be a positive integer"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            run_search(tiny_cfg(task="sentiment", extra=[override]))


def test_search_reruns_its_finalists_and_a_resume_adds_seeds(tiny_cfg):
    extra = [
        "n_trials=3",
        "study_name=fin",
        "pruner=none",
        "finalists.top_k=2",
        "finalists.seeds=1",
    ]
    result = run_search(tiny_cfg(task="sentiment", extra=extra))
    study = result.study
    assert result.ran == 3 + 2 and count_finished(study) == 3
    top = fin.pick_finalists(study.trials, 2)
    for (of, r), (rep,) in fin.repeats_by_key(study.trials).items():
        original = study.trials[of]
        assert of in {t.number for t in top} and r == 1
        assert rep.params == original.params and rep.state == State.COMPLETE
        assert rep.user_attrs["seed"] == original.user_attrs["seed"] + fin.REPEAT_SEED_STRIDE
        assert rep.intermediate_values == {}  # nothing reported to the pruner
        assert rep.values[0] == rep.user_attrs["adaptability"]
    # Another seed, another score (CPU runs are deterministic: this holds on every run).
    assert any(
        rep.values[0] != study.trials[of].values[0]
        for (of, _), (rep,) in fin.repeats_by_key(study.trials).items()
    )
    rows = list(csv.DictReader(result.files["leaderboard"].open()))
    assert [r["seeds"] for r in rows] == ["2", "2", "1"] and {"sd", "seeds"} <= set(rows[0])
    winner = fin.ranked(study)[0]
    doc = yaml.safe_load(result.files["best_architecture"].read_text())
    assert doc["trial"] == winner.trial.number == int(rows[0]["trial"])
    assert doc["n_seeds"] == 2 and doc["adaptability"] == pytest.approx(winner.mean)
    assert doc["adaptability_sd"] == pytest.approx(winner.sd)
    assert [s["adaptability"] for s in doc["seeds"]] == winner.values

    assert run_search(tiny_cfg(task="sentiment", extra=extra)).ran == 0  # complete
    more = run_search(tiny_cfg(task="sentiment", extra=[*extra[:-1], "finalists.seeds=2"]))
    assert more.ran == 2  # repeat 2 of each finalist, no new search trial
    assert all(s.n == 3 for s in fin.ranked(more.study))
