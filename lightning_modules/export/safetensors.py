"""safetensors: the pretrained language model and, per task, the fine-tuned backbone + head.

Never pickle: loading reads tensors only. A LoRA task model is written merged (the keys of an
unadapted model); ``save_adapter`` writes the adapter and head alone, ``load_adapter`` rebuilds
the task model from them and the pretrained weights.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_modules.adaptation import (
    METHODS,
    AdaptationSpec,
    insert_modules,
    lora_state_dict,
    merged,
)
from lightning_modules.config import TransformerConfig
from lightning_modules.export._base import (
    ExportError,
    ExportFormat,
    TaskModel,
    _cpu,
    follow_umask,
    task_graph,
)
from lightning_modules.model import LanguageModel, Transformer


def save_safetensors(module: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None):
    """Write ``module``'s tensors to ``path`` atomically (temp file + rename).

    Shared tensors (a tied LM head) are stored once; ``load_safetensors`` ties them again.

    Args:
        module: Any module (``LanguageModel``, ``TaskModel``).
        path: Target ``.safetensors`` file.
        metadata: String-valued header entries (non-strings are ``str()``-ed).
    """
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        meta = {k: str(v) for k, v in (metadata or {}).items()}
        save_model(_cpu(module), tmp, metadata=meta)
        follow_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string header of a safetensors file (empty when it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def load_safetensors(module: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``module`` in place, strictly: a missing or extra tensor is an error.

    Args:
        module: A module of the architecture the file was written from.
        path: A file written by ``save_safetensors``.

    Returns:
        ``module``.

    Raises:
        ExportError: The file is not safetensors, or does not fit the module (names the first
            mismatching tensors).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such weights file")
    try:
        load_model(module, str(path), strict=True)
    except SafetensorError as err:  # a pickle, a truncated download: never unpickled, refused
        first = " ".join(str(err).split())[:200]
        raise ExportError(f"{path}: not a safetensors file ({first})") from None
    except RuntimeError as err:
        first = " ".join(str(err).split())[:300]
        raise ExportError(f"{path}: weights do not fit the architecture ({first})") from None
    return module


def build_task_model(cfg: TransformerConfig, task) -> TaskModel:
    """An untrained ``TaskModel`` shaped like the one ``task`` fine-tunes (for loading weights).

    Mirrors ``nas.trial.stages.finetune``: the backbone is a ``Transformer``, or the whole
    ``LanguageModel`` for kinds that set ``needs_lm_head`` (generation decodes with the LM head);
    the head is ``task.make_head(cfg)``.
    """
    needs_lm = bool(getattr(task, "needs_lm_head", False))
    backbone: nn.Module = LanguageModel(cfg) if needs_lm else Transformer(cfg)
    return TaskModel(backbone, task.make_head(cfg), task.kind)


# ---- adapted task models (finetune.method) ----------------------------------------------------
ADAPTATION_KEY = "adaptation"  # metadata entry of a task file: the AdaptationSpec as JSON


def save_task_weights(
    model: TaskModel,
    path: str | Path,
    spec: AdaptationSpec | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write one task's weights, LoRA merged into them (the keys of an unadapted model).

    A bottleneck-adapter model cannot merge: its file holds the adapters too, and
    ``load_task_weights`` reads the spec from the metadata to rebuild them.
    """
    spec = spec or AdaptationSpec()
    meta = {**(metadata or {}), ADAPTATION_KEY: spec.to_json()}
    save_safetensors(merged(model), path, meta)


def load_task_weights(cfg: TransformerConfig, task, path: str | Path) -> TaskModel:
    """``build_task_model`` + ``load_safetensors`` for a file of ``save_task_weights``.

    Files without an adaptation entry (written before methods existed) load as before.
    """
    spec = AdaptationSpec.from_json(read_metadata(path).get(ADAPTATION_KEY))
    model = build_task_model(cfg, task)
    if not METHODS[spec.method].merges:  # its modules are in the file: give the model them
        insert_modules(model.backbone, spec)
    return load_safetensors(model, path)


def save_atomic(tensors: dict[str, Any], path: str | Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file so that a kill leaves the old file or the new one, never half."""
    from safetensors.torch import save_file

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_adapter(
    model: TaskModel, path: str | Path, spec: AdaptationSpec, metadata: dict[str, Any] | None = None
) -> None:
    """Write the adapter alone: the LoRA (or adapter) tensors and the task head's.

    With the pretrained model (``backbone.safetensors``) it rebuilds the task model
    (``load_adapter``): a LoRA task model's base weights are the pretrained ones, bit for bit.
    """

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.cpu() for k, v in lora_state_dict(model).items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta[ADAPTATION_KEY] = spec.to_json()
    save_atomic(state, path, meta)


def load_adapter(lm: LanguageModel, task, path: str | Path, merge: bool = False) -> TaskModel:
    """The task model from the pretrained ``lm`` and an adapter file of ``save_adapter``.

    Args:
        lm: The pretrained language model (not changed: the task model gets a copy).
        task: The task (its head's shape, whether it adapts the whole language model).
        path: The adapter file.
        merge: Merge LoRA into the weights (what ONNX and ``transformers`` get).

    Raises:
        ExportError: The file does not fit ``lm`` and the task (names the first tensors).
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such adapter file")
    spec = AdaptationSpec.from_json(read_metadata(path).get(ADAPTATION_KEY))
    needs_lm = bool(getattr(task, "needs_lm_head", False))
    backbone = copy.deepcopy(lm if needs_lm else lm.backbone)
    model = TaskModel(insert_modules(backbone, spec), task.make_head(lm.cfg), task.kind)
    state = load_file(str(path))
    wanted = set(lora_state_dict(model))
    if set(state) != wanted:
        odd = sorted(set(state) ^ wanted)[:3]
        raise ExportError(f"{path}: adapter does not fit the model and task ({', '.join(odd)})")
    model.load_state_dict(state, strict=False)
    return merged(model) if merge else model


def _outputs(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
    ids, mask = batch["input_ids"].long().cpu(), batch["attention_mask"].long().cpu()
    with torch.no_grad():
        if isinstance(model, TaskModel):
            out = task_graph(model)(ids, mask)
        else:
            out = model.eval()(ids, attention_mask=mask)
    return out if isinstance(out, tuple) else (out,)


class SafetensorsFormat(ExportFormat):
    """``tasks/<name>.safetensors`` (a ``TaskModel``, LoRA merged) or ``<name>.safetensors``."""

    name = "safetensors"

    def write(
        self,
        model: nn.Module,
        folder: Path,
        name: str,
        example: dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> Path:
        """Write ``model``; ``spec`` (an ``AdaptationSpec``) and ``metadata`` go to the header."""
        if isinstance(model, TaskModel):
            path = Path(folder) / "tasks" / f"{name}.safetensors"
            save_task_weights(model, path, kwargs.get("spec"), kwargs.get("metadata"))
        else:
            path = Path(folder) / f"{name}.safetensors"
            save_safetensors(model, path, kwargs.get("metadata"))
        return path

    def parity(self, path: Path, model: nn.Module, batches: Sequence[dict[str, Tensor]]) -> float:
        """Load ``path`` strictly into a copy of ``model`` (merged) and compare their outputs."""
        model = _cpu(model).eval()
        copy_ = load_safetensors(copy.deepcopy(merged(model)), path).eval()
        worst = 0.0
        for batch in batches:
            for a, b in zip(_outputs(copy_, batch), _outputs(model, batch), strict=True):
                worst = max(worst, float((a.float() - b.float()).abs().max()))
        return worst
