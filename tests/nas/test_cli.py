"""The entry points as users run them: real processes, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf

from nas.config.compose import CONF_DIR, describe_hydra_error
from tests.conftest import REPO, SEARCH_ONLY, compose_config, tiny_overrides

State = optuna.trial.TrialState


def run(script: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(REPO / "nas" / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=600,
    )


# Bad input (one line, exit 2, nothing written) is covered row by row in test_catalogue.py.


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


COMBINATIONS = [
    *[("search", [f"task={t}"]) for t in [*_options("task"), "[qa,ner]"]],
    *[
        ("search", [f"{g}={o}"])
        for g in ("data", "sampler", "pruner", "storage", "logger")
        for o in _options(g)
    ],
    *[("search", [f"experiment={e}"]) for e in _options("experiment")],
    ("search", ["experiment=real_suite", "~tasks.translation", "paths.data=/my/data"]),
    ("search", ["hydra/launcher=slurm", "storage=journal"]),
    ("search", ["hydra/launcher=joblib"]),
    ("train", ["arch=a.yaml"]),
    *[("train", [f"experiment={e}", "arch=a.yaml"]) for e in _options("experiment")],
    ("train", ["search_space=small", "++params.n_layer=2", "++params.d_ff.0=256"]),
    ("export", ["study=s"]),
    *[("export", ["study=s", f"storage={o}"]) for o in _options("storage")],
    ("report", ["study=s", "storage=journal"]),
]


@pytest.mark.parametrize(
    ("config_name", "overrides"), COMBINATIONS, ids=[" ".join(o) for _, o in COMBINATIONS]
)
def test_every_config_option_composes_against_its_schema(config_name, overrides):
    cfg = compose_config(config_name, overrides)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert "task" not in cfg  # task files land in `tasks`, nothing stray beside it
    if config_name in ("search", "train"):
        assert cfg.tasks and cfg.pretrain.tokens > 0 and cfg.data.seq_len > 0


def test_the_schema_rejects_a_misspelt_key_in_a_group_file(tmp_path):
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "mine.yaml").write_text("kind: sqlite\nulr: sqlite:///x.db\n")
    with pytest.raises(HydraException) as err:
        compose_config("search", [f"hydra.searchpath=[file://{tmp_path}]", "storage=mine"])
    line = describe_hydra_error(err.value, "search")
    assert line == "in storage/mine: unknown key 'storage.ulr' (did you mean storage.url?)"


def test_a_bad_value_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    done = run("search.py", f"paths.root={tmp_path}", "pretrain.encoder_mlm=maybe")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "adaptnas: error: pretrain.encoder_mlm=maybe: Value 'maybe' is not a valid bool (type str)"
    )
    assert not any(tmp_path.iterdir())


def test_a_bad_value_fails_before_the_engine_loads(tmp_path):
    """nas/search.py checks the config before it imports Lightning and the trial code: a bad
    value answers in seconds (the engine's imports took two thirds of such a run)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "nas" / "search.py"), f"paths.root={tmp_path}", "n_trials=0"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2
    assert lines[-1] == "adaptnas: error: n_trials=0 must be a positive integer (or null)"
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time")}
    assert "nas.config.check" in imported  # the profile covers the run
    assert not {"pytorch_lightning", "nas.engine.run", "nas.trial.stages"} & imported


@pytest.mark.slow
def test_search_then_resume_from_the_command_line(tmp_path):
    common = tiny_overrides(tmp_path, task="qa")
    first = run("search.py", *common, "n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run("search.py", *common, "n_trials=3")
    assert second.returncode == 0, second.stderr[-3000:]
    study = optuna.load_study(
        study_name="qa-tiny", storage=f"sqlite:///{tmp_path}/studies/qa-tiny/study.db"
    )
    assert len(study.get_trials(states=(State.COMPLETE, State.PRUNED))) == 3
    assert (tmp_path / "studies" / "qa-tiny" / "leaderboard.csv").is_file()
    # The winner retrains through the same staged trial.
    arch = tmp_path / "studies" / "qa-tiny" / "best_architecture.yaml"
    train_args = [o for o in common if not o.startswith(SEARCH_ONLY)]
    trained = run("train.py", *train_args, f"arch={arch}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "adaptability" in trained.stdout + trained.stderr
