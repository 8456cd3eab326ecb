"""The default search over several search seeds: does the winner beat the hand-written designs?

Each seed runs ``python nas/search.py seed=<seed>`` (the ``make search`` budget: 12 trials, the
reference designs queued first, finalists over seeds) in its own folder under ``--root``, one
after another, or ``--jobs 2`` at a time (each with ``threads=1``); a seed whose study already
finished is only read. Then, per seed, the study's verdict (``adaptnas:verdict``: the winner
against the best reference on test, a paired t interval over the finalist seeds) and its
leaderboard; and in all: in how many seeds the winner's test adaptability is at least the best
reference's (a tie within the interval counts), and in how many the winner is a searched
architecture whose lead has an interval above 0.

    python benchmarks/default_searches.py --seeds 0-4 --root outputs/default_searches \\
        --json docs/benchmark_results/default_searches.json
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, machine, write_json  # noqa: E402

STUDY = "suite-small"  # the default search's study name (task=suite, search_space=small)


def seeds_of(text: str) -> list[int]:
    """``0-4`` -> ``[0, 1, 2, 3, 4]``; ``0,2`` -> ``[0, 2]``."""
    if "-" in text:
        first, last = text.split("-", 1)
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def run_seed(seed: int, root: Path, threads: int, extra: list[str]) -> dict:
    """Run (or resume) the default search of ``seed`` in ``root/seed<seed>``: its log, its time."""
    folder = root / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    args = [f"paths.root={folder}", f"seed={seed}", f"threads={threads}", *extra]
    t0 = time.perf_counter()
    with open(folder / "search.log", "a") as log:
        code = subprocess.call(
            [sys.executable, str(REPO / "nas" / "search.py"), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    return {"seed": seed, "exit": code, "wall_s": round(time.perf_counter() - t0), "args": args}


def read_seed(seed: int, root: Path) -> dict:
    """The verdict and leaderboard a finished default search left in its study folder."""
    import optuna

    from nas.study.references import VERDICT_ATTR

    folder = root / f"seed{seed}" / "studies" / STUDY
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{folder / 'study.db'}")
    with open(folder / "leaderboard.csv") as f:
        board = list(csv.DictReader(f))
    return {
        "seed": seed,
        "verdict": study.user_attrs.get(VERDICT_ATTR),
        "leaderboard": board,
    }


def summarise(per_seed: list[dict]) -> dict:
    """Counts over the seeds: winner at least the best reference, searched winner ahead."""
    verdicts = [s["verdict"] for s in per_seed if s.get("verdict")]
    at_least = 0
    searched_ahead = 0
    for v in verdicts:
        if v["winner_is_reference"]:
            at_least += 1  # the winner is the best reference itself
            continue
        if v["diff_high"] >= 0:  # ahead, or a tie within the interval
            at_least += 1
        if v["diff_low"] > 0:
            searched_ahead += 1
    return {
        "seeds": len(per_seed),
        "with_verdict": len(verdicts),
        "winner_at_least_best_reference": at_least,
        "searched_winner_ahead_interval_above_0": searched_ahead,
        "searched_winners": sum(not v["winner_is_reference"] for v in verdicts),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--root", type=Path, default=REPO / "outputs" / "default_searches")
    p.add_argument("--jobs", type=int, default=1, help="searches at a time (threads=1 each if >1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per search")
    p.add_argument("--read-only", action="store_true", help="only read finished searches")
    p.add_argument("--json", type=Path)
    p.add_argument("overrides", nargs="*", help="more Hydra overrides of every search")
    args = p.parse_args(argv)
    seeds = seeds_of(args.seeds)
    threads = args.threads or (1 if args.jobs > 1 else 2)
    runs = []
    if not args.read_only:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(lambda s: run_seed(s, args.root, threads, args.overrides), seeds))
    per_seed = []
    for seed in seeds:
        try:
            got = read_seed(seed, args.root)
        except Exception as err:  # a search that failed or never ran: say so, keep the others
            got = {"seed": seed, "error": str(err)}
        got.update(next((r for r in runs if r["seed"] == seed), {}))
        per_seed.append(got)
        v = got.get("verdict")
        print(f"seed {seed}: {v['text'] if v else got.get('error', 'no verdict')}")
    summary = summarise(per_seed)
    print(
        f"winner at least the best reference in {summary['winner_at_least_best_reference']} of "
        f"{summary['with_verdict']}; a searched winner ahead with its interval above 0 in "
        f"{summary['searched_winner_ahead_interval_above_0']}"
    )
    doc = {
        "command": "python benchmarks/default_searches.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "summary": summary,
        "per_seed": per_seed,
    }
    if args.json:
        write_json(args.json, doc)
    return doc


if __name__ == "__main__":
    main()
