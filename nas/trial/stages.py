"""The Lightning stages of a trial: pretrain one model, adapt a copy to a task, score on test.

What ``nas.trial.run.run_trial`` runs, one stage at a time: the trainer factory (``make_trainer``)
with its precision and device choices, pretraining (``pretrain``), adaptation to one task
(``adapt``: one ``finetune`` per example budget), test scoring (``score_test``), and the
per-trial deadline that every stage checks after each batch (``Deadline``). Nothing here knows
of Optuna, hooks or trial records: each stage takes the run config and returns what it measured.

A task's adaptation budget is read once from the run config (``adaptation_budget`` ->
``TaskBudget``); "a task's ``null`` means ``finetune``'s value" is the schema's rule
(``nas.config.schema.inherit_budget``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lightning_modules.config import TransformerConfig
from lightning_modules.finetune import FinetuneModule
from lightning_modules.model import build_model
from lightning_modules.pretrain import PretrainModule
from lightning_modules.suite import Suite
from lightning_modules.tasks.base import tensor_loader
from nas.config.errors import ConfigError
from nas.config.schema import inherit_budget

log = logging.getLogger("adaptnas")

# Lightning's banner lines ("GPU available", "Seed set") would repeat for every stage of every
# trial.
for _name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*`training_step` returned `None`.*")
# Repeated for every stage of every trial, with nothing to act on: a SLURM worker is started by
# the launcher, not srun; the pytree notice is Lightning's own use of a deprecated torch API.
warnings.filterwarnings("ignore", ".*The `srun` command is available on your system.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


# ---- the trial's deadline --------------------------------------------------------------------


class TrialTimeout(Exception):
    """The trial ran past its time limit (``trial_timeout``); raised at the next check.

    Attributes:
        limit: The limit in seconds.
        stage: Where it was noticed: ``pretrain``, a task name, or ``test <task>``.
    """

    def __init__(self, limit: float, stage: str):
        self.limit, self.stage = limit, stage
        super().__init__(f"time limit: {limit:g}s exceeded during {stage}")

    def __reduce__(self):  # picklable (a launcher may send it back from a worker process)
        return type(self), (self.limit, self.stage)


def clock() -> float:
    """The clock of trial deadlines (``time.monotonic``; tests replace this function)."""
    return time.monotonic()


@dataclass
class Deadline:
    """When a trial must stop: ``limit`` seconds after it started.

    Attributes:
        limit: The time limit in seconds.
        end: ``clock()`` value past which the trial is over time.
    """

    limit: float
    end: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(float(seconds), clock() + float(seconds))

    def check(self, stage: str) -> None:
        """Raise ``TrialTimeout`` when the deadline has passed.

        Args:
            stage: Where the trial is (named in the message).
        """
        if clock() > self.end:
            raise TrialTimeout(self.limit, stage)


class DeadlineCallback(pl.Callback):
    """Checks a trial's deadline after every training and validation batch of one stage.

    Validation batches matter: generation tasks decode token by token there, which can take
    longer than all of their training steps.
    """

    def __init__(self, deadline: Deadline, stage: str):
        self.deadline, self.stage = deadline, stage

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        self.deadline.check(self.stage)

    def on_validation_batch_end(  # noqa: D102
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.deadline.check(self.stage)


def _deadline_callbacks(deadline: Deadline | None, stage: str) -> dict[str, Any]:
    """``make_trainer`` keyword arguments that enforce ``deadline`` (none without one)."""
    return {"callbacks": [DeadlineCallback(deadline, stage)]} if deadline is not None else {}


# ---- rungs inside pretraining ----------------------------------------------------------------


def rung_steps(fractions: Sequence[float], steps: int) -> dict[int, float]:
    """Optimizer step -> fraction of pretraining, for the rungs that fall inside it.

    A fraction ``f`` is reached after ``round(f * steps)`` steps (at least one). Rungs at or past
    the last step are dropped: a trial pretrained to the end reports its score after the tasks.
    """
    out: dict[int, float] = {}
    for f in sorted(fractions):
        if not 0.0 < f < 1.0:
            raise ValueError(f"pretraining rung {f!r} must be a fraction in (0, 1)")
        step = max(1, round(f * steps))
        if step < steps:
            out.setdefault(step, f)
    return out


class PretrainRungs(pl.Callback):
    """At given steps of pretraining, measures the held-out loss and calls ``on_rung``.

    ``on_rung(fraction, val_loss)`` may raise (``optuna.TrialPruned``): the fit stops there, and
    the trial has spent only that fraction of its pretraining. Otherwise the fit goes on from
    where it was, the same model, optimizer state and schedule: a trial promoted past a rung
    ends exactly as one that never stopped to be measured.
    """

    def __init__(
        self,
        at: Mapping[int, float],
        blocks: torch.Tensor,
        batch_size: int,
        on_rung: Callable[[float, float], None],
    ):
        self.at, self.blocks, self.batch_size, self.on_rung = dict(at), blocks, batch_size, on_rung

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        # Optimizer steps done; each rung's step comes once (no gradient accumulation here).
        fraction = self.at.get(trainer.global_step)
        if fraction is not None:
            self.on_rung(fraction, pl_module.held_out_loss(self.blocks, self.batch_size))


# ---- trainers --------------------------------------------------------------------------------

# Narrowest model for which bf16 autocast beats fp32 on a CPU with bf16 matrix units, measured
# side by side (benchmarks/throughput.py, one thread, AMX; docs/benchmarks.md section 1): 1.03x
# at d_model 128 (noise, for bf16's rounding), 1.30x at 256, 1.82x at 512 (4 layers, 32 x 128).
CPU_BF16_MIN_D_MODEL = 256
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX, AVX-512 BF16).

    Read from the flags of ``cpuinfo`` (Linux); elsewhere False, so ``auto`` stays fp32.
    """
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    return False


def precision_for(setting: str, arch: TransformerConfig | None = None) -> str:
    """``auto`` -> bf16 mixed precision where it pays, fp32 elsewhere.

    On a GPU always; on a CPU only with bf16 matrix units (``cpu_bf16_units``) and a model at
    least ``CPU_BF16_MIN_D_MODEL`` wide: narrower GEMMs lose more to the casts around them than
    the units gain. Without ``arch`` a CPU stays fp32.
    """
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16-mixed"
    wide = arch is not None and arch.d_model >= CPU_BF16_MIN_D_MODEL
    return "bf16-mixed" if wide and cpu_bf16_units() else "32-true"


def make_trainer(
    trainer_cfg: Mapping[str, Any],
    max_steps: int,
    val_every: int,
    arch: TransformerConfig | None = None,
    **extra,
) -> pl.Trainer:
    """A Lightning trainer for one stage: quiet, no checkpoints, step-based validation.

    ``arch``, the model the stage trains, lets ``precision: auto`` weigh its size.
    """
    kwargs = dict(
        accelerator=trainer_cfg["accelerator"],
        devices=trainer_cfg["devices"],
        precision=precision_for(trainer_cfg["precision"], arch),
        max_steps=max_steps,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=bool(trainer_cfg["progress_bar"]),
        enable_model_summary=False,
        # None would make Lightning create ./lightning_logs; no logger means False here.
        logger=extra.pop("logger", False) or False,
        log_every_n_steps=int(trainer_cfg["log_every_n_steps"]),
        use_distributed_sampler=False,
        gradient_clip_val=trainer_cfg["gradient_clip_val"],
        deterministic=bool(trainer_cfg["deterministic"]),
    )
    if bars := stage_callbacks(trainer_cfg):
        kwargs["enable_progress_bar"] = True
        extra["callbacks"] = [*extra.get("callbacks", []), *bars]
    kwargs.update(extra)
    return pl.Trainer(**kwargs)


def stage_callbacks(trainer_cfg: Any) -> list:
    """Lightning callbacks for ``trainer.progress_bar``: ``rich`` gives ``RichProgressBar``."""
    if str(trainer_cfg["progress_bar"]).lower() != "rich":
        return []
    from pytorch_lightning.callbacks import RichProgressBar

    return [RichProgressBar(leave=False)]


def uses_gpu(trainer_cfg: Mapping[str, Any]) -> bool:
    """Whether a stage trained with ``trainer_cfg`` runs on a CUDA GPU."""
    accelerator = str(trainer_cfg["accelerator"]).lower()
    return torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")


def device_loader(loader: DataLoader, trainer_cfg: Mapping[str, Any]) -> DataLoader:
    """Batches bound for a GPU come from pinned host memory, so their copies run asynchronously.

    ``pin_memory`` is one of the DataLoader attributes that may change after construction; it is
    read when iteration starts.
    """
    if uses_gpu(trainer_cfg):
        loader.pin_memory = True
    return loader


@contextlib.contextmanager
def compiled_backbone(model, trainer_cfg: Mapping[str, Any]):
    """Within the block, ``model.backbone`` runs through ``torch.compile`` if ``trainer.compile``.

    Only the backbone's ``forward`` is compiled (an instance attribute that shadows the method,
    removed on exit), so every family's objective uses it (``model(x)`` and ``model.hidden``), the
    module tree and state-dict keys stay as they are, and the copies that fine-tuning makes are
    plain eager modules. Compilation costs seconds to a minute per new architecture (each trial
    is one), so it pays off only for long pretraining; it is off by default.
    """
    setting = trainer_cfg["compile"]
    if not setting:
        yield model
        return
    # true: the default backend (inductor); a string names another (aot_eager traces without
    # generating code: quick, for checking that a model compiles).
    backend = setting if isinstance(setting, str) else "inductor"
    backbone = model.backbone
    backbone.forward = torch.compile(backbone.forward, backend=backend)
    try:
        yield model
    finally:
        del backbone.forward  # back to the class's eager forward


def seed_all(seed: int) -> None:
    """Seed Python and torch (no numpy randomness is used)."""
    random.seed(seed)
    torch.manual_seed(seed)


def pretrain(
    arch: TransformerConfig,
    suite: Suite,
    cfg: Mapping[str, Any],
    seed: int,
    logger=False,
    init_model: Callable[[Any], None] | None = None,
    deadline: Deadline | None = None,
    rungs: Sequence[float] = (),
    on_rung: Callable[[float, float], None] | None = None,
):
    """Stage 1: pretrain a fresh model on the suite's corpus with an equal token budget.

    ``init_model(model)``, when given, loads weights into the freshly built model first (a
    retrain that resumes from an export: ``nas/train.py init_from=<folder>``). ``deadline``, when
    given, is checked after every batch (``TrialTimeout``). ``on_rung(fraction, val_loss)`` is
    called when each fraction of ``rungs`` of the pretraining steps is done (``PretrainRungs``;
    it may raise to stop the trial there).

    Returns:
        ``(model, val_loss, steps)``.
    """
    p, t = cfg["pretrain"], cfg["trainer"]
    seed_all(seed)
    model = build_model(arch)
    if init_model is not None:
        init_model(model)
    if int(p["tokens"]) == 0:
        # No pretraining at all: the backbone as initialised. Adapting from it measures what
        # pretraining adds (the pretraining gain of nas/validate.py).
        return model.cpu(), math.nan, 0
    tokens_per_step = int(p["batch_size"]) * suite.seq_len
    steps = max(1, int(p["tokens"]) // tokens_per_step)
    module = PretrainModule(
        model,
        suite.special_ids,
        lr=float(p["lr"]),
        weight_decay=float(p["weight_decay"]),
        total_steps=steps,
        warmup_frac=float(p["warmup_frac"]),
        # A run config saved before the setting existed (an old study's) ran infilling alone.
        encoder_mlm=bool(p.get("encoder_mlm", False)),
    )
    batch = int(p["batch_size"])
    extra = _deadline_callbacks(deadline, "pretrain")
    if on_rung is not None and (at := rung_steps(rungs, steps)):
        watch = PretrainRungs(at, suite.val_blocks, batch, on_rung)
        extra["callbacks"] = [*extra.get("callbacks", []), watch]
    trainer = make_trainer(t, steps, val_every=steps, arch=arch, logger=logger, **extra)
    train = device_loader(tensor_loader(suite.train_blocks, batch, True, seed), t)
    val = device_loader(tensor_loader(suite.val_blocks, batch, False), t)
    with compiled_backbone(model, t):
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    val_loss = module.val_losses[-1][1] if module.val_losses else math.nan
    return model.cpu(), val_loss, steps


# ---- adaptation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskBudget:
    """What one task adapts with, resolved once from the run config.

    Attributes:
        steps: Optimizer steps of one adaptation.
        batch_size: Training batch size.
        examples: Training examples it adapts from (``None``: the whole training split); the
            steps cycle through them.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_frac: Fraction of ``steps`` spent warming up.
        eval_batch_size: Batch size of validation and test scoring.
        evals: Validation passes along the adaptation (the fine-tuning curve).
        curve: The example budgets it adapts from once each (``objective.adaptability=curve``),
            smallest first; empty otherwise.
        data_seed: Which subset of ``examples`` it adapts from (``Task.sample``).
        lr_grid: The learning rates it chooses ``lr`` from (``finetune.lr_grid``; empty: ``lr``).
        lr_choice_examples: Held-out training examples the choice is scored on.
    """

    steps: int
    batch_size: int
    examples: int | None
    lr: float
    weight_decay: float
    warmup_frac: float
    eval_batch_size: int
    evals: int
    curve: tuple[int, ...] = ()
    data_seed: int = 0
    lr_grid: tuple[float, ...] = ()
    lr_choice_examples: int = 128


def adaptation_budget(cfg: Mapping[str, Any], task: str) -> TaskBudget:
    """The adaptation budget of ``task`` under the run config ``cfg``.

    A task's ``null`` takes ``finetune``'s value by the schema's one rule, ``inherit_budget``.
    """
    f = cfg["finetune"]
    task_cfg = cfg["tasks"][task]
    own = inherit_budget(task_cfg, f)
    examples = own["examples"]
    curve: tuple[int, ...] = ()
    if cfg["objective"]["adaptability"] == "curve" and f["curve"]:
        curve = tuple(sorted(int(e) for e in f["curve"]))
    return TaskBudget(
        steps=int(own["steps"]),
        batch_size=int(own["batch_size"]),
        examples=None if examples is None else int(examples),
        lr=float(own["lr"]),
        weight_decay=float(f["weight_decay"]),
        warmup_frac=float(f["warmup_frac"]),
        eval_batch_size=int(f["eval_batch_size"]),
        evals=max(1, int(f["evals"])),
        curve=curve,
        data_seed=int(f.get("data_seed") or 0),
        # A task that sets its own rate keeps it; the grid is for those that inherit finetune.lr.
        lr_grid=()
        if task_cfg["lr"] is not None
        else tuple(float(x) for x in f.get("lr_grid") or ()),
        lr_choice_examples=int(f.get("lr_choice_examples") or 128),
    )


def check_lr_choice(cfg: Mapping[str, Any], suite: Suite) -> None:
    """``finetune.lr_grid``: every task that chooses its rate has training examples to hold out.

    Args:
        cfg: The run config as plain values.
        suite: The run's data.

    Raises:
        ConfigError: One line naming the task, before any trial runs.
    """
    for name, task in suite.tasks.items():
        budget = adaptation_budget(cfg, name)
        if budget.lr_grid and budget.examples is not None:
            try:
                task.held_out(budget.examples, budget.lr_choice_examples, budget.data_seed)
            except ValueError as err:
                raise ConfigError(
                    f"finetune.lr_grid: {err} (finetune.lr_choice_examples)"
                ) from None


def train_loader(task, budget: TaskBudget, seed: int) -> DataLoader:
    """The batches ``task`` adapts from under ``budget``: its few-shot subset, shuffled."""
    return task.loader(
        "train",
        budget.batch_size,
        shuffle=True,
        seed=seed,
        examples=budget.examples,
        data_seed=budget.data_seed,
    )


def finetune(
    model,
    task,
    cfg: Mapping[str, Any],
    seed: int,
    logger=False,
    deadline: Deadline | None = None,
    budget: TaskBudget | None = None,
    eval_split: str = "validation",
) -> tuple[FinetuneModule, int]:
    """Adapt a copy of the pretrained backbone with the task's head, once.

    Tasks that decode with the LM head (``task.needs_lm_head``: generation) get a copy of the
    whole language model instead, tied or untied head included. ``deadline``, when given, is
    checked after every training and validation batch (``TrialTimeout``). ``budget``: the task's
    budget (``adaptation_budget(cfg, task.name)`` when not given; ``adapt`` passes one per
    example budget). ``eval_split``: what its validation passes score (``Task.held_out``'s
    split while a learning rate is chosen).

    Returns:
        ``(module, steps)``: the fine-tuned module and the optimizer steps it took.
    """
    t = cfg["trainer"]
    if budget is None:
        budget = adaptation_budget(cfg, task.name)
    seed_all(seed)
    module = FinetuneModule(
        copy.deepcopy(model if task.needs_lm_head else model.backbone),
        task,
        lr=budget.lr,
        weight_decay=budget.weight_decay,
        total_steps=budget.steps,
        warmup_frac=budget.warmup_frac,
        adaptation=cfg["finetune"],  # finetune.method (full, lora, adapter, probe) and its settings
        eval_split=eval_split,
    )
    trainer = make_trainer(
        t,
        budget.steps,
        val_every=max(1, budget.steps // budget.evals),
        arch=model.cfg,
        logger=logger,
        **_deadline_callbacks(deadline, task.name),
    )
    trainer.fit(
        module,
        train_dataloaders=train_loader(task, budget, seed),
        val_dataloaders=task.loader(eval_split, budget.eval_batch_size),
    )
    if not module.curve or module.curve[-1][0] != trainer.global_step:
        trainer.validate(module, task.loader(eval_split, budget.eval_batch_size), verbose=False)
    return module, trainer.global_step


def choose_lr(
    model,
    task,
    cfg: Mapping[str, Any],
    seed: int,
    budget: TaskBudget,
    deadline: Deadline | None = None,
) -> tuple[FinetuneModule, float, dict[float, float]]:
    """Adapt at every rate of ``budget.lr_grid``; keep the one that scores best on held-out
    training examples (``Task.held_out``: examples of the training split the model does not
    adapt from). Validation and test are never read. Ties go to the rate listed first.

    Returns:
        ``(module, lr, {lr: held-out score})``: the kept module (its curve holds held-out
        scores only), its rate and every rate's score.

    Raises:
        ValueError: The task adapts from its whole training split (nothing left to hold out).
    """
    if budget.examples is None:
        raise ValueError(
            f"finetune.lr_grid: task '{task.name}' adapts from its whole training split "
            "(examples=null): no training example is left to choose the rate on"
        )
    split = task.held_out(budget.examples, budget.lr_choice_examples, budget.data_seed)
    best, best_lr, scores = None, None, {}
    for lr in budget.lr_grid:
        module, _ = finetune(
            model,
            task,
            cfg,
            seed,
            deadline=deadline,
            budget=dataclasses.replace(budget, lr=lr, evals=1),
            eval_split=split,
        )
        scores[lr] = module.curve[-1][1]["score"]
        if best is None or scores[lr] > scores[best_lr]:
            best, best_lr = module, lr
    return best, best_lr, scores


@dataclass
class Adapted:
    """One task's adaptation, measured.

    Attributes:
        module: The fine-tuned module kept (the largest example budget's under ``curve``).
        metrics: Every validation metric; ``score`` is the primary one in [0, 1] (under
            ``curve``: the mean over the example budgets, with ``score@<examples>`` beside it).
        curve: The validation score at each evaluation of (the kept) fine-tuning.
        data_curve: Validation score per example budget (``curve`` only; else empty).
        steps: Optimizer steps, over every example budget.
    """

    module: FinetuneModule
    metrics: dict[str, float]
    curve: list[float]
    data_curve: dict[int, float]
    steps: int


def adapt(
    model, task, cfg: Mapping[str, Any], seed: int, logger=False, deadline: Deadline | None = None
) -> Adapted:
    """Adapt ``model`` to ``task`` within its budget and score it on validation.

    With ``objective.adaptability=curve`` the task adapts once per example budget of
    ``finetune.curve`` (same steps, same seed, each budget's examples a superset of the smaller
    ones'); its score is the mean over the budgets.
    """
    budget = adaptation_budget(cfg, task.name)
    if cfg["objective"]["adaptability"] == "curve" and not budget.curve:
        raise ValueError("objective.adaptability=curve needs finetune.curve (example budgets)")
    if budget.lr_grid and not budget.curve:
        module, lr, held_out = choose_lr(model, task, cfg, seed, budget, deadline)
        module.curve.clear()  # held-out scores: the kept module is scored on validation now
        metrics = dict(score_on(module, cfg, "validation", deadline))
        metrics["lr"] = lr
        metrics.update({f"held_out@{x:g}": v for x, v in held_out.items()})
        steps = budget.steps * len(budget.lr_grid)
        return Adapted(
            module=module, metrics=metrics, curve=[metrics["score"]], data_curve={}, steps=steps
        )
    points: dict[int, float] = {}
    module = None
    steps = 0
    for examples in budget.curve or (budget.examples,):
        module, done = finetune(
            model,
            task,
            cfg,
            seed,
            logger=logger,
            deadline=deadline,
            budget=dataclasses.replace(budget, examples=examples),
        )
        steps += done
        if budget.curve:
            points[examples] = module.curve[-1][1]["score"]
    metrics = dict(module.curve[-1][1])
    if points:
        metrics.update({f"score@{k}": v for k, v in points.items()})
        metrics["score"] = sum(points.values()) / len(points)
    curve = [s["score"] for _, s in module.curve]
    return Adapted(module=module, metrics=metrics, curve=curve, data_curve=points, steps=steps)


def score_on(
    module: FinetuneModule, cfg: Mapping[str, Any], split: str, deadline: Deadline | None = None
) -> dict[str, float]:
    """Score a fine-tuned module once on ``split`` of its task; the scores are also the last
    entry of ``module.curve`` (``deadline``: as in ``finetune``). The module scores validation
    afterwards."""
    module.eval_split = split
    stage = module.task.name if split == "validation" else f"{split} {module.task.name}"
    trainer = make_trainer(
        cfg["trainer"],
        1,
        val_every=1,
        arch=module.backbone.cfg,
        **_deadline_callbacks(deadline, stage),
    )
    loader = module.task.loader(split, int(cfg["finetune"]["eval_batch_size"]))
    trainer.validate(module, loader, verbose=False)
    module.eval_split = "validation"
    return module.curve[-1][1]


def score_test(
    module: FinetuneModule, cfg: Mapping[str, Any], deadline: Deadline | None = None
) -> dict[str, float]:
    """Score a fine-tuned module on its task's test split (``deadline``: as in ``finetune``);
    its curve is left as it was."""
    scores = score_on(module, cfg, "test", deadline)
    module.curve.pop()
    return scores
