"""Fine-tuning a copy of a pretrained backbone with a task head, as a Lightning module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl

from lightning_modules.adaptation import AdaptationSpec, adapt, count_trainable
from lightning_modules.optim import adamw_with_schedule, check_loss, logs_steps
from lightning_modules.tasks.base import Task


class FinetuneModule(pl.LightningModule):
    """Trains ``backbone`` + the task's head on the task's loss; scores on validation.

    Each validation pass appends ``(step, scores)`` to ``curve`` (its ``"score"`` in [0, 1]), so
    the engine can read the final score and the area under the fine-tuning curve without a logger.

    Args:
        backbone: A ``Transformer`` (or a whole ``LanguageModel`` for generation tasks).
        task: The task being learned.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay on matrices.
        total_steps: Optimizer steps of the run.
        warmup_frac: Share of steps spent warming up.
        eval_split: Split scored by validation passes (``validation`` during the search,
            ``test`` for finalists).
        loss_limit: Training loss above which the run counts as diverged.
        adaptation: How the backbone adapts: an ``AdaptationSpec`` or a ``finetune`` block
            (``method``, ``lora``, ``adapter``); ``None``: full fine-tuning. The head always
            trains; ``trainable_params`` counts what receives gradients.
    """

    def __init__(
        self,
        backbone,
        task: Task,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        total_steps: int = 200,
        warmup_frac: float = 0.1,
        eval_split: str = "validation",
        loss_limit: float = 50.0,
        adaptation: AdaptationSpec | Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.task = task
        self.head = task.make_head(backbone.cfg)
        if not isinstance(adaptation, AdaptationSpec):
            adaptation = AdaptationSpec.from_config(adaptation)
        self.adaptation = adaptation
        adapt(self.backbone, adaptation)  # inserts LoRA/adapters, freezes what must not train
        self.trainable_params = count_trainable(self)
        self.lr, self.weight_decay, self.total_steps = lr, weight_decay, total_steps
        self.warmup_frac = warmup_frac
        self.eval_split = eval_split
        self.loss_limit = loss_limit
        self.curve: list[tuple[int, dict[str, float]]] = []
        self._preds: list = []
        self._log_steps = True  # set for each fit in on_train_start

    def training_step(self, batch, batch_idx):
        loss = self.task.loss(self.backbone, self.head, batch)
        check_loss(loss, self.loss_limit, f"{self.task.name} fine-tune", self.global_step)
        if self._log_steps:
            self.log(f"{self.task.name}/loss", loss, prog_bar=True)
        return loss

    def on_train_start(self) -> None:
        self._log_steps = logs_steps(self)

    def on_validation_epoch_start(self) -> None:
        self._preds = []

    def validation_step(self, batch, batch_idx):
        self._preds.extend(self.task.predict(self.backbone, self.head, batch))

    def on_validation_epoch_end(self) -> None:
        scores = self.task.score(self._preds, self.eval_split)
        self.curve.append((self.global_step, scores))
        for k, v in scores.items():
            self.log(f"{self.task.name}/{self.eval_split}_{k}", v)

    def configure_optimizers(self):
        return adamw_with_schedule(
            self, self.lr, self.weight_decay, self.total_steps, self.warmup_frac
        )
