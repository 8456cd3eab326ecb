"""Which knobs of the search space move the score at the default budget: Optuna's importances.

Pools the searched and reference trials of one or more finished studies (finalist repeats left
out: each architecture counts once, with the score the sampler saw), then asks Optuna's fANOVA
and PED-ANOVA evaluators how much of the score's spread each knob explains, and prints, per knob
value, the mean score of the trials that took it (with n). Pruned trials count by their last
reported value (the running adaptability over the tasks they finished) only with ``--pruned``.
Conditional knobs (``n_kv_head``, ``n_dec_layer``) and per-block ``d_ff_*`` knobs are skipped:
the evaluators need knobs every trial has.

    python benchmarks/importance.py outputs/default_searches/seed*/studies/suite-small/study.db \\
        --json docs/benchmark_results/importance_default.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402
from optuna.importance import (  # noqa: E402
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)
from optuna.trial import TrialState  # noqa: E402

from benchmarks.common import write_json  # noqa: E402
from nas.trial.record import REPEAT_OF  # noqa: E402

COMPLETE = TrialState.COMPLETE


def pooled_trials(paths: list[Path], pruned: bool) -> list[optuna.trial.FrozenTrial]:
    """One frozen trial per architecture run by the sampler or queued as a reference."""
    out = []
    for path in paths:
        storage = f"sqlite:///{path}"
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for t in study.get_trials(deepcopy=False):
                if REPEAT_OF in t.user_attrs:
                    continue
                if t.state == COMPLETE and t.value is not None:
                    value = t.value
                elif pruned and t.state == TrialState.PRUNED and t.intermediate_values:
                    value = t.intermediate_values[max(t.intermediate_values)]
                else:
                    continue
                out.append((t.params, t.distributions, value))
    keys = set.intersection(*(set(p) for p, _, _ in out)) if out else set()
    keys = {k for k in keys if not k.startswith("d_ff_")}
    return [
        optuna.trial.create_trial(
            params={k: p[k] for k in keys},
            distributions={k: d[k] for k in keys},
            value=v,
        )
        for p, d, v in out
    ]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", type=Path, help="study.db files")
    ap.add_argument("--pruned", action="store_true", help="count pruned trials by their last value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = pooled_trials(args.studies, args.pruned)
    if len(trials) < 4:
        raise SystemExit(f"importance: {len(trials)} usable trials in {len(args.studies)} studies")
    pool = optuna.create_study(direction="maximize")
    pool.add_trials(trials)
    evaluators = {
        "fanova": FanovaImportanceEvaluator(seed=args.seed),
        "ped_anova": PedAnovaImportanceEvaluator(),
    }
    importances = {
        name: {k: round(v, 4) for k, v in get_param_importances(pool, evaluator=ev).items()}
        for name, ev in evaluators.items()
    }
    by_value: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in trials:
        for k, v in t.params.items():
            by_value[k][str(v)].append(t.value)
    means = {
        k: {
            v: {"n": len(xs), "mean": round(statistics.fmean(xs), 4)}
            for v, xs in sorted(vals.items())
        }
        for k, vals in by_value.items()
    }
    print(f"{len(trials)} trials from {len(args.studies)} studies")
    print(f"{'knob':<16} {'fANOVA':>7} {'PED-ANOVA':>9}  mean score by value (n)")
    for k in importances["fanova"]:
        row = ", ".join(f"{v} {m['mean']:.3f} ({m['n']})" for v, m in means[k].items())
        print(f"{k:<16} {importances['fanova'][k]:7.3f} {importances['ped_anova'][k]:9.3f}  {row}")
    doc = {
        "command": "python benchmarks/importance.py " + " ".join(argv or sys.argv[1:]),
        "trials": len(trials),
        "importances": importances,
        "by_value": means,
    }
    if args.json:
        write_json(args.json, doc)
    return doc


if __name__ == "__main__":
    main()
