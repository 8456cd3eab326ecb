"""The task-adapted super-network: the screen ``strategy.screen=adapted`` of ``strategy=two_tier``.

The super-network is adapted **once per task** (InstaTune's rule, issue 31), and every screened
candidate is then scored with no training of its own:

* per task, a copy of the pretrained super-network and **one task head** sized for its widest
  ``d_model`` (built by the task for ``super_cfg``; a sub-network reads the first ``d_model``
  input columns of every head matrix; generation tasks have no head: they decode with the tied
  LM head, already sliced) are fine-tuned with the **sandwich rule** (largest, smallest and
  ``strategy.sandwich_random`` random sub-networks every step, gradients accumulated) on exactly
  what a standalone trial adapts from: the task's few-shot subset (``examples``, ``data_seed``),
  its ``steps``, ``batch_size``, ``lr``, weight decay, warm-up and the trainer's gradient clip;
* a candidate's screen score is, per task, its sub-network **extracted** from the adapted
  super-network (``SuperNetwork.extract``) with the head's slice, scored on the task's validation
  split by the task's own ``predict`` and ``score`` (as ``nas.trial.stages.score_on`` scores a
  standalone trial: eval mode, the same loader and batch size), combined by
  ``objective.adaptability`` and negated (the screen study minimises).

Full fine-tuning only (``finetune.method=full``); ``finetune.lr_grid`` and ``curve`` are not
applied (each task adapts at its ``lr`` from its ``examples``). Training runs on the CPU.

Layout, beside the super-network (``<supernet folder>/adapted/``): per task
``<task>-<hash>.safetensors`` (the adapted super-network's weights ``lm.*`` and head ``head.*``,
the spec and seconds in the metadata), built once under ``flock`` on ``<task>-<hash>.lock``; the
hash covers everything that shapes those weights (the super-network's folder, the task's config
and budget, the sandwich, the seed, the clip). A resume reuses every finished task; a task killed
mid-way is adapted again from the start (a task is a few dozen steps).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from lightning_modules.config import TransformerConfig
from lightning_modules.export.safetensors import load_safetensors, read_metadata, save_safetensors
from lightning_modules.optim import adamw_with_schedule, check_loss
from lightning_modules.supernet import SuperNetwork
from nas.config.errors import ConfigError
from nas.config.schema import StrategyConfig
from nas.strategies.supernet import SubnetSampler, _step_seed, build_lock

log = logging.getLogger("adaptnas")

FORMAT = "adaptnas-adapted-supernet-v2"  # v2: written by save_safetensors
FOLDER = "adapted"


# ---- a sub-network of the adapted super-network, differentiable ------------------------------
def head_slices(head: nn.Module, d: int) -> dict[str, Tensor]:
    """``head``'s parameters for a backbone of width ``d``: every matrix's first ``d`` columns.

    Every task head is linear layers reading the hidden state (``lightning_modules.heads``), so
    a matrix's input columns are the hidden width; biases and output rows stay whole.
    """
    return {n: (p[:, :d] if p.dim() == 2 else p) for n, p in head.named_parameters()}


class SubBackbone(nn.Module):
    """Sub-network ``sub`` of ``net`` as a task's backbone: a ``Transformer`` (hidden states)
    or, with ``lm``, a ``LanguageModel`` (generation tasks). Gradients reach ``net``."""

    def __init__(self, net: SuperNetwork, sub: TransformerConfig, lm: bool):
        super().__init__()
        self.net, self.sub, self.lm = net, sub, lm

    @property
    def cfg(self) -> TransformerConfig:  # noqa: D102
        return self.sub

    def forward(self, input_ids, attention_mask=None, prefix_len=None) -> Tensor:  # noqa: D102
        self.net.activate(self.sub)
        call = self.net if self.lm else self.net.hidden
        return call(input_ids, attention_mask=attention_mask, prefix_len=prefix_len)

    def hidden(self, input_ids, attention_mask=None, prefix_len=None) -> Tensor:  # noqa: D102
        self.net.activate(self.sub)
        return self.net.hidden(input_ids, attention_mask=attention_mask, prefix_len=prefix_len)

    def logits_from_hidden(self, h: Tensor) -> Tensor:  # noqa: D102
        self.net.activate(self.sub)
        return self.net.logits_from_hidden(h)


class SubHead(nn.Module):
    """The shared ``head`` read by a sub-network: ``task.make_head(sub)``'s code (its pooling
    and dropout follow ``sub``) run on :func:`head_slices` of ``head``."""

    def __init__(self, head: nn.Module, skeleton: nn.Module, d: int):
        super().__init__()
        self.head, self.skeleton, self.d = head, skeleton, d

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None):  # noqa: D102
        self.skeleton.train(self.training)
        params = head_slices(self.head, self.d)
        return functional_call(self.skeleton, params, (hidden, attention_mask))


def sub_modules(net: SuperNetwork, head: nn.Module, sub: TransformerConfig, task):
    """``(backbone, head)`` of sub-network ``sub`` for ``task``, sharing ``net``'s weights."""
    backbone = SubBackbone(net, sub, task.needs_lm_head)
    if not any(True for _ in head.parameters()):  # generation: the LM head decodes
        return backbone, head
    return backbone, SubHead(head, task.make_head(sub), sub.d_model)


@torch.no_grad()
def extract(net: SuperNetwork, head: nn.Module, sub: TransformerConfig, task):
    """``(backbone, head)`` of ``sub`` as plain standalone modules with the adapted weights:
    ``net.extract(sub)`` (its backbone, or the whole model for generation) and
    ``task.make_head(sub)`` loaded with the head's slice."""
    lm = net.extract(sub)
    own = task.make_head(sub)
    own.load_state_dict({k: v.detach().clone() for k, v in head_slices(head, sub.d_model).items()})
    return (lm if task.needs_lm_head else lm.backbone), own


# ---- adapting once per task -------------------------------------------------------------------
def _budget(cfg: Mapping[str, Any], name: str):
    from nas.trial.stages import adaptation_budget

    return adaptation_budget(cfg, name)


def _train_loader(task, budget, seed: int):
    from nas.trial.stages import train_loader  # the batches a standalone trial adapts from

    return train_loader(task, budget, seed)


def adapt_supernet(
    net: SuperNetwork,
    head: nn.Module,
    sampler: SubnetSampler,
    task,
    cfg: Mapping[str, Any],
    settings: StrategyConfig,
    seed: int,
) -> int:
    """Fine-tune ``net`` and ``head`` in place on ``task`` with the sandwich rule.

    The task's budget (``adaptation_budget``): its few-shot subset, steps, batch size, rate,
    weight decay and warm-up; every step's sub-networks and the torch generator (dropout,
    masks) are seeded by ``seed`` and the step, the data order by ``seed``.

    Returns:
        The optimizer steps taken.
    """
    budget = _budget(cfg, task.name)
    holder = nn.ModuleDict({"net": net, "head": head}).train()
    optim = adamw_with_schedule(
        holder, budget.lr, budget.weight_decay, budget.steps, budget.warmup_frac
    )
    opt, sched = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    loader = _train_loader(task, budget, seed)
    clip = cfg["trainer"]["gradient_clip_val"]
    batches = iter(loader)
    for step in range(budget.steps):
        try:
            batch = next(batches)
        except StopIteration:  # the few-shot subset again, as a fit over several epochs
            batches = iter(loader)
            batch = next(batches)
        s = _step_seed(seed, step)
        subs = sampler.sandwich(s, settings.sandwich_random)
        for sub in subs:
            torch.manual_seed(s)
            backbone, sub_head = sub_modules(net, head, sub, task)
            loss = task.loss(backbone, sub_head, batch)
            check_loss(loss, 50.0, f"{task.name} adapted supernet {sub.describe()}", step)
            (loss / len(subs)).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(holder.parameters(), float(clip))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    net.activate(net.super_cfg).eval()
    head.eval()
    return budget.steps


def adapted_spec(folder: Path, name: str, cfg: Mapping[str, Any], settings) -> dict[str, Any]:
    """Everything that shapes task ``name``'s adapted weights (its file is named by the hash)."""
    if str(cfg["finetune"].get("method", "full")) != "full":
        raise ConfigError(
            f"strategy.screen=adapted adapts the super-network by full fine-tuning; "
            f"finetune.method={cfg['finetune']['method']!r} is not supported"
        )
    return {
        "format": FORMAT,
        "supernet": Path(folder).name,
        "task": name,
        "task_cfg": json.loads(json.dumps(dict(cfg["tasks"][name]), default=str)),
        "budget": dataclasses.asdict(_budget(cfg, name)),
        "sandwich_random": settings.sandwich_random,
        "gradient_clip_val": cfg["trainer"]["gradient_clip_val"],
        "seed": int(cfg["seed"]),
    }


def adapted_path(folder: Path, spec: Mapping[str, Any]) -> Path:
    """``<supernet folder>/adapted/<task>-<hash of spec>.safetensors``."""
    text = json.dumps(spec, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Path(folder) / FOLDER / f"{spec['task']}-{digest}.safetensors"


def _holder(net: SuperNetwork, head: nn.Module) -> nn.Module:
    """What a task's file holds: the adapted weights (``lm.*``) and the head (``head.*``)."""
    return nn.ModuleDict({"lm": net.lm, "head": head})


@dataclass
class AdaptedSupernet:
    """The super-network adapted to every task of the suite.

    Attributes:
        nets: Task name -> its adapted super-network (CPU, eval mode).
        heads: Task name -> its shared head (``nn.Identity`` for generation).
        cfg: The run config (``finetune``, ``objective``, ``tasks``).
        seconds: Task name -> the process CPU seconds its adaptation took when built.
    """

    nets: dict[str, SuperNetwork]
    heads: dict[str, nn.Module]
    cfg: Mapping[str, Any]
    seconds: dict[str, float]


def ensure_adapted(
    net: SuperNetwork,
    space,
    suite,
    cfg: Mapping[str, Any],
    folder: Path,
    settings: StrategyConfig,
) -> AdaptedSupernet:
    """Each task's adapted super-network: loaded when built, else built by this worker.

    Args:
        net: The pretrained super-network (left unchanged: each task adapts a copy).
        space: The narrowed space (its sub-networks make the sandwich).
        suite: The run's data (``tasks``).
        cfg: The run config.
        folder: The super-network's folder.
        settings: The checked ``strategy``.
    """
    from nas.trial.run import data_fields

    sampler = SubnetSampler(space, data_fields(suite))
    nets, heads, seconds = {}, {}, {}
    for name, task in suite.tasks.items():
        spec = adapted_spec(folder, name, cfg, settings)
        path = adapted_path(folder, spec)
        torch.manual_seed(int(cfg["seed"]))  # the head's initialisation
        head = task.make_head(net.super_cfg)
        mine = SuperNetwork(net.super_cfg)  # a copy of the weights (nothing else of net's)
        mine.lm.load_state_dict(net.lm.state_dict())
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with build_lock(path.with_suffix(".lock")):
                if not path.is_file():
                    t0 = time.process_time()
                    steps = adapt_supernet(
                        mine, head, sampler, task, cfg, settings, int(cfg["seed"])
                    )
                    cpu = round(time.process_time() - t0, 1)
                    meta = {"format": FORMAT, "spec": json.dumps(spec), "steps": steps}
                    save_safetensors(_holder(mine, head), path, {**meta, "cpu_seconds": cpu})
                    log.info("adapted supernet: %s in %d steps (%.0f CPU s)", name, steps, cpu)
        load_safetensors(_holder(mine, head), path)
        meta = read_metadata(path)
        nets[name], heads[name] = mine.eval(), head.eval()
        seconds[name] = float(meta.get("cpu_seconds", "nan"))
    return AdaptedSupernet(nets, heads, cfg, seconds)


# ---- the screen score -------------------------------------------------------------------------
@torch.no_grad()
def task_scores(adapted: AdaptedSupernet, arch: TransformerConfig, suite) -> dict[str, float]:
    """Per task, ``arch``'s validation score from the adapted super-network (no training)."""
    out = {}
    batch = int(adapted.cfg["finetune"]["eval_batch_size"])
    for name, net in adapted.nets.items():
        task = suite.tasks[name]
        backbone, head = extract(net, adapted.heads[name], arch, task)
        backbone.eval(), head.eval()
        preds: list = []
        for b in task.loader("validation", batch):
            preds.extend(task.predict(backbone, head, b))
        out[name] = float(task.score(preds, "validation")["score"])
    return out


def adapted_score(adapted: AdaptedSupernet, arch: TransformerConfig, suite) -> float:
    """Minus ``arch``'s adaptability on the adapted super-network (lower is better)."""
    from nas.trial.run import adaptability

    scores = task_scores(adapted, arch, suite)
    method = str(adapted.cfg["objective"]["adaptability"])
    if method in ("auc", "curve"):
        method = "mean"  # one score per task: no curve to take the area or budgets of
    floors = suite.floors() if method == "skill" else None
    return -adaptability(scores, {k: [v] for k, v in scores.items()}, method, floors)
