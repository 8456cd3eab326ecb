"""Pretraining gain: the same adaptation from a pretrained and from an untrained backbone.

For fixed hand-picked architectures of the ``small`` space, each seed runs the whole staged trial
(``nas.trial.run.run_trial``) twice at the configured budgets: once as the search does, once with
``pretrain.tokens=0`` (adaptation from the initialised backbone). The gain is the difference of
the two means; it counts only against the spread between seeds (the issue's goal: gain >= 5 x
seed sd). This is how the default budgets were chosen; ``nas/validate.py`` measures the same for
the top trials of a real study.

    python benchmarks/pretraining_gain.py                       # B and C below, seeds 0 and 1
    python benchmarks/pretraining_gain.py --archs A,B,C,D --seeds 0,1,2
    python benchmarks/pretraining_gain.py --override tasks.ner.examples=256   # other budgets
    python benchmarks/pretraining_gain.py --archs A,E,F --override 'task=[ner]'   # NER only
    python benchmarks/pretraining_gain.py --quick               # tiny budgets, seconds
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, machine, print_table, run_and_write, set_threads  # noqa: E402

# Hand-picked members of search_spaces/small.yaml (``families`` for C): the largest, two
# mid-size, the smallest; E and F for the NER learning rate (docs/validity.md).
ARCHS: dict[str, dict[str, Any]] = {
    "A": dict(
        family="decoder", n_layer=3, d_model=128, n_head=4, d_ff=[384] * 3,
        mlp="swiglu", norm="rmsnorm", norm_position="pre", pos="rope",
    ),
    "B": dict(
        family="prefix_lm", n_layer=2, d_model=96, n_head=4, n_kv_head=2, d_ff=[256] * 2,
        mlp="gelu", norm="layernorm", norm_position="pre", pos="learned",
    ),
    "C": dict(
        family="decoder", n_layer=1, d_model=64, n_head=2, d_ff=[256],
        mlp="relu", norm="layernorm", norm_position="post", pos="alibi",
    ),
    "D": dict(
        family="prefix_lm", n_layer=3, d_model=128, n_head=8, d_ff=[512, 128, 256],
        mlp="gelu", norm="rmsnorm", norm_position="pre", pos="sinusoidal",
    ),
    # The encoder_decoder and encoder whose NER pretraining hurt at tasks.ner.lr=1e-3.
    "E": dict(
        family="encoder_decoder", n_layer=1, n_dec_layer=1, d_model=64, n_head=8, n_kv_head=2,
        d_ff=[384, 256], mlp="gelu", norm="layernorm", norm_position="pre", pos="alibi",
    ),
    "F": dict(
        family="encoder", n_layer=1, d_model=64, n_head=8, n_kv_head=2, d_ff=[384],
        mlp="gelu", norm="layernorm", norm_position="pre", pos="alibi",
    ),
}  # fmt: skip
QUICK = [
    "data.corpus.n_sentences=1200",
    "data.vocab_size=384",
    "data.seq_len=32",
    "pretrain.tokens=4096",
    "pretrain.batch_size=16",
    "finetune.steps=4",
    "task=[sentiment,ner]",
    "tasks.sentiment.steps=4",
    "tasks.ner.steps=4",
    "tasks.sentiment.source.n_val=32",
    "tasks.ner.source.n_val=32",
]


def run(args) -> dict[str, Any]:
    """Every architecture x condition x seed; returns the JSON payload."""
    from hydra import compose, initialize_config_dir

    from lightning_modules.config import TransformerConfig
    from nas.config.compose import CONF_DIR
    from nas.config.nodes import plain
    from nas.engine.run import load_suite
    from nas.trial.resources import prepare_process
    from nas.trial.run import data_fields, run_trial

    threads = set_threads(args.threads)
    prepare_process()
    overrides = [*(QUICK if args.quick else []), *args.override]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=overrides)
    suite = load_suite(cfg)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = ["C"] if args.quick else args.archs.split(",")
    runs = []
    for name in names:
        arch = TransformerConfig.from_dict({**ARCHS[name], **data_fields(suite)})
        for condition in ("pretrained", "untrained"):
            run_cfg = plain(cfg)
            if condition == "untrained":
                run_cfg["pretrain"]["tokens"] = 0
            for seed in seeds:
                wall, cpu = time.perf_counter(), time.process_time()
                r = run_trial(arch, suite, run_cfg, seed=seed)
                runs.append(
                    {
                        "arch": name,
                        "describe": arch.describe(),
                        "n_params": arch.num_params(),
                        "condition": condition,
                        "seed": seed,
                        "adaptability": r.adaptability,
                        "task_scores": r.task_scores,
                        "timings": r.timings,
                        "steps": r.steps,
                        "wall_s": time.perf_counter() - wall,
                        "cpu_s": time.process_time() - cpu,
                    }
                )
                print(f"{name} {condition} seed {seed}: {r.adaptability:.4f}", flush=True)
    summary = summarise(runs)
    rows = [
        [
            s["arch"],
            s["describe"],
            f"{s['pretrained']:.3f}",
            f"{s['untrained']:.3f}",
            f"{s['gain']:+.3f}",
            f"{s['seed_sd']:.4f}",
            f"{s['gain_over_sd']:.1f}" if s["gain_over_sd"] is not None else "-",
            f"{s['pretrain_time_share']:.0%}",
        ]
        for s in summary
    ]
    print_table(
        [
            "arch",
            "architecture",
            "pretrained",
            "untrained",
            "gain",
            "seed sd",
            "gain/sd",
            "pt time",
        ],
        rows,
    )
    return {
        "benchmark": "pretraining_gain",
        "machine": machine(),
        "threads": threads,
        "overrides": overrides,
        "seeds": seeds,
        "runs": runs,
        "summary": summary,
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per architecture: mean adaptability per condition, the gain, the pooled seed sd.

    The seed sd pools both conditions (root mean square of their sample sds); ``gain_over_sd`` is
    ``None`` when there is one seed.
    """
    out = []
    for name in dict.fromkeys(r["arch"] for r in runs):
        by = {
            c: [r for r in runs if r["arch"] == name and r["condition"] == c]
            for c in ("pretrained", "untrained")
        }
        means = {c: statistics.fmean(r["adaptability"] for r in rs) for c, rs in by.items()}
        sds = [
            statistics.stdev([r["adaptability"] for r in rs]) for rs in by.values() if len(rs) > 1
        ]
        sd = (sum(s * s for s in sds) / len(sds)) ** 0.5 if sds else None
        gain = means["pretrained"] - means["untrained"]
        pre = by["pretrained"]
        share = statistics.fmean(r["timings"]["pretrain"] / r["timings"]["total"] for r in pre)
        out.append(
            {
                "arch": name,
                "describe": pre[0]["describe"],
                "n_params": pre[0]["n_params"],
                "pretrained": means["pretrained"],
                "untrained": means["untrained"],
                "gain": gain,
                "seed_sd": sd or 0.0,
                "gain_over_sd": gain / sd if sd else None,
                "pretrain_time_share": share,
                "task_gain": {
                    t: statistics.fmean(r["task_scores"][t] for r in pre)
                    - statistics.fmean(r["task_scores"][t] for r in by["untrained"])
                    for t in pre[0]["task_scores"]
                },
            }
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser("pretraining_gain", __doc__.splitlines()[0])
    parser.add_argument("--archs", default="B,C", help=f"names from {', '.join(ARCHS)}")
    parser.add_argument("--seeds", default="0,1", help="comma-separated model seeds")
    parser.add_argument(
        "--override", action="append", default=[], help="a config override (repeatable)"
    )
    return run_and_write(run, parser.parse_args(argv))


if __name__ == "__main__":
    main()
