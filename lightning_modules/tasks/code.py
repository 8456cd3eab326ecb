"""Code generation: description -> Python function, scored by running it against unit tests.

A generation task (one causal stream ``[BOS] source [SEP] target [EOS]``, greedy or beam
decoding, every generating family) whose examples are ``CodeExample``s. Source and target
go through ``code_to_text`` (line breaks and indentation as markers the BPE keeps) and the decoded
output back through ``text_to_code``. The primary metric ``pass_at_1`` is the share of examples
whose one generated program passes all of the example's tests, run by
``lightning_modules.code_scorer`` in a child process (as an unprivileged user when run as root, no
network, binding resource limits, a private folder; the verdict comes from the parent: what is
isolated and what is not is in that module and docs/tasks.md): generated code never runs in the
search's own process. ``chrf`` (against the
reference code) and ``exact_match`` (same lines, trailing white space aside) grade the text.
"""

from __future__ import annotations

import math

from lightning_modules.code_scorer import run_programs
from lightning_modules.data.code import CodeExample, code_to_text, program, text_to_code
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import PairExample
from lightning_modules.metrics import chrf
from lightning_modules.tasks.base import Encoded
from lightning_modules.tasks.generation import GenerationTask


def _lines(code: str) -> list[str]:
    return [line.rstrip() for line in code.strip("\n").split("\n") if line.strip()]


class CodeTask(GenerationTask):
    """Description (or signature and docstring) -> code; scored by pass@1 in [0, 1].

    Args:
        name, splits, tokenizer, max_len, metric, max_new_tokens, num_beams, length_penalty:
            As for ``GenerationTask`` (``splits`` holds ``CodeExample``s).
        timeout: Wall-clock (and CPU) seconds each program may run.
        memory_mb: Address-space limit of each program, in MiB.
    """

    kind = "code"
    example = "code"
    metrics = ("pass_at_1", "chrf", "exact_match")
    hub_type = "text-generation"
    predict_example = 'model.predict("{n}", ["return the sum of the list xs"])'

    @classmethod
    def example_of(cls, raw, i: int) -> CodeExample:
        """``a description of the function`` (no tests: prediction never runs the code)."""
        return CodeExample(source=str(raw), target="", entry_point="", tests="")

    def outputs(self, predictions, examples) -> list:
        """The generated programs: the stream's line-break and indent markers back to code."""
        return [text_to_code(text) for _, text in sorted(predictions)]

    options = (*GenerationTask.options, "timeout", "memory_mb")

    def __init__(
        self,
        name,
        splits,
        tokenizer,
        max_len,
        metric=None,
        max_new_tokens: int = 64,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        timeout: float = 2.0,
        memory_mb: int = 512,
    ):
        super().__init__(
            name, splits, tokenizer, max_len, metric, max_new_tokens, num_beams, length_penalty
        )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise DataError(f"task '{name}': timeout={timeout!r} must be a positive number")
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 64:
            raise DataError(f"task '{name}': memory_mb={memory_mb!r} must be an integer >= 64")
        for split in ("train", "validation", "test"):
            bad = [e for e in getattr(splits, split) if not isinstance(e, CodeExample)]
            if bad:
                raise DataError(
                    f"task '{name}': kind 'code' needs code examples (source type builtin "
                    f"'code' or code_jsonl), got {type(bad[0]).__name__} in {split}"
                )
        self.timeout = float(timeout)
        self.memory_mb = memory_mb

    def _encode(self, examples: list[CodeExample], train: bool) -> Encoded:
        pairs = [PairExample(code_to_text(e.source), code_to_text(e.target)) for e in examples]
        encoded = super()._encode(pairs, train)
        encoded.references = list(examples)  # scoring needs the tests, not only the target
        return encoded

    floor_rule = "an empty program (passes no test)"

    def floor(self, split: str = "validation") -> float:
        return 0.0  # pass@1 of a program that does nothing; not worth a sandbox run

    def score(self, predictions, split: str) -> dict[str, float]:
        refs: list[CodeExample] = self.encoded(split).references
        predictions = sorted(predictions)
        if [i for i, _ in predictions] != list(range(len(refs))):
            raise ValueError(
                f"task '{self.name}': {len(predictions)} predictions do not cover the "
                f"{len(refs)} examples once each"
            )
        codes = [text_to_code(text) for _, text in predictions]
        outcomes = run_programs(
            [program(ex, code) for ex, code in zip(refs, codes, strict=True)],
            timeout=self.timeout,
            memory_mb=self.memory_mb,
        )
        n = len(refs)
        scores = {
            "pass_at_1": sum(o.passed for o in outcomes) / n,
            "chrf": chrf(codes, [ex.target for ex in refs]),
            "exact_match": sum(
                _lines(c) == _lines(ex.target) for c, ex in zip(codes, refs, strict=True)
            )
            / n,
        }
        assert all(math.isfinite(v) for v in scores.values())
        scores["score"] = scores[self.metric]
        return scores
