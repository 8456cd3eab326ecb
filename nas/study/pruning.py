"""Successive halving over the tasks of the suite: every rung prunes.

A trial reports its running adaptability after each task (step ``i`` = ``i`` tasks done). Optuna's
``HyperbandPruner`` over these five steps with ``min_resource: 2`` forms two brackets, one of
which never prunes (its first rung lies past the last task): 1 of 12 trials was pruned in the
timed default search. :class:`TaskHalvingPruner` is one asynchronous successive-halving bracket
(ASHA) with explicit rungs:

* at each rung step (default: after tasks 2 and 4), the trial's value is compared with the
  values that every trial of the study reported at that step (complete, pruned or still
  running, this one included);
* it goes on only when it is among the best ``ceil(n / reduction_factor)`` of those ``n``
  values (ties go on), so every rung keeps about a third and stops the rest;
* a rung prunes nothing until ``min_trials`` trials have reached it, so the first trials of a
  search are not stopped by comparison with one or two others.

Why task steps and not a training budget: a task's score is the measurement the search ranks
by, and a step of this resource is a whole task, so a pruned trial saves the remaining tasks
(the generation tasks, slowest, come last) without a second, cheaper proxy of the score;
``pretrain_at`` adds one such proxy, below, where pretraining dominates a trial's cost.
Why no pruning after the first task: one task says little about the mean over all of them (a
short sentiment run sits near chance for most candidates; see ``docs/benchmarks.md`` section 3).

**The pretraining rung** (``pretrain_at``, rung ``0``). Pretraining is most of a trial's cost
(``docs/validity.md``), so a trial pruned after its second task has already spent most of it.
With ``pretrain_at=f`` a trial reports, when the fraction ``f`` of its pretraining steps is done,
``exp(-held-out loss)`` at step ``0`` (no task done yet; ``rung_value``); at rung ``0`` it goes
on only among the best ``ceil(n / reduction_factor)`` of the trials of its own family
(``pretrain_group``: pretraining objectives differ by family, so their losses are not
comparable). A promoted trial does not start over: it goes on pretraining the same in-memory
model from the step where it was measured (``nas.trial.stages.PretrainRungs``), and ends exactly as
it would have without the rung.

Finalist repeats (``nas.study.finalists``) report nothing, so they never enter a rung's comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection

from nas.trial.record import State

_COMPETING = (State.COMPLETE, State.PRUNED, State.RUNNING)
# The intermediate step of the pretraining rung: no task done yet.
PRETRAIN_STEP = 0


def rung_value(val_loss: float) -> float:
    """The value a trial reports at the pretraining rung: ``exp(-val_loss)``, higher is better.

    The held-out per-token likelihood (1 / perplexity): ordered as the loss, in [0, 1] like an
    adaptability, so the study's direction (maximize) and its plots hold at every step.
    """
    return math.exp(-val_loss) if math.isfinite(val_loss) else math.nan


class TaskHalvingPruner(BasePruner):
    """Asynchronous successive halving with explicit rungs over a trial's steps.

    Args:
        rungs: The steps at which a trial is compared (tasks done), e.g. ``[2, 4]``. A step not
            in the list never prunes; rungs at or past the last task never act (the objective
            does not ask the pruner after the last task).
        reduction_factor: ``3`` keeps the best third at each rung (``ceil(n / 3)`` of ``n``).
        min_trials: A rung prunes only once this many trials (this one included) have a value
            at its step (at rung ``0``: this many of its family).
        pretrain_at: The fraction of pretraining at which rung ``0`` compares trials (``None``:
            no pretraining rung; ``0`` in ``rungs`` exactly when set). The objective reads it to
            ask the trial for the report.
        pretrain_group: The parameter whose value groups trials at rung ``0`` (``None``: all
            trials compete; a space that does not sample it puts every trial in one group).
    """

    def __init__(
        self,
        rungs: Sequence[int] = (2, 4),
        reduction_factor: int = 3,
        min_trials: int = 4,
        pretrain_at: float | None = None,
        pretrain_group: str | None = "family",
    ):
        rungs = list(rungs)
        if not rungs or any(isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in rungs):
            raise ValueError(f"rungs={rungs!r} must be a non-empty list of steps >= 0")
        if sorted(set(rungs)) != rungs:
            raise ValueError(f"rungs={rungs!r} must be increasing")
        if pretrain_at is not None:
            if isinstance(pretrain_at, bool) or not isinstance(pretrain_at, (int, float)):
                raise ValueError(f"pretrain_at={pretrain_at!r} must be a fraction in (0, 1)")
            if not 0.0 < float(pretrain_at) < 1.0:
                raise ValueError(f"pretrain_at={pretrain_at!r} must be a fraction in (0, 1)")
        if (0 in rungs) != (pretrain_at is not None):
            raise ValueError(
                f"rungs={rungs!r}, pretrain_at={pretrain_at!r}: rung 0 is the pretraining rung; "
                "list 0 in rungs exactly when pretrain_at is set"
            )
        self.pretrain_at = None if pretrain_at is None else float(pretrain_at)
        self.pretrain_group = pretrain_group
        if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int):
            raise ValueError(f"reduction_factor={reduction_factor!r} must be an integer >= 2")
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor={reduction_factor!r} must be an integer >= 2")
        if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 1:
            raise ValueError(f"min_trials={min_trials!r} must be a positive integer")
        self.rungs = rungs
        self.reduction_factor = reduction_factor
        self.min_trials = min_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether ``trial`` stops at its latest step (``False`` off the rungs)."""
        step = trial.last_step
        if step is None or step not in self.rungs:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        values = [value]
        # Pretraining losses of different objectives (causal, prefix, masked, denoising) are on
        # different scales: at step 0 a trial competes with trials of its own family only.
        key = self.pretrain_group if step == PRETRAIN_STEP else None
        group = trial.params.get(key) if key else None
        for other in study.get_trials(deepcopy=False, states=_COMPETING):
            if other.number == trial.number:
                continue
            if key and other.params.get(key) != group:
                continue
            v = other.intermediate_values.get(step)
            if v is not None and not math.isnan(v):
                values.append(v)
        if len(values) < self.min_trials:
            return False
        keep = math.ceil(len(values) / self.reduction_factor)
        maximize = study.direction == StudyDirection.MAXIMIZE
        threshold = sorted(values, reverse=maximize)[keep - 1]
        return value < threshold if maximize else value > threshold
