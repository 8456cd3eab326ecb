"""Is the winner of a study trustworthy? The validity study of ``python nas/validate.py``.

``nas/validate.py`` composes ``conf/validate.yaml`` and calls ``run_validate``; a search calls
``validate_after_search`` at its end with ``validate.auto=true``. For the top ``validate.top_k``
trials of the study (its winner first, ``trials_to_validate``) it re-runs the trial of
``nas.trial.run.run_trial`` with the study's own run config (``<study folder>/config.yaml``) and
measures, per architecture and per task:

* the score over ``validate.seeds`` seeds that the search never used (mean, sd);
* the same adaptation from a backbone that was never pretrained (``pretrain.tokens=0``): the
  **pretraining gain** is the pretrained mean minus the non-pretrained mean;
* the score at ``validate.scale`` times the budget (``scale_budget``): does the search budget
  rank architectures as a larger budget would (Kendall tau, Spearman)?
* hand-designed baselines of about the winner's parameter count (``match_baseline``: GPT-2-like,
  Llama-like and, when every task allows an encoder, BERT-like), with the same seeds and budget,
  on validation and test.

It writes ``validity.json`` (every figure), ``validity.md`` (the verdict, readable) and
``validity.png`` (search-budget vs large-budget score) into the study folder, each atomically.
``docs/validity.md`` explains every figure. Runs are deterministic on a CPU. The statistics are
``nas.validity.statistics``, the baselines ``nas.validity.baselines``, the files
``nas.validity.report``.
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib
import optuna
from omegaconf import DictConfig, OmegaConf

from lightning_modules.config import TransformerConfig
from lightning_modules.optim import DivergedError
from nas.config.errors import ConfigError, checked, describe
from nas.config.schema import ValidateBlock
from nas.study import finalists as fin
from nas.study import references
from nas.trial.hooks import ScoreTest
from nas.trial.record import TrialRecord, has_architecture
from nas.trial.run import TaskError, adaptability, run_trial
from nas.trial.stages import adaptation_budget
from nas.validity.baselines import BASELINE_NAMES, baseline_names, match_baseline
from nas.validity.report import write_validity
from nas.validity.statistics import (
    difference,
    json_number,
    median,
    pooled_sd,
    rank_agreement,
    ratio,
    summarise,
    t_quantile,
)

matplotlib.use("Agg")  # files only, never a window

log = logging.getLogger("adaptnas")

FORMAT = "adaptnas-validity-v1"
VALIDATION_SEED_STRIDE = (
    100  # validation seeds are validate.seed + 100 k: a run uses seed + task index too
)
# Faults of one run: recorded with the reason, the other runs go on.
RUN_FAULTS = (DivergedError, TaskError)


@dataclass
class ValidateResult:
    """What a validation wrote: the figures (``validity.json``'s document) and the files."""

    folder: Path
    doc: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


# ---- budgets and baselines ----------------------------------------------------------------------
def scale_budget(run: Mapping[str, Any], factor: float) -> dict[str, Any]:
    """The run config with ``factor`` times the training budget, the data unchanged.

    Multiplies ``pretrain.tokens``, ``finetune.steps`` and every ``tasks.<t>.steps`` that is set
    (a task without its own steps follows ``finetune.steps``); example counts, batch sizes and
    learning rates stay as they are, so only the amount of training grows.

    Args:
        run: A run config (plain dict: ``pretrain``, ``finetune``, ``tasks``, ...).
        factor: The multiplier (``validate.scale``).

    Returns:
        A new config; ``run`` is not changed.
    """
    out = copy.deepcopy(dict(run))
    out["pretrain"]["tokens"] = int(round(int(out["pretrain"]["tokens"]) * factor))
    out["finetune"]["steps"] = max(1, int(round(int(out["finetune"]["steps"]) * factor)))
    for task in out["tasks"].values():
        if task["steps"] is not None:
            task["steps"] = max(1, int(round(int(task["steps"]) * factor)))
    return out


def drawn(run: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The run config whose tasks adapt from the few-shot subsets of ``seed`` (``data_seed``)."""
    out = copy.deepcopy(dict(run))
    out["finetune"]["data_seed"] = int(seed)
    return out


def without_pretraining(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run config that adapts from the initialised backbone (``pretrain.tokens=0``)."""
    out = copy.deepcopy(dict(run))
    out["pretrain"]["tokens"] = 0
    return out


# ---- running ------------------------------------------------------------------------------------
class _Runner:
    """Runs the staged trial of one architecture under one condition and seed, with progress."""

    def __init__(self, suite, total: int):
        self.suite, self.total, self.done = suite, total, 0

    def __call__(
        self, label: str, arch: TransformerConfig, run: dict, seed: int, test: bool
    ) -> dict[str, Any]:
        self.done += 1
        t0 = time.perf_counter()
        out: dict[str, Any] = {"seed": seed}
        try:
            r = run_trial(arch, self.suite, run, [ScoreTest(test)], seed=seed)
        except RUN_FAULTS as err:  # one seed of one condition; the figures say n
            out.update(adaptability=None, tasks={}, failed=describe(err))
            log.warning("validate [%d/%d] %s seed %d: %s", self.done, self.total, label, seed, err)
            return out
        out["steps"] = dict(r.steps)
        out["adaptability"] = json_number(r.adaptability)
        out["tasks"] = {k: json_number(v) for k, v in r.task_scores.items()}
        if test:
            out["test"] = {k: json_number(v) for k, v in r.test_scores.items()}
            scores = {k: v for k, v in r.test_scores.items() if v is not None}
            # Combined like the validation scores (skill: above each task's test floor).
            method = "mean" if run["objective"]["adaptability"] != "skill" else "skill"
            floors = self.suite.floors("test") if method == "skill" else None
            out["test_adaptability"] = adaptability(scores, {}, method, floors) if scores else None
        out["seconds"] = round(time.perf_counter() - t0, 2)
        log.info(
            "validate [%d/%d] %s seed %d: adaptability %.4f (%.1fs)",
            self.done,
            self.total,
            label,
            seed,
            r.adaptability,
            out["seconds"],
        )
        return out


def _condition(runs: list[dict], tasks: list[str]) -> dict[str, Any]:
    """Per-seed runs -> summaries of adaptability and of every task (and test, when scored)."""
    doc: dict[str, Any] = {
        "seeds": [r["seed"] for r in runs],
        "steps": next((r["steps"] for r in runs if "steps" in r), {}),  # the same for every seed
        "adaptability": summarise([r["adaptability"] for r in runs]),
        "tasks": {t: summarise([r["tasks"].get(t) for r in runs]) for t in tasks},
    }
    if any("test" in r for r in runs):
        doc["test_adaptability"] = summarise([r.get("test_adaptability") for r in runs])
        doc["test"] = {t: summarise([r.get("test", {}).get(t) for r in runs]) for t in tasks}
    if failed := [f"seed {r['seed']}: {r['failed']}" for r in runs if r.get("failed")]:
        doc["failed"] = failed
    return doc


def _gain(pre: dict, scratch: dict, tasks: list[str]) -> dict[str, Any]:
    """Pretrained minus non-pretrained: difference of the means, and sd of the paired seeds."""

    def one(a: dict, b: dict) -> dict[str, Any]:
        pairs = [
            x - y
            for x, y in zip(a["values"], b["values"], strict=True)
            if x is not None and y is not None
        ]
        return {
            "mean": difference(a["mean"], b["mean"]),
            "sd": statistics.stdev(pairs) if len(pairs) >= 2 else None,
        }

    out = {
        "adaptability": one(pre["adaptability"], scratch["adaptability"]),
        "tasks": {t: one(pre["tasks"][t], scratch["tasks"][t]) for t in tasks},
    }
    if "test_adaptability" in pre and "test_adaptability" in scratch:
        out["test_adaptability"] = one(pre["test_adaptability"], scratch["test_adaptability"])
        out["test_tasks"] = {t: one(pre["test"][t], scratch["test"][t]) for t in tasks}
    return out


def validate_settings(values: Mapping[str, Any] | ValidateBlock) -> ValidateBlock:
    """The typed ``validate`` block of plain values (a checked one passes through).

    The values are held to ``nas.config.schema.ValidateBlock``'s rules, their one check.

    Raises:
        ConfigError: A bad setting, one line naming the key.
    """
    return checked(ValidateBlock, values)


def trials_to_validate(study: optuna.Study, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``top_k`` completed trials with an architecture, the study's winner first.

    The order is the study's own (``nas.study.finalists.ranked``: the finalists by their mean over
    the search's seeds, so the first is the winner ``best_architecture.yaml`` names), then the other
    trials by their one search score. A finalist's repeats (``finalist_of``: the same
    architecture at another seed) are not candidates of their own: validation re-runs each
    architecture once, over its own seeds.
    """
    return [s.trial for s in _top(study, top_k)]


def _top(study: optuna.Study, top_k: int) -> list[fin.SeedScores]:
    """``trials_to_validate`` with each trial's scores over the search's seeds."""
    trials = study.get_trials(deepcopy=False)
    done = [s for s in fin.seed_scores(trials).values() if has_architecture(s.trial)]
    if len(done) < 2:
        raise ConfigError(
            f"study '{study.study_name}' has {len(done)} completed trial(s): validation needs 2 "
            "or more (a winner and a runner-up)"
        )
    order = {s.trial.number: i for i, s in enumerate(fin.ranked(study, trials))}
    done.sort(key=lambda s: (order.get(s.trial.number, len(order)), -s.trial.values[0]))
    return done[:top_k]


def validate_study(
    study: optuna.Study,
    folder: Path,
    run: Mapping[str, Any],
    settings: ValidateBlock | Mapping[str, Any],
    cache_dir: Path | None = None,
) -> ValidateResult:
    """Validate the top trials of ``study`` and write the three files into ``folder``.

    Args:
        study: The finished (or running) study.
        folder: Its folder (``validity.*`` go there).
        run: The study's run config (its ``config.yaml``, a plain dict).
        settings: The ``validate`` block, checked (``ValidateBlock``; plain values are held to
            its rules first).
        cache_dir: Tokenizer cache for rebuilding the study's data.

    Raises:
        ConfigError: A bad setting, fewer than 2 completed trials, or validation seeds that the
            search used.
    """
    from lightning_modules.suite import build_suite
    from nas.trial.resources import prepare_process

    v = validate_settings(settings)
    top = _top(study, int(v.top_k))
    seeds = [int(v.seed) + VALIDATION_SEED_STRIDE * k for k in range(int(v.seeds))]
    search_seeds = {int(run["seed"]) + t.number for t in study.trials}
    if clash := sorted(set(seeds) & search_seeds):
        raise ConfigError(
            f"validate.seed={v.seed}: seed {clash[0]} was a search seed (seed + trial number, "
            f"up to {max(search_seeds)}); pick validate.seed above that"
        )
    large_seeds = seeds[: int(v.scale_seeds)]
    big = scale_budget(run, float(v.scale))
    scratch_run = without_pretraining(run)
    tasks_cfg = run["tasks"]
    task_names = list(tasks_cfg)
    usable = baseline_names(v.baselines, tasks_cfg)
    runnable = [n for n, why in usable.items() if not why]

    prepare_process()
    t0 = time.perf_counter()
    suite = build_suite(run["data"], tasks_cfg, cache_dir)
    total = len(top) * (2 * len(seeds) + len(large_seeds)) + len(runnable) * len(seeds)
    runner = _Runner(suite, total)
    log.info(
        "validating %d architectures of study '%s' over seeds %s (%d runs)",
        len(top),
        study.study_name,
        seeds,
        total,
    )

    archs: list[dict[str, Any]] = []
    for rank, search in enumerate(top, start=1):
        t = search.trial
        arch = TransformerConfig.from_dict(TrialRecord.from_trial(t).architecture)
        label = f"#{t.number}"
        # Each validation seed draws its own few-shot subsets (finetune.data_seed), the same for
        # both conditions of that seed; both are scored on test, so the gain is too.
        pre = [runner(f"{label} pretrained", arch, drawn(run, s), s, True) for s in seeds]
        scr = [
            runner(f"{label} not pretrained", arch, drawn(scratch_run, s), s, True) for s in seeds
        ]
        lrg = [
            runner(f"{label} x{v.scale:g} budget", arch, drawn(big, s), s, False)
            for s in large_seeds
        ]
        pre_doc, scr_doc = _condition(pre, task_names), _condition(scr, task_names)
        archs.append(
            {
                "trial": t.number,
                "search_rank": rank,
                "describe": arch.describe(),
                "architecture": arch.to_dict(),
                "n_params": arch.num_params(),
                "search_score": json_number(search.mean),  # over the search's seeds
                "search_seeds": search.n,
                "search_seed": int(run["seed"]) + t.number,
                "pretrained": pre_doc,
                "not_pretrained": scr_doc,
                "gain": _gain(pre_doc, scr_doc, task_names),
                "large": _condition(lrg, task_names),
            }
        )

    winner, runner_up = archs[0], archs[1]
    n = len(seeds)
    sds = [a["pretrained"]["adaptability"]["sd"] for a in archs]
    pooled = pooled_sd(sds)
    task_pooled = {
        t: pooled_sd([a["pretrained"]["tasks"][t]["sd"] for a in archs]) for t in task_names
    }
    means = [a["pretrained"]["adaptability"]["mean"] for a in archs]
    larges = [a["large"]["adaptability"]["mean"] for a in archs]
    pairs = [(x, y) for x, y in zip(means, larges, strict=True) if x is not None and y is not None]
    rank = rank_agreement([p[0] for p in pairs], [p[1] for p in pairs])
    rank["search"] = means
    rank["large"] = larges
    rank["study_scores"] = [a["search_score"] for a in archs]
    rank["study_vs_large"] = rank_agreement(
        [a["search_score"] for a, y in zip(archs, larges, strict=True) if y is not None],
        [y for y in larges if y is not None],
    )
    gains = [a["gain"]["adaptability"]["mean"] for a in archs]
    median_gain = median(gains)
    # On test, where neither condition was selected: both scored on the test splits.
    test_gains = [a["gain"].get("test_adaptability", {}).get("mean") for a in archs]
    test_pooled = pooled_sd([a["pretrained"].get("test_adaptability", {}).get("sd") for a in archs])
    lead = difference(
        winner["pretrained"]["adaptability"]["mean"],
        runner_up["pretrained"]["adaptability"]["mean"],
    )
    # Two means of n seeds each: t with 2 (n - 1) degrees of freedom, not the normal's 2.
    t_two = t_quantile(2 * (n - 1)) if n >= 2 else None
    threshold = None if pooled is None or t_two is None else t_two * pooled * math.sqrt(2.0 / n)
    best_by_validation = max(
        (a for a in archs if a["pretrained"]["adaptability"]["mean"] is not None),
        key=lambda a: a["pretrained"]["adaptability"]["mean"],
        default=winner,
    )

    winner_arch = TransformerConfig.from_dict(winner["architecture"])
    baselines: list[dict[str, Any]] = []
    for name in runnable:
        arch, rel = match_baseline(name, winner_arch, float(v.param_tolerance))
        runs = [runner(BASELINE_NAMES[name], arch, drawn(run, s), s, True) for s in seeds]
        doc = _condition(runs, task_names)
        item: dict[str, Any] = {
            "name": name,
            "title": BASELINE_NAMES[name],
            "describe": arch.describe(),
            "architecture": arch.to_dict(),
            "n_params": arch.num_params(),
            "param_difference": rel,
            "within_tolerance": rel <= float(v.param_tolerance),
            **doc,
        }
        for split, key in (("validation", "adaptability"), ("test", "test_adaptability")):
            w, b = winner["pretrained"].get(key, {}), doc.get(key, {})
            margin = difference(w.get("mean"), b.get("mean"))
            sw, sb = w.get("sd"), b.get("sd")
            noise = (
                None
                if sw is None or sb is None or t_two is None
                else t_two * math.sqrt((sw**2 + sb**2) / n)
            )
            item[f"winner_minus_{split}"] = margin
            item[f"winner_beats_{split}"] = None if margin is None else margin > 0
            item[f"noise_{split}"] = noise
        item["winner_minus_test_tasks"] = {
            t: difference(
                winner["pretrained"].get("test", {}).get(t, {}).get("mean"),
                doc.get("test", {}).get(t, {}).get("mean"),
            )
            for t in task_names
        }
        baselines.append(item)

    doc: dict[str, Any] = {
        "format": FORMAT,
        "study": study.study_name,
        "written": datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 1),
        "settings": {
            "top_k": int(v.top_k),
            "seeds": seeds,
            "scale": float(v.scale),
            "large_seeds": large_seeds,
            "baselines": v.baselines,
            "param_tolerance": float(v.param_tolerance),
            "adaptability": run["objective"]["adaptability"],
            "search_budget": _budget(run),
            "large_budget": _budget(big),
        },
        "tasks": task_names,
        "architectures": archs,
        "rank": rank,
        "noise": {
            "per_architecture_sd": {
                str(a["trial"]): a["pretrained"]["adaptability"]["sd"] for a in archs
            },
            "pooled_sd": pooled,
            "pooled_sd_per_task": task_pooled,
            "seeds": n,
        },
        "gain": {
            "winner": winner["gain"]["adaptability"]["mean"],
            "median_finalist": median_gain,
            "winner_over_pooled_sd": ratio(winner["gain"]["adaptability"]["mean"], pooled),
            "median_over_pooled_sd": ratio(median_gain, pooled),
            "per_task_winner": {t: winner["gain"]["tasks"][t]["mean"] for t in task_names},
            "test_winner": test_gains[0],
            "test_median_finalist": median(test_gains),
            "test_pooled_sd": test_pooled,
            "test_winner_over_pooled_sd": ratio(test_gains[0], test_pooled),
            "test_median_over_pooled_sd": ratio(median(test_gains), test_pooled),
        },
        "winner": {
            "trial": winner["trial"],
            "describe": winner["describe"],
            "runner_up": runner_up["trial"],
            "lead": lead,
            "threshold": threshold,
            "exceeds_noise": None if lead is None or threshold is None else lead > threshold,
            "rule": "lead > t x pooled_sd x sqrt(2 / seeds), t the 97.5% Student-t quantile "
            "with 2 (seeds - 1) degrees of freedom: the 95% half-width of the difference "
            "between two means of `seeds` runs each",
            "t": t_two,
            "best_by_validation": best_by_validation["trial"],
        },
        "baselines": baselines,
        "baselines_skipped": {n: why for n, why in usable.items() if why},
        # The search's own verdict against the reference designs it ran (nas.study.references).
        "search_verdict": study.user_attrs.get(references.VERDICT_ATTR),
    }
    files = write_validity(folder, doc)
    return ValidateResult(folder=folder, doc=doc, files=files)


def _budget(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pretrain_tokens": int(run["pretrain"]["tokens"]),
        "finetune_steps": int(run["finetune"]["steps"]),
        "task_steps": {t: adaptation_budget(run, t).steps for t in run["tasks"]},
    }


# ---- entry points -------------------------------------------------------------------------------
def _run_config(folder: Path) -> dict[str, Any]:
    """The study's run config, saved by the search beside it (``config.yaml``)."""
    path = folder / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"study={folder.name}: no {path} (the search writes it when it starts)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def _set_threads(setting: Any) -> None:
    import torch

    from nas.trial.resources import available_cpus, resolve_threads

    torch.set_num_threads(resolve_threads(setting, 1, available_cpus()))


def run_validate(cfg: DictConfig) -> ValidateResult:
    """Validate study ``cfg.study`` (what ``python nas/validate.py`` runs).

    Raises:
        ConfigError: No study given, no such study, no saved run config, a bad setting.
    """
    from nas.study.storage import open_existing_study

    study, folder = open_existing_study(cfg, "validate")
    run = _run_config(folder)
    settings = validate_settings(OmegaConf.to_container(cfg.validate, resolve=True))
    _set_threads(cfg.get("threads", "auto"))
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    return validate_study(study, folder, run, settings, cache)


def validate_after_search(
    cfg: DictConfig, settings: ValidateBlock, study: optuna.Study, folder: Path
) -> dict[str, Path]:
    """``validate.auto=true``: validate the study a search just finished (worker 0 only).

    ``settings`` is the search's checked ``validate`` block.

    A study with fewer than 2 completed trials is logged and left alone, never a failed search.
    """
    if int(cfg.get("worker", 0) or 0) != 0:
        return {}
    try:
        trials_to_validate(study, 2)
    except ConfigError as err:
        log.warning("validation skipped: %s", err)
        return {}
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    result = validate_study(study, folder, _run_config(folder), settings, cache)
    log.info("validity: %s", result.files["validity_md"])
    return result.files
