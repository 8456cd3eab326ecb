"""The strategies by name (``conf/strategy/<name>.yaml``'s ``name``): the one place to add one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.config.errors import ConfigError
from nas.strategies.base import Strategy
from nas.strategies.standalone import Standalone
from nas.strategies.supernet import Supernet

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Standalone(), Supernet())}


def strategy_name(cfg: Mapping[str, Any]) -> str:
    """``cfg.strategy.name`` (``standalone`` when the config has no strategy), checked."""
    strategy = cfg.get("strategy") or {}
    name = strategy.get("name", "standalone") if isinstance(strategy, Mapping) else strategy
    if name not in STRATEGIES:
        raise ConfigError(f"strategy={name!r} is not one of {', '.join(STRATEGIES)}")
    return name


def strategy_for(cfg: Mapping[str, Any]) -> Strategy:
    """The strategy ``cfg`` (a run config) names."""
    return STRATEGIES[strategy_name(cfg)]
