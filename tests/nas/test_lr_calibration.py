"""finetune.lr_choice=family: one learning rate per (family, task), chosen on the grid by the
family's reference design (else its first trial) and reused by every later candidate."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState as State

from nas.config.check import check_config
from nas.config.errors import ConfigError
from nas.engine.run import run_search
from nas.study import lr_calibration as cal
from nas.study.kept_weights import trial_weights_dir
from nas.trial.record import LR_FROM, REFERENCE, REPEAT, REPEAT_OF, TrialRecord


def _trial(number, family, rates=None, state=State.COMPLETE, **attrs):
    metrics = {t: {"score": 0.5, "lr": r} for t, r in (rates or {}).items()}
    t = optuna.trial.create_trial(
        state=state,
        value=0.5 if state == State.COMPLETE else None,
        user_attrs={"architecture": {"family": family}, "task_metrics": metrics, **attrs},
    )
    t.number = number
    return t


def test_the_earliest_reference_of_the_family_calibrates_it_before_any_other_trial():
    trials = [
        _trial(0, "decoder", {"qa": 1e-3}),  # a sampled decoder, earliest
        _trial(1, "encoder", {"qa": 3e-4}),  # another family
        _trial(2, "decoder", {"qa": 3e-3}, **{REFERENCE: "llama"}),
        _trial(3, "decoder", {"qa": 1e-4}, **{REFERENCE: "gpt2"}),
    ]
    found = cal.calibration(trials, "decoder")
    assert (found.trial, found.reference, found.rates) == (2, True, {"qa": 3e-3})
    assert cal.calibration(trials, "encoder").rates == {"qa": 3e-4}
    assert cal.calibration(trials, "prefix_lm") is None


def test_without_a_reference_the_first_finished_chooser_calibrates():
    trials = [
        _trial(0, "decoder", {"qa": 1e-3}, state=State.PRUNED),  # never finished its tasks
        _trial(1, "decoder"),  # adapted at fixed rates: chose nothing
        _trial(2, "decoder", {"qa": 3e-3}, **{REPEAT_OF: 9, REPEAT: 1}),  # a finalist's repeat
        _trial(4, "decoder", {"qa": 1e-4}),
        _trial(3, "decoder", {"qa": 3e-3, "ner": 1e-3}),
    ]
    found = cal.calibration(trials, "decoder")
    assert (found.trial, found.reference, found.rates) == (3, False, {"qa": 3e-3, "ner": 1e-3})


def test_calibrated_rates_become_the_tasks_rates_and_a_task_rate_of_its_own_wins():
    cfg = {
        "finetune": {"lr_choice": "family", "lr_grid": [1e-3, 3e-3], "lr": 1e-3},
        "tasks": {"qa": {"lr": None}, "ner": {"lr": 5e-4}},
    }
    trials = [_trial(0, "decoder", {"qa": 3e-3, "ner": 1e-3})]
    out, found = cal.calibrated(cfg, trials, "decoder", reference=False)
    assert found.trial == 0
    assert out["tasks"] == {"qa": {"lr": 3e-3}, "ner": {"lr": 5e-4}}
    assert cfg["tasks"]["qa"]["lr"] is None  # the search's config is not changed
    # A reference chooses itself; so does every trial under lr_choice=candidate.
    assert cal.calibrated(cfg, trials, "decoder", reference=True)[1] is None
    per_candidate = {**cfg, "finetune": {**cfg["finetune"], "lr_choice": "candidate"}}
    assert cal.calibrated(per_candidate, trials, "decoder", reference=False)[1] is None
    assert cal.calibrated(cfg, trials, "encoder", reference=False)[1] is None  # none yet


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["finetune.lr_choice=family"], "finetune.lr_choice=family: needs finetune.lr_grid"),
        (["finetune.lr_choice=everyone"], "finetune.lr_choice"),
    ],
)
def test_bad_choice_settings_are_one_line_errors(tiny_cfg, extra, says):
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")) as err:
        check_config(tiny_cfg(task="sentiment", extra=extra))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_a_search_calibrates_each_family_once_and_reuses_its_rates(tiny_cfg, tmp_path):
    extra = [
        "references.designs=[gpt2,llama]",
        "finetune.lr_grid=[1e-4,3e-3]",
        "finetune.lr_choice=family",
        "finetune.examples=48",
        "finetune.lr_choice_examples=24",
        "tasks.sentiment.examples=null",
        "n_trials=6",
    ]
    result = run_search(tiny_cfg(task="sentiment", extra=extra))
    steps = 8  # finetune.steps of the tiny config (tests/conftest.py)
    done = [t for t in result.study.trials if t.state == State.COMPLETE]
    assert len(done) >= 6
    seen: dict[str, int] = {}  # family -> the trial that calibrated it
    reused = 0
    for t in sorted(done, key=lambda t: t.number):
        r = TrialRecord.from_trial(t)
        family = r.architecture["family"]
        chose = "lr" in r.task_metrics["sentiment"]
        if REFERENCE in t.user_attrs or family not in seen:
            # A reference, or the first of its family: it chose on the grid (two adaptations).
            assert chose and r.lr_from is None and r.steps["sentiment"] == 2 * steps, t.number
            seen.setdefault(family, t.number)  # references come first: trials 0 and 1
        else:
            # Every later candidate of the family adapts once, at its calibrator's rate.
            assert not chose and t.user_attrs[LR_FROM] == seen[family], t.number
            assert r.steps["sentiment"] == steps
            reused += 1
    assert seen["decoder"] == 0  # GPT-2-like, the first reference, calibrates the decoders
    assert reused >= 1
    # A calibrated trial records the rates it adapted at; the retrain command an export writes
    # for it adapts at them (finetune.lr_grid would choose again otherwise).
    from nas.exporting.pipeline import _no_weights

    numbers = {t.number: t for t in done}
    kept = 0
    for t in done:
        r = TrialRecord.from_trial(t)
        if r.lr_from is not None:
            chosen = TrialRecord.from_trial(numbers[r.lr_from]).task_metrics["sentiment"]["lr"]
            assert r.lr_rates == {"sentiment": chosen}
            said = _no_weights(t, result.study, result.folder, tmp_path / f"arch_{t.number}")
            assert f"tasks.sentiment.lr={chosen}" in said, said
            meta = trial_weights_dir(result.folder, t.number) / "meta.json"
            if meta.is_file():  # kept weights: their run config adapts at the rates too
                config = json.loads(meta.read_text())["config"]
                assert config["tasks"]["sentiment"]["lr"] == chosen
                kept += 1
    assert kept >= 1
