"""Shared fixtures: the real Hydra config, shrunk to a CPU run of seconds."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR
from nas.config.nodes import TINY as TINY_BUDGETS

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Budgets that make a trial take about a second or two on 2 CPU cores.
TINY = [
    "search_space=tiny",
    *TINY_BUDGETS,
    "plots=false",  # 2-8 s a search; tests/nas/test_report.py covers them
    "finalists.seeds=0",  # no repeats of the top trials; tests/nas/test_finalists.py turns them on
]
_TINY_GENERATION = ["source.n_train=96", "source.n_val=16", "source.n_test=16", "max_new_tokens=12"]
# Keys of conf/search.yaml that conf/train.yaml does not have.
SEARCH_ONLY = ("search_space", "sampler", "plots", "finalists")
TINY_TASKS = {
    "qa": ["source.n_train=96", "source.n_val=32", "source.n_test=32", "max_len=96", "steps=null"],
    # steps=null: finetune.steps, not the built-in task's calibrated 400 (12 s a trial).
    "sentiment": ["source.n_train=96", "source.n_val=32", "source.n_test=32", "steps=null"],
    "ner": ["source.n_train=96", "source.n_val=32", "source.n_test=32", "max_len=32", "steps=null"],
    # Generation validates by decoding token by token: few examples, short outputs.
    "translation": [*_TINY_GENERATION, "max_len=32"],
    "summarization": [*_TINY_GENERATION, "max_len=64"],
}


def tiny_overrides(
    tmp_path: Path, task: str = "suite", extra: list[str] | None = None
) -> list[str]:
    """Overrides that shrink the default config to a tiny run writing under ``tmp_path``."""
    names = list(TINY_TASKS) if task == "suite" else task.strip("[]").split(",")
    out = [f"task={task}", f"paths.root={tmp_path}", *TINY]
    for name in names:
        out += [f"tasks.{name}.{o}" for o in TINY_TASKS.get(name, [])]
    return out + list(extra or [])


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` exactly as the entry point would."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


@pytest.fixture(autouse=True)
def default_sigint():
    """Every test starts with Python's own Ctrl-C handler.

    Lightning ignores SIGINT for the rest of the process once a ``KeyboardInterrupt`` reaches
    ``Trainer.fit`` outside ``nas.trial.run.interruptible`` (its graceful shutdown), and an ignored
    signal is inherited by every subprocess started later; the Ctrl-C tests of
    tests/nas/test_faults.py would then depend on which tests ran before them.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture
def tiny_cfg(tmp_path):
    """A factory: ``tiny_cfg(task="qa", extra=[...])`` -> composed search config."""

    def make(task: str = "suite", extra: list[str] | None = None, config_name: str = "search"):
        overrides = tiny_overrides(tmp_path, task, extra)
        if config_name != "search":
            overrides = [o for o in overrides if not o.startswith(SEARCH_ONLY)]
        return compose_config(config_name, overrides)

    return make
