"""On a real CUDA device: a tiny search end to end, and ``adaptnas.load`` + ``predict``.

Skipped without CUDA (``make gpu-check`` runs them, with ``benchmarks/gpu_path.py``); on a CPU
machine ``tests/lightning_modules/test_device.py`` checks the same device-correctness with a
stand-in device.
"""

from __future__ import annotations

import optuna
import pytest
import torch

import adaptnas
from nas.engine.run import run_search
from tests.conftest import compose_config, tiny_overrides
from tests.lightning_modules.test_device import INPUTS, build_tasks, write_export

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_tiny_search_runs_every_stage_on_cuda(tmp_path):
    extra = ["n_trials=3", "study_name=gpu", "pruner=none", "trainer.accelerator=gpu"]
    result = run_search(compose_config("search", tiny_overrides(tmp_path, "suite", extra)))
    trials = result.study.trials
    assert len(trials) == 3
    # A device bug in a task fails its trial with a TaskError, which the search survives:
    # every trial must complete, with a score for each of the five tasks.
    failed = {t.number: t.user_attrs.get("fail_reason") for t in trials if t.state.name == "FAIL"}
    assert not failed, failed
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete  # the others pruned (an invalid sampled architecture), none failed
    for t in complete:
        assert len(t.user_attrs["task_scores"]) == 5


def test_load_and_predict_on_cuda(tmp_path):
    tasks, tokenizer = build_tasks()
    write_export(tmp_path / "export", tasks, tokenizer)
    cpu = adaptnas.load(tmp_path / "export")
    gpu = adaptnas.load(tmp_path / "export", device="cuda")
    assert all(p.is_cuda for p in gpu.lm.parameters())
    assert all(p.is_cuda for m in gpu.models.values() for p in m.parameters())
    for name, inputs in INPUTS.items():
        want, got = cpu.predict(name, inputs), adaptnas.predict(gpu, name, inputs)
        assert len(got) == len(want)
        assert all(type(g) is type(w) for g, w in zip(got, want, strict=True))
        if name == "sentiment":  # labels: the same argmax unless two logits tie to rounding
            assert sum(g == w for g, w in zip(got, want, strict=True)) >= len(want) - 1
