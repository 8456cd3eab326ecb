"""``transformers`` copies of ``family=encoder_decoder`` models: T5, Blenderbot, Pegasus.

Tiny, freshly initialised models (norm weights perturbed, so that no norm is an identity): the
copy must give our decoder logits under teacher forcing after ``save_pretrained`` ->
``AutoModelForSeq2SeqLM.from_pretrained``, and ``generate`` our greedy decode.
"""

from __future__ import annotations

import pytest
import torch

from lightning_modules.adaptation import AdaptationSpec, adapt
from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import EOS, SEP, SPECIAL_TOKENS
from lightning_modules.export import (
    TOLERANCE,
    ExportError,
    HFFormat,
    TaskModel,
    hf_family,
    save_transformers,
    to_transformers,
    transformers_parity,
)
from lightning_modules.export.hf import hf_greedy
from lightning_modules.generate import greedy
from lightning_modules.heads import build_head
from lightning_modules.model import build_model

V = 101
EOS_ID, SEP_ID, BOS_ID = (SPECIAL_TOKENS.index(t) for t in (EOS, SEP, "[BOS]"))


def cfg(**overrides) -> TransformerConfig:
    base = dict(
        family="encoder_decoder",
        vocab_size=V,
        max_seq_len=40,
        n_layer=2,
        n_dec_layer=1,
        d_model=32,
        n_head=4,
        d_ff=48,
    )
    return TransformerConfig(**{**base, **overrides})


def perturbed(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return module.eval()


def batch(b: int, t: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids (no special tokens); row 0 right-padded to half its length."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, V, (b, t), generator=gen)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[0, t // 2 :] = 0
    ids[0, t // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def prompts(seed: int = 3) -> list[list[int]]:
    """``[BOS] source [SEP]`` prompts of different lengths (a right-padded batch)."""
    gen = torch.Generator().manual_seed(seed)
    return [[BOS_ID, *torch.randint(7, V, (n,), generator=gen).tolist(), SEP_ID] for n in (3, 9, 6)]


T5 = dict(norm="rmsnorm", pos="none")
LN = dict(norm="layernorm", mlp="gelu")
VARIANTS = {
    "t5-relu": ({**T5, "mlp": "relu"}, "T5ForConditionalGeneration"),
    "t5-gelu-gqa": ({**T5, "mlp": "gelu", "n_kv_head": 2, "norm_eps": 1e-6}, None),
    "t5-swiglu-alibi": ({**T5, "mlp": "swiglu", "pos": "alibi", "n_kv_head": 1}, None),
    "blenderbot": (
        {**LN, "pos": "learned", "tie_embeddings": False, "n_kv_head": 2},
        "BlenderbotForConditionalGeneration",
    ),
    "pegasus": ({**LN, "pos": "sinusoidal", "mlp": "relu"}, "PegasusForConditionalGeneration"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_encoder_decoder_copies_match_logits_and_greedy_decode(tmp_path, name):
    from transformers import AutoModelForSeq2SeqLM

    overrides, cls = VARIANTS[name]
    arch = cfg(**overrides)
    family, reason = hf_family(arch)
    assert family is not None and reason == "", reason
    torch.manual_seed(0)  # a fixed init: some random models say [EOS] at once
    lm = perturbed(build_model(arch), seed=1)
    save_transformers(to_transformers(lm), tmp_path / "lm")
    back = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "lm", use_safetensors=True).eval()
    if cls:
        assert type(back).__name__ == cls
    batches = [batch(3, 17, seed=4), batch(2, 9, seed=5)]
    assert transformers_parity(back, lm, batches) < 1e-5
    # Greedy generate gives our greedy decode, a right-padded batch of prompts included.
    ours = greedy(lm, prompts(), 12, EOS_ID)
    assert hf_greedy(back, prompts(), 12) == ours
    assert any(len(r) > 3 for r in ours)  # real decoding, not an immediate [EOS]
    # The check can fail: a changed weight shows up in the difference.
    with torch.no_grad():
        lm.backbone.dec_blocks[0].norm2.weight.mul_(2.0)
    assert transformers_parity(back, lm, batches[:1]) > TOLERANCE


def test_generation_task_and_lora_export_through_the_format(tmp_path):
    """A LoRA-tuned generation task: merged before mapping, checked on split task streams."""
    arch = cfg(**T5, mlp="swiglu")
    lm = perturbed(build_model(arch), seed=2)
    adapt(lm, AdaptationSpec(method="lora", rank=2, targets=("q", "v", "w1")))
    with torch.no_grad():  # a non-zero update (B starts at zero)
        for n, p in lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.05)
    model = TaskModel(lm, lm.lm_head, "generation")
    stream = batch(3, 14, seed=6)
    stream["prefix_len"] = torch.tensor([4, 6, 9])
    for row, k in enumerate(stream["prefix_len"].tolist()):  # [BOS] source [SEP] target
        stream["input_ids"][row, 0], stream["input_ids"][row, k - 1] = BOS_ID, SEP_ID
    fmt = HFFormat()
    assert fmt.unsupported(arch) == "" and fmt.problem(model, "lora") == ""
    out = fmt.write(model, tmp_path, "translate", stream)
    assert fmt.entry(out, tmp_path, model)["class"] == "T5ForConditionalGeneration"
    assert fmt.parity(out, model, [stream]) < 1e-5
    # Without the merge the copy would hold the pretrained weights: the update is not zero.
    plain = perturbed(build_model(arch), seed=2)
    assert transformers_parity(to_transformers(plain), model, [stream]) > TOLERANCE


def test_t5_token_task_maps_onto_t5_for_token_classification(tmp_path):
    arch = cfg(**T5, mlp="relu")
    lm = perturbed(build_model(arch), seed=1)
    model = TaskModel(lm.backbone, perturbed(build_head("token", arch, 5), 2), "token")
    fmt = HFFormat()
    out = fmt.write(model, tmp_path, "ner", batch(2, 9))
    assert fmt.entry(out, tmp_path, model)["class"] == "T5ForTokenClassification"
    assert fmt.parity(out, model, [batch(3, 17, seed=4)]) < 1e-5
    span = TaskModel(lm.backbone, build_head("span", arch), "span")
    assert "head kind 'span' of an encoder_decoder" in fmt.problem(span)
    blender = cfg(**LN, pos="learned")
    token = TaskModel(build_model(blender).backbone, build_head("token", blender, 5), "token")
    assert "only for T5" in fmt.problem(token)


@pytest.mark.parametrize(
    "overrides, knob",
    [
        ({**T5, "pos": "rope"}, "pos=rope"),
        ({**T5, "norm_position": "post"}, "norm_position=post"),
        ({**T5, "tie_embeddings": False}, "tie_embeddings=False"),
        ({**T5, "d_ff": [48, 48, 64]}, "d_ff=[48, 48, 64]"),
        ({**LN, "pos": "learned", "norm_position": "post"}, "norm_position=post"),
        ({**LN, "pos": "sinusoidal", "norm_position": "post"}, "norm_position=post"),  # Marian
        ({**LN, "pos": "alibi"}, "pos=alibi"),
        ({**LN, "pos": "learned", "mlp": "swiglu"}, "mlp=swiglu"),
        ({**LN, "pos": "learned", "norm_eps": 1e-6}, "norm_eps=1e-06"),
    ],
)
def test_an_encoder_decoder_that_does_not_map_names_the_knob(overrides, knob):
    arch = cfg(**overrides)
    family, reason = hf_family(arch)
    assert family is None and reason.startswith(knob)
    assert HFFormat().unsupported(arch) == reason
    with pytest.raises(ExportError, match=knob.replace("[", r"\[").replace("]", r"\]")):
        to_transformers(build_model(arch))
