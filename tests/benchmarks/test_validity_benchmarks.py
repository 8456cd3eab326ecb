"""The benchmarks behind the validity figures: task headroom, the default searches, importances."""

from __future__ import annotations

import json

import optuna
import pytest

from benchmarks import default_searches, importance, task_headroom


def _verdict(reference: bool, low: float, high: float) -> dict:
    return {"winner_is_reference": reference, "diff_low": low, "diff_high": high, "text": ""}


def test_the_default_searches_count_wins_ties_and_leads_as_the_issue_states_them():
    per_seed = [
        {"seed": 0, "verdict": _verdict(True, -0.07, 0.04)},  # a reference won: at least itself
        {"seed": 1, "verdict": _verdict(False, -0.04, 0.05)},  # searched, a tie: counts
        {"seed": 2, "verdict": _verdict(False, 0.01, 0.05)},  # searched, ahead: both counts
        {"seed": 3, "verdict": _verdict(False, -0.09, -0.01)},  # searched, behind: neither
        {"seed": 4, "error": "no study"},
    ]
    assert default_searches.summarise(per_seed) == {
        "seeds": 5,
        "with_verdict": 4,
        "winner_at_least_best_reference": 3,
        "searched_winner_ahead_interval_above_0": 1,
        "searched_winners": 3,
    }
    assert default_searches.seeds_of("0-4") == [0, 1, 2, 3, 4]
    assert default_searches.seeds_of("1,3") == [1, 3]


def test_importance_names_the_knob_that_decides_the_score(tmp_path):
    db = tmp_path / "study.db"
    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{db}", direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip

    def objective(trial):
        width = trial.suggest_categorical("d_model", [64, 96, 128])
        trial.suggest_float("dropout", 0.0, 0.2)
        trial.suggest_categorical("norm", ["layernorm", "rmsnorm"])
        return width / 128  # only the width matters

    study.optimize(objective, n_trials=30)
    repeat = optuna.trial.create_trial(
        params=study.trials[0].params,
        distributions=study.trials[0].distributions,
        value=-5.0,
        user_attrs={"finalist_of": 0},
    )
    study.add_trial(repeat)  # a finalist repeat: left out
    doc = importance.main([str(db), "--json", str(tmp_path / "imp.json")])
    assert doc["trials"] == 30
    for name in ("fanova", "ped_anova"):
        assert max(doc["importances"][name], key=doc["importances"][name].get) == "d_model"
    assert doc["by_value"]["d_model"]["128"]["mean"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "imp.json").read_text())["trials"] == 30


def test_headroom_collects_picked_rows_and_refuses_an_unmeasured_pair(tmp_path):
    run = {
        "rows": [
            {"design": d, "init": "pretrained", "task": "sentiment", "recipe": "default",
             "scores": [0.5, 0.6], "mean": m, "sd": 0.05, "floor": 0.5, "lead_in_sd": lead}
            for d, m, lead in (("gpt2", 0.55, 1.0), ("llama", 0.65, 3.0))
        ]
    }  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    doc = task_headroom.collect([path], ["sentiment:default"])
    (row,) = doc["rows"]
    assert row["row"] == "sentiment (default)" and row["floor"] == 0.5
    assert row["llama"]["lead_in_sd"] == 3.0 and row["gpt2"]["mean"] == 0.55
    with pytest.raises(SystemExit, match="no run measured qa at default"):
        task_headroom.collect([path], ["qa:default"])
    assert task_headroom.parse_recipe("grid=1e-3/3e-3,steps=x5") == {
        "grid": [1e-3, 3e-3],
        "steps": "x5",
    }


def test_headroom_gains_pair_pretrained_and_untrained_test_scores_by_seed(tmp_path):
    def row(init: str, task: str, test: list[float]) -> dict:
        return {"design": "t5", "init": init, "task": task, "recipe": "default",
                "test_scores": test}  # fmt: skip

    rows = [
        row("pretrained", "ner", [0.8, 0.9, 0.7]),
        row("scratch", "ner", [0.6, 0.6, 0.6]),
        row("pretrained", "qa", [0.3, 0.3, 0.3]),
        row("scratch", "qa", [0.3, 0.2, 0.4]),
    ]
    run = {"rows": rows}
    path = tmp_path / "gain.json"
    path.write_text(json.dumps(run))
    (got,) = task_headroom.gains([path])["rows"]
    assert got["ner"]["mean"] == pytest.approx(0.2) and got["ner"]["n"] == 3
    # adaptability: per seed the mean over tasks (0.1, 0.2, 0.0), then the interval
    assert got["adaptability"]["mean"] == pytest.approx(0.1)
    assert got["adaptability"]["low"] < 0 < got["adaptability"]["high"]
    assert got["qa"]["mean"] == pytest.approx(0.0)
    run["rows"] = run["rows"][:1]
    path.write_text(json.dumps(run))
    with pytest.raises(SystemExit, match="no untrained runs"):
        task_headroom.gains([path])


@pytest.mark.slow
def test_headroom_quick_runs_every_reference_on_every_task(tmp_path):
    out = tmp_path / "h.json"
    doc = task_headroom.main(["--quick", "--seeds", "2", "--tasks", "sentiment,ner",
                              "--recipes", "default;lr=3e-3", "--json", str(out),
                              "--override", "task=suite_all"])  # fmt: skip
    keys = {(r["design"], r["task"], r["recipe"]) for r in doc["rows"]}
    assert keys == {(d, t, r) for d in doc["references"] for t in ("sentiment", "ner")
                    for r in ("default", "lr=3e-3")}  # fmt: skip
    assert all(len(r["scores"]) == 2 for r in doc["rows"])
    assert json.loads(out.read_text())["schema"] == 1


def test_headroom_names_a_task_outside_the_suite_in_one_line(capsys):
    with pytest.raises(SystemExit):
        task_headroom.main(["--quick", "--tasks", "sentiment"])
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(
            "--tasks sentiment: not in the suite (qa, ner, translation); "
            "the five built-in tasks are --override task=suite_all"
        )
    )


def test_the_pooling_probe_reads_the_token_before_sep_for_decoders_only():
    import torch

    from benchmarks.sentiment_pooling_probe import pool_before_sep
    from lightning_modules.config import TransformerConfig
    from lightning_modules.heads import SequenceClassificationHead

    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])  # [SEP] at 2 and at 3
    decoder = SequenceClassificationHead(TransformerConfig(family="decoder"), 2)
    assert torch.equal(pool_before_sep(decoder, hidden, mask), hidden[[0, 1], [1, 2]])
    assert torch.equal(decoder.pool(hidden, mask), hidden[[0, 1], [2, 3]])  # the head: [SEP]
    encoder = SequenceClassificationHead(TransformerConfig(family="encoder"), 2)
    assert torch.equal(pool_before_sep(encoder, hidden, mask), encoder.pool(hidden, mask))


def test_the_encdec_probe_reads_decoder_states_for_encoder_decoders_only():
    import torch

    from benchmarks.encdec_probe import START, DecoderStates, heads_read_decoder, mask_share
    from lightning_modules import objectives
    from lightning_modules.config import TransformerConfig
    from lightning_modules.model import build_model
    from lightning_modules.tasks.token import TokenTask

    def model(family, **extra):
        cfg = TransformerConfig(family=family, n_layer=1, d_model=16, n_head=2, d_ff=32,
                                vocab_size=32, max_seq_len=8, **extra)  # fmt: skip
        return build_model(cfg).backbone.eval()

    ids, mask = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 1, 0]])
    encdec, decoder = model("encoder_decoder", n_dec_layer=1), model("decoder")
    shifted = torch.tensor([[START, 5, 6, 7]])
    want = encdec.decode(shifted, encdec(ids, attention_mask=mask), mask)
    assert torch.equal(DecoderStates(encdec)(ids, attention_mask=mask), want)

    seen = []
    original = TokenTask._logits

    def capture(self, backbone, head, batch):
        seen.append(type(backbone).__name__)

    TokenTask._logits = capture
    try:
        with heads_read_decoder():
            for backbone in (encdec, decoder):
                TokenTask._logits(None, backbone, None, {})
        assert TokenTask._logits is capture  # restored on leaving
    finally:
        TokenTask._logits = original
    assert seen == ["DecoderStates", "Transformer"]

    before = objectives.denoising_loss
    with mask_share(0.3):
        assert objectives.denoising_loss.keywords == {"mask_prob": 0.3}
    assert objectives.denoising_loss is before
