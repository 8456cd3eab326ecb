"""The screen tier of a two-tier study (``strategy=two_tier``), as the storage keeps it.

A two-tier study is two linked Optuna studies in one storage: the **screen study**
(``<study_name>-screen``, minimised) holds one trial per screened candidate, scored on the
super-network without adaptation; the **main study** holds the confirmation tier (the reference
designs, then the top screened architectures enqueued once, as full trials). What links them:

* the main study's user attribute ``adaptnas:two_tier`` (:data:`STUDY_ATTR`): the screen study's
  name, the screen's settings, the super-network's build seconds and the **picks**, the screen
  trials chosen for confirmation (written before any of them is enqueued, so a resume enqueues
  the same ones);
* on each confirmation trial, ``adaptnas:screen_trial`` and ``adaptnas:screen_score``.

This module reads and writes those (the strategy does the screening, ``nas.reporting`` the
tables); it needs no model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from nas.trial.record import SCREEN_ARCH, SCREEN_SCORE, SCREEN_TRIAL, State  # noqa: F401

FrozenTrial = optuna.trial.FrozenTrial

STUDY_ATTR = "adaptnas:two_tier"  # main study: screen study, settings, build seconds, picks
ARCH = SCREEN_ARCH  # the trial keys are the record's (nas.trial.record)
SUFFIX = "-screen"  # the screen study's name = the main study's + this
# Knobs the screen cannot see (it scores in eval mode): candidates differing only in them are
# one candidate; a confirmation trial takes the value its screen trial drew.
BLIND = ("dropout",)


def screen_name(study_name: str) -> str:
    """The screen study's name for main study ``study_name``."""
    return study_name + SUFFIX


def complete(screen: optuna.Study) -> list[FrozenTrial]:
    """The screen study's COMPLETE trials (the ones that count towards ``screen_trials``)."""
    return screen.get_trials(deepcopy=False, states=(State.COMPLETE,))


def top_distinct(
    trials: Iterable[FrozenTrial], k: int, arch_of: Callable[[FrozenTrial], Mapping[str, Any]]
) -> list[FrozenTrial]:
    """The ``k`` best COMPLETE trials by screen score (lowest first), one per architecture.

    Args:
        trials: Screen trials (other states are ignored).
        k: How many.
        arch_of: A trial's architecture (``TransformerConfig`` kwargs); knobs in :data:`BLIND`
            are left out of the comparison.

    Returns:
        At most ``k`` trials; ties by score go to the earlier trial.
    """
    done = [t for t in trials if t.state == State.COMPLETE and t.value is not None]
    out: list[FrozenTrial] = []
    seen: set[str] = set()
    if k <= 0:
        return out
    for t in sorted(done, key=lambda t: (t.value, t.number)):
        arch = {key: v for key, v in arch_of(t).items() if key not in BLIND}
        key = json.dumps(arch, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(t)
            if len(out) == k:
                break
    return out


def confirmed(study: optuna.Study) -> dict[int, FrozenTrial]:
    """Screen trial number -> the main study's first trial that confirms it."""
    out: dict[int, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False):
        number = t.user_attrs.get(SCREEN_TRIAL)
        if number is not None and int(number) not in out:
            out[int(number)] = t
    return out


@dataclass
class ScreenSummary:
    """What a report says about a study's screen tier.

    Attributes:
        study: The screen study's name.
        screen: The score (``lm_loss``: lower is better).
        target: ``strategy.screen_trials``.
        screened: COMPLETE screen trials.
        seconds: Wall seconds of the screen trials (start to completion, summed).
        build_seconds: Wall seconds of the super-network's build (``None``: loaded, not built
            by this study).
        top: The best screen trials (distinct architectures), each a dict with ``screen_trial``,
            ``score``, ``architecture`` and ``confirmed_by`` (the main study's trial or ``None``).
    """

    study: str
    screen: str
    target: int
    screened: int
    seconds: float
    build_seconds: float | None
    top: list[dict[str, Any]]


def screen_study(study: optuna.Study) -> optuna.Study | None:
    """The screen study linked to ``study`` (``None``: not a two-tier study, or it is gone)."""
    doc = study.user_attrs.get(STUDY_ATTR)
    if not doc:
        return None
    try:
        return optuna.load_study(study_name=doc["screen_study"], storage=study._storage)
    except KeyError:
        return None


def summary(study: optuna.Study, top: int = 10) -> ScreenSummary | None:
    """The screen tier of ``study`` (``None``: not a two-tier study, or its screen is gone)."""
    screen = screen_study(study)
    if screen is None:
        return None
    doc = study.user_attrs[STUDY_ATTR]
    done = complete(screen)
    seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in done
        if t.datetime_start and t.datetime_complete
    )
    by = confirmed(study)
    picks = {int(n) for n in doc.get("picks", [])}
    best = top_distinct(done, top, lambda t: {ARCH: t.user_attrs.get(ARCH, t.number)})
    shown = best + [t for t in done if t.number in picks and t not in best]
    rows = [
        {
            "screen_trial": t.number,
            "score": t.value,
            "architecture": t.user_attrs.get(ARCH, ""),
            "confirmed_by": by[t.number].number if t.number in by else None,
        }
        for t in sorted(shown, key=lambda t: (t.value, t.number))
    ]
    return ScreenSummary(
        study=screen.study_name,
        screen=str(doc.get("screen", "lm_loss")),
        target=int(doc.get("screen_trials", 0)),
        screened=len(done),
        seconds=round(seconds, 1),
        build_seconds=doc.get("build_seconds"),
        top=rows,
    )
