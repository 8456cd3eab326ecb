"""ONNX: one graph per task, dynamic batch and sequence axes, checked with onnxruntime.

``torch.onnx.export`` with the dynamo exporter: the TorchScript one cannot convert SDPA with
grouped key/value heads.
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
from torch import Tensor

from lightning_modules.config import TransformerConfig
from lightning_modules.export._base import (
    ExportError,
    ExportFormat,
    TaskModel,
    _cpu,
    is_generative,
    task_graph,
)


def graph_io(model: TaskModel) -> tuple[list[str], list[str]]:
    """Input and output names of the task's ONNX graph."""
    inputs = ["input_ids", "attention_mask"]
    if is_generative(model.kind) and model.cfg.family == "prefix_lm":
        inputs.append("prefix_len")
    outputs = ["start_logits", "end_logits"] if model.kind == "span" else ["logits"]
    return inputs, outputs


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


def export_onnx(model: TaskModel, path: str | Path, example: dict[str, Tensor]) -> Path:
    """Export the task's graph with dynamic batch and sequence axes.

    Args:
        model: The fine-tuned backbone and head.
        path: Target ``.onnx`` file (one self-contained file; weights inside).
        example: A real batch (``input_ids``, ``attention_mask``, optionally ``prefix_len``) with
            at least 2 rows and 2 positions, so that neither axis is specialised to 1.

    Returns:
        ``path``.
    """
    if model.cfg.family == "encoder_decoder":
        # Two graphs (encoder, decoder step) are needed; one traced graph would be wrong.
        raise ExportError(
            "family=encoder_decoder: ONNX export is not implemented yet (run with onnx=false)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    }
    if "prefix_len" in inputs:
        dynamic["prefix_len"] = {0: batch}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                graph,
                feeds,
                str(tmp),
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=dict(zip(inputs, dynamic.values(), strict=True)),
                dynamo=True,
                external_data=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnx_session(path: str | Path):
    """An onnxruntime CPU session for a graph written by ``export_onnx``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # One thread: tests and exports run beside training on small shared machines.
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


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
        for g, r in zip(got, ref, strict=True):
            worst = max(worst, float((torch.from_numpy(g) - r.float()).abs().max()))
    return worst


class OnnxFormat(ExportFormat):
    """``onnx/<task>.onnx``: a task model's graph (a language model alone has none)."""

    name = "onnx"
    checked_with = "onnxruntime"

    def unsupported(self, cfg: TransformerConfig) -> str:
        if cfg.family == "encoder_decoder":
            return "family=encoder_decoder: the encoder and decoder-step graphs are not written yet"
        return ""

    def write(
        self, model: TaskModel, folder: Path, name: str, example: dict[str, Tensor], **kwargs: Any
    ) -> Path:
        return export_onnx(model, Path(folder) / "onnx" / f"{name}.onnx", example)

    def parity(self, path: Path, model: TaskModel, batches: Sequence[dict[str, Tensor]]) -> float:
        return onnx_parity(path, model, batches)
