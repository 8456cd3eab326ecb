"""One set of defaults: what conf/ gives a key agrees with the schema's default for it.

Every primary config (conf/search.yaml, train, sweep, validate, export, report) and every
experiment bundle is composed as the entry points compose it, and each value is compared with the
default of its key in ``nas.config.schema`` (the schema alone, composed with no file). A key whose
schema has no default (``???``: the budgets, the vocabulary) or that sits in an open section
(``tasks``, ``sampler``, a corpus ``source``, ...) is the files' to give. Every other difference
must be listed in ``DELIBERATE`` below with the file that makes it, so a new accidental copy of a
default that disagrees (``eval_batch_size: 100`` in conf/ beside 64 in the schema) fails, naming
the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import MISSING, OmegaConf

from nas.config.compose import CONF_DIR
from nas.config.schema import SCHEMAS
from tests.conftest import compose_config

NEEDS = {"train": ["arch=a.yaml"], "validate": ["study=s"], "export": ["study=s"]}
NEEDS["report"] = NEEDS["validate"]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
# The storage=sqlite option (search's and report's default) sets the heartbeat; the schema's
# default (None: off) is what storage=memory gets.
SQLITE = {"storage.heartbeat_interval": 60, "storage.grace_period": 180}

#: (primary config, experiment or None) -> the keys its files set to another value than the
#: schema's default, on purpose, and the value they set.
DELIBERATE: dict[tuple[str, str | None], dict[str, Any]] = {
    ("search", None): SQLITE,
    ("train", None): {},
    ("sweep", None): {},
    ("validate", None): {},
    ("export", None): {},
    ("report", None): SQLITE,
    ("search", "quick"): {**SQLITE, "search_space": "tiny", "n_trials": 4},
    ("train", "quick"): {"search_space": "tiny", "n_trials": 4},
    ("sweep", "quick"): {"search_space": "tiny", "n_trials": 4},
    ("search", "real_suite"): {
        **SQLITE,
        "n_trials": 6,
        "study_name": "real_suite",
        "data.tokenizer_task_texts": True,  # the data=wikitext2 option: fit the BPE on the tasks
    },
    ("train", "real_suite"): {
        "n_trials": 6,
        "study_name": "real_suite",
        "data.tokenizer_task_texts": True,
    },
    ("sweep", "real_suite"): {
        "n_trials": 6,
        "study_name": "real_suite",
        "data.tokenizer_task_texts": True,
    },
}
CASES = [
    *[(name, None) for name in SCHEMAS],
    *[(name, e) for name in ("search", "train", "sweep") for e in EXPERIMENTS],
]


def schema_defaults(config_name: str) -> dict[str, Any]:
    """The schema of ``config_name`` alone, as plain values (``???`` where it has no default)."""
    return OmegaConf.to_container(OmegaConf.structured(SCHEMAS[config_name][1]))


def differences(composed: Any, defaults: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Key path -> (the files' value, the schema's default) wherever the two differ.

    Keys the schema does not know (open sections) and keys without a default are skipped.
    """
    out: dict[str, tuple[Any, Any]] = {}
    if isinstance(defaults, str) and defaults == MISSING:
        return out
    if isinstance(composed, dict) and isinstance(defaults, dict):
        for key, value in composed.items():
            if key in defaults:
                out.update(differences(value, defaults[key], f"{prefix}{key}."))
        return out
    if composed != defaults or isinstance(composed, bool) != isinstance(defaults, bool):
        out[prefix.rstrip(".")] = (composed, defaults)
    return out


def composed_values(config_name: str, experiment: str | None, extra: list[str] = ()) -> dict:
    overrides = [*NEEDS.get(config_name, []), *extra]
    if experiment:
        overrides.append(f"experiment={experiment}")
    return OmegaConf.to_container(compose_config(config_name, overrides))  # unresolved


@pytest.mark.parametrize(("config_name", "experiment"), CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_conf_values_agree_with_the_schema_defaults(config_name, experiment):
    found = differences(composed_values(config_name, experiment), schema_defaults(config_name))
    expected = DELIBERATE[(config_name, experiment)]
    accidental = {k: v for k, v in found.items() if k not in expected}
    assert not accidental, "conf/ and nas/config/schema.py disagree: " + "; ".join(
        f"{key}: conf/ gives {conf!r}, the schema {default!r}"
        for key, (conf, default) in accidental.items()
    )
    # The list stays true: each deliberate difference is there, with its value.
    assert {k: v[0] for k, v in found.items()} == expected


def test_every_primary_config_and_bundle_is_covered():
    primaries = {p.stem for p in CONF_DIR.glob("*.yaml") if p.stem != "hydra_common"}
    assert primaries == set(SCHEMAS)
    assert set(DELIBERATE) == set(CASES)


def test_a_planted_difference_fails_with_its_key(tmp_path: Path):
    """A bundle that quietly re-sets a default to another value is caught, by key path."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "planted.yaml").write_text(
        "# @package _global_\nfinetune:\n  eval_batch_size: 64\nobjective:\n  test_top_k: 1\n"
    )
    composed = composed_values("search", "planted", [f"hydra.searchpath=[file://{tmp_path}]"])
    found = differences(composed, schema_defaults("search"))
    accidental = {k for k in found if k not in DELIBERATE[("search", None)]}
    assert accidental == {"finetune.eval_batch_size", "objective.test_top_k"}
    assert found["finetune.eval_batch_size"] == (64, 100)
    # ... and in an option file's nested default (finetune.lora of the schema's defaults).
    composed["finetune"]["lora"]["rank"] = 4
    assert "finetune.lora.rank" in differences(composed, schema_defaults("search"))


def test_a_key_without_a_default_or_in_an_open_section_is_the_files():
    defaults = schema_defaults("search")
    assert defaults["finetune"]["steps"] == MISSING and defaults["data"]["vocab_size"] == MISSING
    assert differences({"finetune": {"steps": 60}, "tasks": {"qa": {"steps": 80}}}, defaults) == {}
