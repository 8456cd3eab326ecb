"""The optimizer helpers: divergence check and the choice of AdamW implementation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_modules.optim import DivergedError, adamw_with_schedule, can_fuse, check_loss


def test_check_loss_returns_the_value_it_read():
    assert check_loss(torch.tensor(2.5), 10.0, "pretrain", 3) == 2.5


@pytest.mark.parametrize("value", [11.0, math.nan, math.inf])
def test_check_loss_raises_on_divergence(value):
    with pytest.raises(DivergedError, match="pretrain loss .* at step 3 \\(limit 10\\)"):
        check_loss(torch.tensor(value), 10.0, "pretrain", 3)


def test_a_plain_module_steps_with_fused_adamw_and_the_same_update():
    torch.manual_seed(0)
    # No parameter is named *emb*, so every matrix decays (the embedding included).
    a = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.LayerNorm(3))
    b = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3), nn.LayerNorm(3))
    b.load_state_dict(a.state_dict())
    assert can_fuse(a)  # not attached to a Lightning trainer: full precision
    fused = adamw_with_schedule(a, 1e-2, 0.1, 10)["optimizer"]
    loop = torch.optim.AdamW(  # the same groups: matrices decay, vectors do not
        [
            {"params": [p for p in b.parameters() if p.dim() >= 2]},
            {"params": [p for p in b.parameters() if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=1e-2,  # warm-up of max(1, 10 * 0.1) = 1 step: factor 1 at step 0
        betas=(0.9, 0.95),
        weight_decay=0.1,
        foreach=False,
    )
    assert fused.defaults["fused"] is True
    x = torch.tensor([[1, 2, 3]])
    for model, opt in ((a, fused), (b, loop)):
        model(x).sum().backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
