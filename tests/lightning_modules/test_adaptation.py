"""Tests of lightning_modules/adaptation.py: what trains, how much, and LoRA merging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_modules.adaptation import (
    METHODS,
    AdaptationMethod,
    AdaptationSpec,
    AdaptedLinear,
    LoRALinear,
    adapt,
    count_trainable,
    expected_trainable,
    lora_state_dict,
    merged,
    per_million,
)
from lightning_modules.config import TransformerConfig
from lightning_modules.export import TaskModel, load_adapter, save_adapter
from lightning_modules.heads import build_head
from lightning_modules.model import LanguageModel, Transformer
from lightning_modules.optim import adamw_with_schedule

V = 61


def cfg(**overrides) -> TransformerConfig:
    base = dict(
        family="encoder", vocab_size=V, max_seq_len=24, n_layer=2, d_model=32, n_head=4, d_ff=48
    )
    return TransformerConfig(**{**base, **overrides})


def task_model(c: TransformerConfig, spec: AdaptationSpec, lm: bool = False) -> TaskModel:
    backbone = LanguageModel(c) if lm else Transformer(c)
    head = nn.Identity() if lm else build_head("sequence", c, 3)
    adapt(backbone, spec)
    return TaskModel(backbone, head, "generation" if lm else "sequence")


def ids(b: int = 3, t: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def outputs(model: TaskModel, x: torch.Tensor) -> torch.Tensor:
    if model.kind == "generation":
        return model.backbone(x)
    return model.head(model.backbone(x))


def train(model: TaskModel, steps: int = 5) -> None:
    """A few AdamW steps (the fine-tuning optimizer) on a loss that touches every output."""
    opt = adamw_with_schedule(model, 1e-2, 0.01, steps)["optimizer"]
    model.train()
    for i in range(steps):
        loss = outputs(model, ids(seed=i)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def frozen_state(model: TaskModel) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone()
        for k, v in model.named_parameters()
        if not v.requires_grad and not k.startswith("head.")
    }


@pytest.mark.parametrize(
    ("overrides", "targets", "rank"),
    [
        ({}, ("q", "k", "v", "o"), 4),
        ({"n_kv_head": 2, "mlp": "swiglu"}, ("q", "v", "w1", "w2", "w3"), 2),
        ({"family": "decoder", "n_kv_head": 1}, ("k", "o", "w2"), 8),
    ],
)
def test_lora_trains_only_its_matrices_and_the_head(overrides, targets, rank):
    c = cfg(**overrides)
    spec = AdaptationSpec(method="lora", rank=rank, alpha=8, targets=targets)
    model = task_model(c, spec)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trains"
    assert all(".lora_" in n or n.startswith("head.") for n in trainable)
    assert {n for n in trainable if n.startswith("head.")} == {
        "head.classifier.weight",
        "head.classifier.bias",
    }
    # The analytic count: r * (in + out) per targeted matrix and block, plus the head.
    assert count_trainable(model) == expected_trainable(c, spec, model.head)
    q_k_v_o = {"q": c.d_model, "k": c.kv_dim, "v": c.kv_dim, "o": c.d_model}
    by_hand = 3 * c.d_model + 3
    for f in c.d_ff:
        for t in targets:
            inner = {"w1": (c.d_model, f), "w2": (f, c.d_model), "w3": (c.d_model, f)}
            i, o = inner.get(t, (c.d_model, q_k_v_o.get(t)))
            by_hand += rank * (i + o)
    assert count_trainable(model) == by_hand

    before = frozen_state(model)
    head_before = model.head.classifier.weight.detach().clone()
    b_before = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_B." in n}
    train(model)
    after = dict(model.named_parameters())
    for k, v in before.items():
        assert torch.equal(after[k], v), f"{k} changed"  # bit-identical
    assert not torch.equal(model.head.classifier.weight, head_before)
    assert all(not torch.equal(after[n], v) for n, v in b_before.items())


def test_adapter_starts_as_the_pretrained_model_and_trains_only_itself():
    c = cfg(norm_position="post")
    plain = TaskModel(Transformer(c), build_head("sequence", c, 3), "sequence").eval()
    spec = AdaptationSpec(method="adapter", size=5)
    model = TaskModel(adapt(Transformer(c), spec), build_head("sequence", c, 3), "sequence").eval()
    model.load_state_dict(plain.state_dict(), strict=False)
    x = ids()
    assert torch.equal(outputs(model, x), outputs(plain, x))  # up-projection starts at zero
    n_adapted = sum(isinstance(m, AdaptedLinear) for m in model.modules())
    assert n_adapted == 2 * c.n_layer
    assert count_trainable(model) == expected_trainable(c, spec, model.head)
    assert count_trainable(model) == 2 * c.n_layer * (2 * 32 * 5 + 5 + 32) + 3 * 32 + 3
    before = frozen_state(model)
    train(model)
    after = dict(model.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not torch.equal(outputs(model.eval(), x), outputs(plain, x))


@pytest.mark.parametrize("tie", [True, False])
def test_probe_trains_the_head_only_or_for_generation_the_lm_head(tie):
    c = cfg(family="decoder", tie_embeddings=tie)
    spec = AdaptationSpec(method="probe")
    model = task_model(c, spec)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "head.classifier.weight",
        "head.classifier.bias",
    }
    assert count_trainable(model) == expected_trainable(c, spec, model.head) == 32 * 3 + 3
    lm = task_model(c, spec, lm=True)
    names = {n for n, p in lm.named_parameters() if p.requires_grad}
    lm_head = "backbone.backbone.tok_emb.weight" if tie else "backbone.lm_head.weight"
    assert names == {lm_head, "backbone.backbone.norm_f.weight", "backbone.backbone.norm_f.bias"}
    assert count_trainable(lm) == expected_trainable(c, spec, lm.head, lm=True) == V * 32 + 64


@pytest.mark.parametrize("lm", [False, True])
def test_full_counts_every_weight(lm):
    c = cfg(family="decoder", tie_embeddings=False)
    model = task_model(c, AdaptationSpec(), lm=lm)
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())
    assert count_trainable(model) == expected_trainable(c, AdaptationSpec(), model.head, lm=lm)


def _randomised(model: nn.Module) -> nn.Module:
    """B starts at zero, where merged == unmerged trivially: give every B values."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_B." in n:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("lm", [False, True])
def test_merged_lora_equals_the_unmerged_model(lm):
    c = cfg(family="decoder", n_kv_head=2, mlp="swiglu", pos="rope")
    spec = AdaptationSpec(method="lora", rank=4, targets=("q", "v", "o", "w1", "w3"))
    model = _randomised(task_model(c, spec, lm=lm)).eval()
    flat = merged(model).eval()
    assert not any(isinstance(m, LoRALinear) for m in flat.modules())
    assert any(isinstance(m, LoRALinear) for m in model.modules())  # the original stays
    plain = TaskModel(LanguageModel(c) if lm else Transformer(c), model.head, model.kind)
    assert set(flat.state_dict()) == set(plain.state_dict())  # the keys of an unadapted model
    x = ids(4, 12)
    with torch.no_grad():
        diff = (outputs(flat, x) - outputs(model, x)).abs().max().item()
        moved = (outputs(flat, x) - outputs(plain.eval(), x)).abs().max().item()
    assert diff < 1e-5
    assert moved > 1e-3  # the merge did change the weights


def test_adapter_file_rebuilds_the_task_model_from_the_pretrained_one(tmp_path):
    c = cfg(family="decoder")
    lm = LanguageModel(c).eval()
    spec = AdaptationSpec(method="lora", rank=2, targets=("q", "w2"))
    backbone = adapt(Transformer(c), spec)
    backbone.load_state_dict(lm.backbone.state_dict(), strict=False)
    model = _randomised(TaskModel(backbone, build_head("sequence", c, 3), "sequence")).eval()
    path = tmp_path / "t.adapter.safetensors"
    save_adapter(model, path, spec)
    keys = set(lora_state_dict(model))
    assert keys and all(".lora_" in k or k.startswith("head.") for k in keys)

    class _Task:
        kind, needs_lm_head = "sequence", False

        def make_head(self, cfg):
            return build_head("sequence", cfg, 3)

    x = ids()
    with torch.no_grad():
        want = outputs(model, x)
        for merge in (False, True):
            got = outputs(load_adapter(lm, _Task(), path, merge=merge).eval(), x)
            assert (got - want).abs().max().item() < 1e-5


def test_spec_rejects_unknown_methods_and_targets():
    with pytest.raises(ValueError, match="finetune.method='bitfit'"):
        AdaptationSpec(method="bitfit")
    with pytest.raises(ValueError, match="targets"):
        AdaptationSpec(method="lora", targets=("qkv",))
    spec = AdaptationSpec.from_config({"method": "lora", "lora": {"rank": 3, "targets": ["v"]}})
    assert (spec.rank, spec.targets, spec.alpha) == (3, ("v",), 16.0)
    assert AdaptationSpec.from_json(spec.to_json()) == spec
    assert AdaptationSpec.from_json(None).method == "full"


def test_per_million_is_adaptability_per_million_trainable_parameters():
    assert per_million(0.5, [1_000_000, 3_000_000]) == pytest.approx(0.25)
    assert per_million(0.4, [20_000]) == pytest.approx(20.0)


def test_encoder_decoder_lora_and_probe_cover_the_decoder_stack():
    c = cfg(family="encoder_decoder", n_dec_layer=1, tie_embeddings=False)
    spec = AdaptationSpec(method="lora", rank=2, alpha=4, targets=("q", "v", "w2"))
    lm = task_model(c, spec, lm=True)
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.backbone.dec_blocks.0.attn.qkv.lora_") for n in trainable)
    assert all(".lora_" in n for n in trainable)
    assert count_trainable(lm) == expected_trainable(c, spec, lm.head, lm=True)
    x = ids()
    opt = adamw_with_schedule(lm, 1e-2, 0.01, 3)["optimizer"]
    before = frozen_state(lm)
    for _ in range(3):
        loss = lm.backbone(x, decoder_input_ids=x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(lm.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in before.items())
    probe = task_model(c, AdaptationSpec(method="probe"), lm=True)
    names = {n for n, p in probe.named_parameters() if p.requires_grad}
    norm = {"backbone.backbone.dec_norm_f.weight", "backbone.backbone.dec_norm_f.bias"}
    assert names == {"backbone.lm_head.weight", *norm}
    assert count_trainable(probe) == expected_trainable(
        c, AdaptationSpec(method="probe"), probe.head, lm=True
    )


@pytest.mark.parametrize("lm", [False, True])
@pytest.mark.parametrize(
    "overrides",
    [{"family": "decoder", "mlp": "swiglu"}, {"family": "encoder_decoder", "n_dec_layer": 1}],
)
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_counts_what_it_trains(name, overrides, lm):
    """Each entry of METHODS: its analytic count is what receives gradients, its name its key."""
    method = METHODS[name]
    assert method.name == name and isinstance(method, AdaptationMethod)
    c = cfg(**overrides)
    spec = AdaptationSpec(method=name, rank=2, targets=("q", "o", "w1"), size=4)
    model = task_model(c, spec, lm=lm)
    assert count_trainable(model) == expected_trainable(c, spec, model.head, lm=lm)


def test_a_method_answers_for_its_files_and_exports():
    from lightning_modules.export import HFFormat, OnnxFormat

    assert [n for n, m in METHODS.items() if m.adapter_file] == ["lora", "adapter"]
    assert [n for n, m in METHODS.items() if not m.merges] == ["adapter"]
    model = task_model(cfg(family="decoder"), AdaptationSpec(method="adapter"))
    assert OnnxFormat().problem(model, "adapter") == ""
    assert HFFormat().problem(model, "adapter") == (
        "finetune.method=adapter: adapters do not merge (full or lora)"
    )
