"""scripts/chaos.py, reduced: two workers SIGKILLed at random (about every second) on a journal
study of 8 trials."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_killed_workers_lose_nothing_and_finish_exactly_n_trials(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chaos.py"), "--storage", "journal",
         "--workers", "2", "--trials", "8", "--kill-every", "1", "--max-seconds", "600",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads((tmp_path / "chaos.json").read_text())
    assert result["problems"] == []
    assert result["trials"] == 8 and result["kills"] >= 1, result
    assert result["retried"] >= 1, result  # a killed trial ran again, with the same parameters
    assert result["worker_starts"] >= 2 + result["kills"]  # every victim was started again
    assert result["kept_weights"], result  # the best trials' weights are there, checked whole


def test_a_postgres_that_does_not_answer_is_one_line_naming_it(tmp_path):
    url = "postgresql+psycopg2://adaptnas:hunter2@127.0.0.1:1/adaptnas"  # nothing listens
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chaos.py"), "--storage", "postgres",
         "--trials", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "ADAPTNAS_STORAGE_URL": url},
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "127.0.0.1:1/adaptnas does not answer" in proc.stderr
    assert "hunter2" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
