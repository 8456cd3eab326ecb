"""One architecture through the staged trial: ``python nas/train.py arch=<architecture.yaml>``.

Composes ``conf/train.yaml`` and calls ``nas.engine.run_train``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_modules.config import TransformerConfig
from nas.cli import entry, run_guarded
from nas.engine import run_train


def check_arch_file(cfg: DictConfig) -> None:
    """Read ``arch=`` before any data is built: a wrong file fails at once, leaving nothing.

    Raises:
        ArchitectureError: A missing file, or one that is not an architecture (one line).
    """
    if cfg.get("params") or OmegaConf.is_missing(cfg, "arch") or not cfg.arch:
        return  # a sweep run (params=) or no arch: run_train says what is missing
    TransformerConfig.from_yaml(Path(str(cfg.arch)).expanduser())


def train(cfg: DictConfig) -> object:
    """``run_train`` after the architecture file is checked."""
    check_arch_file(cfg)
    return run_train(cfg)


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_guarded(train, cfg)


if __name__ == "__main__":
    entry(main, "train")
