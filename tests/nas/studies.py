"""Studies built by hand for tests of what reads them: finished trials with a trial's attributes."""

from __future__ import annotations

import optuna

from nas.study import finalists as fin
from nas.trial.record import REFERENCE


def add_finished(
    study: optuna.Study,
    value: float,
    ref: str | None = None,
    test: float | None = None,
    of: int | None = None,
    r: int = 0,
) -> None:
    """Add a complete trial scoring ``value``: a reference design ``ref``, a ``test`` score on
    one task (``qa``), or repeat ``r`` of finalist ``of``."""
    attrs = {}
    if ref:
        attrs[REFERENCE] = ref
    if of is not None:
        attrs[fin.REPEAT_OF], attrs[fin.REPEAT] = of, r
    if test is not None:
        attrs["test_metrics"] = {"qa": {"score": test}}
    study.add_trial(
        optuna.trial.create_trial(
            value=value,
            params={"x": 0},
            distributions={"x": optuna.distributions.IntDistribution(0, 9)},
            user_attrs=attrs,
        )
    )
