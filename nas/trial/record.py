"""The trial record: what one trial measured, and how it lives in Optuna's user attributes.

In the spirit of Optuna's ``FrozenTrial``: one dataclass, ``TrialRecord``, is both what
``nas.trial.run.run_trial`` returns and what the readers of a study (leaderboard, plots, tracking,
weight keeping, finalists, validation, export) rebuild from storage with ``from_trial``. The
user-attribute keys are spelled here only; ``to_attrs`` writes the keys the objective has always
written, so studies of earlier versions load as they are. What a running trial writes as it goes
(its seed, why it ended, its log file, the running scores, where it ran, its kept weights, its
strategy) goes through the ``write_*`` functions below, and a finalist repeat's identity is on the
record (``repeat_of``, ``repeat``) so that readers need not join it with ``nas.study.finalists``.

The trial states the package counts by (``State``, ``FINISHED``, ``LIVE``) are defined here once
too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from lightning_modules.config import ArchitectureError, TransformerConfig

State = optuna.trial.TrialState
# Trials that count towards n_trials (pruned ones spent their budget too).
FINISHED = (State.COMPLETE, State.PRUNED)
# Trials that hold or will hold a result (a repeat with one of these needs no new attempt).
LIVE = (State.COMPLETE, State.PRUNED, State.RUNNING, State.WAITING)

# ---- user-attribute keys (the only place they are spelled) ----------------------------------
ARCHITECTURE = "architecture"  # TransformerConfig.to_dict()
DESCRIBE = "describe"  # TransformerConfig.describe(): the leaderboard's one-line description
N_PARAMS = "n_params"
FLOPS_PER_TOKEN = "flops_per_token"
PRETRAIN_VAL_LOSS = "pretrain_val_loss"
TASK_SCORES = "task_scores"  # per task, the primary validation metric in [0, 1]
TASK_METRICS = "task_metrics"
CURVES = "curves"
DATA_CURVES = "data_curves"  # JSON keys are strings: {"ner": {"64": 0.71, "256": 0.83}}
TEST_METRICS = "test_metrics"  # finalists only
ADAPTABILITY = "adaptability"
PER_MPARAM = "adaptability_per_mparam"  # objective.per_trainable_param=true
TIMINGS = "timings"
STEPS = "steps"
TRAINABLE_PARAMS = "trainable_params"
SEED = "seed"
FAIL_REASON = "fail_reason"
LOG_FILE = "log_file"
LR_FROM = "lr_from"  # finetune.lr_choice=family: the trial whose rates it adapted at
LR_RATES = "lr_rates"  # ... and those rates, per task
REFERENCE = "reference"  # a reference design's trial: the design's key (nas.study.references)
# A finalist's repeat (nas.study.finalists): enqueued with these two.
REPEAT_OF = "finalist_of"  # the number of the trial it repeats
REPEAT = "repeat"  # 1..finalists.seeds
# Weights kept of the best trials (nas.study.kept_weights).
WEIGHTS = "weights"  # the folder, relative to the study folder
WEIGHTS_ARTIFACTS = "weights_artifacts"  # {file in the weights folder: artifact id}
# strategy=supernet (nas.strategies.supernet): the strategy and the super-network's folder.
STRATEGY = "strategy"
SUPERNET = "supernet"
# strategy=two_tier (nas.study.screen): a confirmation trial's screen trial and screen score, and
# a screen trial's architecture (one line, TransformerConfig.describe).
SCREEN_TRIAL = "adaptnas:screen_trial"
SCREEN_SCORE = "adaptnas:screen_score"
SCREEN_ARCH = "adaptnas:arch"
# Where the trial ran (nas.engine.workers.WorkerInfo): a dead worker's trial is found by these.
WORKER, HOST, DEVICE, PID, PID_NS = "worker", "host", "device", "pid", "pid_ns"

# ---- system-attribute keys ------------------------------------------------------------------
SURPLUS = "adaptnas:surplus"  # a trial that lost a race (a slot, a repeat) and never ran


@dataclass
class TrialRecord:
    """What one trial produced, in memory or as stored.

    A running trial's record comes from ``nas.trial.run.run_trial`` (its models still in memory); a
    stored one from ``TrialRecord.from_trial`` (no models; fields a pruned or failed trial never
    reached keep their empty defaults).

    Attributes:
        arch: The architecture (``None``: a trial whose sample was invalid, or a stored one
            that this version cannot build; ``architecture`` keeps it as stored).
        n_params: Parameters of the pretrained model (backbone and LM head).
        flops_per_token: Forward FLOPs per token at the pretraining length.
        pretrain_val_loss: Held-out loss of the pretraining objective.
        pretrain_rungs: Held-out loss at each fraction of pretraining some hook asked for
            (``TrialHook.pretrain_rungs``; in memory only, the pruner's rung values are the
            trial's intermediate values).
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
        seed: The model seed (what a finalist repeat changes).
        fail_reason: Why a pruned or failed trial ended.
        log_file: The trial's log file (stored records only).
        lr_from: Under ``finetune.lr_choice=family``, the number of the trial whose learning
            rates it adapted at (``nas.study.lr_calibration``; ``None``: it chose its own or
            used ``lr``).
        lr_rates: Those rates, per task (empty when ``lr_from`` is ``None``).
        repeat_of: For a finalist's repeat, the number of the trial it repeats (stored records
            only; ``None`` for a search trial).
        repeat: For a finalist's repeat, which one (1..``finalists.seeds``).
        adaptability_per_mparam: The value under ``objective.per_trainable_param``.
        describe: The architecture in one line (from ``arch`` unless stored).
        architecture: The architecture as a dict (``arch.to_dict()`` unless stored).
        number: The Optuna trial number (stored records only).
        state: The Optuna trial state (stored records only).
        pretrained: The pretrained language model (in memory only; for keeping weights).
        finetuned: Per task, the fine-tuned module (backbone + head; in memory only).
    """

    arch: TransformerConfig | None
    n_params: int | None = None
    flops_per_token: float = math.nan
    pretrain_val_loss: float = math.nan
    pretrain_rungs: dict[float, float] = field(default_factory=dict)
    task_scores: dict[str, float] = field(default_factory=dict)
    task_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    data_curves: dict[str, dict[int, float]] = field(default_factory=dict)
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    adaptability: float = math.nan
    timings: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    trainable_params: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    fail_reason: str | None = None
    log_file: str | None = None
    lr_from: int | None = None
    lr_rates: dict[str, float] = field(default_factory=dict)
    repeat_of: int | None = None
    repeat: int | None = None
    adaptability_per_mparam: float | None = None
    describe: str = ""
    architecture: dict[str, Any] | None = None
    number: int | None = None
    state: State | None = None
    pretrained: Any = field(default=None, repr=False)
    finetuned: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.arch is not None:
            if self.n_params is None:
                self.n_params = self.arch.num_params()
            if not self.describe:
                self.describe = self.arch.describe()
            if self.architecture is None:
                self.architecture = self.arch.to_dict()

    @property
    def test_scores(self) -> dict[str, float]:
        """Per task, the primary test metric (finalists only)."""
        return {name: m["score"] for name, m in self.test_metrics.items()}

    @property
    def total_seconds(self) -> float | None:
        """The trial's wall time as recorded (``None`` before it ended)."""
        return self.timings.get("total")

    def rank_score(self) -> float:
        """What weight keeping ranks a trial by: per trainable parameter when that is the value."""
        if self.adaptability_per_mparam is not None:
            return self.adaptability_per_mparam
        return self.adaptability

    # ---- user attributes -------------------------------------------------------------------

    @staticmethod
    def start_attrs(arch: TransformerConfig) -> dict[str, Any]:
        """What a trial records as soon as its architecture is valid (before any stage)."""
        return {
            ARCHITECTURE: arch.to_dict(),
            N_PARAMS: arch.num_params(),
            DESCRIBE: arch.describe(),
        }

    def to_attrs(self) -> dict[str, Any]:
        """The measurements of a completed trial as user attributes (JSON-serialisable).

        The keys of every study so far: ``data_curves`` and ``test_metrics`` only when there are
        any; timings rounded to milliseconds.
        """
        out: dict[str, Any] = {
            N_PARAMS: self.n_params,
            FLOPS_PER_TOKEN: self.flops_per_token,
            PRETRAIN_VAL_LOSS: self.pretrain_val_loss,
            TASK_SCORES: self.task_scores,
            TASK_METRICS: self.task_metrics,
            CURVES: self.curves,
        }
        if self.data_curves:
            out[DATA_CURVES] = {
                t: {str(k): v for k, v in c.items()} for t, c in self.data_curves.items()
            }
        out[ADAPTABILITY] = self.adaptability
        out[TIMINGS] = {k: round(v, 3) for k, v in self.timings.items()}
        out[STEPS] = self.steps
        out[TRAINABLE_PARAMS] = self.trainable_params
        if self.test_metrics:
            out[TEST_METRICS] = self.test_metrics
        return out

    def weights_doc(self) -> dict[str, Any]:
        """The scores kept beside a trial's weights (``scores.json`` of ``kept_weights``)."""
        return {
            ARCHITECTURE: self.architecture,
            ADAPTABILITY: self.adaptability,
            TASK_SCORES: self.task_scores,
            TASK_METRICS: self.task_metrics,
            TEST_METRICS: self.test_metrics,
            N_PARAMS: self.n_params,
            FLOPS_PER_TOKEN: self.flops_per_token,
            PRETRAIN_VAL_LOSS: self.pretrain_val_loss,
            TIMINGS: self.timings,
            STEPS: self.steps,
        }

    @classmethod
    def from_attrs(
        cls,
        attrs: Mapping[str, Any],
        number: int | None = None,
        state: State | None = None,
    ) -> TrialRecord:
        """A record from user attributes as ``to_attrs`` and the objective write them.

        Missing keys (a pruned or failed trial, a study of an older version) keep the defaults.
        """
        arch_dict = attrs.get(ARCHITECTURE) or None
        arch = None
        if arch_dict is not None:
            try:
                arch = TransformerConfig.from_dict(arch_dict)
            except (ArchitectureError, TypeError):
                pass  # a field this version renamed or dropped: the dict is kept as stored
        data_curves = {
            t: {int(k): v for k, v in c.items()} for t, c in (attrs.get(DATA_CURVES) or {}).items()
        }
        adaptability = attrs.get(ADAPTABILITY)
        loss = attrs.get(PRETRAIN_VAL_LOSS)
        flops = attrs.get(FLOPS_PER_TOKEN)
        repeat = repeat_identity(attrs)
        return cls(
            arch=arch,
            n_params=attrs.get(N_PARAMS),
            flops_per_token=math.nan if flops is None else flops,
            pretrain_val_loss=math.nan if loss is None else loss,
            task_scores=dict(attrs.get(TASK_SCORES) or {}),
            task_metrics=dict(attrs.get(TASK_METRICS) or {}),
            curves=dict(attrs.get(CURVES) or {}),
            data_curves=data_curves,
            test_metrics=dict(attrs.get(TEST_METRICS) or {}),
            adaptability=math.nan if adaptability is None else adaptability,
            timings=dict(attrs.get(TIMINGS) or {}),
            steps=dict(attrs.get(STEPS) or {}),
            trainable_params=dict(attrs.get(TRAINABLE_PARAMS) or {}),
            seed=attrs.get(SEED),
            fail_reason=attrs.get(FAIL_REASON) or None,
            log_file=attrs.get(LOG_FILE),
            lr_from=attrs.get(LR_FROM),
            lr_rates=dict(attrs.get(LR_RATES) or {}),
            repeat_of=None if repeat is None else repeat[0],
            repeat=None if repeat is None else repeat[1],
            adaptability_per_mparam=attrs.get(PER_MPARAM),
            describe=attrs.get(DESCRIBE) or "",
            architecture=arch_dict,
            number=number,
            state=state,
        )

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial | optuna.Trial) -> TrialRecord:
        """The record of a stored (or running) trial, from its user attributes."""
        return cls.from_attrs(trial.user_attrs, trial.number, getattr(trial, "state", None))


def has_architecture(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` recorded a valid architecture (an invalid sample is pruned without)."""
    return bool(trial.user_attrs.get(ARCHITECTURE))


def has_test_metrics(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` was scored on the test splits (a finalist)."""
    return bool(trial.user_attrs.get(TEST_METRICS))


# ---- a finalist's repeat ----------------------------------------------------------------------
def repeat_attrs(of: int, r: int) -> dict[str, int]:
    """The user attributes a finalist's repeat is enqueued with: repeat ``r`` of trial ``of``."""
    return {REPEAT_OF: of, REPEAT: r}


def is_repeat_attrs(attrs: Mapping[str, Any]) -> bool:
    """Whether user attributes ``attrs`` are a finalist repeat's."""
    return REPEAT_OF in attrs


def repeat_identity(attrs: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(finalist, r)`` of a repeat's user attributes, ``None`` for a search trial."""
    if not is_repeat_attrs(attrs):
        return None
    return int(attrs[REPEAT_OF]), int(attrs[REPEAT])


def is_surplus(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` lost a race for a slot or a repeat and never ran."""
    return bool(trial.system_attrs.get(SURPLUS))


# ---- attributes a running trial writes as it goes (the objective, workers, hooks) -------------
def write_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """Store ``attrs`` (from ``start_attrs``, ``to_attrs``, ...) on the running ``trial``."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def write_seed(trial: optuna.Trial, seed: int) -> None:
    """The model seed, before any stage: what a finalist's repeat changes."""
    trial.set_user_attr(SEED, seed)


def write_fail_reason(trial: optuna.Trial, reason: str) -> None:
    """Why the trial is pruned or fails (the leaderboard's note)."""
    trial.set_user_attr(FAIL_REASON, reason)


def has_fail_reason(trial: optuna.Trial | optuna.trial.FrozenTrial) -> bool:
    """Whether a reason was recorded already (the first one stays)."""
    return FAIL_REASON in trial.user_attrs


def write_log_file(trial: optuna.Trial, path: str) -> None:
    """The trial's log file, as soon as it is opened."""
    trial.set_user_attr(LOG_FILE, path)


def write_lr_from(trial: optuna.Trial, number: int, rates: Mapping[str, float]) -> None:
    """The trial whose calibrated learning rates this one adapts at, and the rates (before
    adapting): an export's retrain command adapts at them too."""
    trial.set_user_attr(LR_FROM, number)
    trial.set_user_attr(LR_RATES, dict(rates))


def write_running_scores(trial: optuna.Trial, scores: Mapping[str, float]) -> None:
    """The validation scores of the tasks done so far: a pruned trial keeps what it scored."""
    trial.set_user_attr(TASK_SCORES, dict(scores))


def write_per_mparam(trial: optuna.Trial, value: float) -> None:
    """The value under ``objective.per_trainable_param``, before the hooks rank the trial."""
    trial.set_user_attr(PER_MPARAM, value)


def write_weights(trial: optuna.Trial, folder: str) -> None:
    """Where the trial's weights were kept, relative to the study folder."""
    trial.set_user_attr(WEIGHTS, folder)


def write_weights_artifacts(trial: optuna.Trial, ids: Mapping[str, str]) -> None:
    """The artifact ids of the kept weights: {file in the weights folder: artifact id}."""
    trial.set_user_attr(WEIGHTS_ARTIFACTS, dict(ids))


def weights_artifacts(trial: optuna.trial.FrozenTrial) -> dict[str, str]:
    """The artifact ids ``write_weights_artifacts`` stored ({} when none)."""
    return dict(trial.user_attrs.get(WEIGHTS_ARTIFACTS) or {})


def write_strategy(trial: optuna.Trial, name: str, folder: str) -> None:
    """``strategy=supernet``: the strategy and the folder of the super-network it inherited."""
    trial.set_user_attr(STRATEGY, name)
    trial.set_user_attr(SUPERNET, folder)


def worker_attrs(
    worker: int, host: str, device: str | None, pid: int, pid_ns: str | None
) -> dict[str, Any]:
    """Where a trial ran (and who runs it): what a search started later checks for dead workers."""
    return {WORKER: worker, HOST: host, DEVICE: device, PID: pid, PID_NS: pid_ns}
