"""Everything a run's trials share: corpus blocks, tokenizer and encoded tasks, built once.

Building the suite costs seconds (generate or read, train the tokenizer, tokenise); a trial costs
only its model. ``build_suite`` memoises on its arguments, so a long-lived worker process builds
it once for all its trials. It joins the data package (texts, splits, tokenizer) with the task
kinds (``lightning_modules/tasks``), which is why it lives above both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from torch import Tensor

from lightning_modules.data.errors import DataError
from lightning_modules.data.leakage import held_out_texts, remove_held_out
from lightning_modules.data.sources import training_texts
from lightning_modules.data.texts import corpus_texts, make_blocks, task_splits
from lightning_modules.data.tokenizer import EOS, MASK, SPECIAL_TOKENS, load_or_train_tokenizer
from lightning_modules.tasks import TASK_KINDS, Task

__all__ = ["DataError", "Suite", "build_suite"]


@dataclass
class Suite:
    """The shared data of a run.

    Attributes:
        tokenizer: The run's tokenizer (``tokenizers.Tokenizer``).
        train_blocks: Pretraining token blocks (N, seq_len + 1).
        val_blocks: Held-out pretraining blocks (M, seq_len + 1).
        tasks: Fine-tuning tasks by name, in the order they are run.
        special_ids: Ids the objectives need (``mask``, ``n_special``).
        held_out_removed: Corpus sentences dropped because a task's validation or test split
            holds them (``leakage.remove_held_out``).
    """

    tokenizer: Any
    train_blocks: Tensor
    val_blocks: Tensor
    tasks: dict[str, Task]
    special_ids: dict[str, int]
    held_out_removed: int = 0

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def seq_len(self) -> int:
        return self.train_blocks.shape[1] - 1

    def floors(self, split: str = "validation") -> dict[str, float]:
        """Per task, the score of its trivial baseline on ``split`` (``Task.floor``)."""
        return {name: task.floor(split) for name, task in self.tasks.items()}


def build_suite(
    data: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]], cache_dir=None
) -> Suite:
    """Build (or fetch from this process's memo) the suite for ``data`` and ``tasks`` configs.

    Args:
        data: ``seed``, ``vocab_size``, ``seq_len``, ``val_blocks``, ``corpus`` (a source config).
        tasks: Task configs by name: ``kind``, ``metric``, ``max_len``, ``source``.
        cache_dir: Where the tokenizer is cached on disk (``None``: not cached).
    """
    key = json.dumps(
        {
            "data": dict(data),
            "tasks": {k: dict(v) for k, v in tasks.items()},
            "order": list(tasks),
            "cwd": os.getcwd(),  # relative data paths resolve against it
        },
        sort_keys=True,
        default=str,
    )
    return _build_suite_cached(key, str(cache_dir) if cache_dir else None)


@lru_cache(maxsize=2)
def _build_suite_cached(key: str, cache_dir: str | None) -> Suite:
    spec = json.loads(key)
    data = spec["data"]
    task_cfgs = {name: spec["tasks"][name] for name in spec["order"]}  # run order as configured
    seed = int(data.get("seed", 0))
    seq_len = int(data["seq_len"])
    kinds: dict[str, type[Task]] = {}
    for name, cfg in task_cfgs.items():
        kind = cfg.get("kind")
        if kind not in TASK_KINDS:
            raise DataError(
                f"task '{name}': unknown kind '{kind}' (known: {', '.join(TASK_KINDS)})"
            )
        kinds[name] = TASK_KINDS[kind]
    texts = corpus_texts(data.get("corpus", {}), seed)
    splits = {
        name: task_splits(name, cfg.get("source", {}), seed, cfg["kind"], kinds[name].example)
        for name, cfg in task_cfgs.items()
    }
    # No validation or test example of any task may be read during pretraining.
    texts, held_out_removed = remove_held_out(
        texts, [t for name in task_cfgs for t in held_out_texts(splits[name])]
    )
    tok_texts = list(texts)
    if data.get("tokenizer_task_texts", False):
        # Real tasks bring words (and whole languages: Multi30k's German) that the pretraining
        # corpus lacks; fitting the BPE on their training splits too keeps them from shattering
        # into characters. Held-out splits stay out of it.
        for name in task_cfgs:
            tok_texts += training_texts(splits[name])
    tok = load_or_train_tokenizer(tok_texts, int(data["vocab_size"]), cache_dir)
    enc = tok.encode_batch(texts, add_special_tokens=False)
    blocks = make_blocks([e.ids for e in enc], tok.token_to_id(EOS), seq_len)
    n_val = min(int(data.get("val_blocks", 32)), max(1, len(blocks) // 10))
    tasks: dict[str, Task] = {}
    for name, cfg in task_cfgs.items():
        # from_config also passes the kind's own options (generation: max_new_tokens, ...).
        tasks[name] = kinds[name].from_config(name, splits[name], tok, cfg)
    return Suite(
        tokenizer=tok,
        train_blocks=blocks[:-n_val],
        val_blocks=blocks[-n_val:],
        tasks=tasks,
        special_ids={"mask": tok.token_to_id(MASK), "n_special": len(SPECIAL_TOKENS)},
        held_out_removed=held_out_removed,
    )
