"""Search efficiency: TPE with stage pruning against random search without pruning, same budget.

For each seed, two searches on the built-in suite get the same time budget, one after the other
in one process (the suite is built once and shared, as in a long-lived worker; the order
alternates with the seed):

* ``tpe``: ``sampler=tpe pruner=hyperband`` (the default search: the pruner may stop a trial after
  any task of the suite);
* ``random``: ``sampler=random pruner=none``.

Both run through ``nas.engine.run_search`` (in-memory study, no plots, no kept weights). A trial
is never cut short: when one ends past the budget the search stops, and trials that end past it
do not count (Optuna's ``timeout`` works the same way). The clock is this process's CPU time by
default, with one torch thread: that is the wall time of an idle machine and stays steady when
other processes load the cores (``--clock wall`` counts wall seconds instead). Reported per seed:
the best adaptability found over time, random search's final best, and the time each strategy
needed to reach it (the target: TPE in a third of random's time or less). The same seed gives
both samplers the same first (start-up) candidates, so the pairs differ by what the pruner saves
and what TPE learns afterwards.

The ``bench`` preset (default) shrinks the budgets of every stage so that a trial takes 10-20 s;
``--preset default`` keeps ``conf/`` as is (minutes a trial).

    python benchmarks/search_efficiency.py                 # 3 seeds x 2 x 60 s, ~7 min
    python benchmarks/search_efficiency.py --budget 300    # the figures in docs/benchmarks.md
    python benchmarks/search_efficiency.py --quick         # tiny space and budgets, ~40 s
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402

from benchmarks.common import (  # noqa: E402
    base_parser,
    machine,
    median,
    print_table,
    run_and_write,
    set_threads,
    warn_if_loaded,
)
from benchmarks.overhead import QUICK_OVERRIDES, compose  # noqa: E402

STRATEGIES = {
    "tpe": ["sampler=tpe", "pruner=hyperband"],
    "random": ["sampler=random", "pruner=none"],
}
# Budgets that keep a trial of the default (small) space at 10-20 s on one core, so that a
# budget of minutes sees tens of trials; every task of the configured suite stays in. Per-task
# entries apply to the tasks the config selects.
PRESETS: dict[str, dict[str, Any]] = {
    "bench": {
        "global": [
            "data.corpus.n_sentences=4000",
            "pretrain.tokens=32768",
            "finetune.steps=25",
        ],
        "tasks": {
            "sentiment": ["steps=60", "source.n_train=2000", "source.n_val=200"],
            "qa": ["steps=25", "source.n_train=800", "source.n_val=100"],
            "ner": ["steps=25", "source.n_train=800", "source.n_val=100"],
            "translation": [
                "steps=25",
                "source.n_train=800",
                "source.n_val=40",
                "max_new_tokens=30",
            ],
            "summarization": [
                "steps=25",
                "source.n_train=800",
                "source.n_val=40",
                "max_new_tokens=30",
            ],
        },
    },
    "default": {"global": [], "tasks": {}},
    "quick": {"global": QUICK_OVERRIDES, "tasks": {}},
}


def preset_overrides(preset: str, user: list[str]) -> list[str]:
    """The preset's overrides for the tasks that ``user``'s config selects, then ``user``'s."""
    spec = PRESETS[preset]
    tasks = compose([*spec["global"], *user]).tasks
    per_task = [f"tasks.{name}.{o}" for name in tasks for o in spec["tasks"].get(name, [])]
    return [*spec["global"], *per_task, *user]


class BudgetClock:
    """A trial hook (``nas.hooks.TrialHook`` protocol): when each trial ends, on which clock.

    ``cpu`` counts this process's CPU seconds: with one torch thread that is the wall time of an
    idle machine, and it barely moves when other processes compete for the cores (wall seconds
    do). When a trial ends past the budget the hook stops the study (``study.stop``: no new
    trial starts); like Optuna's ``timeout``, a trial is never cut short, and trials that end
    past the budget do not count.
    """

    def __init__(self, clock: str, budget: float):
        self.clock, self.budget = clock, budget
        self.ends: dict[int, float] = {}
        self.start = self._read()

    def _read(self) -> float:
        return time.process_time() if self.clock == "cpu" else time.perf_counter()

    def now(self) -> float:
        """Seconds on this clock since the search started."""
        return self._read() - self.start

    def on_search_start(self, study, cfg) -> None:
        pass

    def on_trial_start(self, trial, arch) -> None:
        pass

    def logger_for(self, trial, stage):
        return None

    def on_stage(self, trial, stage, seconds, info) -> None:
        pass

    def on_trial_end(self, trial, state, result, reason) -> None:
        self.ends[trial.number] = self.now()
        if self.ends[trial.number] >= self.budget:
            trial.study.stop()

    def on_search_end(self, study) -> None:
        pass


@contextlib.contextmanager
def with_hook(hook):
    """Add ``hook`` to the hooks ``nas.engine.build_hooks`` gives while the block runs."""
    import nas.engine

    original = nas.engine.build_hooks
    nas.engine.build_hooks = lambda cfg: [*original(cfg), hook]
    try:
        yield hook
    finally:
        nas.engine.build_hooks = original


def best_curve(
    study: optuna.Study, ends: dict[int, float], budget: float
) -> list[tuple[float, float]]:
    """``[(seconds, best adaptability so far)]`` at each completed trial within the budget."""
    points = []
    best = -math.inf
    done = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.number in ends and t.values
    ]
    for t in sorted(done, key=lambda t: ends[t.number]):
        at = ends[t.number]
        if at > budget or math.isnan(t.values[0]):
            continue
        if t.values[0] > best:
            best = t.values[0]
            points.append((at, best))
    return points


def time_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """Seconds until the curve first reaches ``target`` (``None``: not within the budget)."""
    for at, best in curve:
        if best >= target - 1e-12:
            return at
    return None


def best_at(curve: list[tuple[float, float]], at: float) -> float | None:
    """Best adaptability found by ``at`` seconds (``None`` before the first completed trial)."""
    value = None
    for t, best in curve:
        if t <= at:
            value = best
    return value


def run_one(overrides: list[str], budget: float, clock: str) -> dict[str, Any]:
    """One search of ``budget`` seconds on ``clock``; its curve and trial counts."""
    from nas.engine import run_search

    cfg = compose(overrides + ["timeout=null", "n_trials=null"])
    t0 = time.perf_counter()
    with with_hook(BudgetClock(clock, budget)) as timer, contextlib.redirect_stdout(io.StringIO()):
        result = run_search(cfg)  # (its leaderboard goes to the void)
    states = [t.state for t in result.study.trials]
    within = [n for n, at in timer.ends.items() if at <= budget]
    per_trial = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.values[0] if t.values else None,
            "end_s": timer.ends.get(t.number),
            "task_scores": t.user_attrs.get("task_scores", {}),
            "describe": t.user_attrs.get("describe"),
            "reason": t.user_attrs.get("fail_reason"),
        }
        for t in result.study.trials
    ]
    return {
        "curve": best_curve(result.study, timer.ends, budget),
        "per_trial": per_trial,
        "trials": len(states),
        "trials_within_budget": len(within),
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "seconds_on_clock": timer.now(),
        "wall_s": time.perf_counter() - t0,
    }


def run(args) -> dict[str, Any]:
    """Both strategies for every seed; returns the JSON payload."""
    threads = set_threads(args.threads)
    warn_if_loaded()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("adaptnas").setLevel(logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    preset = "quick" if args.quick else args.preset
    runs: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        base = [
            f"paths.root={tmp}",
            "storage=memory",
            "plots=false",
            "export.keep_top_k=0",
            f"threads={threads}",
            *preset_overrides(preset, args.overrides),
        ]
        # Build the suite (and train the tokenizer) before any clock starts: a worker pays it once.
        from nas.engine import load_suite

        load_suite(compose(base))
        for i, seed in enumerate(range(args.seed, args.seed + args.seeds)):
            order = list(STRATEGIES) if i % 2 == 0 else list(reversed(STRATEGIES))
            for name in order:
                extra = args.tpe_overrides if name == "tpe" else []
                overrides = [
                    *base,
                    *STRATEGIES[name],
                    *extra,
                    f"seed={seed}",
                    f"study_name={name}-{seed}",
                ]
                runs[name][seed] = run_one(overrides, args.budget, args.clock)
                r = runs[name][seed]
                final = r["curve"][-1][1] if r["curve"] else float("nan")
                print(
                    f"seed {seed} {name:>6}: {r['trials_within_budget']} trials in budget "
                    f"({r['complete']} complete, {r['pruned']} pruned), best {final:.4f}",
                    flush=True,
                )
    per_seed = []
    for seed in runs["random"]:
        rnd, tpe = runs["random"][seed]["curve"], runs["tpe"][seed]["curve"]
        target = rnd[-1][1] if rnd else None
        t_rnd = time_to_reach(rnd, target) if target is not None else None
        t_tpe = time_to_reach(tpe, target) if target is not None else None
        per_seed.append(
            {
                "seed": seed,
                "random_final_best": target,
                "tpe_final_best": tpe[-1][1] if tpe else None,
                "random_time_to_target_s": t_rnd,
                "tpe_time_to_target_s": t_tpe,
                "tpe_over_random_time": (t_tpe / t_rnd) if t_tpe is not None and t_rnd else None,
            }
        )
    scored = [s for s in per_seed if s["random_final_best"] is not None]
    # A seed where TPE never reached the target counts as budget / random's time: a lower bound.
    bounded = [
        s["tpe_over_random_time"]
        if s["tpe_over_random_time"] is not None
        else args.budget / max(s["random_time_to_target_s"], 1e-9)
        for s in scored
    ]
    tpe_better = sum(
        s["tpe_final_best"] is not None and s["tpe_final_best"] >= s["random_final_best"]
        for s in scored
    )
    fractions = (0.25, 0.5, 0.75, 1.0)
    over_time = {
        name: {
            f"{int(100 * f)}%": median(
                v
                for v in (best_at(runs[name][s]["curve"], f * args.budget) for s in runs[name])
                if v is not None
            )
            for f in fractions
        }
        for name in STRATEGIES
    }
    payload = {
        "benchmark": "search_efficiency",
        "machine": {**machine(), "torch_threads": threads},
        "settings": {
            "budget_s": args.budget,
            "clock": args.clock,
            "seeds": list(range(args.seed, args.seed + args.seeds)),
            "preset": preset,
            "overrides": preset_overrides(preset, args.overrides),
            "strategies": STRATEGIES,
            "tpe_overrides": list(args.tpe_overrides),
            "quick": bool(args.quick),
        },
        "runs": {name: {str(s): r for s, r in by_seed.items()} for name, by_seed in runs.items()},
        "per_seed": per_seed,
        "best_over_time_median": over_time,
        "median_tpe_over_random_time": median(bounded),
        "tpe_reached_target": sum(s["tpe_time_to_target_s"] is not None for s in scored),
        "tpe_final_at_least_random": tpe_better,
        "seeds_scored": len(scored),
    }
    _print(payload)
    return payload


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _print(p: dict[str, Any]) -> None:
    budget = p["settings"]["budget_s"]
    print(f"\nbest adaptability over time (median over seeds, budget {budget:g}s)")
    over = p["best_over_time_median"]
    cols = list(next(iter(over.values())))
    print_table(["strategy", *cols], [[n, *(_fmt(v[c]) for c in cols)] for n, v in over.items()])
    print("\ntime to reach random search's final best")
    rows = [
        [
            s["seed"],
            _fmt(s["random_final_best"]),
            _fmt(s["random_time_to_target_s"], ".1f"),
            _fmt(s["tpe_time_to_target_s"], ".1f"),
            _fmt(s["tpe_over_random_time"], ".2f"),
        ]
        for s in p["per_seed"]
    ]
    print_table(["seed", "random best", "random s", "tpe s", "tpe / random"], rows)
    print(
        f"\nmedian TPE/random time {_fmt(p['median_tpe_over_random_time'], '.2f')} "
        f"(target <= 0.33; a seed where TPE never got there counts as budget / random's time); "
        f"TPE reached random's final best in {p['tpe_reached_target']}/{p['seeds_scored']} "
        f"seeds and ended at least as high in {p['tpe_final_at_least_random']}/{p['seeds_scored']}"
    )


def build_parser():
    """The command-line options."""
    p = base_parser("search_efficiency", __doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=60.0, help="seconds per search")
    p.add_argument(
        "--clock",
        default="cpu",
        choices=["cpu", "wall"],
        help="what the budget counts: this process's CPU seconds (default; steady under load, "
        "the wall time of an idle machine with --threads 1) or wall seconds",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument(
        "--preset",
        default="bench",
        choices=[k for k in PRESETS if k != "quick"],
        help="budgets: bench (trials of seconds) or default (conf/ as is)",
    )
    p.add_argument(
        "--tpe-override",
        dest="tpe_overrides",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="a Hydra override for the TPE search only (repeatable; e.g. pruner.min_resource=2)",
    )
    p.add_argument("overrides", nargs="*", help="more Hydra overrides of the search config")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    args = build_parser().parse_args(argv)
    if args.quick and args.budget == build_parser().get_default("budget"):
        args.budget = 6.0
    if args.threads is None and args.clock == "cpu":
        args.threads = 1  # CPU seconds of one thread: the wall time of an idle machine
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
