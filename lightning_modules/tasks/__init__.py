"""Fine-tuning tasks, registered by head kind."""

from __future__ import annotations

from lightning_modules.tasks.base import Encoded, Task, make_loader
from lightning_modules.tasks.classification import SequenceTask
from lightning_modules.tasks.span import SpanTask

TASK_KINDS: dict[str, type[Task]] = {
    SpanTask.kind: SpanTask,
    SequenceTask.kind: SequenceTask,
}

__all__ = ["TASK_KINDS", "Encoded", "SequenceTask", "SpanTask", "Task", "make_loader"]
