"""Trial throughput: pretraining tokens/s of adaptnas against a Hugging Face GPT-2 of the same size.

Four runners train the same shape (batch, sequence length, vocabulary, width, depth, heads, MLP
width) on the same random token blocks, side by side in one process:

* ``adaptnas``: the trial path itself: ``PretrainModule`` under
  ``nas.trial.stages.make_trainer`` (the Lightning trainer every trial uses, with the ``trainer``
  defaults of ``nas/config/schema.py``);
* ``plain``: the same model, loss and optimizer in a plain PyTorch loop (Lightning's cost is the
  gap between these two);
* ``gpt2_hf``: ``transformers``' ``GPT2LMHeadModel`` (SDPA attention, no pretrained weights) in a
  plain loop as a user would write it: AdamW, gradient clipping, ``zero_grad(set_to_none=True)``;
* ``gpt2_hf_fused``: the same with fused AdamW, as adaptnas steps (model against model).

Precision: adaptnas and the plain loop run at ``--precision`` (default ``auto``: what a trial
picks for that size, ``nas.trial.stages.precision_for``: bf16 autocast on a GPU, and on a CPU with
bf16 matrix units from d_model 256 on), GPT-2 at ``--gpt2-precision`` (default fp32, as a user runs
it). A runner name ending in ``_fp32`` or ``_bf16`` fixes its own (``adaptnas_fp32,adaptnas_bf16``
compares the two side by side).

Runners alternate in chunks of a few steps (rotating which goes first) and each reports the median
over its chunks, so load from other processes hits all of them alike. Achieved FLOP/s count the
model's matmuls and dense attention (``TransformerConfig.flops_per_sequence``, training = 3x the
forward) and are set against this machine's measured fp32 matmul roof.

    python benchmarks/throughput.py                       # d_model 128/256 x 2/4 layers, ~3 min
    python benchmarks/throughput.py --quick               # smoke mode, seconds
    python benchmarks/throughput.py --sizes 256x4 --precision bf16-mixed
    python benchmarks/throughput.py --threads 1 --clock cpu --sizes 128x4,256x4,512x4 \
        --runners adaptnas_fp32,adaptnas_bf16,gpt2_hf      # bf16 against fp32, loaded machine
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks.common import (  # noqa: E402
    base_parser,
    fmt_si,
    machine,
    matmul_peak,
    median,
    print_table,
    run_and_write,
    set_threads,
    sync,
    warn_if_loaded,
)
from lightning_modules.config import TransformerConfig  # noqa: E402
from lightning_modules.model import build_model  # noqa: E402
from lightning_modules.objectives import pretraining_loss  # noqa: E402
from lightning_modules.optim import adamw_with_schedule, check_loss  # noqa: E402
from lightning_modules.pretrain import PretrainModule  # noqa: E402
from lightning_modules.tasks.base import tensor_loader  # noqa: E402
from nas.config.schema import TrainerConfig  # noqa: E402
from nas.trial.resources import prepare_process  # noqa: E402
from nas.trial.stages import device_loader, make_trainer, precision_for  # noqa: E402

RUNNERS = ("adaptnas", "plain", "gpt2_hf", "gpt2_hf_fused")
# Runner-name suffixes that fix a runner's precision.
PRECISION_SUFFIXES = {"_fp32": "32-true", "_bf16": "bf16-mixed"}
# Ids of the objectives' special tokens; a decoder's causal LM never reads them.
SPECIAL_IDS = {"mask": 4, "n_special": 7}

# The runners' clock: wall time, or with ``--clock cpu`` this process's CPU time, which a machine
# shared with other work barely stretches when torch runs one thread (``--threads 1``).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = [time.perf_counter]


def now() -> float:
    """The runners' clock (``--clock``)."""
    return _clock[0]()


logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"128x2,256x4"`` -> ``[(128, 2), (256, 4)]`` (d_model x layers)."""
    sizes = []
    for part in text.split(","):
        try:
            d, n = part.lower().split("x")
            sizes.append((int(d), int(n)))
        except ValueError:
            raise SystemExit(
                f"throughput: error: --sizes entry {part!r} is not DxL, e.g. 256x4"
            ) from None
    return sizes


def adaptnas_arch(d_model: int, n_layer: int, head_dim: int, vocab: int, seq_len: int):
    """The adaptnas decoder that matches GPT-2's layout: learned positions, GELU, pre-LayerNorm."""
    return TransformerConfig(
        family="decoder",
        vocab_size=vocab,
        max_seq_len=seq_len,
        n_layer=n_layer,
        d_model=d_model,
        n_head=max(1, d_model // head_dim),
        d_ff=4 * d_model,
        mlp="gelu",
        norm="layernorm",
        norm_position="pre",
        pos="learned",
        dropout=0.0,
        tie_embeddings=True,
    )


def gpt2_model(arch: TransformerConfig):
    """``transformers``' GPT-2 of the same shape, SDPA attention, random init, dropout off."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=arch.vocab_size,
        n_positions=arch.max_seq_len,
        n_embd=arch.d_model,
        n_layer=arch.n_layer,
        n_head=arch.n_head,
        n_inner=arch.d_ff[0],
        activation_function="gelu",  # exact GELU, as adaptnas' "gelu"
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    model = GPT2LMHeadModel(config)
    if model.config._attn_implementation != "sdpa":
        raise RuntimeError(f"GPT-2 attention is {model.config._attn_implementation}, not sdpa")
    return model


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``bf16-mixed``, nothing for ``32-true``."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _StepClock(pl.Callback):
    """Records the wall-clock time at the end of every training batch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        self.times.append(now())


@dataclass
class Chunk:
    """One timed chunk: tokens/s over the steps after the warm-up ones; ``setup`` in seconds."""

    tokens_per_s: float
    setup_s: float = 0.0


def block_loader(blocks: torch.Tensor, batch: int, seed: int, pin: bool) -> DataLoader:
    """Shuffled full batches of rows of ``blocks``; pinned host memory when ``pin``."""
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    batches = [order[i : i + batch] for i in range(0, len(blocks) - batch + 1, batch)]
    return DataLoader(batches, batch_size=None, collate_fn=blocks.__getitem__, pin_memory=pin)


class Runner:
    """Trains one model in chunks of steps; subclasses implement ``chunk``."""

    name = ""

    def __init__(self, blocks: torch.Tensor, batch: int, device: torch.device, precision: str):
        self.blocks, self.batch, self.device, self.precision = blocks, batch, device, precision
        self.tokens_per_step = batch * (blocks.shape[1] - 1)
        self.calls = 0

    def chunk(self, steps: int, warmup: int) -> Chunk:
        raise NotImplementedError


class LightningRunner(Runner):
    """The trial path: ``PretrainModule`` fitted by the trainer ``make_trainer`` builds.

    Batches come from the trial's own loader (``tensor_loader``, pinned on a GPU by
    ``device_loader``). With ``compile_model`` the backbone's forward is compiled once, as
    ``nas.trial.stages.compiled_backbone`` does for the length of a trial's pretraining.
    """

    def __init__(self, name, arch, trainer_cfg, *args, compile_model: bool = False):
        super().__init__(*args)
        self.name = name
        self.model = build_model(arch)
        self.trainer_cfg = {**trainer_cfg, "precision": self.precision, "compile": False}
        if compile_model:
            self.model.backbone.forward = torch.compile(self.model.backbone.forward)
        self.n_params = self.model.num_params()

    def chunk(self, steps: int, warmup: int) -> Chunk:
        self.calls += 1
        clock = _StepClock(self.device)
        module = PretrainModule(self.model, SPECIAL_IDS, total_steps=1000)
        trainer = make_trainer(
            self.trainer_cfg, warmup + steps, val_every=warmup + steps, callbacks=[clock]
        )
        loader = tensor_loader(self.blocks, self.batch, True, self.calls)
        t0 = now()
        with warnings.catch_warnings():  # chunks fit without validation on purpose
            warnings.filterwarnings("ignore", ".*`validation_step` but have no `val_dataloader`.*")
            trainer.fit(module, train_dataloaders=device_loader(loader, self.trainer_cfg))
        setup = clock.times[0] - t0 if clock.times else math.nan
        timed = clock.times[warmup - 1 :] if warmup else [t0, *clock.times]
        return Chunk(steps * self.tokens_per_step / (timed[-1] - timed[0]), setup)


class LoopRunner(Runner):
    """A plain PyTorch training loop: forward, loss, backward, clip, step, zero_grad."""

    def __init__(self, name: str, model, optimizer, scheduler, loss_fn, *args):
        super().__init__(*args)
        self.name, self.model, self.optimizer, self.scheduler = name, model, optimizer, scheduler
        self.loss_fn = loss_fn
        self.n_params = sum(p.numel() for p in model.parameters())

    def step(self, block: torch.Tensor) -> None:
        block = block.to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            loss = self.loss_fn(self.model, block)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def chunk(self, steps: int, warmup: int) -> Chunk:
        self.calls += 1
        pin = self.device.type == "cuda"
        batches = iter(block_loader(self.blocks, self.batch, self.calls, pin))
        t0 = now()
        for _ in range(warmup):
            self.step(next(batches))
        sync(self.device)
        t1 = now()
        for _ in range(steps):
            self.step(next(batches))
        sync(self.device)
        return Chunk(steps * self.tokens_per_step / (now() - t1), t1 - t0)


def adaptnas_loss(model, block: torch.Tensor) -> torch.Tensor:
    """The trial's own loss and divergence check (as ``PretrainModule.training_step``)."""
    loss = pretraining_loss(model, block, SPECIAL_IDS)
    check_loss(loss, 1e9, "pretrain", 0)
    return loss


def gpt2_loss(model, block: torch.Tensor) -> torch.Tensor:
    """Next-token loss of a GPT-2 on the same shifted block (no KV cache while training)."""
    x, y = block[:, :-1], block[:, 1:]
    logits = model(input_ids=x, use_cache=False).logits  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


def split_name(name: str, precision: str, gpt2_precision: str | None) -> tuple[str, str, bool]:
    """``(base runner, its precision, compiled)`` of a runner name such as ``adaptnas_bf16``."""
    base, compiled = name.removesuffix("_compiled"), name.endswith("_compiled")
    for suffix, fixed in PRECISION_SUFFIXES.items():
        if base.endswith(suffix):
            return base.removesuffix(suffix), fixed, compiled
    if base.startswith("gpt2") and gpt2_precision is not None:
        return base, gpt2_precision, compiled
    return base, precision, compiled


def make_runners(
    arch: TransformerConfig,
    blocks: torch.Tensor,
    batch: int,
    device: torch.device,
    precision: str,
    trainer_cfg: dict[str, Any],
    runners: Sequence[str] = RUNNERS,
    seed: int = 0,
    gpt2_precision: str | None = None,
) -> list[Runner]:
    """Build the runners named in ``runners`` for one architecture.

    Names are ``adaptnas``, ``plain``, ``gpt2_hf`` and ``gpt2_hf_fused`` (GPT-2 with fused
    AdamW, as adaptnas uses), each optionally with ``_fp32`` / ``_bf16`` (its precision; else
    ``precision``, or ``gpt2_precision`` for GPT-2 when given) and then ``_compiled`` (the
    model's forward through ``torch.compile``).
    """
    out: list[Runner] = []
    for name in runners:
        base, own_precision, compiled = split_name(name, precision, gpt2_precision)
        common = (blocks, batch, device, own_precision)
        torch.manual_seed(seed)
        if base == "adaptnas":
            out.append(LightningRunner(name, arch, trainer_cfg, *common, compile_model=compiled))
            continue
        if base == "plain":
            model = build_model(arch).to(device)
            opt = adamw_with_schedule(model, 1e-3, 0.01, 1000)
            optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
            loss_fn = adaptnas_loss
            if compiled:
                model.backbone.forward = torch.compile(model.backbone.forward)
        elif base in ("gpt2_hf", "gpt2_hf_fused"):
            model = gpt2_model(arch).to(device)
            # torch's default AdamW (a loop over tensors on a CPU), or the fused kernel.
            fused = {"fused": True} if base == "gpt2_hf_fused" else {}
            optimizer = torch.optim.AdamW(
                model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01, **fused
            )
            scheduler, loss_fn = None, gpt2_loss
            if compiled:
                model.transformer.forward = torch.compile(model.transformer.forward)
        else:
            raise SystemExit(
                f"throughput: error: unknown runner {name!r} "
                f"(known: {', '.join(RUNNERS)}, each optionally with _compiled)"
            )
        out.append(LoopRunner(name, model, optimizer, scheduler, loss_fn, *common))
    return out


def measure(
    runners: list[Runner], steps: int, warmup: int, repeats: int, prime: bool = True
) -> dict[str, dict[str, Any]]:
    """Alternate the runners chunk by chunk (rotating the order); medians per runner.

    With ``prime`` every runner first runs one untimed chunk (allocations, kernel selection,
    ``torch.compile``); its seconds are reported as ``first_chunk_s``.
    """
    first: dict[str, float] = {}
    if prime:
        for runner in runners:
            t0 = time.perf_counter()
            runner.chunk(1, 1)
            first[runner.name] = time.perf_counter() - t0
    samples: dict[str, list[float]] = {r.name: [] for r in runners}
    setups: dict[str, list[float]] = {r.name: [] for r in runners}
    for rep in range(repeats):
        order = runners[rep % len(runners) :] + runners[: rep % len(runners)]
        for runner in order:
            chunk = runner.chunk(steps, warmup)
            samples[runner.name].append(chunk.tokens_per_s)
            setups[runner.name].append(chunk.setup_s)
    return {
        name: {
            "tokens_per_s": median(values),
            "samples": values,
            "setup_s": median(setups[name]),
            "first_chunk_s": first.get(name, math.nan),
        }
        for name, values in samples.items()
    }


def run(args) -> dict[str, Any]:
    """Measure every size; returns the JSON payload."""
    threads = set_threads(args.threads)
    _clock[0] = CLOCKS[args.clock]
    prepare_process()  # the process settings every search and train run uses
    if args.matmul_precision:
        # 'medium' lets oneDNN feed fp32 matmuls to AMX in bf16 (like TF32 on a GPU).
        torch.set_float32_matmul_precision(args.matmul_precision)
    device = torch.device(args.device if args.device != "auto" else _auto_device())
    trainer_cfg = asdict(TrainerConfig())  # conf/trainer/default.yaml's: the schema's
    warn_if_loaded()
    quick = args.quick
    peak_kwargs: dict[str, Any] = {"device": device, "repeats": 2 if quick else 5}
    if quick:
        peak_kwargs["shapes"] = ((256, 256, 256), (512, 512, 512))
    matmul_precision = torch.get_float32_matmul_precision()  # 'high', as prepare_process() set it
    peaks = {
        "fp32": matmul_peak(torch.float32, precision="highest", **peak_kwargs),
        "bf16": matmul_peak(torch.bfloat16, **peak_kwargs),
    }
    # The roof at the runners' setting ('high': TF32 on a GPU, plain fp32 on a CPU; 'medium':
    # bf16 inputs on AMX) sets their MFU; fraction_of_fp32_peak is always against true fp32.
    peaks["fp32_at_setting"] = (
        peaks["fp32"]
        if matmul_precision == "highest"
        else matmul_peak(torch.float32, precision=matmul_precision, **peak_kwargs)
    )
    print(
        f"matmul roof: fp32 {fmt_si(peaks['fp32']['flops'], 'FLOP/s')}, "
        f"at matmul precision '{matmul_precision}' "
        f"{fmt_si(peaks['fp32_at_setting']['flops'], 'FLOP/s')}, "
        f"bf16 {fmt_si(peaks['bf16']['flops'], 'FLOP/s')}  ({threads} threads, {device})"
    )
    gen = torch.Generator().manual_seed(0)
    results = []
    for d_model, n_layer in parse_sizes(args.sizes):
        arch = adaptnas_arch(d_model, n_layer, args.head_dim, args.vocab, args.seq_len)
        # auto: what a trial of this size runs at (nas.trial.stages.precision_for).
        precision = precision_for(args.precision, arch)
        n_blocks = args.batch * (args.warmup + args.steps) * 2
        blocks = torch.randint(7, args.vocab, (n_blocks, args.seq_len + 1), generator=gen)
        runners = make_runners(
            arch,
            blocks,
            args.batch,
            device,
            precision,
            trainer_cfg,
            runner_names(args),
            gpt2_precision=args.gpt2_precision,
        )
        measured = measure(runners, args.steps, args.warmup, args.repeats)
        flops_tok = 3 * arch.flops_per_sequence(args.seq_len) / args.seq_len
        entry: dict[str, Any] = {
            "d_model": d_model,
            "n_layer": n_layer,
            "n_head": arch.n_head,
            "d_ff": arch.d_ff[0],
            "params": {r.name: r.n_params for r in runners},
            "train_flops_per_token": flops_tok,
            "auto_precision": precision_for("auto", arch),
            "runners": measured,
        }
        for runner in runners:
            m = measured[runner.name]
            m["precision"] = runner.precision
            # MFU against the roof of the precision the matmuls run in.
            bf16 = runner.precision.startswith("bf16")
            m["flops_per_s"] = m["tokens_per_s"] * flops_tok
            m["fraction_of_fp32_peak"] = m["flops_per_s"] / peaks["fp32"]["flops"]
            m["mfu"] = m["flops_per_s"] / peaks["bf16" if bf16 else "fp32_at_setting"]["flops"]
        tps = {name.removesuffix("_compiled"): m["tokens_per_s"] for name, m in measured.items()}
        # The trial path at the precision a trial of this size picks: ``adaptnas`` itself, or
        # its fixed-precision twin when only those ran.
        suffix = {v: k for k, v in PRECISION_SUFFIXES.items()}.get(entry["auto_precision"], "")
        if "adaptnas" not in tps and f"adaptnas{suffix}" in tps:
            tps["adaptnas"] = tps[f"adaptnas{suffix}"]
        if "adaptnas_fp32" in tps and "adaptnas_bf16" in tps:
            entry["bf16_vs_fp32"] = tps["adaptnas_bf16"] / tps["adaptnas_fp32"]
        if "gpt2_hf" in tps:
            entry["adaptnas_vs_gpt2"] = tps.get("adaptnas", math.nan) / tps["gpt2_hf"]
            if "plain" in tps:
                entry["plain_vs_gpt2"] = tps["plain"] / tps["gpt2_hf"]
        if "gpt2_hf_fused" in tps:
            entry["adaptnas_vs_gpt2_fused"] = tps.get("adaptnas", math.nan) / tps["gpt2_hf_fused"]
        if "plain" in tps and "adaptnas" in tps:
            entry["lightning_cost"] = 1.0 - tps["adaptnas"] / tps["plain"]
        results.append(entry)
        _print_size(entry)
    return {
        "benchmark": "throughput",
        "machine": machine(),
        "settings": {
            "sizes": args.sizes,
            "batch": args.batch,
            "seq_len": args.seq_len,
            "vocab": args.vocab,
            "head_dim": args.head_dim,
            "steps_per_chunk": args.steps,
            "warmup_steps": args.warmup,
            "repeats": args.repeats,
            "precision": args.precision,
            "gpt2_precision": args.gpt2_precision,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "compile": bool(args.compile),
            "clock": args.clock,
            "device": str(device),
            "quick": quick,
        },
        "peak": peaks,
        "results": results,
    }


def runner_names(args) -> list[str]:
    """The runners to build: ``--runners``, all compiled with ``--compile``."""
    names = [n.strip() for n in args.runners.split(",") if n.strip()]
    if args.compile:
        names = [n if n.endswith("_compiled") else f"{n}_compiled" for n in names]
    return names


def _auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _print_size(entry: dict[str, Any]) -> None:
    print(
        f"\nd_model {entry['d_model']} x {entry['n_layer']} layers "
        f"({entry['n_head']} heads, d_ff {entry['d_ff']}; params "
        + ", ".join(f"{k} {v:,}" for k, v in entry["params"].items())
        + ")"
    )
    rows = []
    for name, m in entry["runners"].items():
        rows.append(
            [
                name,
                m["precision"],
                f"{m['tokens_per_s']:,.0f}",
                fmt_si(m["flops_per_s"], "FLOP/s"),
                f"{m['fraction_of_fp32_peak']:.2f}",
                " ".join(f"{s:,.0f}" for s in m["samples"]),
            ]
        )
    print_table(
        ["runner", "precision", "tokens/s", "achieved", "of fp32 roof", "chunks (tokens/s)"], rows
    )
    parts = [f"auto precision {entry['auto_precision']}"]
    if "bf16_vs_fp32" in entry:
        parts.append(f"adaptnas bf16 / fp32 {entry['bf16_vs_fp32']:.2f}x")
    if "adaptnas_vs_gpt2" in entry:
        parts.append(f"adaptnas / GPT-2 {entry['adaptnas_vs_gpt2']:.2f}x")
        if "plain_vs_gpt2" in entry:
            parts.append(f"plain / GPT-2 {entry['plain_vs_gpt2']:.2f}x")
    if "adaptnas_vs_gpt2_fused" in entry:
        parts.append(f"adaptnas / GPT-2 with fused AdamW {entry['adaptnas_vs_gpt2_fused']:.2f}x")
    if "lightning_cost" in entry:
        parts.append(f"Lightning's cost {100 * entry['lightning_cost']:.1f}%")
    if parts:
        print("  ".join(parts))


def build_parser():
    """The command-line options."""
    p = base_parser("throughput", __doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes", default="128x2,128x4,256x2,256x4", help="d_model x layers, comma-separated"
    )
    p.add_argument("--batch", type=int, default=32, help="sequences per step (trial default 32)")
    p.add_argument(
        "--seq-len", type=int, default=128, help="tokens per sequence (trial default 128)"
    )
    p.add_argument("--vocab", type=int, default=1024, help="vocabulary (trial default 1024)")
    p.add_argument("--head-dim", type=int, default=32, help="n_head = d_model / head_dim")
    p.add_argument("--steps", type=int, default=6, help="timed steps per chunk")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of a chunk")
    p.add_argument("--repeats", type=int, default=7, help="chunks per runner (median)")
    p.add_argument("--runners", default=",".join(RUNNERS), help="which runners, comma-separated")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "32-true", "bf16-mixed"],
        help="adaptnas' and the plain loop's precision (auto: what a trial of the size picks)",
    )
    p.add_argument(
        "--gpt2-precision",
        default="32-true",
        choices=["32-true", "bf16-mixed"],
        help="GPT-2's precision (default fp32, as a user runs it)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile every model")
    p.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="time steps by wall clock or by this process's CPU time (a loaded machine, 1 thread)",
    )
    p.add_argument(
        "--matmul-precision",
        choices=["highest", "high", "medium"],
        default=None,
        help="torch.set_float32_matmul_precision for every runner (default: the trial's, 'high')",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


QUICK = {
    "sizes": "64x1",
    "batch": 4,
    "seq_len": 32,
    "vocab": 256,
    "steps": 2,
    "warmup": 1,
    "repeats": 1,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    args = build_parser().parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == build_parser().get_default(key):
                setattr(args, key, value)
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
