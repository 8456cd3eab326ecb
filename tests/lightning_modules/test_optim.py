"""The optimizer helpers: divergence check and the choice of AdamW implementation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_modules.optim import (
    DivergedError,
    adamw_with_schedule,
    can_fuse,
    check_loss,
    logs_steps,
)


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


@pytest.mark.parametrize(
    ("logger", "progress_bar", "expected"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
def test_per_step_loss_is_logged_only_where_it_can_go(tmp_path, logger, progress_bar, expected):
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    seen = []

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            seen.append(logs_steps(self))
            return self.lin(batch).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl.Trainer(
        max_steps=1,
        logger=CSVLogger(tmp_path) if logger else False,
        enable_progress_bar=progress_bar,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Probe(), torch.utils.data.DataLoader(torch.randn(4, 2), batch_size=2))
    assert seen == [expected]
    assert logs_steps(nn.Linear(1, 1)) is False  # not attached to a trainer
