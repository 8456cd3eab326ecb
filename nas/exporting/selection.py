"""Which trials of a study an export takes (``trial=``), and what the search recorded of them."""

from __future__ import annotations

from typing import Any

import optuna

from nas.config.errors import ConfigError
from nas.trial.record import TrialRecord


def trial_record(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """What the search recorded of ``trial`` (architecture, task scores, fail reason), read
    through the one trial record; the one place export reads them."""
    return TrialRecord.from_trial(trial)


def select_trials(study: optuna.Study, which: Any) -> list[optuna.trial.FrozenTrial]:
    """The trials ``trial=`` names: ``None`` (the best), a number, or ``pareto``.

    Raises:
        ConfigError: An unknown trial, a malformed value, or no completed trial.
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if which is None or which == "best" or which == "pareto":
        if not complete:
            raise ConfigError(f"study '{study.study_name}' has no completed trial to export")
        if len(study.directions) == 1:
            if which == "pareto":
                raise ConfigError(
                    f"trial=pareto: study '{study.study_name}' has one objective; "
                    "export the best trial (no trial=) or trial=<n>"
                )
        from nas.reporting.leaderboard import (
            best_trials,  # the winner by mean over its finalist seeds
        )

        front = best_trials(study)
        return front if which == "pareto" else front[:1]
    if isinstance(which, bool) or not (isinstance(which, int) or str(which).isdigit()):
        raise ConfigError(f"trial={which!r}: give a trial number, pareto, or nothing (the best)")
    number = int(which)
    by_number = {t.number: t for t in trials}
    if number not in by_number:
        span = f"trials 0-{max(by_number)}" if by_number else "no trials"
        raise ConfigError(f"trial={number}: study '{study.study_name}' has no such trial ({span})")
    return [by_number[number]]
