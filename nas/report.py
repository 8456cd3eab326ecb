"""Leaderboard and plots of a study, from its storage: ``python nas/report.py study=suite-small``.

Composes ``conf/report.yaml`` and calls ``nas.plots.run_report``; safe while the search runs.
"""

from __future__ import annotations

import hydra
import matplotlib
from omegaconf import DictConfig

from nas.cli import entry, run_guarded
from nas.plots import run_report

matplotlib.use("Agg")  # files only, never a window


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_guarded(run_report, cfg)


if __name__ == "__main__":
    entry(main, "report")
