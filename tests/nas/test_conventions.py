"""What users of Hydra, Optuna, W&B and Hugging Face expect (issue 18), one section per ecosystem.

Console commands and packaging have their own end-to-end test in tests/test_install.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from rich.console import Console

from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import (
    load_or_train_tokenizer,
    same_vocabulary,
    with_task_template,
)
from lightning_modules.export import save_safetensors
from lightning_modules.model import build_model
from lightning_modules.suite import build_suite
from nas.config.errors import ConfigError
from nas.exporting import card_data, model_card, push_export
from nas.exporting.pipeline import _prepare_out, _write_tokenizer
from nas.reporting.files import write_atomic
from nas.reporting.leaderboard import fit_columns, print_leaderboard
from nas.reporting.progress import SearchProgress, interactive
from nas.reporting.tracking import has_wandb_key
from nas.study.kept_weights import ARTIFACTS_ATTR, ARTIFACTS_DIR, KeepWeights, trial_weights_dir
from nas.study.storage import open_study
from nas.trial.record import TrialRecord
from nas.trial.stages import make_trainer, stage_callbacks
from tests.conftest import REPO, SEARCH_ONLY, compose_config, tiny_overrides
from tests.nas.run_config import trainer_config
from tests.nas.test_tracking import read_finished

State = optuna.trial.TrialState
ENTRY_POINTS = ["search", "train", "export", "report", "sweep", "validate"]


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


# ---- 1. Hydra: every entry point is a Hydra app -------------------------------------------------
@pytest.mark.parametrize(
    "name",  # two processes each (~10 s on a busy machine): sweep, the newest app, always
    [n if n == "sweep" else pytest.param(n, marks=pytest.mark.slow) for n in ENTRY_POINTS],
)
def test_every_entry_point_is_a_hydra_app(name, tmp_path):
    script = REPO / "nas" / f"{name}.py"
    help_ = _run(str(script), "--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "Powered by Hydra" in help_.stdout and "== Config ==" in help_.stdout
    cfg = _run(str(script), "--cfg", "job", f"paths.root={tmp_path}", cwd=tmp_path)
    assert cfg.returncode == 0, cfg.stderr
    assert yaml.safe_load(cfg.stdout)["paths"]["root"] == str(tmp_path)
    assert not list(tmp_path.iterdir())  # --help and --cfg run nothing


def test_sweep_config_has_train_groups_and_keys():
    overrides = ["task=[qa,ner]", "experiment=quick", "finetune.steps=7"]
    sweep = OmegaConf.to_container(compose_config("sweep", overrides), resolve=True)
    train = OmegaConf.to_container(compose_config("train", [*overrides, "arch=a.yaml"]))
    train = OmegaConf.to_container(OmegaConf.create(train), resolve=True)
    for key in ("tasks", "data", "pretrain", "finetune", "trainer", "objective", "logger"):
        assert sweep[key] == train[key], key
    # experiment=quick picks the tiny space for the sweep too
    assert (sweep["method"], sweep["search_space"], sweep["arch"]) == ("bayes", "tiny", None)


def test_sweep_cli_passes_train_overrides_and_keeps_its_own(tmp_path):
    out = tmp_path / "s.yaml"
    proc = _run(
        str(REPO / "nas" / "sweep.py"),
        "search_space=tiny",
        f"out={out}",
        "method=random",
        "task=qa",
        "finetune.steps=7",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    command = yaml.safe_load(out.read_text())["command"]
    assert "task=qa" in command and "finetune.steps=7" in command
    assert not any(c.startswith(("method=", "out=", "hydra.")) for c in command)


# ---- 2. Hugging Face ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qa_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    overrides = tiny_overrides(root, "[qa,sentiment]", ["arch=a.yaml"])
    cfg = compose_config("train", [o for o in overrides if not o.startswith(SEARCH_ONLY)])
    return build_suite(
        OmegaConf.to_container(cfg.data, resolve=True),
        OmegaConf.to_container(cfg.tasks, resolve=True),
        root / "cache",
    )


def test_exported_tokenizer_gives_the_layout_the_tasks_were_trained_on(qa_suite, tmp_path):
    from transformers import AutoTokenizer

    _write_tokenizer(with_task_template(qa_suite.tokenizer), tmp_path, qa_suite.seq_len)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    qa = qa_suite.tasks["qa"]
    examples = qa.splits.validation[:5]
    rows = qa._encode(examples, train=False).tensors
    for i, ex in enumerate(examples):
        ids = hf(ex.question, ex.context)["input_ids"]
        n = int(rows["attention_mask"][i].sum())
        if n < qa.max_len:  # not truncated: the task's row exactly
            assert ids == rows["input_ids"][i, :n].tolist()
        assert hf.convert_ids_to_tokens(ids)[0] == "[CLS]" and ids.count(qa.sep_id) == 2
    sentiment = qa_suite.tasks["sentiment"]
    ex = sentiment.splits.validation[0]
    row = sentiment._encode([ex], train=False).tensors["input_ids"][0]
    assert hf(ex.text)["input_ids"] == row[row != 0].tolist()  # [CLS] text [SEP]
    assert set(hf("a", "b")) == {"input_ids", "attention_mask"}  # no token types for GPT-2
    # the tokenizers file alone loads the same way, and still counts as the run's tokenizer
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tok.encode("a b").tokens[0] == "[CLS]"
    assert same_vocabulary(tok, qa_suite.tokenizer)
    assert qa_suite.tokenizer.encode("a b").tokens[0] != "[CLS]"  # training adds them itself


def _doc(source: dict | None = None) -> dict:
    return {
        "study": "s",
        "trial": 3,
        "describe": "decoder L1 d32",
        "architecture": {"family": "decoder", "n_layer": 1},
        "n_params": 1234,
        "flops_per_token": 100.0,
        "scores": {
            "adaptability": 0.61,
            "validation": {"qa": 0.5, "sentiment": 0.72},
            "test": {"qa": {"score": 0.45}},
        },
        "tasks": {
            "qa": {"kind": "span", "metric": "f1", "config": {"source": {"type": "builtin"}}},
            "sentiment": {
                "kind": "sequence",
                "metric": "accuracy",
                "config": {"source": source or {"type": "builtin"}},
            },
        },
        "search": {},
        "files": {"tasks": {}, "onnx": {"qa": "onnx/qa.onnx"}, "transformers": {}},
        "checks": {"max_abs_diff": {"onnx/qa.onnx": 1e-6}, "skipped": {}},
        "retrain": {},
    }


def test_model_card_carries_hub_metadata_with_the_task_scores(tmp_path):
    from huggingface_hub import ModelCard

    doc = _doc({"type": "hf", "path": "stanfordnlp/sst2"})
    path = tmp_path / "README.md"
    path.write_text(model_card(doc))
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "adaptnas"
    assert {"adaptnas", "neural-architecture-search", "onnx", "decoder"} <= set(data.tags)
    assert data.datasets == ["stanfordnlp/sst2"]
    scores = {(r.task_name, r.dataset_split): r.metric_value for r in data.eval_results}
    assert scores == {
        ("qa", "validation"): 0.5,
        ("qa", "test"): 0.45,
        ("sentiment", "validation"): 0.72,
    }
    types = {r.task_name: r.task_type for r in data.eval_results}
    assert types == {"qa": "question-answering", "sentiment": "text-classification"}
    assert "model-index" in path.read_text().split("---")[1]
    assert "## Scores" in card.text  # the human part follows the metadata
    assert card_data(_doc()).datasets is None  # built-in data: no Hub dataset to name


def test_push_to_hub_uploads_the_folder(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: calls.append(("create", a, k)))

    def upload(self, **kwargs):
        calls.append(("upload", (), kwargs))
        return type("Info", (), {"commit_url": "https://huggingface.co/me/m/commit/1"})()

    monkeypatch.setattr(HfApi, "upload_folder", upload)
    (tmp_path / "README.md").write_text("card")
    url = push_export(tmp_path, "me/m")
    assert url == "https://huggingface.co/me/m/commit/1"
    assert calls[0] == ("create", ("me/m",), {"repo_type": "model", "exist_ok": True})
    assert calls[1][2]["folder_path"] == str(tmp_path) and calls[1][2]["repo_id"] == "me/m"
    with pytest.raises(ConfigError, match=r"push_to_hub=not a repo:"):
        push_export(tmp_path, "not a repo")

    def refuse(self, **kwargs):
        raise OSError("401 Unauthorized\nmore")

    monkeypatch.setattr(HfApi, "upload_folder", refuse)
    with pytest.raises(ConfigError, match=r"^push_to_hub=me/m: 401 Unauthorized$"):
        push_export(tmp_path, "me/m")


# ---- 3. Optuna -----------------------------------------------------------------------------------
@pytest.mark.parametrize("multi", [False, True])
def test_objectives_have_names(tiny_cfg, multi):
    cfg = tiny_cfg("qa", ["storage=memory", f"objective.multi_objective={str(multi).lower()}"])
    study = open_study(cfg)
    names = ["adaptability", "n_params"] if multi else ["adaptability"]
    assert study.metric_names == names
    study.add_trial(optuna.trial.create_trial(values=[0.5, 10][: len(names)]))
    columns = set(study.trials_dataframe().columns)
    assert ({"values_adaptability", "values_n_params"} if multi else {"value_adaptability"}) <= (
        columns
    )


def test_kept_weights_are_optuna_artifacts(tmp_path):
    from optuna.artifacts import get_all_artifact_meta

    study = optuna.create_study(direction="maximize")
    hook = KeepWeights(tmp_path, keep_top_k=1, cfg={"objective": {"multi_objective": False}})
    arch = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2, d_ff=16)
    for score in (0.2, 0.5):
        trial = study.ask()
        trial.set_user_attr("adaptability", score)
        result = TrialRecord(
            arch=arch, n_params=1, flops_per_token=1.0, adaptability=score,
            pretrained=build_model(arch),
        )  # fmt: skip
        hook.on_trial_end(trial, "complete", result, None)
        study.tell(trial, score)
    first, second = study.trials
    metas = {m.filename: m for m in get_all_artifact_meta(second, storage=study._storage)}
    assert set(metas) == {"backbone.safetensors", "meta.json"}
    assert metas["meta.json"].mimetype == "application/json"
    ids = second.user_attrs[ARTIFACTS_ATTR]
    kept = trial_weights_dir(tmp_path, 1) / "backbone.safetensors"
    stored = tmp_path / ARTIFACTS_DIR / ids["backbone.safetensors"]
    assert kept.stat().st_ino == stored.stat().st_ino  # one file on disk, two names
    # trial 0 left the top 1: its weights and its artifacts are gone
    hook.on_search_end(study)  # trial 1 is complete now: what it displaced goes
    assert not trial_weights_dir(tmp_path, 0).exists()
    gone = first.user_attrs[ARTIFACTS_ATTR].values()
    assert not any((tmp_path / ARTIFACTS_DIR / i).exists() for i in gone)


def test_optuna_journal_storage_still_lacks_heartbeats():
    """Fails once Optuna's JournalStorage beats itself (optuna#6615): then delete
    nas.study.storage.JournalHeartbeatStorage and use Optuna's."""
    from optuna.storages._heartbeat import BaseHeartbeat

    journal = optuna.storages.JournalStorage
    assert not issubclass(journal, BaseHeartbeat), "optuna#6615 landed: drop our heartbeat"
    assert not hasattr(journal, "record_heartbeat"), "optuna#6615 landed: drop our heartbeat"


# ---- 4. W&B --------------------------------------------------------------------------------------
@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """No W&B credentials anywhere: empty home, settings and netrc under tmp_path."""
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    return tmp_path


def test_wandb_login_is_found_where_wandb_looks(no_wandb_login, monkeypatch):
    assert not has_wandb_key()
    token = no_wandb_login / "token"
    token.write_text("a-jwt")
    monkeypatch.setenv("WANDB_IDENTITY_TOKEN_FILE", str(token))
    assert has_wandb_key()  # workload identity, no API key at all
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE")
    netrc = no_wandb_login / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'a' * 40}\n")
    netrc.chmod(0o600)
    assert has_wandb_key()  # what `wandb login` writes
    from wandb.sdk import wandb_setup

    assert wandb_setup._singleton is None  # wandb.init still reads the environment afresh


def _leet_inspect() -> list[str] | None:
    exe = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    if not Path(exe).is_file():
        return None
    proc = subprocess.run([exe, "leet", "inspect", "--help"], capture_output=True, text=True)
    return [exe, "leet", "inspect"] if proc.returncode == 0 and "--summary" in proc.stdout else None


def test_offline_run_reader_agrees_with_wandb_leet(tmp_path, monkeypatch):
    command = _leet_inspect()
    if command is None:
        pytest.skip("this wandb has no `wandb leet inspect --summary` (wandb >= 0.31)")
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "cfg"))
    run = wandb.init(
        mode="offline", dir=str(tmp_path), project="p", name="trial-0", job_type="trial",
        config={"arch": {"n_layer": 2}, "seed": 1},
    )  # fmt: skip
    for step in range(3):
        run.log({"pretrain/loss": 1.0 / (step + 1), "adaptability": 0.1 * step})
    run.summary["state"] = "complete"
    run.finish()
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    ours = read_finished(folder)  # wandb's service may still be writing the file
    proc = subprocess.run([*command, "--summary", "--json", str(folder)], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    assert (ours["id"], ours["name"], ours["project"]) == (
        theirs["run_id"],
        theirs["name"],
        theirs["project"],
    )
    assert ours["config"] == theirs["config"]
    assert ours["exit_code"] == theirs["exit_code"] == 0
    mine = {k: v for k, v in ours["summary"].items() if not k.startswith("_")}
    wandbs = {k: v for k, v in theirs["summary"].items() if not k.startswith("_")}
    assert mine == wandbs
    assert mine["adaptability"] == pytest.approx(0.2) and mine["state"] == "complete"


# ---- 5. Progress and the leaderboard -------------------------------------------------------------
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_where_someone_watches():
    assert interactive(_Tty(), {"TERM": "xterm"})
    assert not interactive(io.StringIO(), {"TERM": "xterm"})  # piped
    assert not interactive(_Tty(), {"TERM": "xterm", "SLURM_JOB_ID": "12"})
    assert not interactive(_Tty(), {"TERM": "dumb"})


def test_progress_shows_trial_stage_eta_and_best():
    out = _Tty()
    console = Console(file=out, force_terminal=True, width=150, color_system=None)
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.3))
    progress = SearchProgress(3, console=console)
    progress.on_search_start(study, {})
    trial = study.ask()
    progress.on_trial_start(trial, None)
    progress.on_stage(trial, "pretrain", 2.0, {})
    progress.progress.refresh()
    shown = out.getvalue()
    assert "trial 1" in shown and "1/3" in shown and "pretrain done (2s)" in shown
    assert "best 0.300" in shown and "ETA" in shown
    progress.on_trial_end(
        trial,
        "complete",
        TrialRecord(arch=None, n_params=1, flops_per_token=1.0, adaptability=0.55),
        None,
    )
    progress.on_search_end(study)
    assert "2/3" in out.getvalue() and "best 0.550" in out.getvalue()


def test_rich_progress_bar_inside_a_stage_when_asked():
    from pytorch_lightning.callbacks import RichProgressBar

    assert stage_callbacks({"progress_bar": False}) == []
    trainer = make_trainer(trainer_config(progress_bar="rich", accelerator="cpu"), 2, val_every=2)
    assert any(isinstance(c, RichProgressBar) for c in trainer.callbacks)
    plain = make_trainer(trainer_config(progress_bar=False, accelerator="cpu"), 2, val_every=2)
    assert plain.progress_bar_callback is None


def _rows(n: int = 4) -> list[dict]:
    tasks = ["qa", "sentiment", "classification", "ner", "translation", "summarization"]
    rows = []
    for i in range(n):
        row = {"rank": i + 1, "trial": i, "state": "complete", "adaptability": 0.5 - i / 100}
        row |= {t: 0.4 + i / 100 for t in tasks}
        row |= {f"test_{t}": 0.3 for t in tasks}
        row |= {"params": 123456, "time_s": 12.5, "architecture": "decoder L2 d128 ff384x2 rope"}
        row["reason"] = "" if i else "pruned at task 2: " + "x" * 100
        rows.append(row)
    return rows


@pytest.mark.parametrize("width", [80, 120, 200])
def test_leaderboard_fits_the_terminal(width):
    out = io.StringIO()
    print_leaderboard(_rows(), "study s", console=Console(file=out, width=width))
    lines = out.getvalue().splitlines()
    assert max(map(len, lines)) <= width
    for i in range(4):  # one line per trial: no row wraps
        assert sum(line.lstrip("│ ").startswith(f"{i + 1} ") for line in lines) == 1
    assert "adaptability" in lines[2] or "adaptab" in out.getvalue()
    if width < 200:
        assert "(in leaderboard.csv)" in lines[-1] and "test_" in lines[-1]


def test_leaderboard_shows_every_column_where_they_fit():
    out = io.StringIO()
    print_leaderboard(_rows(), "study s", console=Console(file=out, width=400))
    text = out.getvalue()
    assert "test_summarization" in text and "not shown" not in text
    cols = ["rank", "test_qa", "trial", "note", "qa"]
    shown, left = fit_columns(cols, {c: ["x" * 10] for c in cols}, width=45)
    # by priority (task scores before the note, test scores last), shown in table order
    assert shown == ["rank", "trial", "qa"] and left == ["test_qa", "note"]


# ---- 6. Files follow the umask -------------------------------------------------------------------
@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_written_files_and_folders_follow_the_umask(tmp_path, mask):
    arch = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2, d_ff=16)
    with umask(mask):
        write_atomic(tmp_path / "leaderboard.csv", "a,b\n")
        save_safetensors(build_model(arch), tmp_path / "w.safetensors")
        export_tmp = _prepare_out(tmp_path / "export")
        tok = load_or_train_tokenizer(["ada lives in paris"] * 10, 120, tmp_path / "cache")
        assert tok is not None
        result = TrialRecord(
            arch=arch, n_params=1, flops_per_token=1.0, adaptability=0.5,
            pretrained=build_model(arch),
        )  # fmt: skip
        study = optuna.create_study(direction="maximize")
        trial = study.ask()
        trial.set_user_attr("adaptability", 0.5)
        KeepWeights(tmp_path, 1, {"objective": {"multi_objective": False}}).on_trial_end(
            trial, "complete", result, None
        )
    files = [tmp_path / "leaderboard.csv", tmp_path / "w.safetensors"]
    files += list((tmp_path / "cache").glob("tokenizer-*.json"))
    files += [p for p in (tmp_path / "weights").rglob("*") if p.is_file()]
    files += [p for p in (tmp_path / ARTIFACTS_DIR).iterdir()]
    assert len(files) >= 6
    for path in files:
        assert _mode(path) == 0o666 & ~mask, path
    for folder in [export_tmp, trial_weights_dir(tmp_path, 0)]:
        assert _mode(folder) == 0o777 & ~mask, folder
