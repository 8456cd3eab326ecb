"""Many workers on one study: exact trial budget, waiting for others, CPU threads and GPUs.

Every worker runs the same command against the same storage (``storage=journal`` or
``storage=postgres``); nothing coordinates them but the storage itself. Three rules make
``n_trials`` exact for the whole study (see ``docs/scaling.md`` for the argument):

1. A worker asks for a new trial only while the *live* trials (complete, pruned, running,
   waiting) are fewer than ``n_trials``, or when a waiting trial (a retry) is queued.
2. Right after ``study.ask``, the trial checks its *rank*: how many live trials have a smaller
   number. Numbers grow with creation order, and a trial with a smaller number can only leave the
   live set (by failing), so a rank below ``n_trials`` stays below it. A trial whose rank is
   ``n_trials`` or more lost a race against another worker: it is failed at once, before sampling
   or training anything, and marked as surplus. It never counts.
3. A worker leaves only when ``n_trials`` trials are finished. While the last ones run elsewhere
   it waits and checks their heartbeats, so the trial of a worker that died is failed, queued
   again by the retry callback and run by a survivor.

A worker killed on this machine (SIGKILL, the OOM killer) needs no heartbeat: every trial records
the host and pid of its process, and a search that starts fails the running trials whose process
is gone at once (``nas.study.storage.fail_orphans``, as it opens the study), queuing them again
the same way.

Once ``n_trials`` search trials are finished, the workers re-run the finalists with more seeds
(``nas.study.finalists``): any worker enqueues the missing repeats, any worker runs them, a
duplicate enqueued by a racing worker is failed as surplus when it starts, and a worker leaves when
no repeat is missing, queued or running. Repeats never count towards ``n_trials``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from omegaconf import DictConfig

from nas.study import finalists as fin
from nas.study import references
from nas.study.finalists import FinalistSettings
from nas.study.storage import pid_namespace
from nas.trial import record as rec
from nas.trial.record import FINISHED, LIVE, State, is_surplus, write_attrs
from nas.trial.resources import assign_gpu, available_cpus, local_workers, resolve_threads

log = logging.getLogger("adaptnas")

# A worker whose trials keep failing (out of memory every time, say) stops instead of spinning.
MAX_CONSECUTIVE_FAILURES = 5


class StopAfterFailures:
    """Optuna callback: stop the study after ``limit`` failed trials in a row in this process.

    A fault that every candidate hits (a task whose data breaks its head, a GPU too small for
    any of them) would otherwise fail trial after trial until the timeout. ``run_trials`` keeps
    its own count; this serves ``study.optimize`` when ``n_trials`` is null.
    """

    def __init__(self, limit: int):
        self.limit, self.failures = limit, 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if is_surplus(trial):
            return  # surplus trials never ran anything
        self.failures = self.failures + 1 if trial.state == State.FAIL else 0
        if self.failures >= self.limit:
            log.error("%d trials in a row failed in this worker: it stops", self.failures)
            study.stop()


class SurplusTrial(Exception):
    """Raised inside a trial that another worker's trial made unnecessary (never counts)."""


# ---------------------------------------------------------------------------------------------
# The worker's place: index, threads, GPU


@dataclass
class WorkerInfo:
    """Who this worker is and what it may use."""

    index: int
    host: str
    pid: int
    threads: int
    device: str | None  # the CUDA_VISIBLE_DEVICES entry it was given; None on CPU

    def attrs(self) -> dict[str, Any]:
        """What each trial of this worker records about where it ran (and who runs it)."""
        return rec.worker_attrs(self.index, self.host, self.device, self.pid, pid_namespace())

    def describe(self) -> str:
        """``worker 1 (pid 123 on node7): 2 threads, GPU 1``."""
        gpu = f", GPU {self.device}" if self.device is not None else ""
        return (
            f"worker {self.index} (pid {self.pid} on {self.host}): "
            f"{self.threads} thread{'s' if self.threads > 1 else ''}{gpu}"
        )


def setup_worker(cfg: DictConfig) -> WorkerInfo:
    """Apply this worker's torch threads and GPU (before anything touches CUDA) and say so."""
    index = int(cfg.worker)
    threads = resolve_threads(cfg.threads, local_workers(), available_cpus())
    torch.set_num_threads(threads)
    device = None
    accelerator = str(cfg.trainer.accelerator).lower()
    if cfg.gpu_per_worker and accelerator in ("auto", "gpu", "cuda"):
        device = assign_gpu(index)
        if device is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = device
    info = WorkerInfo(index, socket.gethostname(), os.getpid(), threads, device)
    log.info("%s", info.describe())
    return info


# ---------------------------------------------------------------------------------------------
# The exact budget


@dataclass
class Census:
    """Counts of the study's search trials at one moment (finalist repeats apart)."""

    finished: int
    running: int
    waiting: int
    queued_repeats: int = 0  # finalist repeats waiting (a worker's next ask may take one)

    @property
    def live(self) -> int:
        """Trials that count or may still count towards ``n_trials``."""
        return self.finished + self.running + self.waiting


def census(study: optuna.Study) -> Census:
    """Count the study's finished, running and waiting trials (one read of the storage)."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in fin.search_trials(trials)]
    return Census(
        finished=sum(s in FINISHED for s in states),
        running=states.count(State.RUNNING),
        waiting=states.count(State.WAITING),
        queued_repeats=sum(fin.is_repeat(t) and t.state == State.WAITING for t in trials),
    )


def live_rank(study: optuna.Study, number: int) -> int:
    """How many live search trials have a smaller number than trial ``number``."""
    trials = fin.search_trials(study.get_trials(deepcopy=False, states=LIVE))
    return sum(t.number < number for t in trials)


class BudgetedObjective:
    """Wraps the objective: a trial past the budget is failed as surplus before it samples.

    A finalist repeat is not part of the budget; it is surplus when an earlier live attempt of
    the same repeat exists (two workers enqueued it at the same moment).
    """

    def __init__(
        self,
        objective: Callable[[optuna.Trial], Any],
        n_trials: int,
        attrs: dict[str, Any] | None = None,
    ):
        self.objective, self.n_trials = objective, n_trials
        self.attrs = dict(attrs or {})
        self.surplus = False
        self.trial_id = -1

    def __call__(self, trial: optuna.Trial) -> Any:
        self.surplus = False
        self.trial_id = trial._trial_id
        write_attrs(trial, self.attrs)  # which worker, host and GPU ran it
        reason = None
        if rec.is_repeat_attrs(trial.user_attrs):
            first = fin.duplicate_of(trial.study, trial)
            if first is not None:
                reason = f"surplus: trial {first} runs the same finalist repeat"
        else:
            if references.is_reference(trial):  # two workers queued the new study's references
                live = trial.study.get_trials(deepcopy=False, states=LIVE)
                first = references.duplicate_of(trial, live)
                if first is not None:
                    reason = f"surplus: trial {first} runs the same reference design"
            rank = live_rank(trial.study, trial.number)
            if reason is None and rank >= self.n_trials:
                reason = (
                    f"surplus: {rank} live trials came first and n_trials={self.n_trials} "
                    "(another worker took the last slot at the same moment)"
                )
        if reason is not None:
            self.surplus = True
            rec.write_fail_reason(trial, reason)
            trial.study._storage.set_trial_system_attr(trial._trial_id, rec.SURPLUS, True)
            raise SurplusTrial(reason)
        return self.objective(trial)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """The storage's heartbeat interval in seconds, or ``None`` when it has none."""
    # A journal file beats through nas.study.storage.JournalHeartbeatStorage until Optuna's own
    # JournalStorage does (https://github.com/optuna/optuna/issues/6615).
    storage = study._storage
    if optuna.storages._heartbeat.is_heartbeat_enabled(storage):
        return storage.get_heartbeat_interval()  # type: ignore[attr-defined]
    return None


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    n_trials: int,
    *,
    attrs: dict[str, Any] | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callable] = (),
    catch: tuple[type[Exception], ...] = (),
    poll: float | None = None,
    gc_after_trial: bool = True,
    finalists: FinalistSettings | None = None,
) -> int:
    """Run trials of ``study`` until it has ``n_trials`` finished ones, with any number of peers.

    Then, with ``finalists`` enabled, the finalist repeats (``nas.study.finalists``) until none is
    missing, queued or running.

    Args:
        study: The shared study.
        objective: The trial function.
        n_trials: Finished (complete + pruned) trials the whole study should have.
        attrs: User attributes recorded on every trial this worker runs (worker, host, GPU).
        timeout: Seconds after which this worker starts no new trial.
        callbacks: Optuna callbacks, called after each trial.
        catch: Exceptions that fail a trial without stopping the worker.
        poll: Seconds between checks while other workers run the last trials (default: the
            heartbeat interval, at most 2 s: a waiting worker leaves soon after the last trial).
        gc_after_trial: Collect garbage after each trial (Optuna's advice against memory growth;
            about 0.3 s with torch loaded, nothing next to a real trial).
        finalists: Re-run the top trials with more seeds once the search trials are done
            (``None`` or ``seeds=0``: not).

    Returns:
        How many trials this worker ran, repeats included (surplus ones not counted).
    """
    wrapped = BudgetedObjective(objective, n_trials, attrs)
    interval = heartbeat_interval(study)
    poll = poll if poll is not None else min(2.0, float(interval or 2))
    start = time.monotonic()
    ran = failures = 0
    waiting_since: float | None = None
    while True:
        if timeout is not None and time.monotonic() - start >= timeout:
            log.info("timeout (%ss) reached: this worker starts no new trial", timeout)
            break
        now = census(study)
        if now.finished >= n_trials:
            if finalists is None or not finalists.enabled:
                break
            todo = fin.enqueue_missing(study, finalists)
            if todo.done:
                if todo.given_up:
                    log.warning(
                        "finalist repeats given up after %d failures: %s",
                        fin.MAX_FAILURES,
                        ", ".join(f"trial {n} seed {r + 1}" for n, r in todo.given_up),
                    )
                break
            if todo.waiting == 0:  # the last repeats run in other workers
                if not _wait_for_others(study, interval, poll, todo.running):
                    break
                waiting_since = waiting_since or time.monotonic()
                continue
        elif now.waiting == 0 and now.queued_repeats == 0 and now.live >= n_trials:
            # Every remaining slot is taken by a running trial of another worker.
            if waiting_since is None and interval is not None:
                log.info(
                    "%d/%d finished, the other %d run in other workers: waiting, to re-run any "
                    "whose worker dies",
                    now.finished,
                    n_trials,
                    now.running,
                )
            if not _wait_for_others(study, interval, poll, now.running):
                break
            waiting_since = waiting_since or time.monotonic()
            continue
        waiting_since = None
        study.optimize(
            wrapped,
            n_trials=1,
            callbacks=list(callbacks),
            gc_after_trial=gc_after_trial,
            catch=(SurplusTrial, *catch),
        )
        if wrapped.surplus:
            continue
        ran += 1
        state = study._storage.get_trial(wrapped.trial_id).state
        failures = failures + 1 if state == State.FAIL else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            log.error("%d trials in a row failed in this worker: it stops", failures)
            break
        if study._stop_flag:  # a callback called study.stop()
            break
    return ran


def _wait_for_others(study: optuna.Study, interval: int | None, poll: float, running: int) -> bool:
    """Sleep ``poll`` seconds and fail stale trials; ``False`` when there is no heartbeat to watch.

    Without heartbeats a worker cannot tell a running trial of a dead worker from a live one, so
    it leaves rather than wait forever.
    """
    if interval is None:
        log.info(
            "%d trial(s) still run in other workers; without heartbeats this worker cannot "
            "watch them, so it stops",
            running,
        )
        return False
    time.sleep(poll)
    optuna.storages.fail_stale_trials(study)  # retried copies come back as WAITING
    return True
