"""nas/validate.py: new seeds, no pretraining, a larger budget and baselines for the top trials."""

from __future__ import annotations

import json
import math
import shutil
import statistics

import optuna
import pytest
from omegaconf import OmegaConf
from scipy import stats

from lightning_modules.config import TransformerConfig
from lightning_modules.suite import build_suite
from nas.config.errors import ConfigError
from nas.config.nodes import plain
from nas.engine.run import run_search
from nas.trial.run import run_trial
from nas.validity.baselines import BASELINES, baseline_names, match_baseline
from nas.validity.study import run_validate, scale_budget, trials_to_validate, without_pretraining
from tests.conftest import compose_config, tiny_overrides
from tests.nas.test_cli import run
from tests.nas.test_report import png_size

TASKS = "[sentiment,ner]"
SEEDS = [1000, 1100]  # validate.seed=1000, stride 100
VALIDATE = ["validate.top_k=2", "validate.seeds=2", "validate.scale=2"]


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """A 3-trial study on two tasks whose search ends with validate.auto=true."""
    root = tmp_path_factory.mktemp("validate")
    extra = [
        "n_trials=3",
        "study_name=val",
        "sampler=random",
        "pruner=none",
        "tasks.sentiment.steps=8",
        "validate.auto=true",
        *VALIDATE,
    ]
    result = run_search(compose_config("search", tiny_overrides(root, TASKS, extra)))
    doc = json.loads((result.folder / "validity.json").read_text())
    return root, result, doc


def test_scale_budget_multiplies_training_and_keeps_the_data(tmp_path):
    cfg = compose_config("search", tiny_overrides(tmp_path, "[sentiment,ner,qa]"))
    run = plain(cfg)
    run["tasks"]["ner"]["examples"] = 64  # a per-task example budget stays as it is
    run["tasks"]["ner"]["steps"] = 10
    big = scale_budget(run, 4)
    assert big["pretrain"]["tokens"] == 4 * run["pretrain"]["tokens"] == 4 * 4096
    assert big["finetune"]["steps"] == 4 * 8
    assert big["tasks"]["ner"]["steps"] == 40 and big["tasks"]["ner"]["examples"] == 64
    assert big["tasks"]["qa"]["steps"] is None  # follows finetune.steps, which grew
    assert big["tasks"]["sentiment"]["source"] == run["tasks"]["sentiment"]["source"]
    assert big["finetune"]["batch_size"] == run["finetune"]["batch_size"]
    assert run["pretrain"]["tokens"] == 4096 and run["tasks"]["ner"]["steps"] == 10  # unchanged
    assert without_pretraining(run)["pretrain"]["tokens"] == 0
    assert run["pretrain"]["tokens"] == 4096


def test_bert_baseline_only_where_no_task_generates(tmp_path):
    suite = plain(compose_config("search", tiny_overrides(tmp_path, "suite")).tasks)
    names = baseline_names(["gpt2", "llama", "bert"], suite)
    assert names["gpt2"] == names["llama"] == ""
    assert names["bert"] == "an encoder cannot serve tasks of kind generation"
    two = plain(compose_config("search", tiny_overrides(tmp_path, TASKS)).tasks)
    assert baseline_names(["gpt2", "llama", "bert"], two) == {"gpt2": "", "llama": "", "bert": ""}


@pytest.mark.parametrize(
    ("winner", "depths"),
    [
        (dict(family="prefix_lm", n_layer=2, d_model=64, n_head=4, n_kv_head=1, d_ff=[128, 192]),
         {"gpt2": 2, "llama": 2, "bert": 2}),
        (dict(family="decoder", n_layer=3, d_model=128, n_head=4, d_ff=512, mlp="swiglu"),
         {"gpt2": 3, "llama": 3, "bert": 3}),
        # Untied embeddings are most of this winner: no one-layer GPT-2 or BERT shape of the
        # grid (tied, learned positions) comes within 15% of it; two layers do.
        (dict(family="encoder", n_layer=1, d_model=32, n_head=2, d_ff=64, tie_embeddings=False),
         {"gpt2": 2, "llama": 1, "bert": 2}),
    ],
)  # fmt: skip
def test_baselines_match_the_winners_parameter_count(winner, depths):
    w = TransformerConfig(vocab_size=384, max_seq_len=96, **winner)
    for name, knobs in BASELINES.items():
        arch, rel = match_baseline(name, w, tolerance=0.15)
        assert rel == abs(arch.num_params() / w.num_params() - 1) and rel <= 0.15, name
        assert {k: getattr(arch, k) for k in knobs} == knobs
        assert (arch.vocab_size, arch.max_seq_len) == (384, 96)
        assert arch.n_layer == depths[name], name  # the winner's depth when one fits


def test_validation_writes_its_three_files_with_consistent_figures(validated):
    _, result, doc = validated
    folder = result.folder
    assert {"validity_json", "validity_md", "validity_png"} <= set(result.files)
    width, height = png_size(folder / "validity.png")
    assert width >= 300 and height >= 200
    assert not list(folder.glob(".validity*"))  # written atomically, no temp file left
    archs = doc["architectures"]
    top = sorted(result.study.trials, key=lambda t: (-t.value, t.number))[:2]
    assert [a["trial"] for a in archs] == [t.number for t in top]
    assert doc["settings"]["seeds"] == SEEDS and doc["tasks"] == ["sentiment", "ner"]
    assert not set(SEEDS) & {t.number for t in result.study.trials}  # search seeds: 0 + number

    for a in archs:
        pre, scr, lrg = a["pretrained"], a["not_pretrained"], a["large"]
        assert pre["adaptability"]["n"] == scr["adaptability"]["n"] == 2
        values = pre["adaptability"]["values"]
        assert pre["adaptability"]["mean"] == statistics.fmean(values)
        assert pre["adaptability"]["sd"] == statistics.stdev(values)
        for t in doc["tasks"]:  # adaptability = mean of the task scores, per seed
            assert len(pre["tasks"][t]["values"]) == 2
        assert values[0] == statistics.fmean(pre["tasks"][t]["values"][0] for t in doc["tasks"])
        gain = a["gain"]["adaptability"]["mean"]
        assert gain == pre["adaptability"]["mean"] - scr["adaptability"]["mean"]
        # No pretraining stage at all; the large budget doubles every stage.
        assert scr["steps"]["pretrain"] == 0 and pre["steps"]["pretrain"] == 8
        assert lrg["steps"] == {k: 2 * v for k, v in pre["steps"].items()}
        assert lrg["seeds"] == SEEDS[:1] and "test" in pre and "test" not in scr

    sds = [a["pretrained"]["adaptability"]["sd"] for a in archs]
    pooled = math.sqrt(statistics.fmean(s * s for s in sds))
    assert doc["noise"]["pooled_sd"] == pooled
    w, r = doc["winner"], doc["rank"]
    assert w["trial"] == archs[0]["trial"] and w["runner_up"] == archs[1]["trial"]
    means = [a["pretrained"]["adaptability"]["mean"] for a in archs]
    assert w["lead"] == means[0] - means[1]
    assert w["threshold"] == 2 * pooled * math.sqrt(2 / 2)
    assert w["exceeds_noise"] == (w["lead"] > w["threshold"])
    gains = [a["gain"]["adaptability"]["mean"] for a in archs]
    assert doc["gain"]["winner"] == gains[0]
    assert doc["gain"]["median_finalist"] == statistics.median(gains)
    larges = [a["large"]["adaptability"]["mean"] for a in archs]
    assert r["search"] == means and r["large"] == larges and r["n"] == 2
    assert r["kendall_tau"] == stats.kendalltau(means, larges).statistic

    names = [b["name"] for b in doc["baselines"]]
    assert names == ["gpt2", "llama", "bert"] and doc["baselines_skipped"] == {}
    for b in doc["baselines"]:
        assert b["within_tolerance"] and b["seeds"] == SEEDS
        assert b["winner_minus_test"] == (
            archs[0]["pretrained"]["test_adaptability"]["mean"] - b["test_adaptability"]["mean"]
        )

    md = (folder / "validity.md").read_text()
    assert f"**Winner**: trial {w['trial']} ({archs[0]['describe']})" in md
    assert f"Kendall tau {r['kendall_tau']:.2f}" in md
    assert f"winner {doc['gain']['winner']:+.3f}" in md
    assert "Rule: lead > 2 x pooled_sd x sqrt(2 / seeds)" in md
    for title in ("GPT-2-like", "Llama-like", "BERT-like"):
        assert f"**vs {title}**" in md


def test_validation_runs_reproduce_exactly(validated):
    """CPU runs are deterministic: the figures are those of run_trial with the study config."""
    _, result, doc = validated
    run_cfg = OmegaConf.to_container(OmegaConf.load(result.folder / "config.yaml"), resolve=True)
    suite = build_suite(run_cfg["data"], run_cfg["tasks"])
    runner_up = doc["architectures"][1]
    arch = TransformerConfig.from_dict(runner_up["architecture"])
    again = run_trial(arch, suite, run_cfg, seed=SEEDS[1])
    assert again.adaptability == runner_up["pretrained"]["adaptability"]["values"][1]
    scratch = run_trial(arch, suite, without_pretraining(run_cfg), seed=SEEDS[0])
    assert scratch.adaptability == runner_up["not_pretrained"]["adaptability"]["values"][0]


def test_bad_settings_are_one_line_config_errors(validated):
    root, _, _ = validated

    def cfg(*extra):
        return compose_config("validate", [f"paths.root={root}", "study=val", *extra])

    with pytest.raises(ConfigError, match=r"validate.seed=0: seed 0 was a search seed"):
        run_validate(cfg("validate.seed=0", "validate.top_k=2"))
    with pytest.raises(ConfigError, match=r"validate.top_k=1: needs 2 or more"):
        run_validate(cfg("validate.top_k=1"))
    with pytest.raises(ConfigError, match=r"validate.baselines: 't5' is not one of"):
        run_validate(cfg("validate.baselines=[gpt2,t5]"))
    with pytest.raises(ConfigError, match=r"study=nosuch: no such study in .* \(known: val\)"):
        run_validate(cfg("study=nosuch"))


def test_a_study_with_one_completed_trial_cannot_be_validated():
    study = optuna.create_study(study_name="one", direction="maximize")
    arch = TransformerConfig(n_layer=1, d_model=32, n_head=2, d_ff=64).to_dict()
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"architecture": arch}))
    with pytest.raises(ConfigError, match="has 1 completed trial.*needs 2 or more"):
        trials_to_validate(study, 3)


def test_command_line_validates_a_study_and_rejects_an_unknown_one(validated, tmp_path):
    root, result, _ = validated
    shutil.copytree(result.folder, tmp_path / "studies" / "val")
    ok = run(
        "validate.py",
        "study=val",
        f"paths.root={tmp_path}",
        "validate.top_k=2",
        "validate.seeds=2",
        "validate.scale=1",
        "validate.baselines=[]",
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "winner trial" in ok.stdout and "Kendall tau" in ok.stdout
    doc = json.loads((tmp_path / "studies" / "val" / "validity.json").read_text())
    assert doc["settings"]["scale"] == 1.0 and doc["baselines"] == []

    bad = run("validate.py", "study=nosuch", f"paths.root={root}")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "study=nosuch: no such study" in lines[0], bad.stderr
    missing = run("validate.py", f"paths.root={root}")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "adaptnas: error: study: name the study to validate, e.g. study=suite-small"
    )


def test_a_failed_run_is_recorded_and_left_out_of_the_means(tmp_path, monkeypatch):
    """Aggregation without training: a fake staged trial whose score is a function of its inputs."""
    import nas.validity.study as validate
    from lightning_modules.optim import DivergedError
    from nas.trial.record import TrialRecord

    run_cfg = plain(compose_config("search", tiny_overrides(tmp_path, TASKS)))
    study = optuna.create_study(study_name="fake", direction="maximize")
    for i, value in enumerate([0.9, 0.8, 0.7]):
        arch = TransformerConfig(n_layer=1 + i, d_model=32, n_head=2, d_ff=64, vocab_size=384)
        study.add_trial(
            optuna.trial.create_trial(value=value, user_attrs={"architecture": arch.to_dict()})
        )

    def fake(arch, suite, cfg, hooks=(), seed=0, **_):
        pretrained = cfg["pretrain"]["tokens"] > 0
        if arch.n_layer == 2 and not pretrained and seed == 1100:
            raise DivergedError("sentiment loss nan at step 3")
        score = 0.1 * arch.n_layer + seed / 1e5 + (0.2 if pretrained else 0.0)
        r = TrialRecord(arch=arch, flops_per_token=0.0)
        r.task_scores = {"sentiment": score, "ner": score}
        r.adaptability = score
        r.steps = {"pretrain": cfg["pretrain"]["tokens"] // 512}
        if any(h.wants_test(None, score) for h in hooks):
            r.test_metrics = {t: {"score": score} for t in r.task_scores}
        return r

    monkeypatch.setattr(validate, "run_trial", fake)
    settings = {"top_k": 3, "seeds": 2, "seed": 1000, "scale": 4, "scale_seeds": 1,
                "baselines": [], "param_tolerance": 0.15}  # fmt: skip
    result = validate.validate_study(study, tmp_path / "fake", run_cfg, settings)
    doc = result.doc
    second = doc["architectures"][1]["not_pretrained"]
    assert second["adaptability"]["values"] == [0.2 + 0.01, None]
    assert second["adaptability"]["n"] == 1 and second["adaptability"]["sd"] is None
    assert second["failed"] == ["seed 1100: DivergedError: sentiment loss nan at step 3"]
    assert doc["architectures"][1]["gain"]["adaptability"]["mean"] == pytest.approx(0.2 + 0.0005)
    assert doc["architectures"][0]["large"]["steps"] == {"pretrain": 4 * 4096 // 512}
    # Scores rise with depth: the search's order (0.9, 0.8, 0.7 for L1, L2, L3) does not hold.
    assert doc["winner"]["best_by_validation"] == 2 and doc["winner"]["lead"] < 0
    assert doc["rank"]["kendall_tau"] == pytest.approx(1.0)
    md = (tmp_path / "fake" / "validity.md").read_text()
    assert "trial 2 scores higher than the winner" in md
    assert "- trial 1, not_pretrained: seed 1100: DivergedError: sentiment loss nan" in md


def test_finalist_repeats_are_not_validated_as_architectures_of_their_own():
    import optuna

    from nas.validity.study import trials_to_validate

    study = optuna.create_study(direction="maximize")
    arch = {"family": "decoder"}
    for value, attrs in [
        (0.5, {}),
        (0.4, {}),
        (0.9, {"finalist_of": 0, "repeat": 1}),  # a repeat of trial 0 at another seed
        (0.3, {}),
    ]:
        study.add_trial(
            optuna.trial.create_trial(value=value, user_attrs={"architecture": arch, **attrs})
        )
    assert [t.number for t in trials_to_validate(study, 3)] == [0, 1, 3]


def test_the_studys_winner_is_validated_first_even_when_another_trial_had_the_best_first_seed():
    """The winner is the best mean over the finalists' seeds (``best_architecture.yaml``), not
    the best single search score: validating another trial as "the winner" misreports it."""
    import optuna

    from nas.study.finalists import FinalistSettings
    from nas.validity.study import trials_to_validate

    study = optuna.create_study(direction="maximize")
    FinalistSettings(top_k=2, seeds=1).record(study)
    arch = {"family": "decoder"}
    for value, attrs in [
        (0.39, {}),  # best first seed, a poor repeat: mean 0.35
        (0.37, {}),  # mean 0.375: the study's winner
        (0.31, {"finalist_of": 0, "repeat": 1}),
        (0.38, {"finalist_of": 1, "repeat": 1}),
        (0.36, {}),
        (0.20, {}),
    ]:
        study.add_trial(
            optuna.trial.create_trial(value=value, user_attrs={"architecture": arch, **attrs})
        )
    assert [t.number for t in trials_to_validate(study, 3)] == [1, 0, 4]
    assert [t.number for t in trials_to_validate(study, 4)] == [1, 0, 4, 5]
