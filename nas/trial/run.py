"""The unit of work of a search: one trial of one architecture, end to end.

``run_trial`` pretrains the architecture briefly, adapts a copy to every task of the suite,
combines the scores into its adaptability and, when a hook asks, scores the adapted models on the
test splits; it returns the ``TrialRecord``. The Lightning stages themselves live in
``nas.trial.stages``; this module strings them together, tells the hooks
(``nas.trial.hooks.TrialHook``) what happened after each stage and each task (where the
objective's hook reports to the pruner and may raise ``optuna.TrialPruned``), and turns faults
into distinct exceptions. The same code serves a search (``nas/engine/optuna_objective.py``) and a
single run (``nas/train.py``, with ``trial=None``).

Faults come out as distinct exceptions, so the objective can end the trial with a reason and let
the search go on: ``DivergedError`` (NaN or exploding loss), ``TrialTimeout`` (past the per-trial
time limit), ``TaskError`` (an ordinary exception raised while a task fine-tunes or scores) and
``torch.cuda.OutOfMemoryError``. Anything else raised here is a bug and propagates as it is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from optuna.exceptions import TrialPruned

from lightning_modules.config import TransformerConfig
from lightning_modules.optim import DivergedError
from lightning_modules.suite import Suite
from nas.config.errors import describe
from nas.config.schema import ADAPTABILITY_CHOICES
from nas.trial import stages
from nas.trial.hooks import TrialHook
from nas.trial.record import TrialRecord
from nas.trial.stages import Deadline, TrialTimeout

# ---------------------------------------------------------------------------------------------
# Faults of one trial


class TaskError(Exception):
    """An ordinary exception raised while one task fine-tuned or scored an architecture.

    The original is kept as ``error`` and as ``__cause__`` (the traceback shows both).

    Attributes:
        task: The task's name.
        error: What it raised.
    """

    def __init__(self, task: str, error: BaseException):
        self.task, self.error = task, error
        super().__init__(f"task {task}: {describe(error)}")

    def __reduce__(self):
        return type(self), (self.task, self.error)


# Faults that already say what happened, or that are no task's doing: never wrapped in TaskError.
PASS_THROUGH: tuple[type[BaseException], ...] = (
    DivergedError,
    TrialTimeout,
    TrialPruned,  # a pruning callback inside a stage
    torch.cuda.OutOfMemoryError,  # the model's size, not the task: the objective frees memory
)


@contextlib.contextmanager
def task_stage(task: str):
    """Within the block, an ordinary exception becomes ``TaskError(task, exc)``.

    Wraps a task's fine-tuning and scoring only: one task's broken data, head or metric fails
    the trial, not the search. ``KeyboardInterrupt`` is no ``Exception`` and passes as it is.
    """
    try:
        yield
    except PASS_THROUGH:
        raise
    except Exception as err:
        raise TaskError(task, err) from err


class _Interrupt(BaseException):
    """Ctrl-C during a stage, in a form that Lightning passes on.

    Lightning's ``Trainer.fit`` turns a ``KeyboardInterrupt`` into ``sys.exit(1)`` (after ignoring
    SIGINT for the rest of the process), which would skip marking the trial failed and resuming
    cleanly. Any other ``BaseException`` it re-raises after its own teardown; ``interruptible``
    turns this one back into ``KeyboardInterrupt`` once it is out of Lightning.
    """


def _raise_interrupt(signum, frame) -> None:
    # A second Ctrl-C during Lightning's teardown is a plain KeyboardInterrupt again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise _Interrupt()


@contextlib.contextmanager
def interruptible():
    """Within the block, Ctrl-C raises ``KeyboardInterrupt`` through Lightning (not exit(1)).

    Only the main thread can handle signals, and a handler someone else installed (or SIGINT
    ignored, as in some launchers' workers) is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield
    except _Interrupt:
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def adaptability(
    scores: Mapping[str, float],
    curves: Mapping[str, list[float]],
    method: str,
    floors: Mapping[str, float] | None = None,
) -> float:
    """Combine per-task scores in [0, 1] into one adaptability score.

    Args:
        scores: Final validation score per task.
        curves: Validation scores along each task's fine-tuning (for ``auc``).
        method: ``mean`` of the scores, ``worst`` task, ``auc``: the mean over tasks of the
            area under the fine-tuning curve (rewards adapting fast, not only well), or
            ``curve``: the mean of scores that are each already a mean over example budgets
            (``finetune.curve``; rewards adapting from few examples, not only from many), or
            ``skill``: the mean over tasks of the score above the task's floor,
            ``(score - floor) / (1 - floor)`` (0 at the floor, 1 at a perfect score; below the
            floor it is negative), so that a task no candidate lifts off its floor moves
            every candidate alike.
        floors: Per task, the score of its trivial baseline (``Task.floor``; ``skill`` only).
    """
    if not scores:
        raise ValueError("no task scores to combine")
    if method in ("mean", "curve"):
        return sum(scores.values()) / len(scores)
    if method == "skill":
        if floors is None or set(scores) - set(floors):
            raise ValueError("adaptability 'skill' needs the floor of every task")
        return sum((s - floors[t]) / (1.0 - floors[t]) for t, s in scores.items()) / len(scores)
    if method == "worst":
        return min(scores.values())
    if method == "auc":
        return sum(sum(c) / len(c) for c in curves.values()) / len(curves)
    raise ValueError(f"adaptability '{method}' is not one of {', '.join(ADAPTABILITY_CHOICES)}")


def data_fields(suite: Suite) -> dict[str, int]:
    """Architecture fields the data decides: the vocabulary and the longest input."""
    longest = max([suite.seq_len, *(t.max_len for t in suite.tasks.values())])
    return {"vocab_size": suite.vocab_size, "max_seq_len": longest}


def run_trial(
    arch: TransformerConfig,
    suite: Suite,
    cfg: Mapping[str, Any],
    hooks: Sequence[TrialHook] = (),
    *,
    trial: Any = None,
    seed: int = 0,
    init_model: Callable[[Any], None] | None = None,
    deadline: Deadline | None = None,
) -> TrialRecord:
    """Run the trial of one architecture: pretrain, adapt to every task, score.

    Args:
        arch: The architecture.
        suite: Shared data (corpus blocks, tokenizer, tasks in run order).
        cfg: The run config, which sets every budget (``pretrain``, ``finetune``, ``trainer``,
            ``objective``, ``tasks``).
        hooks: Told of each stage (``on_stage``), asked for its Lightning loggers
            (``logger_for``), told the held-out loss at the pretraining fractions they ask for
            (``pretrain_rungs`` -> ``on_pretrain_rung``, which may raise ``optuna.TrialPruned``
            and so spare the rest of pretraining), told the running adaptability after each
            task (``on_report``, which may raise ``optuna.TrialPruned``) and asked whether the
            adapted models are scored on test (``wants_test``: any hook saying yes is enough),
            in list order.
        trial: What the hooks are called with (the Optuna trial of a search; ``None`` for a
            single run). This module never looks into it.
        seed: Seeds model initialisation and data order (same seed, same result on a CPU).
        init_model: Loads weights into the freshly built model before pretraining (resume).
        deadline: The trial's time limit, checked between stages and after every batch (a
            search's ``trial_timeout``; ``None``: no limit, as in ``nas/train.py``).

    Returns:
        The record, its models still in memory.

    Raises:
        DivergedError: A loss became NaN or exploded.
        TrialTimeout: The trial ran past ``deadline``.
        TaskError: A task's fine-tuning or scoring raised an ordinary exception.
        KeyboardInterrupt: Ctrl-C, also from inside a Lightning stage.
    """
    with interruptible():
        return _run(arch, suite, cfg, list(hooks), trial, seed, init_model, deadline)


def _run(
    arch: TransformerConfig,
    suite: Suite,
    cfg: Mapping[str, Any],
    hooks: list[TrialHook],
    trial: Any,
    seed: int,
    init_model: Callable[[Any], None] | None,
    deadline: Deadline | None,
) -> TrialRecord:
    method = cfg["objective"]["adaptability"]
    floors = suite.floors() if method == "skill" else None
    record = TrialRecord(
        arch=arch,
        n_params=arch.num_params(),
        flops_per_token=arch.flops_per_sequence(suite.seq_len) / suite.seq_len,
        seed=seed,
    )

    def check(stage: str) -> None:
        if deadline is not None:
            deadline.check(stage)

    def logger_for(stage: str):
        loggers = [lg for h in hooks if (lg := h.logger_for(trial, stage)) is not None]
        return loggers or False

    def stage_done(stage: str, info: dict) -> None:
        for hook in hooks:
            hook.on_stage(trial, stage, record.timings[stage], info)

    def on_rung(fraction: float, val_loss: float) -> None:
        record.pretrain_rungs[fraction] = val_loss
        for hook in hooks:
            hook.on_pretrain_rung(trial, fraction, val_loss)

    start = time.perf_counter()
    check("pretrain")
    model, record.pretrain_val_loss, record.steps["pretrain"] = stages.pretrain(
        arch,
        suite,
        cfg,
        seed,
        logger=logger_for("pretrain"),
        init_model=init_model,
        deadline=deadline,
        rungs=sorted({f for h in hooks for f in h.pretrain_rungs(trial)}),
        on_rung=on_rung,
    )
    record.pretrained = model
    record.timings["pretrain"] = time.perf_counter() - start
    stage_done("pretrain", {"val_loss": record.pretrain_val_loss})
    for i, (name, task) in enumerate(suite.tasks.items(), start=1):
        check(name)
        t0 = time.perf_counter()
        with task_stage(name):  # reading the metrics too: a task whose score lacks "score"
            done = stages.adapt(model, task, cfg, seed + i, logger_for(name), deadline)
            record.curves[name] = done.curve
            if done.data_curve:
                record.data_curves[name] = done.data_curve
            record.task_metrics[name] = done.metrics
            record.task_scores[name] = done.metrics["score"]
            record.steps[name] = done.steps
            record.trainable_params[name] = done.module.trainable_params
        record.finetuned[name] = done.module
        record.timings[name] = time.perf_counter() - t0
        stage_done(name, record.task_metrics[name])
        running = adaptability(record.task_scores, record.curves, method, floors)
        for hook in hooks:
            hook.on_report(trial, i, running, dict(record.task_scores))
    record.adaptability = adaptability(record.task_scores, record.curves, method, floors)
    if any(hook.wants_test(trial, record.adaptability) for hook in hooks):
        for name, module in record.finetuned.items():
            check(f"test {name}")
            with task_stage(name):
                record.test_metrics[name] = stages.score_test(module, cfg, deadline=deadline)
    record.timings["total"] = time.perf_counter() - start
    return record
