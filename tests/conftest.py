"""Shared fixtures: the real Hydra config, shrunk to a CPU run of seconds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from nas.config.compose import CONF_DIR
from nas.config.nodes import TINY as TINY_BUDGETS

REPO = Path(__file__).resolve().parent.parent


def shared_data_places() -> list[Path]:
    """Where the real data sets may be, in the order looked at.

    ``$ADAPTNAS_DATA`` first: the configs read it too (``conf/data/wikitext2.yaml``), so data kept
    elsewhere serves the tests as it serves a search. Then ``shared/data`` beside the checkout: as
    the checkout was reached (a symlinked folder kept), with symlinks resolved, beside the main
    checkout of a git worktree, and beside the working directory (the configs' own default,
    ``../shared/data``, is relative to it).
    """
    places = [Path(os.environ["ADAPTNAS_DATA"])] if os.environ.get("ADAPTNAS_DATA") else []
    checkout = Path(os.path.abspath(__file__)).parent.parent
    roots = [checkout, REPO]
    git = REPO / ".git"
    if git.is_file() and git.read_text().startswith("gitdir:"):  # a worktree: find the main one
        gitdir = Path(git.read_text().split(":", 1)[1].strip())
        common = gitdir / "commondir"
        main = (gitdir / common.read_text().strip()) if common.is_file() else gitdir.parent.parent
        roots.append(main.resolve().parent)
    roots.append(Path.cwd())
    for root in roots:
        place = root.parent / "shared" / "data"
        if place not in places:
            places.append(place)
    return places


SHARED_DATA = next((p for p in shared_data_places() if p.is_dir()), shared_data_places()[0])


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_shared_data(rel: str = "") -> Path:
    """``SHARED_DATA / rel``, or skip the test saying where it looked; under CI (``CI=true``),
    where the data lies beside the clone, its absence fails the test instead."""
    path = SHARED_DATA / rel
    if not path.is_dir():
        looked = ", ".join(str(p / rel) for p in shared_data_places())
        reason = f"real data {rel or 'folder'} is absent (looked in {looked}; set ADAPTNAS_DATA)"
        if on_ci():
            pytest.fail(f"{reason} (CI=true: the real-data tests must run)", pytrace=False)
        pytest.skip(reason)
    return path


# Budgets that make a trial take about a second or two on 2 CPU cores.
TINY = [
    "search_space=tiny",
    *TINY_BUDGETS,
    "plots=false",  # 2-8 s a search; tests/nas/test_report.py covers them
    "finalists.seeds=0",  # no repeats of the top trials; tests/nas/test_finalists.py turns them on
    # No hand-written designs queued first; tests/nas/test_references.py turns them on.
    "references.designs=[]",
]
_TINY_GENERATION = ["source.n_train=96", "source.n_val=16", "source.n_test=16", "max_new_tokens=12"]
# Keys of conf/search.yaml that conf/train.yaml does not have.
SEARCH_ONLY = ("search_space", "sampler", "plots", "finalists", "references")
TINY_TASKS = {
    "qa": ["source.n_train=96", "source.n_val=32", "source.n_test=32", "max_len=96", "steps=null"],
    # steps=null: finetune.steps, not the built-in task's calibrated 400 (12 s a trial).
    "sentiment": ["source.n_train=96", "source.n_val=32", "source.n_test=32", "steps=null"],
    "ner": ["source.n_train=96", "source.n_val=32", "source.n_test=32", "max_len=32", "steps=null"],
    # Generation validates by decoding token by token: few examples, short outputs.
    # steps=null, lr=null: finetune's, not the built-in task's 90 steps at 3e-3.
    "translation": [*_TINY_GENERATION, "max_len=32", "steps=null", "lr=null"],
    "summarization": [*_TINY_GENERATION, "max_len=64"],
}


def tiny_overrides(
    tmp_path: Path, task: str = "suite_all", extra: list[str] | None = None
) -> list[str]:
    """Overrides that shrink a config to a tiny run writing under ``tmp_path``.

    ``task`` is a ``conf/task`` group choice: one task, a list (``[qa,ner]``), or a suite file
    (``suite``, the default suite; ``suite_all``, every built-in task: the tests' default).
    """
    names = suite_tasks(task)
    out = [f"task={task}", f"paths.root={tmp_path}", *TINY]
    for name in names:
        out += [f"tasks.{name}.{o}" for o in TINY_TASKS.get(name, [])]
    return out + list(extra or [])


def suite_tasks(task: str) -> list[str]:
    """The task names a ``task=`` choice selects: a suite file's defaults list, else the list."""
    names = []
    for name in task.strip("[]").split(","):
        path = CONF_DIR / "task" / f"{name}.yaml"
        listed = OmegaConf.load(path).get("defaults") if path.is_file() else None
        names += [str(n) for n in listed] if listed else [name]
    return names


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` exactly as the entry point would."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


# Test files that share the live PostgreSQL server and SLURM cluster (one of them stops and starts
# SLURM): under pytest-xdist they run one after another on the same worker.
SERVICE_FILES = ("tests/nas/test_workers.py", "tests/scripts/")


def xdist_group(nodeid: str) -> str:
    """The pytest-xdist group of a test: its file, or ``services`` for the service tests.

    ``make test`` runs ``pytest -n 2 --dist loadgroup``: a file stays on one worker (its
    module-scoped fixtures, a pretrained tiny model or a finished study, are built once), and the
    files that use the live services never run at the same time.
    """
    path = nodeid.split("::", 1)[0]
    return "services" if path.startswith(SERVICE_FILES) else path


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item.nodeid)))


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

    def make(task: str = "suite_all", extra: list[str] | None = None, config_name: str = "search"):
        overrides = tiny_overrides(tmp_path, task, extra)
        if config_name != "search":
            overrides = [o for o in overrides if not o.startswith(SEARCH_ONLY)]
        return compose_config(config_name, overrides)

    return make
