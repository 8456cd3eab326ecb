"""Many workers on one study: exact budgets, heartbeats and retries, launchers, storages, GPUs.

The end-to-end tests run what users run (``python nas/search.py -m hydra/launcher=...``) as real
processes against real storages: a journal file, the PostgreSQL server and the one-node SLURM
cluster that ``scripts/`` install and start (fixtures in ``tests/nas/conftest.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from nas.config.errors import ConfigError
from nas.engine.workers import (
    MAX_CONSECUTIVE_FAILURES,
    BudgetedObjective,
    StopAfterFailures,
    SurplusTrial,
    run_trials,
)
from nas.study.storage import (
    JournalHeartbeatStorage,
    mask_url,
    masked_error,
    open_study,
    url_password,
)
from nas.trial.record import SURPLUS as SURPLUS_ATTR
from nas.trial.resources import assign_gpu, local_workers, resolve_threads
from tests.conftest import REPO, tiny_overrides

State = optuna.trial.TrialState
FINISHED = (State.COMPLETE, State.PRUNED)
Retry = optuna.storages.RetryHeartbeatStaleTrialCallback


# ---------------------------------------------------------------------------------------------
# helpers


def search(
    *args: str, env: dict | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """``python nas/search.py ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, str(REPO / "nas" / "search.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
        timeout=timeout,
    )


def tiny(tmp_path: Path, study: str, n_trials: int, *extra: str) -> list[str]:
    """A tiny one-task search (about a second per trial) writing under ``tmp_path``."""
    return tiny_overrides(
        tmp_path,
        "sentiment",
        [f"study_name={study}", f"n_trials={n_trials}", "pruner=none", *extra],
    )


def journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def job_logs(tmp_path: Path) -> str:
    """Every Hydra job log of the multirun(s) under ``tmp_path``."""
    return "\n".join(p.read_text() for p in sorted(tmp_path.glob("hydra/multirun/*/*/*/*.log")))


def assert_exact(trials: list[optuna.trial.FrozenTrial], n: int, logs: str | None = None) -> None:
    """Exactly ``n`` finished trials, unique numbers, nothing left running, nothing run twice."""
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == n, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state in (State.RUNNING, State.WAITING)]
    # Anything else is a surplus trial, failed before it sampled or trained anything.
    others = [t for t in trials if t.state not in FINISHED]
    assert all(t.system_attrs.get(SURPLUS_ATTR) and not t.params for t in others), others
    if logs is not None:  # every trial a worker started, summed over workers: none ran twice
        ran = sum(int(x) for x in re.findall(r"search ran (\d+) trial", logs))
        assert ran == n, logs[-3000:]


# ---------------------------------------------------------------------------------------------
# the budget, in-process and across processes (trivial objective: the logic under test is ours)


def test_a_trial_past_the_budget_is_surplus_and_never_counts(tmp_path):
    study = optuna.create_study(storage=journal(tmp_path / "j.log"))
    first, second = study.ask(), study.ask()  # two workers took the two slots
    late = study.ask()  # a third asked at the same moment
    budget = BudgetedObjective(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(SurplusTrial, match="surplus"):
        budget(late)
    study.tell(late, state=State.FAIL)
    assert late.params == {}  # failed before sampling anything
    assert study.trials[late.number].system_attrs[SURPLUS_ATTR] is True
    # A slot freed by a failure goes to the next trial; ranks never grow, so the rest keep theirs.
    study.tell(first, state=State.FAIL)
    again = study.ask()
    study.tell(again, budget(again))
    study.tell(second, budget(second))
    assert sorted(t.number for t in study.trials if t.state in FINISHED) == [1, 3]


def _race_worker(kind: str, where: str, name: str, n_trials: int, barrier, log: Path) -> None:
    # Each worker opens its own storage, as a separate process would (own journal writer id,
    # own database connections); threads keep the test free of process start-up costs.
    if kind == "journal":
        storage = JournalHeartbeatStorage(Path(where), 1, 3, Retry(max_retry=1))
    else:
        storage = optuna.storages.RDBStorage(
            where, heartbeat_interval=1, grace_period=3, heartbeat_stale_trial_callback=Retry(1)
        )
    study = optuna.load_study(study_name=name, storage=storage)
    me = threading.get_ident()

    def objective(trial: optuna.Trial) -> float:
        with log.open("a") as f:
            f.write(f"{trial.number}\n")
        time.sleep(0.02)
        return trial.suggest_float("x", 0, 1)

    barrier.wait()  # all start asking at the same moment
    run_trials(study, objective, n_trials, attrs={"who": me}, poll=0.2, gc_after_trial=False)


def race(kind: str, where: str, tmp_path: Path, n_trials: int = 24, workers: int = 4) -> None:
    name = f"race-{kind}-{os.getpid()}-{time.time_ns()}"
    storage = journal(Path(where)) if kind == "journal" else optuna.storages.RDBStorage(where)
    optuna.create_study(study_name=name, storage=storage)
    log = tmp_path / "ran.txt"
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            _race_worker(kind, where, name, n_trials, barrier, log)
        except BaseException as err:  # noqa: BLE001 (reported by the assert below)
            errors.append(err)

    threads = [threading.Thread(target=guarded) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert_exact(trials, n_trials)
    ran = [int(x) for x in log.read_text().split()]
    assert sorted(ran) == sorted(t.number for t in trials if t.state in FINISHED)  # once each
    assert len({t.user_attrs["who"] for t in trials if t.state in FINISHED}) > 1  # shared work


def test_four_workers_racing_on_a_journal_finish_exactly_n_trials(tmp_path):
    race("journal", str(tmp_path / "journal.log"), tmp_path)


def test_four_workers_racing_on_postgres_finish_exactly_n_trials(tmp_path, postgres_url):
    race("postgres", postgres_url, tmp_path)


def test_journal_heartbeat_fails_a_silent_trial_and_queues_its_retry(tmp_path):
    storage = JournalHeartbeatStorage(tmp_path / "j.log", 1, 1, Retry(max_retry=1))
    study = optuna.create_study(storage=storage)
    dead, alive = study.ask(), study.ask()
    dead.suggest_int("n_layer", 1, 4)
    storage.record_heartbeat(dead._trial_id)
    time.sleep(1.3)
    storage.record_heartbeat(alive._trial_id)  # still beating
    optuna.storages.fail_stale_trials(study)
    trials = study.trials
    assert trials[dead.number].state == State.FAIL
    assert trials[alive.number].state == State.RUNNING
    (retry,) = [t for t in trials if t.state == State.WAITING]
    assert Retry.retried_trial_number(retry) == dead.number
    assert retry.params == trials[dead.number].params  # the same architecture runs again
    # Beats after the trial was failed elsewhere are dropped quietly (the worker was just slow).
    storage.record_heartbeat(dead._trial_id)


# ---------------------------------------------------------------------------------------------
# threads and GPUs


def test_threads_auto_divides_the_cpus_among_local_workers():
    assert resolve_threads("auto", workers=4, cpus=2, env={}) == 1
    assert resolve_threads("auto", workers=2, cpus=16, env={}) == 8
    assert resolve_threads("auto", workers=1, cpus=16, env={"OMP_NUM_THREADS": "4"}) == 4
    assert resolve_threads(3, workers=8, cpus=2, env={}) == 3
    with pytest.raises(ConfigError, match="threads=0"):
        resolve_threads(0, workers=1, cpus=2, env={})
    assert local_workers({"SLURM_JOB_ID": "7"}) == 1  # a SLURM job has its own CPUs


def test_each_local_worker_gets_its_own_gpu():
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert [assign_gpu(w, env) for w in range(4)] == ["0", "1", "2", "3"]
    with pytest.raises(ConfigError, match="worker=4: only 4 GPU"):
        assign_gpu(4, env)  # never a second trial on a busy device
    # The launcher already gave this worker one device (SLURM --gpus-per-task, Ray): keep it.
    assert assign_gpu(5, {"CUDA_VISIBLE_DEVICES": "GPU-6f3a"}) == "GPU-6f3a"
    # Several GPUs in one SLURM job with several tasks: the task's local id picks.
    assert assign_gpu(9, {"CUDA_VISIBLE_DEVICES": "4,5", "SLURM_LOCALID": "1"}) == "5"
    # Nothing set: nvidia-smi's list; no GPU at all: CPU.
    assert assign_gpu(1, {}, gpus=lambda: ["0", "1"]) == "1"
    assert assign_gpu(0, {}, gpus=lambda: []) is None
    assert assign_gpu(0, {"CUDA_VISIBLE_DEVICES": ""}) is None


# ---------------------------------------------------------------------------------------------
# passwords


def test_urls_and_errors_never_show_the_password():
    assert mask_url("postgresql://bob:s3cr3t@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert mask_url("postgresql://bob:p@ss:w@db/x") == "postgresql://bob:***@db/x"
    assert mask_url("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"
    assert url_password("postgresql://bob:s3cr3t@db/x") == "s3cr3t"
    err = RuntimeError('(psycopg2.OperationalError) password "s3cr3t" rejected\n[SQL: ...]')
    line = masked_error("postgresql://bob:s3cr3t@db/x", err)
    assert "s3cr3t" not in line and "\n" not in line
    assert line == "storage.url='postgresql://bob:***@db/x': password \"***\" rejected"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (
            "postgresql://bob:s3cr3t@127.0.0.1:1/adaptnas",
            "storage.url='postgresql://bob:***@127.0.0.1:1/adaptnas': connection to server",
        ),
        ("postgresql://bob:s3cr3t@127.0.0.1:notaport/x", "postgresql://bob:***@127.0.0.1:notaport"),
        ("mysql://bob:s3cr3t@db/x", "'mysql://bob:***@db/x' is not a postgresql:// URL"),
        (None, "storage=postgres needs a database URL: set ADAPTNAS_STORAGE_URL"),
    ],
    ids=["unreachable", "bad-port", "bad-scheme", "missing"],
)
def test_bad_or_unreachable_database_is_one_line_with_the_password_masked(
    tiny_cfg, monkeypatch, url, needle
):
    if url is None:
        monkeypatch.delenv("ADAPTNAS_STORAGE_URL", raising=False)
    else:
        monkeypatch.setenv("ADAPTNAS_STORAGE_URL", url)
    with pytest.raises(ConfigError) as err:
        open_study(tiny_cfg(extra=["storage=postgres"]))
    message = str(err.value)
    assert needle in message and "s3cr3t" not in message and "\n" not in message


def test_wrong_password_on_the_real_server_is_masked(tiny_cfg, monkeypatch, postgres_url):
    monkeypatch.setenv("ADAPTNAS_STORAGE_URL", re.sub(r":[^:@/]+@", ":wr0ngpw@", postgres_url))
    with pytest.raises(ConfigError, match="password authentication failed") as err:
        open_study(tiny_cfg(extra=["storage=postgres"]))
    assert "wr0ngpw" not in str(err.value) and ":***@127.0.0.1" in str(err.value)


@pytest.mark.slow
def test_password_typed_on_the_command_line_is_masked_everywhere(tmp_path):
    url = "postgresql://bob:s3cr3t@127.0.0.1:1/adaptnas"
    proc = search("storage=postgres", f"storage.url={url}", *tiny(tmp_path, "db", 1), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "adaptnas: error: storage.url='postgresql://bob:***@127.0.0.1:1/adaptnas': "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )
    assert "s3cr3t" not in proc.stdout + proc.stderr
    # Hydra saved the command line before our code ran; the password is scrubbed from it.
    saved = [p for p in tmp_path.rglob("*.yaml")]
    assert saved and not [p for p in saved if "s3cr3t" in p.read_text()]


# ---------------------------------------------------------------------------------------------
# end to end: the commands users run


@pytest.mark.slow
def test_four_joblib_workers_share_a_journal_study(tmp_path):
    n = 6
    args = tiny(tmp_path, "jobs", n, "storage=journal")
    proc = search(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "worker=range(4)", *args,
        env={"CUDA_VISIBLE_DEVICES": "3,5,7,9"},  # as on a 4-GPU node (this CPU torch ignores it)
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = job_logs(tmp_path)
    study = optuna.load_study(
        study_name="jobs", storage=journal(tmp_path / "studies/jobs/journal.log")
    )
    assert_exact(study.trials, n, logs)
    # One GPU per worker, never shared; one torch thread each on this machine's few cores.
    devices = {t.user_attrs["worker"]: t.user_attrs["device"] for t in study.trials}
    assert all(devices[w] == "3,5,7,9".split(",")[w] for w in devices), devices
    threads = {int(x) for x in re.findall(r"worker \d \(pid \d+ on \S+\): (\d+) thread", logs)}
    assert threads == {max(1, len(os.sched_getaffinity(0)) // 4)}

    # A worker that starts after the study is complete says so and leaves cleanly.
    late = search(*args, "worker=4", timeout=300)
    assert late.returncode == 0, late.stderr[-2000:]
    assert "is complete (6 finished trials): nothing to run" in late.stdout + late.stderr
    assert len(optuna.load_study(study_name="jobs", storage=study._storage).trials) == len(
        study.trials
    )


@pytest.mark.slow
def test_four_joblib_workers_share_a_postgres_study(tmp_path, postgres_url):
    n = 6
    name = f"pg-{os.getpid()}-{time.time_ns()}"
    proc = search(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "worker=range(4)",
        "storage=postgres", *tiny(tmp_path, name, n),
        env={"ADAPTNAS_STORAGE_URL": postgres_url},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    password = url_password(postgres_url)
    assert password and password not in proc.stdout + proc.stderr
    study = optuna.load_study(study_name=name, storage=postgres_url)
    assert_exact(study.trials, n, job_logs(tmp_path))
    assert len({t.user_attrs["worker"] for t in study.trials if t.state in FINISHED}) > 1


@pytest.mark.slow
def test_sigkilled_worker_keeps_completed_trials_and_its_trial_is_retried(tmp_path):
    n = 4  # the victim completes one, is killed during another
    args = tiny(
        tmp_path, "kill", n, "storage=journal", "storage.heartbeat_interval=1",
        "storage.grace_period=2",
    )  # fmt: skip
    path = tmp_path / "studies" / "kill" / "journal.log"
    victim = subprocess.Popen(
        [sys.executable, str(REPO / "nas" / "search.py"), *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        killed, kept = None, []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.05)
            trials = _trials(path)
            done = [t for t in trials if t.state == State.COMPLETE]
            # Mid-training (the architecture is sampled and recorded), after one trial completed.
            running = [
                t for t in trials if t.state == State.RUNNING and "architecture" in t.user_attrs
            ]
            if done and running:
                os.kill(victim.pid, signal.SIGKILL)
                killed, kept = running[0].number, [(t.number, t.values) for t in done]
                break
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert killed is not None, "the worker finished before a trial could be caught running"
    study = optuna.load_study(study_name="kill", storage=journal(path))
    assert study.trials[killed].state == State.RUNNING  # nobody has noticed yet

    survivor = search(*args, "worker=1")
    assert survivor.returncode == 0, survivor.stderr[-3000:]
    trials = optuna.load_study(study_name="kill", storage=journal(path)).trials
    assert trials[killed].state == State.FAIL
    retries = [t for t in trials if Retry.retried_trial_number(t) == killed]
    assert [t.state for t in retries] == [State.COMPLETE]
    assert retries[0].params == trials[killed].params  # the same architecture, run again
    assert all(trials[number].values == values for number, values in kept)  # kept as they were
    assert len([t for t in trials if t.state in FINISHED]) == n


def _trials(path: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials in a journal file that a worker may still be creating."""
    if not path.exists():
        return []
    storage = journal(path)
    studies = storage.get_all_studies()
    return storage.get_all_trials(studies[0]._study_id, deepcopy=False) if studies else []


@pytest.mark.slow
def test_two_workers_through_slurm_finish_a_shared_study(tmp_path, slurm_cluster):
    n = 3
    proc = search(
        "-m", "hydra/launcher=slurm", f"hydra.launcher.partition={slurm_cluster}",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=15", "worker=range(2)",
        *tiny(tmp_path, "slurm", n, "storage=journal"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(
        study_name="slurm", storage=journal(tmp_path / "studies" / "slurm" / "journal.log")
    )
    logs = job_logs(tmp_path)
    assert_exact(study.trials, n, logs)
    assert len(list(tmp_path.glob("hydra/multirun/*/*/.submitit/*_*/*_result.pkl"))) == 2
    # Each job either worked (its worker line shows --cpus-per-task's one thread) or started
    # after the other had finished the study and said so before setting up a worker: SLURM
    # may run the two jobs one after the other on a busy node.
    per_job = [p.read_text() for p in sorted(tmp_path.glob("hydra/multirun/*/*/*/*.log"))]
    assert len(per_job) == 2, per_job
    worked = [log for log in per_job if re.search(r"worker \d \(pid \d+ on \S+\): 1 thread", log)]
    idle = [log for log in per_job if "is complete (3 finished trials): nothing to run" in log]
    assert worked and len(worked) + len(idle) == 2, per_job


def test_a_resumed_study_samples_new_candidates_not_the_first_runs_again(tiny_cfg):
    cfg = tiny_cfg(extra=["sampler=random", "study_name=resumed"])

    def draw(study: optuna.Study, n: int) -> list[int]:
        values = []
        for _ in range(n):
            trial = study.ask()
            values.append(trial.suggest_int("x", 0, 10**9))
            study.tell(trial, 0.0)
        return values

    first = draw(open_study(cfg), 3)
    again = draw(open_study(cfg), 3)  # a resume of the same study, same seed
    assert not set(first) & set(again)
    # A fresh study with that seed draws the first run's values: the seed alone decides them.
    fresh = tiny_cfg(extra=["sampler=random", "study_name=fresh"])
    assert draw(open_study(fresh), 3) == first


def test_a_search_without_n_trials_stops_after_five_failures_in_a_row():
    outcomes = iter([False, False, True, *[False] * 10])

    def objective(trial: optuna.Trial) -> float:
        if not next(outcomes):
            raise ValueError("broken task")
        return 1.0

    study = optuna.create_study()
    study.optimize(
        objective,
        n_trials=50,
        catch=(ValueError,),
        callbacks=[StopAfterFailures(MAX_CONSECUTIVE_FAILURES)],
    )
    # Two failures, a success that resets the count, then five failures.
    assert MAX_CONSECUTIVE_FAILURES == 5 and len(study.trials) == 3 + 5


@pytest.mark.parametrize("storage", ["memory", "journal"])
def test_run_trials_stops_after_five_failures_in_a_row(tmp_path, storage):
    """The count inside run_trials itself (a search with n_trials), not the optimize callback."""
    outcomes = iter([False, False, True, *[False] * 10])
    calls = []

    def objective(trial: optuna.Trial) -> float:
        calls.append(trial.number)
        if not next(outcomes):
            raise ValueError("broken task")
        return 1.0

    where = None if storage == "memory" else journal(tmp_path / "j.log")
    study = optuna.create_study(storage=where)
    ran = run_trials(study, objective, 50, catch=(ValueError,), poll=0.1, gc_after_trial=False)
    # Two failures, a success that resets the count, then five failures: the worker stops with
    # 49 slots of its budget left rather than failing trial after trial.
    states = [t.state for t in study.trials]
    assert ran == len(calls) == 3 + MAX_CONSECUTIVE_FAILURES == 8
    assert states == [State.FAIL, State.FAIL, State.COMPLETE, *[State.FAIL] * 5]
