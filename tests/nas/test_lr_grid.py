"""finetune.lr_grid: each (candidate, task) adapts at the best of a few learning rates, chosen on
training examples held out of the adapted subset, never on validation or test."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from lightning_modules.config import TransformerConfig
from lightning_modules.model import build_model
from nas.config.check import check_config
from nas.config.errors import ConfigError
from nas.engine.run import load_suite
from nas.trial import stages
from nas.trial.run import data_fields

ARCH = {"family": "decoder", "n_layer": 1, "d_model": 32, "n_head": 2, "d_ff": 64}


def _setup(tiny_cfg, task="sentiment", extra=()):
    sizes = ["finetune.examples=48", "finetune.lr_choice_examples=24"]
    own = [f"tasks.{t}.examples=null" for t in task.strip("[]").split(",")]
    cfg = tiny_cfg(task=task, extra=[*sizes, *own, *extra])
    check_config(cfg)
    suite = load_suite(cfg)
    arch = TransformerConfig.from_dict({**ARCH, **data_fields(suite)})
    return OmegaConf.to_container(cfg, resolve=True), suite, build_model(arch)


@pytest.mark.parametrize("task", ["sentiment", "qa", "translation"])
def test_held_out_examples_are_training_examples_the_model_never_adapts_from(tiny_cfg, task):
    run, suite, _ = _setup(tiny_cfg, task)
    t = suite.tasks[task]
    adapted = t.sample("train", 48, data_seed=0)
    adapted_ids = {adapted.source(r) for r in range(len(adapted))}
    name = t.held_out(48, 24, data_seed=0)
    held = t.encoded(name)
    assert len(held) == 24
    # Each held-out row is a training example (same references as it encodes for scoring)...
    train = t.splits.train
    held_examples = [train[i] for i in _held_indices(t, 48, 24)]
    assert t._encode(held_examples, train=False).references == held.references
    # ...and none of them is adapted from.
    assert not adapted_ids & set(_held_indices(t, 48, 24))
    assert t.held_out(48, 24, data_seed=0) == name  # the same examples every time
    with pytest.raises(ValueError, match="cannot hold"):
        t.held_out(48, len(train), data_seed=0)


def _held_indices(task, examples, size):
    """The held-out indices worked out from ``sample``'s order, independently of ``held_out``."""
    import torch

    enc = task.encoded("train")
    order = torch.randperm(len(enc), generator=torch.Generator().manual_seed(0)).tolist()
    used = {enc.source(r) for r in order[:examples]}
    rest = [enc.source(r) for r in order[examples:]]
    rest += sorted(set(range(len(task.splits.train))) - {enc.source(r) for r in order})
    return [i for i in rest if i not in used][:size]


def test_choosing_the_rate_never_reads_validation_or_test(tiny_cfg, monkeypatch):
    run, suite, model = _setup(tiny_cfg, extra=["finetune.lr_grid=[1e-4,3e-3]"])
    task = suite.tasks["sentiment"]
    budget = stages.adaptation_budget(run, "sentiment")
    assert budget.lr_grid == (1e-4, 3e-3)
    read = []
    original = type(task).encoded

    def watched(self, split):
        read.append(split)
        return original(self, split)

    monkeypatch.setattr(type(task), "encoded", watched)
    module, lr, scores = stages.choose_lr(model, task, run, seed=1, budget=budget)
    assert set(scores) == {1e-4, 3e-3} and lr == max(scores, key=scores.get)
    assert module.lr == lr
    assert not {"validation", "test"} & set(read), read
    assert any(s.startswith("held_out") for s in read)


def test_the_kept_rate_is_the_held_out_winner_and_is_scored_on_validation(tiny_cfg):
    run, suite, model = _setup(tiny_cfg, extra=["finetune.lr_grid=[1e-5,3e-3]"])
    task = suite.tasks["sentiment"]
    done = stages.adapt(model, task, run, seed=1)
    held = {lr: done.metrics[f"held_out@{lr:g}"] for lr in (1e-5, 3e-3)}
    assert done.metrics["lr"] == max(held, key=held.get)
    assert done.module.eval_split == "validation" and done.curve == [done.metrics["score"]]
    # The kept module, scored again on validation, gives the score the trial records.
    again = stages.finetune(
        model,
        task,
        run,
        1,
        budget=dataclasses.replace(
            stages.adaptation_budget(run, "sentiment"), lr=done.metrics["lr"], lr_grid=()
        ),
    )[0]
    assert again.curve[-1][1]["score"] == pytest.approx(done.metrics["score"])
    assert done.steps == 2 * stages.adaptation_budget(run, "sentiment").steps


def test_a_task_with_its_own_rate_keeps_it(tiny_cfg):
    run, _, _ = _setup(tiny_cfg, extra=["finetune.lr_grid=[1e-3,3e-3]", "tasks.sentiment.lr=5e-4"])
    budget = stages.adaptation_budget(run, "sentiment")
    assert budget.lr_grid == () and budget.lr == 5e-4


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["finetune.lr_grid=[1e-3,0]"], "finetune.lr_grid"),
        (["finetune.lr_grid=[1e-3]", "objective.adaptability=auc"], "adaptability=auc"),
        (
            ["finetune.lr_grid=[1e-3]", "finetune.examples=null", "tasks.sentiment.examples=null"],
            "tasks.sentiment.examples",
        ),
    ],
)
def test_bad_grid_settings_are_one_line_errors(tiny_cfg, extra, says):
    cfg = tiny_cfg(task="sentiment", extra=extra)
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        check_config(cfg)


def test_a_search_whose_tasks_cannot_spare_examples_stops_before_its_first_trial(tiny_cfg):
    from nas.engine.run import run_search

    extra = ["finetune.lr_grid=[1e-3,3e-3]", "finetune.lr_choice_examples=100000", "n_trials=1"]
    with pytest.raises(ConfigError, match="task 'sentiment'.*lr_choice_examples"):
        run_search(tiny_cfg(task="sentiment", extra=extra))
