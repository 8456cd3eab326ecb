"""A W&B sweep over a search space: ``python nas/sweep.py search_space=small method=bayes``.

Composes ``conf/sweep.yaml`` and calls ``nas.engine.wandb_sweep.write_sweep``; see
``docs/tracking.md``.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR, entry, run_guarded


@hydra.main(config_path=str(CONF_DIR), config_name="sweep", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # The library (torch, Lightning, Optuna) loads once the config has composed, so
    # --help, --cfg and a bad override answer in seconds.
    from nas.engine.wandb_sweep import write_sweep

    overrides = list(HydraConfig.get().overrides.task)
    run_guarded(lambda c: write_sweep(c, overrides), cfg)


def cli() -> None:
    """The ``adaptnas-sweep`` console command: a Hydra app over ``conf/sweep.yaml``."""
    entry(main, "sweep")


if __name__ == "__main__":
    cli()
