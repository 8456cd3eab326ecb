"""Faults: each is injected into a tiny search, which must end in the right state.

Trial faults end one trial with its reason (``fail_reason``, in the leaderboard) while the study
goes on; a bug in the framework stops the search; Ctrl-C and SIGKILL leave a study that the same
command resumes, losing no completed trial.
"""

from __future__ import annotations

import csv
import gc
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

import nas.trial.run
import nas.trial.stages
from lightning_modules.finetune import FinetuneModule
from lightning_modules.tasks.classification import SequenceTask
from nas.config.errors import ConfigError
from nas.engine.run import load_suite, run_search
from nas.engine.workers import WorkerInfo
from nas.study.storage import fail_orphans, pid_alive, pid_namespace
from nas.trial.record import TrialRecord
from nas.trial.run import TaskError, task_stage
from nas.trial.stages import Deadline, DeadlineCallback, TrialTimeout
from tests.conftest import REPO, tiny_overrides

State = optuna.trial.TrialState
FINISHED = (State.COMPLETE, State.PRUNED)
Retry = optuna.storages.RetryHeartbeatStaleTrialCallback
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


def tiny_search(tiny_cfg, n_trials: int, *extra: str):
    """A one-task search of ``n_trials`` (about a second a trial), no pruning."""
    overrides = [f"n_trials={n_trials}", "pruner=none", "storage=memory", *extra]
    return run_search(tiny_cfg(task="sentiment", extra=overrides))


def on_first_call(real, before):
    """``real`` wrapped so that ``before(*args, **kwargs)`` runs on its first call only."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            before(*args, **kwargs)
        return real(*args, **kwargs)

    return wrapper


def by_state(study: optuna.Study) -> dict[State, list[optuna.trial.FrozenTrial]]:
    out: dict[State, list] = {}
    for t in study.trials:
        out.setdefault(t.state, []).append(t)
    return out


def leaderboard(folder: Path) -> dict[int, dict[str, str]]:
    return {int(r["trial"]): r for r in csv.DictReader((folder / "leaderboard.csv").open())}


# ---------------------------------------------------------------------------------------------
# trial faults: one trial ends with its reason, the study goes on


def test_nan_learning_rate_prunes_that_trial_and_the_study_goes_on(tiny_cfg, monkeypatch):
    real, calls = nas.trial.stages.pretrain, []

    def pretrain(arch, suite, cfg, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the first trial's loss becomes NaN (a copy: cfg serves every trial)
            cfg = {**cfg, "pretrain": {**cfg["pretrain"], "lr": 1e4}}
        return real(arch, suite, cfg, *args, **kwargs)

    monkeypatch.setattr(nas.trial.stages, "pretrain", pretrain)
    result = tiny_search(tiny_cfg, 2)
    first, *rest = result.study.trials
    assert first.state == State.PRUNED
    assert first.user_attrs["fail_reason"].startswith("diverged: pretrain loss")
    assert [t.state for t in rest] == [State.COMPLETE]
    assert leaderboard(result.folder)[0]["reason"] == first.user_attrs["fail_reason"]


def test_out_of_memory_fails_that_trial_frees_memory_and_the_study_goes_on(
    tiny_cfg, monkeypatch, capsys
):
    events: list[str] = []
    real_collect = gc.collect

    def collect(*args, **kwargs):
        events.append("gc")
        return real_collect(*args, **kwargs)

    def oom(*args, **kwargs):
        events.append("pretrain (out of memory)")
        # torch's message is one long line; the reason keeps its first two sentences.
        raise torch.cuda.OutOfMemoryError(f"{OOM}. GPU 0 has a total capacity of 79.19 GiB.")

    def pretrain(*args, **kwargs):
        events.append("pretrain")
        return real_pretrain(*args, **kwargs)

    real_pretrain = nas.trial.stages.pretrain
    monkeypatch.setattr(nas.trial.stages, "pretrain", on_first_call(pretrain, oom))
    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))

    result = tiny_search(tiny_cfg, 2)
    states = by_state(result.study)
    (failed,) = states[State.FAIL]
    assert failed.number == 0
    assert failed.user_attrs["fail_reason"] == f"out of memory: {OOM}"
    assert len(states[State.COMPLETE]) == 2 and State.RUNNING not in states
    # Memory was freed after the failure and before the next trial started.
    start = events.index("pretrain (out of memory)")
    between = events[start + 1 : events.index("pretrain", start)]
    assert "gc" in between and "empty_cache" in between[between.index("gc") :]
    assert leaderboard(result.folder)[0]["reason"] == f"out of memory: {OOM}"
    assert leaderboard(result.folder)[0]["state"] == "fail"
    assert f"out of memory: {OOM}" in capsys.readouterr().out  # the terminal's leaderboard


class Keep(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_raising_task_fails_that_trial_with_its_traceback_in_the_trial_log(
    tiny_cfg, monkeypatch, caplog
):
    def bad_score(self, predictions, split):
        raise ValueError("label 7 is out of range\n(and a second line)")

    # The task's floors (a search under the default skill scores trivial predictions once, before
    # any trial) are computed first, so that the first scoring to fail is the trial's.
    suite = load_suite(tiny_cfg(task="sentiment"))
    suite.floors(), suite.floors("test")
    monkeypatch.setattr(SequenceTask, "score", on_first_call(SequenceTask.score, bad_score))
    caplog.set_level(logging.INFO, logger="adaptnas")
    optuna_lines = Keep()  # what Optuna prints on the terminal (its own handler, no propagation)
    logging.getLogger("optuna").addHandler(optuna_lines)
    verbosity = optuna.logging.get_verbosity()  # other tests (benchmarks) may have lowered it
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        result = tiny_search(tiny_cfg, 2)
    finally:
        logging.getLogger("optuna").removeHandler(optuna_lines)
        optuna.logging.set_verbosity(verbosity)

    states = by_state(result.study)
    (failed,) = states[State.FAIL]
    reason = "task sentiment: ValueError: label 7 is out of range"
    assert failed.user_attrs["fail_reason"] == reason
    assert len(states[State.COMPLETE]) == 2
    assert leaderboard(result.folder)[failed.number]["reason"] == reason
    # The trial's log file: its lines, then the whole traceback, original error included.
    text = Path(failed.user_attrs["log_file"]).read_text()
    assert Path(failed.user_attrs["log_file"]) == result.folder / "logs" / "trial_0.log"
    assert f"failed: {reason}" in text
    assert "Traceback" in text and "in bad_score" in text
    assert "ValueError: label 7 is out of range" in text and "TaskError" in text
    # One line on the terminal; Optuna's own warning with the traceback is not printed.
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and reason in r.getMessage()
    ]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    said = [r.getMessage() for r in optuna_lines.records]
    assert any("Trial 1 finished" in line for line in said)  # Optuna's lines do arrive here
    assert not [r for r in optuna_lines.records if r.exc_info or "Trial 0 failed" in r.getMessage()]
    # A complete trial has its log too, and no handler is left behind.
    done = states[State.COMPLETE][0]
    assert "adaptability" in Path(done.user_attrs["log_file"]).read_text()
    for name in ("adaptnas", "pytorch_lightning"):
        assert not [
            h for h in logging.getLogger(name).handlers if isinstance(h, logging.FileHandler)
        ]


def test_task_stage_wraps_ordinary_errors_only():
    with pytest.raises(TaskError) as err, task_stage("ner"):
        raise KeyError("score")
    assert str(err.value) == "task ner: KeyError: 'score'" and isinstance(
        err.value.__cause__, KeyError
    )
    passing = [
        nas.trial.run.DivergedError("ner fine-tune loss nan"),
        TrialTimeout(30, "ner"),
        optuna.TrialPruned("after ner"),
        torch.cuda.OutOfMemoryError(OOM),
        KeyboardInterrupt(),
    ]
    for error in passing:
        with pytest.raises(type(error)), task_stage("ner"):
            raise error


def test_trial_past_its_time_limit_fails_and_the_study_goes_on(tiny_cfg, monkeypatch):
    # A fake clock: the first trial's fine-tuning "takes" 1000 s; the check after its first
    # training batch (inside Lightning) notices.
    offset = [0.0]
    monkeypatch.setattr(nas.trial.stages, "clock", lambda: time.monotonic() + offset[0])

    def slow(*args, **kwargs):
        offset[0] += 1000

    monkeypatch.setattr(
        nas.trial.stages, "finetune", on_first_call(nas.trial.stages.finetune, slow)
    )
    result = tiny_search(tiny_cfg, 2, "trial_timeout=60")
    states = by_state(result.study)
    (failed,) = states[State.FAIL]
    assert failed.user_attrs["fail_reason"] == "time limit: 60s exceeded during sentiment"
    assert len(states[State.COMPLETE]) == 2
    assert "time limit: 60s" in leaderboard(result.folder)[failed.number]["reason"]


def test_deadline_is_checked_between_stages_and_after_validation_batches(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(nas.trial.stages, "clock", lambda: now[0])
    deadline = Deadline.after(30)
    deadline.check("pretrain")  # in time
    now[0] = 131.0
    with pytest.raises(TrialTimeout, match=r"^time limit: 30s exceeded during qa$"):
        deadline.check("qa")
    callback = DeadlineCallback(deadline, "translation")
    with pytest.raises(TrialTimeout, match="during translation"):  # generation decodes here
        callback.on_validation_batch_end(None, None, None, None, 0)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_bad_trial_timeout_is_a_one_line_config_error(tiny_cfg, value):
    with pytest.raises(ConfigError, match="^trial_timeout=.* must be a positive number"):
        run_search(tiny_cfg(extra=[f"trial_timeout={value}"]))


# ---------------------------------------------------------------------------------------------
# bugs: the search stops with the traceback


@pytest.mark.parametrize("where", ["record", "pretrain"])
def test_a_bug_in_the_framework_stops_the_search(tiny_cfg, monkeypatch, where):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("boom")

    if where == "record":
        monkeypatch.setattr(TrialRecord, "to_attrs", boom)
    else:  # outside the task stages: not a TaskError
        monkeypatch.setattr(nas.trial.stages, "pretrain", boom)
    cfg = tiny_cfg(task="sentiment", extra=["n_trials=3", "pruner=none", "study_name=bug"])
    with pytest.raises(ZeroDivisionError, match="boom"):
        run_search(cfg)
    study = optuna.load_study(
        study_name="bug", storage=f"sqlite:///{cfg.paths.studies}/bug/study.db"
    )
    (trial,) = study.trials  # stopped at the first
    assert trial.state == State.FAIL
    assert trial.user_attrs["fail_reason"] == "ZeroDivisionError: boom"


# ---------------------------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_inside_lightning_fails_the_trial_and_stops_the_search(tiny_cfg, monkeypatch):
    # Lightning turns a KeyboardInterrupt inside fit() into sys.exit(1); it must come out as
    # KeyboardInterrupt, with the trial failed (not left running).
    real = FinetuneModule.training_step

    def ctrl_c(self, batch, batch_idx):
        os.kill(os.getpid(), signal.SIGINT)
        return real(self, batch, batch_idx)

    monkeypatch.setattr(FinetuneModule, "training_step", ctrl_c)
    cfg = tiny_cfg(task="sentiment", extra=["n_trials=2", "study_name=ctrlc"])
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    study = optuna.load_study(
        study_name="ctrlc", storage=f"sqlite:///{cfg.paths.studies}/ctrlc/study.db"
    )
    (trial,) = study.trials
    assert trial.state == State.FAIL and trial.user_attrs["fail_reason"] == "interrupted"


# ---------------------------------------------------------------------------------------------
# orphans: trials of a killed process on this machine


def make_running(study, host: str, pid: int | None, **attrs) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_int("n_layer", 1, 4)
    trial.set_user_attr("host", host)
    if pid is not None:
        trial.set_user_attr("pid", pid)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


def test_fail_orphans_fails_and_requeues_trials_of_dead_local_processes():
    study = optuna.create_study()
    here = socket.gethostname()
    dead = make_running(study, here, 4242, pid_ns=pid_namespace())
    alive = make_running(study, here, 4343)
    elsewhere = make_running(study, "node-7", 4242)
    no_pid = make_running(study, here, None)
    other_ns = make_running(study, here, 4242, pid_ns="pid:[1]")  # another container
    mine = make_running(study, here, os.getpid())
    done = make_running(study, here, 4242)
    study.tell(done, 0.5)

    checked: list[int] = []

    def alive_pids(pid: int) -> bool:
        checked.append(pid)
        return pid == 4343

    assert fail_orphans(study, alive=alive_pids) == [dead.number]
    trials = study.trials
    assert trials[dead.number].state == State.FAIL
    assert trials[dead.number].user_attrs["fail_reason"] == "worker process 4242 died"
    for t in (alive, elsewhere, no_pid, other_ns, mine):
        assert trials[t.number].state == State.RUNNING
    assert os.getpid() not in checked  # this process is never an orphan
    (retry,) = [t for t in trials if t.state == State.WAITING]
    assert Retry.retried_trial_number(retry) == dead.number
    assert Retry.retry_history(retry) == [dead.number]
    assert retry.params == trials[dead.number].params  # the same architecture again
    assert "fail_reason" not in retry.user_attrs  # the reason is the original's alone

    # The retry dies too: max_retry=1 fails it without a third copy; max_retry=0 queues none.
    again = study.ask()
    assert again.number == retry.number and again.params == retry.params
    again.set_user_attr("pid", 4242)
    assert fail_orphans(study, alive=alive_pids) == [again.number]
    assert not study.get_trials(states=(State.WAITING,))
    lone = make_running(study, here, 4545)
    assert fail_orphans(study, max_retry=0, alive=alive_pids) == [lone.number]
    assert not study.get_trials(states=(State.WAITING,))


def test_pid_alive_sees_dead_and_zombie_processes():
    assert pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(proc.pid)
        proc.kill()
        deadline = time.monotonic() + 10
        while pid_alive(proc.pid) and time.monotonic() < deadline:  # a zombie until reaped
            time.sleep(0.05)
        assert not pid_alive(proc.pid)
    finally:
        proc.wait(timeout=10)
    assert not pid_alive(proc.pid)
    info = WorkerInfo(0, "node", os.getpid(), 1, None)
    assert info.attrs()["pid"] == os.getpid() and info.attrs()["host"] == "node"


# ---------------------------------------------------------------------------------------------
# real processes: Ctrl-C and SIGKILL of `python nas/search.py`


def search_cmd(tmp_path: Path, study: str, n_trials: int) -> list[str]:
    args = tiny_overrides(tmp_path, "sentiment", [f"study_name={study}", f"n_trials={n_trials}"])
    return [sys.executable, str(REPO / "nas" / "search.py"), *args, "pruner=none"]


def db_trials(db: Path) -> dict[int, tuple[str, set[str]]]:
    """``{number: (state, user attribute keys)}`` read from a study.db that a search is writing."""
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute(
                "SELECT t.number, t.state, a.key FROM trials t "
                "LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or locked for a moment
        return {}
    out: dict[int, tuple[str, set[str]]] = {}
    for number, state, key in rows:
        out.setdefault(number, (state, set()))[1].add(key)
    return out


ENV = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}


def signal_mid_trial(cmd: list[str], db: Path, signum: int) -> tuple[subprocess.Popen, int, str]:
    """Start ``cmd``; once a trial completed and the next one trains, send ``signum``.

    Returns:
        The process (finished), the number of the trial it was running, and its stderr.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    caught = -1
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            trials = db_trials(db)
            complete = [n for n, (state, _) in trials.items() if state == "COMPLETE"]
            # Mid-training: the architecture is sampled and recorded.
            running = [
                n for n, (s, keys) in trials.items() if s == "RUNNING" and "architecture" in keys
            ]
            if complete and running:
                proc.send_signal(signum)
                caught = running[0]
                break
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert caught >= 0, "the search ended before a trial could be caught running"
    return proc, caught, err


def load(db: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_study(tmp_path):
    cmd = search_cmd(tmp_path, "ctrl-c", 3)
    db = tmp_path / "studies" / "ctrl-c" / "study.db"
    proc, caught, err = signal_mid_trial(cmd, db, signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    line = "adaptnas: interrupted; the study is saved, run the same command to resume"
    assert err.count(line) == 1, err[-3000:]
    assert "Traceback" not in err
    trials = load(db, "ctrl-c")
    kept = {t.number: t.values for t in trials if t.state == State.COMPLETE}
    assert kept and trials[caught].state == State.FAIL
    assert trials[caught].user_attrs["fail_reason"] == "interrupted"
    assert not [t for t in trials if t.state == State.RUNNING]

    again = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(db, "ctrl-c")
    assert len([t for t in trials if t.state in FINISHED]) == 3
    assert trials[caught].state == State.FAIL  # its slot was run again by a new trial
    assert all(trials[n].values == values for n, values in kept.items())


@pytest.mark.slow
def test_sigkill_loses_no_completed_trial_and_the_killed_one_is_retried_at_once(tmp_path):
    cmd = search_cmd(tmp_path, "sigkill", 3)
    db = tmp_path / "studies" / "sigkill" / "study.db"
    proc, killed, _ = signal_mid_trial(cmd, db, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    trials = load(db, "sigkill")
    kept = {t.number: t.values for t in trials if t.state == State.COMPLETE}
    assert kept and trials[killed].state == State.RUNNING  # nobody has noticed yet
    assert trials[killed].user_attrs["pid"] == proc.pid

    # The same command right away: no wait for the heartbeat's grace period (180 s).
    start = time.monotonic()
    again = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert time.monotonic() - start < 170
    trials = load(db, "sigkill")
    assert trials[killed].state == State.FAIL
    assert trials[killed].user_attrs["fail_reason"] == f"worker process {proc.pid} died"
    retries = [t for t in trials if Retry.retried_trial_number(t) == killed]
    assert [t.state for t in retries] == [State.COMPLETE]
    assert retries[0].params == trials[killed].params  # the same architecture, run again
    assert "fail_reason" not in retries[0].user_attrs
    assert all(trials[n].values == values for n, values in kept.items())
    assert len([t for t in trials if t.state in FINISHED]) == 3
