"""Export from a real tiny search: weight keeping, every format reloaded, retraining, errors.

One search (a GPT-2-shaped space, so that every format applies; sentiment, QA, NER and
translation, so that every task kind does) and one export are shared by the module: the ONNX
exporter is the slow part.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
import torch

import adaptnas
from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import EOS, same_vocabulary
from lightning_modules.export import TOLERANCE, load_transformers
from lightning_modules.model import build_model
from lightning_modules.suite import build_suite
from lightning_modules.tasks.base import make_loader
from nas.config.errors import ConfigError
from nas.engine.run import run_search, run_train
from nas.exporting import retrain_commands, run_export, select_trials
from nas.study.kept_weights import LOCK, KeepWeights, kept_trials, trial_weights_dir
from nas.trial.record import TrialRecord
from tests.conftest import REPO, compose_config, tiny_overrides

State = optuna.trial.TrialState

SPACE = """\
name: gpt2-shaped
description: decoders that map onto transformers' GPT-2 (learned positions, LayerNorm, GELU/ReLU)
fixed: {dropout: 0.0, family: decoder, pos: learned, norm: layernorm, norm_position: pre,
        n_layer: 1, d_model: 32, d_ff: 64}
params:
  n_head: {type: categorical, choices: [2, 4]}
  n_kv_head: {type: categorical, choices: [1, 2]}
  mlp: {type: categorical, choices: [gelu, relu]}
  tie_embeddings: {type: categorical, choices: [true, false]}
"""
TASKS = "[sentiment,qa,ner,translation]"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    space = root / "gpt2.yaml"
    space.write_text(SPACE)
    extra = [
        "n_trials=3",
        "study_name=exp",
        f"search_space={space}",
        "pruner=none",
        "tasks.sentiment.steps=8",  # its config asks for 400
        "export.keep_top_k=2",
    ]
    search = run_search(compose_config("search", tiny_overrides(root, TASKS, extra)))
    (result,) = run_export(compose_config("export", ["study=exp", f"paths.root={root}"]))
    trial = search.study.best_trial
    model = adaptnas.load(result.folder)
    suite = build_suite(model.info["search"]["data"], model.info["search"]["tasks"], root / "cache")
    return SimpleNamespace(
        root=root, study=search.study, result=result, trial=trial, model=model, suite=suite
    )


# ---- weight keeping ----------------------------------------------------------------------------
def _candidate(arch: TransformerConfig, score: float) -> TrialRecord:
    return TrialRecord(
        arch=arch, n_params=arch.num_params(), flops_per_token=1.0, adaptability=score,
        pretrained=build_model(arch),
    )  # fmt: skip


def test_weights_of_trials_leaving_the_top_k_are_deleted(tmp_path):
    study = optuna.create_study(direction="maximize")
    hook = KeepWeights(tmp_path, keep_top_k=2, cfg={"objective": {"multi_objective": False}})
    arch = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2, d_ff=16)
    kept = []
    for score in (0.2, 0.5, 0.3, 0.6, 0.1):
        trial = study.ask()
        trial.set_user_attr("adaptability", score)  # what the objective records before hooks
        trial.set_user_attr("n_params", arch.num_params())
        hook.on_trial_end(trial, "complete", _candidate(arch, score), None)
        study.tell(trial, score)
        kept.append(sorted(int(p.name[6:]) for p in (tmp_path / "weights").glob("trial_*")))
    # 0.2 kept, 0.5 kept, 0.3 replaces 0.2, 0.6 replaces 0.3, 0.1 never kept. A trial's hook
    # runs before its tell, and a worker can die in between: what it displaces goes at the
    # next trial's end, once it is complete.
    assert kept == [[0], [0, 1], [0, 1, 2], [1, 2, 3], [1, 3]]
    hook.on_search_end(study)
    assert _folders(tmp_path) == [1, 3]
    assert (trial_weights_dir(tmp_path, 3) / "backbone.safetensors").is_file()
    assert study.trials[3].user_attrs["weights"] == "weights/trial_3"
    assert "weights" not in study.trials[4].user_attrs


def _finish(study, hook, arch, score, tell=True):
    """A trial recorded with ``score``, its hooks run, then told (a worker's order)."""
    trial = study.ask()
    trial.set_user_attr("adaptability", score)
    trial.set_user_attr("n_params", arch.num_params())
    hook.on_trial_end(trial, "complete", _candidate(arch, score), None)
    if tell:
        study.tell(trial, score)
    return trial


def _folders(root) -> list[int]:
    return sorted(int(p.name[6:]) for p in (root / "weights").glob("trial_*"))


def test_a_running_trial_of_another_worker_displaces_no_kept_weights(tmp_path):
    # Chaos run, 2026-12-07: a worker recorded a high score, its weights were published, then it
    # was killed before tell (the trial failed); another worker had pruned the trial it displaced.
    study = optuna.create_study(direction="maximize")
    hook = KeepWeights(tmp_path, keep_top_k=3, cfg={"objective": {"multi_objective": False}})
    arch = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2, d_ff=16)
    for score in (0.5, 0.4, 0.3):
        _finish(study, hook, arch, score)
    doomed = _finish(study, hook, arch, 0.9, tell=False)  # published; its worker dies now
    assert _folders(tmp_path) == [0, 1, 2, 3]
    _finish(study, hook, arch, 0.1)  # another worker's trial ends meanwhile
    assert _folders(tmp_path) == [0, 1, 2, 3]  # trial 2 kept; trial 3 not deleted under its worker
    study.tell(doomed, state=optuna.trial.TrialState.FAIL)  # the heartbeat fails it
    half = tmp_path / "weights" / ".trial_3.x1y2.tmp"  # a worker killed while writing
    (half / "tasks").mkdir(parents=True)
    _finish(study, hook, arch, 0.05)
    assert not half.exists()
    assert kept_trials(study, 3, multi_objective=False) == {0, 1, 2}
    assert _folders(tmp_path) == [0, 1, 2]
    for number in (0, 1, 2):
        meta = json.loads((trial_weights_dir(tmp_path, number) / "meta.json").read_text())
        assert meta["trial"] == number


def test_weights_published_while_another_worker_writes_are_not_pruned(tmp_path, monkeypatch):
    # Worker B ranks its trial, then writes its weights for seconds; meanwhile worker A records a
    # better trial and publishes its weights. B's prune must not use the ranking it read first.
    import nas.study.kept_weights as kw

    study = optuna.create_study(direction="maximize")
    hook = KeepWeights(tmp_path, keep_top_k=2, cfg={"objective": {"multi_objective": False}})
    arch = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2, d_ff=16)
    for score in (0.3, 0.2):
        _finish(study, hook, arch, score)
    write = kw.write_trial_weights
    other: list = []

    def slow_write(folder, result, meta, tokenizer=None):
        tmp = write(folder, result, meta, tokenizer)
        if not other:  # worker A, in the middle of B's write: recorded, published, told
            other.append(None)
            other[0] = _finish(study, hook, arch, 0.5)
        return tmp

    monkeypatch.setattr(kw, "write_trial_weights", slow_write)
    b = _finish(study, hook, arch, 0.4, tell=False)
    (a,) = other
    assert (a.number, b.number) == (3, 2)
    study.tell(b, 0.4)
    assert kept_trials(study, 2, multi_objective=False) == {2, 3}
    for number in (2, 3):
        assert (trial_weights_dir(tmp_path, number) / "meta.json").is_file(), number
    _finish(study, hook, arch, 0.1)  # the next trial's prune leaves exactly the top 2
    assert _folders(tmp_path) == [2, 3]


def test_multi_objective_keeps_the_most_adaptable_of_the_pareto_front():
    study = optuna.create_study(directions=["maximize", "minimize"])
    # (adaptability, params): 0 and 3 dominated; front = 1, 2, 4
    for score, params in [(0.3, 500), (0.6, 400), (0.4, 100), (0.2, 300), (0.7, 900)]:
        study.add_trial(
            optuna.trial.create_trial(
                values=[score, params], user_attrs={"adaptability": score, "n_params": params}
            )
        )
    assert kept_trials(study, 10, multi_objective=True) == {1, 2, 4}
    assert kept_trials(study, 2, multi_objective=True) == {4, 1}
    assert kept_trials(study, 2, multi_objective=False) == {4, 1}
    assert [t.number for t in select_trials(study, "pareto")] == [4, 1, 2]
    assert [t.number for t in select_trials(study, None)] == [4]


@pytest.mark.slow
def test_search_keeps_the_top_k_trials_only(exported):
    weights = exported.root / "studies/exp/weights"
    folders = sorted(p.name for p in weights.iterdir() if p.name != LOCK)  # nothing half-written
    done = sorted(exported.study.trials, key=lambda t: (-t.values[0], t.number))
    assert folders == sorted(f"trial_{t.number}" for t in done[:2])


# ---- the export folder ---------------------------------------------------------------------------
@pytest.mark.slow
def test_export_writes_every_format_checked(exported):
    out = exported.result.folder
    assert exported.result.trial == exported.trial.number
    arch = TransformerConfig.from_yaml(out / "architecture.yaml")
    assert arch.to_dict() == exported.trial.user_attrs["architecture"]
    tasks = ["sentiment", "qa", "ner", "translation"]
    for name in tasks:
        assert (out / "tasks" / f"{name}.safetensors").is_file()
        assert exported.result.parity[f"onnx/{name}.onnx"] < TOLERANCE
    for name in ["lm", "qa", "ner", "translation"]:
        assert exported.result.parity[f"transformers/{name}"] < TOLERANCE
        assert (out / "transformers" / name / "model.safetensors").is_file()
    assert "classifier bias" in exported.result.skipped["transformers/sentiment"]
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))  # nothing pickled
    card = (out / "README.md").read_text()
    for needle in ["| task | kind | metric | validation | test |", "Parameters:", "FLOPs",
                   "Study `exp`", "python nas/train.py arch=", "init_from="]:  # fmt: skip
        assert needle in card, needle
    info = exported.model.info
    assert info["scores"]["validation"] == pytest.approx(exported.trial.user_attrs["task_scores"])


@pytest.mark.slow
def test_loaded_model_scores_what_the_search_measured(exported):
    model, suite = exported.model, exported.suite
    # the same vocabulary; the export's adds the tasks' [CLS]/[SEP] layout on encoding
    assert same_vocabulary(model.tokenizer, suite.tokenizer)
    assert model.tokenizer.encode("Ada").tokens[0] == "[CLS]"
    for name, task in suite.tasks.items():
        m = model.models[name]
        preds = []
        for batch in make_loader(task.encoded("validation"), 64, shuffle=False):
            preds += task.predict(m.backbone, m.head, batch)
        score = task.score(preds, "validation")["score"]
        assert score == pytest.approx(exported.trial.user_attrs["task_scores"][name], abs=1e-12)


def _best_spans(start: torch.Tensor, end: torch.Tensor, ctx: torch.Tensor, longest: int = 30):
    """SpanTask.predict's decoding, on logits from another runtime."""
    neg = torch.finfo(torch.float32).min / 4
    s, e = start.masked_fill(~ctx, neg), end.masked_fill(~ctx, neg)
    t = s.shape[1]
    pair = (s[:, :, None] + e[:, None, :]).masked_fill(
        ~torch.ones(t, t, dtype=torch.bool).triu().tril(longest - 1), neg
    )
    best = pair.flatten(1).argmax(1)
    return list(zip((best // t).tolist(), (best % t).tolist(), strict=True))


@pytest.mark.slow
def test_every_format_predicts_the_same(exported):
    model, suite, out = exported.model, exported.suite, exported.result.folder
    family = "gpt2"

    # sentiment: label of torch == argmax of the ONNX graph
    texts = [e.text for e in suite.tasks["sentiment"].splits.validation[:12]]
    labels = model.predict("sentiment", texts)
    enc = model.encode("sentiment", texts)
    feeds = {"input_ids": enc["input_ids"].numpy(), "attention_mask": enc["attention_mask"].numpy()}
    (logits,) = model.onnx_session("sentiment").run(None, feeds)
    names = model.tasks["sentiment"]["labels"]
    assert [names[i] for i in logits.argmax(-1)] == labels

    # QA: the span of torch == the span decoded from ONNX and from transformers logits
    exs = suite.tasks["qa"].splits.validation[:8]
    pairs = [(e.question, e.context) for e in exs]
    enc = model.encode("qa", pairs)
    feeds = {"input_ids": enc["input_ids"].numpy(), "attention_mask": enc["attention_mask"].numpy()}
    task = model._task("qa", [])
    m = model.models["qa"]
    batch = {**enc, "index": torch.arange(len(exs))}
    want = [(s, e) for _, s, e in task.predict(m.backbone, m.head, batch)]
    start, end = model.onnx_session("qa").run(None, feeds)
    ctx = enc["context_mask"]
    assert _best_spans(torch.from_numpy(start), torch.from_numpy(end), ctx) == want
    hf = load_transformers(out / "transformers/qa", family, "span")
    with torch.no_grad():
        o = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    assert _best_spans(o.start_logits, o.end_logits, ctx) == want
    assert len(model.predict("qa", pairs)) == len(pairs)

    # NER: tags of torch == argmax of ONNX and transformers at each word's first sub-token
    sentences = [list(e.tokens) for e in suite.tasks["ner"].splits.validation[:8]]
    tagged = model.predict("ner", sentences)
    enc = model.encode("ner", sentences)
    feeds = {"input_ids": enc["input_ids"].numpy(), "attention_mask": enc["attention_mask"].numpy()}
    (onnx_logits,) = model.onnx_session("ner").run(None, feeds)
    hf = load_transformers(out / "transformers/ner", family, "token")
    with torch.no_grad():
        hf_logits = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    tag_names = model.tasks["ner"]["labels"]
    for row, words in enumerate(tagged):
        first = enc["first"][row]
        want = [tag for _, tag in words][: int(first.sum())]  # words cut off are "O" anyway
        assert [tag_names[i] for i in onnx_logits[row][first.numpy()].argmax(-1)] == want
        assert [tag_names[i] for i in hf_logits[row][first].argmax(-1).tolist()] == want

    # translation: greedy decoding of torch == greedy with ONNX (recompute) and transformers
    source = suite.tasks["translation"].splits.validation[0].source
    text = model.predict("translation", source)
    trans = model._task("translation", [])
    prompt = model.encode("translation", [source])["input_ids"][0].tolist()
    eos = model.tokenizer.token_to_id(EOS)
    session = model.onnx_session("translation")
    ids = list(prompt)
    for _ in range(trans.max_new_tokens):
        x = torch.tensor([ids])
        (lg,) = session.run(
            None, {"input_ids": x.numpy(), "attention_mask": torch.ones_like(x).numpy()}
        )
        nxt = int(lg[0, -1].argmax())
        if nxt == eos:
            break
        ids.append(nxt)
    assert model.tokenizer.decode(ids[len(prompt) :], skip_special_tokens=True) == text
    hf = load_transformers(out / "transformers/translation", family, None)
    gen = hf.generate(
        torch.tensor([prompt]), max_new_tokens=trans.max_new_tokens, do_sample=False,
        eos_token_id=eos, pad_token_id=0,
    )[0, len(prompt) :].tolist()  # fmt: skip
    gen = gen[: gen.index(eos)] if eos in gen else gen
    assert model.tokenizer.decode(gen, skip_special_tokens=True) == text


# ---- retraining ----------------------------------------------------------------------------------
def _train_args(command: str, root) -> list[str]:
    args = shlex.split(command)
    assert args[:2] == ["python", "nas/train.py"]
    return [*args[2:], f"paths.root={root}"]


@pytest.mark.slow
def test_a_run_without_a_recorded_budget_retrains_with_the_default_configs(tmp_path):
    """No literal fallback: the token budget comes from conf/pretrain/default.yaml."""
    cmds = retrain_commands(tmp_path / "a.yaml", {}, ["qa"], 0, None)
    tokens = compose_config("train", ["arch=a.yaml"]).pretrain.tokens
    assert shlex.split(cmds["reproduce"])[-1] == f"pretrain.tokens={tokens}"
    assert shlex.split(cmds["longer"])[-1] == f"pretrain.tokens={tokens * 10}"


def test_reproduce_command_retrains_to_the_same_scores(exported):
    cmd = exported.result.retrain["reproduce"]
    result = run_train(compose_config("train", _train_args(cmd, exported.root) + ["test=false"]))
    assert result.task_scores == pytest.approx(exported.trial.user_attrs["task_scores"])


@pytest.mark.slow
def test_init_from_starts_pretraining_from_the_exported_weights(exported):
    cmd = exported.result.retrain["longer"]
    assert f"init_from={exported.result.folder}" in cmd
    # Learning rate 0: the pretrained weights stay as exported, so the pretraining validation
    # loss is the one the search measured (and not a fresh model's ~ln(vocab)).
    extra = ["pretrain.lr=0.0", "pretrain.tokens=1024", "test=false"]
    result = run_train(compose_config("train", _train_args(cmd, exported.root) + extra))
    want = exported.trial.user_attrs["pretrain_val_loss"]
    assert result.pretrain_val_loss == pytest.approx(want, rel=1e-5)

    other = exported.root / "not-an-export"
    other.mkdir()
    bad = compose_config("train", _train_args(cmd, exported.root) + [f"init_from={other}"])
    with pytest.raises(ConfigError, match="no backbone.safetensors"):
        run_train(bad)


# ---- errors ------------------------------------------------------------------------------------
def export_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "nas" / "export.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        timeout=600,
    )


@pytest.mark.slow
def test_trial_without_kept_weights_says_so_and_offers_the_retrain_command(exported):
    kept = {int(p.name[6:]) for p in (exported.root / "studies/exp/weights").glob("trial_*")}
    (dropped,) = [t.number for t in exported.study.trials if t.number not in kept]
    out = exported.root / "dropped"
    proc = export_cli("study=exp", f"trial={dropped}", f"out={out}", f"paths.root={exported.root}")
    assert proc.returncode == 2, proc.stderr
    (message,) = proc.stderr.strip().splitlines()
    assert message.startswith(
        f"adaptnas: error: trial {dropped} of study 'exp' has no kept weights"
    )
    prefix = f"retrain it with: python nas/train.py arch={out / 'architecture.yaml'} "
    assert prefix in message
    command = message.split("retrain it with: ")[1]
    # Only values that differ from conf/train.yaml, as plain overrides: nas/train.py composes it.
    assert "+" not in command and "data.vocab_size=384" in command
    compose_config("train", _train_args(command, exported.root))
    arch = TransformerConfig.from_yaml(out / "architecture.yaml")
    assert arch.to_dict() == exported.study.trials[dropped].user_attrs["architecture"]
    with pytest.raises(ValueError, match="architecture only"):
        adaptnas.load(out)


@pytest.mark.slow
def test_unknown_trial_is_a_one_line_error(exported):
    for trial, needle in [(99, "trial=99: study 'exp' has no such trial (trials 0-2)"),
                          ("pareto", "trial=pareto: study 'exp' has one objective")]:  # fmt: skip
        cfg = compose_config(
            "export", ["study=exp", f"trial={trial}", f"paths.root={exported.root}"]
        )
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            run_export(cfg)


def test_unknown_study_is_a_one_line_error_from_the_command_line(tmp_path):
    (tmp_path / "studies" / "other").mkdir(parents=True)
    (tmp_path / "studies" / "other" / "study.db").touch()
    proc = export_cli("study=nope", f"paths.root={tmp_path}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("adaptnas: error: study=nope: no such study in ")
    assert lines[0].endswith("(known: other)")


@pytest.mark.slow
def test_export_follows_hub_conventions_and_the_umask(exported, tmp_path, monkeypatch):
    import stat

    from huggingface_hub import HfApi, ModelCard
    from transformers import AutoTokenizer

    out = exported.result.folder
    mask = os.umask(0)
    os.umask(mask)
    for path in [out, *out.rglob("*")]:  # not mkstemp's 0600 / mkdtemp's 0700
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) & 0o666 == want & 0o666, path
    # AutoTokenizer on the folder gives what the QA task was trained on
    hf = AutoTokenizer.from_pretrained(str(out))
    qa = exported.suite.tasks["qa"]
    examples = qa.splits.validation[:8]
    rows = qa._encode(examples, train=False).tensors["input_ids"]
    whole = [
        (ex, row[row != 0])
        for ex, row in zip(examples, rows, strict=True)
        if (row != 0).sum() < qa.max_len
    ]
    assert whole  # some are not truncated
    for ex, row in whole:
        assert hf(ex.question, ex.context)["input_ids"] == row.tolist()
    # the card's metadata holds every task's validation score
    data = ModelCard.load(out / "README.md").data
    assert data.library_name == "adaptnas" and "transformers" in data.tags
    scores = {
        r.task_name: r.metric_value for r in data.eval_results if r.dataset_split == "validation"
    }
    assert scores == pytest.approx(exported.trial.user_attrs["task_scores"], abs=1e-4)
    # push_to_hub: everything up to the upload, without a network
    pushed = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **k: pushed.append(repo_id))
    monkeypatch.setattr(
        HfApi,
        "upload_folder",
        lambda self, **k: pushed.append(sorted(os.listdir(k["folder_path"]))),
    )
    cfg = compose_config(
        "export",
        ["study=exp", f"paths.root={exported.root}", f"out={tmp_path / 'e'}", "onnx=false",
         "transformers=false", "push_to_hub=me/exp"],
    )  # fmt: skip
    (result,) = run_export(cfg)
    assert pushed[0] == "me/exp" and "README.md" in pushed[1] and "tokenizer.json" in pushed[1]


def test_report_export_and_validate_open_a_study_one_way(tmp_path):
    """``open_existing_study``: the storage the study recorded, or the one given; never created."""
    from nas.study.storage import open_existing_study

    folder = tmp_path / "studies" / "j"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("storage: {kind: journal, path: null}\n")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "journal.log"))
    )
    optuna.create_study(study_name="j", storage=storage).add_trial(
        optuna.trial.create_trial(value=0.5)
    )
    for name in ("export", "validate"):  # storage: null, the recorded one
        study, where = open_existing_study(
            compose_config(name, ["study=j", f"paths.root={tmp_path}"])
        )
        assert where == folder and len(study.trials) == 1
    report = compose_config("report", ["study=j", f"paths.root={tmp_path}"])  # storage: sqlite
    with pytest.raises(ConfigError, match=r"^study=j: it was run with storage=journal; add"):
        open_existing_study(report)
    cfg = compose_config("report", ["study=j", f"paths.root={tmp_path}", "storage=journal"])
    assert open_existing_study(cfg)[0].study_name == "j"
    with pytest.raises(ConfigError, match=r"^study=k: no such study in .* \(known: j\)$"):
        open_existing_study(compose_config("export", ["study=k", f"paths.root={tmp_path}"]))
    with pytest.raises(ConfigError, match=r"^study: name the study to export, e\.g\."):
        open_existing_study(compose_config("export", [f"paths.root={tmp_path}"]), "export")
    assert not (tmp_path / "studies" / "k").exists()


def test_model_card_lists_both_graphs_of_an_encoder_decoder_generation_task():
    from nas.exporting.card import _file_rows

    doc = {
        "files": {
            "tasks": {},
            "adapters": {},
            "onnx": {"mt": {"encoder": "onnx/mt/encoder.onnx", "decoder": "onnx/mt/decoder.onnx"}},
            "transformers": {},
        },
        "checks": {"max_abs_diff": {"onnx/mt": 3e-7}, "skipped": {}},
    }
    rows = [r for r in _file_rows(doc) if r[0].startswith("onnx/")]
    assert [r[0] for r in rows] == ["onnx/mt/encoder.onnx", "onnx/mt/decoder.onnx"]
    assert all(r[2] == "3.00e-07" for r in rows)
