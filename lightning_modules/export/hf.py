"""Hugging Face ``transformers``: the variants that are exactly a Llama, a GPT-2 or, for
``family=encoder_decoder``, a T5, Blenderbot, Pegasus or Marian.

Where the variant is exactly a Llama (causal decoder, RoPE, RMSNorm, SwiGLU) or a GPT-2 (causal
decoder, learned positions, LayerNorm, GELU/ReLU), or an encoder-decoder that one of the seq2seq
classes reproduces (``hf_encdec``), the weights are mapped onto it and the logits compared after a
round trip through ``from_pretrained`` (an encoder-decoder's greedy ``generate`` too). Otherwise
``hf_family`` says which knob prevents it. LoRA is merged into the weights first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_modules.adaptation import merged
from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import BOS, EOS, PAD, SEP, SPECIAL_TOKENS, UNK
from lightning_modules.export._base import (
    ExportError,
    ExportFormat,
    TaskModel,
    _cpu,
    is_generative,
    task_graph,
)
from lightning_modules.export.hf_encdec import (
    ENCDEC_LM_CLASS,
    ENCDEC_PREFIX,
    encdec_config,
    encdec_family,
    encdec_generation_config,
    encdec_state,
    split_for_decoder,
    t5_state,
)
from lightning_modules.generate import greedy
from lightning_modules.model import LanguageModel, Transformer


def hf_family(cfg: TransformerConfig) -> tuple[str | None, str]:
    """Which ``transformers`` model ``cfg`` is exactly, or why none is.

    Returns:
        ``("llama", "")``, ``("gpt2", "")``, for an encoder-decoder ``("t5", "")``,
        ``("blenderbot", "")``, ``("pegasus", "")`` or ``("marian", "")``, or ``(None, reason)``
        where the reason names the knob (``knob=value``) that prevents the mapping.
    """
    if cfg.family == "prefix_lm":
        return None, (
            "family=prefix_lm: no transformers model attends bidirectionally over a prefix "
            "and causally after it"
        )
    if cfg.family == "encoder_decoder":
        return encdec_family(cfg)
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


def hf_head_problem(kind: str | None, cfg: TransformerConfig | None = None) -> str:
    """Why a task head has no ``transformers`` counterpart (empty when it has one).

    ``cfg`` narrows it to the architecture: an encoder-decoder's understanding heads read its
    encoder, which only ``T5ForTokenClassification`` (the T5 encoder + a token classifier) does.
    """
    if cfg is not None and cfg.family == "encoder_decoder" and kind not in (None, "sequence"):
        if is_generative(kind):
            return ""
        if kind == "token" and hf_family(cfg)[0] == "t5":
            return ""
        return (
            f"head kind {kind!r} of an encoder_decoder: transformers reads the encoder alone "
            "with a token classifier only, and only for T5 (T5ForTokenClassification)"
        )
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

    if family in ENCDEC_PREFIX:
        if kind == "token":
            return getattr(tf, ENCDEC_PREFIX[family] + "ForTokenClassification")
        return getattr(tf, ENCDEC_LM_CLASS[family])  # the language model, generation, code
    prefix = {"llama": "Llama", "gpt2": "GPT2"}[family]
    if kind is None or is_generative(kind):  # the language model: generation, code
        suffix = "LMHeadModel" if family == "gpt2" else "ForCausalLM"
    else:
        suffix = {"token": "ForTokenClassification", "span": "ForQuestionAnswering"}[kind]
    return getattr(tf, prefix + suffix)


def to_transformers(model: LanguageModel | TaskModel, labels: Sequence[str] | None = None):
    """The ``transformers`` model that computes exactly what ``model`` computes.

    Args:
        model: The pretrained ``LanguageModel`` (-> ``LlamaForCausalLM`` / ``GPT2LMHeadModel``;
            an encoder-decoder -> ``T5ForConditionalGeneration``, ...) or a ``TaskModel``:
            ``token`` -> ``*ForTokenClassification``, ``span`` -> ``*ForQuestionAnswering``,
            ``generation`` and ``code`` -> the (causal or seq2seq) LM. LoRA is merged first.
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
    if problem := hf_head_problem(kind, cfg):
        raise ExportError(f"no transformers model: {problem}")
    # LoRA wrappers keep the base weight as ``.weight``: without merging, the copy would be the
    # pretrained model's, not the fine-tuned one.
    model = merged(_cpu(model))
    if family in ENCDEC_PREFIX:
        return _to_seq2seq(model, family, kind, labels)
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


def _token_extra(model: TaskModel, labels: Sequence[str] | None) -> dict[str, Any]:
    num_labels = model.head.classifier.out_features
    names = list(labels or [str(i) for i in range(num_labels)])
    return {
        "num_labels": num_labels,
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def _to_seq2seq(model, family: str, kind: str | None, labels: Sequence[str] | None):
    """``to_transformers`` for an encoder-decoder (``model`` already merged and on the CPU)."""
    cfg = model.cfg
    hf_cfg = encdec_config(cfg, family)
    if kind == "token":  # T5ForTokenClassification: the T5 encoder + dropout + a classifier
        for key, value in _token_extra(model, labels).items():
            setattr(hf_cfg, key, value)
        hf = _hf_class(family, kind)(hf_cfg)
        state = {"transformer." + k: v for k, v in t5_state(model.backbone, True).items()}
        state |= {
            "classifier.weight": model.head.classifier.weight,
            "classifier.bias": model.head.classifier.bias,
        }
        with torch.no_grad():
            _load_exact(hf, state)
        return hf.eval()
    lm = model.backbone if is_generative(kind) else model
    hf = _hf_class(family, kind)(hf_cfg)
    head = None if cfg.tie_embeddings else lm.lm_head.weight
    with torch.no_grad():
        _load_exact(hf, encdec_state(lm.backbone, family, head))
    if cfg.tie_embeddings:
        hf.tie_weights()
    hf.generation_config = encdec_generation_config(cfg)
    return hf.eval()


def _load_exact(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``module``; every parameter must be covered, nothing left over.

    Tied parameters count under each of their names (the state gives each the same tensor).
    """
    own = dict(module.named_parameters(remove_duplicate=False))
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
    if model.cfg.family == "encoder_decoder" and kind != "token":
        return _seq2seq_parity(hf_model, model.backbone if kind else model, batches)
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


def _seq2seq_parity(hf_model, lm: LanguageModel, batches: Sequence[dict[str, Tensor]]) -> float:
    """Teacher-forced decoder logits of both models on the same encoder and decoder inputs
    (``split_for_decoder``), compared at real decoder positions."""
    worst = 0.0
    for batch in batches:
        x = split_for_decoder(batch)
        with torch.no_grad():
            theirs = hf_model(
                input_ids=x["input_ids"],
                attention_mask=x["attention_mask"],
                decoder_input_ids=x["decoder_input_ids"],
            ).logits  # (B, Td, V)
            ours = lm(
                x["input_ids"],
                attention_mask=x["attention_mask"],
                decoder_input_ids=x["decoder_input_ids"],
            )  # (B, Td, V)
        real = x["decoder_mask"].bool()
        worst = max(worst, float((theirs.float() - ours.float())[real].abs().max()))
    return worst


def hf_greedy(hf_model, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
    """``generate`` (greedy) of a seq2seq ``transformers`` model, as ``generate.greedy`` returns
    it: per prompt the new tokens, without the decoder's start token, ``[EOS]`` and padding.

    The copy's decoder starts from ``[SEP]`` (``decoder_start_token_id``) and ours from each
    prompt's last token: the same for the ``[BOS] source [SEP]`` prompts generation builds.
    """
    from lightning_modules.generate import _mask, _pad

    ids, lengths = _pad(prompts, torch.device("cpu"))  # (B, P), (B,) right-padded
    eos = hf_model.generation_config.eos_token_id
    with torch.no_grad():
        out = hf_model.generate(
            input_ids=ids,
            attention_mask=_mask(lengths, ids.shape[1]),
            # The decoder's length counts its start token (max_length, not max_new_tokens,
            # which would clash with the config's max_length).
            max_length=1 + max_new_tokens,
            do_sample=False,
            num_beams=1,
        )  # (B, 1 + n): the start token first
    rows = []
    for row in out[:, 1:].tolist():
        rows.append(row[: row.index(eos)] if eos in row else row)
    return rows


def _prompts(batch: dict[str, Tensor], n: int = 4) -> list[list[int]]:
    """Up to ``n`` prompts: a generation batch's ``[BOS] source [SEP]`` (its first
    ``prefix_len`` tokens), else ``[BOS]`` + the first real tokens of a text block + ``[SEP]``."""
    ids, mask = batch["input_ids"][:n].long().cpu(), batch["attention_mask"][:n].long().cpu()
    if "prefix_len" in batch:
        return [
            row[:k].tolist() for row, k in zip(ids, batch["prefix_len"][:n].tolist(), strict=True)
        ]
    bos, sep = SPECIAL_TOKENS.index(BOS), SPECIAL_TOKENS.index(SEP)
    return [
        [bos, *row[: max(1, min(8, int(m.sum())))].tolist(), sep]
        for row, m in zip(ids, mask, strict=True)
    ]


class HFFormat(ExportFormat):
    """``transformers/<name>/``: ``save_pretrained`` of the mapped model, with its tokenizer."""

    name = "transformers"
    checked_with = "transformers"
    language_model = True

    def unsupported(self, cfg: TransformerConfig) -> str:
        return hf_family(cfg)[1]

    def problem(self, model: nn.Module, method: str | None = None) -> str:
        kind = model.kind if isinstance(model, TaskModel) else None
        return super().problem(model, method) or hf_head_problem(kind, model.cfg)

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
        """Largest logit difference; an encoder-decoder LM must also ``generate`` our greedy
        decode of up to 4 prompts from ``batches`` (else ``ExportError``)."""
        family, kind = self._family_kind(model)
        hf_model = load_transformers(path, family, kind)
        diff = transformers_parity(hf_model, model, batches)
        if family in ENCDEC_PREFIX and kind != "token":
            lm = _cpu(model.backbone if kind else model)
            prompts = _prompts(batches[0])
            new = max(1, min(8, model.cfg.max_seq_len - max(map(len, prompts))))
            ours = greedy(lm, prompts, new, SPECIAL_TOKENS.index(EOS))
            if hf_greedy(hf_model, prompts, new) != ours:
                raise ExportError(f"{path}: transformers' greedy generate differs from ours")
        return diff

    def entry(self, path: Path, folder: Path, model: nn.Module) -> Any:
        cls = _hf_class(*self._family_kind(model))
        return {"path": path.relative_to(folder).as_posix(), "class": cls.__name__}
