"""The two-tier search's cost and its screen's validity: screened candidates per CPU-hour and rank.

The default search config (Hydra compose of ``conf/search.yaml``: the ``small`` space, the default
suite of tasks, the default budgets and strategy settings), as ``benchmarks/supernet_rank.py``
composes it, with its cache (``--cache-dir``: the same super-network and standalone runs serve
both benchmarks):

1. the super-network is built or loaded (its build CPU seconds booked across processes);
2. **the screen's cost**: ``strategy=two_tier``'s screen loop itself (``run_screen``: the configured
   sampler, TPE, asks; each candidate's held-out LM loss on its sliced sub-network; tell) runs
   ``--screen-trials`` candidates in an in-memory study: CPU seconds per screened candidate,
   the sampler included;
3. **the screen's validity**: ``--archs`` distinct architectures drawn uniformly from the space the
   super-network covers (``SubnetSampler.random``, ``--draw-seed``; the first 8 are
   ``supernet_rank.py``'s) get their screen score and their standalone adaptability (the plain
   staged trial: own pretraining, adaptation per task, model seed ``--seed``); Kendall tau and
   Spearman between minus the screen score and the adaptability, bootstrap 95% intervals
   (``nas.validity.statistics.rank_agreement``), overall and per family;
4. **the cost accounting**: screened candidates per CPU-hour (the build amortised over ``K``
   screened) against standalone candidates per CPU-hour, at ``K`` = 200 and the default
   ``strategy.screen_trials``; the search length after which the screen has evaluated more
   candidates than a standalone search of the same CPU time; and what a default two-tier search
   costs on top of the default standalone one.

Times are this process's CPU seconds (one torch thread with ``--threads 1``).

    python benchmarks/two_tier.py --threads 1            # default budgets, 24 architectures
    python benchmarks/two_tier.py --quick                # tiny space and budgets: a smoke test
"""

from __future__ import annotations

import copy
import math
import random
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import supernet_rank as sr  # noqa: E402
from benchmarks.common import (  # noqa: E402
    base_parser,
    draw_args,
    machine,
    print_table,
    quiet_logs,
    run_and_write,
    set_threads,
    warn_if_loaded,
)
from benchmarks.overhead import compose  # noqa: E402

KS = (200,)  # screened candidates at which the ratio is reported (and the default screen_trials)
TARGET_RATIO = 20.0  # issue 31: >= 20x the candidates per CPU-hour at >= 200 screened
TARGET_TAU = 0.6  # issue 31: Kendall tau >= 0.6 over >= 20 architectures


# ---- pure parts -------------------------------------------------------------------------------
def per_cpu_hour(k: int, build_s: float, screen_s: float) -> float:
    """Screened candidates per CPU-hour when ``k`` are screened after a build of ``build_s``."""
    return 3600.0 * k / (build_s + k * screen_s)


def screen_ratio(k: int, build_s: float, screen_s: float, standalone_s: float) -> float:
    """Screened candidates per standalone candidate in the same CPU time (``k`` screened)."""
    return per_cpu_hour(k, build_s, screen_s) / (3600.0 / standalone_s)


def break_even(build_s: float, screen_s: float, standalone_s: float, target: float = 1.0):
    """Screened candidates after which the ratio reaches ``target`` (``None``: never).

    Solves ``k * standalone_s = target * (build_s + k * screen_s)`` for ``k``.
    """
    margin = standalone_s - target * screen_s
    return None if margin <= 0 else target * build_s / margin


# ---- running ----------------------------------------------------------------------------------
def screen_cost(run_cfg, space, net, suite, n: int, adapted=None) -> dict[str, Any]:
    """The two-tier screen loop over ``n`` candidates in memory: CPU seconds, sampler included."""
    import optuna
    from omegaconf import OmegaConf

    from nas.strategies.supernet import strategy_settings
    from nas.strategies.two_tier import run_screen
    from nas.study.screen import ARCH, complete
    from nas.study.storage import build_sampler

    study = optuna.create_study(
        direction="minimize", sampler=build_sampler(OmegaConf.create(run_cfg))
    )
    settings = strategy_settings({**run_cfg["strategy"], "name": "two_tier"})
    t0 = time.process_time()
    run_screen(study, space, net, suite, n, settings, adapted=adapted)
    cpu = time.process_time() - t0
    done = complete(study)
    return {
        "candidates": len(done),
        # The screen cannot see every knob (dropout): one architecture can be screened again.
        "distinct_architectures": len({t.user_attrs[ARCH] for t in done}),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_candidate": cpu / max(1, len(done)),
        "sampler": str(run_cfg["sampler"]["_target_"]),
        "best": sorted(t.value for t in done)[:5],
    }


def run(args) -> dict[str, Any]:
    """Build, screen, score; returns the JSON payload."""

    from nas.strategies.supernet import SubnetSampler
    from nas.strategies.two_tier import SCREENS, screen_score
    from nas.trial.run import data_fields
    from nas.validity.statistics import rank_agreement

    threads = set_threads(args.threads)
    warn_if_loaded()
    quiet_logs(args.verbose, timestamps=True)
    cache = sr.Cache(args.cache_dir)
    overrides = sr.overrides_of(args, cache, threads)
    cfg = compose(overrides)
    run_cfg, space, suite = sr.setup(cfg)
    net, folder, built = sr.build(run_cfg, space, suite, cache)
    build_cpu = built["cpu_s"]
    print(f"super-network {net.super_cfg.describe()} ({folder.name}): build CPU s {build_cpu}")
    adapted, adapted_cpu = build_adapted(
        adapt_cfg(run_cfg, args.adapt_scale), space, net, suite, folder
    )
    cost = screen_cost(run_cfg, space, net, suite, args.screen_trials, adapted)
    print(
        f"screen: {cost['candidates']} candidates in {cost['cpu_s']:.1f} CPU s "
        f"({cost['cpu_s_per_candidate']:.3f} each, {cost['sampler']})",
        flush=True,
    )
    sampler = SubnetSampler(space, data_fields(suite))
    rng = random.Random(args.draw_seed)
    archs = sr.draw_distinct(lambda: sampler.random(rng), args.archs)
    standalone_cfg, shape = sr.standalone_of(run_cfg)
    rows = []
    screen = str(run_cfg["strategy"]["screen"])
    for i, arch in enumerate(archs):
        t0 = time.process_time()
        score = screen_score(net, arch, suite, screen, adapted)
        screen_cpu = time.process_time() - t0
        scores = {name: screen_score(net, arch, suite, name) for name in SCREENS[:2]}
        t0 = time.process_time()
        scores["adapted"] = screen_score(net, arch, suite, "adapted", adapted)
        adapted_s = time.process_time() - t0
        rec = sr._standalone(cache, arch, suite, standalone_cfg, args.seed, shape)
        rows.append(
            {
                "label": f"A{i}",
                "arch": arch.describe(),
                "family": arch.family,
                "config": arch.to_dict(),
                "n_params": arch.num_params(),
                "screen_score": score,
                "screen_scores": scores,
                "screen_cpu_s": round(screen_cpu, 3),
                "adapted_cpu_s": round(adapted_s, 3),
                "adapted_task_scores": adapted_tasks(adapted, arch, suite),
                "standalone": rec,
            }
        )
        print(
            f"[{i + 1}/{len(archs)}] A{i} screen {score:.4f}  standalone "
            f"{rec['adaptability']:.4f} ({rec['cpu_s']:.0f} CPU s)  adapted "
            f"{-scores['adapted']:.4f} ({adapted_s:.1f} CPU s)  {arch.describe()}",
            flush=True,
        )
    payload = summarise(rows, build_cpu, cost, net, folder, args, cfg, overrides, rank_agreement)
    payload["adapted"] = adapted_summary(rows, build_cpu, adapted_cpu, cost, cfg, rank_agreement)
    _print_adapted(payload["adapted"])
    return payload


def adapt_cfg(run_cfg: dict[str, Any], scale: float) -> dict[str, Any]:
    """``run_cfg`` with every task's steps x ``scale``, for the super-network's adaptation alone
    (``--adapt-scale``; the standalone trials keep the tasks' own budgets)."""
    if scale == 1.0:
        return run_cfg
    out = copy.deepcopy(run_cfg)
    for task in out["tasks"].values():
        task["steps"] = max(1, round(int(task["steps"]) * scale))
    return out


def build_adapted(run_cfg, space, net, suite, folder):
    """The super-network adapted once per task (``strategy.screen=adapted``), built or loaded.

    Returns:
        ``(adapted, {task: CPU s of its adaptation})``: the seconds each task's file records
        (booked by the process that built it).
    """
    from nas.strategies.adapted import ensure_adapted
    from nas.strategies.supernet import strategy_settings

    t0 = time.process_time()
    adapted = ensure_adapted(
        net, space, suite, run_cfg, folder, strategy_settings(run_cfg["strategy"])
    )
    print(
        f"adapted super-network: {len(adapted.nets)} tasks, "
        f"{sum(adapted.seconds.values()):.0f} CPU s to build "
        f"({time.process_time() - t0:.0f} CPU s in this process)",
        flush=True,
    )
    return adapted, dict(adapted.seconds)


def adapted_tasks(adapted, arch, suite) -> dict[str, float]:
    """Per task, the adapted screen's validation score (the row's detail)."""
    from nas.strategies.adapted import task_scores

    return {k: round(v, 4) for k, v in task_scores(adapted, arch, suite).items()}


def adapted_summary(rows, build_cpu, adapted_cpu, cost, cfg, rank_agreement) -> dict[str, Any]:
    """The adapted screen's rank agreement and cost accounting.

    Its CPU seconds per candidate: the timed screen loop's when that loop ran the adapted screen
    (``strategy.screen=adapted``, the default); otherwise the mean of its score over the rows
    plus the loop's own cost per candidate (the sampler's ask and tell: the loop's per candidate
    minus its score alone).
    """
    adapt = [r["standalone"]["adaptability"] for r in rows]
    minus = [-r["screen_scores"]["adapted"] for r in rows]
    score_s = statistics.fmean(r["adapted_cpu_s"] for r in rows)
    timed = str(cfg.strategy.screen) == "adapted"
    loop_s = cost["cpu_s_per_candidate"] - (
        score_s if timed else statistics.fmean(r["screen_cpu_s"] for r in rows)
    )
    t_scr = cost["cpu_s_per_candidate"] if timed else score_s + max(0.0, loop_s)
    t_std = statistics.fmean(r["standalone"]["cpu_s"] for r in rows)
    build = (build_cpu or 0.0) + sum(adapted_cpu.values())
    ks = sorted({*KS, int(cfg.strategy.screen_trials)})
    return {
        "rank": rank_agreement(minus, adapt),
        "cpu_s": {
            "supernet_build": build_cpu,
            "adapt_per_task": adapted_cpu,
            "adapt_total": sum(adapted_cpu.values()),
            "build_total": build,
            "screen_score_mean": score_s,
            "screen_loop_overhead": loop_s,
            "screen_per_candidate": t_scr,
            "screen_per_candidate_timed_loop": timed,
            "standalone_mean": t_std,
        },
        "accounting": {
            "screened_per_cpu_hour": {str(k): per_cpu_hour(k, build, t_scr) for k in ks},
            "ratio": {str(k): screen_ratio(k, build, t_scr, t_std) for k in ks},
            "asymptotic_ratio": t_std / t_scr,
            "break_even_screened": break_even(build, t_scr, t_std),
            "screened_for_20x": break_even(build, t_scr, t_std, TARGET_RATIO),
        },
        "how": "screen score = minus the adaptability (objective.adaptability) of the candidate's "
        "sub-network extracted from the super-network adapted once per task (sandwich "
        "fine-tuning on the task's few-shot subset and budget, one head per task), scored on "
        "each task's full validation split",
    }


def _print_adapted(a: dict[str, Any]) -> None:
    rk, c, acc = a["rank"], a["cpu_s"], a["accounting"]
    print(
        f"\nadapted screen vs standalone adaptability over {rk['n']} architectures: Kendall tau "
        f"{_f(rk['kendall_tau'])}{_ci(rk.get('kendall_tau_ci'))}, Spearman "
        f"{_f(rk['spearman'])}{_ci(rk.get('spearman_ci'))}"
    )
    per = ", ".join(f"K={k}: {_f(v, '.1f')}x" for k, v in acc["ratio"].items())
    print(
        f"adapted CPU s: build {_f(c['build_total'], '.0f')} (super-network "
        f"{_f(c['supernet_build'], '.0f')} + tasks {_f(c['adapt_total'], '.0f')}), "
        f"{_f(c['screen_per_candidate'], '.2f')} per candidate; {per}; asymptote "
        f"{_f(acc['asymptotic_ratio'], '.1f')}x; break-even {_f(acc['break_even_screened'], '.0f')}"
    )


def summarise(rows, build_cpu, cost, net, folder, args, cfg, overrides, rank_agreement):
    """The payload from the per-architecture rows (printed too)."""
    screen = [-r["screen_score"] for r in rows]  # higher is better, as adaptability
    adapt = [r["standalone"]["adaptability"] for r in rows]
    t_std = statistics.fmean(r["standalone"]["cpu_s"] for r in rows)
    t_scr = cost["cpu_s_per_candidate"]
    default_k = int(cfg.strategy.screen_trials)
    ks = sorted({*KS, default_k})
    accounting = None
    if build_cpu is not None:
        accounting = {
            "standalone_per_cpu_hour": 3600.0 / t_std,
            "screened_per_cpu_hour": {str(k): per_cpu_hour(k, build_cpu, t_scr) for k in ks},
            "ratio": {str(k): screen_ratio(k, build_cpu, t_scr, t_std) for k in ks},
            "asymptotic_ratio": t_std / t_scr,
            "break_even_screened": break_even(build_cpu, t_scr, t_std),
            "screened_for_20x": break_even(build_cpu, t_scr, t_std, TARGET_RATIO),
            "build_in_standalone_trials": build_cpu / t_std,
            "default_screen_in_standalone_trials": (build_cpu + default_k * t_scr) / t_std,
        }
    families = sorted({r["family"] for r in rows})

    def agreement(minus: list[float]) -> dict[str, Any]:
        """Overall and per family, ``minus`` (minus the screen scores) against adaptability."""
        out = {"all": rank_agreement(minus, adapt)}
        for fam in families:
            pick = [i for i, r in enumerate(rows) if r["family"] == fam]
            out[fam] = rank_agreement([minus[i] for i in pick], [adapt[i] for i in pick])
        return out

    names = rows[0]["screen_scores"]
    by_screen = {name: agreement([-r["screen_scores"][name] for r in rows]) for name in names}
    per_family = {fam: v for fam, v in agreement(screen).items() if fam != "all"}
    payload = {
        "benchmark": "two_tier",
        "command": args.command,
        "machine": {**machine(), "torch_threads": int(cfg.threads)},
        "settings": {
            "overrides": overrides,
            "archs": len(rows),
            "draw_seed": args.draw_seed,
            "model_seed": args.seed,
            "screen_trials": args.screen_trials,
            "default_screen_trials": default_k,
            "quick": bool(args.quick),
            "preset": "quick" if args.quick else args.preset,
            "search_space": str(cfg.search_space),
            "tasks": list(cfg.tasks),
            "pretrain_tokens": int(cfg.pretrain.tokens),
            "screen": str(cfg.strategy.screen),
            "adapt_scale": args.adapt_scale,
            "screens": "lower is better; adapted: minus the adaptability on the task-adapted "
            "super-network; held-out LM loss of the sliced sub-network: lm_loss by "
            "its family's objective, suffix_loss on the tokens after a random prefix",
            "clock": "process CPU seconds",
        },
        "supernet": {
            "super_cfg": net.super_cfg.describe(),
            "params": net.lm.num_params(),
            "folder": folder.name,
            "build_cpu_s": build_cpu,
        },
        "screen_loop": cost,
        "archs": rows,
        "rank": rank_agreement(screen, adapt),
        "rank_per_family": per_family,
        "rank_by_screen": by_screen,
        "cpu_s": {
            "build": build_cpu,
            "screen_per_candidate": t_scr,
            "screen_score_only_mean": statistics.fmean(r["screen_cpu_s"] for r in rows),
            "standalone_mean": t_std,
        },
        "accounting": accounting,
        "targets": {"kendall_tau": TARGET_TAU, "ratio": TARGET_RATIO, "at_screened": 200},
    }
    _print(payload)
    return payload


def _f(v, spec=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _print(p: dict[str, Any]) -> None:
    print()
    rows = [
        [
            r["label"],
            r["arch"],
            f"{r['n_params'] / 1e3:.0f}k",
            _f(r["screen_score"], ".4f"),
            _f(r["standalone"]["adaptability"], ".4f"),
            _f(r["standalone"]["cpu_s"], ".0f"),
        ]
        for r in p["archs"]
    ]
    print_table(["", "architecture", "params", "screen", "standalone", "CPU s std"], rows)
    rk = p["rank"]
    print(
        f"\nscreen ({p['settings']['screen']}) vs standalone adaptability over {rk['n']} archs: "
        f"Kendall tau {_f(rk['kendall_tau'])}{_ci(rk.get('kendall_tau_ci'))} "
        f"(p {_f(rk['kendall_p'])}), Spearman {_f(rk['spearman'])}"
        f"{_ci(rk.get('spearman_ci'))} (bootstrap 95%; target tau >= {TARGET_TAU})"
    )
    for name, groups in p["rank_by_screen"].items():
        shown = "; ".join(
            f"{g} n {r['n']} tau {_f(r['kendall_tau'])}{_ci(r.get('kendall_tau_ci'))}"
            for g, r in groups.items()
        )
        print(f"  {name}: {shown}")
    c = p["cpu_s"]
    print(
        f"CPU s: build {_f(c['build'], '.0f')}, screen {_f(c['screen_per_candidate'], '.3f')} per "
        f"candidate (sampler included; the score alone {_f(c['screen_score_only_mean'], '.3f')}),"
        f" standalone trial {_f(c['standalone_mean'], '.1f')}"
    )
    a = p["accounting"]
    if a:
        per = ", ".join(
            f"K={k}: {_f(v, '.0f')}/CPU-h = {_f(a['ratio'][k], '.1f')}x"
            for k, v in a["screened_per_cpu_hour"].items()
        )
        print(
            f"screened per CPU-hour (build amortised) {per}; standalone "
            f"{_f(a['standalone_per_cpu_hour'], '.0f')}/CPU-h; asymptote "
            f"{_f(a['asymptotic_ratio'], '.0f')}x; screening beats standalone after "
            f"{_f(a['break_even_screened'], '.0f')} candidates, 20x after "
            f"{_f(a['screened_for_20x'], '.0f')}"
        )


def build_parser():
    """The command-line options."""
    from nas.config.schema import StrategyConfig

    p = base_parser("two_tier", __doc__.split("\n\n")[0])
    draw_args(p, 24, "model seed (cfg.seed; the super-network's)")
    p.add_argument(
        "--screen-trials",
        type=int,
        default=StrategyConfig().screen_trials,
        help="candidates of the timed screen loop (default: strategy.screen_trials's default)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"super-network and finished runs (default: {sr.DEFAULT_CACHE}_<preset>, shared "
        "with supernet_rank.py)",
    )
    p.add_argument("--preset", default="default", choices=["default", "bench"], help="budgets")
    p.add_argument(
        "--adapt-scale",
        type=float,
        default=1.0,
        help="the super-network's adaptation steps per task x this (the standalone trials keep "
        "the tasks' budgets)",
    )
    p.add_argument("--verbose", action="store_true", help="adaptnas progress logs")
    p.add_argument("overrides", nargs="*", help="more Hydra overrides")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    args.command = shlex.join(["python", "benchmarks/two_tier.py", *map(str, given)])
    if args.archs < 3:
        parser.error(f"--archs {args.archs}: a rank correlation with an interval needs 3 or more")
    if args.screen_trials < 1:
        parser.error(f"--screen-trials {args.screen_trials}: at least 1")
    if args.adapt_scale <= 0:
        parser.error(f"--adapt-scale {args.adapt_scale}: must be above 0")
    if args.quick:
        if args.archs == parser.get_default("archs"):
            args.archs = 4
        if args.screen_trials == parser.get_default("screen_trials"):
            args.screen_trials = 10
    if args.threads is None:
        args.threads = 1
    if args.cache_dir is None:
        args.cache_dir = Path(f"{sr.DEFAULT_CACHE}_{'quick' if args.quick else args.preset}")
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
