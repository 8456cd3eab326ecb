"""The Optuna objective: sample an architecture, run the staged trial, record everything."""

from __future__ import annotations

import gc
import logging
import math
import time
from typing import Any

import optuna
import torch

from lightning_modules.config import ArchitectureError, TransformerConfig, params_human
from lightning_modules.data.suite import Suite
from lightning_modules.optim import DivergedError
from nas.hooks import TrialHook
from nas.study import FINISHED
from nas.trial import CandidateResult, data_fields, run_candidate
from search_spaces import SearchSpace

log = logging.getLogger("adaptnas")


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
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        suite: Suite,
        space: SearchSpace,
        n_trials: int | None,
        hooks: list[TrialHook] | None = None,
    ):
        self.cfg, self.suite, self.space = cfg, suite, space
        self.hooks = list(hooks or [])
        self.n_trials = n_trials
        self.multi = bool(cfg["objective"]["multi_objective"])
        self.top_k_test = int(cfg["objective"].get("test_top_k", 1))
        self.durations: list[float] = []

    def _finished_values(self, study: optuna.Study) -> list[float]:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return [t.values[0] for t in done]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        t0 = self._t0 = time.perf_counter()
        # Pruned trials count towards n_trials too (and every worker's trials do).
        done = len(trial.study.get_trials(deepcopy=False, states=FINISHED))
        count = f"{done + 1}/{self.n_trials}" if self.n_trials else f"#{done + 1}"
        prefix = f"trial {trial.number} ({count})"
        n_stages = 1 + len(self.suite.tasks)
        stages = {name: i for i, name in enumerate(["pretrain", *self.suite.tasks], start=1)}
        params = self.space.sample(trial, **data_fields(self.suite))
        try:
            arch = TransformerConfig.from_dict(params)
        except ArchitectureError as err:
            return self._prune(trial, f"invalid architecture: {err}", prefix)
        trial.set_user_attr("architecture", arch.to_dict())
        trial.set_user_attr("n_params", arch.num_params())
        trial.set_user_attr("describe", arch.describe())
        log.info("%s: %s, %s params", prefix, arch.describe(), params_human(arch.num_params()))
        for hook in self.hooks:
            hook.on_trial_start(trial, arch)

        def on_stage(stage: str, seconds: float, info: dict) -> None:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in info.items() if k != "score")
            step = f"{stages.get(stage, '?')}/{n_stages}"
            log.info("%s: stage %s %s done in %.1fs (%s)", prefix, step, stage, seconds, shown)
            for hook in self.hooks:
                hook.on_stage(trial, stage, seconds, info)

        def logger_for(stage: str):
            loggers = [lg for h in self.hooks if (lg := h.logger_for(trial, stage)) is not None]
            return loggers or False

        def report(step: int, value: float, scores: dict[str, float]) -> None:
            trial.set_user_attr("task_scores", dict(scores))  # pruned trials keep what they scored
            if self.multi:
                return  # Optuna cannot prune multi-objective trials
            trial.report(value, step)
            if step < len(self.suite.tasks) and trial.should_prune():
                task = list(scores)[-1]
                raise optuna.TrialPruned(f"after {task} (running adaptability {value:.3f})")

        try:
            result = run_candidate(
                arch,
                self.suite,
                self.cfg,
                seed=int(self.cfg["seed"]) + trial.number,
                report=report,
                want_test=lambda score: self._is_finalist(trial.study, score),
                on_stage=on_stage,
                logger_for=logger_for,
            )
        except optuna.TrialPruned as err:
            return self._prune(trial, str(err), prefix)
        except DivergedError as err:
            return self._prune(trial, f"diverged: {err}", prefix)
        except torch.cuda.OutOfMemoryError as err:
            reason = f"out of memory: {str(err).splitlines()[0]}"
            trial.set_user_attr("fail_reason", reason)
            for hook in self.hooks:
                hook.on_trial_end(trial, "fail", None, reason)
            gc.collect()
            torch.cuda.empty_cache()
            raise
        except Exception as err:
            # Observers must close what they opened (a W&B run) whatever ended the trial.
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            trial.set_user_attr("fail_reason", reason)
            for hook in self.hooks:
                hook.on_trial_end(trial, "fail", None, reason)
            raise
        self._record(trial, result)
        for hook in self.hooks:
            hook.on_trial_end(trial, "complete", result, None)
        self.durations.append(time.perf_counter() - t0)
        self._log_done(trial, result, prefix)
        if self.multi:
            return result.adaptability, float(result.n_params)
        return result.adaptability

    def _is_finalist(self, study: optuna.Study, score: float) -> bool:
        values = sorted(self._finished_values(study), reverse=True)
        return len(values) < self.top_k_test or score > values[self.top_k_test - 1]

    def _prune(self, trial: optuna.Trial, reason: str, prefix: str):
        trial.set_user_attr("fail_reason", reason)
        # Pruned trials spend budget too: they count in the ETA's mean trial time.
        self.durations.append(time.perf_counter() - getattr(self, "_t0", time.perf_counter()))
        log.info("%s: pruned: %s | %s", prefix, reason, self._progress(trial.study, None))
        for hook in self.hooks:
            hook.on_trial_end(trial, "pruned", None, reason)
        raise optuna.TrialPruned(reason)

    @staticmethod
    def _record(trial: optuna.Trial, r: CandidateResult) -> None:
        trial.set_user_attr("n_params", r.n_params)
        trial.set_user_attr("flops_per_token", r.flops_per_token)
        trial.set_user_attr("pretrain_val_loss", r.pretrain_val_loss)
        trial.set_user_attr("task_scores", r.task_scores)
        trial.set_user_attr("task_metrics", r.task_metrics)
        trial.set_user_attr("curves", r.curves)
        trial.set_user_attr("adaptability", r.adaptability)
        trial.set_user_attr("timings", {k: round(v, 3) for k, v in r.timings.items()})
        trial.set_user_attr("steps", r.steps)
        if r.test_metrics:
            trial.set_user_attr("test_metrics", r.test_metrics)

    def _progress(self, study: optuna.Study, score: float | None) -> str:
        """``best 0.412 | 7 to go, ETA 12m30s`` after the current trial (not yet in storage)."""
        values = [v for v in [*self._finished_values(study), score] if v is not None]
        values = [v for v in values if not math.isnan(v)]
        best = f"best {max(values):.3f}" if values else "no complete trial yet"
        if not self.n_trials:
            return best
        finished = len(study.get_trials(deepcopy=False, states=FINISHED)) + 1
        remaining = max(0, self.n_trials - finished)
        eta = remaining * sum(self.durations) / max(1, len(self.durations))
        return f"{best} | {remaining} to go, ETA {fmt_duration(eta)}"

    def _log_done(self, trial: optuna.Trial, r: CandidateResult, prefix: str) -> None:
        log.info(
            "%s: adaptability %.3f in %s | %s",
            prefix,
            r.adaptability,
            fmt_duration(r.timings["total"]),
            self._progress(trial.study, r.adaptability),
        )
