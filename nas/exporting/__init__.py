"""Export as a concept: the study side of ``nas/export.py``.

* ``selection.py``: which trials ``trial=`` names, and the one reader of what a trial recorded.
* ``retrain.py``: the ``reproduce`` and ``longer`` commands of ``nas/train.py``.
* ``pipeline.py``: a trial's kept weights -> a checked folder, looping over the formats of
  ``lightning_modules.export`` (safetensors, ONNX, transformers); ``run_export`` is the entry.
* ``card.py`` and ``model_card.md``: the model card (``huggingface_hub.ModelCard``, YAML metadata).
* ``hub.py``: ``push_to_hub=``.

The formats themselves need no search and live in ``lightning_modules/export/``.
"""

from __future__ import annotations

from nas.exporting.card import card_data, model_card
from nas.exporting.hub import push_export
from nas.exporting.pipeline import (
    ExportResult,
    export_trial,
    requested_formats,
    run_export,
    write_architecture_only,
)
from nas.exporting.retrain import retrain_commands, retrain_overrides
from nas.exporting.selection import select_trials, trial_record

__all__ = [
    "ExportResult",
    "card_data",
    "export_trial",
    "model_card",
    "push_export",
    "requested_formats",
    "retrain_commands",
    "retrain_overrides",
    "run_export",
    "select_trials",
    "trial_record",
    "write_architecture_only",
]
