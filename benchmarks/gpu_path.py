"""GPU path: MFU of trial pretraining with bf16, SDPA's fused kernels, torch.compile, pinned memory.

What a trial does on a GPU (``trainer.accelerator=auto``, ``trainer.precision=auto``):

* bf16 mixed precision (``nas.trial.stages.precision_for``: ``auto`` -> ``bf16-mixed`` on a GPU);
* attention through ``F.scaled_dot_product_attention``; a decoder passes no mask but
  ``is_causal=True`` and plain MHA does not ask for GQA, so the flash kernel serves them (the
  probe below shows which kernel accepts each of the model's mask kinds);
* pretraining batches from pinned host memory (``nas.trial.stages.device_loader``);
* optionally ``torch.compile`` of the backbone for pretraining (``trainer.compile=true``).

It prints, in this order:

1. which SDPA kernel each kind of attention call gets (``torch._fused_sdp_choice``, the kernel
   ``F.scaled_dot_product_attention`` picks) and which kernels would accept it;
2. for a few sizes, pretraining tokens/s and MFU (model FLOPs per second over the GPU's measured
   bf16 matmul roof) of the trial path (``adaptnas``: Lightning + PretrainModule), of a plain loop
   with the same model and precision (``plain``) and of the trial path with ``torch.compile``
   (``adaptnas_compiled``, with its compile time); no new size starts after ``--max-minutes``;
3. the whole staged trial (``nas.trial.run.run_trial``) of a d_model 512 decoder on the built-in
   suite, all five tasks, at the trial's precision (bf16 on a GPU): seconds, tokens/s and MFU of
   each stage (pretraining longer than a search's, ``--trial-pretrain-tokens``, so that its MFU
   is measured past the warm-up) and every task's score.

The default run is sized for under 8 minutes on one GPU (an estimate: no GPU has run it yet;
``make gpu-check`` runs it after the ``gpu`` tests). Without a GPU it runs a reduced mode on the
CPU (tiny sizes, no compile, a tiny staged trial) so that the script itself stays tested.

    python benchmarks/gpu_path.py                          # on a GPU
    python benchmarks/gpu_path.py --sizes 256x4 --batch 64 --seq-len 256 --no-trial
    python benchmarks/gpu_path.py --quick                  # reduced mode (CPU or GPU)
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.common import (  # noqa: E402
    base_parser,
    fmt_si,
    machine,
    matmul_peak,
    print_table,
    run_and_write,
    set_threads,
    warn_if_loaded,
)
from benchmarks.throughput import adaptnas_arch, make_runners, measure, parse_sizes  # noqa: E402
from lightning_modules.config import TransformerConfig  # noqa: E402
from nas.config.schema import TrainerConfig  # noqa: E402
from nas.engine.run import load_suite  # noqa: E402
from nas.trial.resources import prepare_process  # noqa: E402
from nas.trial.run import data_fields, run_trial  # noqa: E402
from nas.trial.stages import precision_for  # noqa: E402

GPU_SIZES = "256x4,512x8,1024x12"
# The staged trial: (d_model, n_layer, n_head, d_ff) on a GPU and in the reduced mode.
TRIAL_ARCH = (512, 4, 8, 2048)
REDUCED_TRIAL_ARCH = (64, 1, 2, 128)
# The reduced mode's staged trial: the test suite's tiny budgets (tests/conftest.py).
_TINY_GEN = ["source.n_train=32", "source.n_val=8", "source.n_test=8", "max_new_tokens=8"]
REDUCED_TRIAL = [
    "data.vocab_size=384",
    "data.seq_len=32",
    "data.val_blocks=4",
    "data.corpus.n_sentences=600",
    "pretrain.tokens=4096",
    "pretrain.batch_size=16",
    "finetune.steps=4",
    "finetune.batch_size=16",
    "finetune.eval_batch_size=32",
    *(
        f"tasks.{t}.{o}"
        for t in ("qa", "sentiment", "ner")
        for o in ("source.n_train=32", "source.n_val=16", "source.n_test=16", "steps=null")
    ),
    "tasks.qa.max_len=96",
    "tasks.ner.max_len=32",
    *(f"tasks.translation.{o}" for o in [*_TINY_GEN, "max_len=32"]),
    *(f"tasks.summarization.{o}" for o in [*_TINY_GEN, "max_len=64"]),
]
GPU_RUNNERS = "adaptnas,plain,adaptnas_compiled"
REDUCED = {
    "sizes": "32x1,64x2",
    "batch": 4,
    "seq_len": 32,
    "vocab": 256,
    "head_dim": 16,
    "steps": 2,
    "warmup": 1,
    "repeats": 1,
    "runners": "adaptnas,plain",
}


def sdpa_probe(device: torch.device, dtype: torch.dtype, head_dim: int) -> dict[str, dict]:
    """Which SDPA kernel accepts each kind of call the model makes.

    Cases: a causal decoder (``is_causal=True``, no mask), the same with grouped-query heads
    (``enable_gqa``), a padded encoder (a bool mask) and ALiBi (a float bias). For each backend:
    ``"ok"`` or the first line of its refusal.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen_names = {int(b): name.lower() for name, b in SDPBackend.__members__.items()}

    b, h, t = 4, 8, 256 if device.type == "cuda" else 32
    q = torch.randn(b, h, t, head_dim, device=device, dtype=dtype)
    kv = torch.randn(b, h, t, head_dim, device=device, dtype=dtype)
    kv_gqa = torch.randn(b, 2, t, head_dim, device=device, dtype=dtype)
    pad = torch.ones(b, 1, t, t, dtype=torch.bool, device=device)
    pad[:, :, :, t - 8 :] = False
    bias = torch.zeros(1, h, t, t, device=device, dtype=dtype)
    cases = {
        "causal (decoder)": (q, kv, kv, {"is_causal": True}),
        "causal GQA": (q, kv_gqa, kv_gqa, {"is_causal": True, "enable_gqa": True}),
        "bool mask (padding)": (q, kv, kv, {"attn_mask": pad}),
        "float bias (ALiBi)": (q, kv, kv, {"attn_mask": bias}),
    }
    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    out: dict[str, dict] = {}
    for case, (qq, kk, vv, kwargs) in cases.items():
        out[case] = {}
        choice = torch._fused_sdp_choice(
            qq,
            kk,
            vv,
            kwargs.get("attn_mask"),
            0.0,
            kwargs.get("is_causal", False),
            enable_gqa=kwargs.get("enable_gqa", False),
        )
        out[case]["chosen"] = chosen_names.get(int(choice), str(choice))
        for name, backend in backends.items():
            try:
                with sdpa_kernel([backend]), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the refusal's reasons come as warnings too
                    F.scaled_dot_product_attention(qq, kk, vv, **kwargs)
                out[case][name] = "ok"
            except (RuntimeError, NotImplementedError) as err:
                out[case][name] = str(err).strip().splitlines()[0][:120] if str(err) else "refused"
    return out


def run(args) -> dict[str, Any]:
    """Measure every size; returns the JSON payload."""
    threads = set_threads(args.threads)
    prepare_process()
    on_gpu = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if on_gpu else "cpu")
    reduced = args.quick or not on_gpu
    if reduced:
        for key, value in REDUCED.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        if not on_gpu:
            print("no GPU: reduced mode on the CPU (tiny sizes; the figures only prove the path)")
    defaults = {
        "sizes": GPU_SIZES,
        "batch": 32,
        "seq_len": 128,
        "vocab": 1024,
        "head_dim": 64,
        "steps": 20,
        "warmup": 5,
        "repeats": 3,
        "runners": GPU_RUNNERS,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    warn_if_loaded()
    precision = precision_for("auto") if args.precision == "auto" else args.precision
    trainer_cfg = dataclasses.asdict(TrainerConfig())  # the schema's trainer defaults
    trainer_cfg["accelerator"] = "gpu" if on_gpu else "cpu"
    shapes = ((8192, 8192, 8192), (4096, 4096, 4096), (4096, 4096, 1024)) if on_gpu else None
    if reduced and not on_gpu:
        shapes = ((256, 256, 256),)
    peak_kwargs: dict[str, Any] = {"device": device, "repeats": 3}
    if shapes:
        peak_kwargs["shapes"] = shapes
    peaks = {
        "bf16": matmul_peak(torch.bfloat16, **peak_kwargs),
        "fp32": matmul_peak(
            torch.float32, precision=torch.get_float32_matmul_precision(), **peak_kwargs
        ),
    }
    peak = peaks["bf16" if precision.startswith("bf16") else "fp32"]["flops"]
    attn_dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    probe = sdpa_probe(device, attn_dtype, args.head_dim)
    info = machine()
    if on_gpu:
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
        )
    print(
        f"{info['gpu'] or info['cpu']}: bf16 roof {fmt_si(peaks['bf16']['flops'], 'FLOP/s')}, "
        f"fp32 roof {fmt_si(peaks['fp32']['flops'], 'FLOP/s')}; trial precision {precision}"
    )
    print("\nSDPA: the kernel each kind of attention call gets, and the kernels that accept it")
    names = [n for n in next(iter(probe.values())) if n != "chosen"]
    print_table(
        ["call", "chosen", *names],
        [
            [case, r["chosen"], *("ok" if r[n] == "ok" else "no" for n in names)]
            for case, r in probe.items()
        ],
    )
    started = time.perf_counter()
    results, skipped = [], []
    gen = torch.Generator().manual_seed(0)
    for d_model, n_layer in parse_sizes(args.sizes):
        if time.perf_counter() - started > 60 * args.max_minutes:
            skipped.append(f"{d_model}x{n_layer}")
            continue
        arch = adaptnas_arch(d_model, n_layer, args.head_dim, args.vocab, args.seq_len)
        n_blocks = args.batch * (args.warmup + args.steps) * 2
        blocks = torch.randint(7, args.vocab, (n_blocks, args.seq_len + 1), generator=gen)
        names = [n.strip() for n in args.runners.split(",") if n.strip()]
        runners = make_runners(arch, blocks, args.batch, device, precision, trainer_cfg, names)
        measured = measure(runners, args.steps, args.warmup, args.repeats)
        flops_tok = 3 * arch.flops_per_sequence(args.seq_len) / args.seq_len
        for m in measured.values():
            m["flops_per_s"] = m["tokens_per_s"] * flops_tok
            m["mfu"] = m["flops_per_s"] / peak
        entry = {
            "d_model": d_model,
            "n_layer": n_layer,
            "n_head": arch.n_head,
            "params": arch.num_params(),
            "train_flops_per_token": flops_tok,
            "runners": measured,
        }
        results.append(entry)
        rows = [
            [
                f"{d_model}x{n_layer}",
                name,
                f"{m['tokens_per_s']:,.0f}",
                fmt_si(m["flops_per_s"], "FLOP/s"),
                f"{m['mfu']:.3f}",
                f"{m['first_chunk_s']:.2f}",
            ]
            for name, m in measured.items()
        ]
        print()
        print_table(["size", "runner", "tokens/s", "achieved", "MFU", "first chunk s"], rows)
        if on_gpu:
            torch.cuda.empty_cache()
    if skipped:
        print(f"\nskipped (past --max-minutes {args.max_minutes}): {', '.join(skipped)}")
    trial = None
    if args.trial:
        trial = staged_trial(args, on_gpu, reduced, peaks)
    payload = {
        "benchmark": "gpu_path",
        "machine": {**info, "torch_threads": threads},
        "settings": {
            "device": str(device),
            "reduced": reduced,
            "precision": precision,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            **{k: getattr(args, k) for k in defaults},
        },
        "peak": peaks,
        "sdpa_probe": probe,
        "results": results,
        "skipped": skipped,
        "trial": trial,
        "wall_s": time.perf_counter() - started,
    }
    best = max(
        (m["mfu"] for r in results for m in r["runners"].values() if math.isfinite(m["mfu"])),
        default=math.nan,
    )
    print(f"\nbest MFU {best:.3f} ({precision}, batch {args.batch} x {args.seq_len} tokens)")
    print(f"wall time {payload['wall_s']:.0f} s")
    return payload


def staged_trial(args, on_gpu: bool, reduced: bool, peaks: dict) -> dict[str, Any]:
    """The whole staged trial of one architecture on the built-in suite; per-stage figures.

    Tokens of a stage are its training tokens (pretraining: steps x batch x block length;
    fine-tuning: steps x batch x the mean real length of the task's training inputs); its MFU is
    their training FLOPs (3x the forward) over the stage's wall time against the roof of the
    stage's precision, so a fine-tuning stage's MFU also pays for its validation pass (decoding,
    for generation tasks).
    """
    from hydra import compose, initialize_config_dir

    from nas.config.compose import CONF_DIR
    from nas.config.nodes import plain

    d_model, n_layer, n_head, d_ff = REDUCED_TRIAL_ARCH if reduced else TRIAL_ARCH
    overrides = ["task=suite_all", "storage=memory", *(REDUCED_TRIAL if reduced else [])]
    if not reduced:
        overrides.append(f"pretrain.tokens={args.trial_pretrain_tokens}")
    overrides += args.trial_override or []
    with tempfile.TemporaryDirectory() as root:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("search", overrides=[f"paths.root={root}", *overrides])
        suite = load_suite(cfg)
        run = plain(cfg)
        run["trainer"]["accelerator"] = "gpu" if on_gpu else "cpu"
        if args.precision != "auto":
            run["trainer"]["precision"] = args.precision
        arch = TransformerConfig(
            family="decoder",
            n_layer=n_layer,
            d_model=d_model,
            n_head=n_head,
            d_ff=d_ff,
            **data_fields(suite),
        )
        precision = precision_for(run["trainer"]["precision"], arch)
        print(
            f"\nstaged trial: {arch.describe()}, {arch.num_params():,} params, {precision}, "
            f"tasks {', '.join(suite.tasks)}"
        )
        result = run_trial(arch, suite, run, seed=0)
    peak = peaks["bf16" if precision.startswith("bf16") else "fp32"]["flops"]
    stages: dict[str, dict[str, Any]] = {}
    p, f = run["pretrain"], run["finetune"]
    for stage, seconds in result.timings.items():
        if stage == "total":
            continue
        steps = int(result.steps.get(stage, 0))
        if stage == "pretrain":
            batch, length = int(p["batch_size"]), suite.seq_len
        else:
            task = suite.tasks[stage]
            task_cfg = run["tasks"].get(stage, {}) or {}
            batch = int(task_cfg.get("batch_size") or f["batch_size"])
            mask = task.encoded("train").tensors["attention_mask"]
            length = max(1, round(float(mask.sum(1).float().mean())))
        tokens = steps * batch * length
        flops = 3 * arch.flops_per_sequence(length) / length * tokens
        stages[stage] = {
            "seconds": seconds,
            "steps": steps,
            "train_tokens": tokens,
            "tokens_per_s": tokens / seconds if seconds > 0 else math.nan,
            "mfu": flops / seconds / peak if seconds > 0 else math.nan,
            "score": result.task_scores.get(stage),
        }
    rows = [
        [
            stage,
            str(m["steps"]),
            f"{m['seconds']:.1f}",
            f"{m['tokens_per_s']:,.0f}",
            f"{m['mfu']:.3f}",
            "" if m["score"] is None else f"{m['score']:.3f}",
        ]
        for stage, m in stages.items()
    ]
    print_table(["stage", "steps", "seconds", "tokens/s", "MFU", "score"], rows)
    total = result.timings.get("total", math.nan)
    print(f"trial: {total:.1f} s, adaptability {result.adaptability:.3f}")
    return {
        "architecture": arch.to_dict(),
        "describe": arch.describe(),
        "precision": precision,
        "overrides": overrides,
        "stages": stages,
        "total_s": total,
        "adaptability": result.adaptability,
    }


def build_parser():
    """The command-line options (unset ones take the GPU defaults, or the reduced mode's)."""
    p = base_parser("gpu_path", __doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help=f"d_model x layers (GPU default {GPU_SIZES})")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (default 32)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default 128)")
    p.add_argument("--vocab", type=int, default=None, help="vocabulary (default 1024)")
    p.add_argument("--head-dim", type=int, default=None, help="n_head = d_model / head_dim (64)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per chunk (20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per chunk (5)")
    p.add_argument("--repeats", type=int, default=None, help="chunks per runner (3)")
    p.add_argument("--runners", default=None, help=f"comma-separated (default {GPU_RUNNERS})")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "32-true", "bf16-mixed"],
        help="auto: the trial's choice (bf16-mixed on a GPU)",
    )
    p.add_argument("--device", default="auto", help="auto or cpu")
    p.add_argument(
        "--max-minutes", type=float, default=4.0, help="start no new size after this long"
    )
    p.add_argument(
        "--no-trial", dest="trial", action="store_false", help="skip the staged trial (part 3)"
    )
    p.add_argument(
        "--trial-pretrain-tokens",
        type=int,
        default=4_194_304,
        help="pretraining tokens of the staged trial on a GPU (1024 steps of 32 x 128)",
    )
    p.add_argument(
        "--trial-override",
        action="append",
        metavar="KEY=VALUE",
        help="a Hydra override of conf/search.yaml for the staged trial (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    args = build_parser().parse_args(argv)
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
