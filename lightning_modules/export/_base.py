"""The format interface of an export, and what every format shares.

A format (``safetensors``, ``onnx``, ``hf``: one module each, in the manner of Optuna's
``pruners/_base.py``) writes a model into a folder and measures how far its copy is from the
PyTorch model (``parity``). ``nas.exporting.pipeline`` loops over the formats a user asks for.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor, nn

from lightning_modules.adaptation import method_problem
from lightning_modules.config import TransformerConfig
from lightning_modules.tasks import TASK_KINDS

# The ``format`` of an export folder's architecture.yaml (written by nas.exporting, read by
# adaptnas.load).
EXPORT_FORMAT = "adaptnas-export-v1"
# Largest absolute difference accepted between PyTorch and an exported copy, in fp32.
TOLERANCE = 1e-4


def is_generative(kind: str | None) -> bool:
    """Whether a task of ``kind`` generates text with the LM head (``generation``, ``code``).

    Such a kind's task class sets ``needs_lm_head``: its backbone is the whole ``LanguageModel``.
    """
    task = TASK_KINDS.get(kind or "")
    return bool(task and task.needs_lm_head)


class ExportError(RuntimeError):
    """An export that cannot be made or that does not reproduce the PyTorch model."""


class TaskModel(nn.Module):
    """A fine-tuned backbone and its task head: what one task's weights file holds.

    Args:
        backbone: A ``Transformer`` (or a whole ``LanguageModel`` for generation tasks).
        head: The task head.
        kind: The task kind (``sequence``, ``token``, ``span``, ``generation``, ``code``).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, kind: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.kind = kind

    @property
    def cfg(self) -> TransformerConfig:
        """The backbone's architecture."""
        return self.backbone.cfg


def _cpu(module: nn.Module) -> nn.Module:
    """``module`` itself when it already lives on the CPU, else a CPU copy (the original stays)."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return module
    import copy

    return copy.deepcopy(module).cpu()


def follow_umask(path: str | Path, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have under the user's umask.

    ``tempfile.mkstemp``/``mkdtemp`` (the atomic writes) create 0600 files and 0700 folders, so
    a model exported to share on a cluster's project directory would be private to its owner.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if folder else 0o666) & ~mask)


class _Graph(nn.Module):
    """``(input_ids, attention_mask[, prefix_len])`` -> the task's outputs, as its task runs it.

    Mirrors ``Task.backbone_kwargs``: a prefix-LM reads a whole classification, tagging or QA input
    as its bidirectional prefix. A generation graph returns LM logits and, for a prefix-LM, takes
    the prefix length as a third input.
    """

    def __init__(self, model: TaskModel) -> None:
        super().__init__()
        self.backbone, self.head, self.kind = model.backbone, model.head, model.kind
        self.family = model.cfg.family

    def forward(self, input_ids: Tensor, attention_mask: Tensor, prefix_len: Tensor | None = None):
        if is_generative(self.kind):
            return self.backbone(input_ids, attention_mask=attention_mask, prefix_len=prefix_len)
        kwargs: dict[str, Tensor] = {"attention_mask": attention_mask}
        if self.family == "prefix_lm":
            kwargs["prefix_len"] = attention_mask.sum(1)
        hidden = self.backbone(input_ids, **kwargs)  # (B, T, d)
        return self.head(hidden, attention_mask)


def task_graph(model: TaskModel) -> nn.Module:
    """The module that ``export_onnx`` traces for ``model`` (in eval mode)."""
    return _Graph(model).eval()


class ExportFormat(abc.ABC):
    """One way of shipping a model: ``write`` it into a folder, then check it with ``parity``.

    Attributes:
        name: The format's name, as ``architecture.yaml``'s ``files`` and the config name it
            (``onnx``, ``transformers``).
        checked_with: What ``parity`` reads the copy back with (for messages; default ``name``).
        language_model: Whether the format writes the pretrained language model too.
    """

    name: ClassVar[str]
    checked_with: ClassVar[str] = ""  # what reads the copy back (``onnxruntime``); "" = name
    language_model: ClassVar[bool] = False  # writes the pretrained LM (``lm``), not tasks only

    def unsupported(self, cfg: TransformerConfig) -> str:
        """Why no model of architecture ``cfg`` can be written in this format (empty: it can)."""
        return ""

    def problem(self, model: nn.Module, method: str | None = None) -> str:
        """Why this model cannot be written (its head, its adaptation ``method``); empty: it can.

        Here: the method's own answer (``AdaptationMethod.export_problems``) for this format.
        """
        return method_problem(method, self.name)

    @abc.abstractmethod
    def write(
        self, model: nn.Module, folder: Path, name: str, example: dict[str, Tensor], **kwargs: Any
    ) -> Path:
        """Write ``model`` (a ``LanguageModel`` or a ``TaskModel``) as ``name`` into ``folder``.

        Args:
            model: The PyTorch model.
            folder: The export folder; the format picks the path below it.
            name: ``lm`` or the task's name.
            example: A real batch (shapes to trace with; at least 2 x 2 tokens).
            kwargs: Format options (``tokenizer``, ``labels``, ``spec``, ``metadata``).

        Returns:
            The file or folder written.
        """

    @abc.abstractmethod
    def parity(self, path: Path, model: nn.Module, batches: Sequence[dict[str, Tensor]]) -> float:
        """Largest absolute difference between the copy at ``path`` and ``model`` on ``batches``."""

    def entry(self, path: Path, folder: Path, model: nn.Module) -> Any:
        """What ``architecture.yaml``'s ``files`` section records for ``path``."""
        return path.relative_to(folder).as_posix()
