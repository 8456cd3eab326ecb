"""The Optuna objective: sample an architecture, run the staged trial, record everything.

Faults of one trial end that trial with its reason (user attribute ``fail_reason``, shown in the
leaderboard) and the search goes on:

* an architecture the config rejects, a pruning decision, a diverging loss: pruned;
* out of memory, a task that raises, the per-trial time limit: failed, with the traceback in the
  trial's log file and one line on the terminal;
* Ctrl-C: failed as ``interrupted`` and the search stops (resumable).

Any other exception is a bug: the trial is failed and the error stops the search with its
traceback.

A finalist repeat (a trial enqueued with ``record.repeat_attrs``, see ``nas.study.finalists``)
runs its finalist's architecture with another seed, reports nothing to the pruner and is never
pruned by it; it is scored on the test splits when its finalist was.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import optuna
import torch

from lightning_modules.adaptation import AdaptationSpec, per_million, task_trainable
from lightning_modules.config import ArchitectureError, TransformerConfig, params_human
from lightning_modules.optim import DivergedError
from lightning_modules.suite import Suite
from nas.config.errors import describe
from nas.study import finalists as fin
from nas.study import lr_calibration, references
from nas.study.pruning import PRETRAIN_STEP, rung_value
from nas.study.storage import count_finished
from nas.trial import record as rec
from nas.trial.hooks import TrialHook
from nas.trial.record import State, TrialRecord, has_test_metrics
from nas.trial.run import Deadline, TaskError, TrialTimeout, data_fields, run_trial
from search_spaces import SearchSpace

log = logging.getLogger("adaptnas")

# Faults that fail one trial and let the search go on (the ``catch`` of ``study.optimize``).
TRIAL_FAULTS: tuple[type[Exception], ...] = (
    TaskError,
    TrialTimeout,
    torch.cuda.OutOfMemoryError,
)
# Loggers whose lines go to a trial's log file too.
TRIAL_LOGGERS = ("adaptnas", "pytorch_lightning", "lightning_fabric")
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


class _HandledFailures(logging.Filter):
    """Drops Optuna's warnings about a trial that failed of a fault the objective reported.

    Optuna logs "Trial N failed with parameters ... <traceback>", then "Trial N failed with value
    None."; the objective already printed one line with the reason and wrote the traceback to
    the trial's log file. Bugs keep Optuna's warnings.
    """

    def __init__(self):
        super().__init__()
        self.dropped: set[str] = set()  # numbers of trials whose first warning was dropped

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        number = message.split(" ", 2)[1] if message.startswith("Trial ") else ""
        if isinstance(error, (*TRIAL_FAULTS, KeyboardInterrupt)):
            self.dropped.add(number)
            return False
        if number in self.dropped and message.startswith(f"Trial {number} failed with value"):
            self.dropped.discard(number)
            return False
        return True


_HANDLED_FAILURES = _HandledFailures()


def quiet_handled_failures() -> None:
    """Install the filter on the logger Optuna reports failed trials with (once per process)."""
    logger = logging.getLogger("optuna.study._optimize")
    if _HANDLED_FAILURES not in logger.filters:
        logger.addFilter(_HANDLED_FAILURES)


def oom_summary(err: BaseException) -> str:
    """``CUDA out of memory. Tried to allocate 2.00 GiB`` from torch's long one-line message.

    The rest (capacity, what is in use, allocator advice) stays in the trial's log file.
    """
    lines = str(err).strip().splitlines()
    return ". ".join(lines[0].split(". ")[:2]).rstrip(".") if lines else "CUDA"


def free_memory(err: BaseException) -> None:
    """Release what a failed trial held (its model, activations, optimizer) and CUDA's cache.

    The traceback keeps every frame of the trial alive, and with them the tensors; clearing the
    frames' locals lets ``gc`` free them now, so the cached blocks go back to the device before
    the next trial starts.
    """
    traceback.clear_frames(err.__traceback__)
    gc.collect()
    torch.cuda.empty_cache()


def fmt_duration(seconds: float) -> str:
    """``75.2`` -> ``'1m15s'``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


class Objective:
    """Callable objective of a search.

    Args:
        cfg: The run config as plain dicts (``pretrain``, ``finetune``, ``trainer``, ``objective``,
            ``tasks``, ``seed``, ``n_trials``).
        suite: Shared data, built once per process.
        space: The search space.
        n_trials: Trials the whole study should finish (for progress lines); ``None`` when the
            search runs until its timeout.
        hooks: Observers called at the start, each stage and the end of every trial.
        log_dir: Folder of the per-trial log files (``trial_<number>.log``: the trial's lines and,
            when it fails, the traceback); ``None`` writes none.
        strategy: ``None`` (standalone), or an object whose ``prepare(trial, arch, cfg)`` gives
            each trial's run config and ``init_model`` (``Strategy.open`` of
            ``nas.strategies``: ``nas.strategies.supernet.InheritedWeights``).

    ``cfg["trial_timeout"]`` (seconds, optional) limits each trial: past it the trial fails.
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        suite: Suite,
        space: SearchSpace,
        n_trials: int | None,
        hooks: list[TrialHook] | None = None,
        log_dir: Path | None = None,
        strategy: Any = None,
    ):
        self.cfg, self.suite, self.space = cfg, suite, space
        # strategy=supernet (nas/strategies/supernet.py):
        # prepare(trial, arch, cfg) -> (cfg, init_model).
        self.strategy = strategy
        self.hooks = list(hooks or [])
        self.n_trials = n_trials
        self.multi = bool(cfg["objective"]["multi_objective"])
        self.top_k_test = int(cfg["objective"]["test_top_k"])
        # objective.per_trainable_param: the value is adaptability per million trainable
        # parameters, for running reports (analytic counts, tasks so far) and the final value.
        self.per_param = bool(cfg["objective"]["per_trainable_param"])
        self.spec = AdaptationSpec.from_config(cfg["finetune"])
        self.trial_timeout = cfg["trial_timeout"]
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.durations: list[float] = []
        self._handler: logging.FileHandler | None = None
        quiet_handled_failures()

    def _finished_values(self, study: optuna.Study) -> list[float]:
        done = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
        return [t.values[0] for t in fin.search_trials(done)]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self._open_log(trial)
        try:
            return self._run(trial)
        except (Exception, KeyboardInterrupt) as err:
            # Whatever else ended the trial (Ctrl-C outside the stages, a bug in a hook or in
            # recording the result), the trial says why it failed and its log has the traceback.
            handled = isinstance(err, (optuna.TrialPruned, *TRIAL_FAULTS))
            if not handled and not rec.has_fail_reason(trial):
                interrupted = isinstance(err, KeyboardInterrupt)
                rec.write_fail_reason(trial, "interrupted" if interrupted else describe(err))
                if not interrupted:
                    self._write_traceback(f"trial {trial.number}", err)
            raise
        finally:
            self._close_log()

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        t0 = self._t0 = time.perf_counter()
        repeat = self._repeat_of(trial)
        if repeat is not None:
            of, r, n_seeds, seed, _ = repeat
            prefix = f"trial {trial.number} (finalist trial {of}, seed {r + 1}/{n_seeds})"
        else:
            # Pruned trials count towards n_trials too (and every worker's trials do).
            done = count_finished(trial.study)
            count = f"{done + 1}/{self.n_trials}" if self.n_trials else f"#{done + 1}"
            prefix = f"trial {trial.number} ({count})"
            seed = int(self.cfg["seed"]) + trial.number
        rec.write_seed(trial, seed)  # the model seed: what a repeat changes
        n_stages = 1 + len(self.suite.tasks)
        stages = {name: i for i, name in enumerate(["pretrain", *self.suite.tasks], start=1)}
        deadline = Deadline.after(self.trial_timeout) if self.trial_timeout else None
        params = self.space.sample(trial, **data_fields(self.suite))
        try:
            arch = TransformerConfig.from_dict(params)
        except ArchitectureError as err:
            return self._prune(trial, f"invalid architecture: {err}", prefix)
        rec.write_attrs(trial, TrialRecord.start_attrs(arch))
        log.info("%s: %s, %s params", prefix, arch.describe(), params_human(arch.num_params()))
        for hook in self.hooks:
            hook.on_trial_start(trial, arch)
        trainable = task_trainable(arch, self.spec, self.suite.tasks) if self.per_param else {}

        watch = _Watch(self, trial, prefix, stages, n_stages, repeat, trainable)
        run_cfg, init_model = self.cfg, None
        if self.strategy is not None:  # inherited weights, strategy.continue_tokens of pretraining
            run_cfg, init_model = self.strategy.prepare(trial, arch, self.cfg)
        run_cfg = self._learning_rates(trial, arch, run_cfg, prefix)
        try:
            result = run_trial(
                arch,
                self.suite,
                run_cfg,
                [watch, *self.hooks],
                trial=trial,
                seed=seed,
                init_model=init_model,
                deadline=deadline,
            )
        except optuna.TrialPruned as err:
            return self._prune(trial, str(err), prefix)
        except DivergedError as err:
            return self._prune(trial, f"diverged: {err}", prefix)
        except torch.cuda.OutOfMemoryError as err:
            self._fail(trial, f"out of memory: {oom_summary(err)}", prefix, err)
            free_memory(err)  # before the next trial, which may well fit
            raise
        except (TaskError, TrialTimeout) as err:
            self._fail(trial, str(err), prefix, err)
            raise
        except KeyboardInterrupt:
            # The search stops (nas/config/compose.py says so in one line); the trial is failed, not
            # left running, so a resume re-runs its slot at once.
            self._fail(trial, "interrupted", prefix, None, terminal=False)
            raise
        except Exception as err:
            # A bug: recorded on the trial, then it stops the search with its traceback.
            self._fail(trial, describe(err), prefix, err, terminal=False)
            raise
        rec.write_attrs(trial, result.to_attrs())
        value = result.adaptability
        if self.per_param:
            value = per_million(value, result.trainable_params.values())
            result.adaptability_per_mparam = value
            # before the hooks: weight keeping ranks the running trial by it
            # (nas/study/kept_weights.py)
            rec.write_per_mparam(trial, value)
        for hook in self.hooks:
            hook.on_trial_end(trial, "complete", result, None)
        self.durations.append(time.perf_counter() - t0)
        self._log_done(trial, result, prefix, repeat is not None)
        if self.multi:
            return value, float(result.n_params)
        return value

    def _learning_rates(
        self, trial: optuna.Trial, arch: TransformerConfig, run_cfg: dict, prefix: str
    ) -> dict:
        """``finetune.lr_choice=family``: the run config at the family's calibrated rates."""
        if self.cfg["finetune"].get("lr_choice") != "family":
            return run_cfg
        trials = trial.study.get_trials(deepcopy=False, states=(State.COMPLETE,))
        run_cfg, found = lr_calibration.calibrated(
            run_cfg, trials, arch.family, references.is_reference(trial)
        )
        if found is None:
            log.info("%s: chooses its learning rates on finetune.lr_grid", prefix)
            return run_cfg
        rec.write_lr_from(trial, found.trial, found.rates)
        rates = ", ".join(f"{t} {r:g}" for t, r in found.rates.items())
        log.info("%s: adapts at the rates of trial %d (%s)", prefix, found.trial, rates)
        return run_cfg

    def _repeat_of(self, trial: optuna.Trial) -> tuple[int, int, int, int, bool] | None:
        """``(finalist, r, seeds in all, seed, test it)`` of a finalist repeat, else ``None``."""
        identity = rec.repeat_identity(trial.user_attrs)
        if identity is None:
            return None
        of, r = identity
        n_seeds = 1 + int(self.cfg["finalists"]["seeds"])
        seed = int(self.cfg["seed"]) + of + fin.REPEAT_SEED_STRIDE * r
        storage = trial.study._storage
        original = storage.get_trial(
            storage.get_trial_id_from_study_id_trial_number(trial.study._study_id, of)
        )
        return of, r, max(n_seeds, r + 1), seed, has_test_metrics(original)

    def _fail(
        self,
        trial: optuna.Trial,
        reason: str,
        prefix: str,
        err: BaseException | None,
        terminal: bool = True,
    ) -> None:
        """Record why ``trial`` fails, log it (one line), append the traceback to its log file."""
        rec.write_fail_reason(trial, reason)
        # Failed trials spend budget too: they count in the ETA's mean trial time.
        self.durations.append(time.perf_counter() - getattr(self, "_t0", time.perf_counter()))
        where = f" (traceback in {self._handler.baseFilename})" if self._handler and err else ""
        (log.warning if terminal else log.info)("%s: failed: %s%s", prefix, reason, where)
        if err is not None:
            self._write_traceback(prefix, err)
        # Observers must close what they opened (a W&B run) whatever ended the trial.
        for hook in self.hooks:
            hook.on_trial_end(trial, "fail", None, reason)

    def _write_traceback(self, prefix: str, err: BaseException) -> None:
        """Append ``err``'s traceback (causes included) to the trial's log file, if any."""
        if self._handler is None:
            return
        exc_info = (type(err), err, err.__traceback__)
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, 0, "%s: traceback", (prefix,), exc_info
        )
        self._handler.handle(record)  # the file only: the terminal has its one line

    def _open_log(self, trial: optuna.Trial) -> None:
        """Start ``<log_dir>/trial_<number>.log`` and send this trial's log lines to it."""
        self._handler = None
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"trial_{trial.number}.log"
        handler = logging.FileHandler(path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
        # Only this thread's lines: a process running trials in threads keeps them apart.
        thread = threading.get_ident()
        handler.addFilter(lambda record: record.thread == thread)
        for name in TRIAL_LOGGERS:
            logging.getLogger(name).addHandler(handler)
        self._handler = handler
        rec.write_log_file(trial, str(path))
        # A first line whatever the loggers' levels (INFO lines need logging configured for
        # INFO, as the entry points do; tracebacks of failures are written in any case).
        header = f"trial {trial.number} of study {trial.study.study_name}"
        handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, header, (), None))

    def _close_log(self) -> None:
        handler, self._handler = self._handler, None
        if handler is None:
            return
        for name in TRIAL_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        handler.close()

    def _is_finalist(self, study: optuna.Study, score: float) -> bool:
        values = sorted(self._finished_values(study), reverse=True)
        return len(values) < self.top_k_test or score > values[self.top_k_test - 1]

    def _prune(self, trial: optuna.Trial, reason: str, prefix: str):
        """Record why ``trial`` is pruned, log it and raise ``TrialPruned``."""
        rec.write_fail_reason(trial, reason)
        # Pruned trials spend budget too: they count in the ETA's mean trial time.
        self.durations.append(time.perf_counter() - getattr(self, "_t0", time.perf_counter()))
        log.info("%s: pruned: %s | %s", prefix, reason, self._progress(trial.study, None))
        for hook in self.hooks:
            hook.on_trial_end(trial, "pruned", None, reason)
        raise optuna.TrialPruned(reason)

    def _progress(self, study: optuna.Study, score: float | None) -> str:
        """``best 0.412 | 7 to go, ETA 12m30s`` after the current trial (not yet in storage)."""
        values = [v for v in [*self._finished_values(study), score] if v is not None]
        values = [v for v in values if not math.isnan(v)]
        best = f"best {max(values):.3f}" if values else "no complete trial yet"
        if not self.n_trials:
            return best
        finished = count_finished(study) + 1
        remaining = max(0, self.n_trials - finished)
        eta = remaining * sum(self.durations) / max(1, len(self.durations))
        return f"{best} | {remaining} to go, ETA {fmt_duration(eta)}"

    def _log_done(
        self, trial: optuna.Trial, r: TrialRecord, prefix: str, repeat: bool = False
    ) -> None:
        log.info(
            "%s: adaptability %.3f in %s | %s",
            prefix,
            r.adaptability,
            fmt_duration(r.timings["total"]),
            "finalist repeat" if repeat else self._progress(trial.study, r.adaptability),
        )


class _Watch(TrialHook):
    """The objective's own hook on one trial: progress lines, pruning reports, the test decision.

    First in the trial's hook list, so its line about a stage comes before the other hooks run.
    """

    def __init__(self, objective, trial, prefix, stages, n_stages, repeat, trainable):
        self.objective, self.trial, self.prefix = objective, trial, prefix
        self.stages, self.n_stages = stages, n_stages
        self.repeat, self.trainable = repeat, trainable

    def on_stage(self, trial, stage: str, seconds: float, info: dict) -> None:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in info.items() if k != "score")
        step = f"{self.stages.get(stage, '?')}/{self.n_stages}"
        log.info("%s: stage %s %s done in %.1fs (%s)", self.prefix, step, stage, seconds, shown)

    def _pruning(self) -> bool:
        # Optuna cannot prune multi-objective trials; a repeat measures the seed noise of a
        # finalist, runs to the end and stays out of the pruner's comparisons.
        return not (self.objective.multi or self.repeat is not None)

    def _prunable(self, trial) -> bool:
        # A reference design reports (it sets the bar for the others) but runs to the end: the
        # verdict needs it complete.
        return not references.is_reference(trial) and trial.should_prune()

    def pretrain_rungs(self, trial) -> tuple[float, ...]:
        at = getattr(trial.study.pruner, "pretrain_at", None)  # nas.study.pruning.TaskHalvingPruner
        return (at,) if at is not None and self._pruning() else ()

    def on_pretrain_rung(self, trial, fraction: float, val_loss: float) -> None:
        if not self._pruning():
            return
        trial.report(rung_value(val_loss), PRETRAIN_STEP)
        if self._prunable(trial):
            raise optuna.TrialPruned(
                f"after {fraction:.0%} of pretraining (held-out loss {val_loss:.3f})"
            )

    def on_report(self, trial, step: int, value: float, scores: dict[str, float]) -> None:
        rec.write_running_scores(trial, scores)  # pruned trials keep what they scored
        o = self.objective
        if o.per_param:
            value = per_million(value, [self.trainable[t] for t in scores])
        if not self._pruning():
            return
        trial.report(value, step)
        if step < len(o.suite.tasks) and self._prunable(trial):
            task = list(scores)[-1]
            raise optuna.TrialPruned(f"after {task} (running adaptability {value:.3f})")

    def wants_test(self, trial, adaptability: float) -> bool:
        if self.repeat is not None:  # a repeat is tested when its finalist was
            return self.repeat[4]
        if references.is_reference(trial):  # always: the verdict compares on test
            return True
        return self.objective._is_finalist(trial.study, adaptability)
