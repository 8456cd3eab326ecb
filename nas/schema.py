"""Structured-config schemas of the entry points: which keys a config may have.

Hydra checks command-line overrides against the composed config, but a YAML file merged during
composition (a group option, an experiment, a user's own file on ``hydra.searchpath``) can add
any key it likes: ``pretrain: {tokenz: 5}`` in an experiment would be silently ignored and the
search would run with the default budget. Each primary config therefore starts its defaults list
with one of the schemas below (``defaults: [base_search, ...]``, Hydra's "Structured Config
schema" pattern), so every file merged on top is validated and an unknown key fails composition
with a message that names it.

The YAML files keep the values; the schemas fix the keys and, in each field's metadata, the
rule its value must meet (type and range). Hydra's own types stay loose (``Any``) where the value
takes several forms or where our check gives the better message: ``check_config``
(``nas.engine``) calls ``check_values`` on ``pretrain``, ``finetune``, ``objective`` and every task
block before a search or a training run does any work, so ``finetune.lr=-1`` is one line and
exit code 2, not a whole search. A default here is what the code assumed for a key an option file
leaves out, so adding the schema changes no behaviour; the budgets themselves have no default
here (the YAML files are their one source).

Task blocks (``tasks.<name>``) are open dictionaries for Hydra, since one block's keys depend on
its ``kind``: ``TASK_SCHEMAS`` holds one schema per kind (``sequence``, ``token``, ``span``,
``generation``, ``code``), and ``check_task`` rejects a key the kind does not have
(``+tasks.qa.stpes=10``, or the same typo inside a task YAML) with the closest key it has. Other
open sections (``sampler`` and ``pruner`` arguments, a corpus or task ``source``) are checked by
the code that reads them (``lightning_modules.data.sources`` rejects an unknown source option).

``register()`` runs when the ``nas`` package is imported, so every entry point, ``compose()``
call and test sees the schemas before Hydra composes.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

__all__ = [
    "SCHEMAS",
    "TASK_SCHEMAS",
    "DataConfig",
    "ExportConfig",
    "FinalistsConfig",
    "FinetuneConfig",
    "LoggerConfig",
    "ObjectiveConfig",
    "PathsConfig",
    "PretrainConfig",
    "ReportConfig",
    "Rule",
    "SearchConfig",
    "StorageConfig",
    "TaskConfig",
    "StrategyConfig",
    "TrainConfig",
    "TrainerConfig",
    "ValidateBlock",
    "ValidateConfig",
    "check_task",
    "check_values",
    "field_names",
    "register",
]

DATA_ROOT = "${oc.env:ADAPTNAS_DATA,../shared/data}"


# ---- value rules -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """What a config value must be: its type, its range, whether ``null`` is allowed.

    Attributes:
        kind: ``int``, ``float`` (an int is a float too), ``bool``, ``str``, ``list`` (of ints,
            each checked against ``low``/``high``) or ``dict``.
        low: Smallest value allowed (``None``: no bound).
        high: Largest value allowed (``None``: no bound).
        above: ``low`` itself is excluded (``lr > 0``).
        null: ``None`` is allowed (for most per-task keys: "use the ``finetune`` value").
        choices: The allowed values of a string.
        note: Said after the rule in the message (what ``null`` or ``0`` means).
    """

    kind: type = int
    low: float | None = None
    high: float | None = None
    above: bool = False
    null: bool = False
    choices: tuple[str, ...] = ()
    note: str = ""

    def ok(self, value: Any) -> bool:
        """Whether ``value`` meets the rule."""
        if value is None:
            return self.null
        if self.kind is list and self.choices:  # a non-empty list of names
            return (
                isinstance(value, list | tuple)
                and len(value) > 0
                and all(isinstance(v, str) and v in self.choices for v in value)
            )
        if self.kind is list:
            return isinstance(value, list | tuple) and all(self._number(v, int) for v in value)
        if self.kind is dict:
            return isinstance(value, Mapping)
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and (not self.choices or value in self.choices)
        return self._number(value, self.kind)

    def _number(self, value: Any, kind: type) -> bool:
        types = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, types):
            return False
        if kind is float and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        """``a positive integer``, ``a number in [0, 1]``, ``one of mean, worst, auc``, ..."""
        if self.kind is list and self.choices:
            text = f"a non-empty list of {', '.join(self.choices)}"
        elif self.kind is str:
            text = f"one of {', '.join(self.choices)}" if self.choices else "a string"
        elif self.kind is bool:
            text = "true or false"
        elif self.kind is dict:
            text = "a mapping"
        else:
            noun = "integer" if self.kind in (int, list) else "number"
            if self.low == 0 and self.above and self.high is None:
                text = f"a positive {noun}"
            elif self.low == 1 and not self.above and self.high is None and noun == "integer":
                text = "a positive integer"
            elif self.low is not None and self.high is not None:
                text = f"{noun} in {'(' if self.above else '['}{self.low:g}, {self.high:g}]"
            elif self.low is not None:
                text = f"{noun} {'>' if self.above else '>='} {self.low:g}"
            else:
                text = noun
            if self.kind is list:
                text = f"a list of {text.removeprefix('a ')}s"
            elif not text.startswith("a "):
                text = f"{'an' if text[0] in 'aeiou' else 'a'} {text}"
        if self.null:
            text += " (or null)"
        return f"{text}{'; ' + self.note if self.note else ''}"


def rule(default: Any = None, schema: type | None = None, **kwargs: Any) -> Any:
    """A dataclass field whose value ``check_values`` holds to ``Rule(**kwargs)``.

    ``schema``: a dataclass of this module that a mapping value is held to in turn (its keys and
    their rules: ``finetune.lora``).
    """
    return field(default=default, metadata={"rule": Rule(**kwargs), "schema": schema})


POSITIVE_INT = {"kind": int, "low": 1}
POSITIVE = {"kind": float, "low": 0, "above": True}
FRACTION = {"kind": float, "low": 0, "high": 1}
NONNEGATIVE = {"kind": float, "low": 0}


def check_values(schema: type, values: Mapping[str, Any], prefix: str) -> None:
    """Hold every key of ``values`` to ``schema``: known keys only, each value to its ``Rule``.

    Args:
        schema: A dataclass of this module (``PretrainConfig``, a task schema, ...).
        values: The section as plain values.
        prefix: Its dotted key (``finetune``, ``tasks.qa``), for the message.

    Raises:
        ValueError: One line naming the key, its value and what it must be (``nas.engine``
            turns it into a ``ConfigError``).
    """
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {prefix}.{close[0]}?)" if close else ""
            what = getattr(schema, "what", prefix)
            raise ValueError(
                f"{prefix}.{key}={value!r}: unknown key for {what}{hint}; "
                f"known: {', '.join(fields)}"
            )
        check = fields[key].metadata.get("rule")
        if check is not None and not check.ok(value):
            raise ValueError(f"{prefix}.{key}={value!r} must be {check.describe()}")
        sub = fields[key].metadata.get("schema")
        if sub is not None and isinstance(value, Mapping):
            check_values(sub, value, f"{prefix}.{key}")


# ---- tasks -------------------------------------------------------------------------------------
@dataclass
class TaskConfig:
    """``tasks.<name>``: the keys every task kind has (``conf/task/*.yaml``).

    ``null`` budgets fall back to ``finetune``'s; ``source`` is checked by its reader.
    """

    what: typing.ClassVar[str] = "a task"

    kind: Any = rule(kind=str, choices=("sequence", "token", "span", "generation", "code"))
    metric: Any = rule(kind=str, null=True, note="null = the kind's first metric")
    max_len: Any = rule(kind=int, low=2)
    steps: Any = rule(**POSITIVE_INT, null=True, note="null = finetune.steps")
    batch_size: Any = rule(**POSITIVE_INT, null=True, note="null = finetune.batch_size")
    # Positive: 0 would read as unset and fall back to finetune.lr.
    lr: Any = rule(**POSITIVE, null=True, note="null = finetune.lr")
    examples: Any = rule(**POSITIVE_INT, null=True)
    source: Any = rule(kind=dict, default=None)


@dataclass
class SequenceTaskConfig(TaskConfig):
    """``kind: sequence``: one label per text (pair)."""

    what: typing.ClassVar[str] = "a sequence task"


@dataclass
class TokenTaskConfig(TaskConfig):
    """``kind: token``: one tag per word."""

    what: typing.ClassVar[str] = "a token task"


@dataclass
class SpanTaskConfig(TaskConfig):
    """``kind: span``: an answer span in a context."""

    what: typing.ClassVar[str] = "a span task"


@dataclass
class GenerationTaskConfig(TaskConfig):
    """``kind: generation``: target text decoded by the LM head (null keeps the kind's default)."""

    what: typing.ClassVar[str] = "a generation task"

    max_new_tokens: Any = rule(**POSITIVE_INT, null=True)
    num_beams: Any = rule(**POSITIVE_INT, null=True)
    length_penalty: Any = rule(**NONNEGATIVE, null=True)


@dataclass
class CodeTaskConfig(GenerationTaskConfig):
    """``kind: code``: generated programs run against unit tests in a sandbox."""

    what: typing.ClassVar[str] = "a code task"

    timeout: Any = rule(**POSITIVE, null=True, note="seconds per program; null = 2")
    memory_mb: Any = rule(kind=int, low=64, null=True, note="MiB per program; null = 512")


#: Task kind -> the schema of its block.
TASK_SCHEMAS: dict[str, type[TaskConfig]] = {
    "sequence": SequenceTaskConfig,
    "token": TokenTaskConfig,
    "span": SpanTaskConfig,
    "generation": GenerationTaskConfig,
    "code": CodeTaskConfig,
}


def check_task(name: str, block: Any, metrics: Mapping[str, tuple[str, ...]] = {}) -> None:  # noqa: B006
    """Hold task block ``tasks.<name>`` to the schema of its kind.

    Args:
        name: The task's name.
        block: Its config, as plain values.
        metrics: Kind -> the metrics its task class offers (``metric`` must be one of them).

    Raises:
        ValueError: One line naming the key.
    """
    prefix = f"tasks.{name}"
    if not isinstance(block, Mapping):
        raise ValueError(f"{prefix}={block!r} must be a task block (a mapping with kind, ...)")
    kind = block.get("kind")
    if kind not in TASK_SCHEMAS:
        raise ValueError(f"{prefix}.kind={kind!r} must be one of {', '.join(TASK_SCHEMAS)}")
    if block.get("max_len") is None:
        raise ValueError(f"{prefix}.max_len is missing (every task block sets it)")
    check_values(TASK_SCHEMAS[kind], block, prefix)
    known = metrics.get(kind)
    metric = block.get("metric")
    if metric is not None and known and metric not in known:
        raise ValueError(f"{prefix}.metric={metric!r} must be one of {', '.join(known)}")
    new, max_len = block.get("max_new_tokens"), block["max_len"]
    if new is not None and max_len - new - 2 < 1:
        raise ValueError(
            f"{prefix}.max_len={max_len} leaves no room for a source beside max_new_tokens={new} "
            "(needs max_len >= max_new_tokens + 3)"
        )


# ---- groups ------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    """``data``: pretraining corpus, tokenizer vocabulary, block length (``conf/data/*.yaml``)."""

    seed: int = 0
    vocab_size: Any = None
    seq_len: Any = None
    val_blocks: Any = 32
    tokenizer_task_texts: bool = False
    corpus: dict[str, Any] = field(default_factory=dict)  # a source: checked when it is read


@dataclass
class StorageConfig:
    """``storage``: the keys of every option (``sqlite``, ``journal``, ``postgres``, ``memory``)."""

    kind: str = MISSING
    url: Any = None
    path: Any = None
    connect_timeout: Any = None
    heartbeat_interval: Any = None
    grace_period: Any = None
    max_retry: Any = 1


@dataclass
class PretrainConfig:
    """``pretrain``: the brief language-model pretraining every candidate gets."""

    tokens: Any = rule(kind=int, low=0, note="0 = no pretraining")
    batch_size: Any = rule(**POSITIVE_INT)
    lr: Any = rule(**NONNEGATIVE)  # 0 keeps the initial weights (tests of init_from do)
    weight_decay: Any = rule(**NONNEGATIVE)
    warmup_frac: Any = rule(**FRACTION)


@dataclass
class LoraConfig:
    """``finetune.lora``: the low-rank updates of ``finetune.method=lora``."""

    what: typing.ClassVar[str] = "finetune.lora"

    rank: Any = rule(8, **POSITIVE_INT)
    alpha: Any = rule(16.0, **POSITIVE)
    # = lightning_modules.adaptation.LORA_TARGETS (tested); not imported, since every entry point
    # loads this module before Hydra composes and it stays free of torch.
    targets: Any = rule(kind=list, choices=("q", "k", "v", "o", "w1", "w2", "w3"))
    dropout: Any = rule(0.0, kind=float, low=0, high=1, above=False)


@dataclass
class AdapterConfig:
    """``finetune.adapter``: the bottleneck adapters of ``finetune.method=adapter``."""

    what: typing.ClassVar[str] = "finetune.adapter"

    size: Any = rule(16, **POSITIVE_INT)


@dataclass
class FinetuneConfig:
    """``finetune``: the fine-tuning budget per task (tasks may override steps, lr, batch)."""

    steps: Any = rule(**POSITIVE_INT)
    batch_size: Any = rule(**POSITIVE_INT)
    eval_batch_size: Any = rule(64, **POSITIVE_INT)
    lr: Any = rule(**NONNEGATIVE)
    weight_decay: Any = rule(**NONNEGATIVE)
    warmup_frac: Any = rule(**FRACTION)
    evals: Any = rule(1, **POSITIVE_INT)
    # Training examples each task adapts on (null = all of its training split) and the example
    # counts of an adaptation curve (null = none).
    examples: Any = rule(**POSITIVE_INT, null=True, note="null = all")
    curve: Any = rule(kind=list, low=1, null=True)
    # How the backbone adapts (lightning_modules/adaptation.py; docs/tasks.md "Adaptation
    # methods"); the head always trains.
    method: Any = rule("full", kind=str, choices=("full", "lora", "adapter", "probe"))  # METHODS
    lora: Any = rule(kind=dict, null=True, schema=LoraConfig)
    adapter: Any = rule(kind=dict, null=True, schema=AdapterConfig)


@dataclass
class TrainerConfig:
    """``trainer``: Lightning ``Trainer`` settings shared by every stage."""

    accelerator: Any = "auto"
    devices: Any = 1
    precision: Any = "auto"
    gradient_clip_val: Any = 1.0
    compile: Any = False
    progress_bar: Any = False
    log_every_n_steps: Any = 50
    deterministic: Any = False


@dataclass
class ObjectiveConfig:
    """``objective``: how task scores combine into adaptability."""

    adaptability: Any = rule("mean", kind=str)  # one of nas.trial.ADAPTABILITY: check_config
    multi_objective: bool = rule(False, kind=bool)
    test_top_k: Any = rule(1, **POSITIVE_INT)
    # true: a trial's value is adaptability per million trainable parameters (docs/tasks.md)
    per_trainable_param: bool = rule(False, kind=bool)


@dataclass
class FinalistsConfig:
    """``finalists``: the top trials of a search re-run with more seeds before the winner is named.

    ``seeds: 0`` turns the re-evaluation off (the winner is then the best single-seed trial).
    """

    top_k: Any = rule(3, **POSITIVE_INT)
    seeds: Any = rule(2, kind=int, low=0, note="0 = off")


@dataclass
class LoggerConfig:
    """``logger``: the keys of every option (``none``, ``csv``, ``wandb``)."""

    kind: str = "none"
    dir: Any = None
    project: Any = None
    entity: Any = None
    mode: Any = None
    tags: Any = None
    study_run: Any = True


@dataclass
class KeepWeightsConfig:
    """``export`` of a search: how many trials keep their weights for ``nas/export.py``."""

    keep_top_k: Any = 0


@dataclass
class PathsConfig:
    """``paths``: where runs write (``root``, ``studies``, ``cache``) and read data (``data``)."""

    root: str = "outputs"
    studies: str = "${paths.root}/studies"
    cache: str = "${paths.root}/cache"
    data: str = DATA_ROOT


@dataclass
class StrategyConfig:
    """``strategy``: how candidates get their pretrained weights (``conf/strategy/*.yaml``).

    ``standalone`` uses only ``name``; ``supernet`` the rest (``nas/supernet.py``).
    """

    name: str = "standalone"
    tokens_factor: Any = 10
    tokens: Any = None
    batch_size: Any = None
    lr: Any = None
    sandwich_random: Any = 2
    distill: Any = False
    distill_weight: Any = 0.5
    temperature: Any = 1.0
    checkpoint_every: Any = 25
    continue_tokens: Any = 0
    fixed: dict[str, Any] = field(default_factory=dict)


# ---- primary configs ---------------------------------------------------------------------------
@dataclass
class SearchConfig:
    """``conf/search.yaml``: an architecture search (``nas/search.py``)."""

    tasks: dict[str, Any] = field(default_factory=dict)  # open: one entry per selected task
    data: DataConfig = field(default_factory=DataConfig)
    sampler: dict[str, Any] = field(default_factory=dict)  # _target_ and its arguments
    pruner: dict[str, Any] = field(default_factory=dict)
    storage: StorageConfig = field(default_factory=StorageConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    search_space: str = "small"
    n_trials: Any = None
    timeout: Any = None
    trial_timeout: Any = None
    study_name: str | None = None
    seed: int = 0
    worker: int = 0
    plots: bool = True
    threads: Any = "auto"
    gpu_per_worker: bool = True
    export: KeepWeightsConfig = field(default_factory=KeepWeightsConfig)
    validate: ValidateBlock = field(default_factory=lambda: ValidateBlock())
    finalists: FinalistsConfig = field(default_factory=FinalistsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class TrainConfig:
    """``conf/train.yaml``: one architecture through the staged trial (``nas/train.py``)."""

    tasks: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    arch: Any = MISSING
    seed: int = 0
    test: bool = True
    init_from: Any = None
    search_space: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # a sweep's values: ++params.<name>=
    run_name: str | None = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    # Search settings that experiments (conf/experiment/*.yaml) bundle with the data and budgets:
    # accepted so that `nas/train.py experiment=real_suite arch=...` works, and unused here.
    n_trials: Any = None
    study_name: str | None = None


@dataclass
class SweepConfig(TrainConfig):
    """``conf/sweep.yaml``: a W&B sweep over a search space (``nas/sweep.py``): the sweep's own
    keys on top of ``nas/train.py``'s, so that its overrides are checked as a run's."""

    arch: Any = None
    search_space: str | None = "small"
    method: str = "bayes"
    out: str = "sweep.yaml"
    project: str | None = "adaptnas"
    entity: str | None = None
    name: str | None = None


@dataclass
class ExportConfig:
    """``conf/export.yaml``: export a trial of a study (``nas/export.py``)."""

    storage: StorageConfig | None = None  # None: the storage the study recorded
    study: str = MISSING
    trial: Any = None
    out: Any = None
    onnx: bool = True
    transformers: bool = True
    push_to_hub: str | None = None  # a Hub repo id: upload the export folder
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class ReportConfig:
    """``conf/report.yaml``: leaderboard and plots of a study (``nas/report.py``)."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    study: str = MISSING
    study_name: str = "${study}"
    top_k: Any = 10
    plots: bool = True
    paths: PathsConfig = field(default_factory=PathsConfig)


# ---- nas/validate.py ----------------------------------------------------------------------------
@dataclass
class ValidateBlock:
    """``validate``: re-running a study's top trials (``conf/validate.yaml``, a search's end)."""

    auto: bool = False  # a search: validate when it ends
    top_k: Any = 3
    seeds: Any = 3
    seed: Any = 1000
    scale: Any = 4
    scale_seeds: Any = 1
    baselines: Any = field(default_factory=lambda: ["gpt2", "llama", "bert"])
    param_tolerance: Any = 0.15


@dataclass
class ValidateConfig:
    """``conf/validate.yaml``: validate the winner of a study (``nas/validate.py``)."""

    storage: StorageConfig | None = None  # None: the storage the study recorded
    study: str = MISSING
    threads: Any = "auto"
    validate: ValidateBlock = field(default_factory=ValidateBlock)
    paths: PathsConfig = field(default_factory=PathsConfig)


#: Primary config name -> (schema name in the ConfigStore, schema).
SCHEMAS: dict[str, tuple[str, type]] = {
    "search": ("base_search", SearchConfig),
    "train": ("base_train", TrainConfig),
    "sweep": ("base_sweep", SweepConfig),
    "export": ("base_export", ExportConfig),
    "report": ("base_report", ReportConfig),
    "validate": ("base_validate", ValidateConfig),
}


def register() -> None:
    """Store the schemas in Hydra's ``ConfigStore`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in SCHEMAS.values():
        store.store(name=name, node=schema, provider="adaptnas")


def field_names(config_name: str, key: str) -> list[str] | None:
    """The keys the schema of ``config_name`` allows beside ``key`` (a dotted full key).

    Returns:
        The field names of the dataclass that holds ``key``'s last part, or ``None`` when that
        part of the config is open (``tasks``, ``sampler``, ...) or ``config_name`` is unknown.
    """
    if config_name not in SCHEMAS:
        return None
    node: Any = SCHEMAS[config_name][1]
    for part in key.split(".")[:-1]:
        if not dataclasses.is_dataclass(node):
            return None
        hint = typing.get_type_hints(node).get(part)
        # ``StorageConfig | None`` -> StorageConfig; anything else that is not a dataclass: open.
        node = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), hint)
    if not dataclasses.is_dataclass(node):
        return None
    return [f.name for f in dataclasses.fields(node)]
