"""Ship a trained model: safetensors weights, ONNX graphs, Hugging Face ``transformers`` models.

One module per format, each an ``ExportFormat`` (``_base.py``) that writes a model and checks the
copy against the PyTorch model it came from (``parity``):

* ``safetensors.py``: the pretrained language model and, per task, the fine-tuned backbone plus
  its head (LoRA merged; the adapter alone beside it). Never pickle: loading reads tensors only.
* ``onnx.py``: one graph per task, dynamic batch and sequence axes, compared with onnxruntime on
  real inputs (a generating ``encoder_decoder``: an encoder graph and a decoder-step graph).
* ``hf.py``: where the variant is exactly a Llama, a GPT-2 or (``hf_encdec.py``) a T5, Blenderbot
  or Pegasus encoder-decoder, the weights mapped onto it and the
  logits compared after a round trip through ``from_pretrained``.

This package imports nothing from ``nas``: a model trained without a search exports the same way
(``nas.exporting`` adds the study side: which trial, the model card, retraining commands).
"""

from __future__ import annotations

from lightning_modules.export._base import (
    EXPORT_FORMAT,
    TOLERANCE,
    ExportError,
    ExportFormat,
    TaskModel,
    follow_umask,
    is_generative,
    task_graph,
)
from lightning_modules.export.hf import (
    HFFormat,
    hf_family,
    hf_head_problem,
    hf_tokenizer,
    load_transformers,
    save_transformers,
    to_transformers,
    transformers_parity,
)
from lightning_modules.export.onnx import (
    OnnxFormat,
    Seq2SeqSession,
    export_onnx,
    export_seq2seq,
    graph_io,
    onnx_greedy,
    onnx_parity,
    onnx_session,
    seq2seq_io,
    seq2seq_parity,
)
from lightning_modules.export.safetensors import (
    ADAPTATION_KEY,
    SafetensorsFormat,
    build_task_model,
    load_adapter,
    load_safetensors,
    load_task_weights,
    read_metadata,
    save_adapter,
    save_safetensors,
    save_task_weights,
)

# The formats by the name a config gives them (``onnx=true``, ``transformers=true``).
FORMATS: dict[str, type[ExportFormat]] = {
    SafetensorsFormat.name: SafetensorsFormat,
    OnnxFormat.name: OnnxFormat,
    HFFormat.name: HFFormat,
}

__all__ = [
    "ADAPTATION_KEY",
    "EXPORT_FORMAT",
    "FORMATS",
    "TOLERANCE",
    "ExportError",
    "ExportFormat",
    "HFFormat",
    "OnnxFormat",
    "SafetensorsFormat",
    "Seq2SeqSession",
    "TaskModel",
    "build_task_model",
    "export_onnx",
    "export_seq2seq",
    "follow_umask",
    "graph_io",
    "hf_family",
    "hf_head_problem",
    "hf_tokenizer",
    "is_generative",
    "load_adapter",
    "load_safetensors",
    "load_task_weights",
    "load_transformers",
    "onnx_greedy",
    "onnx_parity",
    "onnx_session",
    "read_metadata",
    "save_adapter",
    "save_safetensors",
    "save_task_weights",
    "save_transformers",
    "seq2seq_io",
    "seq2seq_parity",
    "task_graph",
    "to_transformers",
    "transformers_parity",
]
