"""The staged trial: adaptability maths and a real tiny candidate end to end."""

from __future__ import annotations

import math

import pytest

from lightning_modules.config import TransformerConfig
from nas.engine import load_suite, prepare
from nas.study import plain
from nas.trial import adaptability, data_fields, run_candidate


def test_adaptability_methods_by_hand():
    scores = {"a": 0.2, "b": 0.8}
    curves = {"a": [0.0, 0.2], "b": [0.4, 0.8]}
    assert adaptability(scores, curves, "mean") == pytest.approx(0.5)
    assert adaptability(scores, curves, "worst") == pytest.approx(0.2)
    # auc: mean over tasks of the mean of each curve = (0.1 + 0.6) / 2
    assert adaptability(scores, curves, "auc") == pytest.approx(0.35)
    with pytest.raises(ValueError, match="median"):
        adaptability(scores, curves, "median")


def test_candidate_runs_every_stage_and_is_reproducible(tiny_cfg):
    extra = ["finetune.evals=2", "objective.adaptability=auc"]
    cfg = tiny_cfg(task="[sentiment,qa]", extra=extra)
    prepare()
    suite = load_suite(cfg)
    arch = TransformerConfig(
        family="prefix_lm", n_layer=1, d_model=32, n_head=2, d_ff=64, **data_fields(suite)
    )
    reports = []
    first = run_candidate(
        arch,
        suite,
        plain(cfg),
        seed=3,
        report=lambda *a: reports.append(a),
        want_test=lambda s: True,
    )
    second = run_candidate(arch, suite, plain(cfg), seed=3)
    assert list(first.task_scores) == ["sentiment", "qa"]  # the order of task=[...]
    assert [r[0] for r in reports] == [1, 2]
    assert reports[0][2] == {"sentiment": first.task_scores["sentiment"]}
    for name in ("sentiment", "qa"):
        assert len(first.curves[name]) == 2
        assert 0.0 <= first.task_scores[name] <= 1.0
        assert set(first.test_metrics[name]) >= {"score"}
    assert first.steps["pretrain"] == 4096 // (16 * 32)
    assert math.isfinite(first.pretrain_val_loss)
    assert first.adaptability == pytest.approx(
        sum(sum(c) / len(c) for c in first.curves.values()) / 2
    )
    assert second.task_scores == first.task_scores  # same seed, same CPU result
    assert not second.test_metrics
