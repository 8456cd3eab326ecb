"""The trial's speed switches: fused AdamW, pinned loaders, ``trainer.compile``."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.model import build_model
from lightning_modules.pretrain import PretrainModule
from lightning_modules.tasks.base import tensor_loader
from nas.config.nodes import plain
from nas.engine.run import load_suite
from nas.trial.resources import prepare_process
from nas.trial.run import data_fields
from nas.trial.stages import compiled_backbone, device_loader, make_trainer, pretrain
from tests.nas.run_config import trainer_config

TINY_ARCH = dict(n_layer=1, d_model=16, n_head=2, d_ff=32)


@pytest.mark.parametrize(("precision", "fused"), [("32-true", True), ("bf16-mixed", False)])
def test_adamw_is_fused_in_full_precision_and_clipping_works_in_both(precision, fused):
    # Lightning refuses to clip a fused optimizer's gradients under mixed precision: bf16-mixed
    # must step with the foreach implementation, and both must train with clipping on.
    torch.manual_seed(0)
    model = build_model(TransformerConfig(vocab_size=64, max_seq_len=16, **TINY_ARCH))
    module = PretrainModule(model, {"mask": 4, "n_special": 7}, total_steps=3)
    trainer = make_trainer(trainer_config(accelerator="cpu", precision=precision), 3, val_every=3)
    blocks = torch.randint(7, 64, (12, 17), generator=torch.Generator().manual_seed(0))
    trainer.fit(module, train_dataloaders=tensor_loader(blocks, 4, True))
    opt = trainer.optimizers[0]
    assert bool(opt.defaults["fused"]) is fused
    assert bool(opt.defaults["foreach"]) is not fused
    assert trainer.gradient_clip_val == 1.0
    assert len(module.train_losses) == 3 and all(math.isfinite(v) for v in module.train_losses)


def test_without_a_gpu_loaders_stay_unpinned_and_compile_off_changes_nothing():
    loader = tensor_loader(torch.zeros(8, 5, dtype=torch.long), 4, True)
    for accelerator in ("auto", "cpu"):
        assert device_loader(loader, trainer_config(accelerator=accelerator)).pin_memory is (
            torch.cuda.is_available() and accelerator == "auto"
        )
    model = build_model(TransformerConfig(vocab_size=64, max_seq_len=16, **TINY_ARCH))
    with compiled_backbone(model, trainer_config(compile=False)) as same:
        assert same is model and "forward" not in vars(model.backbone)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["decoder", "encoder"])
def test_compiled_pretraining_matches_eager_and_leaves_an_eager_model(tiny_cfg, family):
    # aot_eager traces forward and backward as inductor would, without generating code (seconds
    # instead of inductor's minute or two on 2 cores); the backend itself is torch's business.
    # Encoders reach the backbone through model.hidden, decoders through model(x): both must
    # run the compiled forward.
    cfg = plain(tiny_cfg(task="qa"))
    prepare_process()
    suite = load_suite(tiny_cfg(task="qa"))
    arch = TransformerConfig(family=family, **TINY_ARCH, **data_fields(suite))
    eager, eager_loss, _ = pretrain(arch, suite, cfg, seed=1)
    cfg["trainer"]["compile"] = "aot_eager"
    torch._dynamo.reset()
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled, compiled_loss, _ = pretrain(arch, suite, cfg, seed=1)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # it did compile
    compiled, compiled_loss, _ = pretrain(arch, suite, cfg, seed=1)
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-4)
    # The compiled forward was an instance attribute for the length of the fit only.
    assert "forward" not in vars(compiled.backbone)
    for a, b in zip(eager.parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
