"""The study's sampler and pruner, as the default config builds them."""

from __future__ import annotations

import optuna

from nas.study.storage import build_pruner

Pruner = optuna.pruners.HyperbandPruner


def test_hyperband_pruner_never_prunes_on_the_first_task_alone(tiny_cfg):
    pruner = build_pruner(tiny_cfg(extra=["pruner=hyperband"]))
    assert isinstance(pruner, Pruner)
    # Hyperband puts a trial in a bracket by a hash of the study name and trial number: a fixed
    # name makes the test exact.
    study = optuna.create_study(study_name="brackets", direction="maximize", pruner=pruner)
    for _ in range(3):  # three good trials through all five tasks
        trial = study.ask()
        for step in range(1, 6):
            trial.report(0.9, step)
            assert not trial.should_prune()  # (the pruner records rungs when asked)
        study.tell(trial, 0.9)
    pruned_at = []
    for _ in range(8):  # poor trials, in whichever bracket they fall
        poor = study.ask()
        for step in range(1, 6):
            poor.report(0.1, step)
            if poor.should_prune():
                pruned_at.append(step)
                study.tell(poor, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(poor, 0.1)
    assert pruned_at and min(pruned_at) == 2  # never on one task; from the second on
