"""A super-network: one set of weights that runs every sub-architecture of a search space.

Weight sharing in the manner of HAT's SuperTransformer (Wang et al., 2020) and of once-for-all /
BigNAS: the super-network is the plain ``LanguageModel`` of the *largest* architecture
(``super_cfg``), and a sub-network is any ``TransformerConfig`` that fits in it. A sub-network
uses

* depth: the first ``n_layer`` blocks;
* width: the leading ``d_model`` columns of every embedding and input projection, and the leading
  rows of every output projection; norms take the leading ``d_model`` entries of their gain (and
  bias) and normalise over the slice only, exactly as a ``d_model``-wide norm would;
* heads: **head_dim follows the sub-network** (``d_model // n_head``, as ``TransformerConfig``
  defines it). Queries are the leading ``d_model`` rows of the super-network's query block, keys
  and values the leading ``n_kv_head * head_dim`` rows of its key and value blocks; those rows are
  then split into ``n_head`` (``n_kv_head``) contiguous heads. Changing the head count at a fixed
  width therefore re-reads the same weights as other heads (HAT's rule, whose query/key/value
  width does not change with the head count either) rather than selecting other weights; it is the
  one rule that covers spaces whose ``d_model`` and ``n_head`` vary independently;
* MLP: the leading ``d_ff[i]`` hidden units of block ``i``.

Knobs without weights (``family`` between ``decoder`` and ``prefix_lm``, which differ only by the
mask, ``dropout``, ``rope_base``, ``norm_eps``) follow the sub-network; the fixed position tables
(sinusoidal, RoPE, ALiBi) are recomputed for it. Knobs that change which weights exist (``mlp``,
``norm``, ``norm_position``, ``pos``, ``tie_embeddings``) and the objective family (``encoder``
against the causal ones) must equal the super-network's: ``check_fits`` says which differs.

The forward pass runs the unchanged ``LanguageModel`` code of the sub-network through
``torch.func.functional_call`` with differentiable slices of the super-network's parameters, so a
sub-network's outputs equal those of ``build_model(sub_cfg)`` loaded with ``extract(sub_cfg)``'s
weights by construction (and by test), and its gradients land in the shared weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from lightning_modules.config import ArchitectureError, TransformerConfig
from lightning_modules.model import LanguageModel, Transformer, build_model
from lightning_modules.objectives import pretraining_loss
from lightning_modules.optim import check_loss

__all__ = [
    "ELASTIC",
    "FREE",
    "SHARED",
    "SuperNetwork",
    "check_fits",
    "sandwich_step",
]

#: Knobs a sub-network may shrink: each takes a slice of the super-network's weights.
ELASTIC = ("n_layer", "d_model", "n_head", "n_kv_head", "d_ff")
#: Knobs that decide which weights exist: one value per super-network.
SHARED = ("mlp", "norm", "norm_position", "pos", "tie_embeddings")
#: Knobs without weights: each sub-network has its own.
FREE = ("dropout", "rope_base", "norm_eps", "init_std")
#: Knobs the data decides: the same for the super-network and every sub-network.
DATA = ("vocab_size", "max_seq_len")

_SKELETONS = 32  # sub-network skeletons kept (largest and smallest come back every step)


def check_fits(super_cfg: TransformerConfig, sub: TransformerConfig) -> None:
    """Raise ``ArchitectureError`` naming the knob unless ``sub`` fits in ``super_cfg``.

    Args:
        super_cfg: The super-network's architecture.
        sub: A candidate sub-network.
    """
    for cfg in (super_cfg, sub):
        if cfg.family == "encoder_decoder":
            raise ArchitectureError(
                "family='encoder_decoder' has no super-network (a second stack with "
                "cross-attention has no slicing rules): use strategy=standalone"
            )
    for name in (*DATA, *SHARED):
        if getattr(sub, name) != getattr(super_cfg, name):
            raise ArchitectureError(
                f"{name}={getattr(sub, name)!r} differs from the super-network's "
                f"{getattr(super_cfg, name)!r}: it cannot share its weights"
            )
    if (sub.family == "encoder") != (super_cfg.family == "encoder"):
        raise ArchitectureError(
            f"family={sub.family!r} cannot share a super-network of family "
            f"{super_cfg.family!r} (encoders learn another objective)"
        )
    for name in ("n_layer", "d_model"):
        if getattr(sub, name) > getattr(super_cfg, name):
            raise ArchitectureError(
                f"{name}={getattr(sub, name)} exceeds the super-network's "
                f"{getattr(super_cfg, name)}"
            )
    for i, f in enumerate(sub.d_ff):
        if f > super_cfg.d_ff[i]:
            raise ArchitectureError(
                f"d_ff[{i}]={f} exceeds the super-network's {super_cfg.d_ff[i]}"
            )


def _key(cfg: TransformerConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)


class _Call(nn.Module):
    """Calls one method of a language model, so ``functional_call`` can reach ``hidden`` too."""

    def __init__(self, lm: LanguageModel):
        super().__init__()
        self.lm = lm

    def forward(self, method: str, *args, **kwargs):  # noqa: D102
        return getattr(self.lm, method)(*args, **kwargs)


class SuperNetwork(nn.Module):
    """The weights of ``super_cfg``'s language model, run as any sub-network that fits.

    It quacks like a ``LanguageModel`` of the active sub-network (``cfg``, ``forward``,
    ``hidden``, ``logits_from_hidden``), so the pretraining objectives
    (``lightning_modules.objectives``) train it unchanged.

    Args:
        super_cfg: The largest architecture: ``n_layer``, ``d_model`` and each ``d_ff`` are the
            maxima of the space; its head counts do not matter (the query, key and value blocks
            are each ``d_model`` rows, the widest any sub-network needs).

    Attributes:
        super_cfg: That architecture.
        lm: Its ``LanguageModel``: the shared weights (and the state dict that is saved).
        record: While True, ``last_logits`` keeps the logits of the latest forward pass (for
            in-place distillation).
    """

    def __init__(self, super_cfg: TransformerConfig):
        super().__init__()
        check_fits(super_cfg, super_cfg)  # refuses what no super-network can be
        if super_cfg.n_kv_head != super_cfg.n_head:
            # Key and value blocks as wide as the queries: the widest any sub-network reads.
            super_cfg = dataclasses.replace(super_cfg, n_kv_head=super_cfg.n_head)
        self.super_cfg = super_cfg
        self.lm = build_model(super_cfg)
        self._active = super_cfg
        self._skeletons: OrderedDict[tuple[str, str], _Call] = OrderedDict()
        self.record = False
        self.last_logits: Tensor | None = None

    # ---- the active sub-network --------------------------------------------------------------
    @property
    def cfg(self) -> TransformerConfig:
        """The active sub-network's architecture (what the objectives read)."""
        return self._active

    def activate(self, sub: TransformerConfig) -> SuperNetwork:
        """Make ``sub`` the sub-network that ``forward`` runs; returns ``self``."""
        check_fits(self.super_cfg, sub)
        self._active = sub
        return self

    @contextlib.contextmanager
    def recording(self) -> Iterator[SuperNetwork]:
        """Within the block, ``last_logits`` holds the logits of the latest forward pass."""
        self.record, self.last_logits = True, None
        try:
            yield self
        finally:
            self.record = False

    # ---- slicing -----------------------------------------------------------------------------
    def sliced(self, sub: TransformerConfig) -> dict[str, Tensor]:
        """``sub``'s parameters as slices of the shared ones, keyed as in ``build_model(sub)``.

        The slices are views (the query/key/value matrix a concatenation of three), so they
        carry gradients back into the super-network. Tied names get the same tensor object.
        """
        check_fits(self.super_cfg, sub)
        D, d, kv = self.super_cfg.d_model, sub.d_model, sub.kv_dim
        memo: dict[int, Tensor] = {}
        out: dict[str, Tensor] = {}
        for name, p in self.lm.named_parameters(remove_duplicate=False):
            parts = name.split(".")
            if parts[:2] == ["backbone", "blocks"]:
                layer = int(parts[2])
                if layer >= sub.n_layer:
                    continue
                f = sub.d_ff[layer]
            if id(p) in memo:
                out[name] = memo[id(p)]
                continue
            leaf = ".".join(parts[-2:])
            if name.endswith(("tok_emb.weight", "pos_emb.weight")) or name == "lm_head.weight":
                t = p[:, :d]
            elif parts[-2].startswith("norm"):
                t = p[:d]
            elif leaf == "qkv.weight":
                t = torch.cat((p[:d, :d], p[D : D + kv, :d], p[2 * D : 2 * D + kv, :d]))
            elif leaf == "proj.weight":
                t = p[:d, :d]
            elif leaf in ("w1.weight", "w3.weight"):
                t = p[:f, :d]
            elif leaf == "w2.weight":
                t = p[:d, :f]
            else:  # a parameter model.py gained: slicing must learn about it first
                raise KeyError(f"no slicing rule for parameter {name!r}")
            memo[id(p)] = out[name] = t
        return out

    @torch.no_grad()
    def extract(self, sub: TransformerConfig) -> LanguageModel:
        """A plain ``build_model(sub)`` with the sliced weights copied in (no sharing left).

        The result is an ordinary ``LanguageModel``: export, ``nas/train.py`` and
        ``adaptnas.load`` treat it as any other.
        """
        model = build_model(sub)
        model.load_state_dict(self.state_for(sub), strict=True)
        return model

    @torch.no_grad()
    def state_for(self, sub: TransformerConfig) -> dict[str, Tensor]:
        """``extract(sub).state_dict()`` without building the model: detached CPU copies."""
        return {
            k: v.detach().to("cpu", copy=True).contiguous() for k, v in self.sliced(sub).items()
        }

    # ---- running a sub-network ---------------------------------------------------------------
    def _skeleton(self, sub: TransformerConfig) -> _Call:
        """``sub``'s module tree without weights of its own (meta tensors), fixed tables real.

        Building it on the meta device costs no allocation; its position tables (buffers, no
        parameters) come from a one-block real model of the same width and heads.
        """
        device = self.lm.lm_head.weight.device
        key = (_key(sub), str(device))
        if key in self._skeletons:
            self._skeletons.move_to_end(key)
            return self._skeletons[key]
        with torch.device("meta"):
            lm = build_model(sub)
        tables = Transformer(dataclasses.replace(sub, n_layer=1, d_ff=1, vocab_size=1))
        for name, buf in tables.named_buffers():
            lm.backbone._buffers[name] = buf.to(device)
        skeleton = _Call(lm)
        self._skeletons[key] = skeleton
        if len(self._skeletons) > _SKELETONS:
            self._skeletons.popitem(last=False)
        return skeleton

    def _run(self, method: str, *args, **kwargs) -> Tensor:
        sub = self._active
        params = {f"lm.{k}": v for k, v in self.sliced(sub).items()}
        skeleton = self._skeleton(sub)
        skeleton.train(self.training)  # dropout follows the super-network's mode
        return functional_call(skeleton, params, (method, *args), kwargs, tie_weights=True)

    def _keep(self, logits: Tensor) -> Tensor:
        if self.record:
            self.last_logits = logits
        return logits

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(B, T, V)`` of the active sub-network (``LanguageModel.forward``)."""
        out = self._run("forward", input_ids, attention_mask=attention_mask, prefix_len=prefix_len)
        return self._keep(out)

    def hidden(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        prefix_len: Tensor | None = None,
    ) -> Tensor:
        """Hidden states ``(B, T, d)`` of the active sub-network (``LanguageModel.hidden``)."""
        return self._run("hidden", input_ids, attention_mask=attention_mask, prefix_len=prefix_len)

    def logits_from_hidden(self, h: Tensor) -> Tensor:
        """The active sub-network's LM head on ``h`` (``LanguageModel.logits_from_hidden``)."""
        return self._keep(self._run("logits_from_hidden", h))


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(teacher || student) of softened distributions over the rows both predicted.

    Multiplied by ``temperature**2`` so that its gradients keep their scale (Hinton et al.).
    """
    t = float(temperature)
    s = F.log_softmax(student.flatten(0, -2).float() / t, dim=-1)
    p = F.log_softmax(teacher.flatten(0, -2).float() / t, dim=-1)
    return F.kl_div(s, p, reduction="batchmean", log_target=True) * t * t


def sandwich_step(
    net: SuperNetwork,
    block: Tensor,
    special_ids: Mapping[str, int],
    subs: Sequence[TransformerConfig],
    seed: int,
    loss_limit: float,
    step: int = 0,
    distill: bool = False,
    distill_weight: float = 0.5,
    temperature: float = 1.0,
) -> list[float]:
    """Accumulate the gradients of every sub-network in ``subs`` on one batch (no optimizer step).

    The sandwich rule: callers pass the largest sub-network first, then the smallest and some
    random ones. Every sub-network sees the same batch and, with the torch generator reset to
    ``seed`` before each, the same masked positions (encoders) and prefix lengths (prefix-LMs).
    Each loss is divided by ``len(subs)`` (the step's gradient is their mean) and back-propagated
    at once, so only one sub-network's activations are alive at a time.

    Args:
        net: The super-network (in training mode).
        block: Token ids ``(B, T+1)`` on the network's device.
        special_ids: As in ``pretraining_loss``.
        subs: Sub-networks; the first is the teacher when ``distill``.
        seed: Seeds the objective's randomness for this step.
        loss_limit: Divergence bound (``check_loss``).
        step: For the divergence message.
        distill: In-place distillation: every sub-network after the first also matches the
            first one's (detached) distribution over the positions its objective predicts.
        distill_weight: Share of the distillation term in a student's loss.
        temperature: Softening of both distributions.

    Returns:
        Each sub-network's loss (the objective's, before distillation is mixed in).

    Raises:
        DivergedError: A loss is not finite or above ``loss_limit``.
    """
    teacher: Tensor | None = None
    losses = []
    for k, sub in enumerate(subs):
        net.activate(sub)
        torch.manual_seed(seed)
        with net.recording():
            loss = pretraining_loss(net, block, special_ids)
            logits = net.last_logits
        losses.append(check_loss(loss, loss_limit, f"supernet {sub.describe()}", step))
        if distill and k == 0:
            teacher = logits.detach()
        elif distill and teacher is not None:
            kd = distillation_loss(logits, teacher, temperature)
            loss = (1.0 - distill_weight) * loss + distill_weight * kd
        (loss / len(subs)).backward()
    net.activate(net.super_cfg)
    return losses
