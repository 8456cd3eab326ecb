"""Hugging Face ``transformers``: the variants that are exactly a Llama or a GPT-2.

Where the variant is exactly a Llama (causal decoder, RoPE, RMSNorm, SwiGLU) or a GPT-2 (causal
decoder, learned positions, LayerNorm, GELU/ReLU), the weights are mapped onto it and the logits
compared after a round trip through ``from_pretrained``. Otherwise ``hf_family`` says which knob
prevents it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS, UNK
from lightning_modules.export._base import (
    ExportError,
    ExportFormat,
    TaskModel,
    _cpu,
    is_generative,
    task_graph,
)
from lightning_modules.model import LanguageModel, Transformer


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
    if kind in (None, "token", "span") or is_generative(kind):
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
        "code": "LMHeadModel" if family == "gpt2" else "ForCausalLM",
        "token": "ForTokenClassification",
        "span": "ForQuestionAnswering",
    }[kind]
    return getattr(tf, prefix + suffix)


def to_transformers(model: LanguageModel | TaskModel, labels: Sequence[str] | None = None):
    """The ``transformers`` model that computes exactly what ``model`` computes.

    Args:
        model: The pretrained ``LanguageModel`` (-> ``LlamaForCausalLM`` / ``GPT2LMHeadModel``) or
            a ``TaskModel``: ``token`` -> ``*ForTokenClassification``, ``span`` ->
            ``*ForQuestionAnswering``, ``generation`` and ``code`` -> the causal LM.
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
    lm = model.backbone if is_generative(kind) else model if kind is None else None
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


# Why a task model of this adaptation method has no transformers counterpart.
METHOD_PROBLEMS = {"adapter": "finetune.method=adapter: adapters do not merge (full or lora)"}


class HFFormat(ExportFormat):
    """``transformers/<name>/``: ``save_pretrained`` of the mapped model, with its tokenizer."""

    name = "transformers"
    checked_with = "transformers"
    language_model = True

    def unsupported(self, cfg: TransformerConfig) -> str:
        return hf_family(cfg)[1]

    def problem(self, model: nn.Module, method: str | None = None) -> str:
        if method in METHOD_PROBLEMS:  # no transformers class has bottleneck adapters
            return METHOD_PROBLEMS[method]
        return hf_head_problem(model.kind if isinstance(model, TaskModel) else None)

    def write(
        self, model: nn.Module, folder: Path, name: str, example: dict[str, Tensor], **kwargs: Any
    ) -> Path:
        """``tokenizer`` (a ``tokenizers.Tokenizer``) and ``labels`` (a token task's) optional."""
        hf_model = to_transformers(model, kwargs.get("labels"))
        path = Path(folder) / "transformers" / name
        return save_transformers(hf_model, path, kwargs.get("tokenizer"))

    def _family_kind(self, model: nn.Module) -> tuple[str, str | None]:
        family, reason = hf_family(model.cfg)
        if family is None:
            raise ExportError(f"no transformers model: {reason}")
        return family, model.kind if isinstance(model, TaskModel) else None

    def parity(self, path: Path, model: nn.Module, batches: Sequence[dict[str, Tensor]]) -> float:
        hf_model = load_transformers(path, *self._family_kind(model))
        return transformers_parity(hf_model, model, batches)

    def entry(self, path: Path, folder: Path, model: nn.Module) -> Any:
        cls = _hf_class(*self._family_kind(model))
        return {"path": path.relative_to(folder).as_posix(), "class": cls.__name__}
