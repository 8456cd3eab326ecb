"""benchmarks/rank_extrapolation.py: extrapolations from three budget_rank results, bad input."""

from __future__ import annotations

import json

import pytest

from benchmarks import rank_extrapolation as bench


def _run(score: float, cpu: float) -> dict:
    return {"adaptability": score, "cpu_s": cpu}


def _doc(base: float, scale: float, archs: list[dict]) -> dict:
    return {
        "settings": {"base_scale": base, "base_what": "both", "scale": scale, "scale_what": "both"},
        "archs": archs,
    }


def _results(n: int = 6) -> tuple[dict, dict, dict]:
    """Architecture i grows by g_i = 0.01 (i + 1) per doubling from x0.5 = 0.5 - 0.02 i: x1 and
    x0.5 rank the architectures backwards, x4 forwards, and two doublings of growth from x0.5
    and x1 predict the order of x4."""
    half, default, x2 = [], [], []
    for i in range(n):
        g, start = 0.01 * (i + 1), 0.5 - 0.02 * i
        at = {b: start + g * k for k, b in enumerate(("x0.5", "x1", "x2"))}
        at["x4"] = at["x1"] + 2 * g + 0.03 * g  # the growth speeds up a little

        def arch(i=i):  # each file its own copy of the architecture
            return {"label": f"A{i}", "family": "decoder", "config": {"n_layer": i}}

        half.append(
            {**arch(), "runs": {"default": _run(at["x1"], 90), "scaled": _run(at["x0.5"], 50)}}
        )
        default.append(
            {**arch(), "runs": {"default": _run(at["x1"], 90), "scaled": _run(at["x4"], 330)}}
        )
        x2.append(
            {**arch(), "runs": {"default": _run(at["x2"], 170), "scaled": _run(at["x4"], 330)}}
        )
    return _doc(1.0, 0.5, half), _doc(1.0, 4.0, default), _doc(2.0, 4.0, x2)


def test_the_extrapolations_rank_against_x4_and_cost_their_runs():
    table = bench.scores(*_results())
    assert table["A2"]["adaptability"] == pytest.approx(
        {"x0.5": 0.46, "x1": 0.49, "x2": 0.52, "x4": 0.5509}
    )
    cpu = {"x0.5": 50.0, "x1": 90.0, "x2": 170.0, "x4": 330.0}
    rank = bench.agreements(table, cpu, resamples=20)
    x1 = table["A0"]["adaptability"]["x1"], table["A5"]["adaptability"]["x1"]
    assert x1[0] > x1[1]  # the default budget ranks them backwards ...
    assert rank["x1"]["kendall_tau"] == pytest.approx(-1.0)
    for name in ("x1 + 2 (x1 - x0.5), the model", "line through x0.5, x1, x2 at x4"):
        assert rank[name]["kendall_tau"] == pytest.approx(1.0)  # ... growth puts them right
    assert rank["x1 + 2 (x1 - x0.5), the model"]["cost_vs_default"] == pytest.approx(140 / 90)
    assert rank["x4 itself"]["cost_vs_default"] == pytest.approx(330 / 90)
    assert rank["gain x0.5 to x1 against gain x1 to x4"]["kendall_tau"] == pytest.approx(1.0)
    assert rank["x1"]["n"] == 6


def test_a_missing_run_leaves_only_that_architecture_out():
    half, default, x2 = _results()
    half["archs"][0]["runs"]["scaled"] = None
    rank = bench.agreements(bench.scores(half, default, x2), {b: 1.0 for b in bench.BUDGETS}, 20)
    assert rank["x1"]["n"] == 5


@pytest.mark.parametrize(
    ("spoil", "needle"),
    [
        (lambda h, d, x: h["settings"].update(scale=0.25), "--half: its scaled side is x0.25"),
        (lambda h, d, x: x["settings"].update(base_scale=1.0), "--x2: its default side is x1"),
        (lambda h, d, x: d["settings"].update(scale_what="adapt"), "x4 (adapt), not x4 (both)"),
        (lambda h, d, x: x["archs"][3]["config"].update(n_layer=9), "A3 differs between"),
    ],
)
def test_results_that_do_not_fit_are_one_line_naming_why(tmp_path, spoil, needle):
    docs = _results()
    spoil(*docs)
    paths = []
    for name, payload in zip(("h.json", "d.json", "x.json"), docs, strict=True):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(payload))
    out = tmp_path / "out.json"
    argv = ["--half", str(paths[0]), "--default", str(paths[1]), "--x2", str(paths[2])]
    with pytest.raises(SystemExit) as err:
        bench.main([*argv, "--out", str(out)])
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()
