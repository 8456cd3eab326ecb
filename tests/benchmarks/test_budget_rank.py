"""benchmarks/budget_rank.py: its plan, its bar, its arguments, and two shards end to end (slow)."""

from __future__ import annotations

import json

import pytest

from benchmarks import budget_rank as bench
from lightning_modules.config import TransformerConfig
from nas.validity.statistics import rank_agreement


def test_a_shard_is_i_over_n_and_a_bad_one_is_named():
    assert bench.parse_shard(None) == (0, 1)
    assert bench.parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            bench.parse_shard(bad)


def test_the_plan_runs_every_default_then_every_scaled_then_the_second_seeds():
    assert bench.plan(3, 2, (0, 1)) == [
        (0, "default", 0),
        (1, "default", 0),
        (2, "default", 0),
        (0, "scaled", 0),
        (1, "scaled", 0),
        (2, "scaled", 0),
        (0, "default", 1),
        (1, "default", 1),
        (2, "default", 1),
    ]
    shards = [bench.plan(5, 1, (i, 2)) for i in range(2)]
    assert {a for a, _, _ in shards[0]} == {0, 2, 4}
    assert {a for a, _, _ in shards[1]} == {1, 3}


def test_agreement_uses_only_rows_with_both_scores():
    rows = [
        {"label": "A0", "default": 0.1, "scaled": 0.2},
        {"label": "A1", "default": 0.2, "scaled": None},
        {"label": "A2", "default": 0.3, "scaled": 0.4},
        {"label": "A3", "default": 0.4, "scaled": 0.5},
    ]
    out = bench.agreement(rows, "default", "scaled", rank_agreement)
    assert out["n"] == 3 and out["labels"] == ["A0", "A2", "A3"]
    assert out["kendall_tau"] == pytest.approx(1.0)


def test_the_bar_needs_twenty_architectures_the_tau_and_the_interval():
    ok = {"n": 24, "kendall_tau": 0.65, "kendall_tau_ci": [0.45, 0.8]}
    assert bench.meets(ok)
    assert not bench.meets({**ok, "n": 19})
    assert not bench.meets({**ok, "kendall_tau": 0.59})
    assert not bench.meets({**ok, "kendall_tau_ci": [0.39, 0.8]})
    assert not bench.meets({"n": 24, "kendall_tau": None})


@pytest.mark.parametrize(
    "argv, word",
    [(["--archs", "1"], "--archs"), (["--scale", "0"], "--scale"), (["--shard", "3/2"], "--shard")],
)
def test_bad_arguments_are_one_line_errors(argv, word, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert word in err


@pytest.mark.slow
def test_two_shards_fill_one_cache_and_the_summary_runs_nothing_more(tmp_path, capsys):
    cache = tmp_path / "cache"
    common = ["--quick", "--archs", "3", "--seeds", "2", "--scale", "2", "--cache-dir", str(cache)]
    for shard in ("0/2", "1/2"):
        done = bench.main([*common, "--shard", shard])
        assert done["shard"] == shard
    runs = sorted(p.name for p in (cache / "runs").glob("*.json"))
    assert len(runs) == 3 * 3  # default, x2 and a second seed for each architecture
    doc = bench.main([*common, "--out", str(tmp_path / "out.json")])
    assert sorted(p.name for p in (cache / "runs").glob("*.json")) == runs  # nothing rerun
    assert json.loads((tmp_path / "out.json").read_text())["rank"]["n"] == 3
    assert doc["rank"]["n"] == 3 and doc["rank_seed_to_seed"]["n"] == 3
    assert doc["rank_skill"]["n"] == 3 and set(doc["floors"]) == {"sentiment", "qa"}
    for row in doc["archs"]:
        assert row["default"] is not None and row["scaled"] is not None
        # The scaled run trained longer: x2 the adaptation steps of every task.
        d, s = row["runs"]["default"]["steps"], row["runs"]["scaled"]["steps"]
        assert all(s[k] > d[k] for k in d if d[k])
        assert row["second_seed"] != row["default"]
    assert doc["failed"] == [] and doc["missing"] == []
    assert "default vs x2" in capsys.readouterr().out
    # --base-scale: the ranking side runs again at x2 adaptation; the x2 runs it is held
    # against are the config's own budget's, already cached.
    moved = bench.main([*common, "--base-scale", "2", "--base-what", "adapt"])
    after = sorted(p.name for p in (cache / "runs").glob("*.json"))
    assert len(after) == len(runs) + 3 * 2  # two seeds of each architecture, nothing scaled
    assert [r["runs"]["scaled"] for r in moved["archs"]] == [
        r["runs"]["scaled"] for r in doc["archs"]
    ]
    for row in moved["archs"]:
        base, scaled = row["runs"]["default"]["steps"], row["runs"]["scaled"]["steps"]
        assert base.pop("pretrain") * 2 == scaled.pop("pretrain")  # pretraining as configured
        assert base == scaled  # the adaptation steps of x2
    assert moved["settings"]["base_label"] == "x2 adapt"
    assert "x2 adapt vs x2" in capsys.readouterr().out
    for name in set(after) - set(runs):
        (cache / "runs" / name).unlink()
    # --summarise runs nothing: with one run's record gone, that architecture is "not run yet".
    (cache / "runs" / runs[0]).unlink()
    partial = bench.main([*common, "--summarise", "--out", str(tmp_path / "partial.json")])
    assert len(list((cache / "runs").glob("*.json"))) == len(runs) - 1
    assert len(partial["missing"]) == 1 and partial["failed"] == []


def test_a_grid_config_clears_every_task_rate_so_that_each_chooses():
    run = {"finetune": {"lr": 1e-3}, "tasks": {"qa": {"lr": None}, "ner": {"lr": 3e-3}}}
    out = bench.with_grid(run, [1e-3, 3e-3])
    assert out["finetune"]["lr_grid"] == [1e-3, 3e-3]
    assert out["tasks"] == {"qa": {"lr": None}, "ner": {"lr": None}}
    assert run["tasks"]["ner"]["lr"] == 3e-3 and "lr_grid" not in run["finetune"]


def test_each_family_is_calibrated_by_its_reference_else_its_first_draw(tiny_cfg, tmp_path):
    from nas.config.nodes import plain
    from nas.engine.run import load_suite
    from search_spaces import load_space

    cfg = tiny_cfg(
        task="sentiment",
        extra=[
            "finetune.examples=48",
            "finetune.lr_choice_examples=24",
            "tasks.sentiment.examples=null",
        ],
    )
    run, suite, space = plain(cfg), load_suite(cfg), load_space("tiny")
    archs = bench.draw_archs(space, suite, 8, draw_seed=0)
    found = bench.calibrators(space, suite, archs)
    assert set(found) == {a.family for a in archs}
    assert found["decoder"][0] == "GPT-2-like" and found["encoder"][0] == "BERT-like"
    first = next(i for i, a in enumerate(archs) if a.family == "prefix_lm")  # no reference
    assert found["prefix_lm"] == (f"A{first}", archs[first])
    # The calibrations another process left in the cache are read, never run again.
    cache = bench.sr.Cache(tmp_path / "cache")
    grid = bench.with_grid(run, [1e-3, 3e-3])
    for _, arch in found.values():
        key = bench.run_of(arch, grid, 0, "default", 4.0)[1]
        cache.put(key, {"adaptability": 0.5, "lr": {"sentiment": 3e-3}, "cpu_s": 10.0})
    out = bench.calibrate(cache, space, suite, archs, grid, 0, 4.0, (0, 1))
    assert out["decoder"] == {
        "by": "GPT-2-like",
        "arch": found["decoder"][1].describe(),
        "drawn": False,
        "rates": {"sentiment": 3e-3},
        "cpu_s": 10.0,
    }
    assert out["prefix_lm"]["drawn"] is True


def test_skill_counts_each_task_above_its_floor_and_a_failed_run_has_none():
    floors = {"qa": 0.0, "translation": 0.2}
    run = {"adaptability": 0.5, "tasks": {"qa": 0.4, "translation": 0.6}}
    assert bench.skill_of(run, floors) == pytest.approx((0.4 + 0.4 / 0.8) / 2)
    assert (
        bench.skill_of({"adaptability": 0.2, "tasks": {"qa": 0.0, "translation": 0.2}}, floors) == 0
    )
    assert bench.skill_of({"adaptability": None, "failed": "x"}, floors) is None
    assert bench.skill_of(None, floors) is None


def test_the_scaled_gain_is_held_against_a_feature_of_each_architecture():
    rows = [
        {"label": f"A{i}", "default": 0.4, "scaled": 0.4 + 0.05 * i, "depth": i} for i in range(4)
    ]
    rows.append({"label": "A4", "default": 0.4, "scaled": None, "depth": 9})  # not run: left out
    out = bench._gain_agreement(rows, lambda r: r["depth"], rank_agreement)
    assert out["n"] == 4 and out["kendall_tau"] == pytest.approx(1.0)


def test_the_larger_budget_scales_pretraining_adaptation_or_both():
    run = {
        "pretrain": {"tokens": 1000},
        "finetune": {"steps": 10},
        "tasks": {"qa": {"steps": None}, "ner": {"steps": 40}},
    }
    both = bench.Scale(4).apply(run)
    assert both["pretrain"]["tokens"] == 4000 and both["finetune"]["steps"] == 40
    assert both["tasks"] == {"qa": {"steps": None}, "ner": {"steps": 160}}
    pre = bench.Scale(4, "pretrain").apply(run)
    assert pre["pretrain"]["tokens"] == 4000 and pre["finetune"]["steps"] == 10
    assert pre["tasks"]["ner"]["steps"] == 40
    adapt = bench.Scale(4, "adapt").apply(run)
    assert adapt["pretrain"]["tokens"] == 1000 and adapt["tasks"]["ner"]["steps"] == 160
    assert run["pretrain"]["tokens"] == 1000  # not changed
    assert bench.Scale(4, "adapt").label() == "x4 adapt" and bench.Scale(4).label() == "x4"


def test_a_base_scale_moves_the_ranking_side_and_leaves_the_scaled_side_shared():
    run = {
        "seed": 0,
        "pretrain": {"tokens": 1000},
        "finetune": {"steps": 10, "lr_choice": "candidate"},
        "tasks": {"qa": {"steps": 8}, "ner": {"steps": None}},
        "data": {},
        "objective": {},
        "trainer": {},
    }
    base = bench.Scale(2.0, "adapt")
    assert (base.label(), bench.Scale(1.0).label(), bench.Scale(4.0, "pretrain").label()) == (
        "x2 adapt",
        "default",
        "x4 pretrain",
    )
    moved = base.apply(run)
    assert moved["pretrain"]["tokens"] == 1000  # pretraining as it was
    assert moved["finetune"]["steps"] == 20 and moved["tasks"]["qa"]["steps"] == 16
    assert run["finetune"]["steps"] == 10  # a new config; the given one untouched
    arch = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2)
    own_default = bench.run_of(arch, run, 0, "default", 4.0)[1]
    assert bench.run_of(arch, moved, 0, "default", 4.0)[1] != own_default  # a run of its own


def test_a_base_scale_of_zero_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--base-scale", "0"])
    assert exit_info.value.code == 2
    assert "--base-scale" in capsys.readouterr().err.strip().splitlines()[-1]
