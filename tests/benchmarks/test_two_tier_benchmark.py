"""benchmarks/two_tier.py: its cost arithmetic, and its quick mode end to end (slow).

No test asserts a rank correlation or a speed (both depend on the budgets and the machine): the
arithmetic, the arguments and that the quick run's JSON hangs together.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import common
from benchmarks import two_tier as bench


def test_screened_per_cpu_hour_amortises_the_build():
    # 100 candidates of 1 s after a 900 s build: 100 in 1000 s = 360 per hour.
    assert bench.per_cpu_hour(100, 900.0, 1.0) == pytest.approx(360.0)
    # standalone trials of 60 s: 60 per hour, so 6x.
    assert bench.screen_ratio(100, 900.0, 1.0, 60.0) == pytest.approx(6.0)


def test_break_even_is_where_the_ratio_reaches_the_target():
    k = bench.break_even(900.0, 1.0, 61.0)  # 61 k = 900 + k  ->  k = 15
    assert k == pytest.approx(15.0)
    assert bench.screen_ratio(15, 900.0, 1.0, 61.0) == pytest.approx(1.0)
    k20 = bench.break_even(900.0, 1.0, 61.0, 20.0)  # 61 k = 20 (900 + k) -> k = 439
    assert bench.screen_ratio(round(k20), 900.0, 1.0, 61.0) == pytest.approx(20.0, rel=1e-2)
    assert bench.break_even(900.0, 4.0, 60.0, 20.0) is None  # 15x at most: never 20x


def test_bad_arguments_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--archs", "2"])
    assert exc.value.code == 2
    assert "--archs 2: a rank correlation with an interval needs 3" in capsys.readouterr().err


def test_adapt_scale_lengthens_the_super_networks_adaptation_alone(capsys):
    cfg = {"seed": 0, "tasks": {"qa": {"steps": 80, "lr": 1e-3}, "ner": {"steps": 3}}}
    assert bench.adapt_cfg(cfg, 1.0) is cfg
    longer = bench.adapt_cfg(cfg, 2.5)
    assert longer["tasks"] == {"qa": {"steps": 200, "lr": 1e-3}, "ner": {"steps": 8}}
    assert cfg["tasks"]["qa"]["steps"] == 80  # the standalone side's budgets are untouched
    with pytest.raises(SystemExit):
        bench.main(["--adapt-scale", "0"])
    assert "--adapt-scale 0.0: must be above 0" in capsys.readouterr().err


@pytest.mark.slow
def test_two_tier_quick(tmp_path):
    out, cache = tmp_path / "two_tier.json", tmp_path / "cache"
    data = bench.main(["--quick", "--cache-dir", str(cache), "--out", str(out)])
    assert json.loads(out.read_text())["schema"] == common.SCHEMA_VERSION
    assert data["command"].startswith("python benchmarks/two_tier.py --quick")
    assert data["settings"]["archs"] == 4 and data["screen_loop"]["candidates"] == 10
    assert 1 <= data["screen_loop"]["distinct_architectures"] <= 10
    rows, c_build = data["archs"], data["cpu_s"]["build"]
    assert len({json.dumps(r["config"], sort_keys=True) for r in rows}) == 4
    assert data["rank"]["n"] == 4 and -1.0 <= data["rank"]["kendall_tau"] <= 1.0
    screen = data["settings"]["screen"]
    assert screen == "adapted"  # the default screen: minus an adaptability
    assert all(r["screen_score"] < 0 and r["standalone"]["steps"]["pretrain"] > 0 for r in rows)
    assert all(r["screen_score"] == r["screen_scores"][screen] for r in rows)
    assert all(r["screen_scores"]["lm_loss"] > 0 for r in rows)
    assert set(data["rank_by_screen"]) == {"lm_loss", "suffix_loss", "adapted"}
    # The adapted screen: minus an adaptability, its rank and its cost with the tasks' build.
    assert all(-1.0 <= r["screen_scores"]["adapted"] <= 0.0 for r in rows)
    ad = data["adapted"]
    assert ad["rank"] == data["rank_by_screen"]["adapted"]["all"]
    assert set(ad["cpu_s"]["adapt_per_task"]) == set(data["settings"]["tasks"])
    assert ad["cpu_s"]["build_total"] == pytest.approx(c_build + ad["cpu_s"]["adapt_total"])
    assert (
        ad["cpu_s"]["screen_per_candidate"] == data["cpu_s"]["screen_per_candidate"] > 0
    )  # the timed loop's
    assert data["rank_by_screen"][screen]["all"] == data["rank"]
    c, a = data["cpu_s"], data["accounting"]
    assert c["build"] > 0 and c["screen_per_candidate"] > 0
    k = str(data["settings"]["default_screen_trials"])
    assert a["ratio"][k] == pytest.approx(
        bench.screen_ratio(int(k), c["build"], c["screen_per_candidate"], c["standalone_mean"])
    )
