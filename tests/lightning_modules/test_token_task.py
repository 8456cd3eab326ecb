"""Token tagging (NER): labels on first sub-tokens, truncation, scoring, a real training step."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import Splits, TokenExample
from lightning_modules.data.tokenizer import train_tokenizer
from lightning_modules.data.world import World
from lightning_modules.model import build_model
from lightning_modules.tasks import TASK_KINDS, TokenTask
from lightning_modules.tasks.token import IGNORE


@pytest.fixture(scope="module")
def world() -> World:
    return World(0)


@pytest.fixture(scope="module")
def tokenizer(world):
    return train_tokenizer(world.corpus(800), 384)


@pytest.fixture(scope="module")
def splits(world) -> Splits:
    return world.ner(n_train=64, n_val=24, n_test=24)


def _gold_predictions(task: TokenTask, split: str) -> list[tuple[int, list[int]]]:
    """What a perfect tagger's ``predict`` returns: the label of every first sub-token."""
    t = task.encoded(split).tensors
    return [(i, t["labels"][i][t["first"][i]].tolist()) for i in range(len(t["labels"]))]


def test_registered_as_token_kind():
    assert TASK_KINDS["token"] is TokenTask


def test_labels_sit_on_the_first_sub_token_of_each_word(splits, tokenizer):
    task = TokenTask("ner", splits, tokenizer, max_len=64)
    enc = task.encoded("train").tensors
    multi_piece = 0
    for i, ex in enumerate(splits.train):
        n = int(enc["attention_mask"][i].sum())
        ids, labels = enc["input_ids"][i, :n].tolist(), enc["labels"][i, :n].tolist()
        assert ids[0] == tokenizer.token_to_id("[CLS]")
        assert ids[-1] == tokenizer.token_to_id("[SEP]")
        firsts = [p for p, y in enumerate(labels) if y != IGNORE]
        assert firsts == enc["first"][i].nonzero().flatten().tolist()
        assert len(firsts) == len(ex.tokens)  # nothing truncated at max_len 64
        # The pieces from one first sub-token to the next spell exactly that word.
        for w, (start, end) in enumerate(zip(firsts, [*firsts[1:], n - 1], strict=True)):
            pieces = [tokenizer.id_to_token(t) for t in ids[start:end]]
            assert "".join(pieces).replace("\u2581", "") == ex.tokens[w]
            assert splits.labels[labels[start]] == ex.tags[w]
            multi_piece += end - start > 1
        assert (enc["labels"][i, n:] == IGNORE).all()
    assert multi_piece > 0  # some words really are split (invented city names)


def test_gold_predictions_score_one_and_errors_lower_it(splits, tokenizer):
    task = TokenTask("ner", splits, tokenizer, max_len=64)
    gold = _gold_predictions(task, "validation")
    scores = task.score(gold, "validation")
    assert scores == {"entity_f1": 1.0, "accuracy": 1.0, "score": 1.0}
    # Cut the first multi-word entity one word short: entity F1 drops, accuracy by one word.
    o, labels = splits.labels.index("O"), splits.labels
    i, w = next(
        (i, w)
        for i, (_, ids) in enumerate(gold)
        for w in range(1, len(ids))
        if labels[ids[w]].startswith("I-")
    )
    wrong = [(j, list(ids)) for j, ids in gold]
    wrong[i][1][w] = o
    cut = task.score(wrong, "validation")
    assert cut["entity_f1"] < 1.0
    n_words = sum(len(ex.tokens) for ex in splits.validation)
    assert cut["accuracy"] == pytest.approx(1 - 1 / n_words)
    assert TokenTask("ner", splits, tokenizer, 64, metric="accuracy").score(wrong, "validation")[
        "score"
    ] == pytest.approx(cut["accuracy"])


def test_words_cut_by_truncation_are_predicted_o(splits, tokenizer):
    task = TokenTask("ner", splits, tokenizer, max_len=8)  # 6 sub-tokens per sentence
    gold = _gold_predictions(task, "test")
    tags = task.tags_of(gold, "test")
    cut_any = False
    for ex, pred in zip(splits.test, tags, strict=True):
        kept = len(task.encoded("test").references[splits.test.index(ex)][1])
        assert len(pred) == len(ex.tokens)
        assert pred[:kept] == list(ex.tags[:kept])
        assert pred[kept:] == ["O"] * (len(ex.tokens) - kept)
        cut_any |= kept < len(ex.tokens)
    assert cut_any
    assert task.encoded("test").tensors["input_ids"].shape[1] <= 8
    assert task.score(gold, "test")["accuracy"] < 1.0  # truncated entities are misses


def test_bad_examples_are_one_line_errors(tokenizer):
    bad_tag = Splits(
        [TokenExample(("Anna", "sings"), ("B-PER", "B-FOO"))],
        [TokenExample(("Anna",), ("B-PER",))],
        [TokenExample(("Anna",), ("B-PER",))],
        labels=["B-PER", "O"],
    )
    task = TokenTask("tags", bad_tag, tokenizer, max_len=16)
    with pytest.raises(DataError, match="tag 'B-FOO' outside the tag set") as err:
        task.encoded("train")
    assert "\n" not in str(err.value)
    no_o = Splits(bad_tag.train, bad_tag.validation, bad_tag.test, labels=["B-PER"])
    with pytest.raises(DataError, match="no 'O' tag"):
        TokenTask("tags", no_o, tokenizer, max_len=16)
    with pytest.raises(DataError, match="metric 'bleu' is not one of entity_f1, accuracy"):
        TokenTask("tags", bad_tag, tokenizer, max_len=16, metric="bleu")


@pytest.mark.parametrize("family", ["decoder", "encoder", "prefix_lm"])
def test_predict_and_a_few_training_steps_on_every_family(splits, tokenizer, family):
    torch.manual_seed(0)
    task = TokenTask("ner", splits, tokenizer, max_len=32)
    cfg = TransformerConfig(
        family=family, vocab_size=tokenizer.get_vocab_size(), max_seq_len=32,
        n_layer=1, d_model=32, n_head=2, d_ff=64,
    )  # fmt: skip
    backbone = build_model(cfg).backbone
    head = task.make_head(cfg)
    params = [*backbone.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    batch = next(iter(task.loader("train", batch_size=32, shuffle=True)))
    losses = []
    for _ in range(25):
        loss = task.loss(backbone, head, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]  # the labels are learnable: aligned with the inputs
    backbone.eval()
    preds = [p for b in task.loader("validation", 10) for p in task.predict(backbone, head, b)]
    refs = task.encoded("validation").references
    assert sorted(i for i, _ in preds) == list(range(len(refs)))
    assert all(len(ids) == len(refs[i][1]) for i, ids in preds)
    scores = task.score(preds, "validation")
    assert 0.0 <= scores["entity_f1"] <= 1.0 and scores["accuracy"] > 0.5
