"""Pretraining objectives: the family decides what the language model learns to predict.

* decoder: causal LM, every position predicts the next token.
* encoder: masked LM (BERT's 15% with 80/10/10), only masked positions reach the vocabulary matmul.
* prefix_lm: a random prefix is read bidirectionally; positions from the prefix's last token on
  predict the next token (earlier ones could see their target inside the prefix).
* encoder_decoder: BART's text infilling (Lewis et al., 2020): spans of 3 tokens covering about
  15% of the text are each replaced by one ``[MASK]`` in the encoder's input, and the decoder,
  fed ``[SEP]`` plus the original text shifted right, reconstructs the whole original text.
  One ``[MASK]`` per span (rather than T5's numbered sentinels) needs no new special tokens and
  makes the model infer each span's length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_modules.data.tokenizer import SEP, SPECIAL_TOKENS

IGNORE = -100
SPAN = 3  # tokens per corrupted span


def causal_lm_loss(model, block: Tensor) -> Tensor:
    """Next-token loss of ``block`` (B, T+1): inputs and targets are shifted once, up front."""
    x, y = block[:, :-1], block[:, 1:]  # (B, T), (B, T)
    logits = model(x)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


def masked_lm_loss(
    model,
    block: Tensor,
    mask_id: int,
    n_special: int,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> Tensor:
    """BERT masked-LM loss over ``block[:, :-1]``.

    Args:
        model: A ``LanguageModel``.
        block: Token ids (B, T+1); the last column is unused so every family sees T inputs.
        mask_id: Id of ``[MASK]``.
        n_special: Ids below this are special tokens, never drawn as random replacements.
        mask_prob: Share of positions to predict.
        generator: Makes the masking reproducible (validation uses a fixed one).
    """
    x = block[:, :-1]  # (B, T)
    dev = x.device
    r = torch.rand(x.shape, generator=generator, device="cpu").to(dev)
    chosen = r < mask_prob  # (B, T)
    if not chosen.any():  # a tiny batch can draw none; predict one token rather than divide by 0
        chosen[0, 0] = True
    # Reuse the same uniform draw to split the chosen positions 80/10/10 without a second pass.
    u = r / mask_prob
    inputs = x.clone()
    inputs[chosen & (u < 0.8)] = mask_id
    rand_pos = chosen & (u >= 0.8) & (u < 0.9)
    random_ids = torch.randint(n_special, model.cfg.vocab_size, x.shape, generator=generator)
    inputs[rand_pos] = random_ids.to(dev)[rand_pos]
    hidden = model.hidden(inputs)  # (B, T, d)
    logits = model.logits_from_hidden(hidden[chosen])  # (M, V)
    return F.cross_entropy(logits.float(), x[chosen])


def prefix_lm_loss(model, block: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Prefix-LM loss: a random prefix length per row, loss on the causal part only."""
    x, y = block[:, :-1], block[:, 1:].clone()  # (B, T), (B, T)
    b, t = x.shape
    prefix_len = torch.randint(1, t, (b,), generator=generator).to(x.device)  # (B,)
    pos = torch.arange(t, device=x.device)
    y[pos[None, :] < (prefix_len[:, None] - 1)] = IGNORE  # would be visible inside the prefix
    logits = model(x, prefix_len=prefix_len)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)


def corrupt_spans(
    x: Tensor, mask_id: int, mask_prob: float = 0.15, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Replace random spans of ``SPAN`` tokens by one ``mask_id`` each, then close the gaps.

    Args:
        x: ``(B, T)`` token ids.
        mask_id: Id of ``[MASK]``.
        mask_prob: Share of tokens inside a span (about; spans may overlap or run off the end).
        generator: Makes the corruption reproducible.

    Returns:
        ``(ids, attention_mask)``: the corrupted rows, left-aligned and right-padded, ``(B, T)``.
    """
    B, T = x.shape
    dev = x.device
    starts = torch.rand((B, T), generator=generator, device="cpu").to(dev) < mask_prob / SPAN
    if not starts.any():  # a tiny batch can draw none; corrupt one span rather than nothing
        starts[0, 0] = True
    # A token is noise when a span starts at it or at one of the SPAN - 1 tokens before it.
    noise = starts.clone()
    for k in range(1, SPAN):
        noise[:, k:] |= starts[:, :-k]
    first = noise & ~F.pad(noise, (1, 0))[:, :T]  # (B, T) the first token of each noise run
    keep = ~noise | first  # every run keeps one slot, for its [MASK]
    ids = torch.where(first, torch.full_like(x, mask_id), x)
    # A stable sort moves the kept tokens to the front of each row, in order.
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices  # (B, T)
    length = keep.sum(1)  # (B,)
    mask = (torch.arange(T, device=dev)[None, :] < length[:, None]).long()  # (B, T)
    return ids.gather(1, order) * mask, mask


def denoising_loss(
    model,
    block: Tensor,
    mask_id: int,
    start_id: int,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Text-infilling loss of an ``encoder_decoder`` over ``block[:, :-1]`` (B, T).

    Args:
        model: An ``encoder_decoder`` ``LanguageModel``.
        block: Token ids (B, T+1); the last column is unused so every family sees T inputs.
        mask_id: Id of ``[MASK]``.
        start_id: The decoder's start token (``[SEP]``, as in generation tasks).
        mask_prob: Share of the text inside corrupted spans.
        generator: Makes the corruption reproducible (validation uses a fixed one).
    """
    x = block[:, :-1]  # (B, T)
    source, source_mask = corrupt_spans(x, mask_id, mask_prob, generator)  # (B, T) each
    start = torch.full_like(x[:, :1], start_id)  # (B, 1)
    decoder_ids = torch.cat((start, x[:, :-1]), dim=1)  # (B, T): shifted right
    logits = model(source, attention_mask=source_mask, decoder_input_ids=decoder_ids)
    return F.cross_entropy(logits.flatten(0, 1).float(), x.flatten())


def pretraining_loss(
    model,
    block: Tensor,
    special_ids: dict[str, int],
    generator=None,
    encoder_mlm: bool = False,
) -> Tensor:
    """The objective that matches ``model.cfg.family``.

    ``encoder_mlm`` (``pretrain.encoder_mlm``) adds, for an ``encoder_decoder`` only, BERT's
    masked-LM loss on the encoder's own states to text infilling: the states its task heads read
    then get an objective of their own, not only what the decoder's cross-attention asks of them.
    """
    family = model.cfg.family
    if family == "encoder_decoder":
        start = special_ids.get("sep", SPECIAL_TOKENS.index(SEP))
        loss = denoising_loss(model, block, special_ids["mask"], start, generator=generator)
        if encoder_mlm:
            loss = loss + masked_lm_loss(
                model, block, special_ids["mask"], special_ids["n_special"], generator=generator
            )
        return loss
    if family == "decoder":
        return causal_lm_loss(model, block)
    if family == "encoder":
        return masked_lm_loss(
            model, block, special_ids["mask"], special_ids["n_special"], generator=generator
        )
    return prefix_lm_loss(model, block, generator=generator)
