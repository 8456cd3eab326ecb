"""Observers of a search: tracking (W&B, CSV), keeping weights, and the like plug in here.

The objective calls every hook at the same points of each trial, so features that watch trials
never edit the objective itself. All methods are optional no-ops.
"""

from __future__ import annotations

from typing import Any

import optuna

from lightning_modules.config import TransformerConfig


class TrialHook:
    """Base class: override what you need."""

    def on_search_start(self, study: optuna.Study, cfg: dict[str, Any]) -> None:
        """Once per process, before the first trial."""

    def on_trial_start(self, trial: optuna.Trial, arch: TransformerConfig) -> None:
        """After the architecture is sampled and valid, before pretraining."""

    def logger_for(self, trial: optuna.Trial, stage: str) -> Any | None:
        """A Lightning logger for ``stage`` (``pretrain`` or a task name), or ``None``."""
        return None

    def on_stage(self, trial: optuna.Trial, stage: str, seconds: float, info: dict) -> None:
        """After each stage with its metrics."""

    def on_trial_end(
        self, trial: optuna.Trial, state: str, result: Any | None, reason: str | None
    ) -> None:
        """When the trial ends: ``state`` is ``complete``, ``pruned`` or ``fail``; ``result`` is
        the ``CandidateResult`` for complete trials (its models still in memory)."""

    def on_search_end(self, study: optuna.Study) -> None:
        """Once per process, after the last trial."""
