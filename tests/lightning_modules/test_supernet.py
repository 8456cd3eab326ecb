"""The elastic super-network: slices equal a standalone model; the sandwich step shares weights."""

from __future__ import annotations

import re

import pytest
import torch

from lightning_modules.config import ArchitectureError, TransformerConfig
from lightning_modules.model import LanguageModel
from lightning_modules.optim import DivergedError
from lightning_modules.supernet import SuperNetwork, check_fits, distillation_loss, sandwich_step

V, L = 61, 24
SPECIAL = {"mask": 4, "n_special": 5}


def sup(**kw) -> TransformerConfig:
    base = dict(vocab_size=V, max_seq_len=L, n_layer=3, d_model=64, n_head=4, d_ff=128)
    return TransformerConfig(**{**base, **kw})


def sub_of(s: TransformerConfig, **kw) -> TransformerConfig:
    keep = {k: getattr(s, k) for k in ("vocab_size", "max_seq_len", "mlp", "norm", "pos")}
    keep.update(norm_position=s.norm_position, tie_embeddings=s.tie_embeddings, family=s.family)
    return TransformerConfig(**{**keep, **kw})


def randomised(net: SuperNetwork) -> SuperNetwork:
    """Every weight random (norm gains and biases too), so a wrong slice shows in the outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.2)
    return net.eval()


SUBS = [
    # (super-network knobs, sub-network knobs)
    ({}, dict(n_layer=2, d_model=32, n_head=4, n_kv_head=2, d_ff=[64, 96])),  # GQA, per-layer
    ({}, dict(n_layer=3, d_model=64, n_head=4, d_ff=128)),  # the super-network itself
    ({}, dict(n_layer=1, d_model=48, n_head=2, n_kv_head=1, d_ff=[16])),  # MQA, odd width
    ({"family": "prefix_lm"}, dict(n_layer=2, d_model=32, n_head=2, d_ff=[128, 8])),
    ({"pos": "learned", "norm": "rmsnorm"}, dict(n_layer=2, d_model=40, n_head=5, d_ff=[32, 64])),
    (
        {"pos": "alibi", "mlp": "swiglu", "tie_embeddings": False},
        dict(n_layer=2, d_model=32, n_head=8, n_kv_head=4, d_ff=[64, 32]),
    ),
    (
        {"pos": "sinusoidal", "norm_position": "post"},
        dict(n_layer=1, d_model=16, n_head=2, d_ff=[40]),
    ),
    ({"pos": "none", "mlp": "relu"}, dict(n_layer=2, d_model=56, n_head=7, d_ff=[100, 1])),
    ({"family": "encoder"}, dict(n_layer=2, d_model=32, n_head=4, n_kv_head=1, d_ff=[64, 64])),
]


@pytest.mark.parametrize(("super_kw", "sub_kw"), SUBS)
def test_sub_network_outputs_equal_a_standalone_model_with_the_sliced_weights(super_kw, sub_kw):
    s = sup(**super_kw)
    net = randomised(SuperNetwork(s))
    sub = sub_of(s, **sub_kw)
    standalone = net.extract(sub).eval()
    assert type(standalone) is LanguageModel and standalone.cfg == sub
    assert standalone.num_params() == sub.num_params()
    x = torch.randint(0, V, (3, 11))
    prefix = torch.tensor([1, 4, 10])
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 7:] = 0
    net.activate(sub)
    assert net.cfg is sub
    with torch.no_grad():
        for kwargs in ({}, {"prefix_len": prefix}, {"attention_mask": mask}):
            torch.testing.assert_close(net(x, **kwargs), standalone(x, **kwargs), rtol=0, atol=0)
        h = net.hidden(x, prefix_len=prefix)
        torch.testing.assert_close(h, standalone.hidden(x, prefix_len=prefix), rtol=0, atol=0)
        torch.testing.assert_close(net.logits_from_hidden(h[:, 2]), standalone.lm_head(h[:, 2]))


def test_decoder_and_prefix_lm_share_one_super_network():
    s = sup()
    net = randomised(SuperNetwork(s))
    x, prefix = torch.randint(0, V, (2, 9)), torch.tensor([3, 6])
    base = dict(n_layer=2, d_model=32, n_head=2, d_ff=[64, 64])
    dec, plm = sub_of(s, **base), sub_of(s, **{**base, "family": "prefix_lm"})
    with torch.no_grad():
        a = net.activate(dec)(x, prefix_len=prefix)  # a decoder ignores the prefix
        b = net.activate(plm)(x, prefix_len=prefix)
        torch.testing.assert_close(b, net.extract(plm).eval()(x, prefix_len=prefix))
        ones = torch.ones(2, dtype=torch.long)
        c = net.activate(plm)(x, prefix_len=ones)  # a one-token prefix is the causal mask
    # Same weights, only the mask differs.
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, c)


def test_norm_of_a_slice_normalises_over_the_slice_only():
    s = sup(n_layer=1)
    net = randomised(SuperNetwork(s))
    sub = sub_of(s, n_layer=1, d_model=16, n_head=2, d_ff=[8])
    norm = net.lm.backbone.norm_f
    w = net.sliced(sub)["backbone.norm_f.weight"]
    assert w.shape == (16,) and w.data_ptr() == norm.weight.data_ptr()  # a view, not a copy
    x = torch.randn(2, 16)
    mine = torch.nn.functional.layer_norm(x, (16,), w, net.sliced(sub)["backbone.norm_f.bias"])
    torch.testing.assert_close(mine, net.extract(sub).backbone.norm_f(x))


def test_extracted_model_owns_its_weights():
    s = sup()
    net = SuperNetwork(s)
    sub = sub_of(s, n_layer=1, d_model=32, n_head=2, d_ff=[64])
    model = net.extract(sub)
    before = net.lm.backbone.tok_emb.weight[:, :32].clone()
    with torch.no_grad():
        model.backbone.tok_emb.weight.add_(1.0)
    torch.testing.assert_close(net.lm.backbone.tok_emb.weight[:, :32], before)
    assert model.lm_head.weight is model.backbone.tok_emb.weight  # still tied, as build_model ties


@pytest.mark.parametrize(
    ("kw", "knob"),
    [
        ({"n_layer": 4}, "n_layer"),
        ({"d_model": 128, "n_head": 4}, "d_model"),
        ({"d_ff": [64, 256, 64]}, "d_ff[1]"),
        ({"mlp": "swiglu"}, "mlp"),
        ({"pos": "alibi"}, "pos"),
        ({"tie_embeddings": False}, "tie_embeddings"),
        ({"family": "encoder"}, "family"),
        ({"vocab_size": V + 1}, "vocab_size"),
    ],
)
def test_what_does_not_fit_is_an_error_naming_the_knob(kw, knob):
    s = sup()
    base = dict(n_layer=3, d_model=64, n_head=4, d_ff=128)
    cfg = sub_of(s, **{**base, **kw})
    with pytest.raises(ArchitectureError, match=f"^{re.escape(knob)}"):
        check_fits(s, cfg)
    with pytest.raises(ArchitectureError):
        SuperNetwork(s).activate(cfg)


def _grads(net: SuperNetwork) -> dict[str, torch.Tensor]:
    return {k: p.grad for k, p in net.lm.named_parameters()}


def test_sandwich_step_accumulates_gradients_of_exactly_the_slices_used():
    s = sup(family="decoder")
    net = SuperNetwork(s).train()
    small = sub_of(s, n_layer=1, d_model=32, n_head=2, d_ff=[64])
    block = torch.randint(0, V, (4, 13))
    losses = sandwich_step(net, block, SPECIAL, [small], seed=1, loss_limit=50.0)
    assert len(losses) == 1 and all(torch.isfinite(torch.tensor(losses)))
    g = _grads(net)
    # Only the first block got gradients, and only inside its slices.
    assert g["backbone.blocks.1.attn.qkv.weight"] is None
    qkv = g["backbone.blocks.0.attn.qkv.weight"]  # (3 x 64, 64): q, k, v blocks of 64 rows
    assert qkv[:32, :32].abs().sum() > 0 and qkv[64:96, :32].abs().sum() > 0
    assert qkv[32:64].abs().sum() == 0 and qkv[:, 32:].abs().sum() == 0
    assert qkv[96:128].abs().sum() == 0  # kv rows beyond n_kv_head * head_dim
    w1 = g["backbone.blocks.0.mlp.w1.weight"]
    assert w1[:64, :32].abs().sum() > 0 and w1[64:].abs().sum() == 0
    emb = g["backbone.tok_emb.weight"]
    assert emb[:, :32].abs().sum() > 0 and emb[:, 32:].abs().sum() == 0


def test_sandwich_step_trains_every_sub_network_through_the_shared_weights():
    s = sup()
    torch.manual_seed(0)
    net = SuperNetwork(s).train()
    largest = sub_of(s, n_layer=3, d_model=64, n_head=4, d_ff=128)
    smallest = sub_of(s, n_layer=1, d_model=16, n_head=2, n_kv_head=1, d_ff=[8])
    middle = sub_of(
        s, n_layer=2, d_model=48, n_head=4, n_kv_head=2, d_ff=[32, 96], family="prefix_lm"
    )
    subs = [largest, smallest, middle]
    block = torch.randint(0, V, (8, 13))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    first = sandwich_step(net, block, SPECIAL, subs, seed=3, loss_limit=50.0)
    assert len(first) == 3 and all(0 < v < 50 for v in first)
    # The step's gradient is the mean of the three: the largest's alone on the last block.
    assert _grads(net)["backbone.blocks.2.mlp.w2.weight"].abs().sum() > 0
    opt.step()
    opt.zero_grad()
    after = sandwich_step(net, block, SPECIAL, subs, seed=3, loss_limit=50.0)
    assert all(b < a for a, b in zip(first, after, strict=True))  # every one learned
    # An extracted sub-network carries the trained shared weights.
    model = net.extract(smallest)
    torch.testing.assert_close(
        model.backbone.tok_emb.weight, net.lm.backbone.tok_emb.weight[:, :16]
    )
    assert net.cfg == s  # the step leaves the super-network active


def test_in_place_distillation_changes_the_students_gradients_only():
    s = sup()
    big = sub_of(s, n_layer=3, d_model=64, n_head=4, d_ff=128)
    small = sub_of(s, n_layer=1, d_model=16, n_head=2, d_ff=[8])
    block = torch.randint(0, V, (4, 13))
    grads = {}
    for distill in (False, True):
        torch.manual_seed(0)
        net = SuperNetwork(s).train()
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.1)
        sandwich_step(net, block, SPECIAL, [big, small], seed=2, loss_limit=50.0, distill=distill)
        grads[distill] = _grads(net)
    # Blocks only the teacher uses get the same gradient; the shared first block does not.
    torch.testing.assert_close(
        grads[True]["backbone.blocks.2.mlp.w1.weight"],
        grads[False]["backbone.blocks.2.mlp.w1.weight"],
    )
    assert not torch.allclose(
        grads[True]["backbone.blocks.0.mlp.w1.weight"],
        grads[False]["backbone.blocks.0.mlp.w1.weight"],
    )


def test_distillation_loss_is_zero_for_identical_distributions():
    logits = torch.randn(5, 7, V)
    assert float(distillation_loss(logits, logits.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(logits, torch.randn(5, 7, V), temperature=2.0)) > 0


def test_encoder_sandwich_sees_the_same_masks_for_every_sub_network():
    s = sup(family="encoder")
    net = SuperNetwork(s).train()
    sub = sub_of(s, n_layer=1, d_model=32, n_head=2, d_ff=[64])
    block = torch.randint(5, V, (4, 13))
    seen = []
    original = net.hidden

    def spy(inputs, **kw):
        seen.append(inputs.clone())
        return original(inputs, **kw)

    net.hidden = spy
    sandwich_step(net, block, SPECIAL, [s, sub, sub], seed=9, loss_limit=50.0)
    assert len(seen) == 3 and all(torch.equal(seen[0], x) for x in seen[1:])
    assert (seen[0] == SPECIAL["mask"]).any()


def test_a_diverging_sub_network_raises():
    s = sup()
    net = SuperNetwork(s).train()
    with pytest.raises(DivergedError, match="supernet"):
        sandwich_step(net, torch.randint(0, V, (2, 9)), SPECIAL, [s], seed=0, loss_limit=0.1)


def test_the_full_sub_network_is_the_super_network_itself():
    s = sup(tie_embeddings=False, n_head=4, n_kv_head=4)
    net = randomised(SuperNetwork(s))
    x = torch.randint(0, V, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(net.activate(s)(x), net.lm(x), rtol=0, atol=0)
    state = net.extract(s).state_dict()
    for k, v in net.lm.state_dict().items():
        assert torch.equal(state[k], v), k


def test_a_gqa_sub_network_reads_the_leading_rows_of_the_key_and_value_blocks():
    s = sup(n_layer=1, d_ff=8)
    net = randomised(SuperNetwork(s))
    sub = sub_of(s, n_layer=1, d_model=32, n_head=4, n_kv_head=2, d_ff=[8])  # kv_dim 16
    qkv = net.sliced(sub)["backbone.blocks.0.attn.qkv.weight"]
    full = net.lm.backbone.blocks[0].attn.qkv.weight  # rows: q 0..63, k 64..127, v 128..191
    assert qkv.shape == (32 + 2 * 16, 32)
    torch.testing.assert_close(qkv[:32], full[:32, :32])
    torch.testing.assert_close(qkv[32:48], full[64:80, :32])
    torch.testing.assert_close(qkv[48:], full[128:144, :32])


def test_encoder_decoders_have_no_super_network():
    enc_dec = TransformerConfig(family="encoder_decoder", vocab_size=50, n_dec_layer=1)
    with pytest.raises(ArchitectureError, match="encoder_decoder.*strategy=standalone"):
        SuperNetwork(enc_dec)
    with pytest.raises(ArchitectureError, match="encoder_decoder"):
        check_fits(TransformerConfig(vocab_size=50, n_layer=3), enc_dec)
