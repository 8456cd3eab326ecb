"""The task-step successive-halving pruner, driven by ask/tell: which trial stops at which rung."""

from __future__ import annotations

import math

import optuna
import pytest

from nas.config.errors import ConfigError
from nas.study.pruning import TaskHalvingPruner
from nas.study.storage import build_pruner

State = optuna.trial.TrialState


def drive(study: optuna.Study, table: list[list[float]]) -> dict[int, int | None]:
    """Run one trial per row (its running value after each step); the step each stopped at."""
    stopped: dict[int, int | None] = {}
    for values in table:
        trial = study.ask()
        stopped[trial.number] = None
        for step, value in enumerate(values, start=1):
            trial.report(value, step)
            if step < len(values) and trial.should_prune():  # as the objective: not after the last
                stopped[trial.number] = step
                break
        if stopped[trial.number] is None:
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=State.PRUNED)
    return stopped


# Running adaptability after tasks 1-5 of nine trials, in the order they run.
TABLE = [
    [0.9, 0.50, 0.50, 0.50, 0.50],  # 0: first at rung 2 (n=1 < min_trials): goes on
    [0.1, 0.40, 0.40, 0.40, 0.40],  # 1: n=2: on
    [0.5, 0.60, 0.60, 0.60, 0.60],  # 2: n=3: on
    [0.9, 0.30, 0.30, 0.30, 0.30],  # 3: n=4, keeps ceil(4/3)=2 (>= 0.50): 0.30 stops at rung 2
    [0.5, 0.70, 0.70, 0.70, 0.70],  # 4: best at rung 2; rung 4 has n=4 (keeps >= 0.60): on
    [0.5, 0.20, 0.20, 0.20, 0.20],  # 5: n=6, keeps 2 (>= 0.60): stops at rung 2
    [0.5, 0.65, 0.65, 0.45, 0.45],  # 6: rung 2 n=7 keeps 3 (>= 0.60); rung 4 n=5 keeps 2: stops
    [0.5, 0.55, 0.55, 0.55, 0.55],  # 7: n=8 keeps 3 (>= 0.60): stops at rung 2
    [0.0, 0.10, 0.10, 0.10, 0.10],  # 8: stops at rung 2
]


def test_every_rung_prunes_and_each_trial_stops_where_stated():
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=TaskHalvingPruner(rungs=[2, 4], reduction_factor=3, min_trials=4),
    )
    stopped = drive(study, TABLE)
    assert stopped == {0: None, 1: None, 2: None, 3: 2, 4: None, 5: 2, 6: 4, 7: 2, 8: 2}
    # Pruned trials stay in a rung's comparison: a tenth trial at 0.58 goes on at rung 2 (n=10
    # keeps 4: 0.70, 0.65, 0.60, 0.58) and stops at rung 4 (n=6 with trial 6's 0.45: keeps >= 0.60).
    assert drive(study, [[0.5, 0.58, 0.58, 0.58, 0.58]]) == {9: 4}


def test_minimising_studies_keep_the_lowest_values():
    study = optuna.create_study(
        direction="minimize", pruner=TaskHalvingPruner(rungs=[1], reduction_factor=2, min_trials=2)
    )
    stopped = drive(study, [[0.5, 0.0], [0.7, 0.0], [0.4, 0.0], [0.6, 0.0]])
    # n=2 keeps 1 (<= 0.5): 0.7 stops; n=3 keeps 2 (<= 0.5): 0.4 on; n=4 keeps 2 (<= 0.5): 0.6 stops
    assert stopped == {0: None, 1: 1, 2: None, 3: 1}


def test_steps_off_the_rungs_never_prune():
    study = optuna.create_study(
        direction="maximize", pruner=TaskHalvingPruner(rungs=[3], min_trials=1)
    )
    stopped = drive(study, [[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.9, 0.0]])
    assert stopped == {0: None, 1: 3, 2: 3}  # n=3 keeps 1: 0.9 < 1.0 stops too


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pruner.rungs=[4,2]", "rungs=[4, 2] must be increasing"),
        ("pruner.rungs=[]", "rungs=[] must be a non-empty list"),
        ("pruner.reduction_factor=1", "reduction_factor=1 must be an integer >= 2"),
        ("pruner.min_trials=0", "min_trials=0 must be a positive integer"),
    ],
)
def test_bad_settings_are_one_line_errors(tiny_cfg, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        build_pruner(tiny_cfg(extra=["pruner=halving", override]))
    assert str(err.value).startswith("pruner: ") and "\n" not in str(err.value)


def test_the_default_search_uses_it(tiny_cfg):
    pruner = build_pruner(tiny_cfg())
    assert isinstance(pruner, TaskHalvingPruner)
    assert (pruner.rungs, pruner.reduction_factor, pruner.min_trials) == ([2, 4], 3, 4)


def random_search_of_seven(tiny_cfg, pruner: str):
    """Seven random architectures searched on the suite with ``pruner`` (``min_trials`` 2).

    Returns the study and, per trial, its state and last reported step. NER adapts at 1e-3, not
    the default 3e-3: at the tiny budgets the default lets one trial's NER lead all others, so
    every other trial stops at rung 2 and rung 4 would go untested. The running values are plain
    means of the task scores (``objective.adaptability=mean``), as the figures below were worked
    out; the pruner compares whatever the objective reports. The corpus is the English-only one
    and encoder-decoders pretrain on infilling alone, the defaults the figures were worked out
    under.
    """
    from nas.engine.run import run_search

    extra = [
        "tasks.ner.lr=1e-3",
        "data.corpus.target_stories=0",
        "pretrain.encoder_mlm=false",
        "objective.adaptability=mean",
        f"pruner={pruner}",
        "pruner.min_trials=2",
        "sampler=random",
        "n_trials=7",
        "storage=memory",
        f"study_name={pruner.replace('_', '-')}",
    ]
    study = run_search(tiny_cfg(extra=extra)).study
    return study, {t.number: (t.state.name, max(t.intermediate_values)) for t in study.trials}


def test_a_search_of_the_suite_prunes_at_the_rungs(tiny_cfg):
    """The real objective on the five tasks: which trial stops after task 2, which after task 4.

    CPU runs are deterministic, and the random sampler draws every parameter before training,
    so pruning does not change which architectures come next: these figures hold on every run.
    """
    study, last = random_search_of_seven(tiny_cfg, "halving")
    # Rung 2 (running adaptability after sentiment and NER): trial 1 (0.402) beats trial 0
    # (0.383) of n=2; 2 (0.250) is not the best of 3; 3 (0.397) is in the best 2 of 4; 4 (0.250)
    # and 5 (0.382) are out of the best 2 of 5 and 6, 6 (0.304) out of the best 3 of 7. Rung 4:
    # 3 (0.247) is not the best of 0.217, 0.262, 0.247 after translation.
    assert last == {
        0: ("COMPLETE", 5),
        1: ("COMPLETE", 5),
        2: ("PRUNED", 2),
        3: ("PRUNED", 4),
        4: ("PRUNED", 2),
        5: ("PRUNED", 2),
        6: ("PRUNED", 2),
    }
    assert (
        study.trials[3].user_attrs["fail_reason"]
        == "after translation (running adaptability 0.247)"
    )


def drive_with_pretraining(study: optuna.Study, rows: list[tuple[str, float, list[float]]]):
    """As ``drive``, each trial first reporting its pretraining-rung value at step 0.

    A row is ``(family, value at step 0, running values after each task)``; returns the step each
    trial stopped at (``None``: it completed).
    """
    stopped: dict[int, int | None] = {}
    for family, rung, values in rows:
        trial = study.ask({"family": optuna.distributions.CategoricalDistribution(["a", "b"])})
        assert trial.params["family"] == family  # enqueued by the caller
        stopped[trial.number] = None
        for step, value in [(0, rung), *enumerate(values, start=1)]:
            trial.report(value, step)
            if step < len(values) and trial.should_prune():
                stopped[trial.number] = step
                break
        if stopped[trial.number] is None:
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=State.PRUNED)
    return stopped


def test_the_pretraining_rung_compares_trials_of_one_family_only():
    pruner = TaskHalvingPruner(rungs=[0, 2], reduction_factor=2, min_trials=2, pretrain_at=0.3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    rows = [
        ("a", 0.10, [0.5, 0.5, 0.5]),  # 0: first of family a: on; rung 2 n=1: on
        ("b", 0.02, [0.6, 0.6, 0.6]),  # 1: first of b (a's 0.10 is no rival): on; rung 2 best
        ("a", 0.05, [0.9, 0.9, 0.9]),  # 2: a's n=2 keeps 1 (>= 0.10): stops at step 0
        ("b", 0.03, [0.3, 0.3, 0.3]),  # 3: b's n=2 keeps 1 (>= 0.03): on; rung 2: all families
        ("a", 0.20, [0.7, 0.7, 0.7]),  #    compete, n=3 keeps 2 (>= 0.5): stops. 4: on, on
    ]
    for family, _, _ in rows:
        study.enqueue_trial({"family": family})
    assert drive_with_pretraining(study, rows) == {0: None, 1: None, 2: 0, 3: 2, 4: None}
    # Without a group the step-0 values all compete: trial 1 (0.02 < 0.10) stops there.
    flat = TaskHalvingPruner(
        rungs=[0, 2], reduction_factor=2, min_trials=2, pretrain_at=0.3, pretrain_group=None
    )
    study = optuna.create_study(direction="maximize", pruner=flat)
    for family, _, _ in rows[:2]:
        study.enqueue_trial({"family": family})
    assert drive_with_pretraining(study, rows[:2]) == {0: None, 1: 0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rungs": [0, 2]}, "rung 0 is the pretraining rung"),
        ({"rungs": [2], "pretrain_at": 0.3}, "rung 0 is the pretraining rung"),
        ({"rungs": [0, 2], "pretrain_at": 1.0}, "pretrain_at=1.0 must be a fraction in (0, 1)"),
        ({"rungs": [0, 2], "pretrain_at": "half"}, "pretrain_at='half' must be a fraction"),
    ],
)
def test_the_pretraining_rung_needs_both_settings(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TaskHalvingPruner(**kwargs)


def test_a_search_prunes_inside_pretraining_within_each_family(tiny_cfg):
    """The real objective with ``pruner=pretrain_halving``: rung 0 acts within a family.

    The same seven random architectures as above (the sampler draws every parameter first), so
    the task rungs stop the same trials where they get that far; trials 5 and 6 now stop after a
    third of their pretraining instead of after NER.
    """
    study, last = random_search_of_seven(tiny_cfg, "pretrain_halving")
    assert last == {
        0: ("COMPLETE", 5),
        1: ("COMPLETE", 5),
        2: ("PRUNED", 2),
        3: ("PRUNED", 4),
        4: ("PRUNED", 2),
        5: ("PRUNED", 0),
        6: ("PRUNED", 0),
    }
    family = {t.number: t.params["family"] for t in study.trials}
    at_rung = {n: study.trials[n].intermediate_values[0] for n in family}
    # Trial 5 (decoder) is not the best decoder of n=3 at rung 0 (trials 1, 2, 5); trial 6
    # (prefix-LM) is not in the best 2 of the 4 prefix-LMs (0, 3, 4, 6).
    decoders = sorted((at_rung[n] for n in family if family[n] == "decoder"), reverse=True)
    assert family[5] == "decoder" and at_rung[5] < decoders[0]
    prefix = sorted((at_rung[n] for n in family if family[n] == "prefix_lm"), reverse=True)
    assert family[6] == "prefix_lm" and at_rung[6] < prefix[1]
    reason = study.trials[5].user_attrs["fail_reason"]
    assert reason == "after 33% of pretraining (held-out loss 5.832)"
    # The rung's value is the held-out likelihood exp(-loss) the reason quotes.
    assert at_rung[5] == pytest.approx(math.exp(-5.832), abs=1e-5)
    # Promoted trials end as they would without the rung (the halving search above: 0.383 and
    # 0.402 after two tasks; same architectures, seeds and budgets).
    assert study.trials[0].intermediate_values[2] == pytest.approx(0.3829, abs=1e-4)
    assert study.trials[1].intermediate_values[2] == pytest.approx(0.4020, abs=1e-4)
