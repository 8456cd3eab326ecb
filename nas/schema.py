"""Structured-config schemas of the entry points: which keys a config may have.

Hydra checks command-line overrides against the composed config, but a YAML file merged during
composition (a group option, an experiment, a user's own file on ``hydra.searchpath``) can add
any key it likes: ``pretrain: {tokenz: 5}`` in an experiment would be silently ignored and the
search would run with the default budget. Each primary config therefore starts its defaults list
with one of the schemas below (``defaults: [base_search, ...]``, Hydra's "Structured Config
schema" pattern), so every file merged on top is validated and an unknown key fails composition
with a message that names it.

The YAML files keep the values; the schemas fix the keys. Types are loose (``Any``) where the
runtime checks give the better message (budgets, URLs, ...) or where the value takes several
forms; a default here is what the code assumed for a key an option file leaves out, so adding the
schema changes no behaviour. Groups whose options differ in shape (``storage``, ``logger``) list
the union of their options' keys; open-ended sections (``tasks``, ``sampler`` and ``pruner``
arguments, a corpus or task ``source``) are plain dictionaries, checked by the code that reads
them (``lightning_modules.data.sources`` rejects an unknown source option).

``register()`` runs when the ``nas`` package is imported, so every entry point, ``compose()``
call and test sees the schemas before Hydra composes.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

__all__ = [
    "SCHEMAS",
    "DataConfig",
    "ExportConfig",
    "FinetuneConfig",
    "LoggerConfig",
    "ObjectiveConfig",
    "PathsConfig",
    "PretrainConfig",
    "ReportConfig",
    "SearchConfig",
    "StorageConfig",
    "TrainConfig",
    "TrainerConfig",
    "field_names",
    "register",
]

DATA_ROOT = "${oc.env:ADAPTNAS_DATA,../shared/data}"


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

    tokens: Any = None
    batch_size: Any = None
    lr: Any = None
    weight_decay: Any = None
    warmup_frac: Any = None


@dataclass
class FinetuneConfig:
    """``finetune``: the fine-tuning budget per task (tasks may override steps, lr, batch)."""

    steps: Any = None
    batch_size: Any = None
    eval_batch_size: Any = 64
    lr: Any = None
    weight_decay: Any = None
    warmup_frac: Any = None
    evals: Any = 1


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

    adaptability: Any = "mean"
    multi_objective: bool = False
    test_top_k: Any = 1


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


#: Primary config name -> (schema name in the ConfigStore, schema).
SCHEMAS: dict[str, tuple[str, type]] = {
    "search": ("base_search", SearchConfig),
    "train": ("base_train", TrainConfig),
    "sweep": ("base_sweep", SweepConfig),
    "export": ("base_export", ExportConfig),
    "report": ("base_report", ReportConfig),
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
