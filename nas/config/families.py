"""Which architecture families can serve the selected tasks, and keeping the others out.

A task kind declares the families that can serve it (``Task.families``: generation needs a
causal part, so ``decoder`` or ``prefix_lm``). A search over such tasks must never sample an
encoder and then score it 0: the engine restricts the space's ``family`` entry before the study
starts (the same restriction for every trial, so Optuna's distributions stay static), and a
single run of a fixed architecture (``nas/train.py``) fails at once with a one-line error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lightning_modules.config import FAMILIES
from lightning_modules.tasks import TASK_KINDS
from nas.config.errors import ConfigError
from search_spaces import SearchSpace

log = logging.getLogger("adaptnas")

__all__ = ["allowed_families", "check_arch_serves_tasks", "restrict_to_tasks", "task_families"]


def task_families(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """The families that can serve each task, from its ``kind``.

    Args:
        tasks: Task configs by name (``cfg.tasks``).

    Returns:
        Task name -> families. Tasks of an unknown kind are left out (building the suite
        reports them with the list of known kinds).
    """
    out: dict[str, tuple[str, ...]] = {}
    for name, task in tasks.items():
        kind = TASK_KINDS.get(str((task or {}).get("kind")))
        if kind is not None:
            out[name] = tuple(kind.families)
    return out


def allowed_families(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The families that can serve every task, in ``FAMILIES`` order."""
    per_task = task_families(tasks).values()
    return [f for f in FAMILIES if all(f in families for families in per_task)]


def _limits(tasks: Mapping[str, Mapping[str, Any]]) -> str:
    """``"task 'translation' needs decoder or prefix_lm"`` for every task that limits."""
    return "; ".join(
        f"task '{name}' needs {' or '.join(families)}"
        for name, families in task_families(tasks).items()
        if set(families) != set(FAMILIES)
    )


def restrict_to_tasks(space: SearchSpace, tasks: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
    """``space`` with ``family`` limited to the families that can serve every task.

    Args:
        space: The search space.
        tasks: Task configs by name (``cfg.tasks``).

    Returns:
        The restricted space (``space`` itself when every family can serve every task, or the
        space already samples only allowed families).

    Raises:
        SearchSpaceError: (one line) when no family of the space can serve every task.
    """
    why = _limits(tasks)
    if not why:
        return space
    allowed = allowed_families(tasks)
    restricted = space.restrict("family", allowed, why=why)
    if restricted is not space:
        kept = restricted.param("family").choices  # the space's own families that remain
        log.info("search space '%s': family limited to %s (%s)", space.name, ", ".join(kept), why)
    return restricted


def check_arch_serves_tasks(family: str, tasks: Mapping[str, Mapping[str, Any]]) -> None:
    """Fail in one line when an architecture of ``family`` cannot serve a selected task.

    Args:
        family: The architecture's family.
        tasks: Task configs by name (``cfg.tasks``).

    Raises:
        ConfigError: Naming the first task the family cannot serve.
    """
    per_task = task_families(tasks)
    served = [name for name, families in per_task.items() if family in families]
    for name, families in per_task.items():
        if family not in families:
            kind = tasks[name].get("kind")
            hint = f", e.g. task=[{','.join(served)}]" if served else ""
            raise ConfigError(
                f"arch: family '{family}' cannot serve task '{name}' (kind {kind} needs "
                f"{' or '.join(families)}); choose another architecture or leave the task "
                f"out{hint}"
            )
