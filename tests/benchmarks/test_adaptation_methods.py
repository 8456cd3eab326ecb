"""Smoke test of benchmarks/adaptation_methods.py (the figures of docs/tasks.md)."""

from __future__ import annotations

import json

from benchmarks import adaptation_methods


def test_every_method_is_measured_with_its_trainable_parameters(tmp_path):
    out = tmp_path / "methods.json"
    doc = adaptation_methods.main(
        ["--threads", "1", "--out", str(out), f"paths.root={tmp_path}", "finetune.steps=2"]
    )
    assert json.loads(out.read_text())["methods"] == json.loads(json.dumps(doc["methods"]))
    rows = {r["method"]: r for r in doc["methods"]}
    assert list(rows) == ["full", "lora", "adapter", "probe"]
    for name in ("sentiment", "ner", "qa", "translation"):
        counts = {m: rows[m]["tasks"][name]["trainable_params"] for m in rows}
        assert counts["full"] > counts["lora"] > 0 and counts["full"] > counts["adapter"] > 0
        assert counts["probe"] < counts["lora"] or name == "translation"  # its probe: LM head
        assert all(0.0 <= rows[m]["tasks"][name]["score"] <= 1.0 for m in rows)
