"""Weight sharing: a supernet search against a standalone search, same time budget.

For each seed, two searches with the same sampler and pruner (the defaults: TPE, Hyperband) get
the same budget, one after the other in one process (the suite is built once, before any clock
starts; the order alternates with the seed):

* ``standalone``: every candidate is pretrained from scratch (``strategy=standalone``);
* ``supernet``: the search first pretrains its super-network (``strategy=supernet``: sandwich
  rule, ``strategy.tokens_factor`` x a candidate's tokens), *inside the budget*, then adapts every
  candidate from its sliced weights without pretraining it.

Both run through ``nas.engine.run.run_search`` (in-memory study, no plots, no kept weights) on the
clock of ``benchmarks/search_efficiency.py`` (this process's CPU seconds with one torch thread
by default: steady when other processes load the cores). Reported per strategy: candidates
evaluated within the budget (and per CPU-hour), the best adaptability at 25/50/75/100% of the
budget, and for the supernet its build time. The issue's target is >= 5x the candidates of
standalone in the same time; whether a budget reaches it depends on how many trials there are
to spread the build over, so the JSON keeps the raw counts.

    python benchmarks/supernet.py                   # bench preset, 2 seeds x 2 x 300 s
    python benchmarks/supernet.py --quick           # tiny space and budgets, about a minute
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks.common import (  # noqa: E402
    budget_args,
    budget_parser,
    machine,
    median,
    print_table,
    quiet_logs,
    run_and_write,
    set_threads,
    warn_if_loaded,
)
from benchmarks.overhead import compose  # noqa: E402
from benchmarks.search_efficiency import PRESETS, best_at, preset_overrides, run_one  # noqa: E402

STRATEGIES = {"standalone": ["strategy=standalone"], "supernet": ["strategy=supernet"]}
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def build_seconds(root: Path, study_name: str) -> float | None:
    """Wall seconds the study's super-network took to pretrain (its ``spec.json``), if built."""
    for spec in sorted((root / "studies" / study_name / "supernet").glob("*/spec.json")):
        seconds = json.loads(spec.read_text()).get("seconds")
        if seconds is not None:
            return float(seconds)
    return None


def run(args) -> dict[str, Any]:
    """Both strategies for every seed; returns the JSON payload."""
    threads = set_threads(args.threads)
    warn_if_loaded()
    quiet_logs()
    preset = "quick" if args.quick else args.preset
    seeds = list(range(args.seed, args.seed + args.seeds))
    runs: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        base = [
            f"paths.root={tmp}",
            "storage=memory",
            "plots=false",
            "export.keep_top_k=0",
            "finalists.seeds=0",  # candidates evaluated, not repeats of the best
            f"threads={threads}",
            *preset_overrides(preset, args.overrides),
        ]
        from nas.engine.run import load_suite

        load_suite(compose(base))  # data and tokenizer before any clock starts
        for i, seed in enumerate(seeds):
            order = list(STRATEGIES) if i % 2 == 0 else list(reversed(STRATEGIES))
            for name in order:
                extra = args.supernet_overrides if name == "supernet" else []
                study = f"{name}-{seed}"
                overrides = [*base, *STRATEGIES[name], *extra, f"seed={seed}"]
                r = run_one([*overrides, f"study_name={study}"], args.budget, args.clock)
                if name == "supernet":
                    r["build_wall_s"] = build_seconds(Path(tmp), study)
                runs[name][seed] = r
                final = r["curve"][-1][1] if r["curve"] else math.nan
                print(
                    f"seed {seed} {name:>10}: {r['trials_within_budget']} trials in budget "
                    f"({r['complete']} complete, {r['pruned']} pruned), best {final:.4f}",
                    flush=True,
                )
    summary = {}
    for name in STRATEGIES:
        counts = [runs[name][s]["trials_within_budget"] for s in seeds]
        summary[name] = {
            "trials_within_budget": counts,
            "candidates_per_cpu_hour": median(c * 3600.0 / args.budget for c in counts),
            "best_over_time_median": {
                f"{int(100 * f)}%": median(
                    v
                    for v in (best_at(runs[name][s]["curve"], f * args.budget) for s in seeds)
                    if v is not None
                )
                for f in FRACTIONS
            },
        }
    summary["supernet"]["build_wall_s"] = [runs["supernet"][s].get("build_wall_s") for s in seeds]
    ratios = [
        runs["supernet"][s]["trials_within_budget"] / runs["standalone"][s]["trials_within_budget"]
        for s in seeds
        if runs["standalone"][s]["trials_within_budget"]
    ]
    payload = {
        "benchmark": "supernet",
        "machine": {**machine(), "torch_threads": threads},
        "settings": {
            "budget_s": args.budget,
            "clock": args.clock,
            "seeds": seeds,
            "preset": preset,
            "overrides": preset_overrides(preset, args.overrides),
            "strategies": STRATEGIES,
            "supernet_overrides": list(args.supernet_overrides),
            "quick": bool(args.quick),
        },
        "runs": {name: {str(s): r for s, r in by_seed.items()} for name, by_seed in runs.items()},
        "summary": summary,
        "median_candidates_ratio": median(ratios) if ratios else None,
    }
    _print(payload)
    return payload


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _print(p: dict[str, Any]) -> None:
    s = p["summary"]
    cols = [f"{int(100 * f)}%" for f in FRACTIONS]
    print(f"\nbudget {p['settings']['budget_s']:g}s on the {p['settings']['clock']} clock")
    rows = [
        [
            name,
            "/".join(map(str, s[name]["trials_within_budget"])),
            _fmt(s[name]["candidates_per_cpu_hour"], ".0f"),
            *(_fmt(s[name]["best_over_time_median"][c]) for c in cols),
        ]
        for name in STRATEGIES
    ]
    print_table(["strategy", "trials/seed", "per hour", *(f"best@{c}" for c in cols)], rows)
    builds = ", ".join(_fmt(b, ".0f") for b in s["supernet"]["build_wall_s"])
    print(
        f"\nsupernet/standalone candidates (median over seeds): "
        f"{_fmt(p['median_candidates_ratio'], '.2f')} (target >= 5); "
        f"super-network builds (wall s): {builds}"
    )


def build_parser():
    """The command-line options."""
    presets = [k for k in PRESETS if k != "quick"]
    p = budget_parser("supernet", __doc__.split("\n\n")[0], seeds=2, presets=presets)
    p.add_argument(
        "--supernet-override",
        dest="supernet_overrides",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="a Hydra override for the supernet search only (e.g. strategy.tokens_factor=20)",
    )
    p.add_argument("overrides", nargs="*", help="more Hydra overrides of both searches")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    args = budget_args(build_parser(), argv, quick_budget=20.0, quick_seeds=1)
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
