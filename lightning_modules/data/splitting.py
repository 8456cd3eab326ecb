"""Seeded splits for datasets that come without an official one, and seeded size limits.

Everything draws from ``random.Random(f"{seed}|{purpose}")``: string seeds hash the same in every
process and Python version 3.x, so a split depends only on the data, the seed and the task name.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from lightning_modules.data.errors import DataError

HELD_OUT = ("validation", "test")
DEFAULT_FRACTIONS = {"validation": 0.1, "test": 0.1}


def rng_for(seed: int, purpose: str) -> random.Random:
    """A generator that depends only on ``seed`` and ``purpose`` (a task name, a split)."""
    return random.Random(f"{seed}|{purpose}")


def check_fractions(fractions: Mapping[str, Any], where: str) -> dict[str, float]:
    """Validate ``{validation: f, test: f}``: each in (0, 1), together below 1."""
    out = {}
    for split, f in fractions.items():
        if split not in HELD_OUT:
            raise DataError(f"{where}: fractions.{split}: unknown split (known: validation, test)")
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
            raise DataError(f"{where}: fractions.{split}={f!r} must be a number in (0, 1)")
        out[split] = float(f)
    if sum(out.values()) >= 1:
        raise DataError(f"{where}: fractions {out} leave nothing to train on")
    return out


def _cut(n: int, fractions: dict[str, float]) -> dict[str, int]:
    return {s: round(n * f) for s, f in fractions.items()}


def split_off(
    examples: Sequence,
    fractions: Mapping[str, float],
    seed: int,
    where: str,
    *,
    group: Callable[[Any], Hashable] | None = None,
    stratify: Callable[[Any], Hashable] | None = None,
) -> dict[str, list]:
    """Carve held-out splits out of ``examples``; the rest is ``train``.

    Args:
        examples: The pool (usually the train file).
        fractions: ``{split: fraction}`` for the splits to carve (``validation``, ``test``).
        seed: The data seed.
        where: Who is asking (``task 'qa'``), for error messages and the generator's purpose.
        group: Key that must not straddle splits (QA: the article, so no context leaks);
            whole groups are dealt to the held-out splits until each reaches its share.
        stratify: Key whose proportions every split keeps (classification: the label).

    Returns:
        ``{"train": [...], split: [...]}``, each list in a seeded order.

    Raises:
        DataError: When a split would be empty (too few examples or groups for the fractions).
    """
    rng = rng_for(seed, f"split|{where}")
    fractions = dict(fractions)
    out: dict[str, list] = {"train": [], **{s: [] for s in fractions}}
    if group is not None:
        groups: dict[Hashable, list] = defaultdict(list)
        for ex in examples:
            groups[group(ex)].append(ex)
        keys = sorted(groups, key=str)  # a fixed order before shuffling: file order must not matter
        rng.shuffle(keys)
        want = _cut(len(examples), fractions)
        for key in keys:
            # Deal each group to the first held-out split still short of its share, else train.
            dest = next((s for s in fractions if len(out[s]) < want[s]), "train")
            out[dest].extend(groups[key])
    else:
        strata: dict[Hashable, list] = defaultdict(list)
        for ex in examples:
            strata[stratify(ex) if stratify else 0].append(ex)
        for key in sorted(strata, key=str):
            items = list(strata[key])
            rng.shuffle(items)
            start = 0
            for split, k in _cut(len(items), fractions).items():
                out[split].extend(items[start : start + k])
                start += k
            out["train"].extend(items[start:])
    for split, items in out.items():
        if not items:
            by = " (whole groups)" if group is not None else ""
            raise DataError(
                f"{where}: split '{split}' would be empty: {len(examples)} examples{by} "
                f"with fractions {fractions}; give more data or larger fractions"
            )
        rng.shuffle(items)
    return out


def limit(examples: list, n: int | None, seed: int, purpose: str) -> list:
    """A seeded sample of at most ``n`` examples, in their original order (``None``: all)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(rng_for(seed, f"limit|{purpose}").sample(range(len(examples)), n))
    return [examples[i] for i in keep]
