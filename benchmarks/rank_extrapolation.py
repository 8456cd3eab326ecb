"""Can cheaper budgets predict the x4 ranking? Log-linear extrapolation from x0.5, x1 and x2.

The default budget ranks architectures far from how x4 does (``budget_rank.py``), though each
ranks its own reruns alike (``rank_ceiling.py``). A learning-curve score would extrapolate: if an
architecture's adaptability grows by ``g`` per doubling of the budget, x4 (two doublings past the
default) should score the default plus ``2 g``. This reads three ``benchmarks/budget_rank.py``
results over the same architectures (no runs) and holds each extrapolation against x4:

- ``--half``: the default budget and x0.5 (``budget_rank.py --seeds 1 --scale 0.5``);
- ``--default``: the default budget and x4 (``budget_rank.py --seeds 2``);
- ``--x2``: x2 and x4 (``budget_rank.py --seeds 1 --base-scale 2``).

The predictors, with the weights the log-linear model fixes, each with its cost: the mean CPU
seconds of the runs it needs over the default budget's; ``k`` is varied around the model's value
to show the sensitivity, not to choose among:

- ``x1``: the default budget alone;
- ``x1 + k (x1 - x0.5)``, k 1, 2 (the model), 3;
- ``x2 + k (x2 - x1)``, k 1 (the model), 2;
- the least-squares line through x0.5, x1 and x2, read at x4;
- x4 itself (tau 1: its cost is the yardstick);
- whether growth is a property of the architecture: the gain of one doubling against the gain of
  the next ones (x0.5 to x1 against x1 to x4; x1 to x2 against x2 to x4).

    python benchmarks/rank_extrapolation.py \\
        --half docs/benchmark_results/budget_rank_half.json \\
        --default docs/benchmark_results/budget_rank_default.json \\
        --x2 docs/benchmark_results/budget_rank_x2_vs_x4.json \\
        --out docs/benchmark_results/rank_extrapolation.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    print_table,
    rank_cells,
    read_results,
    reader_parser,
    write_json,
)

BUDGETS = ("x0.5", "x1", "x2", "x4")


class InputError(ValueError):
    """The results do not describe the same architectures at the budgets expected."""


def _side(doc: dict[str, Any], which: str) -> tuple[float, str]:
    """The budget of one side (``default`` or ``scaled``) of a budget_rank result, and its what."""
    s = doc["settings"]
    if which == "default":
        return float(s.get("base_scale") or 1.0), s.get("base_what") or "both"
    return float(s["scale"]), s.get("scale_what") or "both"


def scores(half: dict, default: dict, x2: dict) -> dict[str, dict[str, Any]]:
    """Architecture label -> adaptability and CPU s at each budget (``None``: failed, missing).

    Raises:
        InputError: A file holds other architectures or other budgets than its option says.
    """
    expected = {
        "--half": (half, {"default": 1.0, "scaled": 0.5}),
        "--default": (default, {"default": 1.0, "scaled": 4.0}),
        "--x2": (x2, {"default": 2.0, "scaled": 4.0}),
    }
    for option, (doc, sides) in expected.items():
        for which, scale in sides.items():
            got, what = _side(doc, which)
            if got != scale or what != "both":
                raise InputError(
                    f"{option}: its {which} side is x{got:g} ({what}), not x{scale:g} (both)"
                )
    rows = {name: {r["label"]: r for r in doc["archs"]} for name, (doc, _) in expected.items()}
    out: dict[str, dict[str, Any]] = {}
    for label, row in rows["--default"].items():
        for option in ("--half", "--x2"):
            other = rows[option].get(label)
            if other is None or other["config"] != row["config"]:
                raise InputError(f"architecture {label} differs between --default and {option}")
        runs = {
            "x0.5": rows["--half"][label]["runs"]["scaled"],
            "x1": row["runs"]["default"],
            "x2": rows["--x2"][label]["runs"]["default"],
            "x4": row["runs"]["scaled"],
        }
        out[label] = {
            "family": row["family"],
            "adaptability": {b: r and r.get("adaptability") for b, r in runs.items()},
            "cpu_s": {b: r and r.get("cpu_s") for b, r in runs.items()},
        }
    return out


def _line_at(xs: list[float], ys: list[float], x: float) -> float:
    """The least-squares line through (xs, ys), read at ``x``."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum(
        (a - mx) ** 2 for a in xs
    )
    return my + slope * (x - mx)


def _extrapolate(s: dict[str, float], last: str, before: str, k: float) -> float:
    """``last`` plus ``k`` times its gain over ``before``."""
    return s[last] + k * (s[last] - s[before])


# name -> (the budgets it runs, the predictor of x4 from one architecture's scores)
PREDICTORS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, float]], float]]] = {
    "x1": (("x1",), lambda s: s["x1"]),
    "x1 + 1 (x1 - x0.5)": (("x0.5", "x1"), lambda s: _extrapolate(s, "x1", "x0.5", 1)),
    "x1 + 2 (x1 - x0.5), the model": (("x0.5", "x1"), lambda s: _extrapolate(s, "x1", "x0.5", 2)),
    "x1 + 3 (x1 - x0.5)": (("x0.5", "x1"), lambda s: _extrapolate(s, "x1", "x0.5", 3)),
    "x2 + 1 (x2 - x1), the model": (("x1", "x2"), lambda s: _extrapolate(s, "x2", "x1", 1)),
    "x2 + 2 (x2 - x1)": (("x1", "x2"), lambda s: _extrapolate(s, "x2", "x1", 2)),
    "line through x0.5, x1, x2 at x4": (
        ("x0.5", "x1", "x2"),
        lambda s: _line_at([-1.0, 0.0, 1.0], [s["x0.5"], s["x1"], s["x2"]], 2.0),
    ),
    "x4 itself": (("x4",), lambda s: s["x4"]),
}
# name -> (one side, the other): is one doubling's gain the architecture's gain at the next?
GROWTH = {
    "gain x0.5 to x1 against gain x1 to x4": (("x0.5", "x1"), ("x1", "x4")),
    "gain x1 to x2 against gain x2 to x4": (("x1", "x2"), ("x2", "x4")),
}


def agreements(
    table: dict[str, dict[str, Any]], cpu: dict[str, float], resamples: int | None = None
) -> dict[str, dict[str, Any]]:
    """Every predictor against x4, and every growth pair, over the architectures with all scores.

    A predictor's cost: the mean CPU s of the runs it needs (``cpu``), over the default budget's.
    """
    from nas.validity.statistics import BOOTSTRAP, rank_agreement

    draws = resamples or BOOTSTRAP
    full = [v["adaptability"] for v in table.values() if None not in v["adaptability"].values()]
    x4 = [s["x4"] for s in full]
    out: dict[str, dict[str, Any]] = {}
    for name, (runs, predict) in PREDICTORS.items():
        rank = rank_agreement([predict(s) for s in full], x4, draws)
        out[name] = {"cost_vs_default": sum(cpu[b] for b in runs) / cpu["x1"], **rank}
    for name, ((a0, a1), (b0, b1)) in GROWTH.items():
        first = [s[a1] - s[a0] for s in full]
        then = [s[b1] - s[b0] for s in full]
        out[name] = {"cost_vs_default": None, **rank_agreement(first, then, draws)}
    return out


def run(args) -> dict[str, Any]:
    """Read the three results, rank every predictor against x4."""
    docs = [json.loads(Path(p).read_text()) for p in (args.half, args.default, args.x2)]
    table = scores(*docs)
    cpu = {
        b: statistics.fmean(v["cpu_s"][b] for v in table.values() if v["cpu_s"][b] is not None)
        for b in BUDGETS
    }
    return {
        "benchmark": "rank_extrapolation",
        "command": " ".join(["python", "benchmarks/rank_extrapolation.py", *sys.argv[1:]]),
        "inputs": {"half": str(args.half), "default": str(args.default), "x2": str(args.x2)},
        "settings": {"archs": len(table), "target": "x4 (seed 0)"},
        "cpu_s_mean": cpu,
        "scores": table,
        "rank": agreements(table, cpu, args.resamples),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse, read, print and write the JSON."""
    p = reader_parser("rank_extrapolation", __doc__.splitlines()[0])
    p.add_argument("--half", type=Path, required=True, help="budget_rank.py --scale 0.5 JSON")
    p.add_argument("--default", type=Path, required=True, help="budget_rank.py (x4) JSON")
    p.add_argument("--x2", type=Path, required=True, help="budget_rank.py --base-scale 2 JSON")
    args = p.parse_args(argv)
    payload = read_results(
        "rank_extrapolation", run, args, (OSError, json.JSONDecodeError, KeyError, InputError)
    )
    rows = [
        [name, r["n"], "" if r["cost_vs_default"] is None else f"{r['cost_vs_default']:.2f}x",
         *rank_cells(r)]
        for name, r in payload["rank"].items()
    ]  # fmt: skip
    print_table(["against x4", "n", "cost", "Kendall tau  95% CI", "Spearman  95% CI"], rows)
    cpu = payload["cpu_s_mean"]
    print("mean CPU s a run: " + ", ".join(f"{b} {cpu[b]:.0f}" for b in BUDGETS))
    if args.out:
        print(f"wrote {write_json(args.out, payload)}")
    return payload


if __name__ == "__main__":
    main()
