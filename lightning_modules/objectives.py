"""Pretraining objectives: the family decides what the language model learns to predict.

* decoder: causal LM, every position predicts the next token.
* encoder: masked LM (BERT's 15% with 80/10/10), only masked positions reach the vocabulary matmul.
* prefix_lm: a random prefix is read bidirectionally; positions from the prefix's last token on
  predict the next token (earlier ones could see their target inside the prefix).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -100


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


def pretraining_loss(model, block: Tensor, special_ids: dict[str, int], generator=None) -> Tensor:
    """The objective that matches ``model.cfg.family``."""
    family = model.cfg.family
    if family == "decoder":
        return causal_lm_loss(model, block)
    if family == "encoder":
        return masked_lm_loss(
            model, block, special_ids["mask"], special_ids["n_special"], generator=generator
        )
    return prefix_lm_loss(model, block, generator=generator)
