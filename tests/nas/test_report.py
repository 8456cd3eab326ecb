"""nas/report.py: the plots and the leaderboard of a study, rebuilt from its storage."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys

import optuna
import pytest

from nas.config.errors import ConfigError
from nas.engine.run import run_search
from nas.reporting.plots import run_report, task_score_matrix
from tests.conftest import REPO, compose_config, tiny_overrides

SINGLE = ["optimization_history", "param_importances", "intermediate_values", "task_scores"]
FAST = ["tasks.sentiment.steps=8", "pruner=none", "sampler=random"]


def png_size(path) -> tuple[int, int]:
    """Width and height of a PNG (after checking its signature and IHDR chunk)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished single-objective study of 4 trials on two tasks (plots written at its end)."""
    root = tmp_path_factory.mktemp("report")
    extra = ["n_trials=4", "study_name=rep", "plots=true", *FAST]
    result = run_search(compose_config("search", tiny_overrides(root, "[sentiment,qa]", extra)))
    return root, result


def report_cfg(root, *extra):
    return compose_config("report", [f"paths.root={root}", *extra])


def test_search_ends_with_plots_and_report_rebuilds_them(finished):
    root, result = finished
    plots = result.folder / "plots"
    assert {f"{n}.png" for n in SINGLE} <= set(result.files)
    shutil.rmtree(plots)
    (result.folder / "leaderboard.csv").unlink()

    files = run_report(report_cfg(root, "study=rep"))
    assert files["leaderboard"].is_file() and files["best_architecture"].is_file()
    for name in SINGLE:
        png, html = plots / f"{name}.png", plots / f"{name}.html"
        assert files[f"{name}.png"] == png and files[f"{name}.html"] == html
        width, height = png_size(png)
        assert width >= 300 and height >= 150 and png.stat().st_size > 5000, name
        text = html.read_text()
        assert 'class="plotly-graph-div"' in text and 'src="plotly.min.js"' in text, name
    assert not (plots / "pareto_front.png").exists()  # single objective
    assert (plots / "plotly.min.js").stat().st_size > 1_000_000  # the pages open offline
    assert not list(plots.glob(".*"))  # no temporary files left behind


def test_heatmap_rows_are_the_top_trials(finished):
    _, result = finished
    rows, tasks, scores = task_score_matrix(result.study, top_k=3)
    best = sorted(result.study.trials, key=lambda t: -t.value)[:3]
    assert tasks == ["sentiment", "qa"]
    assert [r.split()[0] for r in rows] == [f"#{t.number}" for t in best]
    assert scores[0] == [best[0].user_attrs["task_scores"][n] for n in tasks]


def test_report_while_a_trial_is_running(finished):
    root, result = finished
    study = optuna.load_study(study_name="rep", storage=f"sqlite:///{result.folder / 'study.db'}")
    running = study.ask()  # a worker that is still busy with this trial
    try:
        files = run_report(report_cfg(root, "study=rep", "plots=false"))
        rows = files["leaderboard"].read_text().splitlines()
        assert any(f",{running.number},running," in r for r in rows)
        assert len(rows) == 1 + 5
    finally:
        study.tell(running, state=optuna.trial.TrialState.FAIL)


def test_multi_objective_report_has_a_pareto_front(tmp_path):
    extra = ["objective.multi_objective=true", "sampler=nsga2", "n_trials=3", "plots=false"]
    run_search(compose_config("search", tiny_overrides(tmp_path, "qa", ["study_name=mo", *extra])))
    files = run_report(report_cfg(tmp_path, "study=mo"))
    width, _ = png_size(files["pareto_front.png"])
    assert width >= 300 and "plotly-graph-div" in files["pareto_front.html"].read_text()
    assert "intermediate_values.png" not in files  # multi-objective trials are never pruned
    assert files["pareto_front"].is_file()  # the CSV of nas/results


def test_unknown_study_is_a_one_line_error_and_creates_nothing(tmp_path, finished):
    root, _ = finished
    with pytest.raises(ConfigError, match=r"study=nope: no such study in .* \(known: rep\)"):
        run_report(report_cfg(root, "study=nope"))
    assert not (root / "studies" / "nope").exists()
    proc = subprocess.run(
        [sys.executable, "nas/report.py", "study=nope", f"paths.root={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("adaptnas: error: study=nope: no ")
