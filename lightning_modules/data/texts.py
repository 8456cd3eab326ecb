"""The raw material of a run: pretraining texts, each task's splits, and token blocks.

``lightning_modules/suite.py`` turns them into a ``Suite`` (tokenizer, blocks, encoded tasks);
this module knows nothing of task kinds, so the data package imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from lightning_modules.data.code import code_splits
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import Splits
from lightning_modules.data.sources import corpus_from_source, task_splits_from_source
from lightning_modules.data.world import World

__all__ = ["BUILTIN_TASKS", "DataError", "corpus_texts", "make_blocks", "task_splits"]

# ``code`` comes from its own generator (``data/code.py``), the others from the world.
BUILTIN_TASKS = ("qa", "sentiment", "ner", "translation", "summarization", "code")


def corpus_texts(corpus: Mapping[str, Any], seed: int) -> list[str]:
    """The pretraining documents named by a ``data.corpus`` config.

    Types: ``builtin`` (the synthetic world), ``text`` (local text/JSONL files), ``hf`` (a
    ``datasets`` split); see ``sources.corpus_from_source`` and docs/data.md.
    """
    kind = corpus.get("type", "builtin")
    if kind == "builtin":
        share = corpus.get("target_stories", 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise DataError(
                f"data.corpus.target_stories: expected a share in [0, 1], got {share!r}"
            )
        return World(seed=seed).corpus(
            n_sentences=int(corpus.get("n_sentences", 20000)), target_stories=float(share)
        )
    return corpus_from_source(corpus)


def task_splits(
    name: str,
    source: Mapping[str, Any],
    seed: int,
    task_kind: str | None = None,
    example: str | None = None,
) -> Splits:
    """The examples of task ``name`` from its ``source`` config.

    Types: ``builtin`` (the synthetic world), ``squad``, ``classification`` (CSV/TSV/JSONL),
    ``polarity``, ``conll``, ``parallel``, ``hf``; see ``sources.task_splits_from_source`` and
    docs/data.md. ``example``, the example type of task kind ``task_kind`` (its task class's
    ``example``), is checked against what a file source yields and tells an ``hf`` source which
    examples to build.
    """
    kind = source.get("type", "builtin")
    if kind != "builtin":
        return task_splits_from_source(name, source, seed, task_kind, example)
    which = source.get("name", name)
    if which not in BUILTIN_TASKS:
        raise DataError(
            f"task '{name}': the built-in suite has no task '{which}' "
            f"(known: {', '.join(BUILTIN_TASKS)})"
        )
    sizes = {k: int(source[k]) for k in ("n_train", "n_val", "n_test") if k in source}
    if which == "code":
        return code_splits(seed=seed, **sizes)
    return getattr(World(seed=seed), which)(**sizes)


def make_blocks(token_ids: list[list[int]], eos_id: int, seq_len: int) -> Tensor:
    """Concatenate documents (each closed by EOS) and cut them into (N, seq_len + 1) blocks."""
    flat = [t for doc in token_ids for t in (*doc, eos_id)]
    n = len(flat) // (seq_len + 1)
    if n < 2:
        raise DataError(f"pretraining corpus has {len(flat)} tokens: too few for seq_len {seq_len}")
    return torch.tensor(flat[: n * (seq_len + 1)], dtype=torch.long).view(n, seq_len + 1)
