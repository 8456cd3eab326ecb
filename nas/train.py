"""One architecture through the staged trial: ``python nas/train.py arch=<architecture.yaml>``.

Composes ``conf/train.yaml`` and calls ``nas.engine.run.run_train``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR, entry, run_guarded


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # The library (torch, Lightning, Optuna) loads once the config has composed, so
    # --help, --cfg and a bad override answer in seconds.
    from nas.engine.run import run_train

    run_guarded(run_train, cfg)


def cli() -> None:
    """The ``adaptnas-train`` console command (``--help``, ``--cfg job``, overrides)."""
    entry(main, "train")


if __name__ == "__main__":
    cli()
