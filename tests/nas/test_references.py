"""Reference designs inside every search: sized in the space, queued once, always finalists,
never pruned, and the verdict of the winner against the best of them on test."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml

from lightning_modules.config import TransformerConfig
from nas.config.check import check_config
from nas.config.errors import ConfigError
from nas.engine.run import run_search
from nas.study import finalists as fin
from nas.study import references as R
from nas.trial.record import REFERENCE
from search_spaces import SearchSpace, load_space
from tests.nas.studies import add_finished
from tests.nas.test_tracking import wandb_runs

State = optuna.trial.TrialState
DATA = {"vocab_size": 1024, "max_seq_len": 128}


# ---- sizing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gpt2", "llama", "t5", "bert"])
def test_each_design_is_a_point_of_the_space_within_tolerance_of_the_target(name):
    space = load_space("small")
    ref = R.express(name, space, DATA, target=400_000, tolerance=0.15)
    assert isinstance(ref, R.Reference), ref
    arch = TransformerConfig.from_dict(ref.arch)
    assert abs(arch.num_params() / 400_000 - 1) <= 0.15
    assert ref.n_params == arch.num_params()
    for knob, value in R.DESIGNS[name].knobs.items():
        if knob not in R.DESIGNS[name].soft:
            assert getattr(arch, knob) == value, knob
    # The queued parameters make the space sample exactly this architecture.
    assert space.params_to_arch(ref.params, **DATA) == ref.arch


def test_the_designs_keep_their_habits_in_the_default_space():
    space = load_space("small")
    llama = TransformerConfig.from_dict(R.express("llama", space, DATA, 400_000).arch)
    t5 = TransformerConfig.from_dict(R.express("t5", space, DATA, 400_000).arch)
    gpt2 = TransformerConfig.from_dict(R.express("gpt2", space, DATA, 400_000).arch)
    assert 1 < llama.n_kv_head < llama.n_head  # grouped-query attention
    assert t5.n_layer == t5.n_dec_layer
    assert gpt2.n_layer >= 2 and gpt2.n_kv_head in (None, gpt2.n_head)
    assert gpt2.d_ff == [4 * gpt2.d_model] * gpt2.n_layer


def test_a_design_the_space_cannot_express_is_skipped_naming_the_knob():
    space = load_space("small").restrict("pos", ["rope", "alibi"])
    refs, skipped = R.build(space, DATA, designs=["gpt2", "llama"], size=400_000)
    assert [r.name for r in refs] == ["llama"]
    assert skipped == {"gpt2": "GPT-2-like: the space cannot take pos=learned"}


def test_a_soft_knob_is_given_up_with_a_note():
    space = load_space("small")  # pre-norm only: BERT's post-norm is soft
    ref = R.express("bert", space, DATA, 400_000)
    assert ref.arch["norm_position"] == "pre"
    assert ref.notes == ["norm_position=post not in the space: takes the space's value"]


def test_auto_takes_the_families_the_space_samples():
    small = load_space("small")
    assert R.wanted("auto", small) == ["gpt2", "llama", "t5", "bert"]
    decoders = small.restrict("family", ["decoder", "prefix_lm"])
    assert R.wanted("auto", decoders) == ["gpt2", "llama"]
    assert R.wanted([], small) == []


def test_the_median_target_is_the_median_of_seeded_draws():
    space = SearchSpace.from_dict(
        {
            "name": "two",
            "fixed": {"family": "decoder", "n_layer": 1, "n_head": 2, "d_ff": 64},
            "params": {"d_model": {"type": "categorical", "choices": [32, 64]}},
        }
    )
    small = TransformerConfig(**DATA, family="decoder", n_layer=1, n_head=2, d_ff=64, d_model=32)
    big = TransformerConfig(**DATA, family="decoder", n_layer=1, n_head=2, d_ff=64, d_model=64)
    m = R.median_params(space, DATA, draws=5)
    assert m in (small.num_params(), big.num_params())  # an odd count: one of the two
    assert R.median_params(space, DATA, draws=5) == m  # seeded


# ---- the settings ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, message",
    [
        ("references.designs=[gpt3]", "references.designs: 'gpt3' is not one of gpt2, llama"),
        ("references.size=-5", "references.size=-5 must be median or a parameter count"),
        ("references.designs=llama", "references.designs='llama' must be auto or a list"),
    ],
)
def test_bad_settings_fail_in_one_line_naming_the_key(tiny_cfg, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        check_config(tiny_cfg(task="qa", extra=[override]))


# ---- queued once, finalists, never pruned ----------------------------------------------------
def test_references_are_queued_first_and_never_again():
    study = optuna.create_study(direction="maximize")
    refs, skipped = R.build(load_space("small"), DATA, designs=["gpt2", "llama"], size=400_000)
    assert R.enqueue(study, refs, skipped)
    waiting = study.get_trials(states=(State.WAITING,))
    assert [t.user_attrs[REFERENCE] for t in waiting] == ["gpt2", "llama"]
    assert not R.enqueue(study, refs, skipped)  # a resume: nothing more
    assert len(study.trials) == 2
    assert study.user_attrs[R.STUDY_ATTR]["skipped"] == {}


def test_the_best_reference_is_always_a_finalist_and_takes_no_top_k_place():
    study = optuna.create_study(direction="maximize")
    for value, ref in [(0.9, "gpt2"), (0.3, "llama"), (0.5, None), (0.6, None), (0.2, None)]:
        add_finished(study, value, ref)
    chosen = [t.number for t in fin.pick_finalists(study.trials, top_k=2)]
    assert chosen == [3, 2, 0]  # the top 2 searched, then the best reference


def test_a_reference_reports_but_is_never_pruned(tiny_cfg):
    from nas.engine.optuna_objective import _Watch

    class Trial:
        def __init__(self, attrs):
            self.user_attrs = attrs

        def should_prune(self):
            return True

    watch = _Watch.__new__(_Watch)
    assert watch._prunable(Trial({}))
    assert not watch._prunable(Trial({REFERENCE: "llama"}))


# ---- the verdict -----------------------------------------------------------------------------
def test_t_interval_of_paired_differences_worked_by_hand():
    # diffs 0.01, 0.03, 0.02: mean 0.02; sd = sqrt(((-.01)^2 + .01^2 + 0) / 2) = 0.01;
    # se = 0.01 / sqrt(3) = 0.0057735; t(0.975, df 2) = 4.302653; half = 0.0248414.
    out = R.paired_interval([0.01, 0.03, 0.02])
    assert out["df"] == 2
    assert out["mean"] == pytest.approx(0.02)
    assert out["sd"] == pytest.approx(0.01)
    assert out["low"] == pytest.approx(0.02 - 0.0248414, abs=1e-6)
    assert out["high"] == pytest.approx(0.02 + 0.0248414, abs=1e-6)
    assert R.t_quantile(4) == pytest.approx(2.776445, abs=1e-6)
    assert R.paired_interval([0.5])["low"] is None


def _study_with_finalists(test_searched, test_ref, val_searched=0.6, val_ref=0.5):
    """Trial 0: the Llama-like reference; trial 1: a searched one; each with 2 repeats."""
    study = optuna.create_study(direction="maximize")
    fin.FinalistSettings(top_k=1, seeds=2).record(study)
    add_finished(study, val_ref, "llama", test_ref[0])
    add_finished(study, val_searched, None, test_searched[0])
    for r in (1, 2):
        add_finished(study, val_ref, None, test_ref[r], of=0, r=r)
        add_finished(study, val_searched, None, test_searched[r], of=1, r=r)
    return study


def test_verdict_the_search_beats_the_reference():
    # test differences 0.05, 0.07, 0.06: mean 0.06, sd 0.01, half-width 0.0248414 (as above)
    study = _study_with_finalists([0.55, 0.57, 0.56], [0.50, 0.50, 0.50])
    doc = R.verdict(fin.ranked(study))
    assert doc["winner"] == 1 and doc["reference"] == "llama" and not doc["winner_is_reference"]
    assert doc["diff_mean"] == pytest.approx(0.06)
    assert doc["diff_low"] == pytest.approx(0.0351586, abs=1e-6)
    assert doc["text"] == (
        "beats Llama-like by +0.060 [+0.035, +0.085] (95% t interval, on test, 3 paired seeds)"
    )


def test_verdict_a_tie_and_a_reference_that_wins():
    # differences 0.02, -0.02, 0.00: mean 0, sd 0.02, half = 4.302653 * 0.02 / sqrt(3) = 0.049683
    tie = R.verdict(fin.ranked(_study_with_finalists([0.52, 0.48, 0.50], [0.50, 0.50, 0.50])))
    assert tie["text"].startswith("ties Llama-like: +0.000 [-0.050, +0.050]")
    # The reference has the best validation mean: it is the winner.
    lost = _study_with_finalists([0.40, 0.41, 0.42], [0.50, 0.50, 0.50], 0.4, 0.7)
    doc = R.verdict(fin.ranked(lost))
    assert doc["winner_is_reference"] and doc["searched"] == 1
    assert doc["text"].startswith("Llama-like wins; the search found nothing better")
    assert doc["diff_mean"] == pytest.approx(-0.09)


def test_no_reference_no_verdict():
    study = optuna.create_study(direction="maximize")
    add_finished(study, 0.5)
    assert R.verdict(fin.ranked(study)) is None
    assert R.record_verdict(study) is None and R.VERDICT_ATTR not in study.user_attrs


# ---- end to end ------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_search_runs_its_references_first_once_and_states_its_verdict(
    tiny_cfg, tmp_path, offline_wandb
):
    extra = ["references.designs=[gpt2,llama]", "finalists.top_k=1", "finalists.seeds=1"]
    result = run_search(tiny_cfg(task="qa", extra=[*extra, "n_trials=3", "logger=wandb"]))
    trials = result.study.trials
    refs = [t for t in trials if REFERENCE in t.user_attrs]
    assert [t.user_attrs[REFERENCE] for t in refs] == ["gpt2", "llama"]
    assert [t.number for t in refs] == [0, 1]
    assert all(t.state == State.COMPLETE and t.user_attrs.get("test_metrics") for t in refs)
    said = result.study.user_attrs[R.VERDICT_ATTR]
    best = yaml.safe_load(result.files["best_architecture"].read_text())
    assert best["verdict"] == said and said["diff_n"] == 2
    assert not math.isnan(said["diff_mean"])
    rows = result.files["leaderboard"].read_text().splitlines()
    assert rows[0].split(",")[-2] == "reference"
    # W&B: each reference's run says which design it is; the study run holds the verdict.
    runs = wandb_runs(tmp_path)
    assert runs["trial-1"]["summary"]["reference"] == "Llama-like"
    assert "reference" not in runs["trial-2"]["summary"]
    assert runs["study"]["summary"]["verdict/text"] == said["text"]
    # A resume with a larger budget runs one more sampled trial and no reference again.
    again = run_search(tiny_cfg(task="qa", extra=[*extra, "n_trials=4"]))
    assert sum(REFERENCE in t.user_attrs for t in again.study.trials) == 2
    assert again.ran >= 1
