"""Task floors: what each task's trivial baseline scores, on validation and test.

A task whose candidates score at its floor measures nothing: a model that always says the majority
class, tags every word ``O``, answers with the context's first token, or copies the source (its
first sentence for summaries) gets there without learning. ``objective.adaptability=skill``
counts each task above its floor. This prints the floors of the built-in suite and, when the data
is beside the checkout, of ``experiment=real_suite``; no training.

    python benchmarks/floors.py
    python benchmarks/floors.py --suites builtin --json docs/benchmark_results/floors.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydra import compose, initialize_config_dir  # noqa: E402

from nas.config.check import check_config  # noqa: E402
from nas.config.compose import CONF_DIR  # noqa: E402
from nas.engine.run import load_suite  # noqa: E402

SUITES = {"builtin": ["task=suite_all"], "real_suite": ["experiment=real_suite"]}


def floors(overrides: list[str]) -> list[dict]:
    """One record per task: the rule, the metric and the floor on validation and test."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"paths.root={tempfile.mkdtemp()}", *overrides])
    check_config(cfg)
    suite = load_suite(cfg)
    return [
        {
            "task": name,
            "metric": task.metric,
            "rule": task.floor_rule,
            "validation": round(task.floor("validation"), 4),
            "test": round(task.floor("test"), 4),
            "n_validation": len(task.encoded("validation").references),
        }
        for name, task in suite.tasks.items()
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default="builtin,real_suite")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    out: dict[str, list[dict]] = {}
    for name in args.suites.split(","):
        try:
            out[name] = floors(SUITES[name])
        except Exception as err:  # real data absent: say so, keep the others
            print(f"{name}: not measured: {err}")
            continue
        print(f"\n{name}")
        print(f"{'task':<14} {'metric':<12} {'validation':>10} {'test':>6}  rule")
        for f in out[name]:
            print(
                f"{f['task']:<14} {f['metric']:<12} {f['validation']:>10.4f} {f['test']:>6.4f}  "
                f"{f['rule']}"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
