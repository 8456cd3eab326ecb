"""Is the winner of a study trustworthy? ``python nas/validate.py study=suite-small``.

Composes ``conf/validate.yaml`` and calls ``run_validate``; a search calls ``validate_after_search``
at its end with ``validate.auto=true``. For the top ``validate.top_k`` trials of the study (its
winner first, ``finalists``) it re-runs the trial of ``nas.trial.run_trial`` with the study's
own run config (``<study folder>/config.yaml``) and measures, per architecture and per task:

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
``docs/validity.md`` explains every figure. Runs are deterministic on a CPU.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import matplotlib
import optuna
from omegaconf import DictConfig, OmegaConf

from lightning_modules.config import ArchitectureError, TransformerConfig, params_human
from lightning_modules.optim import DivergedError
from nas import finalists as fin
from nas import references
from nas.cli import CONF_DIR, entry, run_guarded
from nas.errors import ConfigError, describe
from nas.hooks import ScoreTest
from nas.record import TrialRecord, has_architecture
from nas.references import DESIGNS
from nas.results import write_atomic
from nas.stages import adaptation_budget
from nas.task_families import allowed_families
from nas.trial import TaskError, run_trial

matplotlib.use("Agg")  # files only, never a window

log = logging.getLogger("adaptnas")

FORMAT = "adaptnas-validity-v1"
SEED_STRIDE = 100  # validation seeds are validate.seed + 100 k: a run uses seed + task index too
BOOTSTRAP = 2000  # resamples behind the rank-agreement intervals
#: Hand-designed baselines: the knobs that make each one (the size is matched to the winner);
#: the reference designs of nas.references that a decoder-only grid can size.
BASELINES: dict[str, dict[str, Any]] = {
    n: dict(DESIGNS[n].knobs) for n in ("gpt2", "llama", "bert")
}
BASELINE_NAMES = {n: DESIGNS[n].title for n in BASELINES}
FF_RATIO = {"gelu": 4.0, "swiglu": 8.0 / 3.0}  # each design's own MLP width, tried first
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


def baseline_names(wanted: list[str], tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Which of ``wanted`` baselines can serve every task: name -> ``""`` or why it cannot.

    A BERT-like encoder cannot generate, so a suite with a generation task leaves it out.
    """
    allowed = allowed_families(tasks)
    out: dict[str, str] = {}
    for name in wanted:
        family = BASELINES[name]["family"]
        if family in allowed:
            out[name] = ""
        else:
            kinds = sorted(
                {str(t.get("kind")) for t in tasks.values() if family not in _families_of(t)}
            )
            article = "an" if family[0] in "aeiou" else "a"
            out[name] = f"{article} {family} cannot serve tasks of kind {', '.join(kinds)}"
    return out


def _families_of(task: Mapping[str, Any]) -> tuple[str, ...]:
    from lightning_modules.tasks import TASK_KINDS

    kind = TASK_KINDS.get(str(task.get("kind")))
    return tuple(kind.families) if kind is not None else ()


def _heads(d_model: int) -> int:
    """Heads of 16 dimensions for narrow models, 32 for wider ones (always even: RoPE)."""
    return max(1, d_model // 16) if d_model <= 64 else d_model // 32


def match_baseline(name: str, winner: TransformerConfig, tolerance: float = 0.15):
    """The baseline ``name`` whose parameter count is closest to the winner's.

    Searches a small grid (``d_model`` 16-512 by 16, ``n_layer`` 1-12, ``d_ff`` at the design's
    own ratio to ``d_model`` or at 2, 3 or 4 times it) with ``TransformerConfig.num_params()``.
    Among the shapes within ``tolerance`` it prefers the winner's depth, then the design's own MLP
    ratio, then the closest count; vocabulary and length are the winner's.

    Returns:
        ``(arch, relative_difference)``: the baseline and ``|params / winner's - 1|``.
    """
    knobs = BASELINES[name]
    target = winner.num_params()
    own = FF_RATIO[knobs["mlp"]]
    best, best_key = None, None
    for d_model in range(16, 513, 16):
        if d_model > 64 and d_model % 32:
            continue
        for n_layer in range(1, 13):
            for ratio in dict.fromkeys((own, 2.0, 3.0, 4.0)):
                d_ff = max(16, int(round(ratio * d_model / 16)) * 16)
                try:
                    arch = TransformerConfig(
                        **knobs,
                        vocab_size=winner.vocab_size,
                        max_seq_len=winner.max_seq_len,
                        n_layer=n_layer,
                        d_model=d_model,
                        n_head=_heads(d_model),
                        d_ff=d_ff,
                        dropout=0.0,
                    )
                except ArchitectureError:
                    continue
                rel = abs(arch.num_params() / target - 1.0)
                key = (rel > tolerance, abs(n_layer - winner.n_layer), ratio != own, rel)
                if best_key is None or key < best_key:
                    best, best_key = arch, key
    assert best is not None and best_key is not None
    return best, best_key[-1]


# ---- statistics ---------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    """JSON-safe number: NaN and infinities become ``None``."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def summarise(values: list[float | None]) -> dict[str, Any]:
    """``values`` (one per seed; ``None`` for a failed run), their mean, sd (n-1) and count."""
    ok = [v for v in values if v is not None and not math.isnan(v)]
    return {
        "values": values,
        "mean": statistics.fmean(ok) if ok else None,
        "sd": statistics.stdev(ok) if len(ok) >= 2 else None,
        "n": len(ok),
    }


def pooled_sd(sds: list[float | None]) -> float | None:
    """The root mean square of per-architecture seed sds (each over the same number of seeds)."""
    ok = [s for s in sds if s is not None]
    return math.sqrt(statistics.fmean(s * s for s in ok)) if ok else None


def rank_agreement(
    x: list[float], y: list[float], resamples: int = BOOTSTRAP, level: float = 0.95
) -> dict[str, Any]:
    """Kendall tau and Spearman rho between two scores of the same architectures.

    With p-values and percentile bootstrap intervals (``resamples`` draws of the architectures
    with replacement, seeded; a draw whose ranks are all tied is left out): over 8 architectures
    tau's standard error is near 0.3, and the interval says so.
    """
    from scipy import stats

    if len(x) < 2:
        return {"n": len(x), "kendall_tau": None, "kendall_p": None, "spearman": None}
    tau = stats.kendalltau(x, y)
    rho = stats.spearmanr(x, y)
    taus, rhos = [], []
    rng = random.Random(0)
    for _ in range(resamples if len(x) >= 3 else 0):
        pick = [rng.randrange(len(x)) for _ in x]
        a, b = [x[i] for i in pick], [y[i] for i in pick]
        if len(set(a)) < 2 or len(set(b)) < 2:
            continue  # no ranking to agree on
        taus.append(stats.kendalltau(a, b).statistic)
        rhos.append(stats.spearmanr(a, b).statistic)
    return {
        "n": len(x),
        "kendall_tau": _num(tau.statistic),
        "kendall_p": _num(tau.pvalue),
        "kendall_tau_ci": _percentiles(taus, level),
        "spearman": _num(rho.statistic),
        "spearman_p": _num(rho.pvalue),
        "spearman_ci": _percentiles(rhos, level),
        "bootstrap": len(taus),
    }


def _percentiles(values: list[float], level: float) -> list[float] | None:
    """The central ``level`` interval of ``values`` (numpy's linear percentiles)."""
    import numpy as np

    ok = [v for v in values if v is not None and not math.isnan(v)]
    if not ok:
        return None
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(ok, tail)), float(np.percentile(ok, 100 - tail))]


def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided Student-t quantile (4.303 at df 2): what replaces the normal's 2 at few seeds."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def _median(values: list[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


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
        out["adaptability"] = _num(r.adaptability)
        out["tasks"] = {k: _num(v) for k, v in r.task_scores.items()}
        if test:
            out["test"] = {k: _num(v) for k, v in r.test_scores.items()}
            scores = [v for v in out["test"].values() if v is not None]
            out["test_adaptability"] = statistics.fmean(scores) if scores else None
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
            "mean": _diff(a["mean"], b["mean"]),
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


def _check_settings(v: Mapping[str, Any]) -> None:
    for key in ("top_k", "seeds", "scale_seeds"):
        value = v.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"validate.{key}={value!r} must be a positive integer")
    if v["top_k"] < 2:
        raise ConfigError(
            f"validate.top_k={v['top_k']}: needs 2 or more (a winner and a runner-up)"
        )
    if v["seeds"] < 2:
        raise ConfigError(f"validate.seeds={v['seeds']}: needs 2 or more for a seed sd")
    scale = v.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
        raise ConfigError(f"validate.scale={scale!r} must be a positive number")
    seed = v.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"validate.seed={seed!r} must be a non-negative integer")
    tol = v.get("param_tolerance")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ConfigError(f"validate.param_tolerance={tol!r} must be a fraction in (0, 1)")
    names = v.get("baselines") or []
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"validate.baselines={names!r}: give a list, e.g. [gpt2,llama,bert]")
    for name in names:
        if name not in BASELINES:
            raise ConfigError(f"validate.baselines: '{name}' is not one of {', '.join(BASELINES)}")


def finalists(study: optuna.Study, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``top_k`` completed trials with an architecture, the study's winner first.

    The order is the study's own (``nas.finalists.ranked``: the finalists by their mean over the
    search's seeds, so the first is the winner ``best_architecture.yaml`` names), then the other
    trials by their one search score. A finalist's repeats (``finalist_of``: the same
    architecture at another seed) are not candidates of their own: validation re-runs each
    architecture once, over its own seeds.
    """
    return [s.trial for s in _top(study, top_k)]


def _top(study: optuna.Study, top_k: int) -> list[fin.SeedScores]:
    """``finalists`` with each trial's scores over the search's seeds."""
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
    settings: Mapping[str, Any],
    cache_dir: Path | None = None,
) -> ValidateResult:
    """Validate the top trials of ``study`` and write the three files into ``folder``.

    Args:
        study: The finished (or running) study.
        folder: Its folder (``validity.*`` go there).
        run: The study's run config (its ``config.yaml``, a plain dict).
        settings: The ``validate`` block (``top_k``, ``seeds``, ``seed``, ``scale``,
            ``scale_seeds``, ``baselines``, ``param_tolerance``).
        cache_dir: Tokenizer cache for rebuilding the study's data.

    Raises:
        ConfigError: A bad setting, fewer than 2 completed trials, or validation seeds that the
            search used.
    """
    from lightning_modules.suite import build_suite
    from nas.engine import prepare

    v = dict(settings)
    v["baselines"] = list(v.get("baselines") or [])
    _check_settings(v)
    top = _top(study, int(v["top_k"]))
    seeds = [int(v["seed"]) + SEED_STRIDE * k for k in range(int(v["seeds"]))]
    search_seeds = {int(run["seed"]) + t.number for t in study.trials}
    if clash := sorted(set(seeds) & search_seeds):
        raise ConfigError(
            f"validate.seed={v['seed']}: seed {clash[0]} was a search seed (seed + trial number, "
            f"up to {max(search_seeds)}); pick validate.seed above that"
        )
    large_seeds = seeds[: int(v["scale_seeds"])]
    big = scale_budget(run, float(v["scale"]))
    scratch_run = without_pretraining(run)
    tasks_cfg = run["tasks"]
    task_names = list(tasks_cfg)
    usable = baseline_names(v["baselines"], tasks_cfg)
    runnable = [n for n, why in usable.items() if not why]

    prepare()
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
            runner(f"{label} x{v['scale']:g} budget", arch, drawn(big, s), s, False)
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
                "search_score": _num(search.mean),  # over the search's seeds
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
    median_gain = _median(gains)
    # On test, where neither condition was selected: both scored on the test splits.
    test_gains = [a["gain"].get("test_adaptability", {}).get("mean") for a in archs]
    test_pooled = pooled_sd([a["pretrained"].get("test_adaptability", {}).get("sd") for a in archs])
    lead = _diff(
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
        arch, rel = match_baseline(name, winner_arch, float(v["param_tolerance"]))
        runs = [runner(BASELINE_NAMES[name], arch, drawn(run, s), s, True) for s in seeds]
        doc = _condition(runs, task_names)
        item: dict[str, Any] = {
            "name": name,
            "title": BASELINE_NAMES[name],
            "describe": arch.describe(),
            "architecture": arch.to_dict(),
            "n_params": arch.num_params(),
            "param_difference": rel,
            "within_tolerance": rel <= float(v["param_tolerance"]),
            **doc,
        }
        for split, key in (("validation", "adaptability"), ("test", "test_adaptability")):
            w, b = winner["pretrained"].get(key, {}), doc.get(key, {})
            margin = _diff(w.get("mean"), b.get("mean"))
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
            t: _diff(
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
            "top_k": int(v["top_k"]),
            "seeds": seeds,
            "scale": float(v["scale"]),
            "large_seeds": large_seeds,
            "baselines": v["baselines"],
            "param_tolerance": float(v["param_tolerance"]),
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
            "winner_over_pooled_sd": _ratio(winner["gain"]["adaptability"]["mean"], pooled),
            "median_over_pooled_sd": _ratio(median_gain, pooled),
            "per_task_winner": {t: winner["gain"]["tasks"][t]["mean"] for t in task_names},
            "test_winner": test_gains[0],
            "test_median_finalist": _median(test_gains),
            "test_pooled_sd": test_pooled,
            "test_winner_over_pooled_sd": _ratio(test_gains[0], test_pooled),
            "test_median_over_pooled_sd": _ratio(_median(test_gains), test_pooled),
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
        # The search's own verdict against the reference designs it ran (nas.references).
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


# ---- the files ----------------------------------------------------------------------------------
def write_validity(folder: Path, doc: dict[str, Any]) -> dict[str, Path]:
    """Write ``validity.json``, ``validity.md`` and ``validity.png`` into ``folder``, atomically."""
    files = {
        "validity_json": folder / "validity.json",
        "validity_md": folder / "validity.md",
        "validity_png": folder / "validity.png",
    }
    write_atomic(files["validity_json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    write_atomic(files["validity_md"], validity_markdown(doc))
    plot_scaling(doc, files["validity_png"])
    return files


def _f(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    """``[0.12, 0.85]`` (bootstrap 95%), or nothing without one."""
    return "" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}] (bootstrap 95%)"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _ms(s: Mapping[str, Any]) -> str:
    """``0.512 ± 0.010`` from a summary."""
    return (
        f"{_f(s.get('mean'))} ± {_f(s.get('sd'))}" if s.get("sd") is not None else _f(s.get("mean"))
    )


def validity_markdown(doc: Mapping[str, Any]) -> str:
    """The readable report of ``validity.json``: the verdict first, then the tables."""
    s, w, g, r, noise = doc["settings"], doc["winner"], doc["gain"], doc["rank"], doc["noise"]
    archs = doc["architectures"]
    win = archs[0]
    n = noise["seeds"]
    lines = [
        f"# Validity of study `{doc['study']}`",
        "",
        f"{len(archs)} architectures (the top {len(archs)} of the search), seeds "
        f"{', '.join(map(str, s['seeds']))} (not used by the search), adaptability = "
        f"{s['adaptability']} of the task scores; large budget = x{s['scale']:g} "
        f"(seeds {', '.join(map(str, s['large_seeds']))}). Written {doc['written']}, "
        f"{doc['seconds']:.0f} s. Every figure is in `validity.json`; `docs/validity.md` explains "
        "them.",
        "",
        "## Verdict",
        "",
        f"- **Winner**: trial {w['trial']} ({w['describe']}), adaptability "
        f"{_ms(win['pretrained']['adaptability'])} over {n} seeds (search: "
        f"{_f(win['search_score'])} over {_seeds(win.get('search_seeds', 1))}).",
    ]
    said = doc.get("search_verdict")
    if said:
        lines.append(f"- **The search against its reference designs**: {said['text']}.")
    lead_word = {True: "**exceeds** seed noise", False: "is **within** seed noise", None: "n/a"}
    lines.append(
        f"- **Lead over the runner-up** (trial {w['runner_up']}): {_f(w['lead'], sign=True)} "
        f"against a threshold of {_f(w['threshold'])}: the lead "
        f"{lead_word[w['exceeds_noise']]}. Rule: {w['rule']}."
    )
    if w["best_by_validation"] != w["trial"]:
        lines.append(
            f"- Over the validation seeds trial {w['best_by_validation']} scores higher than the "
            "winner: the search's order of its top trials does not hold."
        )
    lines.append(
        f"- **Seed noise**: pooled seed sd {_f(noise['pooled_sd'])} (root mean square of the "
        "per-architecture sds of adaptability)."
    )
    lines.append(
        f"- **Pretraining gain** (pretrained minus not pretrained, mean over seeds): winner "
        f"{_f(g['winner'], sign=True)} ({_f(g['winner_over_pooled_sd'], 1)} x pooled sd), median "
        f"finalist {_f(g['median_finalist'], sign=True)} ({_f(g['median_over_pooled_sd'], 1)} x "
        "pooled sd) on validation; on test (both conditions scored there) winner "
        f"{_f(g.get('test_winner'), sign=True)} ({_f(g.get('test_winner_over_pooled_sd'), 1)} x "
        f"the test pooled sd {_f(g.get('test_pooled_sd'))}), median finalist "
        f"{_f(g.get('test_median_finalist'), sign=True)} "
        f"({_f(g.get('test_median_over_pooled_sd'), 1)} x)."
    )
    lines.append(
        f"- **Ranking at x{s['scale']:g} budget**: Kendall tau {_f(r['kendall_tau'], 2)} "
        f"{_ci(r.get('kendall_tau_ci'))}, Spearman {_f(r.get('spearman'), 2)} "
        f"{_ci(r.get('spearman_ci'))} over {r['n']} architectures (search-budget mean "
        "over the validation seeds vs large-budget score; see `validity.png`)."
    )
    for b in doc["baselines"]:
        m, noise_t = b["winner_minus_test"], b["noise_test"]
        verdict = "n/a" if m is None else ("beats" if m > 0 else "loses to")
        within = (
            ""
            if m is None or noise_t is None
            else (" (beyond" if abs(m) > noise_t else " (within")
            + f" seed noise: 95% t half-width {_f(noise_t)})"
        )
        behind = [
            f"{t} {_f(d, sign=True)}"
            for t, d in b["winner_minus_test_tasks"].items()
            if d is not None and d < 0
        ]
        lines.append(
            f"- **vs {b['title']}** ({params_human(b['n_params'])} params): the winner {verdict} "
            f"it on mean test score by {_f(None if m is None else abs(m))}{within}; validation "
            f"{_f(b['winner_minus_validation'], sign=True)}."
            + (
                f" Tasks where the baseline is ahead on test: {', '.join(behind)}."
                if behind
                else ""
            )
        )
    for name, why in doc["baselines_skipped"].items():
        lines.append(f"- {BASELINE_NAMES[name]} baseline left out: {why}.")
    lines += [
        "",
        "## Architectures",
        "",
        "| rank | trial | architecture | params | search | pretrained (mean ± sd) | not "
        f"pretrained | gain | x{s['scale']:g} budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in archs:
        lines.append(
            f"| {a['search_rank']} | {a['trial']} | {a['describe']} | "
            f"{params_human(a['n_params'])} | {_f(a['search_score'])} | "
            f"{_ms(a['pretrained']['adaptability'])} | {_ms(a['not_pretrained']['adaptability'])} "
            f"| {_f(a['gain']['adaptability']['mean'], sign=True)} | "
            f"{_ms(a['large']['adaptability'])} |"
        )
    lines += ["", "## Per task", ""]
    lines += [
        "| trial | task | pretrained | not pretrained | gain | large budget | test |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in archs:
        for t in doc["tasks"]:
            test = a["pretrained"].get("test", {}).get(t, {})
            lines.append(
                f"| {a['trial']} | {t} | {_ms(a['pretrained']['tasks'][t])} | "
                f"{_ms(a['not_pretrained']['tasks'][t])} | "
                f"{_f(a['gain']['tasks'][t]['mean'], sign=True)} | "
                f"{_ms(a['large']['tasks'][t])} | {_ms(test)} |"
            )
    if doc["baselines"]:
        lines += [
            "",
            "## Baselines",
            "",
            f"Matched to the winner's {params_human(win['n_params'])} parameters within "
            f"{s['param_tolerance']:.0%} where the grid allows; same seeds and budget as the "
            "finalists.",
            "",
            "| baseline | architecture | params | validation | test | winner - baseline "
            "(validation) | winner - baseline (test) |",
            "|---|---|---|---|---|---|---|",
            f"| winner (trial {w['trial']}) | {win['describe']} | "
            f"{params_human(win['n_params'])} | {_ms(win['pretrained']['adaptability'])} | "
            f"{_ms(win['pretrained'].get('test_adaptability', {}))} | | |",
        ]
        for b in doc["baselines"]:
            lines.append(
                f"| {b['title']} | {b['describe']} | {params_human(b['n_params'])} "
                f"({b['param_difference']:+.0%}) | {_ms(b['adaptability'])} | "
                f"{_ms(b.get('test_adaptability', {}))} | "
                f"{_f(b['winner_minus_validation'], sign=True)} | "
                f"{_f(b['winner_minus_test'], sign=True)} |"
            )
    failed = [
        (f"trial {a['trial']}", c, f)
        for a in archs
        for c in ("pretrained", "not_pretrained", "large")
        for f in a[c].get("failed", [])
    ]
    failed += [(b["title"], "pretrained", f) for b in doc["baselines"] for f in b.get("failed", [])]
    if failed:
        lines += ["", "## Failed runs (left out of the means)", ""]
        lines += [f"- {who}, {c}: {f}" for who, c, f in failed]
    return "\n".join(lines) + "\n"


def plot_scaling(doc: Mapping[str, Any], path: Path) -> None:
    """``validity.png``: search-budget score (mean ± sd over seeds) vs large-budget score."""
    import matplotlib.pyplot as plt

    from nas.plots import _atomic

    s, r = doc["settings"], doc["rank"]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    try:
        for a in doc["architectures"]:
            x, y = a["pretrained"]["adaptability"], a["large"]["adaptability"]
            if x["mean"] is None or y["mean"] is None:
                continue
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=x["sd"] or 0.0,
                yerr=y["sd"] or 0.0,
                fmt="o",
                color="tab:red" if a["search_rank"] == 1 else "tab:blue",
                capsize=3,
            )
            ax.annotate(
                f"#{a['trial']}",
                (x["mean"], y["mean"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set_xlabel(f"adaptability at the search budget (mean ± sd, {len(s['seeds'])} seeds)")
        ax.set_ylabel(f"adaptability at x{s['scale']:g} budget")
        ax.set_title(
            f"{doc['study']}: Kendall tau {_f(r['kendall_tau'], 2)}, "
            f"Spearman {_f(r.get('spearman'), 2)} (n={r['n']})",
            fontsize=10,
        )
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with _atomic(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


# ---- entry points -------------------------------------------------------------------------------
def _run_config(folder: Path) -> dict[str, Any]:
    """The study's run config, saved by the search beside it (``config.yaml``)."""
    path = folder / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"study={folder.name}: no {path} (the search writes it when it starts)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def _set_threads(setting: Any) -> None:
    import torch

    from nas.workers import available_cpus, resolve_threads

    torch.set_num_threads(resolve_threads(setting, 1, available_cpus()))


def run_validate(cfg: DictConfig) -> ValidateResult:
    """Validate study ``cfg.study`` (what ``python nas/validate.py`` runs).

    Raises:
        ConfigError: No study given, no such study, no saved run config, a bad setting.
    """
    from nas.study import open_existing_study

    study, folder = open_existing_study(cfg, "validate")
    run = _run_config(folder)
    settings = OmegaConf.to_container(cfg.validate, resolve=True)
    _check_settings({**settings, "baselines": list(settings.get("baselines") or [])})
    _set_threads(cfg.get("threads", "auto"))
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    return validate_study(study, folder, run, settings, cache)


def validate_after_search(cfg: DictConfig, study: optuna.Study, folder: Path) -> dict[str, Path]:
    """``validate.auto=true``: validate the study a search just finished (worker 0 only).

    A study with fewer than 2 completed trials is logged and left alone, never a failed search.
    """
    if int(cfg.get("worker", 0) or 0) != 0:
        return {}
    try:
        finalists(study, 2)
    except ConfigError as err:
        log.warning("validation skipped: %s", err)
        return {}
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    settings = OmegaConf.to_container(cfg.validate, resolve=True)
    result = validate_study(study, folder, _run_config(folder), settings, cache)
    log.info("validity: %s", result.files["validity_md"])
    return result.files


def summary_lines(doc: Mapping[str, Any]) -> list[str]:
    """The verdict in a few terminal lines."""
    w, g, r, noise = doc["winner"], doc["gain"], doc["rank"], doc["noise"]
    out = [
        f"winner trial {w['trial']}: lead {_f(w['lead'], sign=True)} over trial "
        f"{w['runner_up']} vs threshold {_f(w['threshold'])} "
        f"({'exceeds' if w['exceeds_noise'] else 'within'} seed noise)",
        f"pooled seed sd {_f(noise['pooled_sd'])}; pretraining gain winner "
        f"{_f(g['winner'], sign=True)}, median finalist {_f(g['median_finalist'], sign=True)}",
        f"Kendall tau {_f(r['kendall_tau'], 2)}, Spearman {_f(r.get('spearman'), 2)} "
        f"(x{doc['settings']['scale']:g} budget, {r['n']} architectures)",
    ]
    out += [
        f"vs {b['title']}: winner - baseline on test {_f(b['winner_minus_test'], sign=True)}"
        for b in doc["baselines"]
    ]
    return out


@hydra.main(config_path=str(CONF_DIR), config_name="validate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    result = run_guarded(run_validate, cfg)
    for line in summary_lines(result.doc):
        print(line)
    for path in result.files.values():
        print(path)


def cli() -> None:
    """The ``adaptnas-validate`` console command (``--help``, ``--cfg job``, overrides)."""
    entry(main, "validate")


if __name__ == "__main__":
    cli()
