"""Config helpers every layer shares: ``plain`` copies of config nodes and the tiny-run budgets.

The schema itself (keys, types, the one set of defaults) is ``nas.config.schema``; the YAML files
are ``conf/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["TINY", "plain"]

#: Overrides that shrink the data and budgets of ``conf/search.yaml`` (or ``train.yaml``) to a CPU
#: trial of a second or two: the tests (tests/conftest.py), the benchmarks' smoke presets and
#: scripts/chaos.py add their own task sizes and search settings to these.
TINY: list[str] = [
    "data.vocab_size=384",
    "data.seq_len=32",
    "data.val_blocks=4",
    "data.corpus.n_sentences=1200",
    "pretrain.tokens=4096",
    "pretrain.batch_size=16",
    "finetune.steps=8",
    "finetune.batch_size=16",
    "finetune.eval_batch_size=64",
]


def plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain-dict copy of a config node."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
