"""The commands that retrain an exported trial with `nas/train.py`: `reproduce` and `longer`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

# Sections of the run config that decide what a retrain reproduces (compared with train.yaml).
RETRAIN_SECTIONS = ("data", "tasks", "pretrain", "finetune")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out |= _flatten(v, key)
        else:
            out[key] = v
    return out


def _hydra_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    text = str(v)
    if isinstance(v, str) and not re.fullmatch(r"[\w./:+-]+", text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def retrain_overrides(run: dict[str, Any], task_names: list[str], seed: int) -> list[str]:
    """Overrides that make ``nas/train.py`` see the data, tasks and budgets of the search.

    Every leaf of ``run``'s ``data``, ``tasks``, ``pretrain`` and ``finetune`` sections that
    differs from what ``conf/train.yaml`` composes with the same tasks becomes ``key=value``.
    """
    from nas.config.compose import CONF_DIR

    task_arg = task_names[0] if len(task_names) == 1 else "[" + ",".join(task_names) + "]"
    args = [f"task={task_arg}"]
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        overrides = [f"task={task_arg}"]
        if GlobalHydra.instance().is_initialized():  # inside nas/export.py's Hydra main: conf/
            base = OmegaConf.to_container(compose("train", overrides=overrides), resolve=False)
        else:
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                base = OmegaConf.to_container(compose("train", overrides=overrides), resolve=False)
    except Exception:  # a task without a conf/task file: list the tasks, not the diff
        base = {}
    want = _flatten({k: run.get(k) for k in RETRAIN_SECTIONS if run.get(k) is not None})
    have = _flatten({k: base.get(k) for k in RETRAIN_SECTIONS if base.get(k) is not None})
    for key, value in want.items():
        if key == "pretrain.tokens" or (key in have and have[key] == value):
            continue
        args.append(f"{'' if key in have else '+'}{key}={_hydra_value(value)}")
    args.append(f"seed={seed}")
    return args


def retrain_commands(
    arch_path: Path, run: dict[str, Any], task_names: list[str], seed: int, init_from: Path | None
) -> dict[str, str]:
    """``reproduce`` (the search's budget) and ``longer`` (10x pretraining) commands."""
    args = retrain_overrides(run, task_names, seed)
    tokens = (run.get("pretrain") or {}).get("tokens")
    if tokens is None:  # a run that recorded no budget: the default config's, not a literal
        from nas.config.compose import CONF_DIR

        tokens = yaml.safe_load((CONF_DIR / "pretrain" / "default.yaml").read_text())["tokens"]
    tokens = int(tokens)
    base = ["python", "nas/train.py", f"arch={arch_path}", *args]
    cmds = {"reproduce": shlex.join([*base, f"pretrain.tokens={tokens}"])}
    longer = [*base, f"pretrain.tokens={tokens * 10}"]
    if init_from is not None:
        longer.append(f"init_from={init_from}")
    cmds["longer"] = shlex.join(longer)
    return cmds
