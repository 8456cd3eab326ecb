"""On a real CUDA device: a tiny search end to end, ``adaptnas.load`` + ``predict`` and decoding,
each prediction compared with the CPU run's.

Skipped without CUDA (``make gpu-check`` runs them, with ``benchmarks/gpu_path.py``); on a CPU
machine ``tests/lightning_modules/test_device.py`` checks the same device-correctness with a
stand-in device.
"""

from __future__ import annotations

import copy

import optuna
import pytest
import torch

import adaptnas
from lightning_modules.generate import generate_ids
from nas.engine.run import run_search
from tests.conftest import compose_config, tiny_overrides
from tests.lightning_modules.test_device import INPUTS, build_tasks, write_export

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_tiny_search_runs_every_stage_on_cuda(tmp_path):
    extra = ["n_trials=3", "study_name=gpu", "pruner=none", "trainer.accelerator=gpu"]
    result = run_search(compose_config("search", tiny_overrides(tmp_path, "suite_all", extra)))
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


@pytest.fixture
def full_fp32():
    """fp32 matmuls at full precision on the GPU while the test runs.

    ``run_search`` (the test above, any search in this process) sets
    ``torch.set_float32_matmul_precision("high")``, which lets CUDA matmuls run in TF32 (10-bit
    mantissa): enough to move a near-tied argmax. At ``highest`` the CUDA and CPU runs differ by
    fp32 rounding only, so their predictions must agree as on the stand-in device.
    """
    before, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.set_float32_matmul_precision(before)
    torch.backends.cudnn.allow_tf32 = cudnn


def test_load_and_predict_on_cuda(tmp_path, full_fp32):
    """``adaptnas.load(..., "cuda")`` predicts what the CPU load predicts, for all four task kinds
    (``tests/lightning_modules/test_device.py::test_load_and_predict_on_the_device`` checks the
    same on the stand-in device)."""
    tasks, tokenizer = build_tasks()
    write_export(tmp_path / "export", tasks, tokenizer)
    cpu = adaptnas.load(tmp_path / "export")
    gpu = adaptnas.load(tmp_path / "export", device="cuda")
    assert all(p.is_cuda for p in gpu.lm.parameters())
    assert all(p.is_cuda for m in gpu.models.values() for p in m.parameters())
    # The pretrained model's logits agree to fp32 rounding (what the predictions rest on).
    ids = torch.randint(7, 384, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        want_logits = cpu.lm(ids, attention_mask=mask)
        got_logits = gpu.lm(ids.cuda(), attention_mask=mask.cuda()).cpu()
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=1e-5)
    # Every task's predictions equal the CPU run's: labels, tag sequences, answer spans, text.
    want = {name: cpu.predict(name, inputs) for name, inputs in INPUTS.items()}
    got = {name: adaptnas.predict(gpu, name, inputs) for name, inputs in INPUTS.items()}
    assert set(got) == {"sentiment", "ner", "qa", "translation"}
    for name in INPUTS:
        assert got[name] == want[name], name


def test_greedy_and_beam_decoding_on_cuda_match_the_cpu(tmp_path, full_fp32):
    """The export's untrained model stops at once (translation predicts ''), so decoding gets a
    copy with wider random weights, whose rows run to different lengths before an EOS."""
    tasks, tokenizer = build_tasks()
    write_export(tmp_path / "export", tasks, tokenizer)
    lm = copy.deepcopy(adaptnas.load(tmp_path / "export").lm)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lm.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
    gen = torch.Generator().manual_seed(2)
    prompts = [torch.randint(7, 384, (n,), generator=gen).tolist() for n in (3, 7, 5, 9)]
    eos = generate_ids(lm, prompts, 8, -1)[2][2]  # a token the third prompt emits third
    for num_beams in (1, 3):
        for use_cache in (True, False):
            want = generate_ids(lm, prompts, 8, eos, num_beams=num_beams, use_cache=use_cache)
            got = generate_ids(
                copy.deepcopy(lm).cuda(), prompts, 8, eos, num_beams=num_beams, use_cache=use_cache
            )
            assert got == want, (num_beams, use_cache)
            assert any(len(g) < 8 for g in want) and any(len(g) == 8 for g in want)
