"""A model adapted on ``task=code`` exports, loads and predicts like a generation model.

The code kind generates with the language model's own head, as ``generation`` does: its ONNX graph
returns LM logits, its ``transformers`` model is the causal LM, and ``adaptnas.load(...).predict``
returns the generated program (never run here).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import adaptnas
from lightning_modules.data.code import text_to_code
from lightning_modules.data.tokenizer import EOS
from lightning_modules.export import TOLERANCE, load_transformers
from lightning_modules.suite import build_suite
from lightning_modules.tasks.base import make_loader
from nas.engine.run import run_search
from nas.exporting import run_export
from tests.conftest import compose_config, tiny_overrides

# A decoder that maps onto transformers' GPT-2, so that every format applies.
SPACE = """\
name: gpt2-code
description: one GPT-2-shaped decoder
fixed: {dropout: 0.0, family: decoder, pos: learned, norm: layernorm, norm_position: pre,
        n_layer: 1, d_model: 32, d_ff: 64, n_kv_head: 1, mlp: gelu}
params:
  n_head: {type: categorical, choices: [2]}
  tie_embeddings: {type: categorical, choices: [true, false]}
"""
CODE = [
    "tasks.code.source.n_train=96",
    "tasks.code.source.n_val=8",
    "tasks.code.source.n_test=8",
    "tasks.code.max_len=96",
    "tasks.code.max_new_tokens=12",
    "tasks.code.steps=8",
    "tasks.code.examples=96",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-code")
    space = root / "gpt2.yaml"
    space.write_text(SPACE)
    extra = ["n_trials=1", "study_name=code", f"search_space={space}", "pruner=none", *CODE]
    search = run_search(compose_config("search", tiny_overrides(root, "code", extra)))
    (result,) = run_export(compose_config("export", ["study=code", f"paths.root={root}"]))
    model = adaptnas.load(result.folder)
    suite = build_suite(model.info["search"]["data"], model.info["search"]["tasks"], root / "cache")
    return SimpleNamespace(
        root=root, trial=search.study.best_trial, result=result, model=model, suite=suite
    )


@pytest.mark.slow
def test_a_code_task_exports_every_format_like_a_generation_task(exported):
    result, out = exported.result, exported.result.folder
    assert result.parity["onnx/code.onnx"] < TOLERANCE
    assert result.parity["transformers/code"] < TOLERANCE
    assert "transformers/code" not in result.skipped
    assert exported.model.info["files"]["transformers"]["code"]["class"] == "GPT2LMHeadModel"
    assert exported.model.tasks["code"]["kind"] == "code"
    card = (out / "README.md").read_text()
    assert 'model.predict("code", ' in card and "code-generation" in card


@pytest.mark.slow
def test_a_loaded_code_model_scores_and_predicts_what_the_search_measured(exported):
    model, task = exported.model, exported.suite.tasks["code"]
    m = model.models["code"]
    preds = []
    for batch in make_loader(task.encoded("validation"), 64, shuffle=False):
        preds += task.predict(m.backbone, m.head, batch)
    score = task.score(preds, "validation")["score"]
    assert score == pytest.approx(exported.trial.user_attrs["task_scores"]["code"], abs=1e-12)
    # predict: the program the task decodes (markers back to line breaks and indents)
    sources = [e.source for e in task.splits.validation[:3]]
    programs = model.predict("code", sources)
    assert programs == [text_to_code(text) for _, text in sorted(preds)[:3]]
    assert model.predict("code", sources[0]) == programs[0]  # one input, one output
    # the transformers causal LM decodes the same program greedily
    enc = model.encode("code", [sources[0]])
    prompt = enc["input_ids"][0, : int(enc["attention_mask"][0].sum())].tolist()
    eos = model.tokenizer.token_to_id(EOS)
    hf = load_transformers(exported.result.folder / "transformers/code", "gpt2", "code")
    gen = hf.generate(
        torch.tensor([prompt]), max_new_tokens=task.max_new_tokens, do_sample=False,
        eos_token_id=eos, pad_token_id=0,
    )[0, len(prompt) :].tolist()  # fmt: skip
    gen = gen[: gen.index(eos)] if eos in gen else gen
    assert text_to_code(model.tokenizer.decode(gen, skip_special_tokens=True)) == programs[0]
