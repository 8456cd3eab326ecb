"""Seconds per stage of one candidate on the default config (built-in suite), and decoding speed.

    OMP_NUM_THREADS=1 python benchmarks/task_stage_times.py                # the default suite
    OMP_NUM_THREADS=1 python benchmarks/task_stage_times.py task=suite_all      # all five tasks
    OMP_NUM_THREADS=1 python benchmarks/task_stage_times.py task=[ner,translation] \
        --family prefix_lm --d-model 128 --n-layer 2 --d-ff 512
    OMP_NUM_THREADS=1 python benchmarks/task_stage_times.py --decode-only  # cache vs recompute

Everything after the flags is a Hydra override of ``conf/search.yaml``. Prints the time of
pretraining and of each task (fine-tuning plus its validation pass), each task's scores, and the
time of one validation pass alone (for generation tasks: the decoding).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lightning_modules.config import TransformerConfig  # noqa: E402
from lightning_modules.generate import beam_search, greedy  # noqa: E402
from lightning_modules.model import build_model  # noqa: E402
from nas.config.compose import CONF_DIR  # noqa: E402
from nas.config.nodes import plain  # noqa: E402
from nas.engine.run import load_suite  # noqa: E402
from nas.trial.hooks import TrialHook  # noqa: E402
from nas.trial.resources import prepare_process  # noqa: E402
from nas.trial.run import data_fields, run_trial  # noqa: E402
from nas.trial.stages import make_trainer  # noqa: E402


def stage_times(args, overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=overrides)
    prepare_process()
    t0 = time.perf_counter()
    suite = load_suite(cfg)
    print(f"suite built in {time.perf_counter() - t0:.1f}s: tasks {', '.join(suite.tasks)}")
    arch = TransformerConfig(
        family=args.family,
        n_layer=args.n_layer,
        d_model=args.d_model,
        n_head=args.n_head,
        d_ff=args.d_ff,
        **data_fields(suite),
    )
    print(f"architecture: {arch.describe()}, {arch.num_params():,} params")
    run = plain(cfg)
    # CPU seconds of this process too: on a shared machine they stay close to what an idle one
    # would take (wall seconds grow with the load, CPU seconds of one thread hardly do).
    cpu: dict[str, float] = {}
    last = [time.process_time()]

    class CPUTimes(TrialHook):
        def on_stage(self, trial, stage: str, seconds: float, info: dict) -> None:
            now = time.process_time()
            cpu[stage], last[0] = now - last[0], now

    cpu_start = time.process_time()
    result = run_trial(arch, suite, run, [CPUTimes()], seed=0)
    cpu["total"] = time.process_time() - cpu_start
    for stage, seconds in result.timings.items():
        scores = result.task_metrics.get(stage, {})
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k != "score")
        print(
            f"{stage:>14}: {seconds:7.1f}s wall {cpu.get(stage, 0):7.1f}s cpu  "
            f"steps {result.steps.get(stage, '')}  {shown}"
        )
    f = run["finetune"]
    for name, module in result.finetuned.items():
        t, c = time.perf_counter(), time.process_time()
        make_trainer(run["trainer"], 1, val_every=1).validate(
            module, module.task.loader("validation", int(f["eval_batch_size"])), verbose=False
        )
        n = len(module.task.encoded("validation"))
        wall, used = time.perf_counter() - t, time.process_time() - c
        print(f"{name:>14}: one validation pass {wall:.1f}s wall {used:.1f}s cpu ({n} examples)")


def decode_speed(args) -> None:
    rng = random.Random(0)
    for family in ("decoder", "prefix_lm"):
        cfg = TransformerConfig(
            family=family,
            vocab_size=1024,
            max_seq_len=128,
            n_layer=args.n_layer,
            d_model=args.d_model,
            n_head=args.n_head,
            d_ff=args.d_ff,
        )
        model = build_model(cfg).eval()
        prompts = [  # [BOS] source [SEP] with random sources of 6-16 tokens
            [5, *(rng.randrange(7, 1024) for _ in range(rng.randint(6, 16))), 3] for _ in range(100)
        ]
        for use_cache in (True, False):
            t = time.perf_counter()
            greedy(model, prompts, 60, eos_id=6, use_cache=use_cache)
            g = time.perf_counter() - t
            t = time.perf_counter()
            beam_search(model, prompts, 60, 6, num_beams=4, use_cache=use_cache)
            b = time.perf_counter() - t
            how = "kv cache " if use_cache else "recompute"
            print(f"{family:>9} {how}: 100 prompts x 60 tokens: greedy {g:.2f}s, 4 beams {b:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="decoder")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=512)
    parser.add_argument("--decode-only", action="store_true")
    args, overrides = parser.parse_known_args()
    logging.basicConfig(level=logging.WARNING)
    if args.decode_only:
        prepare_process()
        decode_speed(args)
    else:
        stage_times(args, [*overrides, "storage=memory"])


if __name__ == "__main__":
    main()
