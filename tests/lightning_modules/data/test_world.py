"""The built-in synthetic world: determinism, exact spans, disjoint splits, hard labels."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from lightning_modules.data.examples import PairExample, QAExample, TextExample, TokenExample
from lightning_modules.data.world import (
    COLOURS,
    FOODS,
    NER_LABELS,
    OBJECT_SUFFIX,
    PLURAL_SUFFIX,
    TENSE_SUFFIXES,
    VERBS,
    VERDICTS,
    World,
    bag_of_words_sentiment,
    sentiment_rule,
)

SMALL = {"n_train": 60, "n_val": 20, "n_test": 20}


@pytest.fixture(scope="module")
def world() -> World:
    return World(0)


@pytest.fixture(scope="module")
def suite(world: World) -> dict:
    return {
        "corpus": world.corpus(),
        "qa": world.qa(),
        "sentiment": world.sentiment(),
        "ner": world.ner(),
        "translation": world.translation(),
    }


def _all(splits) -> list:
    return splits.train + splits.validation + splits.test


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[A-Za-z0-9]+", text)}


def _small_suite(seed: int) -> dict:
    w = World(seed)
    return {
        "corpus": w.corpus(300),
        "qa": w.qa(**SMALL),
        "sentiment": w.sentiment(**SMALL),
        "ner": w.ner(**SMALL),
        "translation": w.translation(**SMALL),
    }


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b, c = _small_suite(0), _small_suite(0), _small_suite(1)
    assert a == b
    for name in a:
        assert a[name] != c[name], name
    assert World(0).people != World(1).people
    assert World(0).cities != World(1).cities
    assert World(0).lexicon != World(1).lexicon


def test_methods_do_not_depend_on_call_order() -> None:
    fresh = World(3).qa(**SMALL)
    used = World(3)
    used.corpus(200)
    used.sentiment(**SMALL)
    assert used.qa(**SMALL) == fresh


def test_test_and_validation_stay_when_train_size_changes() -> None:
    w = World(0)
    small, large = w.sentiment(10, 20, 30), w.sentiment(50, 20, 30)
    assert small.test == large.test and small.validation == large.validation


def test_sizes_types_and_labels(suite: dict) -> None:
    expected = {
        "qa": (2000, 300, 300, QAExample, []),
        "sentiment": (2000, 400, 400, TextExample, ["negative", "positive"]),
        "ner": (2000, 300, 300, TokenExample, NER_LABELS),
        "translation": (2000, 300, 300, PairExample, []),
    }
    for name, (n_train, n_val, n_test, kind, labels) in expected.items():
        splits = suite[name]
        assert (len(splits.train), len(splits.validation), len(splits.test)) == (
            n_train,
            n_val,
            n_test,
        ), name
        assert all(isinstance(ex, kind) for ex in _all(splits)), name
        assert splits.labels == labels, name
    assert NER_LABELS == ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]


def test_target_stories_tell_some_stories_in_the_target_language() -> None:
    world = World(0)
    english = world.corpus(3000)
    # 0 is the English-only corpus exactly: the choice draws from a stream of its own.
    assert world.corpus(3000, target_stories=0.0) == english
    mixed = world.corpus(3000, target_stories=0.5)
    targets = {ex.target for ex in world.translation().train}
    sources = {ex.source for ex in world.translation().train}

    # Words that only the target language has: absent from the English corpus, common in the mix.
    target_words = {w for t in targets for w in t.lower().rstrip(".").split()}
    english_words = {w for t in sources for w in t.lower().rstrip(".").split()}
    only_target = target_words - english_words
    in_mixed = sum(w in only_target for doc in mixed for w in doc.lower().split())
    in_english = sum(w in only_target for doc in english for w in doc.lower().split())
    assert in_mixed > 20 * max(in_english, 1)


def test_target_stories_outside_0_1_raise() -> None:
    with pytest.raises(ValueError, match="target_stories"):
        World(0).corpus(300, target_stories=1.5)


def test_invalid_sizes_raise() -> None:
    with pytest.raises(ValueError):
        World(0).qa(n_train=0)
    with pytest.raises(ValueError):
        World(0).corpus(0)


def test_splits_do_not_overlap(suite: dict) -> None:
    keys = {
        "qa": lambda ex: ex.context,
        "sentiment": lambda ex: ex.text,
        "ner": lambda ex: ex.tokens,
        "translation": lambda ex: ex.source,
    }
    for name, key in keys.items():
        splits = suite[name]
        train = {key(ex) for ex in splits.train}
        val = {key(ex) for ex in splits.validation}
        test = {key(ex) for ex in splits.test}
        assert not train & val and not train & test and not val & test, name
    qa = suite["qa"]
    groups = [{ex.group for ex in part} for part in (qa.train, qa.validation, qa.test)]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]


def test_qa_answers_are_exact_spans(suite: dict) -> None:
    qa = suite["qa"]
    ids = [ex.id for ex in _all(qa)]
    assert len(ids) == len(set(ids))
    for ex in _all(qa):
        assert ex.group and ex.question.endswith("?")
        assert len(ex.answers) == 1
        text, start = ex.answers[0]
        assert ex.context[start : start + len(text)] == text
        n_facts = ex.context.count(". ") + 1
        assert 4 <= n_facts <= 8, ex.context


def test_qa_answer_needs_the_context(world: World, suite: dict) -> None:
    qa = suite["qa"]
    categories = [world.people, world.cities, world.organisations, list(COLOURS), list(FOODS)]
    for ex in _all(qa):
        answer = ex.answers[0][0]
        if answer.isdigit():  # an age: another age is stated
            candidates = set(re.findall(r"\b\d+\b", ex.context))
        else:
            category = next(c for c in categories if answer in c)
            candidates = {v for v in category if re.search(rf"\b{re.escape(v)}\b", ex.context)}
        assert answer in candidates and len(candidates) >= 2, ex
    # The question alone does not give the answer: memorising train answers fails on test.
    memory = {ex.question: ex.answers[0][0] for ex in qa.train}
    hits = sum(memory.get(ex.question) == ex.answers[0][0] for ex in qa.test)
    assert hits / len(qa.test) < 0.1
    # Several relations and both question kinds are asked.
    starts = Counter(ex.question.split()[0] for ex in _all(qa))
    assert {"Who", "Where", "What", "How", "Which"} <= set(starts)


def test_sentiment_is_balanced_and_compositional(suite: dict) -> None:
    sentiment = suite["sentiment"]
    for part in (sentiment.train, sentiment.validation, sentiment.test):
        counts = Counter(ex.label for ex in part)
        assert abs(counts[0] - counts[1]) <= 1
    examples = _all(sentiment)
    assert all(sentiment_rule(ex.text) == ex.label for ex in examples)
    bow = sum(bag_of_words_sentiment(ex.text) == ex.label for ex in examples) / len(examples)
    assert bow < 0.8
    texts = " ".join(ex.text.lower() for ex in examples)
    for marker in (" not ", " never ", " but ", "; however, ", "although ", "it is not true that"):
        assert marker in texts, marker


def test_sentiment_rule_by_hand() -> None:
    assert sentiment_rule("The soup was very good.") == 1
    assert sentiment_rule("The soup was not good.") == 0
    assert sentiment_rule("It is not true that the soup was not good.") == 1
    assert sentiment_rule("The soup was great but the bread was awful.") == 0
    assert sentiment_rule("The bread was awful but the soup was great.") == 1
    assert sentiment_rule("Although the soup was great, the bread was awful.") == 0
    assert sentiment_rule("The soup was great, although the bread was awful.") == 1
    assert sentiment_rule("We did not like the cake; however, the tea was nice.") == 1
    assert bag_of_words_sentiment("The soup was not good.") == 1


def test_ner_tags_are_valid_iob2(suite: dict) -> None:
    ner = suite["ner"]
    seen: dict[str, set[str]] = {}
    spans: Counter = Counter()
    for ex in _all(ner):
        assert len(ex.tokens) == len(ex.tags) and ex.tokens
        previous = "O"
        for token, tag in zip(ex.tokens, ex.tags, strict=True):
            assert tag in NER_LABELS
            if tag.startswith("I-"):
                assert previous in (f"B-{tag[2:]}", f"I-{tag[2:]}"), ex
            if tag != "O":
                seen.setdefault(token, set()).add(tag[2:])
            previous = tag
        for i, tag in enumerate(ex.tags):
            if tag.startswith("I-") and (
                i + 1 == len(ex.tags) or not ex.tags[i + 1].startswith("I")
            ):
                spans[tag[2:]] += 1
    assert {"PER", "LOC", "ORG"} <= set(spans)  # multi-word entities of every type
    assert any({"PER", "LOC"} <= kinds for kinds in seen.values())  # "Holm": person and place
    assert any({"LOC", "ORG"} <= kinds for kinds in seen.values())  # "Varen": place and bank


def test_translation_word_order_and_morphology(world: World, suite: dict) -> None:
    pairs = _all(suite["translation"])
    verb_stems = {world.lexicon[v] for v in VERBS}
    verb_forms = {s + x for s in verb_stems for x in TENSE_SUFFIXES.values()}
    english_verbs = {w for forms in VERBS.values() for w in forms}
    assert all(p.target.rstrip(".").split()[-1] in verb_forms for p in pairs)
    english_final = sum(p.source.rstrip(".").split()[-1] in english_verbs for p in pairs)
    assert english_final / len(pairs) < 0.3
    for p in pairs:
        target = p.target.lower().split()
        assert "the" not in target and "a" not in target
        for name in world.people:  # names stay as they are
            if re.search(rf"\b{name}\b", p.source):
                assert name in p.target, p
    words = " ".join(p.target for p in pairs).split()
    assert any(w.endswith(PLURAL_SUFFIX + OBJECT_SUFFIX) for w in words)
    assert OBJECT_SUFFIX in words  # the object marker after a name
    again = World(0).translation()
    assert again == suite["translation"]


def test_corpus_covers_the_task_vocabulary(suite: dict) -> None:
    corpus = suite["corpus"]
    sentences = sum(len(re.findall(r"[.?](?: |$)", doc)) for doc in corpus)
    # Reviewers' verdicts come on top of the requested sentences.
    verdicts = sum(doc.count(v) for doc in corpus for v in VERDICTS)
    assert 1500 < verdicts < 6000
    assert 20000 <= sentences - verdicts <= 20100
    known = set().union(*(_words(doc) for doc in corpus))
    needed: set[str] = set()
    for ex in _all(suite["qa"]):
        needed |= _words(ex.question.replace("'s ", " ")) | _words(ex.context)
    for ex in _all(suite["sentiment"]):
        needed |= _words(ex.text)
    for ex in _all(suite["ner"]):
        needed |= _words(" ".join(ex.tokens))
    for ex in _all(suite["translation"]):
        needed |= _words(ex.source)
    assert needed - known <= {"s"}
    vocabulary = set()
    for doc in corpus:
        vocabulary.update(doc.split())
    for ex in _all(suite["translation"]):
        vocabulary.update(ex.source.split() + ex.target.split())
    assert 300 <= len(vocabulary) <= 1500


def test_whole_suite_is_fast() -> None:
    start = time.perf_counter()
    w = World(7)
    w.corpus()
    w.qa()
    w.sentiment()
    w.ner()
    w.translation()
    assert time.perf_counter() - start < 4.0  # about 0.6 s; generous for busy machines
