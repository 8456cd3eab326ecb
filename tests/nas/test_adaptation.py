"""finetune.method through the staged trial, the config checks, the objective and export."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

import adaptnas
from lightning_modules.adaptation import AdaptationSpec, task_trainable
from lightning_modules.config import TransformerConfig
from nas.config.check import check_config
from nas.config.errors import ConfigError
from nas.config.nodes import plain
from nas.engine.run import load_suite, run_search
from nas.exporting import run_export
from nas.trial.resources import prepare_process
from nas.trial.run import data_fields, run_trial
from tests.conftest import compose_config, tiny_overrides

# One task of each kind: sequence, token, span, generation.
TASKS = "[sentiment,ner,qa,translation]"


def _arch(suite) -> TransformerConfig:
    return TransformerConfig(
        family="decoder", n_layer=1, d_model=32, n_head=2, d_ff=64, **data_fields(suite)
    )


@pytest.mark.parametrize(
    "extra",
    [
        ["finetune.method=lora", "finetune.lora.rank=2"],
        ["finetune.method=adapter", "finetune.adapter.size=4"],
        ["finetune.method=probe"],
    ],
    ids=["lora", "adapter", "probe"],
)
def test_every_method_adapts_and_scores_every_task_kind(tiny_cfg, extra):
    cfg = tiny_cfg(task=TASKS, extra=extra)
    check_config(cfg)
    prepare_process()
    suite = load_suite(cfg)
    arch = _arch(suite)
    run = plain(cfg)
    result = run_trial(arch, suite, run, seed=0)
    spec = AdaptationSpec.from_config(run["finetune"])
    assert list(result.task_scores) == ["sentiment", "ner", "qa", "translation"]
    for name, score in result.task_scores.items():
        assert 0.0 <= score <= 1.0, name
    # measured (what received gradients) == analytic, and far below full fine-tuning
    assert result.trainable_params == task_trainable(arch, spec, suite.tasks)
    full = task_trainable(arch, AdaptationSpec(), suite.tasks)
    for name, n in result.trainable_params.items():
        assert 0 < n < full[name], name
    # the backbone each task adapted left the pretrained weights bit-identical
    pretrained = result.pretrained.state_dict()
    for name, module in result.finetuned.items():
        for key, p in module.backbone.named_parameters():
            if p.requires_grad:
                continue
            ref = pretrained[key] if name == "translation" else pretrained[f"backbone.{key}"]
            assert p.detach().cpu().equal(ref), f"{name}: {key} changed"


@pytest.mark.parametrize(
    ("override", "culprit"),
    [
        ("finetune.method=bitfit", "finetune.method='bitfit' must be one of full, lora"),
        ("finetune.lora.rank=0", "finetune.lora.rank=0 must be a positive integer"),
        ("finetune.lora.targets=[q,qkv]", "finetune.lora.targets="),
        ("+finetune.lora.rnak=4", "finetune.lora.rnak=4: unknown key"),
        ("finetune.adapter.size=-3", "finetune.adapter.size=-3 must be a positive integer"),
    ],
)
def test_bad_method_settings_are_one_line_errors(tiny_cfg, override, culprit):
    cfg = tiny_cfg(task="sentiment", extra=[override])
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert culprit in str(err.value)
    assert "\n" not in str(err.value)


GPT2_SPACE = (
    "name: gpt2-shaped\n"
    "fixed: {dropout: 0.0, family: decoder, pos: learned, norm: layernorm,\n"
    "        norm_position: pre, n_layer: 1, d_model: 32, d_ff: 64, mlp: gelu}\n"
    "params:\n  n_head: {type: categorical, choices: [2, 4]}\n"
)


def test_schema_knows_the_methods_and_targets_the_code_has():
    import dataclasses

    from lightning_modules.adaptation import LORA_TARGETS, METHODS
    from nas.config.schema import FinetuneConfig, LoraConfig

    rules = {f.name: f.metadata["rule"] for f in dataclasses.fields(FinetuneConfig)}
    assert rules["method"].choices == tuple(METHODS)
    targets = {f.name: f.metadata["rule"] for f in dataclasses.fields(LoraConfig)}["targets"]
    assert targets.choices == LORA_TARGETS


def test_per_trainable_param_objective_and_lora_export_round_trip(tmp_path):
    """A tiny LoRA search scored per trainable parameter; its winner exported and loaded back."""
    space = tmp_path / "gpt2.yaml"
    space.write_text(GPT2_SPACE)
    extra = [
        "n_trials=1",
        "study_name=lora",
        f"search_space={space}",
        "pruner=none",
        "finetune.method=lora",
        "finetune.lora.rank=2",
        "finetune.lora.targets=[q,v,o,w2]",
        "objective.per_trainable_param=true",
        "export.keep_top_k=1",
    ]
    search = run_search(compose_config("search", tiny_overrides(tmp_path, "[sentiment,qa]", extra)))
    trial = search.study.best_trial
    counts = trial.user_attrs["trainable_params"]
    assert set(counts) == {"sentiment", "qa"}
    mean = sum(counts.values()) / len(counts)
    assert trial.value == pytest.approx(trial.user_attrs["adaptability"] / (mean / 1e6))
    assert trial.user_attrs["adaptability_per_mparam"] == pytest.approx(trial.value)

    (result,) = run_export(compose_config("export", ["study=lora", f"paths.root={tmp_path}"]))
    files = (result.folder / "architecture.yaml").read_text()
    assert "tasks/qa.adapter.safetensors" in files
    assert "tasks/qa.adapter.safetensors" in (result.folder / "README.md").read_text()
    assert "onnx/qa.onnx" in result.parity and "transformers/qa" in result.parity
    assert max(result.parity.values()) < 1e-4  # merged ONNX/transformers == PyTorch
    # a retrain adapts the same way
    reproduce = result.retrain["reproduce"]
    assert "finetune.method=lora" in reproduce and "finetune.lora.targets=[q,v,o,w2]" in reproduce
    merged = adaptnas.load(result.folder)
    split = adaptnas.load(result.folder, weights="adapter")  # base + adapter
    texts = ["the film was great", "a dull and boring plot"]
    assert merged.predict("sentiment", texts) == split.predict("sentiment", texts)
    qa = [("who wrote it ?", "it was written by ana in 1990 .")]
    assert merged.predict("qa", qa) == split.predict("qa", qa)
    # the logits agree to float rounding, not just the argmax
    enc = merged.encode("sentiment", texts)
    with torch.no_grad():
        a = merged.models["sentiment"]
        b = split.models["sentiment"]
        ha = a.head(a.backbone(enc["input_ids"], attention_mask=enc["attention_mask"]))
        hb = b.head(b.backbone(enc["input_ids"], attention_mask=enc["attention_mask"]))
    assert (ha - hb).abs().max().item() < 1e-5
    assert math.isfinite(trial.value)
    assert optuna.trial.TrialState.COMPLETE == trial.state
    with pytest.raises(ValueError, match="weights='both'"):
        adaptnas.load(result.folder, weights="both")


def test_adapter_export_keeps_the_adapters_and_skips_transformers(tmp_path):
    space = tmp_path / "gpt2.yaml"
    space.write_text(GPT2_SPACE)
    extra = [
        "n_trials=1",
        "study_name=adapter",
        f"search_space={space}",
        "pruner=none",
        "finetune.method=adapter",
        "finetune.adapter.size=4",
        "export.keep_top_k=1",
    ]
    run_search(compose_config("search", tiny_overrides(tmp_path, "[sentiment,translation]", extra)))
    (result,) = run_export(compose_config("export", ["study=adapter", f"paths.root={tmp_path}"]))
    # ONNX traces the adapters like any other module; no transformers class has them
    assert result.parity["onnx/sentiment.onnx"] < 1e-4
    assert result.parity["onnx/translation.onnx"] < 1e-4
    for name in ("sentiment", "translation"):
        assert "method=adapter" in result.skipped[f"transformers/{name}"]
    assert "transformers/lm" in result.parity  # the pretrained model itself still maps
    merged = adaptnas.load(result.folder)
    split = adaptnas.load(result.folder, weights="adapter")
    texts = ["the film was great", "a dull and boring plot"]
    assert merged.predict("sentiment", texts) == split.predict("sentiment", texts)
    assert merged.predict("translation", texts) == split.predict("translation", texts)


def test_weight_keeping_ranks_by_the_per_parameter_value():
    from nas.study.kept_weights import kept_trials

    study = optuna.create_study(direction="maximize")
    done = optuna.trial.create_trial(
        value=2.0, user_attrs={"adaptability": 0.4, "adaptability_per_mparam": 2.0}
    )
    study.add_trial(done)
    running = study.ask()  # recorded, its hooks running: no value yet
    running.set_user_attr("adaptability", 0.3)
    running.set_user_attr("adaptability_per_mparam", 3.0)
    assert kept_trials(study, 1, multi_objective=False) == {running.number}
