"""The task contract: how a fine-tuning task encodes its data, computes its loss and is scored.

A task owns its examples (already split), turns them into padded tensors once, and knows its head
kind and metric. ``FinetuneModule`` only calls the methods below, so a new task kind is one class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from lightning_modules.config import FAMILIES, TransformerConfig
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import Splits
from lightning_modules.data.tokenizer import PAD_ID

SPLITS = ("train", "validation", "test")


@dataclass
class Encoded:
    """One split as right-padded tensors (first dim = example) plus what scoring needs."""

    tensors: dict[str, Tensor]
    references: list[Any] = field(default_factory=list)
    # Row i encodes example sources[i] of the split's list; None: row i is example i (nothing
    # was dropped in encoding, as QA drops training examples whose answer was cut off).
    sources: list[int] | None = None

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def source(self, row: int) -> int:
        """The index in the split's list of the example that row ``row`` encodes."""
        return row if self.sources is None else self.sources[row]

    def subset(self, index: Tensor) -> Encoded:
        """The examples at ``index`` (a 1-D long tensor), in that order."""
        rows = index.tolist()
        refs = [self.references[i] for i in rows] if self.references else []
        sources = [self.source(i) for i in rows]
        return Encoded({k: v[index] for k, v in self.tensors.items()}, refs, sources)


class _Batches(Sampler[list[int]]):
    """Index batches; reshuffled each epoch from its own generator so runs are reproducible."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool):
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.gen) if self.shuffle else torch.arange(self.n)
        stop = self.n - self.n % self.batch_size if self.drop_last else self.n
        for i in range(0, stop, self.batch_size):
            yield order[i : i + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class _Collate:
    """Gather rows and cut the padding the whole batch shares (shorter batches train faster)."""

    def __init__(self, tensors: dict[str, Tensor]):
        self.tensors = tensors

    def __call__(self, idx: list[int]) -> dict[str, Tensor]:
        index = torch.tensor(idx)
        batch = {k: v[index] for k, v in self.tensors.items()}
        mask = batch["attention_mask"]  # (B, T)
        width = int(mask.sum(1).max())
        batch["index"] = index
        for k, v in batch.items():
            if v.dim() >= 2 and v.shape[1] == mask.shape[1]:
                batch[k] = v[:, :width]
        return batch


def make_loader(
    encoded: Encoded, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """A DataLoader over an encoded split: in-process, no workers (the data is already tensors)."""
    sampler = _Batches(
        len(encoded), batch_size, shuffle, seed, drop_last and len(encoded) > batch_size
    )
    return DataLoader(
        list(range(len(encoded))),
        batch_sampler=sampler,
        collate_fn=_Collate(encoded.tensors),
        num_workers=0,
    )


class _Rows:
    """Collate for a plain tensor: a batch is ``tensor[idx]`` (no per-row stacking)."""

    def __init__(self, tensor: Tensor):
        self.tensor = tensor

    def __call__(self, idx: list[int]) -> Tensor:
        return self.tensor[torch.tensor(idx)]


def tensor_loader(tensor: Tensor, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of rows of ``tensor`` (pretraining blocks); shuffled batches drop the remainder."""
    drop = shuffle and len(tensor) > batch_size
    sampler = _Batches(len(tensor), batch_size, shuffle, seed, drop)
    return DataLoader(
        list(range(len(tensor))), batch_sampler=sampler, collate_fn=_Rows(tensor), num_workers=0
    )


def pad_rows(rows: list[list[int]], width: int | None = None, value: int = PAD_ID) -> Tensor:
    """Right-pad lists of ints into a (N, width) long tensor."""
    width = width or max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r[:width], dtype=torch.long)
    return out


class Task:
    """Base class of a fine-tuning task.

    Subclasses set ``kind``, ``metrics`` and ``example`` and implement ``_encode``, ``make_head``,
    ``loss``, ``predict`` and ``score``. ``score`` returns a dict whose ``"score"`` entry is the
    primary metric normalised to [0, 1], higher is better. A kind that not every family can serve
    narrows ``families`` (the engine restricts the search space to them); one that fine-tunes the
    whole language model rather than the backbone sets ``needs_lm_head``; options of its own (read
    from the task config by ``from_config``) are listed in ``options``.

    Args:
        name: Task name as registered in the config (``qa``, ``sentiment``, ...).
        splits: The examples, already split.
        tokenizer: The run's shared tokenizer.
        max_len: Longest input in tokens (longer inputs are truncated).
        metric: Name of the primary metric; one of ``metrics``.
    """

    kind: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    #: The example type it fine-tunes on (``lightning_modules.data.examples``: ``qa``, ``text``,
    #: ``token``, ``pair``, ``code``): a file source must yield it, an ``hf`` source builds it.
    example: ClassVar[str] = ""
    #: Architecture families that can serve the task.
    families: ClassVar[tuple[str, ...]] = FAMILIES
    #: Fine-tune the whole ``LanguageModel`` (backbone + LM head) instead of the backbone alone.
    needs_lm_head: ClassVar[bool] = False
    #: Task-config keys passed to ``__init__`` as keyword arguments by ``from_config``.
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, name: str, splits: Splits, tokenizer, max_len: int, metric: str | None = None
    ):
        self.name = name
        self.splits = splits
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.metric = metric or self.metrics[0]
        if self.metric not in self.metrics:
            raise DataError(
                f"task '{name}': metric '{self.metric}' is not one of {', '.join(self.metrics)}"
            )
        self.cls_id = tokenizer.token_to_id("[CLS]")
        self.sep_id = tokenizer.token_to_id("[SEP]")
        self._encoded: dict[str, Encoded] = {}
        self._floors: dict[str, float] = {}

    @classmethod
    def from_config(cls, name: str, splits: Splits, tokenizer, cfg: Mapping[str, Any]) -> Task:
        """Build the task from its config (``max_len``, ``metric`` and the kind's ``options``).

        Args:
            name: Task name.
            splits: The examples, already split.
            tokenizer: The run's shared tokenizer.
            cfg: The task config (``conf/task/<name>.yaml``); unset (null) options keep the
                kind's defaults.
        """
        extra = {k: cfg[k] for k in cls.options if cfg.get(k) is not None}
        return cls(name, splits, tokenizer, int(cfg["max_len"]), cfg.get("metric"), **extra)

    @property
    def num_labels(self) -> int:
        """Number of classes (tags) for labelled tasks."""
        return len(self.splits.labels)

    def encoded(self, split: str) -> Encoded:
        """The split as tensors, encoded on first use and kept (trials share it)."""
        if split not in self._encoded:
            examples = getattr(self.splits, split)
            self._encoded[split] = self._encode(examples, train=split == "train")
            if len(self._encoded[split]) == 0:
                raise ValueError(f"task '{self.name}': split '{split}' is empty after encoding")
        return self._encoded[split]

    def loader(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        examples: int | None = None,
        data_seed: int = 0,
    ) -> DataLoader:
        """Batches of one split; ``examples`` keeps only that many of it (``sample``)."""
        if examples is not None:
            encoded = self.sample(split, examples, data_seed)
        else:
            encoded = self.encoded(split)
        return make_loader(encoded, batch_size, shuffle, seed, drop_last=shuffle)

    def sample(self, split: str, examples: int, data_seed: int = 0) -> Encoded:
        """A fixed random subset of ``examples`` examples of ``split`` (all of it when fewer).

        The subset depends on nothing but the split, ``examples`` and ``data_seed``, so every
        candidate (and every seed of one) of a search adapts from the same few examples, and a
        larger budget's subset contains every smaller one of the same ``data_seed``: the points
        of an adaptation curve differ only by the data added. Another ``data_seed`` draws
        another subset (``finetune.data_seed``: the validation seeds of ``nas/validate.py``).
        """
        encoded = self.encoded(split)
        if examples >= len(encoded):
            return encoded
        key = f"{split}[:{examples}]" + (f"@{data_seed}" if data_seed else "")
        if key not in self._encoded:
            generator = torch.Generator().manual_seed(data_seed)
            order = torch.randperm(len(encoded), generator=generator)
            self._encoded[key] = encoded.subset(order[:examples])
        return self._encoded[key]

    def held_out(self, examples: int, size: int, data_seed: int = 0) -> str:
        """A split of ``size`` training examples that ``sample("train", examples, data_seed)``
        leaves out, encoded for scoring; returns its name for ``loader`` and ``score``.

        It is what a choice made inside a trial (the learning rate of ``finetune.lr_grid``) is
        scored on: training examples the model does not adapt from, never the validation or
        test split. The same arguments give the same examples.

        Raises:
            ValueError: The training split has fewer than ``examples + size`` examples.
        """
        train = self.splits.train
        name = f"held_out[{examples}:{examples + size}]" + (f"@{data_seed}" if data_seed else "")
        if name not in self._encoded:
            # The order ``sample`` draws from: its first ``examples`` rows adapt; the examples of
            # the rows after them, then those that encoding dropped, are held out. Encoded like a
            # validation split (generation: the source alone).
            encoded = self.encoded("train")
            generator = torch.Generator().manual_seed(data_seed)
            order = torch.randperm(len(encoded), generator=generator).tolist()
            kept = [encoded.source(row) for row in order]
            adapted = set(kept[:examples]) if examples < len(encoded) else set(kept)
            dropped = sorted(set(range(len(train))) - set(kept))
            rest = [i for i in [*kept[examples:], *dropped] if i not in adapted]
            if len(rest) < size:
                raise ValueError(
                    f"task '{self.name}': {len(train)} training examples cannot hold {examples} "
                    f"to adapt from and {size} held out to choose on"
                )
            self._encoded[name] = self._encode([train[i] for i in rest[:size]], train=False)
        return name

    @staticmethod
    def backbone_kwargs(cfg: TransformerConfig, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Arguments for the backbone: a prefix-LM reads a whole classification input as prefix."""
        kwargs = {"attention_mask": batch["attention_mask"]}
        if cfg.family == "prefix_lm":
            kwargs["prefix_len"] = batch["attention_mask"].sum(1)
        return kwargs

    # ---- to implement ------------------------------------------------------------------------
    def _encode(self, examples: list, train: bool) -> Encoded:
        raise NotImplementedError

    def make_head(self, cfg: TransformerConfig) -> nn.Module:
        """The task head for a backbone of architecture ``cfg``."""
        raise NotImplementedError

    def loss(self, backbone: nn.Module, head: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Training loss of one batch."""
        raise NotImplementedError

    def predict(self, backbone: nn.Module, head: nn.Module, batch: dict[str, Tensor]) -> list:
        """Predictions of one batch, in the form ``score`` takes."""
        raise NotImplementedError

    def score(self, predictions: list, split: str) -> dict[str, float]:
        """Metrics of the predictions for every example of ``split``; keys include ``score``."""
        raise NotImplementedError

    # ---- the kind outside training: adaptnas.load(...).predict and the model card -------------
    #: The Hub's task type of the model card (``None``: chosen by the metric, as generation's).
    hub_type: ClassVar[str | None] = None
    #: The model card's ``adaptnas.load(...).predict`` line (``{n}``: the task's name).
    predict_example: ClassVar[str] = ""
    #: A raw input that stands for any, when only the head's shape is needed.
    placeholder_input: ClassVar[Any] = "x"

    @classmethod
    def example_of(cls, raw: Any, i: int) -> Any:
        """The task record of raw input number ``i`` (its label a placeholder: ``predict``)."""
        raise ValueError(f"no predict() for task kind {cls.kind!r}")

    @classmethod
    def is_single(cls, inputs: Any) -> bool:
        """Whether ``inputs`` (not a string or a mapping: those always are) is one input."""
        return False

    def outputs(self, predictions: list, examples: list) -> list:
        """``predict``'s predictions over ``examples`` as what a user reads, in input order."""
        return [p for _, p in sorted(predictions)]

    # ---- the floor -----------------------------------------------------------------------------
    #: What the floor predicts, in words (``majority class``, ``copy of the source``, ...).
    floor_rule: ClassVar[str] = ""

    def trivial_predictions(self, split: str) -> list:
        """Predictions of a baseline that learns nothing but the training labels' base rate.

        In the form ``score`` takes; what they are is ``floor_rule``.
        """
        raise NotImplementedError

    def floor(self, split: str = "validation") -> float:
        """The primary score of :meth:`trivial_predictions` on ``split`` (computed once).

        A model that scores its task's floor has learned nothing a base rate does not give:
        ``objective.adaptability=skill`` counts each task's score above it,
        ``(score - floor) / (1 - floor)``.
        """
        key = f"floor:{split}"
        if key not in self._floors:
            self._floors[key] = float(self.score(self.trivial_predictions(split), split)["score"])
        return self._floors[key]
