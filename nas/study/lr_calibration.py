"""``finetune.lr_choice=family``: one learning rate per (family, task), chosen once, then reused.

Under ``finetune.lr_grid`` every (candidate, task) adapts once per rate of the grid and keeps the
rate that scores best on training examples held out of its subset (``nas.trial.stages.choose_lr``):
the grid multiplies the adaptation cost of every candidate. The cheaper choice calibrates each
family once: the family's reference design (``nas.study.references``, queued first in every
study) chooses its rates on the grid like any grid trial, and every later candidate of that family
adapts once, at those rates. Where the study has no finished reference of a family (the space has
no reference of it, or ``references.designs=[]``), the first finished trial of the family that
chose on the grid calibrates it. A trial that finds no calibration yet (the first of its family,
or one that starts while the calibrating trial still runs on another worker) chooses on the grid
itself. Reference trials always choose on the grid: they are the calibrators.

The rates come from the stored records only (``TrialRecord.task_metrics[task]["lr"]``, written by
``nas.trial.stages.adapt``), so they hold across workers and a resumed study, and the choice still
never reads validation or test data. A candidate that used them records the calibrating trial's
number (``TrialRecord.lr_from``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nas.study.references import is_reference
from nas.trial.record import TrialRecord


@dataclass(frozen=True)
class Calibration:
    """The learning rates a family adapts at, and the trial that chose them.

    Attributes:
        family: The architecture family (``TransformerConfig.family``).
        trial: The number of the trial that chose them on the grid.
        reference: Whether that trial was a reference design's.
        rates: Per task, the rate chosen (tasks with a rate of their own are not here).
    """

    family: str
    trial: int
    reference: bool
    rates: dict[str, float]


def chosen_rates(record: TrialRecord) -> dict[str, float]:
    """The rates a finished trial chose on the grid, per task (empty: it chose none)."""
    return {
        task: float(m["lr"])
        for task, m in record.task_metrics.items()
        if isinstance(m, Mapping) and m.get("lr") is not None
    }


def calibration(trials: Iterable[FrozenTrial], family: str) -> Calibration | None:
    """The calibration of ``family`` in a study's trials (``None``: no trial of it chose yet).

    The earliest-numbered finished reference design of the family that chose rates, else the
    earliest-numbered finished trial of the family that did. Finalist repeats never calibrate
    (their original did, or used a calibration).
    """
    found: list[tuple[bool, int, dict[str, float]]] = []
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        record = TrialRecord.from_trial(t)
        if record.repeat_of is not None or (record.architecture or {}).get("family") != family:
            continue
        rates = chosen_rates(record)
        if rates:
            found.append((not is_reference(t), t.number, rates))
    if not found:
        return None
    not_reference, number, rates = min(found, key=lambda f: (f[0], f[1]))
    return Calibration(family=family, trial=number, reference=not not_reference, rates=rates)


def with_rates(cfg: Mapping[str, Any], rates: Mapping[str, float]) -> dict[str, Any]:
    """The run config whose tasks adapt at ``rates`` (a task's own ``lr`` still wins).

    A task given a rate no longer chooses on the grid (``adaptation_budget``: a task that sets its
    own rate keeps it). ``cfg`` is not changed.
    """
    out = copy.deepcopy(dict(cfg))
    for task, rate in rates.items():
        block = out["tasks"].get(task)
        if block is not None and block.get("lr") is None:
            block["lr"] = float(rate)
    return out


def calibrated(
    cfg: Mapping[str, Any], trials: Iterable[FrozenTrial], family: str, reference: bool
) -> tuple[dict[str, Any], Calibration | None]:
    """The run config of one trial under ``finetune.lr_choice``, and the calibration it used.

    Args:
        cfg: The run config (plain values).
        trials: The study's trials so far.
        family: The trial's architecture family.
        reference: Whether the trial is a reference design's (it chooses on the grid itself).

    Returns:
        ``(cfg, None)`` when the trial chooses on the grid itself (``lr_choice=candidate``, no
        grid, a reference design, or no calibration of its family yet); else the config at the
        family's rates and the calibration.
    """
    f = cfg["finetune"]
    if f.get("lr_choice", "candidate") != "family" or not f.get("lr_grid") or reference:
        return dict(cfg), None
    found = calibration(trials, family)
    if found is None:
        return dict(cfg), None
    return with_rates(cfg, found.rates), found
