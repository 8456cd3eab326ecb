"""AdamW with linear warm-up and cosine decay, shared by pretraining and fine-tuning."""

from __future__ import annotations

import math

import torch
from torch import nn


class DivergedError(RuntimeError):
    """The training loss became NaN/inf or exceeded its divergence bound; the trial is hopeless."""


def check_loss(loss: torch.Tensor, limit: float, stage: str, step: int) -> None:
    """Raise ``DivergedError`` when ``loss`` is not finite or above ``limit``."""
    value = float(loss.detach())
    if not math.isfinite(value) or value > limit:
        raise DivergedError(f"{stage} loss {value:.4g} at step {step} (limit {limit:.3g})")


def adamw_with_schedule(
    module: nn.Module,
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup_frac: float = 0.1,
    min_lr_frac: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
) -> dict:
    """Lightning's ``configure_optimizers`` return value.

    Weight decay applies to matrices only: decaying norm gains and embeddings' rows that a short
    run barely touches only adds noise.
    """
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=betas,
    )
    warmup = max(1, int(total_steps * warmup_frac))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
