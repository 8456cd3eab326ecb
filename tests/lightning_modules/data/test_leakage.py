"""No validation or test example of any task is read during pretraining."""

from __future__ import annotations

import pytest

from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import (
    PairExample,
    QAExample,
    Splits,
    TextExample,
    TokenExample,
)
from lightning_modules.data.leakage import (
    held_out_texts,
    normalise,
    remove_held_out,
    sentences,
)
from lightning_modules.data.texts import BUILTIN_TASKS, corpus_texts, task_splits
from lightning_modules.suite import build_suite
from lightning_modules.tasks import TASK_KINDS
from nas.config.nodes import plain
from tests.conftest import compose_config, need_shared_data


def _leaks(corpus: list[str], held_out: list[str]) -> list[str]:
    """Held-out texts still in ``corpus``: a sentence equal to one, or a document holding one."""
    corpus_sentences = {normalise(s) for doc in corpus for s in sentences(doc)}
    documents = [f" {normalise(doc)} " for doc in corpus]
    found = []
    for text in held_out:
        parts = sentences(text)
        if len(parts) == 1 and normalise(parts[0]) in corpus_sentences:
            found.append(text)
        elif len(parts) > 1 and any(f" {normalise(text)} " in d for d in documents):
            found.append(text)
    return found


def test_normalise_ignores_case_punctuation_and_spacing():
    assert normalise("The film , wasn't  GOOD!") == normalise("the film, wasn t good")


def test_a_held_out_sentence_is_cut_out_and_the_rest_of_its_document_stays():
    corpus = ["Anna lives in Oslo. The film was not bad. Bo works as a baker.", "Nothing here."]
    kept, removed = remove_held_out(corpus, ["the film was NOT bad"])
    assert kept == ["Anna lives in Oslo. Bo works as a baker.", "Nothing here."]
    assert removed == 1


def test_a_held_out_passage_drops_the_whole_document_that_holds_it():
    context = "Anna lives in Oslo. Bo works as a baker."
    corpus = [f"Cy is tall. {context} Dee is short.", "Anna lives in Oslo. Cy is tall."]
    kept, removed = remove_held_out(corpus, [context])
    # The second document shares one fact, not the passage: world knowledge, kept.
    assert kept == ["Anna lives in Oslo. Cy is tall."]
    assert removed == 4


def test_words_match_whole_not_inside_longer_words():
    kept, removed = remove_held_out(
        ["Joanna lives in Oslo. Bo works as a baker. Cy sings."],
        ["Anna lives in Oslo. Bo works as a baker."],
    )
    assert removed == 0 and len(kept) == 1


def test_held_out_texts_cover_every_example_kind():
    splits = Splits(
        train=[TextExample("train text", 0)],
        validation=[
            TextExample("a review", 1, text_pair="its pair"),
            TokenExample(("Anna", "sings", "."), ("B-PER", "O", "O")),
        ],
        test=[
            PairExample("a source", "a target"),
            QAExample("q1", "who?", "A context. Two sentences.", (("A", 0),)),
        ],
    )
    assert held_out_texts(splits) == [
        "a review",
        "its pair",
        "Anna sings .",
        "a source",
        "a target",
        "A context. Two sentences.",
    ]


def test_the_builtin_corpus_would_leak_without_the_filter_and_does_not_with_it():
    corpus = corpus_texts({"type": "builtin", "n_sentences": 20000}, seed=0)
    held_out = [t for name in BUILTIN_TASKS for t in held_out_texts(task_splits(name, {}, 0))]
    # The corpus draws reviews, tagged sentences and stories from the task generators: copies
    # of held-out examples are there before filtering (so this test can fail).
    assert len(_leaks(corpus, held_out)) > 20
    kept, removed = remove_held_out(corpus, held_out)
    assert removed > 20
    assert _leaks(kept, held_out) == []
    # Only the copies go: the corpus keeps nearly all of its sentences.
    assert sum(len(sentences(d)) for d in kept) > 0.98 * sum(len(sentences(d)) for d in corpus)


def test_target_language_stories_are_filtered_too():
    """Stories told in the target language can repeat a held-out translation's target side."""
    corpus = corpus_texts({"type": "builtin", "n_sentences": 20000, "target_stories": 1.0}, 0)
    splits = task_splits("translation", {}, 0)
    held_out = held_out_texts(splits)
    targets = [e.target for e in [*splits.validation, *splits.test]]
    assert _leaks(corpus, targets)  # so this test can fail
    kept, _ = remove_held_out(corpus, held_out)
    assert _leaks(kept, held_out) == []


def test_a_bad_target_stories_share_names_the_setting():
    with pytest.raises(DataError, match="data.corpus.target_stories"):
        corpus_texts({"type": "builtin", "target_stories": "half"}, seed=0)


def test_build_suite_pretrains_on_the_filtered_corpus():
    data = {"seed": 0, "vocab_size": 384, "seq_len": 32, "corpus": {"n_sentences": 20000}}
    tasks = {
        "sentiment": {"kind": "sequence", "max_len": 48, "source": {"type": "builtin"}},
        "ner": {"kind": "token", "max_len": 48, "source": {"type": "builtin"}},
    }
    suite = build_suite(data, tasks)
    assert suite.held_out_removed > 0


@pytest.mark.slow
def test_real_suite_corpus_holds_no_held_out_example():
    """WikiText-2 against every real task of experiment=real_suite, as that config reads them.

    Runs wherever the shared data is found (``tests.conftest.shared_data_places``); skips with
    where it looked otherwise, and fails under CI=true.
    """
    data_root = need_shared_data()
    cfg = compose_config("search", [f"paths.data={data_root}", "experiment=real_suite"])
    data, tasks = plain(cfg.data), plain(cfg.tasks)
    corpus = corpus_texts(data["corpus"], data["seed"])
    held_out = [
        text
        for name, task in tasks.items()
        for text in held_out_texts(
            task_splits(
                name, task["source"], data["seed"], task["kind"], TASK_KINDS[task["kind"]].example
            )
        )
    ]
    kept, _ = remove_held_out(corpus, held_out)
    assert len(kept) > 0.99 * len(corpus)
    assert _leaks(kept, held_out) == []
