"""Complete run configs for tests that call one stage with a few settings of their own.

The stages read every key without a fallback (the composed config always has them all), so a
test hands them the real composed ``conf/train.yaml`` with its own values on top, never a partial
dict.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from nas.study.storage import plain
from tests.conftest import compose_config


@functools.cache
def _composed() -> dict[str, Any]:
    return plain(compose_config("train", ["task=suite_all"]))


def trainer_config(**settings: Any) -> dict[str, Any]:
    """The composed ``trainer`` section with ``settings`` on top."""
    return {**copy.deepcopy(_composed()["trainer"]), **settings}


def run_config(**sections: Mapping[str, Any]) -> dict[str, Any]:
    """The composed train config with each given section's keys replaced (``tasks``: per task)."""
    out = copy.deepcopy(_composed())
    for name, values in sections.items():
        if name == "tasks":
            for task, keys in values.items():
                out["tasks"][task].update(keys)
        else:
            out[name].update(values)
    return out
