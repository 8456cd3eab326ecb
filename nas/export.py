"""Export a trial of a study: ``python nas/export.py study=<name> [trial=<n>|trial=pareto]``.

Composes ``conf/export.yaml`` and calls ``nas.exporting.run_export``; see ``docs/export.md``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR, entry, run_guarded


@hydra.main(config_path=str(CONF_DIR), config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # The library (torch, Lightning, Optuna) loads once the config has composed, so
    # --help, --cfg and a bad override answer in seconds.
    from nas.exporting import run_export

    for result in run_guarded(run_export, cfg) or []:
        print(f"exported trial {result.trial} to {result.folder}")
        for name, diff in result.parity.items():
            print(f"  {name}: max abs diff vs PyTorch {diff:.2e}")
        for name, why in result.skipped.items():
            print(f"  {name}: not exported: {why}")
        print(f"  retrain: {result.retrain.get('longer', '')}")
        if result.hub_url:
            print(f"  pushed to the Hub: {result.hub_url}")


def cli() -> None:
    """The ``adaptnas-export`` console command (``--help``, ``--cfg job``, overrides)."""
    entry(main, "export")


if __name__ == "__main__":
    cli()
