"""nas/validate.py: new seeds, no pretraining, a larger budget and baselines for the top trials."""

from __future__ import annotations

import functools
import json
import shutil

import optuna
import pytest
from omegaconf import OmegaConf

from lightning_modules.config import TransformerConfig
from lightning_modules.suite import build_suite
from nas.config.errors import ConfigError
from nas.config.nodes import plain
from nas.engine.run import run_search
from nas.trial.run import run_trial
from nas.validity.baselines import BASELINES, baseline_names, match_baseline
from nas.validity.study import (
    drawn,
    run_validate,
    scale_budget,
    trials_to_validate,
    without_pretraining,
)
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


def test_the_schema_knows_the_baselines():
    from nas.config.schema import ValidateBlock

    assert ValidateBlock.names == tuple(BASELINES)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("validate.top_k=1", "validate.top_k=1: needs 2 or more (a winner and a runner-up)"),
        ("validate.seeds=1", "validate.seeds=1: needs 2 or more for a seed sd"),
        ("validate.scale=0", "validate.scale=0 must be a positive number"),
        (
            "validate.param_tolerance=1.5",
            "validate.param_tolerance=1.5 must be a fraction in (0, 1)",
        ),
        (
            "validate.baselines=[gpt2,t5]",
            "validate.baselines: 't5' is not one of gpt2, llama, bert",
        ),
    ],
)
def test_bad_validate_settings_fail_a_search_before_any_work(tiny_cfg, override, message):
    """The schema checks the validate block once, with the rest of the config."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_search(tiny_cfg(task="sentiment", extra=[override]))


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


def test_validation_writes_its_three_files_for_the_top_trials(validated):
    """The real runs: files, order, seeds, conditions and budgets. The figures' arithmetic is
    checked by hand below (``test_the_figures_of_a_hand_computed_table``)."""
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
    # The search ran trial n at seed 0 + n; the validation seeds are new ones.
    assert [a["search_seed"] for a in archs] == [a["trial"] for a in archs]
    assert not set(SEEDS) & {a["search_seed"] for a in archs}

    for a in archs:
        pre, scr, lrg = a["pretrained"], a["not_pretrained"], a["large"]
        assert pre["adaptability"]["n"] == scr["adaptability"]["n"] == 2
        assert all(len(pre["tasks"][t]["values"]) == 2 for t in doc["tasks"])
        assert all(0.0 <= v <= 1.0 for v in pre["adaptability"]["values"])
        # No pretraining stage at all; the large budget doubles every stage.
        assert scr["steps"]["pretrain"] == 0 and pre["steps"]["pretrain"] == 8
        assert lrg["steps"] == {k: 2 * v for k, v in pre["steps"].items()}
        # Both conditions are scored on test (the gain is measured there); x4 is not.
        assert lrg["seeds"] == SEEDS[:1] and "test" in pre and "test" in scr
        assert "test" not in lrg

    w, r = doc["winner"], doc["rank"]
    assert w["trial"] == archs[0]["trial"] and w["runner_up"] == archs[1]["trial"]
    assert r["n"] == 2 and r["kendall_tau"] in (-1.0, 1.0)  # two architectures: a sign

    names = [b["name"] for b in doc["baselines"]]
    assert names == ["gpt2", "llama", "bert"] and doc["baselines_skipped"] == {}
    for b in doc["baselines"]:
        assert b["within_tolerance"] and b["seeds"] == SEEDS
        assert b["test_adaptability"]["n"] == 2 and set(b["winner_minus_test_tasks"]) == {
            "sentiment",
            "ner",
        }

    md = (folder / "validity.md").read_text()
    assert f"**Winner**: trial {w['trial']} ({archs[0]['describe']})" in md
    assert f"Kendall tau {r['kendall_tau']:.2f}" in md
    assert f"winner {doc['gain']['winner']:+.3f}" in md
    assert "Rule: lead > t x pooled_sd x sqrt(2 / seeds), t the 97.5% Student-t quantile" in md
    for title in ("GPT-2-like", "Llama-like", "BERT-like"):
        assert f"**vs {title}**" in md


def test_validation_runs_reproduce_exactly(validated):
    """CPU runs are deterministic: the figures are those of run_trial with the study config."""
    _, result, doc = validated
    run_cfg = OmegaConf.to_container(OmegaConf.load(result.folder / "config.yaml"), resolve=True)
    suite = build_suite(run_cfg["data"], run_cfg["tasks"])
    runner_up = doc["architectures"][1]
    arch = TransformerConfig.from_dict(runner_up["architecture"])
    # Each validation seed adapts from the few-shot subsets of its own data_seed.
    again = run_trial(arch, suite, drawn(run_cfg, SEEDS[1]), seed=SEEDS[1])
    assert again.adaptability == runner_up["pretrained"]["adaptability"]["values"][1]
    scratch = run_trial(arch, suite, drawn(without_pretraining(run_cfg), SEEDS[0]), seed=SEEDS[0])
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


# A tiny table of adaptability scores, one row per architecture (trial 0 is the study's winner:
# search scores 0.9, 0.8, 0.7, 0.6), seeds 1000 and 1100:
#
#   trial | pretrained   | not pretrained | x4 (seed 1000) | test (pretrained)
#   0     | 0.50, 0.54   | 0.44, 0.46     | 0.60           | 0.48, 0.52
#   1     | 0.47, 0.45   | 0.43, 0.43     | 0.70           | 0.45, 0.43
#   2     | 0.40, 0.40   | 0.39, 0.41     | 0.50           | 0.38, 0.38
#   3     | 0.43, 0.47   | 0.40, 0.40     | 0.65           | 0.41, 0.45
#   GPT-2-like baseline: validation 0.50, 0.50; test 0.45, 0.47
#
# Per task, a pretrained run scores sentiment a + 0.1 and NER a - 0.1 (a: its adaptability), the
# others a on both; a test run t + 0.05 and t - 0.05, the baseline's t on both.
HAND = {
    0: {"pretrained": (0.50, 0.54), "scratch": (0.44, 0.46), "large": 0.60},
    1: {"pretrained": (0.47, 0.45), "scratch": (0.43, 0.43), "large": 0.70},
    2: {"pretrained": (0.40, 0.40), "scratch": (0.39, 0.41), "large": 0.50},
    3: {"pretrained": (0.43, 0.47), "scratch": (0.40, 0.40), "large": 0.65},
}
HAND_BASELINE = {"validation": (0.50, 0.50), "test": (0.45, 0.47)}


def test_the_figures_of_a_hand_computed_table(tmp_path, monkeypatch):
    """Every figure of validity.json for the table above, computed by hand (no formula of
    nas/validate.py re-derived here): aggregation over a fake staged trial, no training."""
    import nas.validity.study as validate
    from nas.trial.record import TrialRecord

    # The table's adaptabilities are plain means of the task scores (the fake trial's).
    mean = ["objective.adaptability=mean"]
    run_cfg = plain(compose_config("search", tiny_overrides(tmp_path, TASKS, mean)))
    base_tokens = run_cfg["pretrain"]["tokens"]
    study = optuna.create_study(study_name="hand", direction="maximize")
    for trial, value in zip(HAND, [0.9, 0.8, 0.7, 0.6], strict=True):
        arch = TransformerConfig(
            n_layer=trial + 1, d_model=32, n_head=2, d_ff=64, vocab_size=384, pos="alibi"
        )
        study.add_trial(
            optuna.trial.create_trial(value=value, user_attrs={"architecture": arch.to_dict()})
        )

    drawn_cfgs = []

    def fake(arch, suite, cfg, hooks=(), seed=0, **_):
        drawn_cfgs.append(cfg)
        i = SEEDS.index(seed)
        tokens = cfg["pretrain"]["tokens"]
        if arch.pos == "learned":  # the GPT-2-like baseline
            a, t = HAND_BASELINE["validation"][i], HAND_BASELINE["test"][i]
            spread = test_spread = 0.0
        else:
            row = HAND[arch.n_layer - 1]
            if tokens == 0:
                a, spread = row["scratch"][i], 0.0
            elif tokens == 4 * base_tokens:
                a, spread = row["large"], 0.0
            else:
                a, spread = row["pretrained"][i], 0.1
            t, test_spread = round(a - 0.02, 2), 0.05
        r = TrialRecord(arch=arch, flops_per_token=0.0)
        r.task_scores = {"sentiment": a + spread, "ner": a - spread}
        r.adaptability = a
        r.steps = {"pretrain": tokens // 512}
        if any(h.wants_test(None, a) for h in hooks):
            r.test_metrics = {
                "sentiment": {"score": t + test_spread},
                "ner": {"score": t - test_spread},
            }
        return r

    monkeypatch.setattr(validate, "run_trial", fake)
    settings = {"top_k": 4, "seeds": 2, "seed": 1000, "scale": 4, "scale_seeds": 1,
                "baselines": ["gpt2"], "param_tolerance": 0.15}  # fmt: skip
    doc = validate.validate_study(study, tmp_path / "hand", run_cfg, settings).doc
    approx = functools.partial(pytest.approx, abs=1e-9)
    archs = doc["architectures"]
    assert [a["trial"] for a in archs] == [0, 1, 2, 3]

    # Means of the two seeds: 0.52, 0.46, 0.40, 0.45. A sample sd (n - 1) of two values is
    # |x1 - x2| / sqrt(2): 0.04 / sqrt(2) = 0.028284, 0.014142, 0, 0.028284.
    pre = [a["pretrained"]["adaptability"] for a in archs]
    assert [p["mean"] for p in pre] == approx([0.52, 0.46, 0.40, 0.45])
    assert [p["sd"] for p in pre] == approx([0.0282843, 0.0141421, 0.0, 0.0282843], abs=1e-7)
    # Pooled sd: sqrt((0.0008 + 0.0002 + 0 + 0.0008) / 4) = sqrt(0.00045) = 0.0212132.
    assert doc["noise"]["pooled_sd"] == approx(0.0212132, abs=1e-7)
    # Per task the spread is the same for every seed, so the task sds equal adaptability's.
    assert doc["noise"]["pooled_sd_per_task"]["ner"] == approx(0.0212132, abs=1e-7)

    # Lead 0.52 - 0.46 = 0.06 against t(0.975, df 2 (2 - 1) = 2) = 4.302653 (Student-t table)
    # x 0.0212132 x sqrt(2 / 2) = 0.0912730: within the noise of two seeds.
    w = doc["winner"]
    assert (w["trial"], w["runner_up"], w["best_by_validation"]) == (0, 1, 0)
    assert w["lead"] == approx(0.06)
    assert w["t"] == approx(4.302653, abs=1e-6)
    assert w["threshold"] == approx(0.0912730, abs=1e-6)
    assert w["exceeds_noise"] is False

    # Gains (pretrained mean - untrained mean): 0.52 - 0.45 = 0.07, 0.46 - 0.43 = 0.03,
    # 0.40 - 0.40 = 0, 0.45 - 0.40 = 0.05; median (0.03 + 0.05) / 2 = 0.04. The winner's paired
    # differences 0.06 and 0.08 have sd 0.02 / sqrt(2) = 0.014142. Ratios to the pooled sd:
    # 0.07 / 0.0212132 = 3.29983, 0.04 / 0.0212132 = 1.88562.
    assert [a["gain"]["adaptability"]["mean"] for a in archs] == approx([0.07, 0.03, 0.0, 0.05])
    assert archs[0]["gain"]["adaptability"]["sd"] == approx(0.0141421, abs=1e-7)
    g = doc["gain"]
    assert (g["winner"], g["median_finalist"]) == (approx(0.07), approx(0.04))
    assert g["winner_over_pooled_sd"] == approx(3.29983, abs=1e-5)
    assert g["median_over_pooled_sd"] == approx(1.88562, abs=1e-5)
    # Per task (winner): sentiment 0.62 - 0.45 = +0.17, NER 0.42 - 0.45 = -0.03.
    assert g["per_task_winner"] == {"sentiment": approx(0.17), "ner": approx(-0.03)}
    # On test, both conditions scored: a run's test adaptability is t = its adaptability - 0.02
    # (the task spread +-0.05 cancels). Winner: pretrained (0.48, 0.52), untrained (0.42, 0.44):
    # gain 0.50 - 0.43 = +0.07; trial 1: 0.44 - 0.41 = +0.03; trial 2: 0.38 - 0.38 = 0;
    # trial 3: 0.43 - 0.38 = +0.05; median +0.04. The pretrained test sds are the validation
    # ones (a constant shift), pooled 0.0212132: ratios 3.29983 and 1.88562 again.
    assert (g["test_winner"], g["test_median_finalist"]) == (approx(0.07), approx(0.04))
    assert g["test_pooled_sd"] == approx(0.0212132, abs=1e-7)
    assert g["test_winner_over_pooled_sd"] == approx(3.29983, abs=1e-5)
    # Each validation seed adapts from its own few-shot draw, the same in both conditions.
    assert [c["finetune"]["data_seed"] for c in drawn_cfgs[:4]] == [1000, 1100, 1000, 1100]

    # Rank agreement, search-budget means (0.52, 0.46, 0.40, 0.45) against x4 (0.60, 0.70, 0.50,
    # 0.65). Of the 6 pairs, (0,1) and (0,3) are discordant, the other 4 concordant: Kendall tau
    # (4 - 2) / 6 = 1/3. Ranks (1, 2, 4, 3) and (3, 1, 4, 2): d = -2, 1, 0, 1, sum d^2 = 6,
    # Spearman 1 - 6 x 6 / (4 x 15) = 0.4.
    r = doc["rank"]
    assert (r["n"], r["kendall_tau"], r["spearman"]) == (4, approx(1 / 3), approx(0.4))
    # The search's own scores (0.9, 0.8, 0.7, 0.6; ranks 1, 2, 3, 4) against x4: pairs (0,1),
    # (0,3), (2,3) discordant, 3 concordant: tau 0; d = -2, 1, -1, 2, sum d^2 = 10: Spearman
    # 1 - 6 x 10 / 60 = 0.
    s = r["study_vs_large"]
    assert (s["kendall_tau"], s["spearman"]) == (approx(0.0), approx(0.0))

    # The GPT-2-like baseline. Validation: winner 0.52 (sd 0.028284) against 0.50 (sd 0):
    # +0.02, 95% t half-width 4.302653 x sqrt((0.0008 + 0) / 2) = 4.302653 x 0.02 = 0.0860531.
    # Test: winner 0.50 (0.48, 0.52; sd 0.028284) against 0.46 (0.45, 0.47; sd 0.014142): +0.04,
    # 4.302653 x sqrt((0.0008 + 0.0002) / 2) = 4.302653 x 0.0223607 = 0.0962102. Per task on
    # test: sentiment 0.55 - 0.46 = +0.09, NER 0.45 - 0.46 = -0.01.
    (b,) = doc["baselines"]
    assert b["name"] == "gpt2" and b["seeds"] == SEEDS
    assert b["winner_minus_validation"] == approx(0.02)
    assert b["noise_validation"] == approx(0.0860531, abs=1e-6)
    assert b["winner_minus_test"] == approx(0.04)
    assert b["noise_test"] == approx(0.0962102, abs=1e-6)
    assert b["winner_beats_test"] is True and b["winner_beats_validation"] is True
    assert b["winner_minus_test_tasks"] == {"sentiment": approx(0.09), "ner": approx(-0.01)}

    md = (tmp_path / "hand" / "validity.md").read_text()
    assert "+0.060 against a threshold of 0.091: the lead is **within** seed noise" in md
    assert "pooled seed sd 0.021" in md and "Kendall tau 0.33 [" in md and "Spearman 0.40 [" in md
    assert "winner +0.070 (3.3 x pooled sd), median finalist +0.040 (1.9 x pooled sd)" in md


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


def test_rank_agreement_has_bootstrap_intervals():
    from nas.validity.statistics import rank_agreement

    # Every resample of a perfectly concordant (reversed) ranking is concordant (reversed) too.
    up = rank_agreement([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert up["kendall_tau_ci"] == pytest.approx([1.0, 1.0])
    assert up["spearman_ci"] == pytest.approx([1.0, 1.0])
    down = rank_agreement([1, 2, 3, 4, 5], [50, 40, 30, 20, 10])
    assert down["kendall_tau_ci"] == pytest.approx([-1.0, -1.0])
    # One swapped pair of 8: tau 1 - 2 x 1 / 28 = 0.928571; the interval reaches below it (draws
    # that keep the swap and few others) and up to 1 (draws that miss it).
    mixed = rank_agreement(list(range(8)), [0, 1, 2, 4, 3, 5, 6, 7])
    assert mixed["kendall_tau"] == pytest.approx(1 - 2 / 28)
    low, high = mixed["kendall_tau_ci"]
    assert low < mixed["kendall_tau"] and high == pytest.approx(1.0)
    assert mixed["bootstrap"] > 1900  # only draws of one architecture repeated 8 times drop out


def test_a_skill_study_is_validated_on_test_as_skill_above_the_test_floors(tmp_path, monkeypatch):
    """The validity study combines test scores as the study combines validation scores."""
    import nas.validity.study as validate
    from nas.engine.run import load_suite
    from nas.trial.record import TrialRecord

    cfg = compose_config(
        "search", tiny_overrides(tmp_path, TASKS, ["objective.adaptability=skill"])
    )
    suite = load_suite(cfg)
    arch = TransformerConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=384)

    def fake(arch, suite, cfg, hooks=(), seed=0, **_):
        r = TrialRecord(arch=arch, flops_per_token=0.0)
        r.task_scores, r.adaptability = {"sentiment": 0.7, "ner": 0.5}, 0.0
        r.test_metrics = {"sentiment": {"score": 0.8}, "ner": {"score": 0.4}}
        return r

    monkeypatch.setattr(validate, "run_trial", fake)
    out = validate._Runner(suite, 1)("x", arch, plain(cfg), seed=1000, test=True)
    floor = suite.tasks["sentiment"].floor("test")  # NER's floor is 0 (every word "O")
    assert suite.tasks["ner"].floor("test") == 0.0
    assert out["test_adaptability"] == pytest.approx(((0.8 - floor) / (1 - floor) + 0.4) / 2)
