"""Smoke test of benchmarks/adaptation_methods.py (the figures of docs/tasks.md)."""

from __future__ import annotations

import json

import pytest

from benchmarks import adaptation_methods
from lightning_modules.adaptation import METHODS, AdaptationSpec, task_trainable
from lightning_modules.config import TransformerConfig


def test_every_method_is_measured_with_its_trainable_parameters(tmp_path):
    out = tmp_path / "methods.json"
    doc = adaptation_methods.main(
        ["--threads", "1", "--out", str(out), f"paths.root={tmp_path}", "finetune.steps=2"]
    )
    assert json.loads(out.read_text())["methods"] == json.loads(json.dumps(doc["methods"]))
    rows = {r["method"]: r for r in doc["methods"]}
    assert list(rows) == list(METHODS)
    for name in ("sentiment", "ner", "qa", "translation"):
        counts = {m: rows[m]["tasks"][name]["trainable_params"] for m in rows}
        assert counts["full"] > counts["lora"] > 0 and counts["full"] > counts["adapter"] > 0
        assert counts["probe"] < counts["lora"] or name == "translation"  # its probe: LM head
        assert all(0.0 <= rows[m]["tasks"][name]["score"] <= 1.0 for m in rows)


def test_every_family_and_method_is_measured_from_one_pretraining(tmp_path):
    out = tmp_path / "families.json"
    overrides = [f"paths.root={tmp_path}", "finetune.steps=2"]
    argv = ["--threads", "1", "--out", str(out), "--families", "--tiny", *overrides]
    doc = adaptation_methods.main(argv)
    assert json.loads(out.read_text())["families"] == json.loads(json.dumps(doc["families"]))
    cfg, suite = adaptation_methods.load([*adaptation_methods.TINY, *overrides])
    fams = {f["family"]: f for f in doc["families"]}
    assert list(fams) == ["decoder", "prefix_lm", "encoder_decoder", "encoder"]
    # An encoder cannot generate: it adapts the non-generation tasks, which every family shares.
    assert fams["encoder"]["tasks"] == doc["shared_tasks"] == ["sentiment", "ner", "qa"]
    assert fams["decoder"]["tasks"] == ["sentiment", "ner", "qa", "translation"]
    sizes = [f["n_params"] for f in fams.values()]
    assert max(sizes) / min(sizes) < 1.05  # comparable sizes: the encoder_decoder's d_ff gives back
    assert fams["encoder_decoder"]["architecture"]["n_dec_layer"] == 1
    for family, fam in fams.items():
        assert fam["pretrain_seconds"] > 0 and fam["pretrain_steps"] > 0
        arch = TransformerConfig.from_dict(fam["architecture"])
        tasks = {n: suite.tasks[n] for n in fam["tasks"]}
        rows = {r["method"]: r for r in fam["methods"]}
        assert list(rows) == list(METHODS)
        for method, row in rows.items():
            assert list(row["tasks"]) == fam["tasks"]
            spec = AdaptationSpec.from_config({**cfg["finetune"], "method": method})
            expected = task_trainable(arch, spec, tasks)
            assert {n: t["trainable_params"] for n, t in row["tasks"].items()} == expected
            assert all(0.0 <= t["score"] <= 1.0 and t["seconds"] > 0 for t in row["tasks"].values())
            scores = [row["tasks"][n]["score"] for n in fam["tasks"]]
            assert row["adaptability"] == pytest.approx(sum(scores) / len(scores))
            shared = [row["tasks"][n]["score"] for n in doc["shared_tasks"]]
            assert row["adaptability_shared"] == pytest.approx(sum(shared) / len(shared))
        for name in fam["tasks"]:
            n = {m: rows[m]["tasks"][name]["trainable_params"] for m in rows}
            assert n["full"] > n["lora"] > 0 and n["full"] > n["adapter"] > 0, (family, name)
            if name != "translation":  # a generation probe trains the (tied) LM head
                assert n["probe"] < n["lora"] and n["probe"] < n["adapter"], (family, name)


def test_an_unknown_family_fails_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        adaptation_methods.main(["--families", "decoder,rnn", "--out", str(tmp_path / "x.json")])
    assert "rnn" in capsys.readouterr().err
