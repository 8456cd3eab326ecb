"""W&B sweeps over a search space, for ``python nas/sweep.py search_space=small method=bayes``.

Writes ``sweep.yaml`` for ``wandb sweep``: the space's parameters with the same ranges and choices
(``params.<name>``, per-layer entries as ``params.d_ff.0``, ``params.d_ff.1``, ...), ``metric:
adaptability`` (maximised), ``program: nas/train.py`` and a command that hands the sampled values
to it as Hydra overrides (``${args_override_hydra}``: ``++params.n_layer=3``). ``nas/train.py``
turns them back into a ``TransformerConfig`` through the same ``SearchSpace`` (range checks,
conditions, per-layer counts, fixed fields) as a search, and runs the same staged trial::

    python nas/sweep.py search_space=small method=bayes out=sweep.yaml task=qa
    wandb sweep sweep.yaml             # prints the sweep id
    wandb agent <entity>/<project>/<sweep id>

A Hydra app over ``conf/sweep.yaml`` (``--help``, ``--cfg job``), which has ``nas/train.py``'s
groups and keys: any other override (``task=qa``, ``finetune.steps=50``) is checked as a run's and
passed to every run.
A sweep cannot express conditions (``when``) or a per-layer count that follows ``n_layer``: such
entries are sampled in every run and ignored by ``nas/train.py`` where they do not apply; the
differences from the Optuna space are printed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lightning_modules.config import TransformerConfig
from nas.config.errors import ConfigError
from nas.trial.record import ADAPTABILITY
from search_spaces import Param, SearchSpace, SearchSpaceError, builtin_spaces, load_space

SWEEP_METHODS = ("bayes", "random")  # W&B's search methods (not adaptation methods)
PREFIX = "params"  # sweep parameter names and the nas/train.py config key: params.<name>
PROGRAM = "nas/train.py"
# Keys of conf/sweep.yaml beyond nas/train.py's; every other override is handed to each run.
CLI_KEYS = ("search_space", "method", "out", "project", "entity", "name")


@dataclass
class Sweep:
    """A W&B sweep config and the ways it differs from the Optuna space it came from."""

    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """The ``sweep.yaml`` text (notes as a leading comment)."""
        head = "".join(f"# {n}\n" for n in self.notes)
        return head + yaml.safe_dump(self.config, sort_keys=False)


def _grid(p: Param) -> list[Any]:
    count = int(round((p.high - p.low) / p.step))
    values = [p.low + k * p.step for k in range(count + 1)]
    return [int(v) for v in values] if p.type == "int" else [round(v, 12) for v in values]


def sweep_parameter(p: Param) -> tuple[dict[str, Any], str | None]:
    """The W&B parameter spec of one entry, and a note when it is not exactly the same.

    Args:
        p: The search-space entry.

    Returns:
        ``(spec, note)``; ``note`` is ``None`` when the sweep samples what Optuna would.
    """
    if p.type == "categorical":
        return {"values": list(p.choices)}, None
    if p.log:
        dist = "q_log_uniform_values" if p.type == "int" else "log_uniform_values"
        spec: dict[str, Any] = {"distribution": dist, "min": p.low, "max": p.high}
        if p.type == "int":
            spec["q"] = 1
            return spec, "log-uniform integers rounded to the nearest integer (W&B q=1)"
        return spec, None
    if p.step is None or (p.type == "int" and p.step == 1):
        dist = "int_uniform" if p.type == "int" else "uniform"
        return {"distribution": dist, "min": p.low, "max": p.high}, None
    on_grid = abs(p.low / p.step - round(p.low / p.step)) < 1e-9
    if on_grid:
        # q_uniform rounds to multiples of q: the grid when low is one; the end points come
        # half as often as the inner values (Optuna draws every grid value alike).
        return (
            {"distribution": "q_uniform", "min": p.low, "max": p.high, "q": p.step},
            f"grid of step {p.step} via q_uniform: the end points {p.low} and {p.high} are "
            "drawn half as often as the others",
        )
    return (
        {"values": _grid(p)},
        f"grid of step {p.step} not aligned with 0: sampled from its list of values "
        "(unordered for bayes)",
    )


def _most(space: SearchSpace, name: str, default: int) -> int:
    if name in space.fixed:
        return int(space.fixed[name] or 0)
    if name not in {q.name for q in space.params}:
        return default
    p = space.param(name)
    if p.type == "categorical":
        return int(max(c for c in p.choices if c is not None))
    return int(p.high)


def max_layers(space: SearchSpace) -> int:
    """The most blocks an architecture of ``space`` can have (per-layer entries need as many):
    ``n_layer`` plus, for an ``encoder_decoder``, ``n_dec_layer`` decoder blocks."""
    return _most(space, "n_layer", 1) + _most(space, "n_dec_layer", 0)


def space_ref(space_arg: str) -> str:
    """How the sweep command names the space: a built-in name as is, a file by absolute path."""
    if space_arg in builtin_spaces():
        return space_arg
    return str(Path(space_arg).expanduser().resolve())


def sweep_config(
    space: SearchSpace,
    method: str = "bayes",
    overrides: Sequence[str] = (),
    project: str | None = "adaptnas",
    entity: str | None = None,
    name: str | None = None,
    space_arg: str | None = None,
) -> Sweep:
    """Translate a search space into a W&B sweep over ``nas/train.py``.

    Args:
        space: The search space.
        method: ``bayes`` or ``random``.
        overrides: ``nas/train.py`` overrides every run gets (``task=qa``, budgets...).
        project: W&B project of the sweep.
        entity: W&B entity, or ``None`` for the account's default.
        name: Sweep name; default ``<space>-<method>``.
        space_arg: How to name the space in the command (default: ``space.name``).

    Returns:
        The sweep config and the notes on what differs from the Optuna space.
    """
    if method not in SWEEP_METHODS:
        raise ConfigError(f"method={method!r} is not one of {', '.join(SWEEP_METHODS)}")
    parameters: dict[str, Any] = {}
    notes: list[str] = []
    for p in space.params:
        spec, note = sweep_parameter(p)
        if p.per_layer:
            n = max_layers(space)
            for i in range(n):
                parameters[f"{PREFIX}.{p.name}.{i}"] = dict(spec)
            notes.append(
                f"{PREFIX}.{p.name}.0 .. {PREFIX}.{p.name}.{n - 1}: one per possible block "
                f"(blocks up to {n}); a run uses the ones it has and ignores the rest"
            )
        else:
            parameters[f"{PREFIX}.{p.name}"] = spec
        if note:
            notes.append(f"{PREFIX}.{p.name}: {note}")
        if p.when:
            cond = " and ".join(f"{k} in {list(v)}" for k, v in p.when.items())
            fallback = p.fallback
            notes.append(
                f"{PREFIX}.{p.name}: sampled in every run but used only when {cond} "
                f"(otherwise ignored and {p.name}={fallback!r})"
            )
    command = [
        "${env}",
        "${interpreter}",
        "${program}",
        f"search_space={space_arg or space.name}",
        "logger=wandb",
        "test=false",  # validation drives the search; test splits are for finalists only
        *overrides,
        "${args_override_hydra}",
    ]
    config: dict[str, Any] = {
        "name": name or f"{space.name}-{method}",
        "description": f"adaptnas search space '{space.name}' as a W&B sweep",
    }
    if project:
        config["project"] = project
    if entity:
        config["entity"] = entity
    config.update(
        program=PROGRAM,
        method=method,
        metric={"name": ADAPTABILITY, "goal": "maximize"},
        parameters=parameters,
        command=command,
    )
    return Sweep(config=config, notes=notes)


# ---- the other way: sampled values -> architecture -----------------------------------------------
def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Hydra's nested ``params`` (``{"d_ff": {"0": 256}}``) as Optuna names (``{"d_ff.0": 256}``).

    A per-layer field may also come as a list (``params.d_ff=[256,128]``).
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out.update({f"{name}.{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out


def _coerce(p: Param, name: str, value: Any) -> Any:
    """A command-line value as the entry's type: ``None``/``True`` strings, ``3.0`` -> 3, grid
    snapping of ``0.15000000000000002``."""
    if p.type == "categorical":
        if any(type(c) is type(value) and c == value for c in p.choices):
            return value
        for choice in p.choices:
            if str(choice) == str(value) or (choice is None and str(value).lower() == "null"):
                return choice
        return value  # not a choice: params_to_arch names it
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if p.type == "int":
        return int(value) if float(value).is_integer() else value
    value = float(value)
    if p.step is not None and math.isfinite(value):
        k = round((value - p.low) / p.step)
        snapped = round(p.low + k * p.step, 12)
        if abs(snapped - value) <= 1e-6 * p.step:
            value = snapped
    return value


def arch_from_params(
    space: SearchSpace, params: Mapping[str, Any], data: Mapping[str, Any]
) -> TransformerConfig:
    """Build the architecture that sampled ``params`` describe, checked by ``space``.

    Args:
        space: The search space the values were drawn from.
        params: ``params`` from the config (nested or by Optuna name).
        data: Fields the data decides (``vocab_size``, ``max_seq_len``).

    Returns:
        The ``TransformerConfig`` (``ArchitectureError`` if the combination is invalid).

    Raises:
        SearchSpaceError: A name the space does not know, a value outside an entry, or a
            missing value.
    """
    flat = flatten_params(params)
    by_name = {p.name: p for p in space.params}
    coerced: dict[str, Any] = {}
    for name, value in flat.items():
        base, _, index = name.partition(".")
        p = by_name.get(base)
        if p is None or (p.per_layer != bool(index)) or (index and not index.isdigit()):
            known = ", ".join(
                f"{PREFIX}.{q.name}" + (".<i>" if q.per_layer else "") for q in space.params
            )
            raise SearchSpaceError(
                f"{PREFIX}.{name}: not a parameter of search space {space.name!r} (known: {known})"
            )
        coerced[name] = _coerce(p, name, value)
    return TransformerConfig.from_dict(space.params_to_arch(coerced, **dict(data)))


def sweep_arch(cfg: Any, data: Mapping[str, Any]) -> TransformerConfig:
    """``nas/train.py``'s architecture from ``search_space`` + ``params`` (a sweep run's overrides).

    Args:
        cfg: The composed train config (``search_space``, ``params``).
        data: Fields the data decides (``vocab_size``, ``max_seq_len``).
    """
    from omegaconf import OmegaConf

    if not cfg.get("search_space"):
        raise ConfigError(
            "params: also give search_space=<name or YAML> (the space the values come from)"
        )
    params = cfg.params
    if OmegaConf.is_config(params):
        params = OmegaConf.to_container(params, resolve=True)
    return arch_from_params(load_space(str(cfg.search_space)), params, data)


# ---- CLI ---------------------------------------------------------------------------------------
def train_overrides(overrides: Sequence[str]) -> list[str]:
    """The command-line overrides that every run gets: all but the sweep's own and Hydra's.

    Args:
        overrides: The overrides as given (``HydraConfig.get().overrides.task``).
    """
    rest = []
    for arg in overrides:
        key = arg.lstrip("+~").partition("=")[0]
        if key in CLI_KEYS or key.startswith("hydra"):
            continue
        rest.append(arg)
    return rest


def write_sweep(cfg: Any, overrides: Sequence[str] = ()) -> Sweep:
    """Write ``cfg.out`` from the composed ``conf/sweep.yaml`` and print the differences.

    Args:
        cfg: The composed sweep config (train's keys, already checked, plus the sweep's own).
        overrides: The command-line overrides; all but the sweep's own go to every run.

    Returns:
        The sweep written.
    """
    from nas.reporting.files import write_atomic

    space_arg = str(cfg.search_space or "small")
    space = load_space(space_arg)
    ref = space_ref(space_arg)
    sweep = sweep_config(
        space,
        method=str(cfg.method),
        overrides=train_overrides(overrides),
        project=cfg.project or None,
        entity=cfg.entity or None,
        name=cfg.name,
        space_arg=ref,
    )
    out = Path(str(cfg.out)).expanduser()
    write_atomic(out, sweep.to_yaml())
    n = len(sweep.config["parameters"])
    method = sweep.config["method"]
    print(f"wrote {out}: {n} parameters from search space '{space.name}', method {method}")
    if sweep.notes:
        print("differences from the Optuna search space:")
        for note in sweep.notes:
            print(f"  - {note}")
    repo = Path(__file__).resolve().parents[2]
    print(f"next: wandb sweep {out}; then, from {repo}: wandb agent <entity>/<project>/<sweep id>")
    return sweep
