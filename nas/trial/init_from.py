"""`init_from=<export folder>` of `nas/train.py`: pretraining starts from its weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import same_vocabulary
from lightning_modules.export import load_safetensors
from nas.config.errors import ConfigError

log = logging.getLogger("adaptnas")


def init_from_export(folder: Any, arch: TransformerConfig, suite) -> Any:
    """``init_model`` for ``run_trial`` that loads an export's pretrained weights.

    Args:
        folder: ``init_from=`` (an export folder, or a study's ``weights/trial_<n>``); ``None``
            or empty: no initialisation.
        arch: The architecture about to be trained (with this run's data fields).
        suite: This run's data: its tokenizer must be the export's.

    Returns:
        ``None``, or a function that loads the weights into a freshly built model.

    Raises:
        ConfigError: No weights there, another tokenizer, or another architecture (the message
            names the differing knobs).
    """
    if not folder:
        return None
    path = Path(str(folder)).expanduser()
    weights = path / "backbone.safetensors"
    if not weights.is_file():
        raise ConfigError(
            f"init_from={folder}: no backbone.safetensors there (give a folder written by "
            "nas/export.py)"
        )
    tok = path / "tokenizer.json"
    if tok.is_file():
        from tokenizers import Tokenizer

        if not same_vocabulary(Tokenizer.from_file(str(tok)), suite.tokenizer):
            raise ConfigError(
                f"init_from={folder}: its tokenizer differs from this run's; use the search's "
                f"data settings (the retrain command in {path / 'README.md'} has them)"
            )
    saved = None
    if (path / "architecture.yaml").is_file():
        saved = TransformerConfig.from_yaml(path / "architecture.yaml")
    elif (path / "meta.json").is_file():
        saved = TransformerConfig.from_dict(
            json.loads((path / "meta.json").read_text())["architecture"]
        )
    if saved is not None:
        mine, theirs = arch.to_dict(), saved.to_dict()
        # max_seq_len only sizes learned position tables; the weights decide whether it fits.
        differ = [k for k in mine if k not in ("max_seq_len", "dropout") and mine[k] != theirs[k]]
        if differ:
            shown = ", ".join(f"{k}={mine[k]!r} (export: {theirs[k]!r})" for k in differ)
            raise ConfigError(f"init_from={folder}: another architecture: {shown}")

    def init_model(model) -> None:
        load_safetensors(model, weights)
        log.info("pretraining starts from %s", weights)

    return init_model
