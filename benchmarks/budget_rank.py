"""Does the search budget rank architectures as a larger budget does? Kendall tau over many.

The default search config (Hydra compose of ``conf/search.yaml``: the ``small`` space, the default
suite, the default budgets) is composed once; then:

1. ``--archs`` distinct architectures are drawn uniformly from the default space (Optuna's
   ``RandomSampler`` seeded by ``--draw-seed``, through ``SearchSpace.sample`` exactly as a trial
   samples; every family of the space can be drawn, encoder-decoders included);
2. each runs the plain staged trial (``nas.trial.run.run_trial``: own pretraining, adaptation per
   task) at the **default budget** and at ``--scale`` times it (``nas.validity.study.scale_budget``:
   pretraining tokens and adaptation steps multiplied, data and learning rates unchanged), with
   model seed ``--seed``; with ``--seeds 2`` a second default-budget run per architecture
   (model seed and few-shot draw ``--seed + 100``) gives the seed-to-seed agreement: the ceiling
   that noise puts on any rank agreement at this budget;
3. reported: Kendall tau and Spearman between the default-budget and the scaled adaptability with
   bootstrap 95% intervals (``nas.validity.statistics.rank_agreement``), the same between the two
   default-budget seeds and between their mean and the scaled score, the families drawn, and the
   CPU seconds of every run.

``--lr-choice`` sets the learning rates of the default-budget runs, to compare the ways of choosing
them on cost and on rank agreement with the same scaled runs (which always adapt at the config's
rates, so every variant is held against one ranking): ``fixed`` (the config's), ``candidate``
(every run chooses on ``--lr-grid`` for every task, as ``finetune.lr_grid`` does) and ``family``
(each family's reference design chooses once and the family's candidates adapt at its rates, as
``finetune.lr_choice=family`` does; the references' runs are booked in the cost per candidate).

``--scale-what pretrain|adapt`` scales only the pretraining tokens or only the adaptation steps,
to see which one reorders the space; ``--base-scale F --base-what adapt|pretrain|both`` makes
the ranking side itself F times the config's budget (a candidate for a new default budget), held
against the same ``--scale`` runs of the config's own budget, which stay cached and shared.

Every finished run is cached in ``--cache-dir`` (keyed by the architecture, budget, seed and the
settings that shape the run), so a killed benchmark resumes, and two processes can share the work:
``--shard 0/2`` and ``--shard 1/2`` run disjoint architectures into the same cache; a run without
``--shard`` then finds everything cached and writes the summary. Runs go in passes (every
architecture's default run, then its scaled run, then its second seed), so a partial cache still
gives a ranking over every architecture.

    python benchmarks/budget_rank.py --threads 1 --archs 24 --seeds 2          # the default suite
    python benchmarks/budget_rank.py --quick                                   # tiny: a smoke test
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import supernet_rank as sr  # noqa: E402
from benchmarks.common import (  # noqa: E402
    DEFAULT_OUT,
    base_parser,
    draw_args,
    fmt_ci,
    machine,
    print_table,
    quiet_logs,
    run_and_write,
    set_threads,
    warn_if_loaded,
)
from benchmarks.overhead import QUICK_OVERRIDES as TINY_RUN  # noqa: E402
from benchmarks.overhead import compose  # noqa: E402

TARGET_TAU = 0.6  # issue: Kendall tau >= 0.6 over >= 20 architectures ...
TARGET_LOW = 0.4  # ... with the bootstrap interval's lower end >= 0.4
SEED_STRIDE = 100  # the second seed: seed + 100 (never another run's seed)
DEFAULT_CACHE = DEFAULT_OUT.parent / "budget_rank_cache"
# --quick: overhead.py's tiny run, with few enough examples that each task can hold some out to
# choose a rate on (--lr-choice candidate, family).
QUICK_OVERRIDES = [
    *TINY_RUN,
    "finetune.examples=48",
    "tasks.sentiment.examples=48",
    "tasks.qa.examples=48",
    "finetune.lr_choice_examples=24",
]


# ---- pure parts -------------------------------------------------------------------------------
def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``; ``None`` -> ``(0, 1)`` (every architecture).

    Raises:
        ValueError: not ``i/n`` with ``0 <= i < n``.
    """
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/2") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: needs 0 <= i < n")
    return i, n


def plan(n_archs: int, seeds: int, shard: tuple[int, int]) -> list[tuple[int, str, int]]:
    """The runs of this process, in passes: ``(arch index, "default" | "scaled", seed slot)``.

    Every architecture's default run first, then its scaled run, then its further seeds: a
    benchmark stopped early still ranks every architecture it started.
    """
    i, n = shard
    mine = [a for a in range(n_archs) if a % n == i]
    runs = [(a, "default", 0) for a in mine] + [(a, "scaled", 0) for a in mine]
    for s in range(1, seeds):
        runs += [(a, "default", s) for a in mine]
    return runs


def complete(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """The rows with a number under every one of ``keys``."""
    return [r for r in rows if all(r.get(k) is not None for k in keys)]


def agreement(rows: list[dict[str, Any]], a: str, b: str, rank_agreement) -> dict[str, Any]:
    """``rank_agreement`` between columns ``a`` and ``b`` over the rows that have both."""
    both = complete(rows, a, b)
    out = rank_agreement([r[a] for r in both], [r[b] for r in both])
    return {**out, "labels": [r["label"] for r in both]}


def meets(rank: dict[str, Any], n_min: int = 20) -> bool:
    """The issue's bar: n >= 20, tau >= 0.6, the interval's lower end >= 0.4."""
    tau, ci = rank.get("kendall_tau"), rank.get("kendall_tau_ci")
    return bool(
        rank.get("n", 0) >= n_min
        and tau is not None
        and tau >= TARGET_TAU
        and ci
        and ci[0] >= TARGET_LOW
    )


# ---- running ----------------------------------------------------------------------------------
def draw_archs(space, suite, n: int, draw_seed: int):
    """``n`` distinct architectures of ``space`` drawn as a random-sampler trial draws them."""
    import optuna

    from lightning_modules.config import ArchitectureError, TransformerConfig
    from nas.trial.run import data_fields

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=draw_seed))
    fields = data_fields(suite)

    def draw():
        while True:
            trial = study.ask()
            try:
                return TransformerConfig.from_dict(space.sample(trial, **fields))
            except ArchitectureError:  # a draw the space allows but no model can be (skipped)
                continue

    return sr.draw_distinct(draw, n)


def setup(cfg):
    """The run config (plain), the default space restricted to the suite's tasks, the suite."""
    from nas.config.families import restrict_to_tasks
    from nas.config.nodes import plain
    from nas.engine.run import load_suite
    from nas.trial.resources import prepare_process
    from search_spaces import load_space

    prepare_process()
    run = plain(cfg)
    space = restrict_to_tasks(load_space(str(cfg.search_space)), run["tasks"])
    return run, space, load_suite(cfg)


def with_grid(run_cfg: dict[str, Any], grid: list[float]) -> dict[str, Any]:
    """The run config whose every task chooses its rate on ``grid`` (``finetune.lr_grid``).

    Every task's own ``lr`` is cleared: a task that keeps one does not choose.
    """
    out = copy.deepcopy(run_cfg)
    out["finetune"]["lr_grid"] = [float(x) for x in grid]
    for block in out["tasks"].values():
        block["lr"] = None
    return out


def calibrators(space, suite, archs) -> dict[str, tuple[str, Any]]:
    """Per family drawn, the design that chooses its rates: ``{family: (name, arch)}``.

    The family's first reference design of the space (``nas.study.references.build``: the
    designs a search queues first, in their order), else the family's first drawn architecture
    (``A<i>``): what ``finetune.lr_choice=family`` does in a study.
    """
    from lightning_modules.config import TransformerConfig
    from nas.study import references
    from nas.trial.run import data_fields

    found: dict[str, tuple[str, Any]] = {}
    for r in references.build(space, data_fields(suite))[0]:
        arch = TransformerConfig.from_dict(r.arch)
        found.setdefault(arch.family, (r.title, arch))
    for i, arch in enumerate(archs):
        found.setdefault(arch.family, (f"A{i}", arch))
    return {f: found[f] for f in sorted({a.family for a in archs})}


@dataclass(frozen=True)
class Scale:
    """The larger budget: ``factor`` times the default, of what ``what`` names.

    ``both``: pretraining tokens and every task's adaptation steps (``scale_budget``, the
    validity study's x4); ``pretrain``: the tokens alone; ``adapt``: the steps alone.
    """

    factor: float
    what: str = "both"

    def apply(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """``cfg`` at this budget (a new config)."""
        from nas.validity.study import scale_budget

        out = scale_budget(cfg, self.factor)
        if self.what == "pretrain":  # the adaptation budget as it was
            out["finetune"]["steps"] = cfg["finetune"]["steps"]
            for name, block in out["tasks"].items():
                block["steps"] = cfg["tasks"][name]["steps"]
        elif self.what == "adapt":  # the pretraining budget as it was
            out["pretrain"]["tokens"] = cfg["pretrain"]["tokens"]
        return out

    def label(self) -> str:
        """``x4``, ``x4 pretrain`` or ``x4 adapt``; ``default`` for x1."""
        if self.factor == 1:
            return "default"
        return f"x{self.factor:g}" + ("" if self.what == "both" else f" {self.what}")


def run_of(
    arch, run_cfg, seed: int, budget: str, scale: float | Scale
) -> tuple[dict[str, Any], str]:
    """The run config of ``arch`` at one budget and seed, and its cache key."""
    from nas.validity.study import drawn

    cfg = drawn(run_cfg, seed) if seed != int(run_cfg["seed"]) else run_cfg
    if budget == "scaled":
        cfg = (scale if isinstance(scale, Scale) else Scale(float(scale))).apply(cfg)
    shape = {k: cfg[k] for k in ("pretrain", "finetune", "tasks", "data", "objective", "trainer")}
    # finetune.lr_choice acts in a study's objective only, never in run_trial (this benchmark
    # applies --lr-choice itself): out of the key, so runs cached before it existed still count.
    shape["finetune"] = {k: v for k, v in shape["finetune"].items() if k != "lr_choice"}
    return cfg, sr.key_of("budget_rank", arch.to_dict(), seed, shape)


def one_run(cache, arch, suite, run_cfg, seed: int, budget: str, scale) -> dict[str, Any]:
    """The staged trial of ``arch`` at one budget and seed, from ``cache`` when it ran before."""
    cfg, key = run_of(arch, run_cfg, seed, budget, scale)
    rec = cache.get(key)
    if rec is None:
        try:
            rec = sr._trial(arch, suite, cfg, seed)
        except Exception as err:  # one run; the summary says n, the rest goes on
            rec = {"adaptability": None, "failed": f"{type(err).__name__}: {err}"}
        cache.put(key, rec)
    return rec


def calibrate(
    cache, space, suite, archs, grid_cfg, seed, scale, shard, cached_only=False
) -> dict[str, Any]:
    """``--lr-choice family``: each family's calibrator chooses its rates on the grid, once.

    Shard ``i/n`` runs the calibrations of families ``i``, ``i + n``, ...; then it waits for the
    others' (another shard's) in the cache. ``cached_only`` (``--summarise``): runs none, and
    a calibration missing from the cache is an error.

    Returns:
        ``{family: {"by", "arch", "drawn", "rates", "cpu_s"}}``.
    """
    found = calibrators(space, suite, archs)
    i, n = shard
    for j, (name, arch) in enumerate(found.values()):
        if j % n == i and not cached_only:
            rec = one_run(cache, arch, suite, grid_cfg, seed, "default", scale)
            print(f"calibration by {name}: {rec.get('lr')}  {arch.describe()}", flush=True)
    out = {}
    for family, (name, arch) in found.items():
        rec = one_run_cached(cache, arch, grid_cfg, seed, "default", scale)
        if rec is None and cached_only:
            raise SystemExit(
                f"benchmarks/budget_rank.py: error: --summarise: the {family} calibration by "
                f"{name} is not in the cache; run without --summarise"
            )
        while rec is None:  # another shard is choosing this family's rates
            time.sleep(15)
            rec = one_run_cached(cache, arch, grid_cfg, seed, "default", scale)
        if not rec.get("lr"):
            raise RuntimeError(f"the {family} calibration by {name} failed: {rec.get('failed')}")
        out[family] = {
            "by": name,
            "arch": arch.describe(),
            "drawn": name.startswith("A") and name[1:].isdigit(),
            "rates": rec["lr"],
            "cpu_s": rec.get("cpu_s"),
        }
    return out


def run(args) -> dict[str, Any]:
    """Draw, run this process's share, summarise what the cache holds; returns the payload."""

    from nas.config.errors import ConfigError
    from nas.study.lr_calibration import with_rates
    from nas.trial.stages import check_lr_choice
    from nas.validity.statistics import rank_agreement

    threads = set_threads(args.threads)
    warn_if_loaded()
    quiet_logs(args.verbose)
    cache = sr.Cache(args.cache_dir)
    overrides = [
        f"threads={threads}",
        f"seed={args.seed}",
        f"paths.root={cache.root}",
        *(QUICK_OVERRIDES if args.quick else []),
        *args.overrides,
    ]
    cfg = compose(overrides)
    run_cfg, space, suite = setup(cfg)
    archs = draw_archs(space, suite, args.archs, args.draw_seed)
    seeds = [args.seed + SEED_STRIDE * s for s in range(args.seeds)]
    shard = parse_shard(args.shard)
    scaling = Scale(args.scale, args.scale_what)
    # --base-scale: the budget that ranks (the "default" side) is itself scaled from the config;
    # the scaled side is always --scale times the config's own budget.
    base = Scale(args.base_scale, args.base_what)
    base_cfg = run_cfg if args.base_scale == 1 else base.apply(run_cfg)
    grid_cfg = base_cfg if args.lr_choice == "fixed" else with_grid(base_cfg, args.lr_grid)
    try:
        check_lr_choice(grid_cfg, suite)  # every task can hold out the examples it chooses on
    except ConfigError as err:
        raise SystemExit(
            f"benchmarks/budget_rank.py: error: --lr-choice {args.lr_choice}: {err}"
        ) from None
    calibration = (
        calibrate(cache, space, suite, archs, grid_cfg, seeds[0], scaling, shard, args.summarise)
        if args.lr_choice == "family"
        else {}
    )

    def cfg_of(a: int, budget: str) -> dict[str, Any]:
        """The config a run of ``archs[a]`` starts from: the scaled budget adapts at fixed rates
        from the config's own budget; the other side at ``--base-scale`` of it."""
        if budget == "scaled":
            return run_cfg
        if args.lr_choice == "fixed":
            return base_cfg
        if args.lr_choice == "candidate" or calibration[archs[a].family]["by"] == f"A{a}":
            return grid_cfg  # it chooses on the grid (the family's calibrator chose there)
        return with_rates(grid_cfg, calibration[archs[a].family]["rates"])

    todo = [] if args.summarise else plan(len(archs), args.seeds, shard)
    for k, (a, budget, slot) in enumerate(todo, start=1):
        t0 = time.perf_counter()
        rec = one_run(cache, archs[a], suite, cfg_of(a, budget), seeds[slot], budget, scaling)
        score = rec.get("adaptability")
        print(
            f"[{k}/{len(todo)}] A{a} {budget} seed {seeds[slot]}: "
            f"{'failed' if score is None else f'{score:.4f}'} "
            f"({time.perf_counter() - t0:.0f} s)  {archs[a].describe()}",
            flush=True,
        )
    if args.shard is not None:
        return {"shard": args.shard, "runs": len(todo)}

    floors = suite.floors("validation")
    rows = []
    for a, arch in enumerate(archs):
        own = cfg_of(a, "default")
        runs = {
            "default": one_run_cached(cache, arch, own, seeds[0], "default", scaling),
            "scaled": one_run_cached(cache, arch, run_cfg, seeds[0], "scaled", scaling),
            "seeds": [one_run_cached(cache, arch, own, s, "default", scaling) for s in seeds[1:]],
        }
        default = (runs["default"] or {}).get("adaptability")
        second = [(r or {}).get("adaptability") for r in runs["seeds"]]
        all_default = [x for x in [default, *second] if x is not None]
        rows.append(
            {
                "label": f"A{a}",
                "arch": arch.describe(),
                "family": arch.family,
                "config": arch.to_dict(),
                "n_params": arch.num_params(),
                "default": default,
                "scaled": (runs["scaled"] or {}).get("adaptability"),
                "second_seed": second[0] if second else None,
                "default_mean": statistics.fmean(all_default)
                if len(all_default) == args.seeds
                else None,
                # The same runs' task scores combined as skill above each task's floor
                # (objective.adaptability=skill), whatever the config combines them as.
                "default_skill": skill_of(runs["default"], floors),
                "scaled_skill": skill_of(runs["scaled"], floors),
                "runs": runs,
            }
        )
    return summarise(rows, args, cfg, overrides, rank_agreement, calibration, floors)


def one_run_cached(cache, arch, run_cfg, seed: int, budget: str, scale) -> dict | None:
    """The cached record of one run, or ``None`` when it has not run (never runs it)."""
    return cache.get(run_of(arch, run_cfg, seed, budget, scale)[1])


def skill_of(record: dict | None, floors: dict[str, float]) -> float | None:
    """A run's validation task scores as mean skill above their floors (``None``: no scores)."""
    from nas.trial.run import adaptability

    scores = (record or {}).get("tasks") or {}
    if not scores or record.get("adaptability") is None:
        return None
    return adaptability(scores, {}, "skill", floors)


def summarise(
    rows, args, cfg, overrides, rank_agreement, calibration=None, floors=None
) -> dict[str, Any]:
    """The JSON payload: settings, every row, the rank agreements, the costs."""
    from nas.config.nodes import plain

    run_cfg = plain(cfg)
    families: dict[str, int] = {}
    for r in rows:
        families[r["family"]] = families.get(r["family"], 0) + 1
    rank = agreement(rows, "default", "scaled", rank_agreement)
    cpu = {
        budget: [r["runs"][budget]["cpu_s"] for r in rows if (r["runs"][budget] or {}).get("cpu_s")]
        for budget in ("default", "scaled")
    }
    # What ranking n candidates costs at the default budget: their runs, plus the calibrations
    # run on designs outside the drawn set (the references), spread over the n.
    extra = sum(c["cpu_s"] or 0.0 for c in (calibration or {}).values() if not c["drawn"])
    per_candidate = (sum(cpu["default"]) + extra) / len(cpu["default"]) if cpu["default"] else None
    payload = {
        "benchmark": "budget_rank",
        "command": "python benchmarks/budget_rank.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "settings": {
            "overrides": overrides,
            "archs": args.archs,
            "draw_seed": args.draw_seed,
            "seeds": [args.seed + SEED_STRIDE * s for s in range(args.seeds)],
            "scale": args.scale,
            "scale_what": args.scale_what,
            "scaled_label": Scale(args.scale, args.scale_what).label(),
            "base_scale": args.base_scale,
            "base_what": args.base_what,
            "base_label": Scale(args.base_scale, args.base_what).label(),
            "lr_choice": args.lr_choice,
            "lr_grid": None if args.lr_choice == "fixed" else list(args.lr_grid),
            "search_space": str(cfg.search_space),
            "tasks": list(run_cfg["tasks"]),
            "adaptability": run_cfg["objective"]["adaptability"],
            "pretrain_tokens": int(run_cfg["pretrain"]["tokens"]),
            "finetune_steps": int(run_cfg["finetune"]["steps"]),
            "clock": "process CPU seconds",
        },
        "families": families,
        "archs": rows,
        "rank": rank,
        "rank_seed_to_seed": agreement(rows, "default", "second_seed", rank_agreement),
        "rank_mean_vs_scaled": agreement(rows, "default_mean", "scaled", rank_agreement),
        # What the larger budget rewards: its gain (x{scale} minus default) against size and depth.
        "scaled_gain_vs": {
            "n_params": _gain_agreement(rows, lambda r: r["n_params"], rank_agreement),
            "layers": _gain_agreement(
                rows,
                lambda r: r["config"]["n_layer"] + (r["config"].get("n_dec_layer") or 0),
                rank_agreement,
            ),
        },
        "floors": floors or {},
        "rank_skill": agreement(rows, "default_skill", "scaled_skill", rank_agreement),
        # A run that raised (its record says why) against one not run yet (no record).
        "failed": [
            r["label"]
            for r in rows
            if any(x is not None and x.get("adaptability") is None for x in _records(r))
        ],
        "missing": [r["label"] for r in rows if any(x is None for x in _records(r))],
        "cpu_s": {k: statistics.fmean(v) if v else None for k, v in cpu.items()},
        "cpu_s_per_candidate": per_candidate,
        "calibration": calibration or {},
        "targets": {"tau": TARGET_TAU, "tau_ci_low": TARGET_LOW, "archs": 20, "met": meets(rank)},
    }
    _print(payload)
    return payload


def _gain_agreement(rows, feature, rank_agreement) -> dict[str, Any]:
    """Kendall tau and Spearman of ``feature(row)`` against the scaled budget's gain."""
    both = complete(rows, "default", "scaled")
    return rank_agreement([feature(r) for r in both], [r["scaled"] - r["default"] for r in both])


def _records(row: dict[str, Any]) -> list[dict | None]:
    """Every run record of one architecture's row (``None``: not in the cache)."""
    runs = row["runs"]
    return [runs["default"], runs["scaled"], *runs["seeds"]]


def _f(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _print(p: dict[str, Any]) -> None:
    s = p["settings"]
    print(
        f"\n{len(p['archs'])} architectures of '{s['search_space']}' ({p['families']}), "
        f"tasks {s['tasks']}, {s['base_label']} budget against {s['scaled_label']}"
    )
    print_table(
        ["arch", "family", "params", s["base_label"], "2nd seed", s["scaled_label"], "description"],
        [
            [
                r["label"],
                r["family"],
                r["n_params"],
                _f(r["default"]),
                _f(r["second_seed"]),
                _f(r["scaled"]),
                r["arch"],
            ]
            for r in p["archs"]
        ],
    )
    print()
    rows = []
    for name, key in (
        (f"{s['base_label']} vs {s['scaled_label']}", "rank"),
        (f"{s['base_label']} seed vs seed", "rank_seed_to_seed"),
        (f"{s['base_label']} seed mean vs {s['scaled_label']}", "rank_mean_vs_scaled"),
        (f"as skill: {s['base_label']} vs {s['scaled_label']}", "rank_skill"),
    ):
        r = p[key]
        rows.append(
            [
                name,
                r["n"],
                _f(r.get("kendall_tau")),
                fmt_ci(r.get("kendall_tau_ci")),
                _f(r.get("spearman")),
                fmt_ci(r.get("spearman_ci")),
            ]
        )
    print_table(["agreement", "n", "Kendall tau", "95% CI", "Spearman", "95% CI"], rows)
    g = {
        k: (_f(v.get("kendall_tau")), fmt_ci(v.get("kendall_tau_ci")))
        for k, v in p["scaled_gain_vs"].items()
    }
    print(
        f"\nthe {s['scaled_label']} gain against parameters: tau {' '.join(g['n_params'])}; "
        f"against layers: tau {' '.join(g['layers'])}"
    )
    print(
        f"\ncost (CPU s per run): {s['base_label']} {_f(p['cpu_s']['default'], '.0f')}, "
        f"{s['scaled_label']} {_f(p['cpu_s']['scaled'], '.0f')}; per candidate at the "
        f"{s['base_label']} budget ({s['lr_choice']} rates) {_f(p['cpu_s_per_candidate'], '.0f')}; "
        f"failed runs: {p['failed'] or 'none'}; not run yet: {p['missing'] or 'none'}"
    )
    for family, c in p["calibration"].items():
        print(f"  {family} rates chosen by {c['by']} ({c['arch']}): {c['rates']}")
    t = p["targets"]
    print(
        f"target (tau >= {t['tau']}, interval's lower end >= {t['tau_ci_low']}, "
        f">= {t['archs']} architectures): {'met' if t['met'] else 'not met'}"
    )


def build_parser():
    """The command-line options."""
    p = base_parser("budget_rank", __doc__.split("\n\n")[0])
    draw_args(p, 24, "model seed (cfg.seed)")
    p.add_argument("--seeds", type=int, default=1, help="default-budget seeds per architecture")
    p.add_argument("--scale", type=float, default=4.0, help="the larger budget's multiplier")
    p.add_argument(
        "--scale-what",
        choices=("both", "pretrain", "adapt"),
        default="both",
        help="what --scale multiplies: pretraining tokens and adaptation steps (both, the "
        "validity study's rule), or only one of them",
    )
    p.add_argument(
        "--base-scale",
        type=float,
        default=1.0,
        help="the budget that ranks, as a multiple of the config's (default 1: the config's "
        "own); --scale stays a multiple of the config's",
    )
    p.add_argument(
        "--base-what",
        choices=("both", "pretrain", "adapt"),
        default="both",
        help="what --base-scale multiplies (as --scale-what)",
    )
    p.add_argument(
        "--lr-choice",
        choices=("fixed", "candidate", "family"),
        default="fixed",
        help="the default-budget runs' rates: fixed (the config's), candidate (each chooses on "
        "--lr-grid), family (each family's reference chooses once; finetune.lr_choice=family); "
        "the scaled runs always adapt at the config's rates",
    )
    p.add_argument(
        "--lr-grid",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[1e-3, 3e-3],
        help="the rates of --lr-choice candidate and family (default: 1e-3,3e-3)",
    )
    p.add_argument("--shard", default=None, help="i/n: run only architectures with index %% n == i")
    p.add_argument(
        "--summarise",
        action="store_true",
        help="run nothing: summarise the runs the cache holds (missing ones count as absent)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"finished runs (default: {DEFAULT_CACHE}_<default|quick>)",
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
    if args.scale <= 0:
        parser.error(f"--scale {args.scale}: must be above 0")
    if args.base_scale <= 0:
        parser.error(f"--base-scale {args.base_scale}: must be above 0")
    try:
        parse_shard(args.shard)
    except ValueError as err:
        parser.error(str(err))
    if args.quick and args.archs == parser.get_default("archs"):
        args.archs = 4
    if args.threads is None:
        args.threads = 1
    if args.cache_dir is None:
        args.cache_dir = Path(f"{DEFAULT_CACHE}_{'quick' if args.quick else 'default'}")
    if args.summarise and args.shard is not None:
        parser.error("--summarise summarises every shard's runs: leave --shard out")
    if args.shard is not None:
        payload = run(args)
        print(f"\nshard {args.shard}: {payload['runs']} runs done; without --shard: the summary")
        return payload
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
