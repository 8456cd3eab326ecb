"""The trial: adaptability maths and a real tiny architecture end to end."""

from __future__ import annotations

import math

import pytest

from lightning_modules.config import TransformerConfig
from nas.config.nodes import plain
from nas.engine.run import load_suite
from nas.trial.hooks import ScoreTest, TrialHook
from nas.trial.resources import prepare_process
from nas.trial.run import adaptability, data_fields, run_trial
from nas.trial.stages import adaptation_budget


class Reports(TrialHook):
    """Keeps what ``run_trial`` reports after each task."""

    def __init__(self):
        self.reports: list[tuple] = []

    def on_report(self, trial, step, value, scores):
        self.reports.append((step, value, scores))


def test_adaptability_methods_by_hand():
    scores = {"a": 0.2, "b": 0.8}
    curves = {"a": [0.0, 0.2], "b": [0.4, 0.8]}
    assert adaptability(scores, curves, "mean") == pytest.approx(0.5)
    assert adaptability(scores, curves, "worst") == pytest.approx(0.2)
    # auc: mean over tasks of the mean of each curve = (0.1 + 0.6) / 2
    assert adaptability(scores, curves, "auc") == pytest.approx(0.35)
    with pytest.raises(ValueError, match="median"):
        adaptability(scores, curves, "median")


def test_a_trial_runs_every_stage_and_is_reproducible(tiny_cfg):
    extra = ["finetune.evals=2", "objective.adaptability=auc"]
    cfg = tiny_cfg(task="[sentiment,qa]", extra=extra)
    prepare_process()
    suite = load_suite(cfg)
    arch = TransformerConfig(
        family="prefix_lm", n_layer=1, d_model=32, n_head=2, d_ff=64, **data_fields(suite)
    )
    hook = Reports()
    first = run_trial(arch, suite, plain(cfg), [hook, ScoreTest()], seed=3)
    second = run_trial(arch, suite, plain(cfg), seed=3)
    reports = hook.reports
    assert list(first.task_scores) == ["sentiment", "qa"]  # the order of task=[...]
    assert [r[0] for r in reports] == [1, 2]
    assert reports[0][2] == {"sentiment": first.task_scores["sentiment"]}
    for name in ("sentiment", "qa"):
        assert len(first.curves[name]) == 2
        assert 0.0 <= first.task_scores[name] <= 1.0
        assert set(first.test_metrics[name]) >= {"score"}
    assert first.steps["pretrain"] == 4096 // (16 * 32)
    assert math.isfinite(first.pretrain_val_loss)
    assert first.adaptability == pytest.approx(
        sum(sum(c) / len(c) for c in first.curves.values()) / 2
    )
    assert second.task_scores == first.task_scores  # same seed, same CPU result
    assert not second.test_metrics


def _tiny_arch(suite) -> TransformerConfig:
    return TransformerConfig(
        family="decoder", n_layer=1, d_model=32, n_head=2, d_ff=64, **data_fields(suite)
    )


def test_examples_budget_adapts_from_a_fixed_subset(tiny_cfg):
    cfg = tiny_cfg(task="sentiment", extra=["tasks.sentiment.examples=16"])
    prepare_process()
    suite = load_suite(cfg)
    task = suite.tasks["sentiment"]
    loader = task.loader("train", 8, shuffle=True, seed=1, examples=16)
    seen = {int(i) for batch in loader for i in batch["index"]}
    assert len(seen) == 16  # rows of the 16-example subset, not of the 96-example split
    sub16, sub8 = task.sample("train", 16), task.sample("train", 8)
    rows16 = {tuple(r.tolist()) for r in sub16.tensors["input_ids"]}
    # Smaller budgets are subsets of larger ones; the same budget is the same subset.
    assert {tuple(r.tolist()) for r in sub8.tensors["input_ids"]} <= rows16
    assert task.sample("train", 16) is sub16
    assert task.sample("train", 10_000) is task.encoded("train")


def test_an_example_budget_changes_what_a_task_learns(tiny_cfg):
    cfg = tiny_cfg(task="ner", extra=["tasks.ner.examples=4"])
    prepare_process()
    suite = load_suite(cfg)
    few = run_trial(_tiny_arch(suite), suite, plain(cfg), seed=0)
    everything = plain(cfg)
    everything["tasks"]["ner"]["examples"] = None
    full = run_trial(_tiny_arch(suite), suite, everything, seed=0)
    assert few.steps["ner"] == full.steps["ner"] == 8  # same steps, other data
    assert few.task_metrics["ner"] != full.task_metrics["ner"]


def test_no_pretraining_adapts_from_the_initialised_backbone(tiny_cfg):
    cfg = plain(tiny_cfg(task="sentiment", extra=["pretrain.tokens=0"]))
    prepare_process()
    suite = load_suite(tiny_cfg(task="sentiment"))
    result = run_trial(_tiny_arch(suite), suite, cfg, seed=0)
    assert result.steps["pretrain"] == 0
    assert math.isnan(result.pretrain_val_loss)
    assert 0.0 <= result.task_scores["sentiment"] <= 1.0


@pytest.mark.slow  # two trials, 10 s
def test_an_encoder_decoder_gains_from_its_own_pretraining(tiny_cfg):
    """The seed's family adapts better after its denoising pretraining than from its init.

    Translation from 512 pairs for 100 steps, after 262k pretraining tokens or none; seeds 0-2
    gave +0.053, +0.064 and +0.060 chrF (0.097-0.108 against 0.038-0.048); the bound leaves room.
    """
    task = [
        "source.n_train=512", "source.n_val=64", "source.n_test=64", "max_len=32",
        "max_new_tokens=12", "steps=null", "lr=null",
    ]  # fmt: skip
    extra = [
        "data.corpus.n_sentences=4000",
        "pretrain.tokens=262144",
        "finetune.steps=100",
        *[f"tasks.translation.{o}" for o in task],
    ]
    cfg = tiny_cfg(task="translation", extra=extra)
    prepare_process()
    suite = load_suite(cfg)
    arch = TransformerConfig(
        family="encoder_decoder", n_layer=1, n_dec_layer=1, d_model=32, n_head=2, d_ff=[64, 64],
        dropout=0.0, vocab_size=suite.vocab_size, max_seq_len=64,
    )  # fmt: skip
    run = plain(cfg)
    pretrained = run_trial(arch, suite, run, seed=0).task_scores["translation"]
    run["pretrain"]["tokens"] = 0
    untrained = run_trial(arch, suite, run, seed=0).task_scores["translation"]
    assert pretrained - untrained >= 0.03, (pretrained, untrained)


def test_curve_scores_the_mean_over_example_budgets(tiny_cfg):
    extra = ["objective.adaptability=curve", "finetune.curve=[8,32]"]
    cfg = plain(tiny_cfg(task="[sentiment,ner]", extra=extra))
    prepare_process()
    suite = load_suite(tiny_cfg(task="[sentiment,ner]"))
    result = run_trial(_tiny_arch(suite), suite, cfg, seed=0)
    for name in ("sentiment", "ner"):
        points = result.data_curves[name]
        assert sorted(points) == [8, 32]
        assert result.task_scores[name] == pytest.approx(sum(points.values()) / 2)
        assert result.task_metrics[name]["score@8"] == points[8]
        assert result.steps[name] == 2 * 8  # one adaptation of 8 steps per budget
    assert result.adaptability == pytest.approx(sum(result.task_scores.values()) / 2)
    mean = {**cfg, "objective": {**cfg["objective"], "adaptability": "mean"}}
    single = run_trial(_tiny_arch(suite), suite, mean)
    assert single.data_curves == {}


def test_curve_without_budgets_is_an_error(tiny_cfg):
    cfg = plain(tiny_cfg(task="sentiment", extra=["objective.adaptability=curve"]))
    suite = load_suite(tiny_cfg(task="sentiment"))
    with pytest.raises(Exception, match="finetune.curve"):
        run_trial(_tiny_arch(suite), suite, cfg, seed=0)


def test_a_task_budget_inherits_only_what_the_task_leaves_null(tiny_cfg):
    extra = ["tasks.ner.steps=5", "tasks.ner.lr=0.01", "finetune.examples=40"]
    cfg = plain(tiny_cfg(task="[sentiment,ner]", extra=extra))
    cfg["tasks"]["sentiment"]["examples"] = None
    ner, sentiment = adaptation_budget(cfg, "ner"), adaptation_budget(cfg, "sentiment")
    f = cfg["finetune"]
    assert (ner.steps, ner.lr, ner.batch_size) == (5, 0.01, f["batch_size"])
    assert (sentiment.steps, sentiment.lr) == (f["steps"], f["lr"])
    assert sentiment.examples == 40  # null: finetune's
    assert ner.examples == cfg["tasks"]["ner"]["examples"]  # the task's own
    assert ner.eval_batch_size == f["eval_batch_size"] and ner.curve == ()
    curve = {**cfg, "objective": {**cfg["objective"], "adaptability": "curve"}}
    curve["finetune"] = {**f, "curve": [32, 8]}
    assert adaptation_budget(curve, "ner").curve == (8, 32)  # smallest first


class Rungs(TrialHook):
    """Asks for the held-out loss at fractions of pretraining; stops the trial at ``stop_at``."""

    def __init__(self, at: tuple[float, ...], stop_at: float | None = None):
        self.at, self.stop_at = at, stop_at
        self.seen: list[tuple[float, float]] = []

    def pretrain_rungs(self, trial):
        return self.at

    def on_pretrain_rung(self, trial, fraction, val_loss):
        self.seen.append((fraction, val_loss))
        if fraction == self.stop_at:
            import optuna

            raise optuna.TrialPruned("stopped at the rung")


def test_rungs_inside_pretraining_measure_without_changing_the_trial(tiny_cfg):
    # 4096 tokens of 16 x 32: 8 pretraining steps; rungs at 1/4 and 1/2 are steps 2 and 4.
    composed = tiny_cfg(task="[ner]")
    prepare_process()
    suite, cfg = load_suite(composed), plain(composed)
    arch = _tiny_arch(suite)
    hook = Rungs((0.25, 0.5))
    watched = run_trial(arch, suite, cfg, [hook], seed=5)
    plain_run = run_trial(arch, suite, cfg, seed=5)
    assert [f for f, _ in hook.seen] == [0.25, 0.5]
    assert watched.pretrain_rungs == dict(hook.seen)
    first, second = (loss for _, loss in hook.seen)
    assert second < first  # the model learns between the rungs
    # A promoted trial goes on from where it was measured: the very same model and scores.
    assert watched.pretrain_val_loss == plain_run.pretrain_val_loss
    assert watched.task_scores == plain_run.task_scores
    assert not plain_run.pretrain_rungs


def test_a_rung_loss_is_the_validation_loss_at_that_step(tiny_cfg):
    composed = tiny_cfg(task="[ner]")
    prepare_process()
    suite, cfg = load_suite(composed), plain(composed)
    arch = _tiny_arch(suite)
    from nas.trial.stages import pretrain

    hook = Rungs((0.5,))
    model, final_loss, steps = pretrain(
        arch,
        suite,
        cfg,
        5,
        rungs=(0.5, 0.999),
        on_rung=lambda f, v: hook.on_pretrain_rung(None, f, v),
    )
    assert steps == 8 and [f for f, _ in hook.seen] == [0.5]  # 0.999 rounds to the last step
    # After the fit, the same measurement on the final model gives the stage's validation loss.
    from lightning_modules.pretrain import PretrainModule

    module = PretrainModule(model, suite.special_ids)
    assert module.held_out_loss(suite.val_blocks, 16) == pytest.approx(final_loss, rel=1e-6)


def test_pruning_at_a_rung_stops_pretraining_there(tiny_cfg):
    import optuna

    composed = tiny_cfg(task="[ner]")
    prepare_process()
    suite, cfg = load_suite(composed), plain(composed)
    hook = Rungs((0.25, 0.5), stop_at=0.25)
    with pytest.raises(optuna.TrialPruned, match="stopped at the rung"):
        run_trial(_tiny_arch(suite), suite, cfg, [hook], seed=5)
    assert [f for f, _ in hook.seen] == [0.25]  # never reached the second rung


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, 1.5])
def test_rung_fractions_lie_inside_pretraining(bad):
    from nas.trial.stages import rung_steps

    with pytest.raises(ValueError, match=f"pretraining rung {bad!r} must be a fraction"):
        rung_steps([bad], 8)
    assert rung_steps([0.25, 0.5, 0.99], 8) == {2: 0.25, 4: 0.5}
