"""How well a larger budget ranks its own reruns: the noise ceiling of a rank-agreement target.

Kendall tau between the default budget and x4 can only be as high as x4's own rankings agree
with each other: if two model seeds at x4 order the architectures differently, no cheaper score
can match "the" x4 ranking. This reads two ``benchmarks/budget_rank.py`` results over the same
architectures (no runs):

- ``--default``: the default budget with two seeds and x4 with one (``budget_rank.py --seeds 2``);
- ``--scaled``: x4 with two seeds (``budget_rank.py --seeds 2 --base-scale 4``, whose ranking
  side is x4 itself, so its second seed is x4's);

and gives Kendall tau and Spearman, with bootstrap 95% intervals, for each pair: the two x4
seeds (the ceiling), the two default seeds, default against x4 seed by seed, and the mean of the
default seeds against the mean of the x4 seeds (each side's own noise halved).

    python benchmarks/rank_ceiling.py \\
        --default docs/benchmark_results/budget_rank_default.json \\
        --scaled docs/benchmark_results/budget_rank_x4_seeds.json \\
        --out docs/benchmark_results/rank_ceiling_x4.json
"""

from __future__ import annotations

import json
import statistics
import sys
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

# The pairs compared: name -> (one side, the other), each a key of ``scores``' columns.
PAIRS = {
    "x4 seed 0 against x4 seed 100": ("x4_0", "x4_100"),
    "default seed 0 against default seed 100": ("default_0", "default_100"),
    "default seed 0 against x4 seed 0": ("default_0", "x4_0"),
    "default seed 0 against x4 seed 100": ("default_0", "x4_100"),
    "default mean against x4 mean": ("default_mean", "x4_mean"),
}


class InputError(ValueError):
    """The two results do not describe the same architectures and seeds."""


def _second_seed(row: dict[str, Any], where: str) -> float | None:
    seeds = row["runs"].get("seeds") or []
    if not seeds:
        raise InputError(f"{where}: architecture {row['label']} has no second seed (--seeds 2)")
    return None if seeds[0] is None else seeds[0].get("adaptability")


def scores(default: dict[str, Any], scaled: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Architecture label -> its score at each budget and seed (``None``: failed or missing).

    Raises:
        InputError: The files hold other architectures, other budgets or too few seeds.
    """
    d_set, s_set = default["settings"], scaled["settings"]
    if (d_set.get("base_scale") or 1.0) != 1.0:
        raise InputError(f"--default: its ranking side is x{d_set['base_scale']}, not the default")
    if s_set.get("base_scale") != s_set.get("scale") or s_set.get("base_what") != s_set.get(
        "scale_what"
    ):
        raise InputError("--scaled: its ranking side must be the scaled budget (--base-scale 4)")
    if d_set.get("scale") != s_set.get("scale"):
        raise InputError(
            f"the scaled budgets differ: x{d_set.get('scale')} and x{s_set.get('scale')}"
        )
    rows = {r["label"]: r for r in scaled["archs"]}
    out: dict[str, dict[str, float | None]] = {}
    for row in default["archs"]:
        other = rows.get(row["label"])
        if other is None or other["config"] != row["config"]:
            raise InputError(f"architecture {row['label']} differs between the two files")
        x4 = row["runs"]["scaled"]
        out[row["label"]] = {
            "default_0": row["runs"]["default"]["adaptability"],
            "default_100": _second_seed(row, "--default"),
            "x4_0": None if x4 is None else x4.get("adaptability"),
            "x4_100": _second_seed(other, "--scaled"),
        }
    for v in out.values():
        for side in ("default", "x4"):
            pair = [v[f"{side}_0"], v[f"{side}_100"]]
            v[f"{side}_mean"] = None if None in pair else statistics.fmean(pair)
    return out


def agreements(
    table: dict[str, dict[str, float | None]], resamples: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each pair of ``PAIRS``: rank agreement over the architectures with both scores."""
    from nas.validity.statistics import BOOTSTRAP, rank_agreement

    out = {}
    for name, (a, b) in PAIRS.items():
        both = [(v[a], v[b]) for v in table.values() if v[a] is not None and v[b] is not None]
        rank = rank_agreement([x for x, _ in both], [y for _, y in both], resamples or BOOTSTRAP)
        out[name] = {"a": a, "b": b, **rank}
    return out


def run(args) -> dict[str, Any]:
    default = json.loads(Path(args.default).read_text())
    scaled = json.loads(Path(args.scaled).read_text())
    table = scores(default, scaled)
    return {
        "benchmark": "rank_ceiling",
        "command": " ".join(["python", "benchmarks/rank_ceiling.py", *sys.argv[1:]]),
        "inputs": {"default": str(args.default), "scaled": str(args.scaled)},
        "settings": {"scale": default["settings"]["scale"], "archs": len(table)},
        "scores": table,
        "pairs": agreements(table, args.resamples),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = reader_parser("rank_ceiling", __doc__.splitlines()[0])
    p.add_argument("--default", type=Path, required=True, help="budget_rank.py --seeds 2 JSON")
    p.add_argument("--scaled", type=Path, required=True, help="... --seeds 2 --base-scale 4 JSON")
    args = p.parse_args(argv)
    payload = read_results(
        "rank_ceiling", run, args, (OSError, json.JSONDecodeError, KeyError, InputError)
    )
    rows = [[name, r["n"], *rank_cells(r)] for name, r in payload["pairs"].items()]
    print_table(["pair", "n", "Kendall tau  95% CI", "Spearman  95% CI"], rows)
    if args.out:
        print(f"wrote {write_json(args.out, payload)}")
    return payload


if __name__ == "__main__":
    main()
