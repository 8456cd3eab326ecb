"""Each adaptation method (``finetune.method``) from one pretrained candidate: params, score, s.

    OMP_NUM_THREADS=1 python benchmarks/adaptation_methods.py --threads 1 \
        --out docs/benchmark_results/adaptation_methods_tiny.json

One architecture is pretrained once; every task of the selected suite then adapts a copy with
each method (same seed, same examples, same steps), so the methods differ only in what trains.
By default the budgets are the test suite's tiny ones (``tests/conftest.py``: 8 steps per task,
96 training examples, a 1-layer d_model 32 decoder): seconds, and scores near the noise floor;
pass Hydra overrides after the flags (``finetune.steps=60``, ``task=suite``...) for real ones.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, set_threads, write_json  # noqa: E402
from lightning_modules.config import TransformerConfig  # noqa: E402
from nas.cli import CONF_DIR  # noqa: E402
from nas.config import TINY as TINY_BUDGETS  # noqa: E402
from nas.config import plain  # noqa: E402
from nas.engine import load_suite, prepare  # noqa: E402
from nas.stages import finetune, pretrain  # noqa: E402
from nas.trial import data_fields  # noqa: E402

METHODS = ("full", "lora", "adapter", "probe")
TINY = [
    "task=[sentiment,ner,qa,translation]",
    *TINY_BUDGETS,
    "tasks.qa.source.n_train=96",
    "tasks.qa.source.n_val=32",
    "tasks.qa.max_len=96",
    "tasks.sentiment.source.n_train=96",
    "tasks.sentiment.source.n_val=32",
    "tasks.sentiment.steps=null",
    "tasks.ner.source.n_train=96",
    "tasks.ner.source.n_val=32",
    "tasks.ner.max_len=32",
    "tasks.ner.steps=null",
    "tasks.translation.source.n_train=96",
    "tasks.translation.source.n_val=16",
    "tasks.translation.max_new_tokens=12",
    "tasks.translation.max_len=32",
]


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser("adaptation_methods", __doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-layer", type=int, default=1)
    parser.add_argument("--d-ff", type=int, default=64)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after the tiny ones)")
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    overrides = [*TINY, *args.overrides]
    composed = compose_cfg(overrides)
    cfg = plain(composed)
    prepare()
    suite = load_suite(composed)
    arch = TransformerConfig(
        family="decoder",
        n_layer=args.n_layer,
        d_model=args.d_model,
        n_head=2,
        d_ff=args.d_ff,
        **data_fields(suite),
    )
    model, val_loss, _ = pretrain(arch, suite, cfg, seed=0)
    rows = []
    for method in METHODS:
        run = {**cfg, "finetune": {**cfg["finetune"], "method": method}}
        row = {"method": method, "tasks": {}}
        for i, (name, task) in enumerate(suite.tasks.items(), start=1):
            t0 = time.perf_counter()
            module, _ = finetune(model, task, run, seed=i)
            row["tasks"][name] = {
                "trainable_params": module.trainable_params,
                "score": module.curve[-1][1]["score"],
                "seconds": round(time.perf_counter() - t0, 2),
            }
        scores = [t["score"] for t in row["tasks"].values()]
        row["adaptability"] = sum(scores) / len(scores)
        rows.append(row)
        print(
            f"{method:8s} adaptability {row['adaptability']:.3f}  "
            + "  ".join(
                f"{n} {t['trainable_params']:,}p {t['score']:.3f} {t['seconds']:.1f}s"
                for n, t in row["tasks"].items()
            )
        )
    doc = {
        "what": "adaptation methods from one pretrained candidate",
        "architecture": arch.to_dict(),
        "n_params": arch.num_params(),
        "pretrain_val_loss": val_loss,
        "overrides": overrides,
        "threads": threads,
        "methods": rows,
    }
    write_json(args.out, doc)
    return doc


def compose_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("search", overrides=overrides)


if __name__ == "__main__":
    main()
