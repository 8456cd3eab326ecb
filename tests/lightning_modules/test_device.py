"""Device correctness without a GPU: the model code's steps with the model and batches elsewhere.

``tests/lightning_modules/fake_device.py`` dresses CPU tensors as tensors of another device and
fails any operation where a CPU tensor meets them, as CUDA does, while keeping real values, so
each step below runs to its end. What runs on the stand-in device, each called directly:
``PretrainModule.training_step`` (loss and backward) and its validation loss for every family and
position kind; ``FinetuneModule.training_step`` (loss and backward), validation and scoring for
every task kind and family that serves it; ``generate_ids``, greedy and beam, with and without the
KV cache; the export helpers (``save_safetensors``, ``to_transformers``, ``transformers_parity``);
and ``adaptnas.load(..., device)`` + ``predict`` for all four task kinds. Each result must equal
the CPU run's, so a tensor that silently stayed behind would show too.

What does not run on it: the Lightning ``Trainer`` loop (``fit``, the optimizer and scheduler
steps, callbacks, gradient clipping), ``nas.stages`` and ``nas.trial.run_trial`` around it, and
the super-network (``nas/supernet.py``: sandwich steps, weight slicing, extraction). Those run on
a device only in ``tests/test_gpu.py`` (a tiny standalone search on CUDA; the super-network not
even there), which skips without a GPU. The bf16 test at the end runs on the CPU.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import yaml

import adaptnas
from lightning_modules.config import TransformerConfig
from lightning_modules.data.tokenizer import train_tokenizer
from lightning_modules.data.world import World
from lightning_modules.export import (
    TOLERANCE,
    TaskModel,
    save_safetensors,
    to_transformers,
    transformers_parity,
)
from lightning_modules.finetune import FinetuneModule
from lightning_modules.generate import generate_ids
from lightning_modules.model import build_model
from lightning_modules.pretrain import PretrainModule
from lightning_modules.tasks import TASK_KINDS
from tests.lightning_modules.fake_device import (
    OTHER,
    DeviceMismatch,
    Remote,
    other_device,
    to_other,
)

FAMILIES = ("decoder", "encoder", "prefix_lm", "encoder_decoder")
POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")
SPECIAL_IDS = {"mask": 4, "n_special": 7}
TASKS = {  # name -> (kind, splits maker arguments)
    "sentiment": "sequence",
    "ner": "token",
    "qa": "span",
    "translation": "generation",
}
MAX_LEN = {"sentiment": 48, "ner": 32, "qa": 96, "translation": 48}


@pytest.fixture(autouse=True)
def _quiet():
    # self.log outside a Trainer warns and does nothing: these tests call the hooks directly.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*self.trainer` reference is not registered.*")
        warnings.filterwarnings("ignore", ".*self.log.*")
        yield


def build_tasks():
    """One tiny task of each kind on built-in data, and their tokenizer: ``(tasks, tokenizer)``."""
    world = World(0)
    sizes = {"n_train": 16, "n_val": 12, "n_test": 4}
    splits = {name: getattr(world, name)(**sizes) for name in TASKS}
    texts = world.corpus(400) + [e.target for e in splits["translation"].train]
    tokenizer = train_tokenizer(texts, 384)
    tasks = {}
    for name, kind in TASKS.items():
        cfg = {"max_len": MAX_LEN[name]}
        if kind == "generation":
            cfg |= {"max_new_tokens": 6}
        tasks[name] = TASK_KINDS[kind].from_config(name, splits[name], tokenizer, cfg)
    return tasks, tokenizer


@pytest.fixture(scope="module")
def built():
    return build_tasks()


@pytest.fixture(scope="module")
def tasks(built):
    return built[0]


@pytest.fixture(scope="module")
def tokenizer(built):
    return built[1]


def arch(family: str, pos: str = "rope", **kw) -> TransformerConfig:
    fields = dict(
        family=family, pos=pos, vocab_size=384, max_seq_len=96, n_layer=2, d_model=32,
        n_head=4, n_kv_head=2, d_ff=64, dropout=0.0,
        n_dec_layer=1 if family == "encoder_decoder" else 0,
    )  # fmt: skip
    return TransformerConfig(**(fields | kw))


def _same(a, b) -> None:
    """Nested results equal, floats to float rounding (the same kernels run on both sides)."""
    if isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    else:
        assert a == b


# ---- the stand-in device itself ----------------------------------------------------------------
def test_the_stand_in_device_fails_where_cuda_would_and_keeps_values():
    with other_device():
        x = torch.arange(6.0).to(OTHER)
        assert isinstance(x, Remote) and x.device == OTHER
        assert (x * 2).tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]  # real values
        assert float(x.sum()) == 15.0 and x[x > 2].tolist() == [3.0, 4.0, 5.0]
        assert isinstance(torch.ones(3, device=x.device), Remote)
        assert (x + torch.tensor(1.0)).tolist()[0] == 1.0  # a 0-dim CPU tensor is a scalar
        y = torch.zeros(6, device=OTHER)
        y[:3] = torch.ones(3)  # copy_ across devices is legal
        assert y.cpu().tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        with pytest.raises(DeviceMismatch):
            x + torch.ones(6)
        with pytest.raises(DeviceMismatch):
            x.masked_fill(torch.ones(6, dtype=torch.bool), 0.0)
        w = torch.randn(6, requires_grad=True).to(OTHER)
        (w * x).sum().backward()  # autograd runs on the stand-in too
        lin = torch.nn.Linear(6, 2).to(OTHER)
        lin(x[None]).sum().backward()
        assert isinstance(lin.weight.grad, Remote)


# ---- pretraining -------------------------------------------------------------------------------
def _pretrain_step(model, blocks: torch.Tensor):
    """Training loss, its gradients and the validation loss of one batch."""
    module = PretrainModule(model, SPECIAL_IDS)
    torch.manual_seed(0)  # the masks / prefix lengths drawn by training_step
    loss = module.training_step(blocks, 0)
    loss.backward()
    grads = [float(p.grad.abs().sum()) for p in model.parameters()]
    module.on_validation_epoch_start()
    with torch.no_grad():  # as Lightning runs validation
        module.validation_step(blocks, 0)
    module.on_validation_epoch_end()
    return float(loss.detach()), grads, module.val_losses[-1][1]


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_pretraining_step_runs_on_the_model_device(family, pos):
    blocks = torch.randint(7, 384, (4, 25), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = build_model(arch(family, pos))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = _pretrain_step(model, blocks)
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    with other_device():
        model.to(OTHER)
        assert all(isinstance(p, Remote) for p in model.parameters())
        got = _pretrain_step(model, to_other(blocks))
    _same(expected, got)
    assert math.isfinite(got[0])


# ---- fine-tuning: training step, validation, scoring --------------------------------------------
def _finetune_pass(module: FinetuneModule, task, move):
    """Loss and gradients of a training batch, then a validation pass and its scores."""
    batch = move(next(iter(task.loader("train", 8, shuffle=True, seed=0))))
    loss = module.training_step(batch, 0)
    loss.backward()
    grads = [float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None]
    module.on_validation_epoch_start()
    for i, b in enumerate(task.loader("validation", 5)):  # 12 examples: a short last batch
        module.validation_step(move(b), i)
    module.on_validation_epoch_end()
    return float(loss.detach()), grads, sorted(module._preds), module.curve[-1][1]


CASES = [
    (name, family)
    for name, kind in TASKS.items()
    for family in FAMILIES
    if family in TASK_KINDS[kind].families
]


@pytest.mark.parametrize(("name", "family"), CASES)
def test_every_task_kind_trains_validates_and_predicts_on_the_model_device(tasks, name, family):
    task = tasks[name]
    torch.manual_seed(0)
    lm = build_model(arch(family, "alibi" if family == "prefix_lm" else "rope"))
    backbone = lm if task.needs_lm_head else lm.backbone
    module = FinetuneModule(backbone, task)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    expected = _finetune_pass(module, task, lambda b: b)
    module.load_state_dict(state)
    module.zero_grad(set_to_none=True)
    with other_device():
        module.to(OTHER)
        got = _finetune_pass(module, task, to_other)
    _same(expected, got)


# ---- generation --------------------------------------------------------------------------------
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize(
    ("family", "pos"),
    [
        ("decoder", "rope"),
        ("decoder", "alibi"),
        ("prefix_lm", "learned"),
        ("prefix_lm", "sinusoidal"),
        ("encoder_decoder", "rope"),
        ("encoder_decoder", "alibi"),
    ],
)
def test_greedy_and_beam_decoding_run_on_the_model_device(family, pos, num_beams, use_cache):
    torch.manual_seed(0)
    model = build_model(arch(family, pos, vocab_size=24, max_seq_len=32)).eval()
    with torch.no_grad():  # sharper distributions, so rows stop at EOS after varying lengths
        model.backbone.tok_emb.weight.mul_(8)
        model.lm_head.weight.normal_(0.0, 1.0)
    gen = torch.Generator().manual_seed(2)
    prompts = [torch.randint(7, 24, (n,), generator=gen).tolist() for n in (3, 7, 5, 9)]
    # EOS: a token the first prompt emits third, so that rows stop (and leave) at varied steps.
    eos = generate_ids(model, prompts, 8, -1)[0][2]
    expected = generate_ids(model, prompts, 8, eos, num_beams=num_beams, use_cache=use_cache)
    with other_device():
        model.to(OTHER)
        got = generate_ids(model, prompts, 8, eos, num_beams=num_beams, use_cache=use_cache)
    assert got == expected
    assert any(len(g) < 8 for g in got)


# ---- export and adaptnas.load ------------------------------------------------------------------
def test_export_helpers_take_a_model_on_the_device(tmp_path):
    gpt2 = arch("decoder", "learned", norm="layernorm", mlp="gelu", n_kv_head=4)
    torch.manual_seed(0)
    model = build_model(gpt2)
    expected = to_transformers(model).state_dict()
    ids = torch.randint(7, 384, (2, 12), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with other_device():
        model.to(OTHER)
        save_safetensors(model, tmp_path / "lm.safetensors")
        hf = to_transformers(model)
        assert transformers_parity(hf, model, [to_other(batch)]) < TOLERANCE
    assert all(
        t.device.type == "cpu" and not isinstance(t, Remote) for t in hf.state_dict().values()
    )
    for k, v in expected.items():
        assert torch.equal(hf.state_dict()[k], v), k
    assert all(isinstance(p, Remote) for p in model.parameters())  # the original stays


def write_export(folder, tasks, tokenizer) -> None:
    """An export folder as ``nas/export.py`` writes it (without ONNX and transformers copies)."""
    cfg = arch("prefix_lm", "alibi")
    torch.manual_seed(0)
    lm = build_model(cfg)
    (folder / "tasks").mkdir(parents=True)
    save_safetensors(lm, folder / "backbone.safetensors")
    tokenizer.save(str(folder / "tokenizer.json"))
    files = {"tokenizer": "tokenizer.json", "backbone": "backbone.safetensors", "tasks": {}}
    doc = {}
    for name, task in tasks.items():
        head = task.make_head(cfg)
        model = TaskModel(lm if task.needs_lm_head else lm.backbone, head, task.kind)
        save_safetensors(model, folder / f"tasks/{name}.safetensors")
        files["tasks"][name] = f"tasks/{name}.safetensors"
        config = {"max_len": task.max_len, "metric": task.metric}
        if task.kind == "generation":
            config["max_new_tokens"] = task.max_new_tokens
        doc[name] = {
            "kind": task.kind,
            "metric": task.metric,
            "labels": list(task.splits.labels),
            "config": config,
        }
    info = {
        "format": adaptnas.model.EXPORT_FORMAT,
        "architecture": cfg.to_dict(),
        "tasks": doc,
        "files": files,
    }
    (folder / "architecture.yaml").write_text(yaml.safe_dump(info))


INPUTS = {
    "sentiment": ["a fine film", ("good", "bad"), "nothing works"],
    "ner": ["Anna Smith lives in Paris", ["the", "cat"]],
    "qa": [("who lives there ?", "Anna lives there with Bob"), ("what ?", "a cat")],
    "translation": ["the cat sleeps", "a dog"],
}


def test_load_and_predict_on_the_device(tmp_path, tasks, tokenizer):
    write_export(tmp_path / "export", tasks, tokenizer)
    model = adaptnas.load(tmp_path / "export")
    expected = {name: model.predict(name, inputs) for name, inputs in INPUTS.items()}
    with other_device():
        model = adaptnas.load(tmp_path / "export", device=OTHER)
        assert all(isinstance(p, Remote) for p in model.lm.parameters())
        got = {name: adaptnas.predict(model, name, inputs) for name, inputs in INPUTS.items()}
    assert got == expected


# ---- bf16 autocast (trainer.precision=auto on a wide model, CPU with bf16 units, or a GPU) ------
@pytest.mark.parametrize("pos", ["alibi", "rope"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_stage_runs_under_bf16_autocast(tasks, family, pos):
    blocks = torch.randint(7, 384, (4, 25), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    lm = build_model(arch(family, pos))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, val = _pretrain_step(lm, blocks)
        assert math.isfinite(loss) and math.isfinite(val)
        for task in tasks.values():
            if family not in task.families:
                continue
            backbone = lm if task.needs_lm_head else lm.backbone
            loss, _, preds, scores = _finetune_pass(
                FinetuneModule(backbone, task), task, lambda b: b
            )
            assert math.isfinite(loss) and len(preds) == len(task.encoded("validation"))
            assert 0.0 <= scores["score"] <= 1.0
