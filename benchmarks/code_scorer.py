"""How long the code task's sandbox takes to score a validation split's worth of programs.

Scores the built-in task's reference programs (all pass) and the same batch with some programs
replaced by infinite loops (each killed at its timeout), ``--jobs`` at a time, and reports the
wall time of each call of ``lightning_modules.code_scorer.run_programs`` (worker start, one fork
per program, the tests, the kill of every loop).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import base_parser, machine, median, print_table, run_and_write
from lightning_modules.code_scorer import run_programs
from lightning_modules.data.code import code_splits, program

LOOP = "while True:\n    pass\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the sandbox on ``--programs`` programs, clean and with ``--loops`` loops."""
    examples = code_splits(0, args.programs, 1, 1).train
    good = [program(e, e.target) for e in examples]
    cases = {
        f"{args.programs} reference programs": good,
        f"{args.programs - args.loops} reference + {args.loops} infinite loops": (
            good[: args.programs - args.loops] + [LOOP] * args.loops
        ),
    }
    out = {}
    for label, programs in cases.items():
        seconds, passed = [], 0
        for _ in range(args.repeats):
            start = time.monotonic()
            outcomes = run_programs(programs, timeout=args.timeout, jobs=args.jobs)
            seconds.append(time.monotonic() - start)
            passed = sum(o.passed for o in outcomes)
        out[label] = {"seconds": [round(s, 3) for s in seconds], "median_s": median(seconds)}
        out[label]["passed"] = passed
    return {
        "benchmark": "code_scorer",
        "machine": machine(),
        "settings": {k: getattr(args, k) for k in ("programs", "loops", "timeout", "jobs")},
        "runs": out,
    }


def build_parser():
    """The command-line options."""
    p = base_parser("code_scorer", __doc__.split("\n\n")[0])
    p.add_argument("--programs", type=int, default=100, help="programs per call")
    p.add_argument("--loops", type=int, default=5, help="of them infinite loops, second case")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per program")
    p.add_argument("--jobs", type=int, default=2, help="programs run at once")
    p.add_argument("--repeats", type=int, default=3, help="calls per case")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its JSON; returns the payload."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.programs, args.loops, args.repeats = 20, 2, 1
    payload = run_and_write(run, args)
    print_table(
        ["case", "median s", "passed"],
        [[k, f"{v['median_s']:.2f}", v["passed"]] for k, v in payload["runs"].items()],
    )
    return payload


if __name__ == "__main__":
    main()
