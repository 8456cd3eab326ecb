"""The strategy seam: how a study's candidates get their pretrained weights.

A ``Strategy`` answers the questions the engine asks of it, once per search:

* ``study_suffix``: what the default study name adds (studies of two strategies never mix);
* ``space(settings, space)``: the search space the study samples (a strategy may narrow it);
* ``open(setup)``: what the objective asks per trial, or ``None`` when every candidate is
  pretrained on its own. The object returned has
  ``prepare(trial, arch, cfg) -> (run config, init_model)`` (``nas.engine.optuna_objective``);
* ``before_trials(setup, study, attrs)``: work of the whole study before any of its trials runs
  (after the reference designs are enqueued): ``two_tier``'s screen and hand-off. It returns the
  least number of trials the study needs (``None``: ``n_trials`` as given); ``least_trials(study)``
  reads it back from the study on a resume (before any work).

``setup`` (a ``SearchSetup``) is what the engine resolved once for the whole search: ``settings``,
the checked ``strategy`` section (``nas.config.schema.StrategyConfig``, whose rules are the only
check of its values); ``cfg``, the run config as plain values; the space, the data and what the
data decides of an architecture, and the study's folder. Strategies are chosen by name through
``nas.strategies.registry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nas.config.schema import StrategyConfig
from search_spaces import SearchSpace


@dataclass(frozen=True)
class SearchSetup:
    """What the engine resolved once for the whole search, as its strategy is given it.

    Attributes:
        settings: The checked ``strategy``.
        cfg: The run config as plain values.
        space: The space the study samples (``Strategy.space``'s result).
        suite: The run's data.
        data: ``vocab_size`` and ``max_seq_len``, what the data decides of an architecture
            (``nas.trial.run.data_fields``).
        study_folder: The study's folder.
    """

    settings: StrategyConfig
    cfg: Mapping[str, Any]
    space: SearchSpace
    suite: Any
    data: Mapping[str, int]
    study_folder: Path


class Strategy:
    """A search strategy; the defaults are those of ``standalone``."""

    name: str = ""
    study_suffix: str = ""

    def space(self, settings: StrategyConfig, space: SearchSpace) -> SearchSpace:
        """The space the study samples."""
        return space

    def open(self, setup: SearchSetup) -> Any:
        """What the objective asks per trial (``prepare``), or ``None``: a plain staged trial."""
        return None

    def before_trials(
        self,
        setup: SearchSetup,
        study: optuna.Study,
        attrs: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Work before the study's trials run (each worker, each resume); ``None``: nothing.

        Args:
            setup: The search's settings, run config, space, data and folder.
            study: The study, its reference designs enqueued.
            attrs: This worker's user attributes (worker, host, pid).

        Returns:
            The least number of trials the study needs, or ``None``.
        """
        return None

    def least_trials(self, study: optuna.Study) -> int | None:
        """The least number of trials ``study`` needs, as kept in it; ``None``: ``n_trials``."""
        return None
