"""Brief language-model pretraining of one candidate, as a Lightning module."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from lightning_modules.objectives import pretraining_loss
from lightning_modules.optim import adamw_with_schedule, check_loss, logs_steps


class PretrainModule(pl.LightningModule):
    """Pretrains a ``LanguageModel`` with the objective its family calls for.

    Args:
        model: The language model (``build_model(cfg)``).
        special_ids: ``{"mask": id of [MASK], "n_special": number of special tokens}``.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay on matrices.
        total_steps: Optimizer steps of the run (for the schedule).
        warmup_frac: Share of steps spent warming up.
        diverge_factor: The run diverged when the loss exceeds this many times ``ln(vocab)``
            (a uniform guess); NaN/inf always counts.
        encoder_mlm: An ``encoder_decoder`` adds masked LM on its encoder to text infilling
            (``pretraining_loss``); the other families ignore it.
    """

    def __init__(
        self,
        model,
        special_ids: dict[str, int],
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        total_steps: int = 1000,
        warmup_frac: float = 0.1,
        diverge_factor: float = 3.0,
        encoder_mlm: bool = False,
    ):
        super().__init__()
        self.model = model
        self.special_ids = special_ids
        self.encoder_mlm = encoder_mlm
        self.lr, self.weight_decay, self.total_steps = lr, weight_decay, total_steps
        self.warmup_frac = warmup_frac
        self.loss_limit = diverge_factor * math.log(model.cfg.vocab_size)
        self.train_losses: list[float] = []
        self.val_losses: list[tuple[int, float]] = []
        self._val_sum = 0.0
        self._val_n = 0
        self._log_steps = True  # set for each fit in on_train_start

    def _loss(self, batch, generator=None):
        return pretraining_loss(
            self.model, batch, self.special_ids, generator=generator, encoder_mlm=self.encoder_mlm
        )

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        # One read of the value per step (a device sync on a GPU), shared by both uses.
        self.train_losses.append(check_loss(loss, self.loss_limit, "pretrain", self.global_step))
        if self._log_steps:
            self.log("pretrain/loss", loss, prog_bar=True)
        return loss

    def on_train_start(self) -> None:
        self._log_steps = logs_steps(self)

    def on_validation_epoch_start(self) -> None:
        self._val_sum, self._val_n = 0.0, 0
        # The same masks and prefix lengths for every candidate: val losses stay comparable.
        self._val_gen = torch.Generator().manual_seed(1234)

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch, self._val_gen)
        self._val_sum += float(loss) * batch.shape[0]
        self._val_n += batch.shape[0]

    @torch.no_grad()
    def held_out_loss(self, blocks: torch.Tensor, batch_size: int) -> float:
        """The validation loss on ``blocks`` now, in the middle of a fit (a pruning rung).

        The same number a validation pass would give (same batches, the same seeded masks and
        prefix lengths), computed without a DataLoader and without touching the global random
        state: a trial that reports at a rung trains on exactly as one that does not.

        Args:
            blocks: Held-out token blocks (M, seq_len + 1).
            batch_size: Rows per forward pass (the pretraining batch size).
        """
        was_training = self.model.training
        self.model.eval()
        gen = torch.Generator().manual_seed(1234)  # as on_validation_epoch_start
        total, n = 0.0, 0
        try:
            for i in range(0, len(blocks), batch_size):
                batch = blocks[i : i + batch_size].to(self.device)  # (B, seq_len + 1)
                loss = self._loss(batch, gen)
                total += float(loss) * batch.shape[0]
                n += batch.shape[0]
        finally:
            self.model.train(was_training)
        return total / max(1, n)

    def on_validation_epoch_end(self) -> None:
        val = self._val_sum / max(1, self._val_n)
        self.val_losses.append((self.global_step, val))
        self.log("pretrain/val_loss", val)

    def configure_optimizers(self):
        return adamw_with_schedule(
            self, self.lr, self.weight_decay, self.total_steps, self.warmup_frac
        )
