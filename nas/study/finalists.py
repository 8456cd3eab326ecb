"""Finalists re-evaluated: the top trials of a search run again with other seeds.

One seed's adaptability moves by about 0.01 between seeds while the top candidates of a search
lie 0.01-0.04 apart, so a winner named from one seed is partly luck. Before a search names its
winner, its top ``finalists.top_k`` trials (multi-objective: the most adaptable members of the
Pareto front) are re-run ``finalists.seeds`` more times, each with another seed; the winner is
the best **mean** over its seeds, and the leaderboard and ``best_architecture.yaml`` show mean,
standard deviation and the number of seeds.

**Shared through the storage, like trials.** A repeat is an ordinary trial of the study,
enqueued with the finalist's parameters and ``user_attrs={"finalist_of": <number>, "repeat":
<r>}`` once the study has its ``n_trials`` finished search trials. Any worker may enqueue and
any worker may run it; nothing coordinates them but two deterministic rules:

1. :func:`enqueue_missing` enqueues the repeats ``(finalist, r)`` that have no live attempt
   (complete, pruned, running or waiting) in the storage. Two workers doing this at the same
   moment may both enqueue the same repeat.
2. When a worker starts a repeat (``nas.engine.workers.BudgetedObjective``), :func:`duplicate_of`
   looks for a live attempt of the same ``(finalist, r)`` with a smaller number; if there is one,
   this trial is surplus: failed at once, before training, and never counted. Numbers grow with
   creation order and a live attempt only leaves the live set by failing, so exactly one attempt
   of each repeat runs to the end.

A repeat killed with its worker is failed (heartbeat or ``fail_orphans``) and queued again,
either by the retry callback (the copy keeps the user attributes, hence the key) or by the next
:func:`enqueue_missing`; a repeat that failed :data:`MAX_FAILURES` times is given up.

**What the sampler sees.** A repeat completes with *its own seed's* adaptability, the same
quantity as any trial: no mean, no special value. TPE (and any sampler) therefore sees honest
extra observations of the finalists' parameters. That only matters when the study is resumed
with a larger ``n_trials`` (repeats start after the search trials), and then it is what a
sampler of a noisy objective should see: up to ``top_k * seeds`` more points in the best region,
each a real measurement, rather than a duplicate of the first seed or a mean whose variance
differs from every other point. What must not see them does not: repeats never count towards
``n_trials`` (:func:`search_trials`), never report intermediate values (so pruners never compare
against them), are never pruned, and neither the finalists nor the leaderboard's ranks take a
repeat for a trial of its own; a lucky repeat cannot become ``study.best_trial``'s winner
because the winner is :func:`ranked`'s first, not Optuna's best trial.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from nas.config.schema import FinalistsConfig
from nas.trial.record import (  # REPEAT, REPEAT_OF: a repeat's user attributes, for readers
    LIVE,
    REFERENCE,
    REPEAT,  # noqa: F401
    REPEAT_OF,  # noqa: F401
    State,
    TrialRecord,
    is_repeat_attrs,
    is_surplus,
    repeat_attrs,
    repeat_identity,
)

log = logging.getLogger("adaptnas")

FrozenTrial = optuna.trial.FrozenTrial

STUDY_ATTR = "adaptnas:finalists"  # study user attr: the settings of the last search
MAX_FAILURES = 3  # failed attempts after which a repeat is given up
# Repeat r of trial n trains with seed ``seed + n + REPEAT_SEED_STRIDE * r``: never a search trial's
# seed (``seed + number``), whatever the numbers the repeats get in the storage.
REPEAT_SEED_STRIDE = 100_003


@dataclass(frozen=True)
class FinalistSettings:
    """``finalists.top_k`` trials re-run ``finalists.seeds`` more times (0: off)."""

    top_k: int
    seeds: int

    @property
    def enabled(self) -> bool:
        """Whether any repeat is run."""
        return self.seeds > 0 and self.top_k > 0

    @classmethod
    def from_config(cls, finalists: FinalistsConfig | None) -> FinalistSettings:
        """The settings of a checked ``finalists`` section (its rules: ``FinalistsConfig``).

        A config without the block (``nas/train.py``'s: one architecture) has no finalists.
        """
        if finalists is None:
            return cls(top_k=1, seeds=0)
        return cls(top_k=finalists.top_k, seeds=finalists.seeds)

    @classmethod
    def of_study(cls, study: optuna.Study) -> FinalistSettings:
        """The settings the study's last search recorded (none: the best single trial wins)."""
        return cls.of_attrs(study.user_attrs)

    @classmethod
    def of_attrs(cls, attrs: Mapping[str, Any]) -> FinalistSettings:
        """The settings recorded in a study's user attributes ``attrs``."""
        saved = attrs.get(STUDY_ATTR) or {}
        return cls(int(saved.get("top_k", 1)), int(saved.get("seeds", 0)))

    def record(self, study: optuna.Study) -> None:
        """Keep the settings in the study, for reports rebuilt later (``nas/report.py``)."""
        doc = {"top_k": self.top_k, "seeds": self.seeds}
        if study.user_attrs.get(STUDY_ATTR) != doc:
            study.set_user_attr(STUDY_ATTR, doc)


def is_repeat(t: FrozenTrial) -> bool:
    """Whether ``t`` re-runs a finalist."""
    return is_repeat_attrs(t.user_attrs)


def repeat_key(t: FrozenTrial) -> tuple[int, int]:
    """``(finalist number, r)`` of a repeat."""
    key = repeat_identity(t.user_attrs)
    assert key is not None, f"trial {t.number} is no finalist repeat"
    return key


def search_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of the search itself: not repeats, not surplus."""
    return [t for t in trials if not is_repeat(t) and not is_surplus(t)]


def _valid(t: FrozenTrial) -> bool:
    return t.state == State.COMPLETE and bool(t.values) and not math.isnan(t.values[0])


def pareto_front(
    trials: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> list[FrozenTrial]:
    """The non-dominated trials of ``trials`` (complete ones), in number order."""
    signs = [1 if d == optuna.study.StudyDirection.MAXIMIZE else -1 for d in directions]
    points = [(t, [s * v for s, v in zip(signs, t.values, strict=True)]) for t in trials]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    return [t for t, p in points if not any(dominates(q, p) for _, q in points)]


def pick_finalists(
    trials: Sequence[FrozenTrial],
    top_k: int,
    directions: Sequence[optuna.study.StudyDirection] | None = None,
) -> list[FrozenTrial]:
    """The top ``top_k`` complete search trials by their (first-seed) adaptability.

    Multi-objective (``len(directions) > 1``): the ``top_k`` most adaptable members of the
    Pareto front of the search trials. Equal scores: the earlier trial first. Reference designs
    (``nas.study.references``) take no place among the ``top_k``: the best of them (first seed) is a
    finalist as well, after them.
    """
    done = [t for t in search_trials(trials) if _valid(t)]
    refs = sorted((t for t in done if REFERENCE in t.user_attrs), key=_first_seed)
    done = [t for t in done if REFERENCE not in t.user_attrs]
    if directions is not None and len(directions) > 1:
        done = pareto_front(done, directions)
    # The verdict needs the best reference re-run with the same seeds as the top searched trials.
    return sorted(done, key=_first_seed)[:top_k] + refs[:1]


def _first_seed(t: FrozenTrial) -> tuple[float, int]:
    return (-t.values[0], t.number)


def repeats_by_key(trials: Iterable[FrozenTrial]) -> dict[tuple[int, int], list[FrozenTrial]]:
    """Every attempt of every repeat, by ``(finalist, r)``, in number order (surplus left out)."""
    out: dict[tuple[int, int], list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if is_repeat(t) and not is_surplus(t):
            out.setdefault(repeat_key(t), []).append(t)
    return out


@dataclass
class Work:
    """What the finalist phase still has to do, at one moment."""

    missing: list[tuple[FrozenTrial, int]]  # repeats with no live attempt (to enqueue)
    waiting: int  # repeat trials queued (a duplicate too: whoever takes it fails it as surplus)
    running: int  # repeat trials running
    given_up: list[tuple[int, int]]  # repeats that failed MAX_FAILURES times

    @property
    def done(self) -> bool:
        """Nothing missing, queued or running."""
        return not self.missing and not self.waiting and not self.running


def work(study: optuna.Study, settings: FinalistSettings) -> Work:
    """Read the storage once: which repeats are missing, queued, running."""
    trials = study.get_trials(deepcopy=False)
    out = Work([], 0, 0, [])
    if not settings.enabled:
        return out
    attempts = repeats_by_key(trials)
    for tries in attempts.values():
        out.waiting += sum(t.state == State.WAITING for t in tries)
        out.running += sum(t.state == State.RUNNING for t in tries)
    for final in pick_finalists(trials, settings.top_k, study.directions):
        for r in range(1, settings.seeds + 1):
            tries = attempts.get((final.number, r), [])
            if any(t.state in LIVE for t in tries):
                continue
            if sum(t.state == State.FAIL for t in tries) >= MAX_FAILURES:
                out.given_up.append((final.number, r))
            else:
                out.missing.append((final, r))
    return out


def enqueue_missing(study: optuna.Study, settings: FinalistSettings) -> Work:
    """Enqueue the repeats that have no live attempt; returns the work after doing so."""
    todo = work(study, settings)
    for final, r in todo.missing:
        study.enqueue_trial(final.params, user_attrs=repeat_attrs(final.number, r))
        log.info(
            "finalist trial %d (adaptability %.4f): seed %d/%d queued",
            final.number,
            final.values[0],
            r + 1,
            settings.seeds + 1,
        )
    if todo.missing:
        todo.waiting += len(todo.missing)
        todo.missing = []
    return todo


def duplicate_of(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of a live attempt of the same repeat created before ``trial``, if any."""
    key = repeat_identity(trial.user_attrs)
    for t in study.get_trials(deepcopy=False, states=LIVE):
        if t.number < trial.number and is_repeat(t) and repeat_key(t) == key:
            if not is_surplus(t):
                return t.number
    return None


@dataclass
class SeedScores:
    """One architecture's scores over its seeds (the search trial's first)."""

    trial: FrozenTrial  # the search trial
    runs: list[FrozenTrial]  # the search trial, then its complete repeats

    @property
    def values(self) -> list[float]:
        """Adaptability of each seed."""
        return [t.values[0] for t in self.runs]

    @property
    def n(self) -> int:
        """Number of seeds."""
        return len(self.runs)

    @property
    def mean(self) -> float:
        """Mean adaptability over the seeds."""
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        """Sample standard deviation over the seeds (``None`` with one seed)."""
        return statistics.stdev(self.values) if self.n > 1 else None

    def task_means(self, test: bool = False) -> dict[str, float]:
        """Per-task mean over the seeds that have it (validation scores, or ``test`` scores)."""
        sums: dict[str, list[float]] = {}
        for t in self.runs:
            record = TrialRecord.from_trial(t)
            for name, v in (record.test_scores if test else record.task_scores).items():
                sums.setdefault(name, []).append(v)
        return {name: statistics.fmean(vs) for name, vs in sums.items()}


def seed_scores(trials: Sequence[FrozenTrial]) -> dict[int, SeedScores]:
    """Every complete search trial with its complete repeats, by number."""
    repeats: dict[int, list[FrozenTrial]] = {}
    for (number, _), tries in sorted(repeats_by_key(trials).items()):
        repeats.setdefault(number, []).extend(t for t in tries if _valid(t))
    return {
        t.number: SeedScores(t, [t, *repeats.get(t.number, [])])
        for t in search_trials(trials)
        if _valid(t)
    }


def ranked(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> list[SeedScores]:
    """The candidates for the winner, best mean first (``ranked_among`` the study's trials).

    ``trials``: the study's trials when already read (``None``: read them).
    """
    trials = list(study.get_trials(deepcopy=False)) if trials is None else list(trials)
    return ranked_among(trials, FinalistSettings.of_study(study), study.directions)


def ranked_among(
    trials: Sequence[FrozenTrial],
    settings: FinalistSettings,
    directions: Sequence[optuna.study.StudyDirection],
) -> list[SeedScores]:
    """The candidates for the winner among a study's ``trials``, best mean first.

    The candidates are the finalists (top ``top_k`` by first-seed adaptability, as recorded by
    the study's last search; multi-objective: of the Pareto front) and any trial re-evaluated
    earlier (a resumed study whose top changed). Equal means: the earlier trial first. Without
    recorded settings (a study of an older version) the best single trial is the only one.
    """
    scores = seed_scores(trials)
    chosen = {t.number for t in pick_finalists(trials, settings.top_k, directions)}
    chosen |= {n for n, s in scores.items() if s.n > 1}
    if len(directions) > 1:  # the winner stays on the front of the search trials
        front = {t.number for t in pareto_front([s.trial for s in scores.values()], directions)}
        chosen &= front
    return sorted((scores[n] for n in chosen), key=lambda s: (-s.mean, s.trial.number))
