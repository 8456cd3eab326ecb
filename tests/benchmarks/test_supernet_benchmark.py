"""Smoke test of benchmarks/supernet.py: the quick mode runs both strategies and writes its JSON.

Nothing here asserts a speed or which strategy wins: that depends on the machine, its load and
the budget. The test checks the documented fields and that the figures hang together.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import common
from benchmarks import supernet as bench


def test_build_seconds_reads_the_spec_of_the_studys_super_network(tmp_path):
    assert bench.build_seconds(tmp_path, "s") is None
    spec = tmp_path / "studies" / "s" / "supernet" / "abc" / "spec.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({"seconds": 12.5}))
    assert bench.build_seconds(tmp_path, "s") == 12.5


@pytest.mark.slow
def test_supernet_benchmark_quick(tmp_path):
    out = tmp_path / "supernet.json"
    bench.main(["--quick", "--budget", "4", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["schema"] == common.SCHEMA_VERSION and data["benchmark"] == "supernet"
    assert data["settings"]["quick"] and data["settings"]["seeds"] == [0]
    for name in ("standalone", "supernet"):
        s = data["summary"][name]
        (count,) = s["trials_within_budget"]
        assert count == data["runs"][name]["0"]["trials_within_budget"]
        assert math.isclose(s["candidates_per_cpu_hour"], count * 3600 / 4)
        assert set(s["best_over_time_median"]) == {"25%", "50%", "75%", "100%"}
    (build,) = data["summary"]["supernet"]["build_wall_s"]
    assert build is not None and build > 0  # the super-network was built inside the budget
    supernet_trials = data["runs"]["supernet"]["0"]["per_trial"]
    assert all(t["state"] in ("COMPLETE", "PRUNED", "FAIL") for t in supernet_trials)
