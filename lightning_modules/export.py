"""Ship a trained model: safetensors weights, ONNX graphs, Hugging Face ``transformers`` models.

Three formats, each checked against the PyTorch model it came from:

* **safetensors**: the pretrained language model and, per task, the fine-tuned backbone plus its
  head. Never pickle: loading reads tensors only.
* **ONNX** (``torch.onnx.export`` with the dynamo exporter; the TorchScript one cannot convert
  SDPA with grouped key/value heads): one graph per task, dynamic batch and sequence axes,
  compared with onnxruntime on real inputs.
* **transformers**: where the variant is exactly a Llama (causal decoder, RoPE, RMSNorm, SwiGLU)
  or a GPT-2 (causal decoder, learned positions, LayerNorm, GELU/ReLU), the weights are mapped
  onto it and the logits compared after a round trip through ``from_pretrained``. Otherwise
  ``hf_family`` says which knob prevents it.

This module imports nothing from ``nas``: a model trained without a search exports the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_modules.adaptation import (
    AdaptationSpec,
    insert_modules,
    lora_state_dict,
    merged,
)
from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS, UNK
from lightning_modules.model import LanguageModel, Transformer

__all__ = [
    "ExportError",
    "TaskModel",
    "export_onnx",
    "hf_family",
    "load_adapter",
    "load_safetensors",
    "load_task_weights",
    "onnx_parity",
    "save_adapter",
    "save_task_weights",
    "read_metadata",
    "save_safetensors",
    "task_graph",
    "to_transformers",
    "transformers_parity",
]

# Largest absolute difference accepted between PyTorch and an exported copy, in fp32.
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that cannot be made or that does not reproduce the PyTorch model."""


# ---- safetensors -----------------------------------------------------------------------------
class TaskModel(nn.Module):
    """A fine-tuned backbone and its task head: what one task's weights file holds.

    Args:
        backbone: A ``Transformer`` (or a whole ``LanguageModel`` for generation tasks).
        head: The task head.
        kind: The task kind (``sequence``, ``token``, ``span``, ``generation``).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, kind: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.kind = kind

    @property
    def cfg(self) -> TransformerConfig:
        """The backbone's architecture."""
        return self.backbone.cfg


def _cpu(module: nn.Module) -> nn.Module:
    """``module`` itself when it already lives on the CPU, else a CPU copy (the original stays)."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return module
    import copy

    return copy.deepcopy(module).cpu()


def follow_umask(path: str | Path, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have under the user's umask.

    ``tempfile.mkstemp``/``mkdtemp`` (the atomic writes) create 0600 files and 0700 folders, so
    a model exported to share on a cluster's project directory would be private to its owner.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if folder else 0o666) & ~mask)


def save_safetensors(module: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None):
    """Write ``module``'s tensors to ``path`` atomically (temp file + rename).

    Shared tensors (a tied LM head) are stored once; ``load_safetensors`` ties them again.

    Args:
        module: Any module (``LanguageModel``, ``TaskModel``).
        path: Target ``.safetensors`` file.
        metadata: String-valued header entries (non-strings are ``str()``-ed).
    """
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        meta = {k: str(v) for k, v in (metadata or {}).items()}
        save_model(_cpu(module), tmp, metadata=meta)
        follow_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string header of a safetensors file (empty when it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def load_safetensors(module: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``module`` in place, strictly: a missing or extra tensor is an error.

    Args:
        module: A module of the architecture the file was written from.
        path: A file written by ``save_safetensors``.

    Returns:
        ``module``.

    Raises:
        ExportError: The file is not safetensors, or does not fit the module (names the first
            mismatching tensors).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such weights file")
    try:
        load_model(module, str(path), strict=True)
    except SafetensorError as err:  # a pickle, a truncated download: never unpickled, refused
        first = " ".join(str(err).split())[:200]
        raise ExportError(f"{path}: not a safetensors file ({first})") from None
    except RuntimeError as err:
        first = " ".join(str(err).split())[:300]
        raise ExportError(f"{path}: weights do not fit the architecture ({first})") from None
    return module


def build_task_model(cfg: TransformerConfig, task) -> TaskModel:
    """An untrained ``TaskModel`` shaped like the one ``task`` fine-tunes (for loading weights).

    Mirrors ``nas.trial.finetune``: the backbone is a ``Transformer``, or the whole
    ``LanguageModel`` for kinds that set ``needs_lm_head`` (generation decodes with the LM head);
    the head is ``task.make_head(cfg)``.
    """
    needs_lm = bool(getattr(task, "needs_lm_head", False))
    backbone: nn.Module = LanguageModel(cfg) if needs_lm else Transformer(cfg)
    return TaskModel(backbone, task.make_head(cfg), task.kind)


# ---- adapted task models (finetune.method) ----------------------------------------------------
ADAPTATION_KEY = "adaptation"  # metadata entry of a task file: the AdaptationSpec as JSON


def save_task_weights(
    model: TaskModel,
    path: str | Path,
    spec: AdaptationSpec | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write one task's weights, LoRA merged into them (the keys of an unadapted model).

    A bottleneck-adapter model cannot merge: its file holds the adapters too, and
    ``load_task_weights`` reads the spec from the metadata to rebuild them.
    """
    spec = spec or AdaptationSpec()
    meta = {**(metadata or {}), ADAPTATION_KEY: spec.to_json()}
    save_safetensors(merged(model), path, meta)


def load_task_weights(cfg: TransformerConfig, task, path: str | Path) -> TaskModel:
    """``build_task_model`` + ``load_safetensors`` for a file of ``save_task_weights``.

    Files without an adaptation entry (written before methods existed) load as before.
    """
    spec = AdaptationSpec.from_json(read_metadata(path).get(ADAPTATION_KEY))
    model = build_task_model(cfg, task)
    if spec.method == "adapter":
        insert_modules(model.backbone, spec)
    return load_safetensors(model, path)


def save_adapter(
    model: TaskModel, path: str | Path, spec: AdaptationSpec, metadata: dict[str, Any] | None = None
) -> None:
    """Write the adapter alone: the LoRA (or adapter) tensors and the task head's.

    With the pretrained model (``backbone.safetensors``) it rebuilds the task model
    (``load_adapter``): a LoRA task model's base weights are the pretrained ones, bit for bit.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.cpu() for k, v in lora_state_dict(model).items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta[ADAPTATION_KEY] = spec.to_json()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_adapter(lm: LanguageModel, task, path: str | Path, merge: bool = False) -> TaskModel:
    """The task model from the pretrained ``lm`` and an adapter file of ``save_adapter``.

    Args:
        lm: The pretrained language model (not changed: the task model gets a copy).
        task: The task (its head's shape, whether it adapts the whole language model).
        path: The adapter file.
        merge: Merge LoRA into the weights (what ONNX and ``transformers`` get).

    Raises:
        ExportError: The file does not fit ``lm`` and the task (names the first tensors).
    """
    import copy

    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such adapter file")
    spec = AdaptationSpec.from_json(read_metadata(path).get(ADAPTATION_KEY))
    needs_lm = bool(getattr(task, "needs_lm_head", False))
    backbone = copy.deepcopy(lm if needs_lm else lm.backbone)
    model = TaskModel(insert_modules(backbone, spec), task.make_head(lm.cfg), task.kind)
    state = load_file(str(path))
    wanted = set(lora_state_dict(model))
    if set(state) != wanted:
        odd = sorted(set(state) ^ wanted)[:3]
        raise ExportError(f"{path}: adapter does not fit the model and task ({', '.join(odd)})")
    model.load_state_dict(state, strict=False)
    return merged(model) if merge else model


# ---- one graph per task ----------------------------------------------------------------------
class _Graph(nn.Module):
    """``(input_ids, attention_mask[, prefix_len])`` -> the task's outputs, as its task runs it.

    Mirrors ``Task.backbone_kwargs``: a prefix-LM reads a whole classification, tagging or QA input
    as its bidirectional prefix. A generation graph returns LM logits and, for a prefix-LM, takes
    the prefix length as a third input.
    """

    def __init__(self, model: TaskModel) -> None:
        super().__init__()
        self.backbone, self.head, self.kind = model.backbone, model.head, model.kind
        self.family = model.cfg.family

    def forward(self, input_ids: Tensor, attention_mask: Tensor, prefix_len: Tensor | None = None):
        if self.kind == "generation":
            return self.backbone(input_ids, attention_mask=attention_mask, prefix_len=prefix_len)
        kwargs: dict[str, Tensor] = {"attention_mask": attention_mask}
        if self.family == "prefix_lm":
            kwargs["prefix_len"] = attention_mask.sum(1)
        hidden = self.backbone(input_ids, **kwargs)  # (B, T, d)
        return self.head(hidden, attention_mask)


def task_graph(model: TaskModel) -> nn.Module:
    """The module that ``export_onnx`` traces for ``model`` (in eval mode)."""
    return _Graph(model).eval()


def graph_io(model: TaskModel) -> tuple[list[str], list[str]]:
    """Input and output names of the task's ONNX graph."""
    inputs = ["input_ids", "attention_mask"]
    if model.kind == "generation" and model.cfg.family == "prefix_lm":
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


# ---- Hugging Face transformers ----------------------------------------------------------------
def hf_family(cfg: TransformerConfig) -> tuple[str | None, str]:
    """Which ``transformers`` model ``cfg`` is exactly, or why none is.

    Returns:
        ``("llama", "")``, ``("gpt2", "")``, or ``(None, reason)`` where the reason names the
        knob (``knob=value``) that prevents the mapping.
    """
    if cfg.family == "prefix_lm":
        return None, (
            "family=prefix_lm: no transformers model attends bidirectionally over a prefix "
            "and causally after it"
        )
    if cfg.family == "encoder_decoder":
        return None, "family=encoder_decoder: the T5/BART export is not implemented yet"
    if cfg.family == "encoder":
        return None, (
            "family=encoder: BERT normalises its embeddings (a LayerNorm after word + position) "
            "and adaptnas encoders have no embedding norm, so no BERT reproduces them exactly"
        )
    if cfg.norm_position != "pre":
        return None, "norm_position=post: Llama and GPT-2 are pre-norm"
    if len(set(cfg.d_ff)) > 1:
        return None, (f"d_ff={cfg.d_ff}: transformers configs have one MLP width for every layer")
    if cfg.pos == "rope":
        if cfg.norm != "rmsnorm":
            return None, f"norm={cfg.norm}: Llama (RoPE) uses RMSNorm"
        if cfg.mlp != "swiglu":
            return None, f"mlp={cfg.mlp}: Llama (RoPE) has a gated SwiGLU MLP"
        return "llama", ""
    if cfg.pos == "learned":
        if cfg.norm != "layernorm":
            return None, f"norm={cfg.norm}: GPT-2 (learned positions) uses LayerNorm"
        if cfg.mlp not in ("gelu", "relu"):
            return None, f"mlp={cfg.mlp}: GPT-2 (learned positions) has an ungated MLP"
        return "gpt2", ""
    return None, (f"pos={cfg.pos}: transformers' Llama needs pos=rope and GPT-2 needs pos=learned")


def hf_head_problem(kind: str | None) -> str:
    """Why a task head has no ``transformers`` counterpart (empty when it has one)."""
    if kind in (None, "generation", "token", "span"):
        return ""
    if kind == "sequence":
        return (
            "the sequence head has a classifier bias that transformers' *ForSequenceClassification "
            "lacks"
        )
    return f"head kind {kind!r} has no transformers counterpart"


def _hf_config(cfg: TransformerConfig, family: str, num_labels: int | None, labels=None):
    from transformers import GPT2Config, LlamaConfig

    ids = {
        "pad_token_id": SPECIAL_TOKENS.index(PAD),
        "bos_token_id": SPECIAL_TOKENS.index(BOS),
        "eos_token_id": SPECIAL_TOKENS.index(EOS),
    }
    extra: dict[str, Any] = {}
    if num_labels is not None:
        names = list(labels or [str(i) for i in range(num_labels)])
        extra = {
            "num_labels": num_labels,
            "id2label": dict(enumerate(names)),
            "label2id": {n: i for i, n in enumerate(names)},
        }
    if family == "llama":
        return LlamaConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.d_model,
            intermediate_size=cfg.d_ff[0],
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_kv_head,
            head_dim=cfg.head_dim,
            hidden_act="silu",
            max_position_embeddings=cfg.max_seq_len,
            rms_norm_eps=cfg.norm_eps,
            tie_word_embeddings=cfg.tie_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_base)},
            attention_bias=False,
            mlp_bias=False,
            attention_dropout=0.0,
            initializer_range=cfg.init_std,
            **ids,
            **extra,
        )
    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.max_seq_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.d_ff[0],
        # "gelu" is the exact erf GELU (F.gelu's default); GPT-2's own default is the tanh one.
        activation_function=cfg.mlp,
        layer_norm_epsilon=cfg.norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=cfg.init_std,
        **ids,
        **extra,
    )


def _llama_state(bb: Transformer) -> dict[str, Tensor]:
    cfg = bb.cfg
    out = {"embed_tokens.weight": bb.tok_emb.weight, "norm.weight": bb.norm_f.weight}
    for i, blk in enumerate(bb.blocks):
        p = f"layers.{i}."
        q, k, v = blk.attn.qkv.weight.split([cfg.d_model, cfg.kv_dim, cfg.kv_dim], dim=0)
        out |= {
            p + "input_layernorm.weight": blk.norm1.weight,
            p + "self_attn.q_proj.weight": q,
            p + "self_attn.k_proj.weight": k,
            p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": blk.attn.proj.weight,
            p + "post_attention_layernorm.weight": blk.norm2.weight,
            # Ours: w2(silu(w1 x) * w3 x); Llama: down(silu(gate x) * up x).
            p + "mlp.gate_proj.weight": blk.mlp.w1.weight,
            p + "mlp.up_proj.weight": blk.mlp.w3.weight,
            p + "mlp.down_proj.weight": blk.mlp.w2.weight,
        }
    return out


def _gpt2_state(bb: Transformer) -> dict[str, Tensor]:
    cfg = bb.cfg
    d, hd, group = cfg.d_model, cfg.head_dim, cfg.n_head // cfg.n_kv_head
    out = {
        "wte.weight": bb.tok_emb.weight,
        "wpe.weight": bb.pos_emb.weight,
        "ln_f.weight": bb.norm_f.weight,
        "ln_f.bias": bb.norm_f.bias,
    }
    for i, blk in enumerate(bb.blocks):
        p = f"h.{i}."
        q, k, v = blk.attn.qkv.weight.split([d, cfg.kv_dim, cfg.kv_dim], dim=0)
        # GPT-2 has no key/value head sharing: repeat each key/value head for the query heads
        # that share it (SDPA's enable_gqa order), which computes exactly the same attention.
        k = k.view(cfg.n_kv_head, hd, d).repeat_interleave(group, dim=0).reshape(d, d)
        v = v.view(cfg.n_kv_head, hd, d).repeat_interleave(group, dim=0).reshape(d, d)
        f = blk.mlp.w1.weight.shape[0]
        # Conv1D stores (in, out): the transpose of nn.Linear; GPT-2's biases stay zero.
        out |= {
            p + "ln_1.weight": blk.norm1.weight,
            p + "ln_1.bias": blk.norm1.bias,
            p + "attn.c_attn.weight": torch.cat([q, k, v], dim=0).t(),
            p + "attn.c_attn.bias": torch.zeros(3 * d),
            p + "attn.c_proj.weight": blk.attn.proj.weight.t(),
            p + "attn.c_proj.bias": torch.zeros(d),
            p + "ln_2.weight": blk.norm2.weight,
            p + "ln_2.bias": blk.norm2.bias,
            p + "mlp.c_fc.weight": blk.mlp.w1.weight.t(),
            p + "mlp.c_fc.bias": torch.zeros(f),
            p + "mlp.c_proj.weight": blk.mlp.w2.weight.t(),
            p + "mlp.c_proj.bias": torch.zeros(d),
        }
    return out


def _hf_class(family: str, kind: str | None):
    import transformers as tf

    prefix = {"llama": "Llama", "gpt2": "GPT2"}[family]
    suffix = {
        None: "LMHeadModel" if family == "gpt2" else "ForCausalLM",
        "generation": "LMHeadModel" if family == "gpt2" else "ForCausalLM",
        "token": "ForTokenClassification",
        "span": "ForQuestionAnswering",
    }[kind]
    return getattr(tf, prefix + suffix)


def to_transformers(model: LanguageModel | TaskModel, labels: Sequence[str] | None = None):
    """The ``transformers`` model that computes exactly what ``model`` computes.

    Args:
        model: The pretrained ``LanguageModel`` (-> ``LlamaForCausalLM`` / ``GPT2LMHeadModel``) or
            a ``TaskModel``: ``token`` -> ``*ForTokenClassification``, ``span`` ->
            ``*ForQuestionAnswering``, ``generation`` -> the causal LM.
        labels: Label names of a token task (for ``id2label``).

    Returns:
        The model in eval mode, on the CPU.

    Raises:
        ExportError: The architecture or head does not map; the message names the knob.
    """
    kind = model.kind if isinstance(model, TaskModel) else None
    cfg = model.cfg
    family, reason = hf_family(cfg)
    if family is None:
        raise ExportError(f"no transformers model: {reason}")
    if problem := hf_head_problem(kind):
        raise ExportError(f"no transformers model: {problem}")
    model = _cpu(model)
    lm = model.backbone if kind == "generation" else model if kind is None else None
    backbone = lm.backbone if lm is not None else model.backbone
    num_labels = None
    if kind == "token":
        num_labels = model.head.classifier.out_features
    hf_cfg = _hf_config(cfg, family, num_labels, labels)
    hf = _hf_class(family, kind)(hf_cfg)
    state = _llama_state(backbone) if family == "llama" else _gpt2_state(backbone)
    with torch.no_grad():
        _load_exact(hf.base_model, state)
        if lm is not None and not cfg.tie_embeddings:
            hf.lm_head.weight.copy_(lm.lm_head.weight)
        elif kind == "token":
            out = hf.score if family == "llama" else hf.classifier
            out.weight.copy_(model.head.classifier.weight)
            out.bias.copy_(model.head.classifier.bias)
        elif kind == "span":
            hf.qa_outputs.weight.copy_(model.head.qa.weight)
            hf.qa_outputs.bias.copy_(model.head.qa.bias)
    if lm is not None and cfg.tie_embeddings:
        hf.tie_weights()
    return hf.eval()


def _load_exact(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``module``; every parameter must be covered, nothing left over."""
    own = dict(module.named_parameters())
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ExportError(f"transformers mapping is incomplete: missing {missing}, extra {extra}")
    for name, value in state.items():
        if own[name].shape != value.shape:
            raise ExportError(
                f"transformers mapping: {name} {tuple(value.shape)} vs {own[name].shape}"
            )
        own[name].copy_(value)


def hf_tokenizer(tokenizer):
    """A ``PreTrainedTokenizerFast`` around the run's ``tokenizers.Tokenizer``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        padding_side="right",
        # No token types: GPT-2 would add them to its token embeddings, Llama takes none.
        model_input_names=["input_ids", "attention_mask"],
    )


def _quiet_transformers() -> None:
    """No per-file progress bars or info lines from ``save_pretrained``/``from_pretrained``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def save_transformers(hf_model, folder: str | Path, tokenizer=None) -> Path:
    """``save_pretrained`` (safetensors) plus the tokenizer, into ``folder``."""
    _quiet_transformers()
    folder = Path(folder)
    hf_model.save_pretrained(str(folder))
    if tokenizer is not None:
        hf_tokenizer(tokenizer).save_pretrained(str(folder))
    return folder


def load_transformers(folder: str | Path, family: str, kind: str | None):
    """Load a saved model back with its ``transformers`` class (offline; safetensors only)."""
    _quiet_transformers()
    return _hf_class(family, kind).from_pretrained(str(folder), use_safetensors=True).eval()


def transformers_parity(
    hf_model, model: LanguageModel | TaskModel, batches: Sequence[dict[str, Tensor]]
) -> float:
    """Largest absolute difference between the ``transformers`` model and ours on real tokens.

    Pad positions are left out: both models leave them meaningless (ours masks span logits
    there, ``transformers`` does not).
    """
    kind = model.kind if isinstance(model, TaskModel) else None
    model = _cpu(model)  # the transformers model is on the CPU (to_transformers)
    graph = task_graph(model) if kind is not None else None
    worst = 0.0
    for batch in batches:
        ids, mask = batch["input_ids"].long().cpu(), batch["attention_mask"].long().cpu()
        real = mask.bool()
        with torch.no_grad():
            out = hf_model(input_ids=ids, attention_mask=mask)
            if kind is None:
                pairs = [(out.logits, model(ids, attention_mask=mask))]
            elif kind == "span":
                start, end = graph(ids, mask)
                pairs = [(out.start_logits, start), (out.end_logits, end)]
            else:
                pairs = [(out.logits, graph(ids, mask))]
        for theirs, ours in pairs:
            worst = max(worst, float((theirs.float() - ours.float())[real].abs().max()))
    return worst
