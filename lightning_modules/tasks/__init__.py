"""Fine-tuning tasks, registered by head kind."""

from __future__ import annotations

from lightning_modules.tasks.base import Encoded, Task, make_loader
from lightning_modules.tasks.classification import SequenceTask
from lightning_modules.tasks.code import CodeTask
from lightning_modules.tasks.generation import GenerationTask
from lightning_modules.tasks.span import SpanTask
from lightning_modules.tasks.token import TokenTask

TASK_KINDS: dict[str, type[Task]] = {
    SpanTask.kind: SpanTask,
    SequenceTask.kind: SequenceTask,
    TokenTask.kind: TokenTask,
    GenerationTask.kind: GenerationTask,
    CodeTask.kind: CodeTask,
}

__all__ = [
    "TASK_KINDS",
    "CodeTask",
    "Encoded",
    "GenerationTask",
    "SequenceTask",
    "SpanTask",
    "Task",
    "TokenTask",
    "make_loader",
]
