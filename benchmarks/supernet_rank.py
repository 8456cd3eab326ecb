"""Weight sharing's validity: inherited scores against standalone scores of the same architectures.

The default search config under ``strategy=supernet`` (Hydra compose of ``conf/search.yaml``, the
built-in suite and budgets as they are) is built once; then:

1. its super-network is built with the default strategy settings (sandwich rule,
   ``strategy.tokens_factor`` x a candidate's tokens), or loaded from ``--cache-dir``: a killed
   build resumes from its checkpoint, a finished one costs nothing on a rerun;
2. ``--archs`` distinct architectures are drawn from the supernet's narrowed space
   (``SubnetSampler.random``, seeded by ``--draw-seed``);
3. each is scored (a) **inherited**: sliced from the super-network and adapted per task exactly
   as a supernet trial does (``InheritedWeights.prepare`` -> ``run_trial``), and
   (b) **standalone**: the plain staged trial (pretrained from scratch with ``pretrain.tokens``,
   the same adaptation budget), with the same model seed; ``--seeds`` > 1 adds standalone
   seeds for the seed sd;
4. reported: Kendall tau and Spearman (``nas.validity.statistics.rank_agreement``), both score
   lists, the CPU seconds of every run and of the build, the implied candidates-per-hour ratio of a
   supernet search over a standalone one (build amortised over K candidates, and its
   asymptote), and the winner check (the best inherited architecture retrained standalone
   against the best of the standalone column).

Every run's result is cached in ``--cache-dir`` (keyed by the architecture, side, seed and the
settings that shape it), so an interrupted benchmark resumes where it stopped. Times are this
process's CPU seconds with one torch thread (``--threads 1``): steady when other jobs load the
cores, unlike wall seconds.

    python benchmarks/supernet_rank.py --threads 1               # the default suite, 8 archs
    python benchmarks/supernet_rank.py --quick                   # tiny space and budgets
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    DEFAULT_OUT,
    base_parser,
    draw_args,
    machine,
    print_table,
    quiet_logs,
    run_and_write,
    set_threads,
    warn_if_loaded,
)
from benchmarks.overhead import QUICK_OVERRIDES, compose  # noqa: E402
from benchmarks.search_efficiency import preset_overrides  # noqa: E402

KS = (8, 50, 200)
TARGET_RATIO = 5.0  # the issue: >= 5x the candidates of a standalone search in the same time
TARGET_TAU = 0.5
STANDALONE_SEED_STRIDE = (
    100  # standalone seeds: seed, seed + 100, ... (never another architecture's seed)
)
DEFAULT_CACHE = DEFAULT_OUT.parent / "supernet_rank_cache"


# ---- pure parts -------------------------------------------------------------------------------
def key_of(*parts: Any) -> str:
    """A short stable hash of JSON-able ``parts`` (cache file names)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def draw_distinct(draw, n: int, tries: int = 50) -> list[Any]:
    """``n`` distinct results of ``draw()`` (compared by ``to_dict()``), in draw order.

    Raises:
        ValueError: fewer than ``n`` distinct ones in ``tries * n`` draws (a space too small).
    """
    out, seen = [], set()
    for _ in range(tries * n):
        cfg = draw()
        k = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        if k not in seen:
            seen.add(k)
            out.append(cfg)
            if len(out) == n:
                return out
    raise ValueError(f"--archs {n}: only {len(out)} distinct architectures in {tries * n} draws")


def candidates_ratio(build_s: float, standalone_s: float, inherited_s: float, k: int) -> float:
    """Candidates a supernet search evaluates per candidate of a standalone one, same time.

    ``k`` standalone trials take ``k * standalone_s``; the supernet search spends ``build_s``
    once, then ``inherited_s`` per trial, so in that time it evaluates
    ``(k * standalone_s - build_s) / inherited_s`` candidates (none while still building).
    Equal per-trial costs for every candidate, no pruning.
    """
    left = k * standalone_s - build_s
    return max(0.0, left / inherited_s) / k


def break_even(
    build_s: float, standalone_s: float, inherited_s: float, target: float
) -> float | None:
    """Standalone trials of search time after which the ratio reaches ``target`` (``None``: never).

    Solves ``(k * standalone_s - build_s) / inherited_s = target * k`` for ``k``.
    """
    margin = standalone_s - target * inherited_s
    return None if margin <= 0 else build_s / margin


def seed_sd(per_arch: list[list[float]]) -> float | None:
    """Pooled standard deviation over seeds (root mean of per-architecture variances)."""
    variances = [statistics.variance(v) for v in per_arch if len(v) >= 2]
    return math.sqrt(statistics.fmean(variances)) if variances else None


def winner_check(labels: list[str], inherited: list[float], standalone: list[float]) -> dict:
    """The best inherited architecture, scored standalone, against the standalone column's best.

    Its standalone score is its "retrained standalone" score: the same staged trial as every
    other standalone run (same seed, same budgets).
    """
    wi = max(range(len(inherited)), key=inherited.__getitem__)
    ws = max(range(len(standalone)), key=standalone.__getitem__)
    order = sorted(range(len(standalone)), key=standalone.__getitem__, reverse=True)
    return {
        "inherited_winner": labels[wi],
        "inherited_winner_inherited": inherited[wi],
        "inherited_winner_standalone": standalone[wi],
        "inherited_winner_standalone_rank": order.index(wi) + 1,
        "standalone_winner": labels[ws],
        "standalone_winner_standalone": standalone[ws],
        "difference": standalone[wi] - standalone[ws],
        "at_least_as_good": standalone[wi] >= standalone[ws],
    }


def spread(values: list[float]) -> dict[str, float | None]:
    """Range and standard deviation of one column."""
    return {
        "min": min(values),
        "max": max(values),
        "range": max(values) - min(values),
        "sd": statistics.stdev(values) if len(values) >= 2 else None,
    }


# ---- running ----------------------------------------------------------------------------------
class Cache:
    """One JSON file per finished run (and the build's CPU time) under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        path = self.root / "runs" / f"{key}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, key: str, value: dict) -> None:
        path = self.root / "runs" / f"{key}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1))
        tmp.replace(path)  # a kill never leaves half a record


def _trial(arch, suite, run_cfg, seed: int, init_model=None) -> dict[str, Any]:
    from nas.trial.run import run_trial

    t0 = time.process_time()
    r = run_trial(arch, suite, run_cfg, seed=seed, init_model=init_model)
    cpu = time.process_time() - t0
    return {
        "adaptability": float(r.adaptability),
        "tasks": {k: float(v) for k, v in r.task_scores.items()},
        "pretrain_val_loss": None if math.isnan(r.pretrain_val_loss) else r.pretrain_val_loss,
        "steps": dict(r.steps),
        # The rate each task chose on finetune.lr_grid (none without a grid).
        "lr": {k: float(m["lr"]) for k, m in r.task_metrics.items() if m.get("lr") is not None},
        "cpu_s": round(cpu, 2),
        "wall_s": {k: round(v, 2) for k, v in r.timings.items()},
    }


def _standalone(cache: Cache, arch, suite, run_cfg, seed: int, shape) -> dict[str, Any]:
    k = key_of("standalone", arch.to_dict(), seed, shape)
    rec = cache.get(k)
    if rec is None:
        rec = _trial(arch, suite, run_cfg, seed)
        cache.put(k, rec)
    return rec


def overrides_of(args, cache: Cache, threads: int) -> list[str]:
    """The Hydra overrides of the benchmark's run (the super-network's settings among them)."""
    return [
        "strategy=supernet",
        f"paths.root={cache.root}",
        f"threads={threads}",
        f"seed={args.seed}",
        *(QUICK_OVERRIDES if args.quick else preset_overrides(args.preset, [])),
        *args.overrides,
    ]


def standalone_of(run_cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The standalone run config, and what of it keys a cached standalone run."""
    shape = {k: run_cfg[k] for k in ("pretrain", "finetune", "tasks", "data", "objective")}
    shape["trainer"] = run_cfg["trainer"]
    return {**run_cfg, "strategy": {"name": "standalone"}}, shape


def setup(cfg):
    """The run config (plain), the supernet's narrowed space and the suite."""
    from nas.config.families import restrict_to_tasks
    from nas.config.nodes import plain
    from nas.engine.run import load_suite
    from nas.strategies.registry import strategy_for
    from nas.strategies.supernet import strategy_settings
    from nas.trial.resources import prepare_process
    from search_spaces import load_space

    prepare_process()
    run = plain(cfg)
    space = restrict_to_tasks(load_space(str(cfg.search_space)), run["tasks"])
    space = strategy_for(run["strategy"]["name"]).space(strategy_settings(run["strategy"]), space)
    return run, space, load_suite(cfg)


def build(run, space, suite, cache: Cache):
    """The super-network: built, resumed or loaded from ``cache``.

    Returns:
        ``(net, folder, {"cpu_s": build CPU seconds or None})``; the CPU seconds add up over a
        build killed and resumed (each process books its seconds at every checkpoint; work lost
        after the last one is redone and counted once).
    """
    from nas.strategies.supernet import ensure_supernet, spec_of, super_config, supernet_dir
    from nas.trial.run import data_fields

    study = cache.root / "study"
    spec = spec_of(space, super_config(space, data_fields(suite)), run)
    name = supernet_dir(study, spec).name  # the folder ensure_supernet uses
    booked = cache.root / "build_cpu.json"
    book = json.loads(booked.read_text()) if booked.is_file() else {}
    entry = book.get(name, {})
    prior = float(entry.get("cpu_s_at_checkpoint", 0.0))
    t0 = time.process_time()

    def on_checkpoint(step: int) -> None:
        book[name] = {"step": step, "cpu_s_at_checkpoint": prior + time.process_time() - t0}
        booked.write_text(json.dumps(book, indent=1))

    net, folder = ensure_supernet(space, suite, run, study, on_checkpoint=on_checkpoint)
    assert folder.name == name, (folder, name)
    # Read again: a process that built it while this one waited on its lock booked the seconds.
    if booked.is_file():
        book = {**book, **{k: v for k, v in json.loads(booked.read_text()).items() if k == name}}
    if "cpu_s" not in book.get(name, {}):
        built_here = name in book  # a checkpoint of this or an earlier process was booked
        cpu = prior + time.process_time() - t0 if built_here else None
        book[name] = {**book.get(name, {}), "cpu_s": None if cpu is None else round(cpu, 1)}
        booked.write_text(json.dumps(book, indent=1))
    return net, folder, book[name]


def run(args) -> dict[str, Any]:
    """Build, draw, score both sides; returns the JSON payload."""

    threads = set_threads(args.threads)
    warn_if_loaded()
    quiet_logs(args.verbose, timestamps=True)
    cache = Cache(args.cache_dir)
    overrides = overrides_of(args, cache, threads)
    cfg = compose(overrides)
    from nas.strategies.supernet import InheritedWeights, SubnetSampler, strategy_settings
    from nas.trial.run import data_fields
    from nas.validity.statistics import rank_agreement

    run_cfg, space, suite = setup(cfg)
    net = folder = strategy = None
    build_cpu = None
    settings = strategy_settings(run_cfg["strategy"])
    if args.only != "standalone":
        net, folder, built = build(run_cfg, space, suite, cache)
        build_cpu = built["cpu_s"]
        print(
            f"super-network {net.super_cfg.describe()} ({folder.name}): build CPU s "
            f"{'-' if build_cpu is None else f'{build_cpu:.0f}'}",
            flush=True,
        )
        strategy = InheritedWeights(net, folder, settings.continue_tokens)
    sampler = SubnetSampler(space, data_fields(suite))
    rng = random.Random(args.draw_seed)
    archs = draw_distinct(lambda: sampler.random(rng), args.archs)
    labels = [f"A{i}" for i in range(len(archs))]
    standalone_cfg, shape = standalone_of(run_cfg)
    seeds = [args.seed + STANDALONE_SEED_STRIDE * j for j in range(args.seeds)]
    rows = []
    total = len(archs) * (len(seeds) + (args.only != "standalone"))
    done = 0
    for label, arch in zip(labels, archs, strict=True):
        a = arch.to_dict()
        row: dict[str, Any] = {"label": label, "arch": arch.describe(), "config": a}
        row["n_params"] = arch.num_params()
        if args.only == "standalone":
            row["standalone"] = []
            for seed in seeds:
                rec = _standalone(cache, arch, suite, standalone_cfg, seed, shape)
                done += 1
                row["standalone"].append({"seed": seed, **rec})
                print(f"[{done}/{total}] {label} standalone {rec['adaptability']:.4f}", flush=True)
            rows.append(row)
            continue
        k = key_of("inherited", a, args.seed, folder.name, settings.continue_tokens, shape)
        rec = cache.get(k)
        if rec is None:
            trial_cfg, init_model = strategy.prepare(None, arch, run_cfg)
            rec = _trial(arch, suite, trial_cfg, args.seed, init_model)
            cache.put(k, rec)
        done += 1
        row["inherited"] = rec
        print(
            f"[{done}/{total}] {label} inherited  {rec['adaptability']:.4f} "
            f"({rec['cpu_s']:.0f} CPU s)  {arch.describe()}",
            flush=True,
        )
        row["standalone"] = []
        for seed in seeds:
            rec = _standalone(cache, arch, suite, standalone_cfg, seed, shape)
            done += 1
            row["standalone"].append({"seed": seed, **rec})
            print(
                f"[{done}/{total}] {label} standalone {rec['adaptability']:.4f} "
                f"({rec['cpu_s']:.0f} CPU s) seed {seed}",
                flush=True,
            )
        rows.append(row)
    if args.only == "standalone":  # the other side is still to come: no summary
        return {"benchmark": "supernet_rank", "only": "standalone", "archs": rows}
    return summarise(
        rows, build_cpu, net, folder, args, cfg, overrides, threads, seeds, rank_agreement
    )


def summarise(rows, build_cpu, net, folder, args, cfg, overrides, threads, seeds, rank_agreement):
    """The payload from the per-architecture rows (printed too)."""
    labels = [r["label"] for r in rows]
    inherited = [r["inherited"]["adaptability"] for r in rows]
    standalone_first = [r["standalone"][0]["adaptability"] for r in rows]
    standalone = [statistics.fmean(s["adaptability"] for s in r["standalone"]) for r in rows]
    t_inh = statistics.fmean(r["inherited"]["cpu_s"] for r in rows)
    t_std = statistics.fmean(s["cpu_s"] for r in rows for s in r["standalone"])
    ratios = None
    if build_cpu is not None:
        ratios = {
            "per_k": {str(k): candidates_ratio(build_cpu, t_std, t_inh, k) for k in KS},
            "asymptotic": t_std / t_inh,
            "break_even_5x_standalone_candidates": break_even(
                build_cpu, t_std, t_inh, TARGET_RATIO
            ),
            "build_in_standalone_trials": build_cpu / t_std,
        }
    sd = seed_sd([[s["adaptability"] for s in r["standalone"]] for r in rows])
    payload = {
        "benchmark": "supernet_rank",
        "machine": {**machine(), "torch_threads": threads},
        "settings": {
            "overrides": overrides,
            "archs": len(rows),
            "draw_seed": args.draw_seed,
            "model_seed": args.seed,
            "standalone_seeds": seeds,
            "quick": bool(args.quick),
            "preset": "quick" if args.quick else args.preset,
            "search_space": str(cfg.search_space),
            "tasks": list(cfg.tasks),
            "pretrain_tokens": int(cfg.pretrain.tokens),
            "strategy": {k: v for k, v in dict(cfg.strategy).items() if k != "fixed"},
            "clock": "process CPU seconds",
        },
        "supernet": {
            "super_cfg": net.super_cfg.describe(),
            "params": net.lm.num_params(),
            "folder": folder.name,
            "build_cpu_s": build_cpu,
            "spec": json.loads((folder / "spec.json").read_text()).get("val_loss"),
            "steps": json.loads((folder / "spec.json").read_text()).get("steps"),
        },
        "archs": rows,
        "scores": {"labels": labels, "inherited": inherited, "standalone": standalone},
        "rank": rank_agreement(inherited, standalone),
        "rank_first_seed": rank_agreement(inherited, standalone_first) if len(seeds) > 1 else None,
        "spread": {"inherited": spread(inherited), "standalone": spread(standalone)},
        "standalone_seed_sd": sd,
        "cpu_s": {"inherited_mean": t_inh, "standalone_mean": t_std, "build": build_cpu},
        "candidates_ratio": ratios,
        "winner": winner_check(labels, inherited, standalone),
        "targets": {"kendall_tau": TARGET_TAU, "candidates_ratio": TARGET_RATIO},
    }
    _print(payload)
    return payload


def _f(v, spec=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _print(p: dict[str, Any]) -> None:
    print()
    rows = []
    for r in p["archs"]:
        st = r["standalone"]
        rows.append(
            [
                r["label"],
                r["arch"],
                f"{r['n_params'] / 1e3:.0f}k",
                _f(r["inherited"]["adaptability"], ".4f"),
                "/".join(_f(s["adaptability"], ".4f") for s in st),
                _f(r["inherited"]["cpu_s"], ".0f"),
                "/".join(_f(s["cpu_s"], ".0f") for s in st),
            ]
        )
    print_table(
        ["", "architecture", "params", "inherited", "standalone", "CPU s inh", "CPU s std"], rows
    )
    rk, sp = p["rank"], p["spread"]
    print(
        f"\nKendall tau {_f(rk['kendall_tau'])} (p {_f(rk['kendall_p'])}), Spearman "
        f"{_f(rk['spearman'])} over {rk['n']} architectures (target tau >= {TARGET_TAU})"
    )
    print(
        f"spread: inherited {_f(sp['inherited']['min'])}..{_f(sp['inherited']['max'])} "
        f"(sd {_f(sp['inherited']['sd'])}), standalone {_f(sp['standalone']['min'])}.."
        f"{_f(sp['standalone']['max'])} (sd {_f(sp['standalone']['sd'])}); standalone seed sd "
        f"{_f(p['standalone_seed_sd'])}"
    )
    c = p["cpu_s"]
    print(
        f"CPU s per trial: inherited {_f(c['inherited_mean'], '.1f')}, standalone "
        f"{_f(c['standalone_mean'], '.1f')}; super-network build {_f(c['build'], '.0f')}"
    )
    if p["candidates_ratio"]:
        q = p["candidates_ratio"]
        ks = ", ".join(f"K={k}: {_f(v, '.2f')}x" for k, v in q["per_k"].items())
        be = q["break_even_5x_standalone_candidates"]
        print(
            f"supernet/standalone candidates in equal time: {ks}; asymptotic "
            f"{_f(q['asymptotic'], '.2f')}x; 5x after "
            f"{'never' if be is None else f'{be:.0f} standalone trials of time'}"
        )
    w = p["winner"]
    print(
        f"winner: inherited best {w['inherited_winner']} scores "
        f"{_f(w['inherited_winner_standalone'], '.4f')} standalone "
        f"(rank {w['inherited_winner_standalone_rank']}); standalone best "
        f"{w['standalone_winner']} {_f(w['standalone_winner_standalone'], '.4f')} "
        f"(difference {_f(w['difference'], '+.4f')})"
    )


def build_parser():
    """The command-line options."""
    p = base_parser("supernet_rank", __doc__.split("\n\n")[0])
    draw_args(p, 8, "model seed (cfg.seed; the super-network's)")
    p.add_argument("--seeds", type=int, default=1, help="standalone seeds per architecture")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"super-network and finished runs (default: {DEFAULT_CACHE}_<preset>)",
    )
    p.add_argument(
        "--preset",
        default="default",
        choices=["default", "bench"],
        help="budgets: default (conf/ as is) or bench (benchmarks/search_efficiency.py's)",
    )
    p.add_argument(
        "--only",
        choices=["standalone"],
        default=None,
        help="run only the standalone side (in a second process beside the build: the full "
        "run then finds those runs cached); writes no summary",
    )
    p.add_argument("--verbose", action="store_true", help="adaptnas progress logs")
    p.add_argument("overrides", nargs="*", help="more Hydra overrides")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.archs < 2:
        parser.error(f"--archs {args.archs}: a rank correlation needs at least 2")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: at least 1")
    if args.quick and args.archs == parser.get_default("archs"):
        args.archs = 4
    if args.threads is None:
        args.threads = 1
    if args.cache_dir is None:
        tag = "quick" if args.quick else args.preset
        args.cache_dir = Path(f"{DEFAULT_CACHE}_{tag}")
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
