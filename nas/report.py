"""Leaderboard and plots of a study, from its storage: ``python nas/report.py study=suite-small``.

Composes ``conf/report.yaml`` and calls ``nas.reporting.plots.run_report``; safe while the search
runs.
"""

from __future__ import annotations

import hydra
import matplotlib
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR, entry, run_guarded

matplotlib.use("Agg")  # files only, never a window


@hydra.main(config_path=str(CONF_DIR), config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # The library (torch, Lightning, Optuna) loads once the config has composed, so
    # --help, --cfg and a bad override answer in seconds.
    from nas.reporting.plots import run_report

    run_guarded(run_report, cfg)


def cli() -> None:
    """The ``adaptnas-report`` console command (``--help``, ``--cfg job``, overrides)."""
    entry(main, "report")


if __name__ == "__main__":
    cli()
