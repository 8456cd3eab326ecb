"""Raw examples: what every data source (built-in generator, file reader, hub) yields.

Sources produce these plain records; tasks turn them into token tensors. Keeping the two apart lets
one reader serve several tasks and one task read several formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class QAExample:
    """An extractive question: the answer is a span of ``context``.

    ``answers`` holds every accepted answer as ``(text, char_start)``; SQuAD has several per
    question. Training uses the first one; scoring takes the best over all.
    """

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    group: str = ""  # article/title: seeded splits group by it so no context leaks across splits


@dataclass(frozen=True)
class TextExample:
    """A text (or text pair) with one class label index."""

    text: str
    label: int
    text_pair: str | None = None


@dataclass(frozen=True)
class TokenExample:
    """A pre-split sentence with one tag per token (IOB2 after reading)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PairExample:
    """A source text and its target text (translation, summarisation)."""

    source: str
    target: str


@dataclass
class Splits:
    """Train / validation / test lists of examples of one kind, plus label names when labelled."""

    train: list
    validation: list
    test: list
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            if not getattr(self, name):
                raise ValueError(f"split '{name}' is empty")
