"""What every benchmark shares: thread settings, the machine's description, the matmul roof, JSON.

Benchmarks are scripts (``python benchmarks/<name>.py``) and importable modules (the smoke tests
call their ``main(argv)``), so this module also puts the repository root on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python benchmarks/x.py`` puts benchmarks/, not the repo, first
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402  (after the path fix above, like every import of the project)

DEFAULT_OUT = REPO / "outputs" / "benchmarks"
SCHEMA_VERSION = 1


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick``, ``--out``, ``--threads``."""
    parser = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    parser.add_argument(
        "--quick", action="store_true", help="smoke mode: tiny sizes, a few seconds to a minute"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT / f"{name}.json",
        help="where the JSON result goes (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: every core of this machine)",
    )
    return parser


def draw_args(p: argparse.ArgumentParser, archs: int, seed_help: str) -> None:
    """``--archs`` (default ``archs``), ``--seed`` and ``--draw-seed``: the options of a benchmark
    that draws distinct architectures from a space and trains them with one model seed."""
    p.add_argument("--archs", type=int, default=archs, help="architectures drawn (distinct)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--draw-seed", type=int, default=0, help="seed of the architecture draw")


def quiet_logs(verbose: bool = False, timestamps: bool = False) -> None:
    """Optuna's and Lightning's logs at warnings and errors only; adaptnas's progress lines
    with ``verbose`` (``timestamps``: every log line starts with its time)."""
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    if timestamps:
        logging.basicConfig(
            level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S"
        )
    logging.getLogger("adaptnas").setLevel(logging.INFO if verbose else logging.WARNING)


def budget_parser(
    name: str, description: str, *, seeds: int, presets: Iterable[str]
) -> argparse.ArgumentParser:
    """The options of a benchmark of searches under a time budget (search efficiency, supernet).

    ``base_parser``'s, plus ``--budget``, ``--clock``, ``--seeds`` (default ``seeds``), ``--seed``
    and ``--preset`` (one of ``presets``, default ``bench``).
    """
    p = base_parser(name, description)
    p.add_argument("--budget", type=float, default=300.0, help="seconds per search")
    p.add_argument(
        "--clock",
        default="cpu",
        choices=["cpu", "wall"],
        help="what the budget counts: this process's CPU seconds (default; steady under load, "
        "the wall time of an idle machine with --threads 1) or wall seconds",
    )
    p.add_argument("--seeds", type=int, default=seeds, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument(
        "--preset",
        default="bench",
        choices=list(presets),
        help="budgets: bench (trials of seconds) or default (conf/ as is)",
    )
    return p


def budget_args(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    *,
    quick_budget: float,
    quick_seeds: int | None = None,
) -> argparse.Namespace:
    """Parse ``budget_parser`` options: ``--quick`` shrinks the budget (and seeds) left at their
    defaults; the CPU clock counts one torch thread unless ``--threads`` says otherwise (CPU
    seconds of one thread: the wall time of an idle machine)."""
    args = parser.parse_args(argv)
    if args.quick and args.budget == parser.get_default("budget"):
        args.budget = quick_budget
    if quick_seeds and args.quick and args.seeds == parser.get_default("seeds"):
        args.seeds = quick_seeds
    if args.threads is None and args.clock == "cpu":
        args.threads = 1
    return args


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads (all cores when ``None``) and return the number in use."""
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return torch.get_num_threads()


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or ``platform.processor()`` elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    """CPU feature flags (Linux only; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the OS does not report one."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """A description of where the figures were taken (goes into every JSON result)."""
    flags = cpu_flags()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_1m": load_average(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def warn_if_loaded(limit: float = 0.5) -> None:
    """Say so when other processes compete for the cores: absolute figures are then noisy."""
    load = load_average()
    if load is not None and load > limit:
        print(
            f"note: load average {load:.2f} > {limit}: absolute figures are noisy; "
            "the side-by-side ratios are what counts",
            file=sys.stderr,
        )


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (NaN for none)."""
    values = list(values)
    return statistics.median(values) if values else math.nan


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work so that wall-clock timing measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], repeats: int, device: torch.device | str = "cpu") -> float:
    """Median seconds of one call of ``fn`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return median(times)


MATMUL_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (4096, 1024, 256), (4096, 256, 1024))


def matmul_peak(
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    shapes: Iterable[tuple[int, int, int]] = MATMUL_SHAPES,
    repeats: int = 5,
    precision: str = "highest",
) -> dict[str, Any]:
    """The machine's measured matmul roof: the best median FLOP/s over a few shapes.

    Args:
        dtype: Element type of both operands.
        device: Where to multiply.
        shapes: ``(m, n, k)`` of ``(m, k) @ (k, n)``; square ones and the shapes of a small
            Transformer's MLP (4096 tokens by d_model 256), whichever runs fastest sets the roof.
        repeats: Timed calls per shape (median).
        precision: ``torch.set_float32_matmul_precision`` during the measurement (``highest`` is
            true fp32; ``medium`` lets oneDNN use bf16 inputs with AMX, like TF32 on a GPU).

    Returns:
        ``{"flops": best FLOP/s, "by_shape": {"m x n x k": FLOP/s}, "dtype", "precision"}``.
    """
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    by_shape = {}
    try:
        for m, n, k in shapes:
            a = torch.randn(m, k, dtype=dtype, device=device)
            b = torch.randn(k, n, dtype=dtype, device=device)
            seconds = time_call(lambda a=a, b=b: a @ b, repeats, device)
            by_shape[f"{m}x{n}x{k}"] = 2 * m * n * k / seconds
    finally:
        torch.set_float32_matmul_precision(before)
    return {
        "flops": max(by_shape.values()),
        "by_shape": by_shape,
        "dtype": str(dtype).removeprefix("torch."),
        "precision": precision,
    }


def fmt_ci(ci: Sequence[float] | None, empty: str = "-") -> str:
    """A 95% interval as ``[+0.12, +0.34]`` (``empty`` when there is none)."""
    return empty if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def rank_cells(r: dict[str, Any]) -> list[str]:
    """Kendall tau and Spearman of a ``rank_agreement`` result, each with its 95% interval."""
    return [
        f"{r['kendall_tau']:.2f} {fmt_ci(r.get('kendall_tau_ci'), '')}",
        f"{r['spearman']:.2f} {fmt_ci(r.get('spearman_ci'), '')}",
    ]


def reader_parser(script: str, description: str) -> argparse.ArgumentParser:
    """The options of a benchmark that reads other results and runs nothing: ``--out`` (no
    default: print only) and ``--resamples`` (bootstrap draws)."""
    p = argparse.ArgumentParser(prog=f"benchmarks/{script}.py", description=description)
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap draws (default 2000)")
    return p


def read_results(
    script: str,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    args: argparse.Namespace,
    errors: tuple[type[BaseException], ...],
) -> dict[str, Any]:
    """``run(args)`` of a benchmark that reads other results: one of ``errors`` (a missing file,
    results that do not fit) exits with a one-line message naming it, and nothing is written."""
    try:
        return run(args)
    except errors as err:
        raise SystemExit(f"benchmarks/{script}.py: error: {type(err).__name__}: {err}") from None


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with the schema version) as indented JSON; NaN becomes ``null``."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean({"schema": SCHEMA_VERSION, **payload}), indent=2) + "\n")
    return path


def fmt_si(value: float, unit: str = "") -> str:
    """``3.2e11`` -> ``'320 G'`` (three significant digits)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain aligned text table on stdout."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for i, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if j else c.ljust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def run_and_write(run: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace):
    """Run a benchmark with parsed ``args``, write its JSON to ``args.out``; returns the payload."""
    payload = run(args)
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    return payload
