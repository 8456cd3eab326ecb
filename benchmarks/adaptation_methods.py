"""Each adaptation method (``finetune.method``) from one pretrained candidate: params, score, s.

    OMP_NUM_THREADS=1 python benchmarks/adaptation_methods.py --threads 1 \
        --out docs/benchmark_results/adaptation_methods_tiny.json

One architecture is pretrained once; every task of the selected suite then adapts a copy with
each method (same seed, same examples, same steps), so the methods differ only in what trains.
By default the budgets are the test suite's tiny ones (``tests/conftest.py``: 8 steps per task,
96 training examples, a 1-layer d_model 32 decoder): seconds, and scores near the noise floor;
pass Hydra overrides after the flags (``finetune.steps=60``, ``task=suite_all``...) for real ones.

``--families`` measures one architecture per family instead, at the budgets of ``conf/`` (pass
``--tiny`` for the tiny ones); ``--families`` alone means decoder, prefix_lm, encoder_decoder
and encoder:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/adaptation_methods.py --threads 1 \
        --families --out docs/benchmark_results/adaptation_methods_families.json

Each family pretrains a d_model 96, 3-block model (d_ff 384, 4 heads) once on the built-in
suite's corpus (``task=suite_all``: 786,432 tokens), then adapts every task it can serve with every
method. The encoder_decoder splits the blocks, 2 encoder + 1 decoder, and takes the smaller
d_ff that gives back the decoder block's cross-attention parameters (``matched_d_ff``), so its
total is within 0.1% of the others'. An encoder cannot generate: it adapts the suite's tasks
that need no generation (sentiment, ner, qa), the same tasks, examples and seeds as the other
families; ``adaptability_shared`` is every family's mean over those tasks. Seconds are CPU
seconds of this process (``time.process_time``; with one thread the CPU time of the work, not
the shared machine's wall clock).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, set_threads, write_json  # noqa: E402
from lightning_modules.adaptation import METHODS  # noqa: E402
from lightning_modules.config import FAMILIES, TransformerConfig  # noqa: E402
from nas.config.check import check_config  # noqa: E402
from nas.config.compose import CONF_DIR  # noqa: E402
from nas.config.nodes import TINY as TINY_BUDGETS  # noqa: E402
from nas.config.nodes import plain  # noqa: E402
from nas.engine.run import load_suite  # noqa: E402
from nas.trial.resources import prepare_process  # noqa: E402
from nas.trial.run import data_fields  # noqa: E402
from nas.trial.stages import finetune, pretrain  # noqa: E402

#: ``--families`` with no value: every family, those that generate first.
DEFAULT_FAMILIES = ("decoder", "prefix_lm", "encoder_decoder", "encoder")
#: The architecture of each family in ``--families`` mode (``--d-model`` etc. override it).
FAMILY_ARCH = {"d_model": 96, "n_layer": 3, "d_ff": 384, "n_head": 4}
#: The architecture of the one decoder of the default (tiny) mode.
TINY_ARCH = {"d_model": 32, "n_layer": 1, "d_ff": 64, "n_head": 2}
#: ``--families --tiny``: two blocks, so that an encoder_decoder has one of each.
TINY_FAMILY_ARCH = {**TINY_ARCH, "n_layer": 2}
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


def parse_families(text: str) -> list[str]:
    """``decoder,encoder`` -> ``["decoder", "encoder"]``; an unknown family fails in one line."""
    names = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in FAMILIES]
    if bad or not names:
        raise ValueError(f"--families {text!r}: {', '.join(bad) or 'empty'} not in {FAMILIES}")
    return names


def matched_d_ff(d_model: int, n_layer: int, d_ff: int) -> tuple[int, int, int]:
    """``(n_layer, n_dec_layer, d_ff)`` of an encoder_decoder as large as the one-stack model.

    The blocks split ``ceil(n/2)`` encoder + ``floor(n/2)`` decoder (at least one each); each
    decoder block adds a cross-attention (``4 d^2``) and its norm (``2 d``), which a smaller d_ff
    of every block gives back (a GELU MLP holds ``2 d d_ff``).
    """
    if n_layer < 2:
        raise ValueError(f"--n-layer={n_layer}: an encoder_decoder needs at least 2 blocks")
    n_dec = n_layer // 2
    extra = n_dec * (4 * d_model * d_model + 2 * d_model)
    return n_layer - n_dec, n_dec, max(1, d_ff - round(extra / (2 * d_model * n_layer)))


def family_arch(family: str, size: Mapping[str, int], fields: Mapping[str, int]):
    """The ``TransformerConfig`` of ``family`` at ``size`` (``FAMILY_ARCH``'s keys)."""
    n_layer, n_dec, d_ff = size["n_layer"], 0, size["d_ff"]
    if family == "encoder_decoder":
        n_layer, n_dec, d_ff = matched_d_ff(size["d_model"], n_layer, d_ff)
    return TransformerConfig(
        family=family,
        n_layer=n_layer,
        n_dec_layer=n_dec,
        d_model=size["d_model"],
        n_head=size["n_head"],
        d_ff=d_ff,
        **fields,
    )


def adapt_methods(
    model, tasks: Mapping[str, Any], seeds: Mapping[str, int], cfg: dict, clock: Callable
) -> list[dict]:
    """Every method on every task of ``tasks`` from ``model``: one row per method.

    Args:
        model: The pretrained ``LanguageModel`` (each adaptation copies it).
        tasks: Task name -> task.
        seeds: Task name -> adaptation seed (the same for every method and family).
        cfg: The plain run config.
        clock: Seconds (``time.perf_counter`` or ``time.process_time``).
    """
    rows = []
    for method in METHODS:
        run = {**cfg, "finetune": {**cfg["finetune"], "method": method}}
        row: dict[str, Any] = {"method": method, "tasks": {}}
        for name, task in tasks.items():
            t0 = clock()
            module, _ = finetune(model, task, run, seed=seeds[name])
            row["tasks"][name] = {
                "trainable_params": module.trainable_params,
                "score": module.curve[-1][1]["score"],
                "seconds": round(clock() - t0, 2),
            }
        scores = [t["score"] for t in row["tasks"].values()]
        row["adaptability"] = sum(scores) / len(scores)
        row["seconds"] = round(sum(t["seconds"] for t in row["tasks"].values()), 2)
        rows.append(row)
        print(
            f"{method:8s} adaptability {row['adaptability']:.3f}  "
            + "  ".join(
                f"{n} {t['trainable_params']:,}p {t['score']:.3f} {t['seconds']:.1f}s"
                for n, t in row["tasks"].items()
            ),
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser("adaptation_methods", __doc__.splitlines()[0])
    parser.add_argument(
        "--families",
        nargs="?",
        const=",".join(DEFAULT_FAMILIES),
        default=None,
        help="comma-separated families, one architecture each, at conf/'s budgets "
        f"(alone: {','.join(DEFAULT_FAMILIES)})",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="with --families: the tiny budgets of the default mode"
    )
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--n-layer", type=int, default=None)
    parser.add_argument("--d-ff", type=int, default=None)
    parser.add_argument("--n-head", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after the mode's own)")
    args = parser.parse_args(argv)
    if args.families is not None and "=" in args.families:
        # ``--families task=qa``: the bare flag took the first Hydra override as its value.
        args.overrides.insert(0, args.families)
        args.families = ",".join(DEFAULT_FAMILIES)
    if args.families is None:
        if args.tiny:
            parser.error("--tiny only applies with --families (the default mode is tiny)")
        return run_single(args)
    try:
        families = parse_families(args.families)
    except ValueError as err:
        parser.error(str(err))
    return run_families(args, families)


def arch_size(args, defaults: Mapping[str, int]) -> dict[str, int]:
    """``defaults`` with the ``--d-model``/``--n-layer``/``--d-ff``/``--n-head`` given."""
    given = {"d_model": args.d_model, "n_layer": args.n_layer, "d_ff": args.d_ff}
    given["n_head"] = args.n_head
    return {k: (defaults[k] if v is None else v) for k, v in given.items()}


def load(overrides: list[str]):
    """``(plain cfg, suite)`` of ``conf/search.yaml`` under ``overrides``, checked."""
    composed = compose_cfg(overrides)
    check_config(composed)
    cfg = plain(composed)
    prepare_process()
    return cfg, load_suite(composed)


def run_single(args) -> dict:
    """The default mode: one decoder at the tiny budgets (wall seconds)."""
    threads = set_threads(args.threads)
    overrides = [*TINY, *args.overrides]
    cfg, suite = load(overrides)
    size = arch_size(args, TINY_ARCH)
    arch = TransformerConfig(family="decoder", **size, **data_fields(suite))
    model, val_loss, _ = pretrain(arch, suite, cfg, seed=0)
    seeds = {name: i for i, name in enumerate(suite.tasks, start=1)}
    rows = adapt_methods(model, suite.tasks, seeds, cfg, time.perf_counter)
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


def run_families(args, families: list[str]) -> dict:
    """``--families``: one architecture per family, every method on every task it serves."""
    threads = set_threads(args.threads)
    overrides = [*(TINY if args.tiny else ["task=suite_all"]), *args.overrides]
    cfg, suite = load(overrides)
    size = arch_size(args, TINY_FAMILY_ARCH if args.tiny else FAMILY_ARCH)
    fields = data_fields(suite)
    # One seed per task from its place in the suite: a task adapts from the same examples in the
    # same order under every family and method.
    seeds = {name: i for i, name in enumerate(suite.tasks, start=1)}
    # The tasks every selected family can serve: the columns its adaptabilities share.
    shared = [n for n, t in suite.tasks.items() if all(f in t.families for f in families)]
    out = []
    for family in families:
        arch = family_arch(family, size, fields)
        tasks = {n: t for n, t in suite.tasks.items() if family in t.families}
        if not tasks:
            raise ValueError(f"--families: family {family!r} serves none of {list(suite.tasks)}")
        print(f"{family}: {arch.num_params():,} params, tasks {', '.join(tasks)}", flush=True)
        t0 = time.process_time()
        model, val_loss, steps = pretrain(arch, suite, cfg, seed=0)
        pretrain_s = round(time.process_time() - t0, 2)
        print(f"{family}: pretrained {steps} steps in {pretrain_s:.0f} CPU s", flush=True)
        rows = adapt_methods(model, tasks, seeds, cfg, time.process_time)
        for row in rows:
            row["adaptability_shared"] = sum(row["tasks"][n]["score"] for n in shared) / len(shared)
        out.append(
            {
                "family": family,
                "architecture": arch.to_dict(),
                "n_params": arch.num_params(),
                "pretrain_steps": steps,
                "pretrain_val_loss": val_loss,
                "pretrain_seconds": pretrain_s,
                "tasks": list(tasks),
                "methods": rows,
            }
        )
    doc = {
        "what": "adaptation methods x architecture families, each pretrained once",
        "seconds": "CPU seconds of the process (time.process_time)",
        "seed": 0,
        "task_seeds": seeds,
        "shared_tasks": shared,
        "overrides": overrides,
        "threads": threads,
        "families": out,
    }
    write_json(args.out, doc)
    return doc


def compose_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("search", overrides=overrides)


if __name__ == "__main__":
    main()
