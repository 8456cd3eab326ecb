"""Export of an ``encoder_decoder`` study, end to end: search -> export -> load -> every format.

The unit tests of the two ONNX graphs and of the T5 copy (tests/lightning_modules/) use freshly
initialised models; here the model is a searched, pretrained and fine-tuned one, exported by
``nas/export.py``'s own pipeline, and the three runtimes must translate the validation sources
to the same text, the text the search scored.
"""

from __future__ import annotations

import pytest
import torch

import adaptnas
from lightning_modules.data.tokenizer import EOS
from lightning_modules.export import TOLERANCE, load_transformers, onnx_greedy
from lightning_modules.export.hf import hf_greedy
from lightning_modules.suite import build_suite
from lightning_modules.tasks.base import make_loader
from nas.engine.run import run_search
from nas.exporting import run_export
from tests.conftest import compose_config, tiny_overrides

pytestmark = pytest.mark.slow

# T5-shaped: RMSNorm pre-norm, no absolute positions (T5's relative biases), one MLP width, tied.
SPACE = """\
name: t5-shaped
description: encoder-decoders that map onto transformers' T5
fixed: {dropout: 0.0, family: encoder_decoder, pos: none, norm: rmsnorm, norm_position: pre,
        n_layer: 1, n_dec_layer: 1, d_model: 32, d_ff: 64, tie_embeddings: true}
params:
  n_head: {type: categorical, choices: [2, 4]}
  mlp: {type: categorical, choices: [relu, swiglu]}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_ed")
    space = root / "t5.yaml"
    space.write_text(SPACE)
    extra = ["n_trials=2", "study_name=ed", f"search_space={space}", "pruner=none",
             "tasks.sentiment.steps=8", "export.keep_top_k=1"]  # fmt: skip
    search = run_search(
        compose_config("search", tiny_overrides(root, "[sentiment,translation]", extra))
    )
    (result,) = run_export(compose_config("export", ["study=ed", f"paths.root={root}"]))
    model = adaptnas.load(result.folder)
    suite = build_suite(model.info["search"]["data"], model.info["search"]["tasks"], root / "cache")
    return search.study.best_trial, result, model, suite


def test_every_format_of_an_encoder_decoder_study_is_written_and_checked(exported):
    trial, result, model, _ = exported
    assert trial.user_attrs["architecture"]["family"] == "encoder_decoder"
    # both graphs of the generation task and the T5 copy passed the pipeline's parity check
    assert model.info["files"]["onnx"]["translation"] == {
        "encoder": "onnx/translation/encoder.onnx",
        "decoder": "onnx/translation/decoder.onnx",
    }
    checked = {k for k in result.parity if k.startswith(("onnx/translation", "transformers/"))}
    assert any(k.startswith("onnx/translation") for k in checked), result.parity
    assert "transformers/translation" in checked and "transformers/lm" in checked, result.parity
    assert all(result.parity[k] < TOLERANCE for k in checked)
    assert (result.folder / "transformers/translation/model.safetensors").is_file()


def test_the_loaded_encoder_decoder_scores_what_the_search_measured(exported):
    trial, _, model, suite = exported
    for name, task in suite.tasks.items():
        m = model.models[name]
        preds = []
        for batch in make_loader(task.encoded("validation"), 64, shuffle=False):
            preds += task.predict(m.backbone, m.head, batch)
        score = task.score(preds, "validation")["score"]
        assert score == pytest.approx(trial.user_attrs["task_scores"][name], abs=1e-12)


def test_torch_onnx_and_transformers_translate_alike(exported):
    _, result, model, suite = exported
    sources = [e.source for e in suite.tasks["translation"].splits.validation[:8]]
    texts = model.predict("translation", sources)
    assert any(texts), "an untrained-looking model: every translation is empty"
    trans = model._task("translation", [])
    enc = model.encode("translation", sources)
    # the unpadded [BOS] source [SEP] prompts, as generation builds them
    lengths = enc["attention_mask"].sum(1).tolist()
    prompts = [row[:n] for row, n in zip(enc["input_ids"].tolist(), lengths, strict=True)]
    eos = model.tokenizer.token_to_id(EOS)

    def decode(rows: list[list[int]]) -> list[str]:
        return [model.tokenizer.decode(r, skip_special_tokens=True) for r in rows]

    onnx_rows = onnx_greedy(result.folder / "onnx/translation", prompts, trans.max_new_tokens, eos)
    assert decode(onnx_rows) == texts
    hf = load_transformers(result.folder / "transformers/translation", "t5", None)
    assert type(hf).__name__ == "T5ForConditionalGeneration"
    with torch.no_grad():
        assert decode(hf_greedy(hf, prompts, trans.max_new_tokens)) == texts
