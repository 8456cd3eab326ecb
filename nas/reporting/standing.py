"""The study as it stands: its trials and attributes read from the storage once, for every report.

At the end of a search (and in ``nas/report.py``) the leaderboard, the winner's YAML, the Pareto
front, the verdict, the screen tier and the winner's log line all read the same trials. On a
PostgreSQL or journal storage each read of a study's trials is a round trip over every trial, so
they read one ``Standing`` instead: one ``get_trials``, one read of the study's user attributes,
and the finalists ranked once (``nas.study.finalists.ranked``), like Optuna's ``FrozenTrial`` is
one read of a trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nas.study import finalists as fin
from nas.study import references
from nas.study import screen as scr


@dataclass
class Standing:
    """One read of a study: what every report of it is built from.

    Attributes:
        study: The study (its name; the screen tier's study is found through it).
        trials: Every trial, surplus ones included, as the storage held them when read.
        attrs: The study's user attributes at that moment.
        directions: The study's optimisation directions (one: a single winner).
    """

    study: optuna.Study
    trials: list[FrozenTrial]
    attrs: dict[str, Any]
    directions: list[optuna.study.StudyDirection]

    @classmethod
    def of(cls, study: optuna.Study) -> Standing:
        """Read ``study`` once."""
        return cls(
            study=study,
            trials=list(study.get_trials(deepcopy=False)),
            attrs=dict(study.user_attrs),
            directions=list(study.directions),
        )

    @property
    def name(self) -> str:
        """The study's name."""
        return self.study.study_name

    @property
    def multi(self) -> bool:
        """Whether the study has several objectives (a Pareto front, no single winner)."""
        return len(self.directions) > 1

    @cached_property
    def scores(self) -> dict[int, fin.SeedScores]:
        """Each search trial's scores over its seeds (its finalist repeats included)."""
        return fin.seed_scores(self.trials)

    @cached_property
    def ranked(self) -> list[fin.SeedScores]:
        """The candidates for the winner, best mean first (``nas.study.finalists.ranked``)."""
        settings = fin.FinalistSettings.of_attrs(self.attrs)
        return fin.ranked_among(self.trials, settings, self.directions)

    @cached_property
    def verdict(self) -> dict[str, Any] | None:
        """The winner against the best reference design, on test (``None``: no reference)."""
        return references.study_verdict(self.ranked, self.attrs, len(self.directions))

    @cached_property
    def screen(self) -> scr.ScreenSummary | None:
        """The screen tier of a two-tier study (``None``: not one, or its screen is gone)."""
        if scr.STUDY_ATTR not in self.attrs:
            return None
        return scr.summary(self.study)


def standing_of(study: optuna.Study | Standing) -> Standing:
    """``study`` read once, or the ``Standing`` given."""
    return study if isinstance(study, Standing) else Standing.of(study)
