"""Is the winner of a study trustworthy? ``python nas/validate.py study=suite-small``.

Composes ``conf/validate.yaml`` and calls ``nas.validity.study.run_validate``; see
``docs/validity.md``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nas.config.compose import CONF_DIR, entry, run_guarded


@hydra.main(config_path=str(CONF_DIR), config_name="validate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # The library (torch, Lightning, Optuna) loads once the config has composed, so
    # --help, --cfg and a bad override answer in seconds.
    from nas.validity.report import summary_lines
    from nas.validity.study import run_validate

    result = run_guarded(run_validate, cfg)
    for line in summary_lines(result.doc):
        print(line)
    for path in result.files.values():
        print(path)


def cli() -> None:
    """The ``adaptnas-validate`` console command (``--help``, ``--cfg job``, overrides)."""
    entry(main, "validate")


if __name__ == "__main__":
    cli()
