"""Structured-config schemas of the entry points: the keys, types and the one set of defaults.

Hydra checks command-line overrides against the composed config, but a YAML file merged during
composition (a group option, an experiment, a user's own file on ``hydra.searchpath``) can add
any key it likes: ``pretrain: {tokenz: 5}`` in an experiment would be silently ignored and the
search would run with the default budget. Each primary config therefore starts its defaults list
with one of the schemas below (``defaults: [base_search, ...]``, Hydra's "Structured Config
schema" pattern), so every file merged on top is validated and an unknown key fails composition
with a message that names it.

A default value lives here and only here: a conf/ file that gives the same key must give the same
value unless it deliberately chooses another (a group option, an experiment bundle), which
``tests/nas/test_schema_defaults.py`` lists and checks. Keys without a default (``MISSING``, the
budgets and the corpus's vocabulary) take their value from the option files. Fields have real
types where a key has one (Hydra converts and rejects ``seed=abc``), ``Any`` where it takes
several forms (``trainer.devices``: a count, a list or ``auto``).

Values are checked in ``__post_init__``: each field's metadata holds the ``Rule`` its value must
meet (type and range), and ``nas.config.check.check_config`` instantiates the whole config with
``OmegaConf.to_object`` before a search or a training run does any work, so ``finetune.lr=-1`` is
one line and exit code 2, not a whole search.

Task blocks (``tasks.<name>``) are open dictionaries for Hydra, since one block's keys depend on its
``kind``: ``check_task`` builds the block's typed config (``TASK_SCHEMAS[kind]`` for a kind with
keys of its own, ``generation`` and ``code``; ``TaskConfig`` for the others), rejecting a key the
kind does not have (``+tasks.qa.stpes=10``, or the same typo inside a task YAML) with the closest
key it has. The kinds are the task classes' (``lightning_modules.tasks.TASK_KINDS``), which
``nas.config.check.check_config`` passes in, so a new kind adds nothing here unless it has keys of
its own. Other open sections (``sampler`` and ``pruner`` arguments, a corpus or task ``source``) are
checked by the code that reads them (``lightning_modules.data.sources`` rejects an unknown source
option).

``register()`` runs when the ``nas`` package is imported, so every entry point, ``compose()``
call and test sees the schemas before Hydra composes.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from omegaconf import MISSING

__all__ = [
    "ADAPTABILITY_CHOICES",
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
    "StrategyConfig",
    "TaskConfig",
    "TrainConfig",
    "TrainerConfig",
    "ValidateBlock",
    "ValidateConfig",
    "check_fields",
    "check_keys",
    "check_task",
    "check_values",
    "field_names",
    "inherit_budget",
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
        unit: What a number counts (``seconds``): ``a positive number of seconds``.
        item: The kind of a list's items (``int`` or ``float``).
    """

    kind: type = int
    low: float | None = None
    high: float | None = None
    above: bool = False
    null: bool = False
    choices: tuple[str, ...] = ()
    note: str = ""
    unit: str = ""
    item: type = int

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
            return isinstance(value, list | tuple) and all(
                self._number(v, self.item) for v in value
            )
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
            noun = (
                "integer"
                if self.kind is int or (self.kind is list and self.item is int)
                else "number"
            )
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
            if self.unit:
                text += f" of {self.unit}"
        if self.null:
            text += " (or null)"
        return f"{text}{'; ' + self.note if self.note else ''}"


def rule(
    default: Any = None,
    schema: type | None = None,
    factory: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A dataclass field whose value ``check_fields`` / ``check_values`` hold to ``Rule(**kwargs)``.

    ``schema``: a dataclass of this module that a mapping value is held to in turn (its keys and
    their rules: ``finetune.lora``). ``factory``: the default of a list or mapping.
    """
    metadata = {"rule": Rule(**kwargs), "schema": schema}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


POSITIVE_INT = {"kind": int, "low": 1}
POSITIVE = {"kind": float, "low": 0, "above": True}
FRACTION = {"kind": float, "low": 0, "high": 1}
NONNEGATIVE = {"kind": float, "low": 0}


def check_keys(
    schema: type, values: Mapping[str, Any], prefix: str, what: str | None = None
) -> None:
    """Fail on the first key of ``values`` that ``schema`` does not have, with the closest one.

    ``what`` names the section in the message (default: the schema's ``what``, else ``prefix``).
    """
    known = [f.name for f in dataclasses.fields(schema)]
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {prefix}.{close[0]}?)" if close else ""
            name = what or getattr(schema, "what", prefix)
            raise ValueError(
                f"{prefix}.{key}={value!r}: unknown key for {name}{hint}; known: {', '.join(known)}"
            )


def check_values(schema: type, values: Mapping[str, Any], prefix: str) -> None:
    """Hold every key of ``values`` to ``schema``: known keys only, each value to its ``Rule``.

    Args:
        schema: A dataclass of this module (``PretrainConfig``, a task schema, ...).
        values: The section as plain values.
        prefix: Its dotted key (``finetune``, ``tasks.qa``), for the message.

    Raises:
        ValueError: One line naming the key, its value and what it must be (``nas.engine.run``
            turns it into a ``ConfigError``).
    """
    fields = {f.name: f for f in dataclasses.fields(schema)}
    check_keys(schema, values, prefix)
    for key, value in values.items():
        check = fields[key].metadata.get("rule")
        if check is not None and not check.ok(value):
            raise ValueError(f"{prefix}.{key}={value!r} must be {check.describe()}")
        sub = fields[key].metadata.get("schema")
        if sub is not None and isinstance(value, Mapping):
            check_values(sub, value, f"{prefix}.{key}")


class Checked:
    """A section whose ``__post_init__`` holds every field to its ``Rule`` (``section``: its key).

    Hydra builds the config without calling ``__init__``; ``OmegaConf.to_object`` (what
    ``nas.config.check.check_config`` calls before any work) instantiates every section, so a bad
    value fails there in one line. ``???`` (a value no file gave yet) is left to OmegaConf, which
    names the missing key.
    """

    section: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        check_fields(self, self.section)


def show(value: Any) -> str:
    """``repr(value)``, with a whole float as the integer a user typed (``lr=-1`` -> ``-1``)."""
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


def check_fields(obj: Any, prefix: str) -> None:
    """Hold every field of dataclass instance ``obj`` to its ``Rule`` (and sub-schema).

    Raises:
        ValueError: One line naming ``<prefix>.<key>``, its value and what it must be.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, str) and value == MISSING:
            continue
        check = f.metadata.get("rule")
        if check is not None and not check.ok(value):
            key = f"{prefix}.{f.name}" if prefix else f.name
            raise ValueError(f"{key}={show(value)} must be {check.describe()}")
        sub = f.metadata.get("schema")
        if sub is not None and isinstance(value, Mapping):
            check_values(sub, value, f"{prefix}.{f.name}")


# ---- tasks -------------------------------------------------------------------------------------
@dataclass
class TaskConfig:
    """``tasks.<name>``: the keys every task kind has (``conf/task/*.yaml``).

    ``null`` budgets fall back to ``finetune``'s; ``source`` is checked by its reader. Hydra keeps
    ``tasks`` open (one block's keys depend on its ``kind``); ``check_task`` builds the block's
    typed config, ``TASK_SCHEMAS[kind]`` for a kind with keys of its own, else this class, and
    its ``__post_init__`` checks the values. The kinds themselves are the task classes of
    ``lightning_modules.tasks.TASK_KINDS`` (not imported: this module stays free of torch).
    """

    kind: str = rule(kind=str, note="a kind of lightning_modules.tasks.TASK_KINDS")
    metric: str | None = rule(kind=str, null=True, note="null = the kind's first metric")
    max_len: int = rule(kind=int, low=2)
    steps: int | None = rule(**POSITIVE_INT, null=True, note="null = finetune.steps")
    batch_size: int | None = rule(**POSITIVE_INT, null=True, note="null = finetune.batch_size")
    # Positive: 0 would read as unset and fall back to finetune.lr.
    lr: float | None = rule(**POSITIVE, null=True, note="null = finetune.lr")
    examples: int | None = rule(**POSITIVE_INT, null=True)
    source: dict[str, Any] | None = rule(kind=dict, default=None)
    name: InitVar[str] = "task"  # the block's name, for messages (not a key of the block)

    def __post_init__(self, name: str) -> None:
        check_fields(self, f"tasks.{name}")


@dataclass
class GenerationTaskConfig(TaskConfig):
    """``kind: generation``: target text decoded by the LM head (null keeps the kind's default)."""

    max_new_tokens: int | None = rule(**POSITIVE_INT, null=True)
    num_beams: int | None = rule(**POSITIVE_INT, null=True)
    length_penalty: float | None = rule(**NONNEGATIVE, null=True)

    def __post_init__(self, name: str) -> None:
        super().__post_init__(name)
        new, max_len = self.max_new_tokens, self.max_len
        if new is not None and max_len - new - 2 < 1:
            raise ValueError(
                f"tasks.{name}.max_len={max_len} leaves no room for a source beside "
                f"max_new_tokens={new} (needs max_len >= max_new_tokens + 3)"
            )


@dataclass
class CodeTaskConfig(GenerationTaskConfig):
    """``kind: code``: generated programs run against unit tests in a sandbox."""

    timeout: float | None = rule(**POSITIVE, null=True, note="seconds per program; null = 2")
    memory_mb: int | None = rule(kind=int, low=64, null=True, note="MiB per program; null = 512")


#: Task kind -> the schema of its block, for the kinds with keys of their own (the task class's
#: ``options``); every other kind's block is a ``TaskConfig``.
TASK_SCHEMAS: dict[str, type[TaskConfig]] = {
    "generation": GenerationTaskConfig,
    "code": CodeTaskConfig,
}


def check_task(
    name: str,
    block: Any,
    kinds: Mapping[str, tuple[str, ...]] | None = None,
) -> TaskConfig:
    """Hold task block ``tasks.<name>`` to the schema of its kind; return its typed config.

    Args:
        name: The task's name.
        block: Its config, as plain values (or already typed).
        kinds: Task kind -> the metrics its task class offers (``TASK_KINDS``; the caller passes
            it, so this module stays free of torch): ``kind`` must be one of them and ``metric``
            one of its metrics. ``None`` (the schema's own pass, before ``nas.engine.run``'s):
            any kind name passes.

    Raises:
        ValueError: One line naming the key.
    """
    prefix = f"tasks.{name}"
    if not isinstance(block, TaskConfig | Mapping):
        raise ValueError(f"{prefix}={block!r} must be a task block (a mapping with kind, ...)")
    kind = block.kind if isinstance(block, TaskConfig) else block.get("kind")
    if kinds is not None and kind not in kinds:
        raise ValueError(f"{prefix}.kind={kind!r} must be one of {', '.join(kinds)}")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{prefix}.kind={kind!r} must name a task kind")
    if isinstance(block, TaskConfig):
        typed = block
    else:
        if block.get("max_len") is None:
            raise ValueError(f"{prefix}.max_len is missing (every task block sets it)")
        schema = TASK_SCHEMAS.get(kind, TaskConfig)
        check_keys(schema, block, prefix, what=f"a {kind} task")
        typed = schema(**block, name=name)
    known = (kinds or {}).get(typed.kind)
    if typed.metric is not None and known and typed.metric not in known:
        raise ValueError(f"{prefix}.metric={typed.metric!r} must be one of {', '.join(known)}")
    return typed


#: A task's budget keys whose ``null`` means ``finetune``'s value (steps: null = finetune.steps).
INHERITED_BUDGET = ("steps", "batch_size", "lr", "examples")


def inherit_budget(task: Mapping[str, Any], finetune: Mapping[str, Any]) -> dict[str, Any]:
    """The budget of task block ``task``: its own value of each inherited key, else ``finetune``'s.

    The one place of the rule "a task's ``null`` means ``finetune.<key>``" (its one reader is
    ``nas.trial.stages.adaptation_budget``). The run config keeps the ``null``: whether a task
    sets a value of its own is part of what it says. Only ``None`` inherits; a 0 stays a 0 (the
    rules reject it).

    Args:
        task: The task block (plain values).
        finetune: The ``finetune`` section (plain values).

    Returns:
        ``{steps, batch_size, lr, examples}`` of the task.
    """
    return {key: finetune[key] if task.get(key) is None else task[key] for key in INHERITED_BUDGET}


# ---- groups ------------------------------------------------------------------------------------
# A default below is the one default of its key: a conf/ file that gives the key too must agree
# (tests/nas/test_schema_defaults.py). ``MISSING`` (``???``): no default; the option files give
# the value (the budgets, the corpus's vocabulary), and a file that leaves it out fails.
@dataclass
class DataConfig(Checked):
    """``data``: pretraining corpus, tokenizer vocabulary, block length (``conf/data/*.yaml``)."""

    section: typing.ClassVar[str] = "data"

    # World / data seed: seeded splits and size limits, kept apart from the search seed so that
    # every trial sees the same data.
    seed: int = 0
    vocab_size: int = rule(MISSING, **POSITIVE_INT)  # BPE vocabulary, trained locally
    seq_len: int = rule(MISSING, **POSITIVE_INT)  # pretraining block length
    val_blocks: int = rule(32, **POSITIVE_INT)  # held-out pretraining blocks (validation loss)
    # true: fit the BPE on the tasks' training splits too (German for Multi30k)
    tokenizer_task_texts: bool = False
    corpus: dict[str, Any] = field(default_factory=dict)  # a source: checked when it is read


@dataclass
class StorageConfig:
    """``storage``: the keys of every option (``sqlite``, ``journal``, ``postgres``, ``memory``)."""

    kind: str = MISSING
    url: str | None = None
    path: str | None = None
    connect_timeout: int | None = None
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    max_retry: int | None = 1


@dataclass
class PretrainConfig(Checked):
    """``pretrain``: the brief language-model pretraining every candidate gets (no defaults:
    ``conf/pretrain/default.yaml`` gives the budget)."""

    section: typing.ClassVar[str] = "pretrain"

    tokens: int = rule(MISSING, kind=int, low=0, note="0 = no pretraining")
    batch_size: int = rule(MISSING, **POSITIVE_INT)
    lr: float = rule(MISSING, **NONNEGATIVE)  # 0 keeps the initial weights (tests of init_from do)
    weight_decay: float = rule(MISSING, **NONNEGATIVE)
    warmup_frac: float = rule(MISSING, **FRACTION)
    # encoder_decoder only: masked LM on the encoder's states beside text infilling.
    encoder_mlm: bool = rule(True, kind=bool)


@dataclass
class LoraConfig(Checked):
    """``finetune.lora``: the low-rank updates of ``finetune.method=lora``."""

    what: typing.ClassVar[str] = "finetune.lora"
    section: typing.ClassVar[str] = "finetune.lora"

    rank: int = rule(8, **POSITIVE_INT)
    alpha: float = rule(16.0, **POSITIVE)
    # = lightning_modules.adaptation.LORA_TARGETS (tested); not imported, since every entry point
    # loads this module before Hydra composes and it stays free of torch. q, k, v: rows of
    # attn.qkv; o: attn.proj; w1, w2, w3: the MLP.
    targets: list[str] = rule(
        factory=lambda: ["q", "k", "v", "o"],
        kind=list,
        choices=("q", "k", "v", "o", "w1", "w2", "w3"),
    )
    dropout: float = rule(0.0, kind=float, low=0, high=1, above=False)


@dataclass
class AdapterConfig(Checked):
    """``finetune.adapter``: the bottleneck adapters of ``finetune.method=adapter``."""

    what: typing.ClassVar[str] = "finetune.adapter"
    section: typing.ClassVar[str] = "finetune.adapter"

    size: int = rule(16, **POSITIVE_INT)  # bottleneck width


def _defaults(schema: type) -> dict[str, Any]:
    """The defaults of a sub-schema as a plain mapping (an open section's default)."""
    return dataclasses.asdict(schema())


@dataclass
class FinetuneConfig(Checked):
    """``finetune``: the fine-tuning budget per task (tasks may override steps, lr, batch).

    The budget (``steps``, ``batch_size``, ``lr``, ...) has no default here: it is
    ``conf/finetune/default.yaml``'s.
    """

    section: typing.ClassVar[str] = "finetune"

    steps: int = rule(MISSING, **POSITIVE_INT)  # per task unless the task sets its own
    batch_size: int = rule(MISSING, **POSITIVE_INT)
    eval_batch_size: int = rule(100, **POSITIVE_INT)
    lr: float = rule(MISSING, **NONNEGATIVE)
    weight_decay: float = rule(MISSING, **NONNEGATIVE)
    warmup_frac: float = rule(MISSING, **FRACTION)
    # Validation passes per task (>1 gives the curve that objective.adaptability=auc uses).
    evals: int = rule(1, **POSITIVE_INT)
    # Training examples each task adapts on (a fixed subset; null = all of its training split).
    examples: int | None = rule(MISSING, **POSITIVE_INT, null=True, note="null = all")
    # Which subset of `examples` a task adapts from: a search keeps one (every candidate adapts
    # from the same examples); nas/validate.py draws another per validation seed, so that its seed
    # spread covers the draw of the few examples too.
    data_seed: int = rule(0, kind=int, low=0)
    # objective.adaptability=curve: example budgets, e.g. [64, 256, 1024]; each task adapts once
    # per budget (null = none).
    curve: list[int] | None = rule(None, kind=list, low=1, null=True)
    # Learning rates each (candidate, task) adapts at, e.g. [1e-3, 3e-3]: the one scoring best on
    # `lr_choice_examples` training examples held out of the adapted subset (never validation or
    # test) is kept and scored; a task's own `lr` still wins. null = `lr` alone.
    lr_grid: list[float] | None = rule(
        None, kind=list, item=float, low=0, above=True, null=True, note="null = lr alone"
    )
    lr_choice_examples: int = rule(128, **POSITIVE_INT)
    # Who chooses from `lr_grid`: candidate = every (candidate, task) adapts at every rate of the
    # grid; family = one rate per (family, task), chosen on the grid by the family's reference
    # design (the first finished trial of the family where none ran) and reused by every later
    # candidate of that family, which adapts once (nas/study/lr_calibration.py).
    lr_choice: str = rule("candidate", kind=str, choices=("candidate", "family"))
    # How each task's copy of the backbone adapts (lightning_modules/adaptation.py; docs/tasks.md
    # "Adaptation methods"); the task head always trains. full: every weight | lora: low-rank
    # updates of `lora.targets` | adapter: bottleneck adapters after every attention and MLP |
    # probe: frozen backbone (generation: the LM head and final norm train). The choices are
    # lightning_modules.adaptation.METHODS's names (tested); not imported: no torch here.
    method: str = rule("full", kind=str, choices=("full", "lora", "adapter", "probe"))
    # Open mappings for Hydra (a misspelt key is this schema's one-line error), held to
    # LoraConfig / AdapterConfig, whose defaults they start from.
    lora: dict[str, Any] | None = rule(
        factory=lambda: _defaults(LoraConfig), kind=dict, null=True, schema=LoraConfig
    )
    adapter: dict[str, Any] | None = rule(
        factory=lambda: _defaults(AdapterConfig), kind=dict, null=True, schema=AdapterConfig
    )


@dataclass
class TrainerConfig:
    """``trainer``: Lightning ``Trainer`` settings shared by every stage."""

    accelerator: str = "auto"  # GPU when there is one
    devices: Any = 1  # a count, a list of indices or "auto"
    # auto: bf16-mixed on GPU, and on a CPU with bf16 units from d_model 256; else 32-true
    precision: str = "auto"
    gradient_clip_val: float | None = 1.0
    # torch.compile the backbone for pretraining: +10-30% per step after a compile of seconds to a
    # minute per architecture; see docs/benchmarks.md
    compile: bool = False
    # false: one log line per stage; true: Lightning's bar; rich: RichProgressBar
    progress_bar: Any = False
    log_every_n_steps: int = 50
    deterministic: Any = False  # true, false or "warn" (Lightning's values)


#: ``objective.adaptability``: how task scores combine (``nas.trial.run.adaptability``).
ADAPTABILITY_CHOICES = ("mean", "worst", "auc", "curve", "skill")


@dataclass
class ObjectiveConfig(Checked):
    """``objective``: how task scores combine into adaptability."""

    section: typing.ClassVar[str] = "objective"

    # mean | skill (mean over tasks of the score above the task's floor) | worst | auc (area under
    # the fine-tuning curves; set finetune.evals>1) | curve: one of ADAPTABILITY_CHOICES
    adaptability: str = rule("mean", kind=str)
    # true: maximise adaptability and minimise parameters (Pareto front)
    multi_objective: bool = rule(False, kind=bool)
    # Trials that enter the top k are also scored on the test splits (and so are the finalist
    # repeats of those that were).
    test_top_k: int = rule(3, **POSITIVE_INT)
    # true: a trial's value is adaptability per million trainable parameters (docs/tasks.md)
    per_trainable_param: bool = rule(False, kind=bool)


@dataclass
class FinalistsConfig(Checked):
    """``finalists``: the top trials of a search re-run with more seeds before the winner is named.

    Before the winner is named, the best ``top_k`` trials (multi-objective: the most adaptable of
    the Pareto front) run ``seeds`` more seeds each; the winner is the best mean over its seeds.
    ``seeds: 0`` turns the re-evaluation off (the winner is then the best single-seed trial).
    """

    section: typing.ClassVar[str] = "finalists"

    top_k: int = rule(3, **POSITIVE_INT)
    seeds: int = rule(2, kind=int, low=0, note="0 = off")


@dataclass
class ReferencesConfig(Checked):
    """``references``: hand-written designs run as the first trials of every new study.

    ``designs``: ``auto`` (GPT-2-like and Llama-like; T5-like when the space samples
    encoder-decoders; BERT-like when it samples encoders), a list of ``gpt2``, ``llama``,
    ``t5``, ``bert``, or ``[]`` (none). Each is the configuration of the search space nearest
    ``size`` parameters (``median``: the space's median) within ``tolerance``
    (``nas.study.references``).
    """

    section: typing.ClassVar[str] = "references"
    names: typing.ClassVar[tuple[str, ...]] = (
        "gpt2",
        "llama",
        "t5",
        "bert",
    )  # nas.study.references

    designs: Any = "auto"
    size: Any = "median"
    tolerance: float = rule(0.15, kind=float, low=0, above=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        d = self.designs
        if d != "auto":
            if not isinstance(d, list | tuple) or not all(isinstance(x, str) for x in d):
                raise ValueError(
                    f"references.designs={d!r} must be auto or a list of {', '.join(self.names)}"
                )
            for name in d:
                if name not in self.names:
                    raise ValueError(
                        f"references.designs: '{name}' is not one of {', '.join(self.names)}"
                    )
            self.designs = list(d)
        s = self.size
        if s != "median" and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
            raise ValueError(f"references.size={s!r} must be median or a parameter count >= 1")


@dataclass
class LoggerConfig:
    """``logger``: the keys of every option (``none``, ``csv``, ``wandb``)."""

    kind: str = "none"
    dir: str | None = None
    project: str | None = None
    entity: str | None = None
    mode: str | None = None
    tags: list[str] | None = None
    study_run: bool = True


@dataclass
class KeepWeightsConfig:
    """``export`` of a search: how many trials keep their weights for ``nas/export.py``."""

    # The best k trials (multi-objective: the k most adaptable of the Pareto front); 0 keeps none.
    keep_top_k: int = 3


@dataclass
class PathsConfig:
    """``paths``: where runs write (``root``, ``studies``, ``cache``) and read data (``data``)."""

    root: str = "outputs"
    studies: str = "${paths.root}/studies"  # one stable folder per study: storage, leaderboard
    cache: str = "${paths.root}/cache"  # tokenizers
    data: str = DATA_ROOT  # real datasets (docs/data.md)


@dataclass
class StrategyConfig(Checked):
    """``strategy``: how candidates get their pretrained weights (``conf/strategy/*.yaml``).

    ``standalone`` uses only ``name`` (checked against the strategies by
    ``nas.strategies.registry``); ``supernet`` the rest but the last three, which are checked here
    and read as they are by ``nas.strategies.supernet``; ``two_tier`` all of them
    (``nas.strategies.two_tier``).
    """

    section: typing.ClassVar[str] = "strategy"
    what: typing.ClassVar[str] = "a strategy"

    name: str = "standalone"
    # Super-network pretraining tokens = this x pretrain.tokens (>= 10x a candidate's).
    tokens_factor: float = rule(10.0, **POSITIVE)
    tokens: int | None = rule(None, **POSITIVE_INT, null=True)  # or an explicit token budget
    # Sequences per step; null = pretrain.batch_size.
    batch_size: int | None = rule(None, **POSITIVE_INT, null=True)
    lr: float | None = rule(None, **POSITIVE, null=True)  # peak learning rate; null = pretrain.lr
    # Random sub-networks per step, besides the largest and the smallest.
    sandwich_random: int = rule(2, kind=int, low=0)
    distill: bool = rule(False, kind=bool)  # in-place distillation: the largest's logits teach
    distill_weight: float = rule(0.5, **FRACTION)  # share of distillation in the others' losses
    temperature: float = rule(1.0, **POSITIVE)  # softening of the distillation's distributions
    # Steps between checkpoints (weights, optimizer, step): resumable after a kill.
    checkpoint_every: int = rule(25, **POSITIVE_INT)
    # Pretraining tokens of each extracted candidate; 0 = adapt the inherited weights.
    continue_tokens: int = rule(0, kind=int, low=0, note="0 = adapt the inherited weights")
    # Knob: value(s) on top of the space's supernet: section.
    fixed: dict[str, Any] = rule(factory=dict, kind=dict)
    # two_tier: candidates screened on the super-network (COMPLETE screen trials of the study).
    screen_trials: int = rule(300, **POSITIVE_INT)
    # two_tier: screened architectures confirmed by full trials; null = n_trials - references.
    confirm_top_k: int | None = rule(None, **POSITIVE_INT, null=True)
    # two_tier: the screen score (lower is better): minus the sub-network's adaptability on the
    # super-network adapted once per task (adapted; the best measured, docs/supernet.md), or its
    # held-out LM loss, by its family's objective (lm_loss) or on the tokens after a random
    # prefix for all (suffix_loss).
    screen: str = rule("adapted", kind=str, choices=("lm_loss", "suffix_loss", "adapted"))

    @classmethod
    def of(cls, values: Mapping[str, Any] | None) -> StrategyConfig:
        """The typed ``strategy`` of a plain mapping (a run config's), held to the rules above.

        Raises:
            ValueError: One line naming the key (an unknown one with the closest known key).
        """
        if isinstance(values, cls):
            return values
        values = dict(values or {})
        check_keys(cls, values, cls.section)
        return cls(**values)


def _check_tasks(tasks: Mapping[str, Any]) -> dict[str, TaskConfig]:
    """``tasks`` as typed task configs, one per block (its kind's schema)."""
    return {str(name): check_task(str(name), block) for name, block in tasks.items()}


# ---- nas/validate.py ----------------------------------------------------------------------------
@dataclass
class ValidateBlock(Checked):
    """``validate``: re-running a study's top trials (``conf/validate.yaml``, a search's end).

    The values are checked here; what needs the study (a validation seed that was a search
    seed) is checked by ``nas.validity.study``.
    """

    section: typing.ClassVar[str] = "validate"
    what: typing.ClassVar[str] = "validate"
    #: = nas.validity.baselines.BASELINES (tested); not imported: this module stays free of torch.
    names: typing.ClassVar[tuple[str, ...]] = ("gpt2", "llama", "bert")

    auto: bool = False  # a search: validate the top trials when it ends (worker 0)
    # Architectures: the best k trials (8+ for rank statistics); 2 or more.
    top_k: int = rule(3, **POSITIVE_INT)
    # Validation seeds per architecture and condition; 2 or more (a seed sd).
    seeds: int = rule(3, **POSITIVE_INT)
    # First validation seed; the others are +100, +200, ... (never a search seed).
    seed: int = rule(1000, kind=int, low=0)
    # Large budget: pretraining tokens and every adaptation step budget x scale.
    scale: Any = rule(4, **POSITIVE)
    scale_seeds: int = rule(1, **POSITIVE_INT)  # seeds of the large-budget runs (the first ones)
    # Hand-designed designs of the winner's size; bert only where every task allows an encoder.
    baselines: list[str] = field(default_factory=lambda: ["gpt2", "llama", "bert"])
    # Baselines match the winner's parameter count within this fraction, in (0, 1).
    param_tolerance: float = 0.15

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_k < 2:
            raise ValueError(
                f"validate.top_k={self.top_k}: needs 2 or more (a winner and a runner-up)"
            )
        if self.seeds < 2:
            raise ValueError(f"validate.seeds={self.seeds}: needs 2 or more for a seed sd")
        tol = self.param_tolerance
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < 1:
            raise ValueError(f"validate.param_tolerance={tol!r} must be a fraction in (0, 1)")
        names = self.baselines if self.baselines is not None else []
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"validate.baselines={names!r}: give a list, e.g. [gpt2,llama,bert]")
        for name in names:
            if name not in self.names:
                raise ValueError(
                    f"validate.baselines: '{name}' is not one of {', '.join(self.names)}"
                )
        self.baselines = list(names)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ValidateBlock:
        """The typed ``validate`` block of a plain mapping, held to the rules above.

        Raises:
            ValueError: One line naming the key.
        """
        if isinstance(values, cls):
            return values
        values = dict(values)
        check_keys(cls, values, cls.section)
        return cls(**values)


# ---- primary configs ---------------------------------------------------------------------------
@dataclass
class SearchConfig(Checked):
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
    search_space: str = "small"  # built-in name (tiny, small, base) or a path to a YAML space
    # For the whole study; a re-run resumes and runs only the missing ones (null: until timeout).
    n_trials: int | None = rule(12, **POSITIVE_INT, null=True)
    # Seconds for this process's search; null = until n_trials.
    timeout: float | None = rule(None, **POSITIVE, null=True, unit="seconds")
    # Seconds per trial; past it the trial fails ("time limit: ...") and the search goes on.
    trial_timeout: float | None = rule(None, **POSITIVE, null=True, unit="seconds")
    study_name: str | None = None  # default: <task>-<search_space>
    seed: int = 0  # sampler seed and per-trial model seeds
    worker: int = 0  # index of this worker (multirun: worker=range(4)); offsets the sampler seed
    plots: bool = True  # plots/ in the study folder at the end (HTML + PNG); see nas/report.py
    threads: Any = "auto"  # torch CPU threads per worker; auto = CPUs / workers on this machine
    gpu_per_worker: bool = True  # each worker takes its own GPU (by worker index; docs/scaling.md)
    export: KeepWeightsConfig = field(default_factory=KeepWeightsConfig)
    validate: ValidateBlock = field(default_factory=ValidateBlock)
    finalists: FinalistsConfig = field(default_factory=FinalistsConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        check_fields(self, "")
        self.tasks = _check_tasks(self.tasks)


@dataclass
class TrainConfig(Checked):
    """``conf/train.yaml``: one architecture through the staged trial (``nas/train.py``)."""

    tasks: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # Architecture YAML (best_architecture.yaml or an export's architecture.yaml).
    arch: str | None = MISSING
    seed: int = 0
    test: bool = True  # also score the test splits at the end
    init_from: str | None = None  # an export folder (nas/export.py): pretraining starts from it
    # Instead of arch: the values of a search space's parameters (what a W&B sweep samples, see
    # nas/sweep.py): search_space=small ++params.n_layer=2 ++params.d_ff.0=256 ...
    search_space: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None  # tracked run name (logger=csv|wandb); default train-<arch stem>
    paths: PathsConfig = field(default_factory=PathsConfig)
    # Search settings that experiments (conf/experiment/*.yaml) bundle with the data and budgets:
    # accepted so that `nas/train.py experiment=real_suite arch=...` works, and unused here.
    n_trials: int | None = rule(None, **POSITIVE_INT, null=True)
    study_name: str | None = None

    def __post_init__(self) -> None:
        check_fields(self, "")
        self.tasks = _check_tasks(self.tasks)


@dataclass
class SweepConfig(TrainConfig):
    """``conf/sweep.yaml``: a W&B sweep over a search space (``nas/sweep.py``): the sweep's own
    keys on top of ``nas/train.py``'s, so that its overrides are checked as a run's."""

    arch: str | None = None  # the sweep samples the architecture
    search_space: str | None = "small"
    method: str = "bayes"  # bayes | random
    out: str = "sweep.yaml"  # where the sweep config goes
    project: str | None = "adaptnas"  # W&B project of the sweep (empty: the account's default)
    entity: str | None = None  # W&B entity (null: the account's default)
    name: str | None = None  # sweep name; null = <space>-<method>


@dataclass
class ExportConfig:
    """``conf/export.yaml``: export a trial of a study (``nas/export.py``)."""

    storage: StorageConfig | None = None  # None: the storage the study recorded
    study: str = MISSING
    trial: Any = None
    out: str | None = None
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
    top_k: int = 10  # trials in the task-score heatmap
    plots: bool = True  # false: leaderboard files only
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class ValidateConfig:
    """``conf/validate.yaml``: validate the winner of a study (``nas/validate.py``)."""

    storage: StorageConfig | None = None  # None: the storage the study recorded
    study: str = MISSING
    threads: Any = "auto"  # torch CPU threads; auto = the CPUs of this process
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
