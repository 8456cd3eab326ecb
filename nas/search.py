"""Architecture search: ``python nas/search.py task=qa search_space=small n_trials=12``.

Composes ``conf/search.yaml`` and calls ``nas.engine.run.run_search``; see the README for the
groups.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR, entry, run_guarded


@hydra.main(config_path=str(CONF_DIR), config_name="search", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from nas.config.check import check_config
    from nas.study.storage import default_study_name

    if cfg.study_name is None:
        cfg.study_name = default_study_name(cfg, HydraConfig.get().runtime.choices.get("task"))
    # A bad value is one line before the engine (Lightning and the trial code) loads, so --help,
    # --cfg, a bad override and a bad value all answer in seconds.
    run_guarded(check_config, cfg)
    from nas.engine.run import run_search

    run_guarded(run_search, cfg)


def cli() -> None:
    """The ``adaptnas-search`` console command (``--help``, ``--cfg job``, overrides)."""
    entry(main, "search")


if __name__ == "__main__":
    cli()
