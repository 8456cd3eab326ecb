"""Generation: stream encoding, decoding (greedy, beam, KV cache), scoring, fine-tuning."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.data.errors import DataError
from lightning_modules.data.tokenizer import BOS, EOS, SEP, train_tokenizer
from lightning_modules.data.world import World
from lightning_modules.generate import beam_search, generate, generate_ids, greedy
from lightning_modules.model import LanguageModel, build_model
from lightning_modules.tasks import TASK_KINDS, GenerationTask
from lightning_modules.tasks.generation import IGNORE
from nas.trial.stages import finetune
from tests.nas.run_config import run_config

EOS_ID = 6  # [EOS] in SPECIAL_TOKENS order


@pytest.fixture(scope="module")
def world() -> World:
    return World(0)


@pytest.fixture(scope="module")
def translation(world):
    return world.translation(n_train=48, n_val=16, n_test=16)


@pytest.fixture(scope="module")
def summarization(world):
    return world.summarization(n_train=48, n_val=16, n_test=16)


@pytest.fixture(scope="module")
def tokenizer(world, translation, summarization):
    # The targets join the corpus so that every character of the invented language has a token
    # (the built-in corpus is English only: "z" would be [UNK]); decoding then restores them.
    texts = world.corpus(800) + [e.target for e in translation.train + summarization.train]
    return train_tokenizer(texts, 384)


def _model(family: str, pos: str = "rope", vocab: int = 12, seed: int = 0, **kw) -> LanguageModel:
    """A random model whose greedy outputs stop at EOS after varying numbers of tokens."""
    torch.manual_seed(seed)
    if family == "encoder_decoder":
        kw.setdefault("n_dec_layer", 2)
    cfg = TransformerConfig(
        family=family, pos=pos, vocab_size=vocab, max_seq_len=48, n_layer=2, d_model=32,
        n_head=4, n_kv_head=kw.pop("n_kv_head", 1), d_ff=64, tie_embeddings=False, **kw,
    )  # fmt: skip
    model = build_model(cfg).eval()
    with torch.no_grad():  # sharper, input-dependent distributions than the tiny init gives
        model.backbone.tok_emb.weight.mul_(8)
        model.lm_head.weight.normal_(0.0, 1.0)
    return model


def _prompts(n: int, vocab: int = 12, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[5, *(rng.randrange(7, vocab) for _ in range(rng.randint(1, 12))), 3] for _ in range(n)]


# ---- decoding ---------------------------------------------------------------------------------
CASES = list(
    itertools.product(
        ["decoder", "prefix_lm", "encoder_decoder"],
        ["learned", "sinusoidal", "rope", "alibi", "none"],
    )
)


@pytest.mark.parametrize(("family", "pos"), CASES)
def test_batched_cached_and_beam1_decoding_equal_one_at_a_time_recompute(family, pos):
    norm_position = "post" if pos in ("sinusoidal", "alibi") else "pre"  # both block layouts
    model, prompts = _model(family, pos, norm_position=norm_position), _prompts(10)
    alone = [greedy(model, [p], 20, EOS_ID, use_cache=False)[0] for p in prompts]
    assert greedy(model, prompts, 20, EOS_ID, use_cache=False) == alone
    assert greedy(model, prompts, 20, EOS_ID, use_cache=True) == alone
    assert beam_search(model, prompts, 20, EOS_ID, num_beams=1) == alone
    beams = [beam_search(model, [p], 20, EOS_ID, num_beams=3, use_cache=False)[0] for p in prompts]
    assert beam_search(model, prompts, 20, EOS_ID, num_beams=3) == beams


def test_rows_that_stop_early_leave_the_others_unchanged():
    # A case where greedy outputs really end at different steps (the batch shrinks mid-way).
    model, prompts = _model("decoder", "learned", norm_position="pre", n_kv_head=4), _prompts(10)
    alone = [greedy(model, [p], 20, EOS_ID, use_cache=False)[0] for p in prompts]
    assert len({len(a) for a in alone}) > 1 and min(len(a) for a in alone) < 20
    assert greedy(model, prompts, 20, EOS_ID) == alone
    assert beam_search(model, prompts, 20, EOS_ID, num_beams=1) == alone


class _Bigram(torch.nn.Module):
    """A language model whose next-token distribution depends on the last token only.

    Transitions (tokens 7, 8, 9; EOS 6) are chosen so that greedy decoding is not the likeliest
    output: after [SEP] (3), 7 is likelier than 8 (0.55 vs 0.45), but 7 continues flatly
    (9: 0.34, 7 and 8: 0.33) while 8 ends at once (EOS 0.99). Greedy: 7 9 EOS, probability
    0.55 * 0.34 * 0.99 = 0.185; best: 8 EOS, 0.45 * 0.99 = 0.446.
    """

    def __init__(self):
        super().__init__()
        table = torch.full((10, 10), 1e-6)
        table[3, 7], table[3, 8] = 0.55, 0.45
        table[7, 9], table[7, 7], table[7, 8] = 0.34, 0.33, 0.33
        table[8, EOS_ID] = table[9, EOS_ID] = 0.99
        self.log_table = torch.nn.Parameter(table.log())
        self.cfg = TransformerConfig(family="decoder", vocab_size=10, max_seq_len=16, d_ff=8)

    def hidden(self, input_ids, attention_mask=None, prefix_len=None):
        return torch.nn.functional.one_hot(input_ids, 10).float()  # (B, T, V)

    def logits_from_hidden(self, h):
        return h @ self.log_table  # log-probabilities of the next token


def test_beam_search_finds_what_greedy_misses():
    model, prompt = _Bigram(), [[5, 3]]
    assert greedy(model, prompt, 5, EOS_ID, use_cache=False) == [[7, 9]]
    assert beam_search(model, prompt, 5, EOS_ID, num_beams=1, use_cache=False) == [[7, 9]]
    # Two beams keep "8" alive; per-token log-probability: log(0.446) / 2 > log(0.185) / 3.
    assert beam_search(model, prompt, 5, EOS_ID, num_beams=2, use_cache=False) == [[8]]
    assert beam_search(model, prompt * 3, 5, EOS_ID, num_beams=2, use_cache=False) == [[8]] * 3


def test_prefix_lm_reads_the_prompt_as_its_bidirectional_prefix():
    model, (prompt,) = _model("prefix_lm", "rope"), _prompts(1, seed=5)
    out = greedy(model, [prompt], 6, EOS_ID, use_cache=True)[0]
    assert out
    seq = prompt + out
    ids = torch.tensor([seq])
    with torch.no_grad():
        prefix = model(ids, prefix_len=torch.tensor([len(prompt)]))[0]  # (T, V)
        causal = model(ids)[0]
    # Every generated token is the argmax after the bidirectional prefix ...
    for i, token in enumerate(out):
        assert int(prefix[len(prompt) - 1 + i].argmax()) == token
    # ... which really differs from reading the prompt causally.
    assert not torch.allclose(prefix[len(prompt) - 1], causal[len(prompt) - 1], atol=1e-4)


def test_encoder_decoder_encodes_the_prompt_and_decodes_from_its_last_token():
    model, (prompt,) = _model("encoder_decoder", "rope"), _prompts(1, seed=5)
    out = greedy(model, [prompt], 6, EOS_ID, use_cache=True)[0]
    assert out
    with torch.no_grad():
        logits = model(torch.tensor([prompt]), decoder_input_ids=torch.tensor([[3, *out]]))[0]
    # Every generated token is the argmax of the decoder fed [SEP] and the tokens before it.
    assert [int(t) for t in logits[: len(out)].argmax(-1)] == out
    assert beam_search(model, [prompt], 6, EOS_ID, num_beams=1) == [out]


def test_encoders_cannot_generate_and_budgets_are_checked():
    enc = build_model(TransformerConfig(family="encoder", vocab_size=12, max_seq_len=16, d_ff=32))
    with pytest.raises(ValueError, match="family 'encoder' cannot generate"):
        generate_ids(enc, [[5, 3]], 4, EOS_ID)
    dec = _model("decoder")
    with pytest.raises(ValueError, match="exceeds max_seq_len=48"):
        greedy(dec, [[5] * 40], 10, EOS_ID)
    assert dec.training is False
    dec.train()
    generate_ids(dec, [[5, 3]], 2, EOS_ID)
    assert dec.training  # generate_ids restores the mode it found


def test_generate_text_keeps_the_order_of_sources(tokenizer):
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tokenizer.get_vocab_size(), max_seq_len=40, n_layer=1, d_model=32, n_head=2,
        d_ff=64,
    )  # fmt: skip
    model = build_model(cfg)
    sources = ["Anna sings.", "Tom will buy the red bikes in Varen tomorrow.", "Mia ran."]
    many = generate(model, tokenizer, sources, max_new_tokens=5, batch_size=2)
    assert many == [generate(model, tokenizer, [s], max_new_tokens=5)[0] for s in sources]
    long = generate(model, tokenizer, ["word " * 60], max_new_tokens=5)  # source cut to fit
    assert len(long) == 1


# ---- the task ---------------------------------------------------------------------------------
def test_registered_as_generation_kind_for_causal_families():
    assert TASK_KINDS["generation"] is GenerationTask
    assert GenerationTask.families == ("decoder", "prefix_lm", "encoder_decoder")
    assert GenerationTask.needs_lm_head


def test_stream_encoding_puts_the_loss_on_the_target_only(translation, tokenizer):
    task = GenerationTask("translation", translation, tokenizer, max_len=96, max_new_tokens=60)
    train = task.encoded("train").tensors  # nothing cut: sources < 34 tokens, targets < 60
    bos, sep, eos = (tokenizer.token_to_id(t) for t in (BOS, SEP, EOS))
    for i, ex in enumerate(translation.train):
        n = int(train["attention_mask"][i].sum())
        ids, labels = train["input_ids"][i, :n].tolist(), train["labels"][i, :n].tolist()
        p = int(train["prefix_len"][i])
        src = tokenizer.encode(ex.source, add_special_tokens=False).ids
        tgt = tokenizer.encode(ex.target, add_special_tokens=False).ids
        assert ids == [bos, *src, sep, *tgt, eos]
        assert p == len(src) + 2
        assert labels == [IGNORE] * p + [*tgt, eos]
    val = task.encoded("validation")
    for i, ex in enumerate(translation.validation):
        n = int(val.tensors["attention_mask"][i].sum())
        src = tokenizer.encode(ex.source, add_special_tokens=False).ids
        assert val.tensors["input_ids"][i, :n].tolist() == [bos, *src, sep]
        assert val.references[i] == ex.target
    assert "labels" not in val.tensors


def test_long_targets_lose_their_eos_and_sources_make_room(translation, tokenizer):
    task = GenerationTask("translation", translation, tokenizer, max_len=16, max_new_tokens=8)
    train = task.encoded("train").tensors
    eos = tokenizer.token_to_id(EOS)
    assert train["input_ids"].shape[1] <= 16
    assert int(train["prefix_len"].max()) <= 16 - 8  # source cut to max_len - max_new - 2
    full = [int(train["attention_mask"][i].sum()) == 16 for i in range(len(translation.train))]
    assert any(full)
    for i, is_full in enumerate(full):
        if is_full:  # the target was cut: no EOS to learn there
            assert eos not in train["input_ids"][i].tolist()
    with pytest.raises(DataError, match="no room for a source"):
        GenerationTask("translation", translation, tokenizer, max_len=10, max_new_tokens=8)
    with pytest.raises(DataError, match="num_beams=0 must be a positive integer"):
        GenerationTask("translation", translation, tokenizer, max_len=32, num_beams=0)


@pytest.mark.parametrize("name", ["translation", "summarization"])
def test_gold_outputs_score_one(name, translation, summarization, tokenizer):
    splits = {"translation": translation, "summarization": summarization}[name]
    metric = {"translation": "chrf", "summarization": "rouge_l"}[name]
    task = GenerationTask(name, splits, tokenizer, max_len=128, metric=metric, max_new_tokens=60)
    # What a perfect model decodes: the target's tokens, then EOS.
    gold = [
        (i, tokenizer.decode(tokenizer.encode(ex.target, add_special_tokens=False).ids))
        for i, ex in enumerate(splits.validation)
    ]
    scores = task.score(gold, "validation")
    assert scores["bleu"] == pytest.approx(1.0) and scores["rouge_l"] == pytest.approx(1.0)
    assert scores["chrf"] == pytest.approx(1.0)
    assert scores["score"] == scores[metric]
    shuffled = [(i, gold[(i + 1) % len(gold)][1]) for i, _ in gold]
    assert task.score(shuffled, "validation")["score"] < 0.7


def test_encoders_are_refused(translation, tokenizer):
    task = GenerationTask("translation", translation, tokenizer, max_len=48, max_new_tokens=20)
    cfg = TransformerConfig(family="encoder", vocab_size=tokenizer.get_vocab_size())
    with pytest.raises(ValueError, match="cannot be served by family 'encoder'"):
        task.make_head(cfg)


@pytest.mark.parametrize("family", ["decoder", "prefix_lm", "encoder_decoder"])
def test_finetune_trains_the_whole_language_model(family, translation, tokenizer):
    task = GenerationTask("translation", translation, tokenizer, max_len=48, max_new_tokens=12)
    arch = TransformerConfig(
        family=family, vocab_size=tokenizer.get_vocab_size(), max_seq_len=48, n_layer=1,
        d_model=32, n_head=2, d_ff=64, n_dec_layer=int(family == "encoder_decoder"),
    )  # fmt: skip
    torch.manual_seed(0)
    pretrained = build_model(arch)
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    cfg = run_config(
        finetune={
            "steps": 6, "batch_size": 16, "eval_batch_size": 8, "lr": 3e-3,
            "weight_decay": 0.01, "warmup_frac": 0.1, "evals": 1, "examples": None,
        },
        tasks={"translation": {"steps": None, "batch_size": None, "lr": None, "examples": None}},
        trainer={"accelerator": "cpu", "precision": "32-true"},
    )  # fmt: skip
    module, steps = finetune(pretrained, task, cfg, seed=0)
    assert steps == 6
    lm = module.backbone
    assert isinstance(lm, LanguageModel) and lm is not pretrained
    assert lm.lm_head.weight is lm.backbone.tok_emb.weight  # still tied
    assert not any(p.numel() for p in module.head.parameters())
    # The LM head was trained, the pretrained model left as it was.
    assert not torch.equal(lm.lm_head.weight, before["lm_head.weight"])
    assert all(torch.equal(v, before[k]) for k, v in pretrained.state_dict().items())
    (step, scores), *_ = module.curve
    assert step == 6 and set(scores) == {"bleu", "chrf", "rouge_l", "score"}
    assert 0.0 <= scores["score"] <= 1.0


def test_split_stream_gives_the_encoder_the_prompt_and_the_decoder_the_rest():
    from lightning_modules.tasks.generation import split_stream

    # Row 0: prompt [5 8 3] target [9 9] EOS; row 1: prompt [5 3] target [7] EOS, padded.
    ids = torch.tensor([[5, 8, 3, 9, 9, 6], [5, 3, 7, 6, 0, 0]])
    mask = (ids != 0).long()
    labels = torch.tensor([[IGNORE] * 3 + [9, 9, 6], [IGNORE] * 2 + [7, 6, IGNORE, IGNORE]])
    src_mask, dec, dec_mask, dec_labels = split_stream(ids, mask, torch.tensor([3, 2]), labels)
    assert src_mask.tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]
    assert dec.tolist() == [[3, 9, 9, 6], [3, 7, 6, 0]]
    assert dec_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    # Decoder position t predicts label t+1: [SEP] -> first target token ... -> EOS.
    assert dec_labels[:, 1:].tolist() == [[9, 9, 6], [7, 6, IGNORE]]
