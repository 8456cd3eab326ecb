"""Tests of lightning_modules/heads.py on top of a real backbone."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.config import FAMILIES, TransformerConfig
from lightning_modules.heads import (
    MASKED_LOGIT,
    SequenceClassificationHead,
    SpanHead,
    TokenClassificationHead,
    build_head,
)
from lightning_modules.model import build_model

V, T, B, D = 97, 16, 3, 32


def tiny(family: str = "decoder") -> TransformerConfig:
    return TransformerConfig(
        family=family,
        vocab_size=V,
        max_seq_len=T,
        n_layer=2,
        d_model=D,
        n_head=4,
        d_ff=64,
        n_dec_layer=int(family == "encoder_decoder"),
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and mask with real lengths 16, 9 and 4."""
    x = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(B, T, dtype=torch.long)
    for row, length in enumerate((16, 9, 4)):
        mask[row, :length] = 1
    return x, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_and_backward(family):
    cfg = tiny(family)
    m = build_model(cfg)
    x, mask = batch()
    h = m.hidden(x, attention_mask=mask)
    seq, tok, span = (
        build_head("sequence", cfg, 5),
        build_head("token", cfg, 7),
        build_head("span", cfg),
    )
    assert isinstance(seq, SequenceClassificationHead)
    assert isinstance(tok, TokenClassificationHead)
    assert isinstance(span, SpanHead)
    s, t, (start, end) = seq(h, mask), tok(h, mask), span(h, mask)
    assert s.shape == (B, 5) and t.shape == (B, T, 7)
    assert start.shape == end.shape == (B, T)
    (s.sum() + t.sum() + start[mask.bool()].sum() + end[mask.bool()].sum()).backward()
    for head in (seq, tok, span):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    assert m.backbone.tok_emb.weight.grad is not None


def test_decoder_pools_the_last_real_token():
    cfg = tiny("decoder")
    torch.manual_seed(0)
    m, head = build_model(cfg).eval(), build_head("sequence", cfg, 4).eval()
    x, mask = batch()

    def classify(ids):
        return head(m.hidden(ids, attention_mask=mask), mask)

    base = classify(x)
    # Pads change nothing...
    y = x.clone()
    y[mask == 0] = (x[mask == 0] + 3) % V
    torch.testing.assert_close(classify(y), base, atol=1e-6, rtol=0)
    # ...the last real token changes its row and only its row.
    y = x.clone()
    y[1, 8] = (x[1, 8] + 1) % V
    out = classify(y)
    assert not torch.allclose(out[1], base[1], atol=1e-5)
    torch.testing.assert_close(out[[0, 2]], base[[0, 2]], atol=1e-6, rtol=0)

    # Directly: the pooled vector is the hidden state at position length - 1.
    h = torch.randn(B, T, D)
    torch.testing.assert_close(head.pool(h, mask), h[torch.arange(B), torch.tensor([15, 8, 3])])
    torch.testing.assert_close(head.pool(h), h[:, -1])


@pytest.mark.parametrize("family", ["encoder", "prefix_lm"])
def test_encoder_and_prefix_lm_mean_pool_real_tokens(family):
    cfg = tiny(family)
    torch.manual_seed(0)
    m, head = build_model(cfg).eval(), build_head("sequence", cfg, 4).eval()
    x, mask = batch()
    h = torch.randn(B, T, D)
    expected = torch.stack([h[row, :n].mean(0) for row, n in enumerate((16, 9, 4))])
    torch.testing.assert_close(head.pool(h, mask), expected)

    y = x.clone()
    y[mask == 0] = (x[mask == 0] + 3) % V
    a = head(m.hidden(x, attention_mask=mask), mask)
    b = head(m.hidden(y, attention_mask=mask), mask)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_span_head_masks_pads():
    cfg = tiny("encoder")
    head = build_head("span", cfg)
    _, mask = batch()
    h = torch.randn(B, T, D)
    start, end = head(h, mask)
    pad = mask == 0
    assert (start[pad] == MASKED_LOGIT).all() and (end[pad] == MASKED_LOGIT).all()
    assert (start[~pad] > MASKED_LOGIT / 2).all() and (end[~pad] > MASKED_LOGIT / 2).all()
    assert start.argmax(-1).lt(mask.sum(-1)).all()
    # An all-pad row must not turn a softmax or a loss into NaN.
    mask[2] = 0
    start, _ = head(h, mask)
    assert torch.isfinite(torch.log_softmax(start, -1)).all()
    # Without a mask nothing is masked.
    start, _ = head(h)
    assert (start > MASKED_LOGIT / 2).all()


def test_token_head_dropout_only_in_training():
    cfg = TransformerConfig(
        vocab_size=V, max_seq_len=T, n_layer=1, d_model=D, n_head=4, d_ff=64, dropout=0.5
    )
    head = build_head("token", cfg, 3)
    h = torch.randn(B, T, D)
    assert not torch.allclose(head(h), head(h))
    head.eval()
    torch.testing.assert_close(head(h), head(h))


def test_heads_have_biases_and_small_init():
    head = build_head("sequence", tiny(), 4)
    assert head.classifier.bias is not None and torch.equal(head.classifier.bias, torch.zeros(4))
    assert head.classifier.weight.std() < 0.05


def test_build_head_errors():
    cfg = tiny()
    with pytest.raises(ValueError, match="'regression'"):
        build_head("regression", cfg, 1)
    with pytest.raises(ValueError, match="num_labels"):
        build_head("sequence", cfg)
    with pytest.raises(ValueError, match="num_labels"):
        build_head("token", cfg, 0)
