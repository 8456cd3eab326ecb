"""benchmarks/rank_ceiling.py: the pairs it ranks, from two budget_rank results, and bad input."""

from __future__ import annotations

import json

import pytest

from benchmarks import rank_ceiling as bench


def _run(score: float) -> dict:
    return {"adaptability": score}


def _results(n: int = 6) -> tuple[dict, dict]:
    """A default-budget result (two seeds, x4 once) and an x4 result (two x4 seeds): the x4
    seeds agree, the default seeds agree, and the default ranks the x4 order backwards."""
    default, scaled = [], []
    for i in range(n):
        label, seeds = f"A{i}", [_run(0.95 - 0.1 * i)]
        default.append({"label": label, "config": {"n_layer": i}, "runs": {
            "default": _run(1.0 - 0.1 * i), "scaled": _run(0.1 * i), "seeds": seeds,
        }})  # fmt: skip
        scaled.append({"label": label, "config": {"n_layer": i}, "runs": {
            "default": _run(0.1 * i), "scaled": _run(0.1 * i), "seeds": [_run(0.1 * i + 0.01)],
        }})  # fmt: skip
    settings = {"scale": 4.0, "scale_what": "both"}
    return (
        {"settings": {**settings, "base_scale": 1.0, "base_what": "both"}, "archs": default},
        {"settings": {**settings, "base_scale": 4.0, "base_what": "both"}, "archs": scaled},
    )


def test_each_pair_ranks_its_two_columns():
    default, scaled = _results()
    table = bench.scores(default, scaled)
    assert table["A2"] == pytest.approx({
        "default_0": 0.8, "default_100": 0.75, "x4_0": 0.2, "x4_100": 0.21,
        "default_mean": 0.775, "x4_mean": 0.205,
    })  # fmt: skip
    pairs = bench.agreements(table, resamples=20)
    assert pairs["x4 seed 0 against x4 seed 100"]["kendall_tau"] == pytest.approx(1.0)
    assert pairs["default seed 0 against default seed 100"]["kendall_tau"] == pytest.approx(1.0)
    for name in ("default seed 0 against x4 seed 0", "default mean against x4 mean"):
        assert pairs[name]["kendall_tau"] == pytest.approx(-1.0)
        assert pairs[name]["n"] == 6


def test_a_missing_score_leaves_only_that_architecture_out():
    default, scaled = _results()
    scaled["archs"][0]["runs"]["seeds"] = [None]
    pairs = bench.agreements(bench.scores(default, scaled), resamples=20)
    assert pairs["x4 seed 0 against x4 seed 100"]["n"] == 5
    assert pairs["default seed 0 against default seed 100"]["n"] == 6


@pytest.mark.parametrize(
    ("spoil", "needle"),
    [
        (lambda d, s: s["settings"].update(base_scale=1.0), "--scaled: its ranking side"),
        (lambda d, s: d["settings"].update(base_scale=2.0), "--default: its ranking side is x2"),
        (lambda d, s: s["archs"][3]["config"].update(n_layer=9), "architecture A3 differs"),
        (lambda d, s: d["archs"][1]["runs"].update(seeds=[]), "A1 has no second seed"),
    ],
)
def test_results_that_do_not_pair_are_one_line_naming_why(tmp_path, capsys, spoil, needle):
    default, scaled = _results()
    spoil(default, scaled)
    paths = []
    for name, payload in (("d.json", default), ("s.json", scaled)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(payload))
    out = tmp_path / "out.json"
    with pytest.raises(SystemExit) as err:
        bench.main(["--default", str(paths[0]), "--scaled", str(paths[1]), "--out", str(out)])
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_it_writes_the_pairs_and_the_scores(tmp_path):
    default, scaled = _results()
    (tmp_path / "d.json").write_text(json.dumps(default))
    (tmp_path / "s.json").write_text(json.dumps(scaled))
    out = tmp_path / "out.json"
    args = ["--default", str(tmp_path / "d.json"), "--scaled", str(tmp_path / "s.json")]
    bench.main([*args, "--out", str(out), "--resamples", "20"])
    written = json.loads(out.read_text())
    assert set(written["pairs"]) == set(bench.PAIRS)
    assert written["settings"] == {"scale": 4.0, "archs": 6}
