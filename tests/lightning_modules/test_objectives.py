"""Pretraining objectives; here the encoder_decoder's text infilling (the others: test_device)."""

from __future__ import annotations

import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.model import build_model
from lightning_modules.objectives import SPAN, corrupt_spans, pretraining_loss

MASK = 4
SPECIAL_IDS = {"mask": MASK, "n_special": 7}


def test_spans_become_one_mask_each_and_the_rest_keeps_its_order():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(7, 100, (64, 40), generator=gen)
    ids, mask = corrupt_spans(x, MASK, mask_prob=0.3, generator=gen)
    assert ids.shape == x.shape and mask.shape == x.shape
    lengths = mask.sum(1)
    assert (lengths < 40).all()  # every row lost something
    assert ((ids == 0) == (mask == 0)).all()  # right padding with PAD_ID
    for row, out, n in zip(x.tolist(), ids.tolist(), lengths.tolist(), strict=True):
        out = out[:n]
        # Expanding each [MASK] back into the tokens it hides gives the row: the kept tokens
        # are in order, and each [MASK] stands for a run of at least one and (runs may merge)
        # any multiple of overlapping spans.
        kept = [t for t in out if t != MASK]
        it = iter(row)
        assert all(any(t == r for r in it) for t in kept)
        assert len(row) - len(kept) >= out.count(MASK) >= 1
    # About 30% of the tokens are hidden (spans overlap and run off the end: a bit less).
    hidden = 1 - (ids != MASK).logical_and(mask.bool()).sum() / x.numel()
    assert 0.15 < float(hidden) < 0.35


def test_no_span_is_ever_shorter_than_span_tokens_inside_the_row():
    gen = torch.Generator().manual_seed(3)
    x = torch.arange(7, 7 + 30).repeat(16, 1)  # distinct tokens: gaps are visible
    ids, mask = corrupt_spans(x, MASK, mask_prob=0.2, generator=gen)
    for out, n in zip(ids.tolist(), mask.sum(1).tolist(), strict=True):
        out = out[:n]
        for i, t in enumerate(out):
            if t == MASK:
                before = out[i - 1] if i else 6  # the token before the row
                after = out[i + 1] if i + 1 < n and out[i + 1] != MASK else 37
                assert after - before - 1 >= min(SPAN, 37 - before - 1)


def test_denoising_pretraining_learns_and_reaches_every_parameter():
    torch.manual_seed(0)
    cfg = TransformerConfig(
        family="encoder_decoder", vocab_size=40, max_seq_len=32, n_layer=1, n_dec_layer=1,
        d_model=32, n_head=2, d_ff=64,
    )  # fmt: skip
    model = build_model(cfg)
    block = torch.randint(7, 40, (8, 17), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss = pretraining_loss(model, block, SPECIAL_IDS, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def _tiny(family: str, **extra):
    torch.manual_seed(0)
    size = {"n_layer": 1, "d_model": 16, "n_head": 2, "d_ff": 32, "vocab_size": 40}
    return build_model(TransformerConfig(family=family, max_seq_len=8, **size, **extra))


def test_encoder_mlm_adds_masked_lm_on_the_encoder_of_an_encoder_decoder_only():
    from lightning_modules.objectives import masked_lm_loss
    from lightning_modules.pretrain import PretrainModule

    block = torch.randint(7, 40, (4, 9), generator=torch.Generator().manual_seed(0))
    encdec = _tiny("encoder_decoder", n_dec_layer=1)
    g = torch.Generator().manual_seed(1)  # infilling draws first, then the masked LM
    infilling = pretraining_loss(encdec, block, SPECIAL_IDS, generator=g)
    both = infilling + masked_lm_loss(encdec, block, MASK, 7, generator=g)
    got = pretraining_loss(
        encdec, block, SPECIAL_IDS, generator=torch.Generator().manual_seed(1), encoder_mlm=True
    )
    assert torch.equal(got, both) and float(got.detach()) > float(infilling.detach())
    # The encoder gets a gradient from the masked LM alone: its states are read by the heads.
    encdec.zero_grad()
    masked_lm_loss(encdec, block, MASK, 7, generator=torch.Generator().manual_seed(2)).backward()
    assert encdec.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in encdec.backbone.dec_blocks.parameters())
    # Another family ignores the setting.
    decoder = _tiny("decoder")
    assert torch.equal(
        pretraining_loss(decoder, block, SPECIAL_IDS, encoder_mlm=True),
        pretraining_loss(decoder, block, SPECIAL_IDS),
    )
    # The Lightning module passes it on, in training and in its held-out loss.
    on, off = (PretrainModule(encdec, SPECIAL_IDS, encoder_mlm=m) for m in (True, False))
    assert on.held_out_loss(block, 2) > off.held_out_loss(block, 2)
