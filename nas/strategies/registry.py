"""The strategies by name (``conf/strategy/<name>.yaml``'s ``name``): the one place to add one."""

from __future__ import annotations

from nas.config.errors import ConfigError
from nas.strategies.base import Strategy
from nas.strategies.standalone import Standalone
from nas.strategies.supernet import Supernet
from nas.strategies.two_tier import TwoTier

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Standalone(), Supernet(), TwoTier())}


def strategy_for(name: str) -> Strategy:
    """The strategy named ``name`` (``strategy.name`` of the checked config).

    Raises:
        ConfigError: No strategy of that name (one line naming the key).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"strategy={name!r} is not one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
