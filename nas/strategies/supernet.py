"""``strategy=supernet``: pretrain one super-network per study, adapt every candidate from it.

The study-level half of weight sharing (the model half is ``lightning_modules.supernet``):

* ``supernet_space`` narrows a search space to what one super-network covers: the space's
  ``supernet:`` section (and ``strategy.fixed``) fix the knobs that decide which weights exist;
  one that still varies is a one-line ``SearchSpaceError`` naming it.
* ``super_config`` is the largest architecture of that space: the super-network's shape.
* ``pretrain_supernet`` trains it with the sandwich rule (largest, smallest and
  ``strategy.sandwich_random`` random sub-networks every step, gradients accumulated; in-place
  distillation with ``strategy.distill``), ``strategy.tokens_factor`` times a standalone
  candidate's pretraining tokens, checkpointing weights, optimizer and step every
  ``strategy.checkpoint_every`` steps, so a killed build resumes where it stopped and ends with
  the same weights as an uninterrupted one (every step's data, sub-networks and masks are drawn
  from generators seeded by the step).
* ``ensure_supernet`` builds it once per study: the first worker takes an exclusive ``flock`` on
  ``build.lock`` and trains; the others block on the same lock and load the finished file (the
  kernel releases the lock of a killed builder, and the next worker to get it resumes).
* ``InheritedWeights.prepare`` hands a trial its sub-network: the objective runs the ordinary
  staged trial with ``init_model`` loading the sliced weights and ``pretrain.tokens`` set to
  ``strategy.continue_tokens`` (0, the default, skips pretraining).

Layout, beside the study (``<study_dir>/supernet/<hash>/``, the hash of everything that shapes
the weights: super architecture, space, data, budgets, seed)::

    spec.json                 what was built, how, and the validation losses when done
    build.lock                the builder's lock (empty; held with flock while training)
    progress.safetensors      the latest checkpoint while training (weights, optimizer, step)
    supernet.safetensors      the finished super-network (weights of ``super_cfg``'s model)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lightning_modules.config import ArchitectureError, TransformerConfig, params_human
from lightning_modules.export import load_safetensors, save_safetensors
from lightning_modules.objectives import pretraining_loss
from lightning_modules.optim import adamw_with_schedule
from lightning_modules.supernet import ELASTIC, SHARED, SuperNetwork, sandwich_step
from nas.config.errors import checked
from nas.config.schema import StrategyConfig
from nas.strategies.base import SearchSetup, Strategy
from nas.study.storage import file_lock
from nas.trial.record import write_strategy
from search_spaces import SearchSpace, SearchSpaceError

log = logging.getLogger("adaptnas")

FORMAT = "adaptnas-supernet-v1"
FINAL, PROGRESS, SPEC, LOCK = (
    "supernet.safetensors",
    "progress.safetensors",
    "spec.json",
    "build.lock",
)
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TransformerConfig) if f.init}
# strategy keys that do not shape the weights (left out of the folder's hash)
NOT_WEIGHTS = ("name", "continue_tokens", "screen_trials", "confirm_top_k", "screen")
_DRAWS = 100  # random draws before a space is declared to hold no valid sub-network


# ---- settings ---------------------------------------------------------------------------------
def strategy_settings(strategy: Mapping[str, Any] | StrategyConfig | None) -> StrategyConfig:
    """The typed ``strategy`` of a plain run config's section (a checked one passes through).

    The values are held to ``nas.config.schema.StrategyConfig``'s rules, their one check.

    Raises:
        ConfigError: A bad value, one line naming the key.
    """
    return checked(StrategyConfig, strategy)


# ---- the space one super-network covers -------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _values(space: SearchSpace, name: str) -> list[Any] | None:
    """The values ``name`` can take in ``space``; ``None`` for a numeric range."""
    try:
        p = space.param(name)
    except KeyError:
        return [space.fixed.get(name, _FIELD_DEFAULTS[name])]
    extra = [p.fallback] if p.when else []
    if p.type == "categorical":
        out: list[Any] = []
        for v in [*p.choices, *extra]:
            if not any(_same(v, o) for o in out):
                out.append(v)
        return out
    return [p.low, *extra] if p.low == p.high else None


def _fix(space: SearchSpace, name: str, value: Any) -> SearchSpace:
    """``space`` with ``name`` fixed to ``value`` (removed from the params)."""
    try:
        p = space.param(name)
    except KeyError:
        return dataclasses.replace(space, fixed={**space.fixed, name: value})
    if not (p.can_take(value) or (p.when and _same(value, p.fallback))):
        raise SearchSpaceError(
            f"search space {space.name!r}: supernet fixes {name}={value!r}, which its entry "
            f"{name!r} can never take"
        )
    params = [q for q in space.params if q is not p]
    return dataclasses.replace(space, fixed={**space.fixed, name: value}, params=params)


def supernet_space(
    space: SearchSpace, fixed: Mapping[str, Any] | None = None, strategy: str = "supernet"
) -> SearchSpace:
    """The part of ``space`` that one super-network covers.

    The space's ``supernet:`` section, then ``fixed`` (``strategy.fixed``), say per knob either
    one value (the knob is fixed) or a list (its choices are narrowed to it). Afterwards every
    knob of ``lightning_modules.supernet.SHARED`` must take a single value and ``family`` may mix
    ``decoder`` and ``prefix_lm`` but not ``encoder`` with them.

    Raises:
        SearchSpaceError: (one line, naming the knob and ``strategy=<strategy>``) a shared knob
            still varies, or a rule names a value the space cannot take.
    """
    rules = {**space.supernet, **dict(fixed or {})}
    for name, value in rules.items():
        if name not in _FIELD_DEFAULTS:
            raise SearchSpaceError(f"strategy.fixed: {name!r} is not a TransformerConfig field")
        if isinstance(value, list | tuple):
            space = space.restrict(name, value, why=f"strategy={strategy}")
        else:
            space = _fix(space, name, value)
    where = "fix it in the space's supernet: section or with +strategy.fixed"
    for knob in SHARED:
        values = _values(space, knob)
        if values is None or len(values) > 1:
            shown = "a range" if values is None else ", ".join(map(str, values))
            raise SearchSpaceError(
                f"search space {space.name!r}: strategy={strategy}: {knob} varies ({shown}) but "
                f"cannot share weights; {where}.{knob}=<value>"
            )
    families = _values(space, "family") or []
    if "encoder" in families and len(families) > 1:
        raise SearchSpaceError(
            f"search space {space.name!r}: strategy={strategy}: family varies "
            f"({', '.join(families)}) but encoders learn another objective; {where}.family="
            "encoder or [decoder,prefix_lm]"
        )
    return space


def _largest(space: SearchSpace, name: str) -> Any:
    values = _values(space, name)
    if values is None:
        return space.param(name).high
    flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
    numbers = [v for v in flat if isinstance(v, int) and not isinstance(v, bool)]
    return max(numbers) if numbers else None


def super_config(space: SearchSpace, data: Mapping[str, int]) -> TransformerConfig:
    """The largest architecture of ``space`` (already ``supernet_space``-d): the weights' shape.

    Args:
        space: The narrowed space.
        data: ``vocab_size`` and ``max_seq_len`` (``nas.trial.run.data_fields``).
    """
    n_layer, d_model, d_ff = (_largest(space, k) for k in ("n_layer", "d_model", "d_ff"))
    families = _values(space, "family") or ["decoder"]
    family = "decoder" if "decoder" in families else families[0]
    shared = {k: _values(space, k)[0] for k in SHARED}
    free = {k: space.fixed[k] for k in ("rope_base", "norm_eps", "init_std") if k in space.fixed}
    heads = sorted(
        {h for h in (_values(space, "n_head") or []) if isinstance(h, int)}, reverse=True
    )
    for n_head in [*heads, 1]:
        try:
            return TransformerConfig(
                family=family,
                n_layer=n_layer,
                d_model=d_model,
                n_head=n_head,
                d_ff=[d_ff] * n_layer,
                dropout=0.0,
                **shared,
                **free,
                **data,
            )
        except ArchitectureError:
            continue
    raise SearchSpaceError(
        f"search space {space.name!r}: strategy=supernet: no valid super-network of d_model "
        f"{d_model}"
    )


class _Draw:
    """Enough of an Optuna trial for ``SearchSpace.sample``: uniform draws, or extremes.

    ``extreme='max'`` / ``'min'`` takes the largest / smallest value of every elastic knob
    (``n_kv_head: null`` counts as the largest: it means as many as ``n_head``) and the first
    choice (or low end) of every other one.
    """

    def __init__(self, rng: random.Random | None = None, extreme: str | None = None):
        self.rng, self.extreme = rng, extreme

    def _elastic(self, name: str) -> bool:
        return name.split(".")[0] in ELASTIC

    def suggest_categorical(self, name: str, choices):  # noqa: D102
        choices = list(choices)
        if self.extreme is None:
            return self.rng.choice(choices)
        numbers = [c for c in choices if isinstance(c, int) and not isinstance(c, bool)]
        if not self._elastic(name) or not numbers:
            return choices[0]
        if self.extreme == "max":
            return None if None in choices else max(numbers)
        return min(numbers)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False):  # noqa: D102
        if self.extreme is not None:
            return high if self.extreme == "max" and self._elastic(name) else low
        return self.rng.randrange(low, high + 1, step or 1)

    def suggest_float(self, name: str, low, high, step=None, log: bool = False):  # noqa: D102
        if self.extreme is not None:
            return low
        if step:
            return low + step * self.rng.randint(0, round((high - low) / step))
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


class SubnetSampler:
    """Draws sub-networks of a narrowed space: the sandwich of every super-network step.

    Args:
        space: The narrowed space (``supernet_space``).
        data: ``vocab_size`` and ``max_seq_len``.
    """

    def __init__(self, space: SearchSpace, data: Mapping[str, int]):
        self.space, self.data = space, dict(data)
        self.largest = self._extreme("max")
        self.smallest = self._extreme("min")

    def _build(self, trial: _Draw) -> TransformerConfig | None:
        try:
            return TransformerConfig.from_dict(self.space.sample(trial, **self.data))
        except ArchitectureError:
            return None

    def random(self, rng: random.Random) -> TransformerConfig:
        """A uniformly drawn valid sub-network."""
        for _ in range(_DRAWS):
            if (cfg := self._build(_Draw(rng))) is not None:
                return cfg
        raise SearchSpaceError(
            f"search space {self.space.name!r}: no valid architecture in {_DRAWS} random draws"
        )

    def _extreme(self, which: str) -> TransformerConfig:
        cfg = self._build(_Draw(extreme=which))
        if cfg is not None:
            return cfg
        # Extremes that do not combine (an odd head_dim under RoPE, ...): the largest (smallest)
        # of many valid draws instead.
        rng = random.Random(0)
        draws = [self.random(rng) for _ in range(4 * _DRAWS)]
        pick = max if which == "max" else min
        return pick(draws, key=lambda c: c.num_params())

    def sandwich(self, seed: int, n_random: int) -> list[TransformerConfig]:
        """Largest, smallest, then ``n_random`` random sub-networks drawn with ``seed``."""
        rng = random.Random(seed)
        return [self.largest, self.smallest, *(self.random(rng) for _ in range(n_random))]


# ---- pretraining ------------------------------------------------------------------------------
def _step_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_003 + int(step)) % (2**63)


def _state_tensors(net: SuperNetwork) -> dict[str, torch.Tensor]:
    """The shared weights once each (a tied head is the embedding: left out)."""
    state = dict(net.lm.state_dict())
    if net.super_cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    return state


def save_progress(path: Path, net: SuperNetwork, opt, sched, step: int) -> None:
    """Write weights, optimizer and scheduler state and ``step`` to ``path`` atomically."""
    from lightning_modules.export.safetensors import save_atomic

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in _state_tensors(net).items()}
    opt_state = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in opt_state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    meta = {
        "format": FORMAT,
        "step": str(step),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "scheduler": json.dumps(sched.state_dict(), default=lambda _: None),
    }
    save_atomic(tensors, path, meta)


def load_progress(path: Path, net: SuperNetwork, opt, sched) -> int:
    """Restore what ``save_progress`` wrote into ``net``, ``opt``, ``sched``; returns the step."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    device = net.lm.lm_head.weight.device
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    if net.super_cfg.tie_embeddings:
        model["lm_head.weight"] = model["backbone.tok_emb.weight"]
    net.lm.load_state_dict(model, strict=True)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v.to(device)
    for idx, entry in json.loads(meta["optim_scalars"]).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = json.loads(meta["param_groups"])
    for g in groups:
        g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    sched.load_state_dict(json.loads(meta["scheduler"]))
    return int(meta["step"])


def budget_steps(settings: StrategyConfig, pretrain_cfg: Mapping[str, Any], seq_len: int) -> int:
    """Optimizer steps of the super-network: its token budget over tokens per step."""
    tokens = settings.tokens or int(settings.tokens_factor * int(pretrain_cfg["tokens"]))
    batch = settings.batch_size or int(pretrain_cfg["batch_size"])
    return max(1, tokens // (batch * seq_len))


@torch.no_grad()
def val_loss(
    net: SuperNetwork,
    sub: TransformerConfig,
    suite,
    batch: int = 64,
    loss: Callable[..., torch.Tensor] = pretraining_loss,
) -> float:
    """Held-out pretraining loss of sub-network ``sub`` (fixed masks, as ``PretrainModule``).

    ``loss(model, rows, special_ids, generator=...)``: the family's objective by default.
    """
    was = net.training
    net.eval().activate(sub)
    gen = torch.Generator().manual_seed(1234)
    device = net.lm.lm_head.weight.device
    total, n = 0.0, 0
    for i in range(0, len(suite.val_blocks), batch):
        rows = suite.val_blocks[i : i + batch].to(device)
        total += float(loss(net, rows, suite.special_ids, generator=gen)) * len(rows)
        n += len(rows)
    net.train(was).activate(net.super_cfg)
    return total / max(1, n)


def _device(trainer_cfg: Mapping[str, Any]) -> tuple[torch.device, bool]:
    """The device and bf16 autocast that ``nas.trial.stages.uses_gpu`` and ``precision_for`` pick.

    Repeated here so that a super-network build does not import Lightning (seconds).
    """
    accelerator = str(trainer_cfg["accelerator"]).lower()
    gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    precision = str(trainer_cfg["precision"])
    return torch.device("cuda" if gpu else "cpu"), gpu and precision in ("auto", "bf16-mixed")


def pretrain_supernet(
    net: SuperNetwork,
    sampler: SubnetSampler,
    suite,
    settings: StrategyConfig,
    pretrain_cfg: Mapping[str, Any],
    trainer_cfg: Mapping[str, Any],
    folder: Path,
    seed: int,
    on_checkpoint: Callable[[int], None] | None = None,
) -> int:
    """Train ``net`` with the sandwich rule, resuming from ``folder/progress.safetensors``.

    Args:
        net: The super-network (freshly initialised; a checkpoint overwrites it).
        sampler: Draws the sub-networks of every step.
        suite: The pretraining data (``train_blocks``, ``special_ids``).
        settings: ``strategy``.
        pretrain_cfg: ``pretrain`` (defaults for batch size, learning rate, weight decay, warm-up).
        trainer_cfg: ``trainer`` (device, precision, gradient clipping).
        folder: Where the checkpoint lives.
        seed: Seeds data order, sub-networks and masks of every step.
        on_checkpoint: Called with the step after each checkpoint (tests kill the process there).

    Returns:
        The number of steps trained (all of them, counting those before a resume).
    """
    steps = budget_steps(settings, pretrain_cfg, suite.seq_len)
    batch = settings.batch_size or int(pretrain_cfg["batch_size"])
    device, bf16 = _device(trainer_cfg)
    net.to(device).train()
    optim = adamw_with_schedule(
        net,
        float(settings.lr or pretrain_cfg["lr"]),
        float(pretrain_cfg["weight_decay"]),
        steps,
        float(pretrain_cfg["warmup_frac"]),
    )
    opt, sched = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    progress = folder / PROGRESS
    start = load_progress(progress, net, opt, sched) if progress.is_file() else 0
    if start:
        log.info("supernet: resuming from step %d/%d (%s)", start, steps, progress)
    clip = trainer_cfg["gradient_clip_val"]
    limit = 3.0 * math.log(net.super_cfg.vocab_size)
    blocks = suite.train_blocks
    t0, shown = time.perf_counter(), start
    for step in range(start, steps):
        s = _step_seed(seed, step)
        rows = torch.randint(len(blocks), (batch,), generator=torch.Generator().manual_seed(s))
        subs = sampler.sandwich(s, settings.sandwich_random)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            losses = sandwich_step(
                net,
                blocks[rows].to(device, non_blocking=True),
                suite.special_ids,
                subs,
                seed=s,
                loss_limit=limit,
                step=step,
                distill=settings.distill,
                distill_weight=settings.distill_weight,
                temperature=settings.temperature,
            )
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        done = step + 1
        if done % settings.checkpoint_every == 0 or done == steps:
            save_progress(progress, net, opt, sched, done)
            if on_checkpoint is not None:
                on_checkpoint(done)
        if done == steps or done - shown >= max(1, steps // 10):
            shown = done
            log.info(
                "supernet: step %d/%d, loss largest %.3f smallest %.3f (%.0fs)",
                done,
                steps,
                losses[0],
                losses[1],
                time.perf_counter() - t0,
            )
    net.cpu().eval()
    return steps


# ---- once per study ---------------------------------------------------------------------------
def spec_of(
    space: SearchSpace, super_cfg: TransformerConfig, cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything that shapes the super-network's weights (its folder is named by their hash)."""
    # Trial and screen settings: the same weights serve any value of them.
    settings = {k: v for k, v in dict(cfg["strategy"]).items() if k not in NOT_WEIGHTS}
    return {
        "format": FORMAT,
        "super_cfg": super_cfg.to_dict(),
        "space": space.to_dict(),
        "strategy": settings,
        "pretrain": dict(cfg["pretrain"]),
        "data": dict(cfg["data"]),
        "gradient_clip_val": cfg["trainer"]["gradient_clip_val"],
        "seed": int(cfg["seed"]),
    }


def supernet_dir(study_folder: Path, spec: Mapping[str, Any]) -> Path:
    """``<study>/supernet/<hash of spec>``."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return Path(study_folder) / "supernet" / hashlib.sha256(text.encode()).hexdigest()[:12]


def build_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """The builder's exclusive ``flock`` on ``path`` (``nas.study.storage.file_lock``)."""
    return file_lock(path, waiting="supernet: another worker is building it; waiting")


def ensure_supernet(
    space: SearchSpace,
    suite,
    cfg: Mapping[str, Any],
    study_folder: Path,
    on_checkpoint: Callable[[int], None] | None = None,
    settings: StrategyConfig | None = None,
) -> tuple[SuperNetwork, Path]:
    """The study's super-network: loaded when built, else built (or resumed) by this worker.

    Args:
        space: The narrowed space (``supernet_space``).
        suite: The run's data.
        cfg: The run config (plain dicts: ``strategy``, ``pretrain``, ``trainer``, ``data``,
            ``seed``).
        study_folder: The study's folder.
        on_checkpoint: Passed to ``pretrain_supernet``.
        settings: The checked ``strategy`` (``None``: ``cfg["strategy"]`` held to the schema).

    Returns:
        ``(super-network on the CPU, its folder)``.
    """
    from nas.trial.run import data_fields

    if settings is None:
        settings = strategy_settings(cfg["strategy"])
    data = data_fields(suite)
    super_cfg = super_config(space, data)
    spec = spec_of(space, super_cfg, cfg)
    folder = supernet_dir(study_folder, spec)
    final = folder / FINAL
    net = SuperNetwork(super_cfg)
    if not final.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with build_lock(folder / LOCK):
            if not final.is_file():  # not finished by the worker that held the lock before
                _build(net, space, data, suite, cfg, settings, spec, folder, on_checkpoint)
                return net, folder
    load_safetensors(net.lm, final)
    log.info("supernet: loaded %s (%s params)", final, params_human(net.lm.num_params()))
    return net.eval(), folder


def _build(net, space, data, suite, cfg, settings, spec, folder, on_checkpoint) -> None:
    sampler = SubnetSampler(space, data)
    steps = budget_steps(settings, cfg["pretrain"], suite.seq_len)
    (folder / SPEC).write_text(json.dumps(spec, indent=2, default=str))
    log.info(
        "supernet: pretraining %s (%s params) for %d steps, sandwich of %d sub-networks "
        "(largest %s, smallest %s)%s",
        net.super_cfg.describe(),
        params_human(net.lm.num_params()),
        steps,
        2 + settings.sandwich_random,
        sampler.largest.describe(),
        sampler.smallest.describe(),
        ", in-place distillation" if settings.distill else "",
    )
    t0 = time.perf_counter()
    pretrain_supernet(
        net,
        sampler,
        suite,
        settings,
        cfg["pretrain"],
        cfg["trainer"],
        folder,
        seed=int(cfg["seed"]),
        on_checkpoint=on_checkpoint,
    )
    seconds = time.perf_counter() - t0
    losses = {
        "largest": val_loss(net, sampler.largest, suite),
        "smallest": val_loss(net, sampler.smallest, suite),
    }
    done = {**spec, "steps": steps, "seconds": round(seconds, 1), "val_loss": losses}
    (folder / SPEC).write_text(json.dumps(done, indent=2, default=str))
    save_safetensors(net.lm, folder / FINAL, metadata={"format": FORMAT, "steps": steps})
    (folder / PROGRESS).unlink(missing_ok=True)
    log.info(
        "supernet: built in %.0fs; val loss largest %.3f, smallest %.3f (%s)",
        seconds,
        losses["largest"],
        losses["smallest"],
        folder / FINAL,
    )


# ---- the trial seam ---------------------------------------------------------------------------
@dataclass
class InheritedWeights:
    """What the objective asks per trial under ``strategy=supernet``.

    Attributes:
        net: The trained super-network (CPU).
        folder: Its folder (recorded on every trial).
        continue_tokens: Pretraining tokens of each extracted candidate.
    """

    net: SuperNetwork
    folder: Path
    continue_tokens: int = 0

    def prepare(
        self, trial, arch: TransformerConfig, cfg: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Callable[[Any], None]]:
        """The run config and ``init_model`` of one trial: sliced weights, brief pretraining.

        Returns:
            ``(cfg with pretrain.tokens = continue_tokens, init_model)`` for ``run_trial``.
        """
        state = self.net.state_for(arch)  # also checks that arch fits (ArchitectureError)
        if trial is not None:
            write_strategy(trial, "supernet", str(self.folder))
        run = {**cfg, "pretrain": {**cfg["pretrain"], "tokens": int(self.continue_tokens)}}

        def init_model(model) -> None:
            model.load_state_dict(state, strict=True)

        return run, init_model


# ---- the strategy -----------------------------------------------------------------------------
class Supernet(Strategy):
    """``strategy=supernet``: the study samples what one super-network covers and every candidate
    starts from its sliced weights."""

    name = "supernet"
    study_suffix = "-supernet"  # in the default study name: never mixed with standalone

    def space(self, settings: StrategyConfig, space: SearchSpace) -> SearchSpace:
        """What one super-network covers: the space's ``supernet:`` section and ``fixed``."""
        return supernet_space(space, settings.fixed)

    def open(self, setup: SearchSetup) -> InheritedWeights:
        """The study's super-network, built (or resumed) by the first worker, loaded by others."""
        settings = setup.settings
        net, folder = ensure_supernet(
            setup.space, setup.suite, setup.cfg, setup.study_folder, settings=settings
        )
        return InheritedWeights(net, folder, settings.continue_tokens)
