"""``finetune.data_seed``: which few examples a task adapts from."""

from __future__ import annotations

import torch

from nas.engine.run import load_suite
from nas.trial.stages import adaptation_budget


def _draw(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def test_a_data_seed_draws_another_subset_and_each_seed_nests_its_budgets(tiny_cfg):
    cfg = tiny_cfg(task="sentiment", extra=["finetune.data_seed=3"])
    task = load_suite(cfg).tasks["sentiment"]
    full = task.encoded("train")
    rows = full.tensors["input_ids"]
    zero, three = task.sample("train", 32), task.sample("train", 32, data_seed=3)
    # data_seed 0 is the draw every search has always made: randperm under manual_seed(0)
    assert torch.equal(zero.tensors["input_ids"], rows[_draw(len(full), 0)[:32]])
    assert torch.equal(three.tensors["input_ids"], rows[_draw(len(full), 3)[:32]])
    assert not torch.equal(zero.tensors["input_ids"], three.tensors["input_ids"])
    # a larger budget of the same data_seed starts with the smaller one's examples
    more = task.sample("train", 64, data_seed=3).tensors["input_ids"]
    assert torch.equal(more[:32], three.tensors["input_ids"])
    # the run config carries it to the adaptation budget
    assert adaptation_budget(cfg, "sentiment").data_seed == 3
