"""``check_config``: a composed search or training config held to its schema before any work.

The entry scripts call it before they load the engine (Lightning, Optuna), so a bad value is one
line in seconds; ``nas.engine.run`` calls it again on the config it runs (tests and benchmarks
compose without the scripts).
"""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from lightning_modules.tasks import TASK_KINDS
from nas.config.errors import ConfigError
from nas.config.schema import (
    ADAPTABILITY_CHOICES,
    SearchConfig,
    TrainConfig,
    check_task,
    inherit_budget,
)


def check_config(cfg: DictConfig) -> SearchConfig | TrainConfig:
    """Validate values that Hydra cannot, before any work (one-line ``ConfigError``).

    ``OmegaConf.to_object`` instantiates the schema of ``nas.config.schema``: each section's
    ``__post_init__`` holds its keys to their rules (type and range) and every task block becomes
    the typed config of its kind (so a misspelt key fails too); the message names the key.

    Returns:
        The config as its typed schema object.
    """
    given = cfg  # the caller's config: the completed task blocks are written back to it
    try:
        if not dataclasses.is_dataclass(OmegaConf.get_type(cfg)):  # built by hand, not composed
            schema = SearchConfig if "sampler" in cfg else TrainConfig
            cfg = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        typed = OmegaConf.to_object(cfg)
        kinds = {kind: task.metrics for kind, task in TASK_KINDS.items()}
        full = {}
        for name, block in typed.tasks.items():
            full[name] = dataclasses.asdict(check_task(name, block, kinds))
        # The run reads task blocks as plain values: give it every key of its kind's schema,
        # so a key a task file leaves out takes the schema's default, not a KeyError.
        if OmegaConf.to_container(given.tasks) != full:
            with open_dict(given):
                given.tasks = full
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key}: no value (give {err.full_key}=...)") from None
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if typed.objective.adaptability not in ADAPTABILITY_CHOICES:
        raise ConfigError(
            f"objective.adaptability={typed.objective.adaptability!r} is not one of "
            f"{', '.join(ADAPTABILITY_CHOICES)}"
        )
    if not typed.tasks:
        raise ConfigError("task: no task selected (e.g. task=qa or task=suite)")
    if typed.finetune.lr_choice == "family" and not typed.finetune.lr_grid:
        raise ConfigError(
            "finetune.lr_choice=family: needs finetune.lr_grid, the rates each family's "
            "reference chooses from (e.g. finetune.lr_grid=[1e-3,3e-3])"
        )
    if typed.finetune.lr_grid:
        if typed.objective.adaptability in ("auc", "curve"):
            raise ConfigError(
                f"finetune.lr_grid: not with objective.adaptability={typed.objective.adaptability}"
                " (the rate is chosen on one final score; use mean, worst or skill)"
            )
        finetune = dataclasses.asdict(typed.finetune)
        for name, block in full.items():
            examples = inherit_budget(block, finetune)["examples"]
            if block["lr"] is None and examples is None:
                raise ConfigError(
                    f"finetune.lr_grid: task '{name}' adapts from its whole training split "
                    "(examples=null), so no training example is left to choose the rate on; "
                    f"set finetune.examples or tasks.{name}.examples"
                )
    return typed
