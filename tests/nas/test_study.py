"""The study's sampler and pruner, as the default config builds them."""

from __future__ import annotations

import optuna

from nas.study import build_pruner

Pruner = optuna.pruners.HyperbandPruner


def test_default_pruner_never_prunes_on_the_first_task_alone(tiny_cfg):
    pruner = build_pruner(tiny_cfg())
    assert isinstance(pruner, Pruner)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(3):  # three good trials through all five tasks
        trial = study.ask()
        for step in range(1, 6):
            trial.report(0.9, step)
            assert not trial.should_prune()  # (the pruner records rungs when asked)
        study.tell(trial, 0.9)
    poor = study.ask()
    poor.report(0.1, 1)
    assert not poor.should_prune()  # one task is not enough evidence
    poor.report(0.1, 2)
    assert poor.should_prune()  # two tasks are
