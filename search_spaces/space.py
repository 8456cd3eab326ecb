"""The search-space language: which ``TransformerConfig`` fields a study searches, and how.

A search space is a YAML file (built-in ones live next to this module and are loaded by name with
``load_space("small")``; any other file is loaded by path)::

    name: small                      # optional; defaults to the file name without .yaml
    description: one line            # optional
    fixed:                           # TransformerConfig fields set for every trial (optional)
      dropout: 0.0
    params:                          # ordered; sampled in this order
      family: {type: categorical, choices: [decoder, encoder, prefix_lm, encoder_decoder]}
      n_layer: {type: int, low: 1, high: 4}
      n_dec_layer: {type: int, low: 1, high: 2, when: {family: [encoder_decoder]}}
      d_model: {type: categorical, choices: [64, 128]}
      n_head: {type: categorical, choices: [2, 4, 8]}
      d_ff: {type: int, low: 128, high: 512, step: 128, per_layer: true}
      n_kv_head: {type: categorical, choices: [null, 1, 2], when: {n_head: [4, 8]}}
      dropout: {type: float, low: 0.0, high: 0.2, step: 0.05}
      rope_base: {type: float, low: 1e3, high: 1e5, log: true}
    supernet:                        # optional: what one super-network fixes (strategy=supernet;
      family: [decoder, prefix_lm]   # a list narrows the choices, a scalar fixes the knob;
      mlp: gelu                      # see nas/strategies/supernet.py and docs/supernet.md)

Every key under ``fixed`` and ``params`` is an init field of
:class:`~lightning_modules.config.TransformerConfig`. An entry under ``params`` takes these keys:

``type`` (required)
    ``int`` (``trial.suggest_int``), ``float`` (``trial.suggest_float``) or ``categorical``
    (``trial.suggest_categorical``).
``low``, ``high`` (required for int and float)
    Inclusive bounds; integers for an int entry.
``step`` (int and float, optional)
    Grid spacing; ``high - low`` must be a multiple of it. Cannot be combined with ``log``.
``log`` (int and float, optional)
    Sample on a log scale; needs ``low > 0``.
``choices`` (required for categorical)
    A non-empty list of distinct scalars (``null``, booleans, numbers, strings).
``per_layer`` (optional, ``d_ff`` only)
    Sample one value per block: Optuna parameters ``d_ff.0``, ``d_ff.1``, ... all with the same
    distribution, as many as the trial's blocks: ``n_layer`` plus, for an ``encoder_decoder``,
    ``n_dec_layer`` (each must be fixed or listed before). The field becomes a list.
``when`` (optional)
    A mapping from the name of a param listed *before* this one to the list of its values that
    enable this one; every condition must hold. A param whose condition fails is not sampled (it
    is absent from ``trial.params``) and the field takes ``default``.
``default`` (optional, only with ``when``)
    The field's value when the condition fails; the ``TransformerConfig`` default otherwise.

The distribution of every Optuna parameter is static (the same in every trial), as Optuna's
samplers require: conditions only decide *whether* a parameter is sampled, never its choices.

``vocab_size`` and ``max_seq_len`` come from the data, not from the search: they cannot be params
and are passed to :meth:`SearchSpace.sample` as overrides. Mistakes are reported when the space is
loaded, as a :class:`SearchSpaceError` whose one-line message names the space and the entry.
Whether a sampled combination builds is checked by ``TransformerConfig`` itself: the caller builds
it from ``sample``'s kwargs and prunes the trial on ``ArchitectureError``. The built-in spaces only
produce valid combinations.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import BaseTrial

from lightning_modules.config import TransformerConfig

__all__ = [
    "DATA_FIELDS",
    "PARAM_TYPES",
    "PER_LAYER_FIELDS",
    "SPACES_DIR",
    "Param",
    "SearchSpace",
    "SearchSpaceError",
    "builtin_spaces",
    "load_space",
]

#: Folder of the built-in ``<name>.yaml`` spaces.
SPACES_DIR = Path(__file__).resolve().parent
#: Values of an entry's ``type``.
PARAM_TYPES = ("int", "float", "categorical")
#: Fields set from the data (tokenizer, sequence length), never searched.
DATA_FIELDS = ("vocab_size", "max_seq_len")
#: Fields that may be sampled once per block.
PER_LAYER_FIELDS = ("d_ff",)

_TOP_LEVEL_KEYS = ("name", "description", "fixed", "params", "supernet")
_ENTRY_KEYS = ("type", "low", "high", "step", "log", "choices", "per_layer", "when", "default")
_NUMERIC_KEYS = ("low", "high", "step", "log")
_FIELDS = {f.name: f for f in dataclasses.fields(TransformerConfig) if f.init}
_SCALARS = (type(None), bool, int, float, str)
_TOLERANCE = 1e-9


class SearchSpaceError(ValueError):
    """An invalid search space (or a use of one); the one-line message names the space and entry."""


# ---- small helpers ---------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _did_you_mean(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(str(word), list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (``True != 1`` here)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _on_grid(value: float, low: float, step: float) -> bool:
    k = (value - low) / step
    return abs(k - round(k)) <= 1e-6 * max(1.0, abs(k))


def _field_default(name: str) -> Any:
    return _FIELDS[name].default


# ---- one entry -------------------------------------------------------------------------------
@dataclass
class Param:
    """One entry of ``params``: a ``TransformerConfig`` field and the distribution it is drawn from.

    Attributes:
        name: The ``TransformerConfig`` field (and the Optuna parameter name, or its prefix for
            per-layer entries: ``d_ff.0``, ``d_ff.1``, ...).
        type: ``int``, ``float`` or ``categorical``.
        low: Inclusive lower bound (int and float).
        high: Inclusive upper bound (int and float).
        step: Grid spacing, or ``None``.
        log: Sample on a log scale.
        choices: The values of a categorical entry.
        per_layer: One value per block.
        when: Conditions: earlier param name -> the values that enable this one.
        has_default: Whether the entry gives a ``default``.
        default: The field's value when a condition fails (when ``has_default``).
    """

    name: str
    type: str
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    per_layer: bool = False
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    has_default: bool = False
    default: Any = None

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this entry (of each per-layer parameter)."""
        if self.type == "categorical":
            return CategoricalDistribution(self.choices)
        if self.type == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: BaseTrial, name: str | None = None) -> Any:
        """Draw one value from ``trial`` as Optuna parameter ``name`` (default ``self.name``).

        Args:
            trial: The Optuna trial.
            name: Parameter name, e.g. ``d_ff.2`` for a per-layer entry.

        Returns:
            The sampled value.
        """
        name = name or self.name
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def can_take(self, value: Any) -> bool:
        """Whether sampling this entry can produce ``value``."""
        if self.type == "categorical":
            return any(_same(value, choice) for choice in self.choices)
        if self.type == "int" and not _is_int(value):
            return False
        if not _is_number(value):
            return False
        span = max(abs(self.low), abs(self.high), 1.0) * _TOLERANCE
        if not self.low - span <= value <= self.high + span:
            return False
        return self.step is None or _on_grid(value, self.low, self.step)

    @property
    def fallback(self) -> Any:
        """The field's value when the entry's condition fails."""
        return self.default if self.has_default else _field_default(self.name)

    def to_dict(self) -> dict[str, Any]:
        """The YAML entry (only the keys that were given or differ from their defaults)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out["low"], out["high"] = self.low, self.high
            if self.step is not None:
                out["step"] = self.step
            if self.log:
                out["log"] = True
        if self.per_layer:
            out["per_layer"] = True
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        if self.has_default:
            out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        return out


# ---- parsing ---------------------------------------------------------------------------------
class _EntryParser:
    """Validates one ``params`` entry; every failure is a one-line ``SearchSpaceError``."""

    def __init__(self, space: str, name: str, fixed: Mapping[str, Any], earlier: dict[str, Param]):
        self.space, self.name, self.fixed, self.earlier = space, name, fixed, earlier

    def fail(self, message: str) -> SearchSpaceError:
        return SearchSpaceError(
            _one_line(f"search space {self.space!r}: entry {self.name!r}: {message}")
        )

    def parse(self, entry: Any) -> Param:
        name = self.name
        if name not in _FIELDS:
            raise self.fail(f"not a TransformerConfig field{_did_you_mean(name, _FIELDS)}")
        if name in DATA_FIELDS:
            raise self.fail(
                f"{name} comes from the data, not the search; pass it to sample() as an override"
            )
        if name in self.fixed:
            raise self.fail("is both fixed and a param; keep one")
        if name == "n_dec_layer" and any(p.per_layer for p in self.earlier.values()):
            raise self.fail("must be listed before the per-layer entries (they count its blocks)")
        if not isinstance(entry, Mapping):
            raise self.fail(f"expected a mapping with a 'type' key, got {entry!r}")
        for key in entry:
            if key not in _ENTRY_KEYS:
                raise self.fail(f"unknown key {key!r}{_did_you_mean(key, _ENTRY_KEYS)}")
        if "type" not in entry:
            raise self.fail(f"missing 'type' (one of {', '.join(PARAM_TYPES)})")
        kind = entry["type"]
        if kind not in PARAM_TYPES:
            raise self.fail(
                f"unknown type {kind!r} (one of {', '.join(PARAM_TYPES)})"
                f"{_did_you_mean(kind, PARAM_TYPES)}"
            )
        param = self.categorical(entry) if kind == "categorical" else self.numeric(entry, kind)
        param.per_layer = self.per_layer(entry)
        param.when = self.when(entry)
        if "default" in entry:
            if not param.when:
                raise self.fail("'default' only applies to a conditional entry (with 'when')")
            param.has_default, param.default = True, self.default(entry["default"], param)
        return param

    def categorical(self, entry: Mapping[str, Any]) -> Param:
        for key in _NUMERIC_KEYS:
            if key in entry:
                raise self.fail(f"{key!r} does not apply to a categorical entry")
        if "choices" not in entry:
            raise self.fail("missing 'choices'")
        choices = entry["choices"]
        if not isinstance(choices, list | tuple):
            raise self.fail(f"choices must be a list, got {choices!r}")
        if not choices:
            raise self.fail("choices is empty")
        for i, choice in enumerate(choices):
            if not isinstance(choice, _SCALARS):
                raise self.fail(f"choice {choice!r} is not a scalar (null, bool, number, string)")
            if any(_same(choice, other) for other in choices[:i]):
                raise self.fail(f"choice {choice!r} is listed twice")
        return Param(self.name, "categorical", choices=tuple(choices))

    def numeric(self, entry: Mapping[str, Any], kind: str) -> Param:
        if "choices" in entry:
            raise self.fail(f"'choices' does not apply to a {kind} entry (use type: categorical)")
        for key in ("low", "high"):
            if key not in entry:
                raise self.fail(f"missing {key!r}")
        low, high, step = entry["low"], entry["high"], entry.get("step")
        log = entry.get("log", False)
        check = _is_int if kind == "int" else _is_number
        what = "an integer" if kind == "int" else "a number"
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and not check(value):
                raise self.fail(f"{key} ({value!r}) must be {what} for a {kind} entry")
        if not isinstance(log, bool):
            raise self.fail(f"log must be true or false, got {log!r}")
        if low > high:
            raise self.fail(f"low ({low}) is above high ({high})")
        if log and low <= 0:
            raise self.fail(f"log needs low > 0, got low ({low})")
        if log and step is not None:
            raise self.fail("'log' cannot be combined with 'step'")
        if step is not None:
            if step <= 0:
                raise self.fail(f"step ({step}) must be positive")
            if not _on_grid(high, low, step):
                raise self.fail(f"high - low ({high} - {low}) is not a multiple of step ({step})")
        if kind == "float":
            low, high = float(low), float(high)
            step = None if step is None else float(step)
        return Param(self.name, kind, low=low, high=high, step=step, log=log)

    def per_layer(self, entry: Mapping[str, Any]) -> bool:
        per_layer = entry.get("per_layer", False)
        if not isinstance(per_layer, bool):
            raise self.fail(f"per_layer must be true or false, got {per_layer!r}")
        if not per_layer:
            return False
        if self.name not in PER_LAYER_FIELDS:
            raise self.fail(f"per_layer only applies to {', '.join(PER_LAYER_FIELDS)}")
        if "n_layer" not in self.fixed and "n_layer" not in self.earlier:
            raise self.fail("per_layer needs n_layer fixed or listed as a param before this one")
        return True

    def when(self, entry: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
        if "when" not in entry:
            return {}
        when = entry["when"]
        if not isinstance(when, Mapping) or not when:
            raise self.fail(f"when must be a non-empty mapping of param -> values, got {when!r}")
        out: dict[str, tuple[Any, ...]] = {}
        for other, values in when.items():
            if other not in self.earlier:
                where = (
                    "is fixed, not searched"
                    if other in self.fixed
                    else "is not a param listed before this one"
                )
                raise self.fail(
                    f"'when' names {other!r}, which {where}{_did_you_mean(other, self.earlier)}"
                )
            source = self.earlier[other]
            if source.per_layer:
                raise self.fail(f"'when' names {other!r}, a per-layer param")
            if not isinstance(values, list | tuple):
                values = [values]
            if not values:
                raise self.fail(f"'when' gives no values for {other!r}")
            for value in values:
                possible = source.can_take(value) or (
                    bool(source.when) and _same(value, source.fallback)
                )
                if not possible:
                    raise self.fail(f"'when' value {value!r} of {other!r} can never be sampled")
            out[other] = tuple(values)
        return out

    def default(self, value: Any, param: Param) -> Any:
        if param.per_layer and isinstance(value, list | tuple):
            if not all(isinstance(v, _SCALARS) for v in value):
                raise self.fail(f"default {value!r} must be a scalar or a list of scalars")
            return list(value)
        if not isinstance(value, _SCALARS):
            raise self.fail(f"default {value!r} must be a scalar")
        return value


# ---- YAML ------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe loader that reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``) and rejects
    duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: list[Any] = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.append(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# ---- the space -------------------------------------------------------------------------------
@dataclass
class SearchSpace:
    """A named, validated search space over ``TransformerConfig`` fields.

    Build one with :meth:`from_dict`, :meth:`from_yaml` or :func:`load_space` (those validate);
    the constructor itself does not.

    Attributes:
        name: Name used in messages and logs.
        description: One line for humans.
        fixed: ``TransformerConfig`` fields set for every trial.
        params: The entries, in sampling order.
        supernet: What one super-network of this space fixes (``strategy=supernet``,
            ``nas/strategies/supernet.py``): field -> one value (fixed) or a list (choices kept).
            Ignored by the default strategy.
    """

    name: str
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    params: list[Param] = field(default_factory=list)
    supernet: dict[str, Any] = field(default_factory=dict)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> SearchSpace:
        """Validate and build a space from a mapping in the YAML format (see the module docs).

        Args:
            data: Mapping with ``name``, ``description``, ``fixed`` and ``params`` keys (all
                optional but ``params`` or ``fixed``).
            name: Name of the space; defaults to ``data["name"]``, else ``"unnamed"``.

        Returns:
            The space.

        Raises:
            SearchSpaceError: On any mistake; the message names the space and the entry.
        """
        if name is None:
            name = data.get("name", "unnamed") if isinstance(data, Mapping) else "unnamed"
        if not isinstance(name, str) or not name:
            raise SearchSpaceError(_one_line(f"search space name must be a string, got {name!r}"))

        def fail(message: str) -> SearchSpaceError:
            return SearchSpaceError(_one_line(f"search space {name!r}: {message}"))

        if not isinstance(data, Mapping):
            raise fail(f"expected a mapping with a 'params' key, got {type(data).__name__}")
        for key in data:
            if key not in _TOP_LEVEL_KEYS:
                raise fail(f"unknown top-level key {key!r}{_did_you_mean(key, _TOP_LEVEL_KEYS)}")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise fail(f"description must be a string, got {description!r}")
        fixed = data.get("fixed") or {}
        if not isinstance(fixed, Mapping):
            raise fail(f"fixed must be a mapping of field -> value, got {fixed!r}")
        for key in fixed:
            if key not in _FIELDS:
                raise fail(
                    f"fixed: {key!r} is not a TransformerConfig field{_did_you_mean(key, _FIELDS)}"
                )
        entries = data.get("params") or {}
        if not isinstance(entries, Mapping):
            raise fail(f"params must be a mapping of field -> entry, got {entries!r}")
        params: dict[str, Param] = {}
        for key, entry in entries.items():
            params[key] = _EntryParser(name, key, fixed, params).parse(entry)
        supernet = data.get("supernet") or {}
        if not isinstance(supernet, Mapping):
            raise fail(f"supernet must be a mapping of field -> value(s), got {supernet!r}")
        for key, value in supernet.items():
            if key not in _FIELDS or key in DATA_FIELDS:
                raise fail(
                    f"supernet: {key!r} is not a searchable TransformerConfig field"
                    f"{_did_you_mean(key, _FIELDS)}"
                )
            values = value if isinstance(value, list | tuple) else [value]
            if not values or not all(isinstance(v, _SCALARS) for v in values):
                raise fail(f"supernet: {key}={value!r} must be a scalar or a non-empty list")
        return cls(
            name=name,
            description=description,
            fixed=dict(fixed),
            params=list(params.values()),
            supernet=dict(supernet),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """Load and validate a YAML space file.

        Args:
            path: The file. The space's name is its ``name`` key, else the file name.

        Returns:
            The space.

        Raises:
            SearchSpaceError: When the file is missing, is not YAML, or the space is invalid.
        """
        path = Path(path)
        if not path.is_file():
            raise SearchSpaceError(f"search space file '{path}': no such file")
        try:
            data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as err:
            raise SearchSpaceError(
                _one_line(f"search space file '{path}': not valid YAML ({err})")
            ) from None
        if not isinstance(data, Mapping):
            raise SearchSpaceError(
                f"search space file '{path}': expected a mapping with a 'params' key"
            )
        name = data.get("name") or path.stem
        return cls.from_dict(data, name=name)

    def to_dict(self) -> dict[str, Any]:
        """The space in the YAML format; ``SearchSpace.from_dict(space.to_dict()) == space``."""
        out = {
            "name": self.name,
            "description": self.description,
            "fixed": dict(self.fixed),
            "params": {p.name: p.to_dict() for p in self.params},
        }
        if self.supernet:
            out["supernet"] = dict(self.supernet)
        return out

    def param(self, name: str) -> Param:
        """The entry for field ``name``.

        Raises:
            KeyError: When the space does not search ``name``.
        """
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def restrict(self, field: str, allowed_values: Any, why: str = "") -> SearchSpace:
        """The same space with ``field`` limited to ``allowed_values``.

        A categorical param keeps only its allowed choices (in their order); a fixed field, or
        one the space leaves at its ``TransformerConfig`` default, must already be allowed. The
        restricted space is the same for every trial of a study, so Optuna's rule of static
        distributions still holds. Conditions (``when``) that name a removed value simply never
        hold. The space itself is not changed.

        Args:
            field: A ``TransformerConfig`` field (``family``, ...).
            allowed_values: The values that may remain.
            why: A reason for error messages (``"task 'translation' needs a generator"``).

        Returns:
            The restricted space (``self`` when nothing changes).

        Raises:
            SearchSpaceError: (one line) when the field is unknown, is not categorical, or no
                value is left.
        """
        allowed = list(allowed_values)
        because = f" ({why})" if why else ""

        def fail(message: str) -> SearchSpaceError:
            return SearchSpaceError(_one_line(f"search space {self.name!r}: {message}{because}"))

        def ok(value: Any) -> bool:
            return any(_same(value, a) for a in allowed)

        if field not in _FIELDS:
            raise fail(f"cannot restrict {field!r}: not a TransformerConfig field")
        shown = ", ".join(map(str, allowed)) or "nothing"
        try:
            param = self.param(field)
        except KeyError:
            value = self.fixed.get(field, _field_default(field))
            where = "fixed" if field in self.fixed else "left at its default"
            if not ok(value):
                raise fail(f"{field}={value!r} is {where}, but only {shown} can serve") from None
            return self
        if param.type != "categorical":
            raise fail(f"cannot restrict {field!r}: only categorical entries can be restricted")
        choices = tuple(c for c in param.choices if ok(c))
        if not choices:
            raise fail(
                f"entry {field!r}: none of its choices ({', '.join(map(str, param.choices))}) "
                f"is allowed; only {shown} can serve"
            )
        if param.when and not ok(param.fallback):
            raise fail(
                f"entry {field!r}: its value when its condition fails ({param.fallback!r}) is "
                f"not allowed; only {shown} can serve"
            )
        if choices == param.choices:
            return self
        params = [dataclasses.replace(p, choices=choices) if p is param else p for p in self.params]
        return dataclasses.replace(self, params=params)

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, trial: BaseTrial, **overrides: Any) -> dict[str, Any]:
        """Draw one architecture from ``trial``.

        Args:
            trial: Optuna trial (``study.ask()``, an objective's trial, a ``FixedTrial``...).
            **overrides: ``TransformerConfig`` fields set by the caller (typically ``vocab_size``
                and ``max_seq_len``); they win over ``fixed``, and a param they name is not
                sampled (its value still drives conditions and the per-layer count).

        Returns:
            ``TransformerConfig`` init kwargs: fixed, then sampled (per-layer fields as lists;
            a param whose condition fails takes its default), then overrides. The config is
            not built here: the caller builds it and prunes the trial on ``ArchitectureError``.

        Raises:
            SearchSpaceError: When an override is not a ``TransformerConfig`` field.
        """
        return self._resolve(lambda p, name: p.suggest(trial, name), overrides)

    def params_to_arch(self, params: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
        """Rebuild :meth:`sample`'s result from a finished trial's ``trial.params``.

        Args:
            params: ``trial.params`` (parameters this space does not know are ignored).
            **overrides: The same overrides that were given to ``sample``.

        Returns:
            The kwargs ``sample`` returned for that trial.

        Raises:
            SearchSpaceError: When a parameter the space needs is missing or out of range.
        """

        def lookup(p: Param, name: str) -> Any:
            if name not in params:
                raise SearchSpaceError(
                    f"search space {self.name!r}: entry {p.name!r}: trial params lack {name!r}"
                )
            value = params[name]
            if not p.can_take(value):
                raise SearchSpaceError(
                    _one_line(
                        f"search space {self.name!r}: entry {p.name!r}: "
                        f"{name}={value!r} is not a value of this entry"
                    )
                )
            return value

        return self._resolve(lookup, overrides)

    def _resolve(
        self, get: Callable[[Param, str], Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        for key in overrides:
            if key not in _FIELDS:
                raise SearchSpaceError(
                    f"search space {self.name!r}: override {key!r} is not a TransformerConfig "
                    f"field{_did_you_mean(key, _FIELDS)}"
                )
        arch: dict[str, Any] = {**self.fixed, **overrides}
        for p in self.params:
            if p.name in overrides:
                continue
            enabled = all(
                any(_same(arch.get(other), value) for value in values)
                for other, values in p.when.items()
            )
            # Per-layer entries have one value per block of both stacks (encoder_decoder).
            n_layer = arch.get("n_layer", _field_default("n_layer")) + arch.get(
                "n_dec_layer", _field_default("n_dec_layer")
            )
            if not enabled:
                value = p.fallback
                if p.per_layer and not isinstance(value, list):
                    value = [value] * n_layer
            elif p.per_layer:
                value = [get(p, f"{p.name}.{i}") for i in range(n_layer)]
            else:
                value = get(p, p.name)
            arch[p.name] = value
        if arch.get("n_dec_layer") == 0 and arch.get("family") != "encoder_decoder":
            # As TransformerConfig.to_dict does: the other families' architectures (trial
            # attrs, YAML files) stay what they were before encoder-decoders existed.
            del arch["n_dec_layer"]
        return arch


# ---- lookup ----------------------------------------------------------------------------------
def builtin_spaces() -> list[str]:
    """Names of the built-in spaces (the ``*.yaml`` files shipped in this package), sorted."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path | SearchSpace) -> SearchSpace:
    """Load a built-in space by name, or any space file by path.

    Args:
        name_or_path: A bare name (``"small"``) for ``search_spaces/<name>.yaml``, a path ending
            in ``.yaml``/``.yml``, or a ``SearchSpace`` (returned as is).

    Returns:
        The validated space.

    Raises:
        SearchSpaceError: Unknown name (the message lists the built-in ones), missing file or
            invalid space.
    """
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")):
        return SearchSpace.from_yaml(name_or_path)
    names = builtin_spaces()
    if text not in names:
        raise SearchSpaceError(
            f"unknown search space {text!r}{_did_you_mean(text, names)}; built-in: "
            f"{', '.join(names)}; or give a path ending in .yaml"
        )
    return SearchSpace.from_yaml(SPACES_DIR / f"{text}.yaml")
