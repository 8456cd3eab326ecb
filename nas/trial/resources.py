"""What this process may use: torch's process-wide settings, CPU threads and GPUs.

``prepare_process`` sets the process-wide torch settings every search, single run and validity study
uses; the rest decides a worker's torch threads and GPU (``nas.engine.workers.setup_worker``)
from what the launcher (SLURM, Hydra's joblib) and the machine tell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import torch

from nas.config.errors import ConfigError


def prepare_process() -> None:
    """Process-wide settings for fast CPU training."""
    # Tiny weights drift into denormals during training; flushing them avoids a 10x slowdown.
    torch.set_flush_denormal(True)
    torch.set_float32_matmul_precision("high")


def available_cpus(env: dict[str, str] | os._Environ = os.environ) -> int:
    """CPUs this process may use: SLURM's ``--cpus-per-task``, else its affinity mask."""
    slurm = env.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def local_workers(env: dict[str, str] | os._Environ = os.environ) -> int:
    """How many workers share this machine's CPUs, as far as the launcher tells.

    Under SLURM each worker is a job with CPUs of its own (1). Under Hydra's joblib launcher, its
    ``n_jobs`` (negative: joblib's "all CPUs but ``-n_jobs - 1``"). Otherwise 1.
    """
    if env.get("SLURM_JOB_ID"):
        return 1
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return 1
        launcher = HydraConfig.get().launcher
    except Exception:  # noqa: BLE001 (no Hydra, or a launcher config we do not know)
        return 1
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    cpus = os.cpu_count() or 1
    return n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


def resolve_threads(
    setting: Any, workers: int, cpus: int, env: dict[str, str] | os._Environ = os.environ
) -> int:
    """Torch threads for one worker.

    ``auto`` = ``max(1, cpus // workers)``, capped by ``OMP_NUM_THREADS`` when that is set; an
    integer is taken as it is. On 2 cores, 4 workers of 2 threads each run 10-25x slower than 4
    workers of 1 thread: OpenMP threads spin while they wait for a core.
    """
    if setting is None or str(setting).lower() == "auto":
        threads = max(1, cpus // max(1, workers))
        omp = env.get("OMP_NUM_THREADS", "")
        if omp.isdigit() and int(omp) > 0:
            threads = min(threads, int(omp))
        return threads
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"threads={setting!r} must be 'auto' or a positive integer")
    return setting


def list_gpus() -> list[str]:
    """GPU indices from ``nvidia-smi``, without touching CUDA in this process ([] if none).

    Asking torch would initialise CUDA, after which ``CUDA_VISIBLE_DEVICES`` can no longer pick
    this worker's device.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def assign_gpu(
    worker: int,
    env: dict[str, str] | os._Environ = os.environ,
    gpus: Callable[[], list[str]] = list_gpus,
) -> str | None:
    """The GPU this worker takes, one per worker, or ``None`` when there is none.

    * ``CUDA_VISIBLE_DEVICES`` names one device: the launcher (SLURM ``--gpus-per-task``, Ray)
      already gave this worker its GPU; keep it.
    * It names several, or is unset and ``nvidia-smi`` lists several: the worker's local slot
      (``SLURM_LOCALID`` under SLURM, else the ``worker`` index) picks one. A slot past the last
      GPU is an error rather than a second trial on a busy device.
    """
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
        if len(devices) <= 1:
            return devices[0] if devices else None
        source = f"CUDA_VISIBLE_DEVICES={visible}"
    else:
        devices = gpus()
        if not devices:
            return None
        source = "nvidia-smi"
    local = env.get("SLURM_LOCALID")
    slot = int(local) if local and local.isdigit() else worker
    if slot >= len(devices):
        raise ConfigError(
            f"worker={worker}: only {len(devices)} GPU(s) visible ({source}) and each worker "
            f"takes its own; start at most {len(devices)} workers per machine "
            "(or set gpu_per_worker=false)"
        )
    return devices[slot]
