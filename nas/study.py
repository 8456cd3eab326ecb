"""Building the Optuna study from config: sampler, pruner, storage, folder, resume."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import optuna
from omegaconf import DictConfig, OmegaConf

from nas.errors import ConfigError

log = logging.getLogger("adaptnas")

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]{0,127}$")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def default_study_name(cfg: DictConfig, task_choice: str | None = None) -> str:
    """``<task>-<space>``: the task option as typed (``suite``, ``qa``) or the task names joined."""
    label = task_choice or "+".join(cfg.tasks.keys())
    label = re.sub(r"[^A-Za-z0-9_.+=-]", "", label.replace(",", "+"))
    space = Path(str(cfg.search_space)).stem
    return f"{label}-{space}"


def check_study_name(name: str) -> str:
    """Reject names that could escape the studies folder or break a storage URL."""
    if not STUDY_NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"study_name={name!r}: use letters, digits and _ . + = - only (no path characters)"
        )
    return name


def study_dir(cfg: DictConfig) -> Path:
    """The stable folder of the study: ``<paths.studies>/<study_name>``."""
    return Path(cfg.paths.studies).expanduser().resolve() / check_study_name(cfg.study_name)


def storage_url(cfg: DictConfig) -> str:
    """The storage URL: the configured one, or an SQLite file inside the study folder."""
    url = cfg.storage.get("url")
    if url:
        return str(url)
    if cfg.storage.kind == "memory":
        return "memory"
    if cfg.storage.kind != "sqlite":
        raise ConfigError(f"storage={cfg.storage.kind} needs storage.url")
    return f"sqlite:///{study_dir(cfg) / 'study.db'}"


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def build_storage(cfg: DictConfig) -> optuna.storages.BaseStorage:
    """The Optuna storage named by ``cfg.storage`` (with heartbeats, so killed trials are retried)."""
    kind = cfg.storage.kind
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    url = storage_url(cfg)
    if kind != "sqlite":
        raise ConfigError(f"storage={kind} is not supported (known: sqlite, memory)")
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"storage.url={mask_url(url)!r} is not an sqlite:/// URL")
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    heartbeat = cfg.storage.get("heartbeat_interval")
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat,
            grace_period=cfg.storage.get("grace_period") if heartbeat else None,
            heartbeat_stale_trial_callback=(
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1) if heartbeat else None
            ),
        )
    except Exception as err:  # SQLAlchemy raises many kinds; all mean "cannot open this URL"
        raise ConfigError(f"storage.url={mask_url(url)!r}: {str(err).splitlines()[0]}") from None


def build_sampler(cfg: DictConfig) -> optuna.samplers.BaseSampler:
    """Instantiate ``cfg.sampler`` (``_target_``), seeded by ``seed + worker``."""
    seed = int(cfg.seed) + int(cfg.get("worker", 0))
    return hydra.utils.instantiate(cfg.sampler, seed=seed)


def build_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """Instantiate ``cfg.pruner``; multi-objective studies cannot prune, so they get none."""
    if cfg.objective.multi_objective:
        return optuna.pruners.NopPruner()
    return hydra.utils.instantiate(cfg.pruner)


def directions(cfg: DictConfig) -> list[str]:
    """Maximise adaptability; minimise parameter count too when multi-objective."""
    return ["maximize", "minimize"] if cfg.objective.multi_objective else ["maximize"]


def open_study(cfg: DictConfig) -> optuna.Study:
    """Create the study, or load it when it exists (same name and storage: a resume)."""
    storage = build_storage(cfg)
    study = optuna.create_study(
        study_name=cfg.study_name,
        storage=storage,
        sampler=build_sampler(cfg),
        pruner=build_pruner(cfg),
        directions=directions(cfg),
        load_if_exists=True,
    )
    if len(study.directions) != len(directions(cfg)):
        raise ConfigError(
            f"study '{cfg.study_name}' exists with {len(study.directions)} objective(s); "
            f"objective.multi_objective={cfg.objective.multi_objective} needs {len(directions(cfg))}"
            " (pick another study_name)"
        )
    return study


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: completed or pruned (failed ones are re-run)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain-dict copy of a config node."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
