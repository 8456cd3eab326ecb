"""Task headroom: how far above its floor each task lifts the reference designs, and at what recipe.

A task earns its place in the default suite when the hand-written designs score above its floor
(``Task.floor``: chance, majority class, copying the source) by several seed standard deviations
at the default budget. This pretrains each reference design of the default search (GPT-2-like,
Llama-like, T5-like, sized as a search sizes them) once per seed, then adapts it to every task
under each recipe (the default; other learning rates; more steps), and prints per (design, task,
recipe): the validation score's mean and sd over seeds, its skill above the floor and the lead
over the floor in seed sds. The "pretrained" gain is measured too (``--no-pretrain``).

    python benchmarks/task_headroom.py --seeds 3 --json docs/benchmark_results/task_headroom.json
    python benchmarks/task_headroom.py --quick
    python benchmarks/task_headroom.py --collect run1.json run2.json --pick sentiment:default \\
        --json docs/benchmark_results/task_headroom.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from benchmarks.common import machine, write_json  # noqa: E402
from lightning_modules.config import TransformerConfig  # noqa: E402
from nas.config.check import check_config  # noqa: E402
from nas.config.compose import CONF_DIR  # noqa: E402
from nas.config.families import restrict_to_tasks  # noqa: E402
from nas.engine.run import load_suite  # noqa: E402
from nas.study import references  # noqa: E402
from nas.trial import stages  # noqa: E402
from nas.trial.run import data_fields  # noqa: E402
from search_spaces import load_space  # noqa: E402


def parse_recipe(text: str) -> dict:
    """``lr=3e-3,steps=x2`` -> ``{"lr": 3e-3, "steps": "x2"}``; ``default`` -> ``{}``;
    ``grid=1e-3/3e-3``: adapt at each rate, keep the best on held-out training examples."""
    if text == "default":
        return {}
    out = {}
    for part in text.split(","):
        key, value = part.split("=", 1)
        if key == "grid":  # grid=1e-3/3e-3: finetune.lr_grid
            out[key] = [float(v) for v in value.split("/")]
        else:
            out[key] = value if value.startswith("x") else float(value)
    return out


def recipe_cfg(run: dict, task: str, recipe: dict) -> dict:
    """``run`` with ``task``'s learning rate, examples and steps set by ``recipe`` (steps ``xK``:
    K times the task's own)."""
    cfg = json.loads(json.dumps(run))
    budget = stages.adaptation_budget(cfg, task)
    if "lr" in recipe:
        cfg["tasks"][task]["lr"] = float(recipe["lr"])
    if "grid" in recipe:
        cfg["finetune"]["lr_grid"] = recipe["grid"]
    if "examples" in recipe:
        cfg["tasks"][task]["examples"] = int(recipe["examples"])
    if "steps" in recipe:
        cfg["tasks"][task]["steps"] = int(budget.steps * float(str(recipe["steps"])[1:]))
    return cfg


def collect(files: list[Path], picks: list[str]) -> dict:
    """One table of several runs: per picked ``task:recipe`` (as the runs spelt it), each
    design's pretrained validation score (mean, sd, lead over the floor in sds)."""
    found: dict[tuple[str, str], dict] = {}
    for f in files:
        for r in json.loads(f.read_text())["rows"]:
            if r["init"] == "pretrained":
                found.setdefault((r["task"], r["recipe"]), {})[r["design"]] = {
                    "mean": r["mean"],
                    "sd": r["sd"],
                    "lead_in_sd": r["lead_in_sd"],
                    "floor": r["floor"],
                    "n": len(r["scores"]),
                    "source": f.name,
                }
    rows = []
    for pick in picks:
        task, recipe = pick.split(":", 1)
        if (task, recipe) not in found:
            raise SystemExit(f"task_headroom: no run measured {task} at {recipe}")
        designs = found[(task, recipe)]
        floor = next(iter(designs.values()))["floor"]
        rows.append({"row": f"{task} ({recipe})", "task": task, "recipe": recipe,
                     "floor": floor, **designs})  # fmt: skip
    return {"sources": [f.name for f in files], "rows": rows}


def gains(files: list[Path], recipe: str = "default") -> dict:
    """Pretraining's worth per design, from runs made with ``--no-pretrain --test``.

    Per design and task: the test score pretrained minus not pretrained, paired by seed; and the
    same for adaptability (the mean over the run's tasks), each with a 95% t interval
    (``references.paired_interval``).
    """
    out = []
    for f in files:
        doc = json.loads(f.read_text())
        cells: dict[tuple[str, str, str], list[float]] = {}
        for r in doc["rows"]:
            if r["recipe"] == recipe:
                if "test_scores" not in r:
                    raise SystemExit(f"task_headroom: {f} has no test scores (run it with --test)")
                cells[(r["design"], r["task"], r["init"])] = r["test_scores"]
        for design in dict.fromkeys(d for d, _, _ in cells):
            tasks = [t for d, t, i in cells if d == design and i == "pretrained"]
            if not all((design, t, "scratch") in cells for t in tasks):
                raise SystemExit(f"task_headroom: {f} has no untrained runs (--no-pretrain)")
            diffs = {
                t: [p - u for p, u in zip(cells[(design, t, "pretrained")],
                                          cells[(design, t, "scratch")], strict=True)]
                for t in tasks
            }  # fmt: skip
            per_seed = [statistics.fmean(d) for d in zip(*diffs.values(), strict=True)]
            row = {"run": f.name, "design": design, "recipe": recipe,
                   "adaptability": references.paired_interval(per_seed)}  # fmt: skip
            row.update({t: references.paired_interval(d) for t, d in diffs.items()})
            out.append(row)
    return {"sources": [f.name for f in files], "rows": out}


def main(argv: list[str] | None = None, script: str = "benchmarks/task_headroom.py") -> dict:
    """Run the benchmark; ``script`` is the command its JSON records (a probe that wraps it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--collect",
        nargs="+",
        type=Path,
        help="only tabulate these runs' JSON files, for the --pick task:recipe pairs",
    )
    p.add_argument("--pick", nargs="+", default=[], help="task:recipe pairs for --collect")
    p.add_argument(
        "--gains",
        nargs="+",
        type=Path,
        help="only the pretraining gain on test, paired by seed, of these --no-pretrain runs",
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--designs", default="auto", help="comma list, or auto (those the space takes)")
    p.add_argument("--tasks", default=None, help="comma list (default: the suite's)")
    p.add_argument("--recipes", default="default", help="';'-separated: default;lr=3e-3;steps=x3")
    p.add_argument("--no-pretrain", action="store_true", help="also adapt from an untrained model")
    p.add_argument("--test", action="store_true", help="also score the test splits")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    p.add_argument("--override", action="append", default=[], help="a config override")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.gains:
        doc = gains(args.gains, args.recipes)
        for row in doc["rows"]:
            parts = [f"{k} {v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"
                     for k, v in row.items() if isinstance(v, dict)]  # fmt: skip
            print(f"{row['run']} {row['design']}: " + "; ".join(parts))
        if args.json:
            write_json(args.json, doc)
        return doc
    if args.collect:
        doc = collect(args.collect, args.pick)
        if args.json:
            write_json(args.json, doc)
        return doc

    overrides = [f"paths.root={tempfile.mkdtemp()}", *args.override]
    if args.quick:
        from nas.config.nodes import TINY

        overrides += [*TINY, "search_space=tiny"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=overrides)
    check_config(cfg)
    run = OmegaConf.to_container(cfg, resolve=True)
    tasks = args.tasks.split(",") if args.tasks else list(run["tasks"])
    if missing := [t for t in tasks if t not in run["tasks"]]:  # before building the suite
        p.error(
            f"--tasks {','.join(missing)}: not in the suite ({', '.join(run['tasks'])}); "
            "the five built-in tasks are --override task=suite_all"
        )
    suite = load_suite(cfg)
    space = restrict_to_tasks(load_space(str(cfg.search_space)), run["tasks"])
    designs = "auto" if args.designs == "auto" else args.designs.split(",")
    refs, skipped = references.build(space, data_fields(suite), designs)
    recipes = args.recipes.split(";")
    floors = {t: suite.tasks[t].floor("validation") for t in tasks}
    rows: dict[tuple, list[float]] = {}
    seconds: dict[tuple, float] = {}
    tests: dict[tuple, list[float]] = {}
    started = time.perf_counter()
    for ref in refs:
        arch = TransformerConfig.from_dict(ref.arch)
        for pre in [True, False] if args.no_pretrain else [True]:
            for seed in range(args.seeds):
                cfg_run = json.loads(json.dumps(run))
                if not pre:
                    cfg_run["pretrain"]["tokens"] = 0
                model, _, _ = stages.pretrain(arch, suite, cfg_run, seed)
                for i, task in enumerate(tasks, start=1):
                    for recipe in recipes:
                        t0 = time.perf_counter()
                        c = recipe_cfg(cfg_run, task, parse_recipe(recipe))
                        done = stages.adapt(model, suite.tasks[task], c, seed + i)
                        key = (ref.name, "pretrained" if pre else "scratch", task, recipe)
                        rows.setdefault(key, []).append(done.metrics["score"])
                        if args.test:
                            test = stages.score_test(done.module, c)["score"]
                            tests.setdefault(key, []).append(test)
                        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
                        print(f"{key} seed {seed}: {done.metrics['score']:.4f}", flush=True)
    out = []
    print(
        f"\n{'design':<7} {'init':<10} {'task':<14} {'recipe':<18} {'mean':>6} {'sd':>6} "
        f"{'floor':>6} {'skill':>6} {'lead/sd':>7} {'s/run':>6}"
    )
    for key, scores in rows.items():
        name, init, task, recipe = key
        mean = statistics.fmean(scores)
        sd = statistics.stdev(scores) if len(scores) > 1 else float("nan")
        floor = floors[task]
        lead = (mean - floor) / sd if sd and sd == sd and sd > 0 else float("inf")
        rec = {
            "design": name,
            "init": init,
            "task": task,
            "recipe": recipe,
            "scores": [round(s, 4) for s in scores],
            "mean": round(mean, 4),
            "sd": round(sd, 4),
            "floor": round(floor, 4),
            "skill": round((mean - floor) / (1 - floor), 4),
            "lead_in_sd": round(lead, 2),
            "seconds_per_run": round(seconds[key] / len(scores), 1),
        }
        if key in tests:
            rec["test_scores"] = [round(s, 4) for s in tests[key]]
            rec["test_floor"] = round(suite.tasks[task].floor("test"), 4)
        out.append(rec)
        print(
            f"{name:<7} {init:<10} {task:<14} {recipe:<18} {mean:6.3f} {sd:6.3f} {floor:6.3f} "
            f"{rec['skill']:6.3f} {lead:7.1f} {rec['seconds_per_run']:6.1f}"
        )
    doc = {
        "command": f"python {script} " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started),
        "references": {r.name: r.n_params for r in refs},
        "skipped": skipped,
        "rows": out,
    }
    if args.json:
        write_json(args.json, doc)
    return doc


if __name__ == "__main__":
    main()
