"""``trainer.precision=auto``: bf16 autocast where the hardware and the model size make it pay."""

from __future__ import annotations

import pytest
import torch

import nas.trial.stages
from lightning_modules.config import TransformerConfig
from nas.trial.stages import CPU_BF16_MIN_D_MODEL, cpu_bf16_units, make_trainer, precision_for
from tests.nas.run_config import trainer_config


def arch(d_model: int) -> TransformerConfig:
    return TransformerConfig(n_layer=2, d_model=d_model, n_head=4, d_ff=4 * d_model)


@pytest.fixture
def cpu(monkeypatch):
    """A machine without a GPU whose CPU has (``cpu(True)``) or lacks bf16 matrix units."""

    def make(units: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(nas.trial.stages, "cpu_bf16_units", lambda: units)

    return make


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse2 avx512f avx512_bf16 amx_tile", True),  # AMD EPYC Genoa: AVX-512 BF16
        ("fpu avx512f amx_bf16 amx_tile amx_int8", True),  # Intel Sapphire Rapids: AMX
        ("fpu sse2 avx2 avx512f avx512_vnni", False),  # AVX-512 without bf16
    ],
)
def test_the_probe_reads_the_bf16_flags_of_cpuinfo(tmp_path, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\n")
    assert cpu_bf16_units(str(info)) is expected
    assert cpu_bf16_units(str(tmp_path / "missing")) is False  # not Linux: stay fp32


def test_wide_models_get_bf16_on_a_cpu_with_bf16_units(cpu):
    cpu(True)
    assert precision_for("auto", arch(CPU_BF16_MIN_D_MODEL)) == "bf16-mixed"
    assert precision_for("auto", arch(512)) == "bf16-mixed"
    assert precision_for("auto", arch(CPU_BF16_MIN_D_MODEL // 2)) == "32-true"  # too narrow
    assert precision_for("auto") == "32-true"  # size unknown: the safe choice


def test_cpus_without_bf16_units_stay_fp32(cpu):
    cpu(False)
    assert precision_for("auto", arch(512)) == "32-true"


def test_a_gpu_always_gets_bf16_and_explicit_settings_are_kept(monkeypatch, cpu):
    cpu(False)
    assert precision_for("bf16-mixed", arch(64)) == "bf16-mixed"
    assert precision_for("32-true", arch(512)) == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert precision_for("auto", arch(64)) == "bf16-mixed"
    assert precision_for("auto") == "bf16-mixed"
    assert precision_for("16-mixed", arch(512)) == "16-mixed"


def test_make_trainer_weighs_the_stage_model(cpu):
    cpu(True)
    t = trainer_config(accelerator="cpu", precision="auto")
    assert str(make_trainer(t, 1, 1, arch=arch(512)).precision) == "bf16-mixed"
    assert str(make_trainer(t, 1, 1, arch=arch(64)).precision) == "32-true"
    assert str(make_trainer(t, 1, 1).precision) == "32-true"
