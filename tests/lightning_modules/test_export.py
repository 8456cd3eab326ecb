"""Tests of lightning_modules/export/: safetensors, ONNX and transformers copies of a model.

Models here are freshly initialised (norm weights perturbed so that no layer is an identity);
``tests/nas/test_export.py`` exports trained ones from a real search.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.export import (
    FORMATS,
    TOLERANCE,
    ExportError,
    HFFormat,
    OnnxFormat,
    SafetensorsFormat,
    TaskModel,
    export_onnx,
    graph_io,
    hf_family,
    hf_head_problem,
    load_safetensors,
    load_transformers,
    onnx_parity,
    read_metadata,
    save_safetensors,
    save_transformers,
    task_graph,
    to_transformers,
    transformers_parity,
)
from lightning_modules.export.onnx import Seq2SeqSession, onnx_greedy, seq2seq_io
from lightning_modules.generate import greedy
from lightning_modules.heads import build_head
from lightning_modules.model import LanguageModel, Transformer, build_model

V = 101


def cfg(**overrides) -> TransformerConfig:
    base = dict(
        family="decoder", vocab_size=V, max_seq_len=40, n_layer=2, d_model=32, n_head=4, d_ff=48
    )
    return TransformerConfig(**{**base, **overrides})


def perturbed(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Norms at weight 1 / bias 0 would hide a swapped or missing norm: move them off it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return module.eval()


def batch(b: int, t: int, seed: int = 0, pad_row: int | None = 0) -> dict[str, torch.Tensor]:
    """Random ids (no special tokens) with one right-padded row."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, V, (b, t), generator=gen)
    mask = torch.ones(b, t, dtype=torch.long)
    if pad_row is not None:
        mask[pad_row, t // 2 :] = 0
        ids[pad_row, t // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


# ---- safetensors ------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [True, False])
def test_language_model_round_trips_through_safetensors(tmp_path, tie):
    arch = cfg(tie_embeddings=tie, pos="learned")
    lm = perturbed(build_model(arch))
    path = tmp_path / "lm.safetensors"
    save_safetensors(lm, path, {"task": "lm"})
    # The format is a JSON header and raw tensors: nothing that unpickles.
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    names = set(header) - {"__metadata__"}
    # A tied head is stored once.
    assert len(names & {"lm_head.weight", "backbone.tok_emb.weight"}) == (1 if tie else 2)
    assert read_metadata(path)["task"] == "lm"
    back = load_safetensors(LanguageModel(arch), path).eval()
    assert (back.lm_head.weight is back.backbone.tok_emb.weight) == tie
    x = batch(2, 12)
    assert torch.equal(back(x["input_ids"]), lm(x["input_ids"]))


def test_task_model_round_trips_and_a_wrong_architecture_is_refused(tmp_path):
    arch = cfg(family="encoder", pos="alibi")
    model = TaskModel(perturbed(Transformer(arch)), build_head("token", arch, 5), "token")
    save_safetensors(model, tmp_path / "ner.safetensors")
    back = TaskModel(Transformer(arch), build_head("token", arch, 5), "token")
    load_safetensors(back, tmp_path / "ner.safetensors")
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    wider = TaskModel(Transformer(arch), build_head("token", arch, 7), "token")
    with pytest.raises(ExportError, match="do not fit"):
        load_safetensors(wider, tmp_path / "ner.safetensors")


# ---- which transformers model ----------------------------------------------------------------
LLAMA = dict(pos="rope", norm="rmsnorm", mlp="swiglu")
GPT2 = dict(pos="learned", norm="layernorm", mlp="gelu")


@pytest.mark.parametrize(
    "overrides, family, knob",
    [
        (LLAMA, "llama", None),
        ({**LLAMA, "n_kv_head": 1, "tie_embeddings": False}, "llama", None),
        (GPT2, "gpt2", None),
        ({**GPT2, "mlp": "relu", "n_kv_head": 2}, "gpt2", None),
        ({**LLAMA, "family": "encoder"}, None, "family=encoder"),
        ({**GPT2, "family": "prefix_lm"}, None, "family=prefix_lm"),
        ({**LLAMA, "norm_position": "post"}, None, "norm_position=post"),
        ({**LLAMA, "d_ff": [48, 64]}, None, "d_ff=[48, 64]"),
        ({**LLAMA, "norm": "layernorm"}, None, "norm=layernorm"),
        ({**LLAMA, "mlp": "gelu"}, None, "mlp=gelu"),
        ({**GPT2, "norm": "rmsnorm"}, None, "norm=rmsnorm"),
        ({**GPT2, "mlp": "swiglu"}, None, "mlp=swiglu"),
        ({**GPT2, "pos": "alibi"}, None, "pos=alibi"),
        ({**GPT2, "pos": "sinusoidal"}, None, "pos=sinusoidal"),
    ],
)
def test_hf_family_maps_exact_variants_and_names_the_knob_otherwise(overrides, family, knob):
    arch = cfg(**overrides)
    got, reason = hf_family(arch)
    assert got == family
    if knob is None:
        assert reason == ""
    else:
        assert reason.startswith(knob)
        with pytest.raises(ExportError, match=knob.replace("[", r"\[").replace("]", r"\]")):
            to_transformers(build_model(arch))


def test_a_sequence_head_has_no_transformers_counterpart():
    arch = cfg(**LLAMA)
    model = TaskModel(Transformer(arch), build_head("sequence", arch, 2), "sequence")
    with pytest.raises(ExportError, match="classifier bias"):
        to_transformers(model)


# ---- transformers parity ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        {**LLAMA, "n_kv_head": 2, "tie_embeddings": False},  # GQA, untied head
        {**LLAMA, "n_kv_head": 1, "rope_base": 500.0},  # MQA, tied, another RoPE base
        {**GPT2, "n_kv_head": 1, "tie_embeddings": False},  # MQA expanded into GPT-2's MHA
        {**GPT2, "mlp": "relu", "norm_eps": 1e-6},
    ],
    ids=["llama-gqa", "llama-mqa", "gpt2-mqa", "gpt2-relu"],
)
def test_transformers_copies_match_after_a_save_load_round_trip(tmp_path, overrides):
    arch = cfg(**overrides)
    family, _ = hf_family(arch)
    lm = perturbed(build_model(arch), seed=1)
    bb = lm.backbone
    models = {
        "lm": lm,
        "token": TaskModel(bb, perturbed(build_head("token", arch, 5), 2), "token"),
        "span": TaskModel(bb, perturbed(build_head("span", arch), 3), "span"),
        "generation": TaskModel(lm, lm.lm_head, "generation"),
    }
    batches = [batch(3, 17, seed=4), batch(1, 9, seed=5, pad_row=None)]
    classes = {}
    for name, model in models.items():
        hf = to_transformers(model, labels=["O", "B-A", "I-A", "B-B", "I-B"])
        save_transformers(hf, tmp_path / name)
        kind = None if name == "lm" else name
        back = load_transformers(tmp_path / name, family, kind)
        classes[name] = type(back).__name__
        assert transformers_parity(back, model, batches) < 1e-5, name
    prefix = {"llama": "Llama", "gpt2": "GPT2"}[family]
    assert classes["token"] == f"{prefix}ForTokenClassification"
    assert classes["span"] == f"{prefix}ForQuestionAnswering"
    # The check can fail: a changed weight shows up in the difference.
    with torch.no_grad():
        bb.norm_f.weight.mul_(2.0)
    assert transformers_parity(back, models["lm"], batches[:1]) > TOLERANCE


# ---- ONNX parity ------------------------------------------------------------------------------
@pytest.mark.slow  # the dynamo exporter takes 4-15 s per graph on 2 shared cores
@pytest.mark.parametrize(
    "overrides, kind",
    [
        ({"family": "encoder", "pos": "alibi", "n_kv_head": 2, "norm_position": "post"}, "token"),
        ({"family": "prefix_lm", "pos": "sinusoidal", "norm": "rmsnorm"}, "generation"),
    ],
    ids=["encoder-alibi-token", "prefix_lm-generation"],
)
def test_onnx_graph_has_dynamic_axes_and_matches_pytorch(tmp_path, overrides, kind):
    arch = cfg(**overrides)
    if kind == "generation":
        lm = perturbed(build_model(arch))
        model = TaskModel(lm, lm.lm_head, kind)
    else:
        model = TaskModel(perturbed(Transformer(arch)), build_head(kind, arch, 3), kind)
    example = batch(2, 11)
    if kind == "generation":
        example["prefix_len"] = torch.tensor([4, 7])
    path = export_onnx(model, tmp_path / f"{kind}.onnx", example)
    # Other batch sizes and lengths than the example's, up to max_seq_len.
    others = [batch(5, 23, seed=1), batch(1, 3, seed=2, pad_row=None), batch(3, 40, seed=3)]
    if kind == "generation":
        for i, b in enumerate(others):
            b["prefix_len"] = torch.full((len(b["input_ids"]),), 1 + i)
    assert onnx_parity(path, model, [example, *others]) < TOLERANCE
    import onnx

    graph = onnx.load(str(path)).graph
    inputs = [i.name for i in graph.input]
    assert inputs == (
        ["input_ids", "attention_mask", "prefix_len"]
        if kind == "generation"
        else ["input_ids", "attention_mask"]
    )
    dims = graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param and not d.dim_value for d in dims)  # symbolic batch and sequence


# ---- the format interface and code tasks -------------------------------------------------------
def test_formats_write_and_check_through_one_interface(tmp_path):
    arch = cfg(**GPT2)
    lm = perturbed(build_model(arch), seed=1)
    model = TaskModel(lm.backbone, perturbed(build_head("token", arch, 5), 2), "token")
    batches = [batch(3, 17, seed=4)]
    st = SafetensorsFormat()
    path = st.write(model, tmp_path, "ner", batches[0])
    assert path == tmp_path / "tasks" / "ner.safetensors"
    assert st.entry(path, tmp_path, model) == "tasks/ner.safetensors"
    assert st.parity(path, model, batches) == 0.0
    hf = HFFormat()
    assert hf.unsupported(arch) == "" and "prefix_lm" in hf.unsupported(cfg(family="prefix_lm"))
    assert "adapters do not merge" in hf.problem(model, "adapter")
    sequence = TaskModel(lm.backbone, build_head("sequence", arch, 2), "sequence")
    assert "classifier bias" in hf.problem(sequence)
    out = hf.write(model, tmp_path, "ner", batches[0], labels=["O", "B", "I", "B2", "I2"])
    assert hf.entry(out, tmp_path, model) == {
        "path": "transformers/ner",
        "class": "GPT2ForTokenClassification",
    }
    assert hf.parity(out, model, batches) < 1e-5
    # The checks can fail: a changed weight shows up in both.
    with torch.no_grad():
        lm.backbone.norm_f.weight.mul_(2.0)
    assert st.parity(path, model, batches) > TOLERANCE
    assert hf.parity(out, model, batches) > TOLERANCE
    assert set(FORMATS) == {"safetensors", "onnx", "transformers"}


def test_a_code_task_model_maps_like_a_generation_one(tmp_path):
    """Kind ``code`` decodes with the LM head: the causal LM in transformers, LM logits in ONNX."""
    arch = cfg(**GPT2)
    lm = perturbed(build_model(arch), seed=1)
    code = TaskModel(lm, lm.lm_head, "code")
    assert hf_head_problem("code") == ""
    hf = to_transformers(code)
    save_transformers(hf, tmp_path / "code")
    back = load_transformers(tmp_path / "code", "gpt2", "code")
    assert type(back).__name__ == "GPT2LMHeadModel"
    batches = [batch(3, 17, seed=4)]
    assert transformers_parity(back, code, batches) < 1e-5
    with torch.no_grad():  # the graph ONNX traces returns the language model's logits
        ids, mask = batches[0]["input_ids"], batches[0]["attention_mask"]
        assert torch.equal(task_graph(code)(ids, mask), lm(ids, attention_mask=mask))
    prefix = TaskModel(build_model(cfg(family="prefix_lm")), None, "code")
    assert graph_io(prefix) == (["input_ids", "attention_mask", "prefix_len"], ["logits"])


def test_encoder_decoder_has_onnx_and_no_transformers_refusal():
    arch = cfg(family="encoder_decoder", n_dec_layer=1)
    lm = build_model(arch)
    # The export pipeline writes ONNX for an encoder_decoder (two graphs when it generates).
    assert OnnxFormat().unsupported(arch) == ""
    # RoPE has no transformers encoder-decoder (test_export_hf_encdec.py has those that map).
    family, reason = hf_family(arch)
    assert family is None and reason.startswith("pos=rope")
    assert HFFormat().unsupported(arch) == reason
    gen = TaskModel(lm, lm.lm_head, "generation")
    with pytest.raises(ExportError, match="two graphs"):
        graph_io(gen)
    assert seq2seq_io(1)["decoder"][0] == [
        "decoder_input_ids",
        "encoder_attention_mask",
        "past_key_values.0.decoder.key",
        "past_key_values.0.decoder.value",
        "past_key_values.0.encoder.key",
        "past_key_values.0.encoder.value",
    ]


@pytest.fixture
def denormals_kept():
    """Denormal floats kept, as in a fresh process, whatever an earlier test of this worker set.

    ``nas.trial.resources.prepare_process`` flushes them for fast training, process-wide; the
    near-tied greedy steps of the randomly initialised model below then pick other tokens (one
    token repeated), so the test's own check that its tokens matter would depend on test order.
    """
    flushing = bool((torch.tensor([1e-39]) * 0.5).item() == 0.0)
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(flushing)


@pytest.mark.slow  # two graphs of 5-15 s each on 2 shared cores
@pytest.mark.parametrize(
    "overrides",
    [
        {"pos": "rope", "n_kv_head": 2, "n_layer": 1, "n_dec_layer": 2, "norm": "rmsnorm"},
        {"pos": "learned", "n_layer": 2, "n_dec_layer": 1, "norm_position": "post"},
    ],
    ids=["rope-gqa", "learned"],
)
def test_encoder_decoder_onnx_graphs_decode_like_pytorch(tmp_path, overrides, denormals_kept):
    arch = cfg(family="encoder_decoder", max_seq_len=24, tie_embeddings=False, **overrides)
    with torch.random.fork_rng(), torch.no_grad():  # the same weights whatever ran before
        torch.manual_seed(0)
        lm = perturbed(build_model(arch), seed=3)
        # At init every step picks one token: make the tokens matter.
        lm.backbone.tok_emb.weight.mul_(20.0)
        lm.lm_head.weight.normal_(0.0, 1.0)
    model = TaskModel(lm, lm.lm_head, "generation")
    example = batch(2, 9, seed=1)
    example["prefix_len"] = torch.tensor([4, 7])
    fmt = OnnxFormat()
    folder = fmt.write(model, tmp_path, "gen", example)
    assert folder == tmp_path / "onnx" / "gen"
    assert fmt.entry(folder, tmp_path, model) == {
        "encoder": "onnx/gen/encoder.onnx",
        "decoder": "onnx/gen/decoder.onnx",
    }
    # Encoder graph, a first step (empty cache) and later steps, other shapes than traced.
    other = batch(3, 12, seed=2)
    other["prefix_len"] = torch.tensor([12, 3, 8])
    assert fmt.parity(folder, model, [example, other]) < TOLERANCE
    # Greedy decoding through onnxruntime gives the tokens of the cached torch decode.
    prompts = [[1, 20, 30, 40, 2], [1, 50, 2], [1, 9, 8, 7, 6, 5, 4, 2]]
    want = greedy(lm, prompts, 12, eos_id=3)
    assert onnx_greedy(folder, prompts, 12, eos_id=3) == want
    assert len({t for row in want for t in row}) > 2  # not one token repeated
    # Several new tokens in one step (P = 0, T = 3, then P = 3, T = 2) match the uncached decoder.
    run = Seq2SeqSession(folder)
    ids, mask = example["input_ids"][:, :7].clone(), example["attention_mask"][:, :7].clone()
    dec = torch.randint(7, V, (2, 5), generator=torch.Generator().manual_seed(9))
    feeds = run.start(run.encode(ids.numpy(), mask.numpy()), mask.numpy())
    first, _ = run.step(feeds, dec[:, :3].numpy())
    later, _ = run.step(feeds, dec[:, 3:].numpy())
    with torch.no_grad():
        memory = lm.hidden(ids, attention_mask=mask)
        ref = lm.logits_from_hidden(lm.decode_hidden(dec, memory, mask))  # (2, 5, V)
    got = torch.cat([torch.from_numpy(first), torch.from_numpy(later)], dim=1)
    assert float((got - ref).abs().max()) < TOLERANCE
    # The check can fail: a changed cross-attention weight shows up.
    with torch.no_grad():
        lm.backbone.dec_blocks[0].cross.proj.weight.mul_(2.0)
    assert fmt.parity(folder, model, [example]) > TOLERANCE


@pytest.mark.slow
def test_encoder_decoder_onnx_graphs_carry_bottleneck_adapters(tmp_path):
    """Adapters cannot merge: the graphs run them, in the encoder and the decoder blocks."""
    from lightning_modules.adaptation import AdaptationSpec, insert_modules, merged

    arch = cfg(family="encoder_decoder", max_seq_len=16, n_layer=1, n_dec_layer=1, pos="rope")
    with torch.random.fork_rng(), torch.no_grad():  # the same weights whatever ran before
        torch.manual_seed(0)
        lm = insert_modules(perturbed(build_model(arch), seed=5), AdaptationSpec(method="adapter"))
        for name, p in lm.named_parameters():  # adapters start as the identity: move them off it
            if ".adapter.up." in name:
                p.normal_(0.0, 0.5)
    model = TaskModel(merged(lm).eval(), lm.lm_head, "code")
    example = batch(2, 8, seed=6)
    example["prefix_len"] = torch.tensor([3, 6])
    folder = OnnxFormat().write(model, tmp_path, "code", example)
    assert OnnxFormat().parity(folder, model, [example]) < TOLERANCE
    with torch.no_grad():  # the check can fail: changed adapter weights show up
        for name, p in model.named_parameters():
            if "dec_blocks.0." in name and ".adapter." in name:
                p.add_(0.5)
    assert OnnxFormat().parity(folder, model, [example]) > 100 * TOLERANCE
