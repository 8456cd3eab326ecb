"""``strategy=two_tier``: screen hundreds of candidates on the super-network, confirm the best.

Weight sharing pays only when a candidate costs far less than a trial. Here no screened candidate
is adapted to any task. Its **screen score** (lower is better), ``strategy.screen``: ``adapted``
(the default) is minus its adaptability on the super-network adapted once per task
(``nas.strategies.adapted``: its sub-network extracted from each task's adapted weights and
scored on validation); ``lm_loss`` and ``suffix_loss`` are the held-out language-model loss of
its sub-network sliced from the study's super-network (``nas.strategies.supernet.val_loss``: the
suite's ``val_blocks``, never trained on, with fixed masks). The search has two tiers
(``docs/supernet.md``, "Two-tier search"):

1. **screen**: the super-network is built or loaded (``ensure_supernet``: one builder under a
   ``flock``, resumable), then under ``adapted`` each task's adapted copy (``ensure_adapted``,
   the same pattern, one file per task); the configured sampler (TPE by default, seeded like
   the main study's) drives the screen study ``<study_name>-screen`` (same storage, so journal
   and PostgreSQL workers share it) over the space the super-network covers, ask and tell,
   until it has ``strategy.screen_trials`` COMPLETE trials; a resume continues from the count.
2. **hand-off**: the top ``k`` distinct architectures by screen score are written to the main
   study (``nas.study.screen.STUDY_ATTR``: the picks, first), then enqueued once each, after the
   reference designs, with ``adaptnas:screen_trial``; under a ``flock`` so that two workers
   never enqueue one pick twice, and a resume enqueues only the picks not yet in the study.
3. **confirmation**: the main study's trials are plain standalone trials (own pretraining,
   adaptation per task), then the finalists and the verdict, all unchanged.

``n_trials`` still counts the main study's trials: ``strategy.confirm_top_k`` (null, the
default) confirms the top ``n_trials - references``, so the sampler samples nothing of its own;
an explicit ``k`` with ``references + k < n_trials`` leaves the rest to the sampler (over the
whole space, standalone), and ``n_trials`` below ``references + k`` is raised to it.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from lightning_modules.config import ArchitectureError, TransformerConfig
from lightning_modules.objectives import IGNORE
from nas.config.errors import ConfigError
from nas.config.schema import StrategyConfig
from nas.strategies.adapted import adapted_score, ensure_adapted
from nas.strategies.base import SearchSetup, Strategy
from nas.strategies.supernet import SPEC, build_lock, ensure_supernet, supernet_space, val_loss
from nas.study import references
from nas.study import screen as scr
from nas.study.storage import build_sampler
from nas.trial.record import FAIL_REASON, State
from search_spaces import SearchSpace, SearchSpaceError

log = logging.getLogger("adaptnas")

HANDOFF_LOCK = "handoff.lock"
MAX_INVALID = 100  # consecutive screen trials without a valid architecture before giving up


SCREENS = ("lm_loss", "suffix_loss", "adapted")  # = StrategyConfig.screen's choices


def suffix_loss(model, block: torch.Tensor, special_ids, generator=None) -> torch.Tensor:
    """LM loss on the tokens after a random prefix: the same targets whatever the family.

    The targets and prefix lengths are ``prefix_lm_loss``'s (one draw per row from
    ``generator``); a prefix-LM attends to its prefix both ways (this is its own objective
    exactly), a decoder causally. So decoders are not charged for the first tokens of a block,
    which they predict with little context and prefix-LMs are never asked to.
    """
    x, y = block[:, :-1], block[:, 1:].clone()
    b, t = x.shape
    prefix_len = torch.randint(1, t, (b,), generator=generator).to(x.device)
    pos = torch.arange(t, device=x.device)
    y[pos[None, :] < (prefix_len[:, None] - 1)] = IGNORE
    both_ways = prefix_len if model.cfg.family == "prefix_lm" else None
    logits = model(x, prefix_len=both_ways)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)


def screen_score(
    net, arch: TransformerConfig, suite, screen: str = "lm_loss", adapted=None
) -> float:
    """A candidate's screen score, lower is better.

    The sub-network ``arch`` of ``net`` runs in eval mode on ``suite.val_blocks`` (held out of
    the super-network's training blocks) with fixed masks and prefix lengths: the same
    architecture always gets the same score. ``lm_loss``: its family's pretraining objective
    (``pretraining_loss``: causal LM for decoders, prefix LM for prefix-LMs); ``suffix_loss``:
    :func:`suffix_loss`, the same target tokens for both families; ``adapted``: minus its
    adaptability on ``adapted``, the super-network adapted once per task
    (``nas.strategies.adapted``; ``net`` is not read).
    """
    if screen not in SCREENS:
        raise ConfigError(f"strategy.screen={screen!r} is not one of {', '.join(SCREENS)}")
    if screen == "adapted":
        if adapted is None:
            raise ConfigError("strategy.screen=adapted needs the task-adapted super-network")
        return adapted_score(adapted, arch, suite)
    if screen == "suffix_loss":
        return val_loss(net, arch, suite, loss=suffix_loss)
    return val_loss(net, arch, suite)


def params_in(space: SearchSpace, arch: Mapping[str, Any], data: Mapping[str, int]) -> dict:
    """The Optuna parameters with which ``space`` samples ``arch`` (a screened architecture).

    Raises:
        SearchSpaceError: ``space`` cannot express ``arch`` exactly.
    """
    replay = references._Pick(arch)  # answers each suggest_* from the architecture
    cannot = SearchSpaceError(f"search space {space.name!r} cannot take {dict(arch)}")
    try:
        again = space.sample(replay, **data)
    except (KeyError, IndexError, TypeError) as err:
        raise cannot from err
    fits = all(space.param(n.partition(".")[0]).can_take(v) for n, v in replay.params.items())
    if not fits or _config(again) != _config(arch):
        raise cannot
    return replay.params


def _config(arch: Mapping[str, Any]) -> dict[str, Any]:
    return TransformerConfig.from_dict(dict(arch)).to_dict()


def open_screen(study: optuna.Study, cfg: Mapping[str, Any]) -> optuna.Study:
    """The screen study of ``study`` (created or loaded; same storage; minimised).

    Its sampler is the configured one (``sampler``), seeded as ``nas.study.storage.build_sampler``
    seeds a study's: ``seed + worker``, shifted on a resume by the trials it already has.
    """
    name = scr.screen_name(study.study_name)
    screen = optuna.create_study(
        study_name=name, storage=study._storage, direction="minimize", load_if_exists=True
    )
    existing = len(screen.get_trials(deepcopy=False))
    screen.sampler = build_sampler(OmegaConf.create(dict(cfg)), existing)
    return screen


def run_screen(
    screen: optuna.Study,
    space: SearchSpace,
    net,
    suite,
    target: int,
    settings: StrategyConfig,
    attrs: Mapping[str, Any] | None = None,
    adapted=None,
) -> int:
    """Ask and tell screen trials until ``screen`` has ``target`` COMPLETE ones.

    Every worker stops once the shared count is reached (a worker whose trial was in flight
    then adds it: at most one trial over per extra worker). An architecture the config rejects
    is PRUNED, a loss that is not finite FAILED (neither counts).

    Args:
        screen: The screen study.
        space: The space the super-network covers.
        net: The super-network.
        suite: The run's data.
        target: ``strategy.screen_trials``.
        settings: ``strategy`` (its ``screen``).
        attrs: User attributes of every trial (the worker, host and pid: a killed worker's
            RUNNING trial is failed by ``nas.study.storage.fail_orphans`` on the next start).
        adapted: The task-adapted super-network (``strategy.screen=adapted`` only).

    Returns:
        The screen trials this worker completed.
    """
    from nas.trial.run import data_fields

    data = data_fields(suite)
    ran, invalid, t0 = 0, 0, time.perf_counter()
    shown = len(scr.complete(screen))
    while (done := len(scr.complete(screen))) < target:
        if done - shown >= max(1, target // 10):
            shown = done
            log.info("screen: %d/%d candidates (%.2fs each here)", done, target, _each(t0, ran))
        with warnings.catch_warnings():  # heartbeats serve the main study's optimize loop
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            trial = screen.ask()
        for key, value in (attrs or {}).items():
            trial.set_user_attr(key, value)
        try:
            arch = TransformerConfig.from_dict(space.sample(trial, **data))
        except ArchitectureError as err:
            invalid += 1
            if invalid >= MAX_INVALID:
                raise SearchSpaceError(
                    f"search space {space.name!r}: {invalid} screen trials in a row drew no valid "
                    f"architecture ({err})"
                ) from None
            trial.set_user_attr(FAIL_REASON, f"invalid architecture: {err}")
            screen.tell(trial, state=State.PRUNED)
            continue
        invalid = 0
        trial.set_user_attr(scr.ARCH, arch.describe())
        value = screen_score(net, arch, suite, settings.screen, adapted)
        if not math.isfinite(value):
            trial.set_user_attr(FAIL_REASON, f"screen score {value}")
            screen.tell(trial, state=State.FAIL)
            continue
        screen.tell(trial, value)
        ran += 1
    log.info(
        "screen: %d/%d candidates screened (%d here, %.2fs each)",
        len(scr.complete(screen)),
        target,
        ran,
        _each(t0, ran),
    )
    return ran


def _each(t0: float, n: int) -> float:
    return (time.perf_counter() - t0) / max(1, n)


def hand_off(
    study: optuna.Study,
    screen: optuna.Study,
    narrow: SearchSpace,
    full: SearchSpace,
    data: Mapping[str, int],
    k: int,
    lock: Path,
    doc: Mapping[str, Any],
) -> list[int]:
    """Enqueue the top ``k`` distinct screened architectures into ``study``, once each.

    The picks are chosen the first time (and kept in the study's ``STUDY_ATTR`` with ``doc``);
    every call enqueues the picks no trial of ``study`` carries yet, under an exclusive
    ``flock`` on ``lock``: a resume or a second worker never enqueues one twice.

    Args:
        study: The main study (its references are already enqueued).
        screen: The screen study (complete).
        narrow: The space the screen sampled.
        full: The space the main study samples (a pick's parameters are expressed in it).
        data: ``vocab_size`` and ``max_seq_len``.
        k: How many to confirm.
        lock: The hand-off's lock file.
        doc: What the study attribute records besides the picks.

    Returns:
        The screen trial numbers of the picks enqueued by this call.
    """
    with build_lock(lock):
        kept = study.user_attrs.get(scr.STUDY_ATTR) or {}
        trials = {t.number: t for t in screen.get_trials(deepcopy=False)}
        if "picks" in kept:
            picks = [trials[int(n)] for n in kept["picks"]]
        else:
            picks = scr.top_distinct(
                trials.values(), k, lambda t: narrow.params_to_arch(t.params, **data)
            )
            kept = {**doc, "picks": [t.number for t in picks]}
            study.set_user_attr(scr.STUDY_ATTR, kept)
            if len(picks) < k:
                log.warning(
                    "screen: only %d distinct architectures to confirm (confirm_top_k %d)",
                    len(picks),
                    k,
                )
        there = scr.confirmed(study)
        queued = []
        for t in picks:
            if t.number in there:
                continue
            params = params_in(full, narrow.params_to_arch(t.params, **data), data)
            attrs = {scr.SCREEN_TRIAL: t.number, scr.SCREEN_SCORE: t.value}
            study.enqueue_trial(params, user_attrs=attrs)
            queued.append(t.number)
            log.info(
                "confirmation queued: screen trial %d (%s %.4f) %s",
                t.number,
                kept.get("screen", "lm_loss"),
                t.value,
                t.user_attrs.get(scr.ARCH, ""),
            )
    return queued


def confirm_k(settings: StrategyConfig, n_trials: int | None, n_refs: int) -> int:
    """How many screened architectures the confirmation tier runs.

    Raises:
        ConfigError: ``confirm_top_k`` is null and so is ``n_trials`` (a search to a timeout).
    """
    if settings.confirm_top_k is not None:
        return settings.confirm_top_k
    if n_trials is None:
        raise ConfigError(
            "strategy.confirm_top_k=null takes n_trials - references, but n_trials=null; "
            "give strategy.confirm_top_k"
        )
    return max(1, int(n_trials) - n_refs)


# ---- the strategy -----------------------------------------------------------------------------
class TwoTier(Strategy):
    """``strategy=two_tier``: a screen on the super-network, then full trials of the best."""

    name = "two_tier"
    study_suffix = "-two-tier"  # never mixed with a standalone or supernet study

    def space(self, settings: StrategyConfig, space: SearchSpace) -> SearchSpace:
        """The whole space: the confirmation tier's (checked to hold one super-network)."""
        supernet_space(space, settings.fixed, self.name)  # a knob that cannot share weights
        return space

    def before_trials(
        self,
        setup: SearchSetup,
        study: optuna.Study,
        attrs: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Screen (or resume the screen) and hand its top ``k`` to ``study``.

        Returns:
            The main study's least number of trials: references + ``k``.
        """
        settings, cfg, suite = setup.settings, setup.cfg, setup.suite
        n_refs = len((study.user_attrs.get(references.STUDY_ATTR) or {}).get("enqueued", {}))
        k = confirm_k(settings, cfg.get("n_trials"), n_refs)
        kept = study.user_attrs.get(scr.STUDY_ATTR) or {}
        there = scr.confirmed(study)
        if "picks" in kept and all(int(n) in there for n in kept["picks"]):
            log.info("screen: done, %d confirmation trial(s) queued before", len(there))
            return self.least_trials(study)
        narrow = supernet_space(setup.space, settings.fixed, self.name)
        net, folder = ensure_supernet(narrow, suite, cfg, setup.study_folder, settings=settings)
        adapted = None
        if settings.screen == "adapted":
            adapted = ensure_adapted(net, narrow, suite, cfg, folder, settings)
        screen = open_screen(study, cfg)
        run_screen(screen, narrow, net, suite, settings.screen_trials, settings, attrs, adapted)
        spec = _read_json(folder / SPEC)
        doc = {
            "screen_study": screen.study_name,
            "screen": settings.screen,
            "screen_trials": settings.screen_trials,
            "confirm_top_k": k,
            "references": n_refs,
            "supernet": str(folder),
            "build_seconds": spec.get("seconds"),
        }
        hand_off(study, screen, narrow, setup.space, setup.data, k, folder / HANDOFF_LOCK, doc)
        return self.least_trials(study)

    def least_trials(self, study: optuna.Study) -> int | None:
        """References + picks, once the picks are made (``None`` before)."""
        kept = study.user_attrs.get(scr.STUDY_ATTR) or {}
        if "picks" not in kept:
            return None
        return int(kept.get("references", 0)) + len(kept["picks"])


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
