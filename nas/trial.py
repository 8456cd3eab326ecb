"""The staged trial: pretrain one candidate briefly, fine-tune a copy on every task, score it.

This is the unit of work of a search (``nas/search.py`` wraps it in an Optuna objective) and of a
single run (``nas/train.py``). It knows nothing of Optuna: pruning comes in as a ``report``
callback that may raise, so the same code serves both.

Faults come out as distinct exceptions, so the objective can end the trial with a reason and let
the search go on: ``DivergedError`` (NaN or exploding loss), ``TrialTimeout`` (past the per-trial
time limit), ``TaskError`` (an ordinary exception raised while a task fine-tunes or scores) and
``torch.cuda.OutOfMemoryError``. Anything else raised here is a bug and propagates as it is.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from optuna.exceptions import TrialPruned
from torch.utils.data import DataLoader

from lightning_modules.config import TransformerConfig
from lightning_modules.data.suite import Suite
from lightning_modules.finetune import FinetuneModule
from lightning_modules.model import build_model
from lightning_modules.optim import DivergedError
from lightning_modules.pretrain import PretrainModule
from lightning_modules.tasks.base import tensor_loader
from nas.errors import describe

log = logging.getLogger("adaptnas")

ADAPTABILITY = ("mean", "worst", "auc", "curve")

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


@dataclass
class CandidateResult:
    """What one staged trial measured.

    Attributes:
        arch: The architecture.
        n_params: Parameters of the pretrained model (backbone and LM head).
        flops_per_token: Forward FLOPs per token at the pretraining length.
        pretrain_val_loss: Held-out loss of the pretraining objective.
        task_scores: Per task, the primary metric in [0, 1] on validation.
        task_metrics: Per task, every metric on validation.
        curves: Per task, the validation score at each evaluation of fine-tuning.
        data_curves: Per task, the validation score after adapting from each example budget
            (``objective.adaptability=curve`` only).
        test_metrics: Per task, every metric on test (finalists only).
        adaptability: The combined score.
        timings: Seconds per stage (``pretrain``, each task, ``total``).
        steps: Optimizer steps per stage.
        trainable_params: Per task, the parameters that adapted (``finetune.method``; the head
            included).
        pretrained: The pretrained language model (in memory only; for keeping weights).
        finetuned: Per task, the fine-tuned module (backbone + head; in memory only).
    """

    arch: TransformerConfig
    n_params: int
    flops_per_token: float
    pretrain_val_loss: float = math.nan
    task_scores: dict[str, float] = field(default_factory=dict)
    task_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    data_curves: dict[str, dict[int, float]] = field(default_factory=dict)
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    adaptability: float = math.nan
    timings: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    trainable_params: dict[str, int] = field(default_factory=dict)
    pretrained: Any = field(default=None, repr=False)
    finetuned: dict[str, Any] = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------------------------------------
# Faults of one trial


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


class TaskError(Exception):
    """An ordinary exception raised while one task fine-tuned or scored a candidate.

    The original is kept as ``error`` and as ``__cause__`` (the traceback shows both).

    Attributes:
        task: The task's name.
        error: What it raised.
    """

    def __init__(self, task: str, error: BaseException):
        self.task, self.error = task, error
        super().__init__(f"task {task}: {describe(error)}")

    def __reduce__(self):
        return type(self), (self.task, self.error)


# Faults that already say what happened, or that are no task's doing: never wrapped in TaskError.
PASS_THROUGH: tuple[type[BaseException], ...] = (
    DivergedError,
    TrialTimeout,
    TrialPruned,  # a pruning callback inside a stage
    torch.cuda.OutOfMemoryError,  # the candidate's size, not the task: the objective frees memory
)


@contextlib.contextmanager
def task_stage(task: str):
    """Within the block, an ordinary exception becomes ``TaskError(task, exc)``.

    Wraps a task's fine-tuning and scoring only: one task's broken data, head or metric fails
    the trial, not the search. ``KeyboardInterrupt`` is no ``Exception`` and passes as it is.
    """
    try:
        yield
    except PASS_THROUGH:
        raise
    except Exception as err:
        raise TaskError(task, err) from err


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


class _Interrupt(BaseException):
    """Ctrl-C during a stage, in a form that Lightning passes on.

    Lightning's ``Trainer.fit`` turns a ``KeyboardInterrupt`` into ``sys.exit(1)`` (after ignoring
    SIGINT for the rest of the process), which would skip marking the trial failed and resuming
    cleanly. Any other ``BaseException`` it re-raises after its own teardown; ``interruptible``
    turns this one back into ``KeyboardInterrupt`` once it is out of Lightning.
    """


def _raise_interrupt(signum, frame) -> None:
    # A second Ctrl-C during Lightning's teardown is a plain KeyboardInterrupt again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise _Interrupt()


@contextlib.contextmanager
def interruptible():
    """Within the block, Ctrl-C raises ``KeyboardInterrupt`` through Lightning (not exit(1)).

    Only the main thread can handle signals, and a handler someone else installed (or SIGINT
    ignored, as in some launchers' workers) is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield
    except _Interrupt:
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def adaptability(
    scores: Mapping[str, float], curves: Mapping[str, list[float]], method: str
) -> float:
    """Combine per-task scores in [0, 1] into one adaptability score.

    Args:
        scores: Final validation score per task.
        curves: Validation scores along each task's fine-tuning (for ``auc``).
        method: ``mean`` of the scores, ``worst`` task, ``auc``: the mean over tasks of the
            area under the fine-tuning curve (rewards adapting fast, not only well), or
            ``curve``: the mean of scores that are each already a mean over example budgets
            (``finetune.curve``; rewards adapting from few examples, not only from many).
    """
    if not scores:
        raise ValueError("no task scores to combine")
    if method in ("mean", "curve"):
        return sum(scores.values()) / len(scores)
    if method == "worst":
        return min(scores.values())
    if method == "auc":
        return sum(sum(c) / len(c) for c in curves.values()) / len(curves)
    raise ValueError(f"adaptability '{method}' is not one of {', '.join(ADAPTABILITY)}")


def data_fields(suite: Suite) -> dict[str, int]:
    """Architecture fields the data decides: the vocabulary and the longest input."""
    longest = max([suite.seq_len, *(t.max_len for t in suite.tasks.values())])
    return {"vocab_size": suite.vocab_size, "max_seq_len": longest}


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
        accelerator=trainer_cfg.get("accelerator", "auto"),
        devices=trainer_cfg.get("devices", 1),
        precision=precision_for(trainer_cfg.get("precision", "auto"), arch),
        max_steps=max_steps,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=bool(trainer_cfg.get("progress_bar", False)),
        enable_model_summary=False,
        # None would make Lightning create ./lightning_logs; no logger means False here.
        logger=extra.pop("logger", False) or False,
        log_every_n_steps=int(trainer_cfg.get("log_every_n_steps", 50)),
        use_distributed_sampler=False,
        gradient_clip_val=trainer_cfg.get("gradient_clip_val", 1.0),
        deterministic=bool(trainer_cfg.get("deterministic", False)),
    )
    from nas.progress import stage_callbacks  # trainer.progress_bar=rich: RichProgressBar

    if bars := stage_callbacks(trainer_cfg):
        kwargs["enable_progress_bar"] = True
        extra["callbacks"] = [*extra.get("callbacks", []), *bars]
    kwargs.update(extra)
    return pl.Trainer(**kwargs)


def uses_gpu(trainer_cfg: Mapping[str, Any]) -> bool:
    """Whether a stage trained with ``trainer_cfg`` runs on a CUDA GPU."""
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
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
    setting = trainer_cfg.get("compile", False)
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
):
    """Stage 1: pretrain a fresh model on the suite's corpus with an equal token budget.

    ``init_model(model)``, when given, loads weights into the freshly built model first (a
    retrain that resumes from an export: ``nas/train.py init_from=<folder>``). ``deadline``, when
    given, is checked after every batch (``TrialTimeout``).

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
    )
    trainer = make_trainer(
        t,
        steps,
        val_every=steps,
        arch=arch,
        logger=logger,
        **_deadline_callbacks(deadline, "pretrain"),
    )
    batch = int(p["batch_size"])
    train = device_loader(tensor_loader(suite.train_blocks, batch, True, seed), t)
    val = device_loader(tensor_loader(suite.val_blocks, batch, False), t)
    with compiled_backbone(model, t):
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    val_loss = module.val_losses[-1][1] if module.val_losses else math.nan
    return model.cpu(), val_loss, steps


def _task_or(task_cfg: Mapping[str, Any], finetune_cfg: Mapping[str, Any], key: str) -> Any:
    """A task's own value of ``key``, or ``finetune``'s when the task leaves it unset (null).

    ``None`` means unset; a 0 stays a 0 (a check rejects it rather than replacing it).
    """
    value = task_cfg.get(key)
    return finetune_cfg.get(key) if value is None else value


def adaptation_budget(cfg: Mapping[str, Any], task: str) -> dict[str, Any]:
    """The adaptation budget of ``task``: ``steps``, ``batch_size`` and ``examples``.

    ``examples`` is how many training examples the task adapts from (``None``: the whole
    training split); ``steps`` optimizer steps cycle through them. A task's own value wins over
    ``finetune``'s.
    """
    f = cfg["finetune"]
    task_cfg = cfg.get("tasks", {}).get(task, {}) or {}
    examples = _task_or(task_cfg, f, "examples")
    return {
        "steps": int(_task_or(task_cfg, f, "steps")),
        "batch_size": int(_task_or(task_cfg, f, "batch_size")),
        "examples": None if examples is None else int(examples),
    }


def finetune(
    model,
    task,
    cfg: Mapping[str, Any],
    seed: int,
    logger=False,
    deadline: Deadline | None = None,
    examples: int | None = None,
) -> FinetuneModule:
    """Stage 2 for one task: fine-tune a copy of the pretrained backbone with the task's head.

    Tasks that decode with the LM head (``task.needs_lm_head``: generation) get a copy of the
    whole language model instead, tied or untied head included. ``deadline``, when given, is
    checked after every training and validation batch (``TrialTimeout``). ``examples`` overrides
    the task's example budget (``adaptation_budget``).
    """
    f, t = cfg["finetune"], cfg["trainer"]
    task_cfg = cfg.get("tasks", {}).get(task.name, {}) or {}
    budget = adaptation_budget(cfg, task.name)
    steps = budget["steps"]
    if examples is None:
        examples = budget["examples"]
    evals = max(1, int(f.get("evals", 1)))
    seed_all(seed)
    module = FinetuneModule(
        copy.deepcopy(model if task.needs_lm_head else model.backbone),
        task,
        lr=float(_task_or(task_cfg, f, "lr")),
        weight_decay=float(f["weight_decay"]),
        total_steps=steps,
        warmup_frac=float(f["warmup_frac"]),
        adaptation=f,  # finetune.method (full, lora, adapter, probe) and its settings
    )
    trainer = make_trainer(
        t,
        steps,
        val_every=max(1, steps // evals),
        arch=model.cfg,
        logger=logger,
        **_deadline_callbacks(deadline, task.name),
    )
    batch = budget["batch_size"]
    trainer.fit(
        module,
        train_dataloaders=task.loader("train", batch, shuffle=True, seed=seed, examples=examples),
        val_dataloaders=task.loader("validation", int(f.get("eval_batch_size", 64))),
    )
    if not module.curve or module.curve[-1][0] != trainer.global_step:
        trainer.validate(
            module, task.loader("validation", int(f.get("eval_batch_size", 64))), verbose=False
        )
    module.trainer_ref = trainer
    return module


def score_test(
    module: FinetuneModule, cfg: Mapping[str, Any], deadline: Deadline | None = None
) -> dict[str, float]:
    """Score a fine-tuned module on its task's test split (``deadline``: as in ``finetune``)."""
    f = cfg["finetune"]
    module.eval_split = "test"
    stage = f"test {module.task.name}"
    trainer = make_trainer(
        cfg["trainer"],
        1,
        val_every=1,
        arch=module.backbone.cfg,
        **_deadline_callbacks(deadline, stage),
    )
    trainer.validate(
        module, module.task.loader("test", int(f.get("eval_batch_size", 64))), verbose=False
    )
    module.eval_split = "validation"
    return module.curve.pop()[1]


def run_candidate(
    arch: TransformerConfig,
    suite: Suite,
    cfg: Mapping[str, Any],
    seed: int = 0,
    report: Callable[[int, float, dict[str, float]], None] | None = None,
    want_test: Callable[[float], bool] | None = None,
    on_stage: Callable[[str, float, dict], None] | None = None,
    logger_for: Callable[[str], Any] | None = None,
    init_model: Callable[[Any], None] | None = None,
    deadline: Deadline | None = None,
) -> CandidateResult:
    """Run the staged trial of one architecture.

    Args:
        arch: The candidate.
        suite: Shared data (corpus blocks, tokenizer, tasks in run order).
        cfg: The run config (``pretrain``, ``finetune``, ``trainer``, ``objective``, ``tasks``).
        seed: Seeds model initialisation and data order (same seed, same result on a CPU).
        report: Called after each task as ``report(step, running_adaptability, task_scores)``
            with ``step`` = tasks done; may raise (``optuna.TrialPruned``) to stop the trial.
        want_test: Called with the final adaptability; when it returns True the fine-tuned models
            (still in memory) are also scored on the test splits.
        on_stage: Progress hook ``on_stage(stage, seconds, info)``.
        logger_for: ``logger_for(stage)`` gives the Lightning logger of a stage (``pretrain`` or a
            task name), or ``False`` for none.
        init_model: Loads weights into the freshly built model before pretraining (resume).
        deadline: The trial's time limit, checked between stages and after every batch (a
            search's ``trial_timeout``; ``None``: no limit, as in ``nas/train.py``).

    Returns:
        The measurements.

    Raises:
        DivergedError: A loss became NaN or exploded.
        TrialTimeout: The trial ran past ``deadline``.
        TaskError: A task's fine-tuning or scoring raised an ordinary exception.
        KeyboardInterrupt: Ctrl-C, also from inside a Lightning stage.
    """
    with interruptible():
        return _run_stages(
            arch, suite, cfg, seed, report, want_test, on_stage, logger_for, init_model, deadline
        )


def _adapt(model, task, cfg, seed, method, result, logger_for, deadline) -> FinetuneModule:
    """Adapt ``model`` to ``task`` and record its scores in ``result``; returns the module kept.

    With ``method="curve"`` the task adapts once per example budget of ``finetune.curve`` (same
    steps, same seed, each budget's examples a superset of the smaller ones'); its score is the
    mean over the budgets and the module of the largest budget is kept (test scoring, weights).
    """
    name = task.name
    budgets = list(cfg["finetune"].get("curve") or []) if method == "curve" else []
    if method == "curve" and not budgets:
        raise ValueError("objective.adaptability=curve needs finetune.curve (example budgets)")
    points: dict[int, float] = {}
    module = None
    steps = 0
    for examples in sorted(budgets) or [None]:
        module = finetune(
            model,
            task,
            cfg,
            seed,
            logger=logger_for(name),
            deadline=deadline,
            examples=examples,
        )
        steps += module.trainer_ref.global_step
        if examples is not None:
            points[int(examples)] = module.curve[-1][1]["score"]
    result.curves[name] = [s["score"] for _, s in module.curve]
    metrics = dict(module.curve[-1][1])
    if points:
        metrics.update({f"score@{k}": v for k, v in points.items()})
        metrics["score"] = sum(points.values()) / len(points)
        result.data_curves[name] = points
    result.task_metrics[name] = metrics
    result.task_scores[name] = metrics["score"]
    result.steps[name] = steps
    result.trainable_params[name] = module.trainable_params
    return module


def _run_stages(
    arch, suite, cfg, seed, report, want_test, on_stage, logger_for, init_model, deadline
) -> CandidateResult:
    method = cfg["objective"]["adaptability"]
    result = CandidateResult(
        arch=arch,
        n_params=arch.num_params(),
        flops_per_token=arch.flops_per_sequence(suite.seq_len) / suite.seq_len,
    )

    def check(stage: str) -> None:
        if deadline is not None:
            deadline.check(stage)

    start = time.perf_counter()
    logger_for = logger_for or (lambda stage: False)
    check("pretrain")
    model, result.pretrain_val_loss, result.steps["pretrain"] = pretrain(
        arch,
        suite,
        cfg,
        seed,
        logger=logger_for("pretrain"),
        init_model=init_model,
        deadline=deadline,
    )
    result.pretrained = model
    result.timings["pretrain"] = time.perf_counter() - start
    if on_stage:
        on_stage("pretrain", result.timings["pretrain"], {"val_loss": result.pretrain_val_loss})
    modules = {}
    for i, (name, task) in enumerate(suite.tasks.items(), start=1):
        check(name)
        t0 = time.perf_counter()
        with task_stage(name):  # reading the metrics too: a task whose score lacks "score"
            module = _adapt(model, task, cfg, seed + i, method, result, logger_for, deadline)
        modules[name] = result.finetuned[name] = module
        result.timings[name] = time.perf_counter() - t0
        if on_stage:
            on_stage(name, result.timings[name], result.task_metrics[name])
        if report is not None:
            running = adaptability(result.task_scores, result.curves, method)
            report(i, running, dict(result.task_scores))
    result.adaptability = adaptability(result.task_scores, result.curves, method)
    if want_test is not None and want_test(result.adaptability):
        for name, module in modules.items():
            check(f"test {name}")
            with task_stage(name):
                result.test_metrics[name] = score_test(module, cfg, deadline=deadline)
    result.timings["total"] = time.perf_counter() - start
    return result
