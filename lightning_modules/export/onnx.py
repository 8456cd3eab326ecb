"""ONNX: one graph per task, dynamic batch and sequence axes, checked with onnxruntime.

``torch.onnx.export`` with the dynamo exporter: the TorchScript one cannot convert SDPA with
grouped key/value heads.

An ``encoder_decoder`` that generates (kinds ``generation``, ``code``) decodes with two graphs,
in ``onnx/<task>/`` (``export_seq2seq``), which compute what ``lightning_modules.generate``'s
cached decoding computes:

* ``encoder.onnx``: ``input_ids``, ``attention_mask`` (B, S) -> ``encoder_hidden_states``
  (B, S, d) and each decoder block's cross-attention keys and values
  ``present.<i>.encoder.key`` / ``.value`` (B, Hkv, S, hd), computed once per prompt as the
  ``KVCache`` does.
* ``decoder.onnx``, one decoding step: ``decoder_input_ids`` (B, T) of the new positions,
  ``encoder_attention_mask`` (B, S), and per decoder block ``past_key_values.<i>.decoder.key`` /
  ``.value`` (B, Hkv, P, hd, the self-attention cache; P = 0 on the first step) and
  ``past_key_values.<i>.encoder.key`` / ``.value`` (the encoder graph's outputs) -> ``logits``
  (B, T, V) and ``present.<i>.decoder.key`` / ``.value`` (B, Hkv, P + T, hd). The new tokens sit
  at positions P .. P + T - 1 (the decoder is never padded: every row's next position is P).

The names are those of Hugging Face Optimum's seq2seq graphs, so its users find what they expect.
Other tasks of an ``encoder_decoder`` read the encoder's states only: one graph, as for encoders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_modules.export._base import (
    ExportError,
    ExportFormat,
    TaskModel,
    _cpu,
    is_generative,
    task_graph,
)

# The two graphs of a generating encoder_decoder, inside ``onnx/<task>/``.
SEQ2SEQ_GRAPHS = ("encoder", "decoder")


def is_seq2seq(model: TaskModel) -> bool:
    """Whether ``model`` decodes with an encoder graph and a decoder-step graph."""
    return model.cfg.family == "encoder_decoder" and is_generative(model.kind)


def graph_io(model: TaskModel) -> tuple[list[str], list[str]]:
    """Input and output names of the task's ONNX graph (one graph; see ``seq2seq_io``)."""
    if is_seq2seq(model):
        raise ExportError(
            f"family=encoder_decoder kind={model.kind} has two graphs: see seq2seq_io"
        )
    inputs = ["input_ids", "attention_mask"]
    if is_generative(model.kind) and model.cfg.family == "prefix_lm":
        inputs.append("prefix_len")
    outputs = ["start_logits", "end_logits"] if model.kind == "span" else ["logits"]
    return inputs, outputs


def seq2seq_io(n_dec_layer: int) -> dict[str, tuple[list[str], list[str]]]:
    """Input and output names of the ``encoder`` and ``decoder`` graphs of ``export_seq2seq``.

    Args:
        n_dec_layer: Decoder blocks of the architecture.

    Returns:
        ``{"encoder": (inputs, outputs), "decoder": (inputs, outputs)}``; the cache tensors
        come block by block, self-attention (``decoder``) before cross-attention (``encoder``).
    """
    cross = [f"present.{i}.encoder.{kv}" for i in range(n_dec_layer) for kv in ("key", "value")]
    past = [
        f"past_key_values.{i}.{part}.{kv}"
        for i in range(n_dec_layer)
        for part in ("decoder", "encoder")
        for kv in ("key", "value")
    ]
    present = [f"present.{i}.decoder.{kv}" for i in range(n_dec_layer) for kv in ("key", "value")]
    return {
        "encoder": (["input_ids", "attention_mask"], ["encoder_hidden_states", *cross]),
        "decoder": (["decoder_input_ids", "encoder_attention_mask", *past], ["logits", *present]),
    }


def _feeds(model: TaskModel, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
    """The graph's inputs from a batch, on the CPU (where the exporter and onnxruntime run)."""
    inputs, _ = graph_io(model)
    feeds = [batch["input_ids"], batch["attention_mask"]]
    if "prefix_len" in inputs:
        feeds.append(batch.get("prefix_len", batch["attention_mask"].sum(1)))
    return tuple(f.long().cpu() for f in feeds)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the dynamo exporter's progress lines and optional-op warnings."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export(
    graph: nn.Module,
    feeds: tuple[Tensor, ...],
    path: Path,
    io: tuple[list[str], list[str]],
    dynamic: dict[str, Any],
    varargs: int = 0,
) -> Path:
    """Trace ``graph`` on ``feeds`` into one self-contained ``path``, atomically.

    ``dynamic`` maps each input name to its dynamic axes; the last ``varargs`` inputs are the
    graph's ``*args`` (torch.export wants their axes as one nested tuple).
    """
    inputs, outputs = io
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                graph,
                feeds,
                str(tmp),
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=_nest([dynamic[n] for n in inputs], varargs),
                dynamo=True,
                external_data=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _nest(shapes: list[Any], varargs: int) -> tuple[Any, ...]:
    """Per-input dynamic axes, the last ``varargs`` of them grouped as ``forward``'s ``*args``."""
    if not varargs:
        return tuple(shapes)
    return (*shapes[:-varargs], tuple(shapes[-varargs:]))


def export_onnx(model: TaskModel, path: str | Path, example: dict[str, Tensor]) -> Path:
    """Export the task's graph with dynamic batch and sequence axes.

    Args:
        model: The fine-tuned backbone and head (not a generating ``encoder_decoder``: its two
            graphs are ``export_seq2seq``'s).
        path: Target ``.onnx`` file (one self-contained file; weights inside).
        example: A real batch (``input_ids``, ``attention_mask``, optionally ``prefix_len``) with
            at least 2 rows and 2 positions, so that neither axis is specialised to 1.

    Returns:
        ``path``.
    """
    if is_seq2seq(model):
        raise ExportError(
            f"family=encoder_decoder kind={model.kind} decodes with two graphs: use "
            "export_seq2seq (OnnxFormat writes both)"
        )
    graph = task_graph(_cpu(model))
    inputs, outputs = graph_io(model)
    feeds = _feeds(model, example)
    if feeds[0].shape[0] < 2 or feeds[0].shape[1] < 2:
        raise ExportError("export_onnx needs an example batch of at least 2 x 2 tokens")
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence", max=model.cfg.max_seq_len)
    dynamic: dict[str, Any] = {
        "input_ids": {0: batch, 1: seq},
        "attention_mask": {0: batch, 1: seq},
        "prefix_len": {0: batch},
    }
    return _export(graph, feeds, Path(path), (inputs, outputs), dynamic)


# ---- encoder_decoder: an encoder graph and a decoder-step graph ------------------------------
def _language_model(model: TaskModel):
    """The ``LanguageModel`` a generating task fine-tunes (its ``backbone``), on the CPU."""
    lm = _cpu(model).backbone
    if not hasattr(lm, "decode_hidden"):
        raise ExportError(
            f"kind={model.kind}: the task model's backbone is a {type(lm).__name__}, not the "
            "LanguageModel a generation task fine-tunes"
        )
    return lm.eval()


class _EncoderGraph(nn.Module):
    """``(input_ids, attention_mask)`` -> encoder states and every decoder block's cross K/V."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, ...]:
        memory = self.lm.hidden(input_ids, attention_mask=attention_mask)  # (B, S, d)
        B, S, _ = memory.shape
        out = [memory]
        for block in self.lm.backbone.dec_blocks:
            # CrossAttention.forward's keys and values, which the KVCache keeps after step one.
            cross = block.cross
            k, v = cross.kv(memory).split([cross.kv_dim, cross.kv_dim], dim=-1)
            out.append(k.view(B, S, cross.n_kv_head, cross.head_dim).transpose(1, 2))
            out.append(v.view(B, S, cross.n_kv_head, cross.head_dim).transpose(1, 2))
        return tuple(out)  # (B, S, d), then (B, Hkv, S, hd) per key and value


class _StepKV:
    """One block's self-attention cache for a traced step: ``Attention`` appends to it.

    Functional where ``model.LayerKV`` writes in place: the kept keys concatenated with the new
    ones are the same tensors ``LayerKV.append`` returns, and they are the step's output.
    """

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        self.keys, self.values = keys, values  # (B, Hkv, P, hd)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.keys = torch.cat([self.keys, k], dim=2)  # (B, Hkv, P + T, hd)
        self.values = torch.cat([self.values, v], dim=2)
        return self.keys, self.values


class _StepCache:
    """What ``Block.forward`` reads of a ``KVCache``: ``layers[i]`` and ``cross[i]``."""

    def __init__(self, layers: list[_StepKV], cross: list[tuple[Tensor, Tensor]]) -> None:
        self.layers, self.cross = layers, cross


class _DecoderStepGraph(nn.Module):
    """One cached decoding step of ``Transformer.decode``, the cache in and out as tensors.

    ``Transformer._stack`` with a filled ``KVCache``, written for a cache of symbolic length P:
    positions ``P + arange(T)`` for every row, causal attention over the P kept columns and the
    T new ones (ALiBi: minus slope times the position distance), the encoder mask with all-pad
    rows let through as ``Transformer.decode`` does, then the decoder blocks and the LM head.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self, decoder_input_ids: Tensor, encoder_attention_mask: Tensor, *cache: Tensor
    ) -> tuple[Tensor, ...]:
        tf = self.lm.backbone
        T = decoder_input_ids.shape[1]
        P = cache[0].shape[2]
        layers = [_StepKV(cache[4 * i], cache[4 * i + 1]) for i in range(len(tf.dec_blocks))]
        cross = [(cache[4 * i + 2], cache[4 * i + 3]) for i in range(len(tf.dec_blocks))]
        pos = P + torch.arange(T, device=decoder_input_ids.device)  # (T,) the same in every row
        x = tf._embed(decoder_input_ids, pos)  # (B, T, d)
        keys = torch.arange(P + T, device=x.device)  # (P + T,) positions of the cache columns
        allowed = (keys[None, :] <= pos[:, None]).view(1, 1, T, P + T)  # causal
        mask: Tensor = allowed
        if tf.cfg.pos == "alibi":
            distance = (pos[:, None] - keys[None, :]).abs().to(x.dtype)  # (T, P + T)
            bias = -tf.alibi_slopes.to(x.dtype).view(1, -1, 1, 1) * distance  # (1, H, T, P + T)
            mask = bias.masked_fill(~allowed, float("-inf"))
        memory_mask = encoder_attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
        memory_mask = memory_mask | ~memory_mask.any(-1, keepdim=True)
        rope = tf._rope(pos, x.dtype)
        step = _StepCache(layers, cross)
        for i, block in enumerate(tf.dec_blocks):
            x = block(x, mask, False, rope, step, i, None, memory_mask)  # (B, T, d)
        if tf.dec_norm_f is not None:
            x = tf.dec_norm_f(x)  # (B, T, d)
        logits = self.lm.logits_from_hidden(x)  # (B, T, V)
        return (logits, *(t for kv in layers for t in (kv.keys, kv.values)))


def export_seq2seq(model: TaskModel, folder: str | Path, example: dict[str, Tensor]) -> Path:
    """Write a generating ``encoder_decoder``'s ``encoder.onnx`` and ``decoder.onnx``.

    Args:
        model: A ``generation`` or ``code`` task model of family ``encoder_decoder`` (its
            backbone is the whole ``LanguageModel``).
        folder: Where both graphs go (``onnx/<task>/`` in an export).
        example: A real batch (``input_ids``, ``attention_mask``; a generation batch's
            ``prefix_len`` restricts the encoder's mask to the prompt) of at least 2 x 2 tokens.

    Returns:
        ``folder``.
    """
    if not is_seq2seq(model):
        raise ExportError(
            f"export_seq2seq: family={model.cfg.family} kind={model.kind} has one graph "
            "(export_onnx)"
        )
    lm = _language_model(model)
    cfg = lm.cfg
    ids, mask = _encoder_feeds(example)
    B, S = ids.shape
    if B < 2 or S < 2:
        raise ExportError("export_seq2seq needs an example batch of at least 2 x 2 tokens")
    if cfg.max_seq_len < 4:
        raise ExportError(f"export_seq2seq needs max_seq_len >= 4 (is {cfg.max_seq_len})")
    folder = Path(folder)
    io = seq2seq_io(cfg.n_dec_layer)
    batch = torch.export.Dim("batch")
    enc_seq = torch.export.Dim("encoder_sequence", max=cfg.max_seq_len)
    enc_dyn = {"input_ids": {0: batch, 1: enc_seq}, "attention_mask": {0: batch, 1: enc_seq}}
    _export(_EncoderGraph(lm).eval(), (ids, mask), folder / "encoder.onnx", io["encoder"], enc_dyn)

    # The step is traced with 2 kept and 2 new positions (no axis specialised to 1); the graph
    # runs with any P >= 0, T >= 1 (P = 0: the first step) and P + T <= max_seq_len.
    with torch.no_grad():
        cross = _EncoderGraph(lm)(ids, mask)[1:]
    hkv, hd = cfg.n_kv_head, cfg.head_dim
    dec_ids = ids[:, :2].clone()  # (B, T)
    feeds: list[Tensor] = [dec_ids, mask]
    for i in range(cfg.n_dec_layer):
        # A fresh tensor per input: the exporter merges inputs that are one tensor object, and
        # every block would then read the first block's cache.
        past = [torch.zeros(B, hkv, 2, hd) for _ in range(2)]  # (B, Hkv, P, hd)
        feeds += [*past, cross[2 * i].clone(), cross[2 * i + 1].clone()]
    dec_seq = torch.export.Dim("decoder_sequence", max=cfg.max_seq_len)
    past_seq = torch.export.Dim("past_sequence", max=cfg.max_seq_len - 1)
    dec_dyn: dict[str, Any] = {
        "decoder_input_ids": {0: batch, 1: dec_seq},
        "encoder_attention_mask": {0: batch, 1: enc_seq},
    }
    for name in io["decoder"][0][2:]:
        dec_dyn[name] = {0: batch, 2: past_seq if ".decoder." in name else enc_seq}
    graph = _DecoderStepGraph(lm).eval()
    _export(graph, tuple(feeds), folder / "decoder.onnx", io["decoder"], dec_dyn, len(feeds) - 2)
    return folder


def _encoder_feeds(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The encoder's ``input_ids`` and mask from a batch (a generation batch: its prompts)."""
    ids, mask = batch["input_ids"].long().cpu(), batch["attention_mask"].long().cpu()
    if "prefix_len" in batch:  # [BOS] source [SEP] target [EOS]: the encoder reads the prompt
        prefix = batch["prefix_len"].long().cpu()
        width = max(2, int(prefix.max()))
        ids, mask = ids[:, :width], mask[:, :width]
        mask = mask * (torch.arange(width)[None, :] < prefix[:, None]).long()
        ids = ids * mask  # pads -> PAD_ID (0), as the decoding path pads its prompts
    return ids, mask


def onnx_session(path: str | Path):
    """An onnxruntime CPU session for a graph written by ``export_onnx``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # One thread: tests and exports run beside training on small shared machines.
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _max_diff(got: Sequence[Any], ref: Sequence[Tensor]) -> float:
    """Largest absolute difference between onnxruntime outputs and PyTorch tensors."""
    worst = 0.0
    for g, r in zip(got, ref, strict=True):
        worst = max(worst, float((torch.from_numpy(g) - r.float()).abs().max()))
    return worst


def onnx_parity(path: str | Path, model: TaskModel, batches: Sequence[dict[str, Tensor]]) -> float:
    """Largest absolute difference between onnxruntime and PyTorch over ``batches``.

    Args:
        path: The exported graph.
        model: The module it was exported from.
        batches: Real inputs; use shapes other than the export example's to exercise the
            dynamic axes.

    Returns:
        The max abs difference over every output element of every batch.
    """
    session = onnx_session(path)
    graph = task_graph(_cpu(model))
    inputs, _ = graph_io(model)
    worst = 0.0
    for batch in batches:
        feeds = _feeds(model, batch)
        with torch.no_grad():
            ref = graph(*feeds)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = session.run(None, {n: f.numpy() for n, f in zip(inputs, feeds, strict=True)})
        worst = max(worst, _max_diff(got, ref))
    return worst


class Seq2SeqSession:
    """onnxruntime sessions of ``export_seq2seq``'s two graphs, driven step by step.

    Args:
        folder: The folder holding ``encoder.onnx`` and ``decoder.onnx``.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.encoder = onnx_session(folder / "encoder.onnx")
        self.decoder = onnx_session(folder / "decoder.onnx")
        self.n_dec_layer = (len(self.decoder.get_inputs()) - 2) // 4
        past = self.decoder.get_inputs()[2].shape  # [batch, Hkv, past_sequence, hd]
        self.n_kv_head, self.head_dim = int(past[1]), int(past[3])

    def encode(self, input_ids, attention_mask) -> list:
        """``[encoder_hidden_states, present.0.encoder.key, ...]`` (numpy arrays)."""
        return self.encoder.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})

    def start(self, encoded: list, attention_mask) -> dict:
        """The decoder's feeds before its first step: an empty self-attention cache."""
        import numpy as np

        B = attention_mask.shape[0]
        empty = np.zeros((B, self.n_kv_head, 0, self.head_dim), dtype=np.float32)
        feeds = {"encoder_attention_mask": attention_mask}
        for i in range(self.n_dec_layer):
            feeds[f"past_key_values.{i}.decoder.key"] = empty
            feeds[f"past_key_values.{i}.decoder.value"] = empty
            feeds[f"past_key_values.{i}.encoder.key"] = encoded[1 + 2 * i]
            feeds[f"past_key_values.{i}.encoder.value"] = encoded[2 + 2 * i]
        return feeds

    def step(self, feeds: dict, decoder_input_ids) -> tuple[Any, list]:
        """Run ``decoder_input_ids`` (B, T); ``feeds`` takes the new cache. Logits, presents."""
        out = self.decoder.run(None, {**feeds, "decoder_input_ids": decoder_input_ids})
        for i in range(self.n_dec_layer):
            feeds[f"past_key_values.{i}.decoder.key"] = out[1 + 2 * i]
            feeds[f"past_key_values.{i}.decoder.value"] = out[2 + 2 * i]
        return out[0], out[1:]


def onnx_greedy(
    folder: str | Path, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_id: int
) -> list[list[int]]:
    """Greedy decoding of ``prompts`` with onnxruntime and the two graphs of ``export_seq2seq``.

    ``lightning_modules.generate.greedy`` with a cache, step for step: the right-padded prompts
    are encoded once, the decoder starts from each prompt's last token (``[SEP]``), and finished
    rows leave the batch.

    Args:
        folder: The graphs' folder (``onnx/<task>/`` of an export).
        prompts: Token ids of each prompt (``[BOS] source [SEP]``), unpadded.
        max_new_tokens: Most tokens generated per prompt.
        eos_id: Generation of a row stops at this id (not included in the output).

    Returns:
        The generated ids of each prompt, without the prompt and without ``eos_id``.
    """
    import numpy as np

    if not prompts:
        return []
    run = Seq2SeqSession(folder)
    width = max(len(p) for p in prompts)
    ids = np.zeros((len(prompts), width), dtype=np.int64)  # (B, S) right-padded with PAD_ID 0
    mask = np.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, : len(p)], mask[r, : len(p)] = p, 1
    feeds = run.start(run.encode(ids, mask), mask)
    tokens = np.array([[p[-1]] for p in prompts], dtype=np.int64)  # (B, 1) the start tokens
    out: list[list[int]] = [[] for _ in prompts]
    alive = np.arange(len(prompts))  # prompt of each row
    for step in range(max_new_tokens):
        logits, _ = run.step(feeds, tokens)  # (R, 1, V)
        nxt = logits[:, -1].argmax(-1)  # (R,)
        keep = np.flatnonzero(nxt != eos_id)
        for r in keep:
            out[alive[r]].append(int(nxt[r]))
        if not len(keep) or step == max_new_tokens - 1:
            break
        alive = alive[keep]
        feeds = {k: v[keep] for k, v in feeds.items()}  # every feed is batch-first
        tokens = nxt[keep][:, None]
    return out


def seq2seq_parity(
    folder: str | Path, model: TaskModel, batches: Sequence[dict[str, Tensor]], steps: int = 6
) -> float:
    """Largest absolute difference between the two graphs and PyTorch's cached decoding.

    For each batch: the encoder graph's states and cross keys/values against the model's
    (``hidden`` and the ``KVCache``'s), then ``steps`` decoder steps, the first from an empty
    cache, each fed the token PyTorch's greedy decoding picks, comparing the logits and every
    block's updated self-attention cache.

    Args:
        folder: The graphs' folder.
        model: The task model they were exported from.
        batches: Real inputs (a generation batch's encoder reads its prompts, ``prefix_len``).
        steps: Decoding steps per batch (fewer when ``max_seq_len`` is shorter).

    Returns:
        The max abs difference over every compared element.
    """
    lm = _language_model(model)
    run = Seq2SeqSession(folder)
    worst = 0.0
    for batch in batches:
        ids, mask = _encoder_feeds(batch)
        B = ids.shape[0]
        lengths = mask.sum(1).clamp(min=1)  # (B,)
        n = min(steps, lm.cfg.max_seq_len)
        with torch.no_grad():
            memory = lm.hidden(ids, attention_mask=mask)  # (B, S, d)
            cache = lm.build_kv_cache(B, n)
            tok = ids[torch.arange(B), lengths - 1][:, None]  # (B, 1) each prompt's last token
            encoded = run.encode(ids.numpy(), mask.numpy())
            feeds = run.start(encoded, mask.numpy())
            for step in range(n):
                h = lm.decode_hidden(tok, memory if step == 0 else None, mask, cache=cache)
                ref = lm.logits_from_hidden(h)  # (B, 1, V)
                if step == 0:  # the cross keys/values the cache computed from the memory
                    cross = [t for kv in cache.cross for t in kv]
                    worst = max(worst, _max_diff(encoded, [memory, *cross]))
                logits, present = run.step(feeds, tok.numpy())
                kept = [
                    t[:, :, : cache.slot]
                    for layer in cache.layers
                    for t in (layer.keys, layer.values)
                ]
                worst = max(worst, _max_diff([logits, *present], [ref, *kept]))
                tok = ref[:, -1].argmax(-1, keepdim=True)  # (B, 1)
    return worst


class OnnxFormat(ExportFormat):
    """``onnx/<task>.onnx``: a task model's graph (a language model alone has none); a
    generating ``encoder_decoder``: ``onnx/<task>/encoder.onnx`` and ``decoder.onnx``."""

    name = "onnx"
    checked_with = "onnxruntime"

    def write(
        self, model: TaskModel, folder: Path, name: str, example: dict[str, Tensor], **kwargs: Any
    ) -> Path:
        if is_seq2seq(model):
            return export_seq2seq(model, Path(folder) / "onnx" / name, example)
        return export_onnx(model, Path(folder) / "onnx" / f"{name}.onnx", example)

    def parity(self, path: Path, model: TaskModel, batches: Sequence[dict[str, Tensor]]) -> float:
        if is_seq2seq(model):
            return seq2seq_parity(path, model, batches)
        return onnx_parity(path, model, batches)

    def entry(self, path: Path, folder: Path, model: TaskModel) -> Any:
        """``onnx/<task>.onnx``, or ``{encoder: ..., decoder: ...}`` for the two graphs."""
        if is_seq2seq(model):
            return {g: (path / f"{g}.onnx").relative_to(folder).as_posix() for g in SEQ2SEQ_GRAPHS}
        return super().entry(path, folder, model)
