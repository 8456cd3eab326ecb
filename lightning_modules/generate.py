"""Text generation with a ``LanguageModel``: greedy and beam search, batched, with a KV cache.

The stream a generation task trains on is ``[BOS] source [SEP] target [EOS]``; decoding feeds
``[BOS] source [SEP]`` (the prompt) and continues until ``[EOS]`` or ``max_new_tokens``. For the
``prefix_lm`` family the prompt is the bidirectional prefix, for ``decoder`` it is causal; an
``encoder_decoder`` encodes the prompt and its decoder starts from the prompt's last token
(``[SEP]``); an ``encoder`` has no causal part and cannot generate.

Batches of prompts of different lengths are RIGHT-padded, as ``Transformer.forward`` expects:
the prompt pass runs the model's own attention mask (causal, prefix or ALiBi, with padding), and
every later token goes to its own row's next position (``rope``, learned, sinusoidal and ALiBi
positions all follow the row, not the padded width) while the pad slots of the cache stay
masked. A batch therefore decodes exactly what each prompt decodes alone (tested). Rows that
finish are dropped from the batch, so a batch costs what its live rows cost.

Two ways to compute each step give the same tokens:

* ``use_cache=True`` (default): the model keeps the keys and values of earlier positions per
  layer and each step runs the new token only (``O(T)`` per step); beam search reorders the
  cache by beam index.
* ``use_cache=False``: each step re-runs ``LanguageModel.hidden`` on the whole right-padded
  sequences (``O(T^2)`` per step). It is the reference the cache is tested against.

At the sizes of the built-in spaces the cache is about 15x faster on a CPU (``docs/tasks.md``;
``python benchmarks/task_stage_times.py --decode-only``). The cache lives in the model
(``LanguageModel.build_kv_cache``, ``model.KVCache``): this module holds only the decoding
strategies and the prompt handling, and tests compare both paths for every generating family
and position scheme.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_modules.data.tokenizer import BOS, EOS, PAD_ID, SEP

__all__ = ["beam_search", "generate", "generate_ids", "greedy", "prompt_ids"]


def prompt_ids(tokenizer, source_ids: Sequence[int], max_source_tokens: int) -> list[int]:
    """``[BOS] source [SEP]`` with the source cut to ``max_source_tokens`` tokens.

    Args:
        tokenizer: The run's tokenizer (for the ids of ``[BOS]`` and ``[SEP]``).
        source_ids: The source's token ids, without special tokens.
        max_source_tokens: Longest source kept.

    Returns:
        The prompt's token ids.
    """
    bos, sep = tokenizer.token_to_id(BOS), tokenizer.token_to_id(SEP)
    return [bos, *list(source_ids)[: max(0, max_source_tokens)], sep]


# ---- steppers: one decoding step, with or without a cache -------------------------------------
def _check_family(model) -> str:
    """How the model reads its prompt: ``causal``, ``prefix`` or ``seq2seq``; rejects encoders."""
    family = model.cfg.family
    if family == "encoder":
        raise ValueError(
            "family 'encoder' cannot generate text (no causal part); use decoder, prefix_lm "
            "or encoder_decoder"
        )
    return {"prefix_lm": "prefix", "encoder_decoder": "seq2seq"}.get(family, "causal")


def _pad(rows: Sequence[Sequence[int]], device: torch.device) -> tuple[Tensor, Tensor]:
    """Right-padded ids (R, W) and lengths (R,)."""
    lengths = torch.tensor([len(r) for r in rows], device=device)
    ids = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long, device=device)
    return ids, lengths


def _mask(lengths: Tensor, width: int) -> Tensor:
    """``(R, width)`` 1 for the first ``lengths`` columns of each row, 0 after."""
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).long()


class _Recompute:
    """Each step runs the model on the whole (right-padded) sequences: the reference path.

    An ``encoder_decoder`` re-encodes the prompts and re-runs the decoder over its rows, which
    start with the prompt's last token (``[SEP]``, the decoder's start token in training).
    """

    def __init__(self, model, mode: str):
        self.model, self.mode = model, mode
        self.device = next(model.parameters()).device

    def _logits(self) -> Tensor:
        ids, lengths = _pad(self.rows, self.device)  # (R, W), (R,)
        if self.mode == "seq2seq":
            src, src_len = _pad(self.prompts, self.device)  # (R, P), (R,)
            src_mask = _mask(src_len, src.shape[1])
            memory = self.model.hidden(src, attention_mask=src_mask)  # (R, P, d)
            h = self.model.decode_hidden(ids, memory, src_mask)  # (R, W, d)
        else:
            prefix_len = self.prompt_len if self.mode == "prefix" else None
            mask = _mask(lengths, ids.shape[1])
            h = self.model.hidden(ids, attention_mask=mask, prefix_len=prefix_len)  # (R, W, d)
        last = h[torch.arange(len(self.rows), device=self.device), lengths - 1]  # (R, d)
        return self.model.logits_from_hidden(last)  # (R, V)

    def start(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> Tensor:
        self.prompts = [list(p) for p in prompts]
        self.rows = [[p[-1]] for p in prompts] if self.mode == "seq2seq" else list(self.prompts)
        self.prompt_len = torch.tensor([len(p) for p in prompts], device=self.device)
        return self._logits()

    def advance(self, rows: Sequence[int], tokens: Sequence[int]) -> Tensor:
        """Keep rows ``rows`` (in that order, repeats allowed), append ``tokens``, next logits."""
        self.rows = [self.rows[r] + [t] for r, t in zip(rows, tokens, strict=True)]
        self.prompts = [self.prompts[r] for r in rows]
        self.prompt_len = self.prompt_len[torch.as_tensor(list(rows), device=self.device)]
        return self._logits()


class _Cached:
    """The model keeps every layer's keys and values (``KVCache``); each step feeds new tokens.

    An ``encoder_decoder`` encodes the prompts once; its cache keeps the decoder's self-attention
    keys and values and each block's cross-attention ones, computed on the first step.
    """

    def __init__(self, model, mode: str):
        self.model, self.mode = model, mode
        self.device = next(model.parameters()).device

    def start(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> Tensor:
        ids, lengths = _pad(prompts, self.device)  # (B, P), (B,)
        B, P = ids.shape
        mask = _mask(lengths, P)  # (B, P)
        if self.mode == "seq2seq":
            self.cache = self.model.build_kv_cache(B, 1 + max_new_tokens)
            memory = self.model.hidden(ids, attention_mask=mask)  # (B, P, d)
            start = ids[torch.arange(B, device=self.device), lengths - 1][:, None]  # (B, 1)
            h = self.model.decode_hidden(start, memory, mask, cache=self.cache)  # (B, 1, d)
            return self.model.logits_from_hidden(h[:, -1])  # (B, V)
        self.cache = self.model.build_kv_cache(B, P + max_new_tokens)
        h = self.model.hidden(
            ids,
            attention_mask=mask,
            prefix_len=lengths if self.mode == "prefix" else None,
            cache=self.cache,
        )  # (B, P, d)
        last = h[torch.arange(B, device=self.device), lengths - 1]  # (B, d)
        return self.model.logits_from_hidden(last)  # (B, V)

    def advance(self, rows: Sequence[int], tokens: Sequence[int]) -> Tensor:
        """Keep rows ``rows`` (in that order, repeats allowed), feed ``tokens``, next logits."""
        self.cache.reorder(torch.as_tensor(list(rows), device=self.device))
        tok = torch.as_tensor(list(tokens), dtype=torch.long, device=self.device)[:, None]
        if self.mode == "seq2seq":
            h = self.model.decode_hidden(tok, None, cache=self.cache)  # (R, 1, d)
        else:
            h = self.model.hidden(tok, cache=self.cache)  # (R, 1, d)
        return self.model.logits_from_hidden(h[:, -1])  # (R, V)


def _stepper(model, use_cache: bool):
    mode = _check_family(model)
    return _Cached(model, mode) if use_cache else _Recompute(model, mode)


def _check_budget(model, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be at least 1")
    longest = max(len(p) for p in prompts)
    if longest + max_new_tokens > model.cfg.max_seq_len:
        raise ValueError(
            f"a prompt of {longest} tokens plus max_new_tokens={max_new_tokens} exceeds "
            f"max_seq_len={model.cfg.max_seq_len}"
        )


# ---- search ----------------------------------------------------------------------------------
@torch.no_grad()
def greedy(
    model, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_id: int, use_cache=True
) -> list[list[int]]:
    """Greedy decoding of every prompt.

    Args:
        model: A ``LanguageModel`` of a generating family (``cfg.can_generate``), in eval mode.
        prompts: Token ids of each prompt (``[BOS] source [SEP]``), unpadded.
        max_new_tokens: Most tokens generated per prompt.
        eos_id: Generation of a row stops at this id (not included in the output).
        use_cache: Keep keys/values (fast) or recompute every step (reference).

    Returns:
        The generated ids of each prompt, without the prompt and without ``eos_id``.
    """
    _check_budget(model, prompts, max_new_tokens)
    stepper = _stepper(model, use_cache)
    logits = stepper.start(prompts, max_new_tokens)  # (B, V)
    out: list[list[int]] = [[] for _ in prompts]
    alive = list(range(len(prompts)))  # example of each row of the batch
    for step in range(max_new_tokens):
        tokens = logits.argmax(-1).tolist()
        keep = [r for r, t in enumerate(tokens) if t != eos_id]
        for r in keep:
            out[alive[r]].append(tokens[r])
        if not keep or step == max_new_tokens - 1:
            break
        alive = [alive[r] for r in keep]
        logits = stepper.advance(keep, [tokens[r] for r in keep])
    return out


@torch.no_grad()
def beam_search(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    eos_id: int,
    num_beams: int = 4,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> list[list[int]]:
    """Beam search of every prompt.

    Each step extends every live beam by every token and keeps the ``num_beams`` best
    non-finished continuations among the ``2 * num_beams`` best candidates; a candidate ending
    in ``eos_id`` within the top ``num_beams`` becomes a finished hypothesis scored
    ``sum(log p) / length ** length_penalty`` (length counts the generated tokens with
    ``eos_id``). A prompt is done when it holds ``num_beams`` finished hypotheses; at
    ``max_new_tokens`` its live beams count as hypotheses too. The best hypothesis wins. With
    ``num_beams=1`` this is greedy decoding (tested).

    Args:
        model: A ``LanguageModel`` of a generating family (``cfg.can_generate``), in eval mode.
        prompts: Token ids of each prompt, unpadded.
        max_new_tokens: Most tokens generated per prompt.
        eos_id: End of a hypothesis (not included in the output).
        num_beams: Beams per prompt.
        length_penalty: Exponent of the length normalisation (0: raw log-probability sums,
            which favour short outputs; 1: per-token mean).
        use_cache: Keep keys/values (fast) or recompute every step (reference).

    Returns:
        The best hypothesis of each prompt, without the prompt and without ``eos_id``.
    """
    if num_beams < 1:
        raise ValueError(f"num_beams={num_beams} must be at least 1")
    _check_budget(model, prompts, max_new_tokens)
    K = num_beams
    stepper = _stepper(model, use_cache)
    logits = stepper.start(prompts, max_new_tokens)  # (B, V)
    n = len(prompts)
    # Beam row r of prompt group g is row g * K + k; the stepper holds one row per prompt until
    # the first step, so ``source`` maps each beam row to the stepper row it continues.
    source = [b for b in range(n) for _ in range(K)]
    logits = logits[torch.as_tensor(source, device=logits.device)]  # (B*K, V)
    seqs: list[list[int]] = [[] for _ in source]
    # Only the first beam of each prompt is real at the start: the others would duplicate it.
    scores = torch.tensor([0.0 if k == 0 else -math.inf for _ in range(n) for k in range(K)])
    alive = list(range(n))  # prompt of each group of K rows
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    for step in range(max_new_tokens):
        logp = F.log_softmax(logits.float(), dim=-1).cpu()  # (R, V)
        V = logp.shape[1]
        cand = (scores[:, None] + logp).view(len(alive), K * V)  # (G, K*V)
        top_scores, top_index = cand.topk(min(2 * K, K * V), dim=1)  # (G, 2K)
        last = step == max_new_tokens - 1
        keep_rows: list[int] = []
        keep_tokens: list[int] = []
        keep_scores: list[float] = []
        next_alive: list[int] = []
        for g, prompt in enumerate(alive):
            chosen: list[tuple[int, int, float]] = []
            for rank, (s, idx) in enumerate(
                zip(top_scores[g].tolist(), top_index[g].tolist(), strict=True)
            ):
                if s == -math.inf:
                    break
                row, token = g * K + idx // V, idx % V
                if token == eos_id:
                    if rank < K:
                        finished[prompt].append((s / (step + 1) ** length_penalty, seqs[row]))
                    continue
                chosen.append((row, token, s))
                if len(chosen) == K:
                    break
            if last:
                for row, token, s in chosen:
                    finished[prompt].append((s / (step + 1) ** length_penalty, seqs[row] + [token]))
            if last or len(finished[prompt]) >= K or not chosen:
                continue
            while len(chosen) < K:  # a tiny vocabulary: pad the group with dead beams
                chosen.append((chosen[0][0], chosen[0][1], -math.inf))
            next_alive.append(prompt)
            for row, token, s in chosen:
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(s)
        if not next_alive:
            break
        seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tokens, strict=True)]
        scores = torch.tensor(keep_scores)
        alive = next_alive
        logits = stepper.advance([source[r] for r in keep_rows], keep_tokens)
        source = list(range(len(keep_rows)))
    return [max(f, key=lambda h: h[0])[1] if f else [] for f in finished]


def generate_ids(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    eos_id: int,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> list[list[int]]:
    """Greedy (``num_beams=1``) or beam-search continuations of token-id prompts.

    The model is put in eval mode for the call (dropout off) and restored afterwards.

    Args:
        model: A ``LanguageModel`` of a generating family (``cfg.can_generate``).
        prompts: Token ids of each prompt, unpadded.
        max_new_tokens: Most tokens generated per prompt.
        eos_id: Generation stops at this id (not included in the output).
        num_beams: 1 for greedy decoding, more for beam search.
        length_penalty: Beam search's length normalisation exponent.
        use_cache: Keep keys/values (fast) or recompute every step (reference).

    Returns:
        The generated ids of each prompt.
    """
    if not prompts:
        return []
    was_training = model.training
    model.eval()
    try:
        if num_beams == 1:
            return greedy(model, prompts, max_new_tokens, eos_id, use_cache=use_cache)
        return beam_search(
            model, prompts, max_new_tokens, eos_id, num_beams, length_penalty, use_cache
        )
    finally:
        model.train(was_training)


def generate(
    model,
    tokenizer,
    sources: Sequence[str],
    max_new_tokens: int = 64,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    use_cache: bool = True,
) -> list[str]:
    """Generate a target text for every source text (translation, summarisation, ...).

    Sources are cut so that prompt and output fit in ``model.cfg.max_seq_len``, and batched by
    length (less padding); the outputs come back in the order of ``sources``.

    Args:
        model: A fine-tuned ``LanguageModel`` of a generating family.
        tokenizer: The tokenizer it was trained with.
        sources: Input texts.
        max_new_tokens: Most tokens generated per text.
        num_beams: 1 for greedy decoding, more for beam search.
        length_penalty: Beam search's length normalisation exponent.
        batch_size: Prompts decoded together.
        use_cache: Keep keys/values (fast) or recompute every step (reference).

    Returns:
        One decoded text per source.
    """
    eos = tokenizer.token_to_id(EOS)
    room = model.cfg.max_seq_len - max_new_tokens - 2
    if room < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a source in "
            f"max_seq_len={model.cfg.max_seq_len}"
        )
    encoded = tokenizer.encode_batch(list(sources), add_special_tokens=False)
    prompts = [prompt_ids(tokenizer, e.ids, room) for e in encoded]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids = generate_ids(
            model,
            [prompts[i] for i in chunk],
            max_new_tokens,
            eos,
            num_beams=num_beams,
            length_penalty=length_penalty,
            use_cache=use_cache,
        )
        for i, seq in zip(chunk, ids, strict=True):
            out[i] = tokenizer.decode(seq, skip_special_tokens=True)
    return out
