"""``load(folder)`` and ``predict(...)``: an export of ``nas/export.py`` as a ready model.

Predictions go through the very task code that scored the model during the search (its encoding,
its head, its decoding of spans, tags and labels), so a loaded model predicts what the search
measured. Inputs per task kind:

* ``span`` (extractive QA): ``(question, context)`` or ``{"question": ..., "context": ...}``
  -> the answer text.
* ``sequence`` (classification): ``text`` or ``(text, text_pair)`` -> the label name.
* ``token`` (tagging): ``"a sentence"`` (split on whitespace) or a list of words
  -> ``[(word, tag), ...]``.
* ``generation`` (translation, summarisation): ``source text`` -> the generated text.
* ``code`` (code generation): ``a description of the function`` -> the generated Python code
  (as text: nothing generated is run here).

A single input gives a single output; a list of inputs gives a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from lightning_modules.config import TransformerConfig
from lightning_modules.data.examples import (
    Splits,
)
from lightning_modules.export import (
    EXPORT_FORMAT,
    ExportError,
    TaskModel,
    load_adapter,
    load_safetensors,
    load_task_weights,
    onnx_session,
)
from lightning_modules.model import LanguageModel
from lightning_modules.tasks import TASK_KINDS
from lightning_modules.tasks.base import Task, make_loader

__all__ = ["ExportedModel", "load", "predict"]

# How task models load: ``merged`` (each task's own file: LoRA merged into the weights, adapters
# included) or ``adapter`` (the pretrained backbone + ``tasks/<task>.adapter.safetensors``, for
# tasks adapted by finetune.method=lora or adapter; other tasks load their own file).
WEIGHTS = ("merged", "adapter")


class LoadError(ValueError):
    """A folder that is not a loadable adaptnas export; the message names the file."""


def _examples(kind: str, inputs: list[Any]) -> list[Any]:
    """Task records for raw inputs (labels are placeholders: prediction ignores them)."""
    if kind not in TASK_KINDS:
        raise ValueError(f"no predict() for task kind {kind!r}")
    return [TASK_KINDS[kind].example_of(x, i) for i, x in enumerate(inputs)]


def _is_single(kind: str, inputs: Any) -> bool:
    if isinstance(inputs, (str, Mapping)):
        return True
    return kind in TASK_KINDS and TASK_KINDS[kind].is_single(inputs)


class ExportedModel:
    """An export folder loaded for prediction.

    Attributes:
        folder: Where it was loaded from.
        arch: The architecture.
        tokenizer: The ``tokenizers.Tokenizer`` the model was trained with.
        lm: The pretrained language model (backbone + LM head).
        models: Per task, the fine-tuned backbone + head (``TaskModel``).
        tasks: Per task, its entry of ``architecture.yaml`` (kind, metric, labels, config).
        info: The whole ``architecture.yaml`` (scores, search settings, checks).
    """

    def __init__(
        self, folder: str | Path, device: str | torch.device = "cpu", weights: str = "merged"
    ) -> None:
        if weights not in WEIGHTS:
            raise LoadError(f"weights={weights!r} must be one of {', '.join(WEIGHTS)}")
        self.folder = Path(folder)
        path = self.folder / "architecture.yaml"
        if not path.is_file():
            raise LoadError(f"{path}: no such file; give a folder written by nas/export.py")
        info = yaml.safe_load(path.read_text())
        if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
            raise LoadError(f"{path}: not an adaptnas export (format {EXPORT_FORMAT} expected)")
        if not info.get("files"):
            raise LoadError(
                f"{path}: this export holds the architecture only (its trial kept no weights); "
                "retrain it with nas/train.py"
            )
        from tokenizers import Tokenizer

        self.info = info
        self.arch = TransformerConfig.from_dict(info["architecture"])
        self.tokenizer = Tokenizer.from_file(str(self.folder / info["files"]["tokenizer"]))
        self.device = torch.device(device)
        self.lm = load_safetensors(
            LanguageModel(self.arch), self.folder / info["files"]["backbone"]
        )
        self.lm.to(self.device).eval()
        self.tasks: dict[str, dict[str, Any]] = dict(info.get("tasks") or {})
        self.models: dict[str, TaskModel] = {}
        adapters = info["files"].get("adapters") or {}
        for name, rel in info["files"]["tasks"].items():
            task = self._task(name, [])
            try:
                if weights == "adapter" and name in adapters:
                    # base + adapter: the pretrained model with the adapter file on top
                    model = load_adapter(self.lm, task, self.folder / adapters[name])
                else:
                    model = load_task_weights(self.arch, task, self.folder / rel)
            except ExportError as err:
                raise LoadError(str(err)) from None
            self.models[name] = model.to(self.device).eval()

    def __repr__(self) -> str:
        tasks = ", ".join(f"{n} ({t['kind']})" for n, t in self.tasks.items())
        return f"ExportedModel({self.arch.describe()}; tasks: {tasks})"

    def _task(self, name: str, examples: list[Any]) -> Task:
        """The task object (its encoding and decoding) around ``examples``."""
        spec = self.tasks[name]
        kind = spec["kind"]
        if kind not in TASK_KINDS:
            raise LoadError(f"task '{name}': kind {kind!r} is unknown to this adaptnas version")
        if not examples:  # only the head's shape is needed: one placeholder example
            examples = _examples(kind, [TASK_KINDS[kind].placeholder_input])
        splits = Splits(
            train=examples,
            validation=examples,
            test=examples,
            labels=list(spec.get("labels") or []),
        )
        cfg = dict(spec.get("config") or {})
        cfg.setdefault("max_len", self.arch.max_seq_len)
        cfg["metric"] = spec.get("metric") or cfg.get("metric")
        cls = TASK_KINDS[kind]
        if hasattr(cls, "from_config"):
            return cls.from_config(name, splits, self.tokenizer, cfg)
        return cls(name, splits, self.tokenizer, int(cfg["max_len"]), cfg.get("metric"))

    def predict(self, task: str | None, inputs: Any, batch_size: int = 64) -> Any:
        """Predict with one task's fine-tuned model.

        Args:
            task: A task name of the export (``None`` when it has exactly one task).
            inputs: One input or a list of inputs of the task's kind (see the module doc).
            batch_size: Inputs run together.

        Returns:
            One output per input (a single output for a single input).
        """
        if task is None:
            if len(self.models) != 1:
                raise ValueError(f"name the task: one of {', '.join(self.models)}")
            task = next(iter(self.models))
        if task not in self.models:
            raise ValueError(
                f"task {task!r} is not in this export (tasks: {', '.join(self.models)})"
            )
        kind = self.tasks[task]["kind"]
        single = _is_single(kind, inputs)
        batch = [inputs] if single else list(inputs)
        if not batch:
            return []
        outputs = self._predict(task, kind, batch, batch_size)
        return outputs[0] if single else outputs

    @torch.no_grad()
    def _predict(self, name: str, kind: str, inputs: list[Any], batch_size: int) -> list[Any]:
        examples = _examples(kind, inputs)
        task = self._task(name, examples)
        model = self.models[name]
        encoded = task.encoded("test")
        preds: list[Any] = []
        for batch in make_loader(encoded, batch_size, shuffle=False):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            preds.extend(task.predict(model.backbone, model.head, batch))
        return task.outputs(preds, examples)

    def onnx_session(self, task: str):
        """An onnxruntime session of the task's graph (inputs ``input_ids``, ``attention_mask``).

        An ``encoder_decoder``'s generation task has two graphs: a ``Seq2SeqSession`` of both
        (``encode``, ``start``, ``step``; ``lightning_modules.export.onnx_greedy`` decodes).
        """
        rel = (self.info["files"].get("onnx") or {}).get(task)
        if rel is None:
            raise ValueError(f"task {task!r} has no ONNX graph in this export")
        if isinstance(rel, dict):
            from lightning_modules.export import Seq2SeqSession

            return Seq2SeqSession((self.folder / rel["encoder"]).parent)
        return onnx_session(self.folder / rel)

    def encode(self, task: str, inputs: list[Any]) -> dict[str, torch.Tensor]:
        """The padded tensors the task feeds its model for ``inputs`` (for ONNX, transformers)."""
        kind = self.tasks[task]["kind"]
        t = self._task(task, _examples(kind, inputs))
        return dict(t.encoded("test").tensors)


def load(
    folder: str | Path, device: str | torch.device = "cpu", weights: str = "merged"
) -> ExportedModel:
    """Load an export written by ``python nas/export.py`` (safetensors and YAML; no pickle).

    Args:
        folder: The export folder.
        device: Where the models run.
        weights: ``merged`` (default) or ``adapter``: see ``WEIGHTS``; both predict the same.

    Returns:
        The model, its tokenizer (``.tokenizer``) and one fine-tuned model per task, ready for
        ``predict``.
    """
    return ExportedModel(folder, device, weights)


def predict(model: ExportedModel, task: str | None, inputs: Any, batch_size: int = 64) -> Any:
    """``model.predict(task, inputs)``; see ``ExportedModel.predict``."""
    return model.predict(task, inputs, batch_size)
