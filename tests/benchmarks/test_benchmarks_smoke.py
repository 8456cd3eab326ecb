"""Smoke tests of the benchmarks: each quick mode runs for real on tiny sizes and writes its JSON.

Nothing here asserts a speed: the figures depend on the machine and its load. The tests check
that every benchmark runs end to end, that its JSON has the documented fields, and that the
figures are finite and consistent with each other.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import common, gpu_path, overhead, pretraining_gain, search_efficiency, throughput


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load(path):
    data = json.loads(path.read_text())
    assert data["schema"] == common.SCHEMA_VERSION
    assert data["machine"]["torch"] == torch.__version__
    assert data["machine"]["logical_cores"] >= 1
    return data


# ---- helpers ---------------------------------------------------------------------------------
def test_curves_time_to_reach_and_best_at():
    curve = [(2.0, 0.3), (5.0, 0.5), (9.0, 0.6)]
    assert search_efficiency.time_to_reach(curve, 0.5) == 5.0
    assert search_efficiency.time_to_reach(curve, 0.55) == 9.0
    assert search_efficiency.time_to_reach(curve, 0.7) is None
    assert search_efficiency.best_at(curve, 1.0) is None
    assert search_efficiency.best_at(curve, 6.0) == 0.5
    assert search_efficiency.best_at(curve, 100.0) == 0.6


def test_sizes_parse_and_reject_typos():
    assert throughput.parse_sizes("128x2,256X4") == [(128, 2), (256, 4)]
    with pytest.raises(SystemExit, match="'256-4' is not DxL"):
        throughput.parse_sizes("128x2,256-4")


def test_write_json_turns_nan_into_null(tmp_path):
    path = common.write_json(tmp_path / "a" / "b.json", {"x": math.nan, "y": [1.0, math.inf]})
    assert json.loads(path.read_text()) == {
        "schema": common.SCHEMA_VERSION,
        "x": None,
        "y": [1.0, None],
    }


def test_matmul_peak_is_the_best_shape():
    peak = common.matmul_peak(shapes=((64, 64, 64), (128, 128, 128)), repeats=1)
    assert set(peak["by_shape"]) == {"64x64x64", "128x128x128"}
    assert peak["flops"] == max(peak["by_shape"].values()) > 0


def test_gpt2_has_the_same_shape_as_the_adaptnas_model():
    arch = throughput.adaptnas_arch(64, 2, 16, 256, 32)
    gpt2 = throughput.gpt2_model(arch)
    ours = sum(p.numel() for p in throughput.build_model(arch).parameters())
    theirs = sum(p.numel() for p in gpt2.parameters())
    # GPT-2 has biases in every Linear and LayerNorm; adaptnas has none in its Linears.
    assert ours == arch.num_params() and 0 < theirs - ours < 0.02 * ours
    assert gpt2.config._attn_implementation == "sdpa"
    assert (gpt2.config.n_layer, gpt2.config.n_head, gpt2.config.n_inner) == (2, 4, 256)


# ---- each benchmark's quick mode ---------------------------------------------------------------
def test_throughput_quick(tmp_path):
    out = tmp_path / "throughput.json"
    throughput.main(["--quick", "--threads", "1", "--out", str(out)])
    data = load(out)
    assert data["benchmark"] == "throughput" and data["settings"]["quick"]
    assert finite(data["peak"]["fp32"]["flops"]) and data["peak"]["fp32"]["flops"] > 0
    (entry,) = data["results"]
    assert (entry["d_model"], entry["n_layer"]) == (64, 1)
    assert set(entry["runners"]) == set(throughput.RUNNERS)
    assert entry["params"]["adaptnas"] == entry["params"]["plain"]
    for m in entry["runners"].values():
        assert len(m["samples"]) == data["settings"]["repeats"]
        assert finite(m["tokens_per_s"]) and m["tokens_per_s"] > 0
        assert m["flops_per_s"] == pytest.approx(m["tokens_per_s"] * entry["train_flops_per_token"])
        assert m["fraction_of_fp32_peak"] == pytest.approx(
            m["flops_per_s"] / data["peak"]["fp32"]["flops"]
        )
    # d_model 64: fp32 for every runner whatever the CPU (precision=auto weighs the size).
    assert entry["auto_precision"] == "32-true"
    assert {m["precision"] for m in entry["runners"].values()} == {"32-true"}
    tps = {k: m["tokens_per_s"] for k, m in entry["runners"].items()}
    assert entry["adaptnas_vs_gpt2"] == pytest.approx(tps["adaptnas"] / tps["gpt2_hf"])
    assert entry["lightning_cost"] == pytest.approx(1 - tps["adaptnas"] / tps["plain"])


def test_gpu_path_reduced_mode_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    gpu_path.main(["--quick", "--device", "cpu", "--threads", "1", "--out", str(out)])
    data = load(out)
    assert data["settings"]["reduced"] and data["settings"]["device"] == "cpu"
    assert data["settings"]["precision"] == "32-true"
    # The math kernel takes every call the model makes; the probe reports each case.
    assert set(data["sdpa_probe"]) == {
        "causal (decoder)",
        "causal GQA",
        "bool mask (padding)",
        "float bias (ALiBi)",
    }
    assert all(case["math"] == "ok" for case in data["sdpa_probe"].values())
    assert [(r["d_model"], r["n_layer"]) for r in data["results"]] == [(32, 1), (64, 2)]
    for r in data["results"]:
        assert set(r["runners"]) == {"adaptnas", "plain"}
        for m in r["runners"].values():
            assert finite(m["mfu"]) and 0 < m["mfu"]
    # The staged trial: pretraining and the five built-in tasks, each with its figures.
    stages = data["trial"]["stages"]
    assert list(stages) == ["pretrain", "sentiment", "ner", "qa", "translation", "summarization"]
    for stage in stages.values():
        assert stage["steps"] > 0 and finite(stage["tokens_per_s"]) and finite(stage["mfu"])
    assert all(0 <= stages[t]["score"] <= 1 for t in list(stages)[1:])
    assert all(
        case["chosen"] in ("flash_attention", "math") for case in data["sdpa_probe"].values()
    )


@pytest.mark.slow
def test_overhead_quick(tmp_path):
    out = tmp_path / "overhead.json"
    overhead.main(["--quick", "--out", str(out)])
    data = load(out)
    (trial,) = data["trials"]
    assert trial["state"] in ("COMPLETE", "PRUNED")
    assert trial["wall_s"] > trial["compute_s"] > 0
    phases = data["phases_s"]
    assert set(phases) == {
        "forward",
        "backward",
        "optimizer",
        "zero_grad",
        "data_and_loop",
        "evaluation",
        "test_scoring",
        "lightning_setup",
        "model_build_and_copy",
        "hooks_weights_and_tracking",
        "optuna_and_objective",
    }
    # Every phase is a real duration: the hooks' phases fit inside the timed fit() calls, the
    # timed run_trial inside the trial as Optuna clocked it.
    assert all(finite(v) and v >= 0 for v in phases.values())
    assert phases["forward"] > 0 and phases["backward"] > 0 and phases["evaluation"] > 0
    assert 0 < data["overhead_share"] < 1
    assert data["overhead_share_without_evaluation"] <= data["overhead_share"]
    if trial["state"] == "COMPLETE":  # the first trial of a study is a finalist: test scored
        assert phases["test_scoring"] > 0
        assert data["overhead_share_without_test_scoring"] < data["overhead_share"]
    assert data["imports"]["total"] > data["imports"]["import torch"] > 0
    assert (
        data["suite"]["build_suite, memo hit (every later trial)"]
        < data["suite"]["build_suite, new process (tokenizer cached)"]
    )


@pytest.mark.slow
def test_search_efficiency_quick(tmp_path):
    out = tmp_path / "search.json"
    search_efficiency.main(["--quick", "--seeds", "1", "--budget", "5", "--out", str(out)])
    data = load(out)
    assert set(data["runs"]) == {"tpe", "random"}
    for name, by_seed in data["runs"].items():
        run = by_seed["0"]
        assert run["trials"] >= 1, name
        times = [t for t, _ in run["curve"]]
        bests = [b for _, b in run["curve"]]
        assert times == sorted(times) and all(t <= 5 for t in times)
        assert bests == sorted(bests) and all(0 <= b <= 1 for b in bests)
    (seed,) = data["per_seed"]
    if seed["random_final_best"] is not None:
        assert seed["random_time_to_target_s"] <= 5
    assert set(data["best_over_time_median"]["tpe"]) == {"25%", "50%", "75%", "100%"}


def test_pretraining_gain_summary_by_hand():
    def rec(condition, seed, value):
        return {
            "arch": "X",
            "describe": "x",
            "n_params": 1,
            "condition": condition,
            "seed": seed,
            "adaptability": value,
            "task_scores": {"t": value},
            "timings": {"pretrain": 3.0 if condition == "pretrained" else 0.0, "total": 4.0},
        }

    runs = [rec("pretrained", 0, 0.5), rec("pretrained", 1, 0.6)]
    runs += [rec("untrained", 0, 0.3), rec("untrained", 1, 0.3)]
    (s,) = pretraining_gain.summarise(runs)
    assert s["gain"] == pytest.approx(0.25)
    # sds 0.0707 and 0: pooled sqrt(0.005 / 2) = 0.05
    assert s["seed_sd"] == pytest.approx(0.05)
    assert s["gain_over_sd"] == pytest.approx(5.0)
    assert s["pretrain_time_share"] == pytest.approx(0.75)
    assert s["task_gain"] == {"t": pytest.approx(0.25)}


def test_pretraining_gain_quick(tmp_path):
    out = tmp_path / "gain.json"
    pretraining_gain.main(["--quick", "--threads", "1", "--out", str(out)])
    data = load(out)
    conditions = {(r["condition"], r["seed"]) for r in data["runs"]}
    assert conditions == {(c, s) for c in ("pretrained", "untrained") for s in (0, 1)}
    untrained = [r for r in data["runs"] if r["condition"] == "untrained"]
    assert all(r["steps"]["pretrain"] == 0 for r in untrained)
    (s,) = data["summary"]
    assert finite(s["gain"]) and finite(s["seed_sd"])


def test_floors_benchmark_writes_every_task_of_the_built_in_suite(tmp_path):
    from benchmarks import floors

    out = floors.main(["--suites", "builtin", "--json", str(tmp_path / "f.json")])
    data = json.loads((tmp_path / "f.json").read_text())
    assert data == out and {f["task"] for f in data["builtin"]} == {
        "sentiment",
        "ner",
        "qa",
        "translation",
        "summarization",
    }
    for f in data["builtin"]:
        assert 0.0 <= f["validation"] < 1.0 and 0.0 <= f["test"] < 1.0 and f["rule"]


def test_report_reads_quick(tmp_path):
    from benchmarks import report_reads

    out = tmp_path / "report_reads.json"
    report_reads.main(["--quick", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["settings"]["stored_trials"] == 12 + 2 * (3 + 3)  # the finalists' repeats too
    # the verdict, the files, the printed leaderboard, the winner's line: 4 reads against 1
    assert data["reads"] == {"each report reads the study": 4, "one Standing": 1}
