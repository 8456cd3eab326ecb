"""Observers of a trial: tracking (W&B, CSV), keeping weights, pruning and the like plug in here.

``nas.trial.run.run_trial`` calls every hook at the same points of each trial (each stage, each
task's running adaptability, the test decision) and the objective calls them at its start and
end, so features that watch trials never edit the trial or the objective itself. All methods are
optional no-ops. ``trial`` is the Optuna trial of a search, or ``None`` for a single run
(``nas/train.py``).
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

    def logger_for(self, trial: optuna.Trial | None, stage: str) -> Any | None:
        """A Lightning logger for ``stage`` (``pretrain`` or a task name), or ``None``."""
        return None

    def on_stage(self, trial: optuna.Trial | None, stage: str, seconds: float, info: dict) -> None:
        """After each stage with its metrics."""

    def pretrain_rungs(self, trial: optuna.Trial | None) -> tuple[float, ...]:
        """Fractions of pretraining after which this hook wants ``on_pretrain_rung`` (none)."""
        return ()

    def on_pretrain_rung(
        self, trial: optuna.Trial | None, fraction: float, val_loss: float
    ) -> None:
        """When ``fraction`` of the pretraining steps is done (one asked for by some hook's
        ``pretrain_rungs``), with the held-out pretraining loss then. May raise
        ``optuna.TrialPruned`` to stop the trial before the rest of its pretraining."""

    def on_report(
        self, trial: optuna.Trial | None, step: int, value: float, scores: dict[str, float]
    ) -> None:
        """After each task: ``step`` tasks done, ``value`` the running adaptability, ``scores``
        the task scores so far. May raise ``optuna.TrialPruned`` to stop the trial."""

    def wants_test(self, trial: optuna.Trial | None, adaptability: float) -> bool:
        """Whether the adapted models are also scored on the test splits (any hook's yes wins)."""
        return False

    def on_trial_end(
        self, trial: optuna.Trial, state: str, record: Any | None, reason: str | None
    ) -> None:
        """When the trial ends: ``state`` is ``complete``, ``pruned`` or ``fail``; ``record`` is
        the ``nas.trial.record.TrialRecord`` of a complete trial (its models still in memory)."""

    def on_search_end(self, study: optuna.Study) -> None:
        """Once per process, after the last trial."""


class ScoreTest(TrialHook):
    """Asks for the test splits to be scored, or not, whatever the adaptability.

    Args:
        enabled: The answer to ``wants_test``.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def wants_test(self, trial: optuna.Trial | None, adaptability: float) -> bool:
        return self.enabled
