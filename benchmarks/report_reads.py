"""The end of a search on a large study: the reports reading the storage once, or each itself.

A search's end (and ``nas/report.py``) writes the leaderboard, the winner's YAML and the verdict,
prints the leaderboard and logs the winner. Each of these can read the study's trials itself
(``leaderboard_rows(study)``, ``write_results(study, ...)``...), or all read one
``nas.reporting.standing.Standing``. This builds a study of ``--trials`` finished trials, with the
user attributes a real trial stores (scores, metrics and learning curves of three tasks; the
references and the finalists' repeats), in a SQLite file or the storage ``--storage`` names (a
PostgreSQL URL: ``bash scripts/postgres.sh start`` and ``url``; the study is deleted after), and
times both ways side by side, in alternation, counting the storage's reads of every trial
(``get_all_trials``):

    python benchmarks/report_reads.py --trials 300 --repeats 5
    python benchmarks/report_reads.py --trials 300 --repeats 5 \\
        --storage "$(bash scripts/postgres.sh url)"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, machine, median, print_table, run_and_write  # noqa: E402

TASKS = ("qa", "ner", "translation")
REFERENCES = ("gpt2", "llama", "t5")
TOP_K, SEEDS = 3, 2


def _attrs(rng: random.Random, value: float) -> dict[str, Any]:
    """The user attributes of one finished trial, about the size a real one stores."""
    from nas.trial import record as rec

    scores = {t: round(value + rng.uniform(-0.1, 0.1), 4) for t in TASKS}
    return {
        rec.N_PARAMS: rng.randint(200_000, 2_000_000),
        rec.FLOPS_PER_TOKEN: rng.randint(400_000, 4_000_000),
        rec.PRETRAIN_VAL_LOSS: round(rng.uniform(1.5, 3.0), 4),
        rec.TASK_SCORES: scores,
        rec.TASK_METRICS: {t: {"score": s, "loss": rng.random()} for t, s in scores.items()},
        rec.CURVES: {t: [round(rng.random(), 4) for _ in range(4)] for t in TASKS},
        rec.ADAPTABILITY: value,
        rec.TIMINGS: {"pretrain": 60.0, **{t: 5.0 for t in TASKS}, "total": 75.0},
        rec.STEPS: {"pretrain": 192, **{t: 80 for t in TASKS}},
        rec.TRAINABLE_PARAMS: {t: 100_000 for t in TASKS},
        rec.TEST_METRICS: {t: {"score": s - 0.01} for t, s in scores.items()},
    }


def build_study(url: str, n_trials: int, seed: int = 0):
    """A finished study of ``n_trials`` (three references among them) and its finalists' repeats."""
    import optuna

    from nas.study import finalists as fin
    from nas.trial import record as rec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"report_reads-{time.time_ns()}"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    fin.FinalistSettings(top_k=TOP_K, seeds=SEEDS).record(study)
    rng = random.Random(seed)
    dist = {"x": optuna.distributions.IntDistribution(0, 10 * n_trials)}
    values = [rng.uniform(0.3, 0.6) for _ in range(n_trials)]
    for n, value in enumerate(values):
        attrs = _attrs(rng, value)
        if n < len(REFERENCES):
            attrs[rec.REFERENCE] = REFERENCES[n]
        study.add_trial(
            optuna.trial.create_trial(
                value=value, params={"x": n}, distributions=dist, user_attrs=attrs
            )
        )
    top = sorted(range(len(REFERENCES), n_trials), key=lambda n: -values[n])[:TOP_K]
    for of in [*top, *range(len(REFERENCES))]:
        for r in range(1, SEEDS + 1):
            value = values[of] + rng.uniform(-0.02, 0.02)
            attrs = {**_attrs(rng, value), fin.REPEAT_OF: of, fin.REPEAT: r}
            study.add_trial(
                optuna.trial.create_trial(
                    value=value, params={"x": of}, distributions=dist, user_attrs=attrs
                )
            )
    return study


def each_reads(study, folder: Path) -> None:
    """The reports as each reading the study itself."""
    from nas.reporting.leaderboard import (
        leaderboard_rows,
        print_leaderboard,
        print_screen_tier,
        write_results,
    )
    from nas.study import finalists as fin
    from nas.study import references

    references.record_verdict(study)
    write_results(study, folder)
    print_leaderboard(leaderboard_rows(study), title="t")
    print_screen_tier(study)
    fin.ranked(study)  # the winner's log line


def one_read(study, folder: Path) -> None:
    """The reports reading one ``Standing`` (what a search's end does)."""
    from nas.reporting.leaderboard import report_results
    from nas.reporting.standing import Standing
    from nas.study import references

    now = Standing.of(study)
    references.record_verdict(study, now.ranked)
    report_results(now, folder, "t")
    now.ranked  # noqa: B018 - the winner's log line


def _timed(fn, study, folder: Path) -> tuple[float, int]:
    storage = study._storage
    real, calls = storage.get_all_trials, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    storage.get_all_trials = counted
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            fn(study, folder)
            seconds = time.perf_counter() - t0
    finally:
        storage.get_all_trials = real
    return seconds, len(calls)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the study, time both ways ``--repeats`` times in alternation."""
    ways = {"each report reads the study": each_reads, "one Standing": one_read}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        url = args.storage or f"sqlite:///{folder / 'study.db'}"
        kind = url.split(":", 1)[0].split("+", 1)[0]
        study = build_study(url, args.trials)
        built = time.perf_counter() - t0
        try:
            n_stored = len(study.get_trials(deepcopy=False))
            seconds: dict[str, list[float]] = {name: [] for name in ways}
            reads: dict[str, int] = {}
            for _ in range(args.repeats):
                for name, fn in ways.items():
                    s, n = _timed(fn, study, folder)
                    seconds[name].append(s)
                    reads[name] = n
        finally:
            if args.storage:  # a server's study: not left behind
                import optuna

                optuna.delete_study(study_name=study.study_name, storage=url)
    rows = [[name, reads[name], f"{median(seconds[name]):.3f}"] for name in ways]
    print(f"{n_stored} trials in {kind} (built in {built:.1f} s), {args.repeats} repeats each")
    print_table(["reports", "reads of every trial", "median s"], rows)
    each, one = (median(seconds[name]) for name in ways)
    print(f"one Standing takes {one / each:.2f}x the time of each report reading the study")
    return {
        "benchmark": "report_reads",
        "command": args.command,
        "machine": machine(),
        "settings": {
            "trials": args.trials,
            "stored_trials": n_stored,
            "repeats": args.repeats,
            "storage": kind,
        },
        "reads": reads,
        "seconds": seconds,
        "median_s": {name: median(v) for name, v in seconds.items()},
        "ratio_one_to_each": one / each,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse, run, print and write the JSON."""
    p = base_parser("report_reads", __doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=300, help="search trials in the study")
    p.add_argument("--repeats", type=int, default=5, help="timings of each way, alternating")
    p.add_argument("--storage", default=None, help="storage URL (default: SQLite in a temp dir)")
    args = p.parse_args(argv)
    if args.quick:  # the smoke test's size
        args.trials, args.repeats = 12, 1
    if args.trials < len(REFERENCES) + TOP_K:
        p.error(f"--trials {args.trials}: at least {len(REFERENCES) + TOP_K}")
    from nas.study.storage import mask_url

    given = sys.argv[1:] if argv is None else argv
    # The command as run, with the password of a storage URL masked.
    shown = [mask_url(a) if a == args.storage else a for a in given]
    args.command = " ".join(["python", "benchmarks/report_reads.py", *shown])
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
