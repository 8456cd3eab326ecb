"""The strategy seam: how a study's candidates get their pretrained weights.

A ``Strategy`` answers the three questions the engine asks of it, once per search:

* ``study_suffix``: what the default study name adds (studies of two strategies never mix);
* ``space(settings, space)``: the search space the study samples (a strategy may narrow it);
* ``open(settings, cfg, space, suite, study_folder)``: what the objective asks per trial, or
  ``None`` when every candidate is pretrained on its own. The object returned has
  ``prepare(trial, arch, cfg) -> (run config, init_model)`` (``nas.engine.optuna_objective``).

``settings`` is the checked ``strategy`` section (``nas.config.schema.StrategyConfig``, whose
rules are the only check of its values); ``cfg`` the run config as plain values. Strategies are
chosen by name through ``nas.strategies.registry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.config.schema import StrategyConfig
from search_spaces import SearchSpace


class Strategy:
    """A search strategy; the defaults are those of ``standalone``."""

    name: str = ""
    study_suffix: str = ""

    def space(self, settings: StrategyConfig, space: SearchSpace) -> SearchSpace:
        """The space the study samples."""
        return space

    def open(
        self,
        settings: StrategyConfig,
        cfg: Mapping[str, Any],
        space: SearchSpace,
        suite,
        study_folder: Path,
    ) -> Any:
        """What the objective asks per trial (``prepare``), or ``None``: a plain staged trial."""
        return None
