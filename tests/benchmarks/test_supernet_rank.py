"""benchmarks/supernet_rank.py: its arithmetic, and its quick mode end to end (slow).

No test asserts a rank correlation or a speed: both depend on the budgets and the machine. The
tests check the candidates-per-time arithmetic, the distinct draw, the winner check, the cache
and that the quick run's JSON hangs together (and that a rerun is served from the cache).
"""

from __future__ import annotations

import json
import math
import random

import pytest

from benchmarks import common
from benchmarks import supernet_rank as bench


def test_candidates_ratio_amortises_the_build_over_k_standalone_trials():
    # 10 standalone trials of 60 s = 600 s; the supernet search spends 300 s building, then
    # fits (600 - 300) / 10 = 30 candidates: 3 per standalone candidate.
    assert bench.candidates_ratio(300.0, 60.0, 10.0, 10) == pytest.approx(3.0)
    # still building when the standalone search is done: no candidate at all
    assert bench.candidates_ratio(300.0, 60.0, 10.0, 2) == 0.0
    # the ratio tends to standalone / inherited seconds
    assert bench.candidates_ratio(300.0, 60.0, 10.0, 10**9) == pytest.approx(6.0, rel=1e-6)


def test_break_even_is_where_the_ratio_reaches_the_target():
    k = bench.break_even(300.0, 60.0, 10.0, 5.0)
    assert k == pytest.approx(30.0)
    assert bench.candidates_ratio(300.0, 60.0, 10.0, 30) == pytest.approx(5.0)
    assert bench.candidates_ratio(300.0, 60.0, 10.0, 29) < 5.0
    # a trial that only gets 4x cheaper never reaches 5x, whatever the search's length
    assert bench.break_even(300.0, 40.0, 10.0, 5.0) is None


class _Cfg:
    def __init__(self, v):
        self.v = v

    def to_dict(self):
        return {"v": self.v}


def test_draw_distinct_skips_repeats_and_names_a_space_too_small():
    rng = random.Random(0)
    got = bench.draw_distinct(lambda: _Cfg(rng.randrange(5)), 5)
    assert sorted(c.v for c in got) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="--archs 6: only 5 distinct"):
        bench.draw_distinct(lambda: _Cfg(rng.randrange(5)), 6)


def test_winner_check_scores_the_inherited_winner_standalone():
    w = bench.winner_check(["a", "b", "c"], [0.5, 0.1, 0.3], [0.2, 0.4, 0.3])
    assert w["inherited_winner"] == "a" and w["standalone_winner"] == "b"
    assert w["inherited_winner_standalone"] == 0.2
    assert w["inherited_winner_standalone_rank"] == 3
    assert w["difference"] == pytest.approx(-0.2) and not w["at_least_as_good"]
    same = bench.winner_check(["a", "b"], [0.5, 0.1], [0.4, 0.2])
    assert same["at_least_as_good"] and same["difference"] == 0.0


def test_seed_sd_pools_per_architecture_variances():
    assert bench.seed_sd([[1.0], [2.0]]) is None  # one seed each: no spread to pool
    assert bench.seed_sd([[0.0, 2.0], [1.0, 1.0]]) == pytest.approx(1.0)  # variances 2 and 0


def test_cache_round_trips_and_keys_are_stable(tmp_path):
    cache = bench.Cache(tmp_path)
    k = bench.key_of("inherited", {"n_layer": 2}, 0)
    assert k == bench.key_of("inherited", {"n_layer": 2}, 0) != bench.key_of("standalone", 0)
    assert cache.get(k) is None
    cache.put(k, {"adaptability": 0.25})
    assert bench.Cache(tmp_path).get(k) == {"adaptability": 0.25}


def test_bad_arguments_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--archs", "1"])
    assert exc.value.code == 2
    assert "--archs 1: a rank correlation needs at least 2" in capsys.readouterr().err


@pytest.mark.slow
def test_supernet_rank_quick_and_its_cached_rerun(tmp_path, capsys):
    out, cache = tmp_path / "rank.json", tmp_path / "cache"
    argv = ["--quick", "--archs", "3", "--cache-dir", str(cache), "--out", str(out)]
    bench.main(argv)
    data = json.loads(out.read_text())
    assert data["schema"] == common.SCHEMA_VERSION and data["benchmark"] == "supernet_rank"
    assert data["settings"]["quick"] and data["settings"]["archs"] == 3
    assert len({json.dumps(a["config"], sort_keys=True) for a in data["archs"]}) == 3
    s = data["scores"]
    assert len(s["inherited"]) == len(s["standalone"]) == 3
    assert all(0.0 <= v <= 1.0 for v in s["inherited"] + s["standalone"])
    assert data["rank"]["n"] == 3 and -1.0 <= data["rank"]["kendall_tau"] <= 1.0
    for a in data["archs"]:
        assert a["inherited"]["steps"]["pretrain"] == 0  # inherited weights, no own pretraining
        assert a["standalone"][0]["steps"]["pretrain"] > 0
    build = data["supernet"]["build_cpu_s"]
    assert build is not None and build > 0
    r = data["candidates_ratio"]
    t = data["cpu_s"]
    assert r["asymptotic"] == pytest.approx(t["standalone_mean"] / t["inherited_mean"])
    assert r["per_k"]["8"] == pytest.approx(
        bench.candidates_ratio(build, t["standalone_mean"], t["inherited_mean"], 8)
    )
    assert data["winner"]["inherited_winner"] in s["labels"]
    # a rerun loads the super-network and every run from the cache: same figures
    capsys.readouterr()
    again = bench.main(argv)
    assert again["scores"] == s and again["supernet"]["build_cpu_s"] == build
    assert math.isclose(again["cpu_s"]["standalone_mean"], t["standalone_mean"])


def test_a_build_finished_by_another_process_keeps_its_booked_seconds(tmp_path, monkeypatch):
    """A process that waited on the build lock must not overwrite the builder's CPU seconds."""
    import nas.strategies.supernet as sn

    cache = bench.Cache(tmp_path)
    booked = tmp_path / "build_cpu.json"
    names = {}

    def other_process_builds(space, suite, run, study, on_checkpoint=None):
        # This process found a checkpoint booked (``prior``) and waited; the builder finished.
        folder = study / "supernet" / names["name"]
        book = {names["name"]: {"step": 40, "cpu_s_at_checkpoint": 1700.0, "cpu_s": 1717.2}}
        booked.write_text(json.dumps(book))
        return "net", folder

    monkeypatch.setattr(sn, "ensure_supernet", other_process_builds)
    monkeypatch.setattr(sn, "spec_of", lambda space, cfg, run: {"k": 1})
    monkeypatch.setattr(sn, "super_config", lambda space, data: None)
    monkeypatch.setattr("nas.trial.run.data_fields", lambda suite: {})
    names["name"] = sn.supernet_dir(tmp_path / "study", {"k": 1}).name
    booked.write_text(json.dumps({names["name"]: {"step": 20, "cpu_s_at_checkpoint": 800.0}}))
    _, _, entry = bench.build({}, None, None, cache)
    assert entry["cpu_s"] == 1717.2
    assert json.loads(booked.read_text())[names["name"]]["cpu_s"] == 1717.2
