"""Shared fixtures of tests/nas: real services (PostgreSQL, a one-node SLURM), W&B offline.

Each fixture starts its service with the project's own script (installing it the first time) and
stops it at the end of the session if it was the one that started it. A service that cannot be
started skips its tests with the reason, except under CI (``CI=true``), where that is a failure:
CI must run them.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO

SCRIPTS = REPO / "scripts"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: services must start)", pytrace=False)
    pytest.skip(reason)


def _script(name: str, action: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), action],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start(name: str) -> bool:
    """Start a service; return whether it was down before (so this session stops it after)."""
    was_down = _script(name, "status", 60).returncode != 0
    if os.geteuid() != 0:
        if was_down:
            _unavailable(f"{name}: not running, and starting it needs root")
        return False
    try:  # also when it runs: start is idempotent and makes sure of the rest (role, node)
        proc = _script(name, "start")
    except subprocess.TimeoutExpired:
        _unavailable(f"scripts/{name} start took over 15 minutes")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        _unavailable(f"scripts/{name} start failed: {tail}")
    return was_down


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql+psycopg2://adaptnas:<password>@127.0.0.1:<port>/adaptnas`` of a live server."""
    started = _start("postgres.sh")
    url = _script("postgres.sh", "url", 60).stdout.strip()
    if not url:
        _unavailable("scripts/postgres.sh url printed nothing")
    yield url
    if started:
        _script("postgres.sh", "stop", 120)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node SLURM cluster (partition ``debug``)."""
    started = _start("slurm.sh")
    yield "debug"
    if started:
        _script("slurm.sh", "stop", 120)


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, its settings and caches under tmp_path (never the user's home)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
