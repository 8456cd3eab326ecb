"""Readers of real formats, seeded splits and file sources: real shared data and broken files."""

from __future__ import annotations

import collections
import gzip
import json

import pytest

from lightning_modules.data import readers
from lightning_modules.data.errors import DataError
from lightning_modules.data.examples import QAExample, TextExample
from lightning_modules.data.sources import corpus_from_source, task_splits_from_source
from lightning_modules.data.splitting import limit, split_off
from lightning_modules.data.texts import corpus_texts, task_splits
from lightning_modules.suite import build_suite
from lightning_modules.tasks import TASK_KINDS
from nas.config.nodes import plain
from tests.conftest import SHARED_DATA, compose_config, need_shared_data


def shared(rel: str):
    """A folder of the shared data, or skip the test with the reason (fail under CI=true)."""
    return need_shared_data(rel)


def one_line_error(fn, *args, **kwargs) -> str:
    """Call ``fn`` expecting a DataError; return its message after checking it is one line."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def entities(sentences) -> collections.Counter:
    return collections.Counter(t[2:] for s in sentences for t in s.tags if t.startswith("B-"))


# ------------------------------------------------------------------- real files: SOURCE.md counts


def test_squad_reader_matches_source_counts():
    folder = shared("qa/squadshifts-new_wiki")
    qs = readers.read_squad(folder / "new_wiki_v1.0.json")
    assert len(qs) == 7938
    assert sum(len(q.answers) for q in qs) == 22794
    assert len({q.context for q in qs}) == 1581
    assert len({q.group for q in qs}) == 48
    assert len({q.id for q in qs}) == 7938
    q = qs[0]
    assert all(q.context[s : s + len(t)] == t for t, s in q.answers)


def test_uner_reader_matches_source_counts():
    folder = shared("ner/uner-en-ewt")
    dev = readers.read_conll(folder / "en_ewt-ud-dev.iob2", token_col=1, tag_col=2)
    test = readers.read_conll(folder / "en_ewt-ud-test.iob2", token_col=1, tag_col=2)
    assert (len(dev), sum(len(s.tokens) for s in dev)) == (2001, 25149)
    assert (len(test), sum(len(s.tokens) for s in test)) == (2077, 25097)
    assert entities(dev) == {"LOC": 399, "ORG": 224, "PER": 343}
    assert entities(test) == {"LOC": 317, "ORG": 322, "PER": 449}
    # Comment lines (# sent_id, # text) are dropped, tokens are column 1 (not the index).
    assert dev[0].tokens[:4] == ("where", "can", "I", "get")
    assert dev[0].tags[6:8] == ("B-LOC", "I-LOC")


def test_wnut17_reader_matches_source_counts_and_keeps_hash_tokens():
    folder = shared("ner/wnut17")
    counts = {
        "wnut17train.conll": (3394, 1975),
        "emerging.dev.conll": (1009, 836),
        "emerging.test.annotated": (1287, 1079),
    }
    for name, (n_sent, n_ent) in counts.items():
        sentences = readers.read_conll(folder / name)
        assert (len(sentences), sum(entities(sentences).values())) == (n_sent, n_ent), name
    # The dev file has 22 lines that start with '#': all are real tokens ("#<TAB>O"), not comments.
    dev = readers.read_conll(folder / "emerging.dev.conll")
    assert sum(t.startswith("#") for s in dev for t in s.tokens) == 22


def test_polarity_and_sst2_match_source_counts():
    mr = shared("sentiment/mr-sentence-polarity")
    records = readers.read_polarity([mr / "rt-polarity.pos", mr / "rt-polarity.neg"])
    assert collections.Counter(r.label for r in records) == {"pos": 5331, "neg": 5331}
    examples, labels = readers.label_texts(records)
    assert labels == ["neg", "pos"] and {e.label for e in examples} == {0, 1}
    assert not any(r.text.endswith(" ") for r in records)
    sst = shared("sentiment/sst2")
    train = readers.read_classification(sst / "train.tsv", text="sentence")
    dev = readers.read_classification(sst / "dev.tsv", text="sentence")
    assert (len(train), len(dev)) == (60614, 6735)
    examples, labels = readers.label_texts(train, ["negative", "positive"])
    assert labels == ["negative", "positive"] and examples[0].label == 1  # 0/1 taken as indices


def test_parallel_and_summarization_match_source_counts():
    m30k = shared("translation/multi30k")
    for split, n in (("train", 29000), ("val", 1014), ("test_2016_flickr", 1000)):
        pairs = readers.read_parallel(m30k / f"{split}.en.gz", m30k / f"{split}.de.gz")
        assert len(pairs) == n, split
    first = readers.read_parallel(m30k / "val.en.gz", m30k / "val.de.gz")[0]
    assert first.source == "A group of men are loading cotton onto a truck"
    assert first.target == "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen"
    sci = shared("summarization/scitldr-A")
    for split, n in (("train", 1992), ("dev", 619), ("test", 618)):
        pairs = readers.read_parallel_jsonl(sci / f"{split}.jsonl")
        assert len(pairs) == n, split
        assert all(p.source and p.target for p in pairs)


def test_pretraining_corpora_match_source_counts():
    wiki = shared("pretrain/wikitext-2")
    for name, n_lines, n_tokens in (("valid.txt", 3760, 217646), ("test.txt", 4358, 245569)):
        lines = readers.read_lines(wiki / name)
        assert len(lines) == n_lines
        assert sum(len(line.split()) + 1 for line in lines) == n_tokens  # words + <eos> per line
        # Headings are " = Title = " / " = = Section = = "; a table legend such as
        # " = National record " (test.txt) opens with "=" but is text, and stays.
        headings = sum(
            1 for ln in lines if ln.strip().startswith("= ") and ln.strip().endswith(" =")
        )
        dropped = readers.read_corpus(wiki / name)
        kept = readers.read_corpus(wiki / name, headings="keep")
        assert len(kept) - len(dropped) == headings
        assert len(dropped) == sum(1 for line in lines if line.strip()) - headings
    valid = readers.read_corpus(wiki / "valid.txt", detokenize="wikitext")
    assert valid[0].startswith("Homarus gammarus, known as the European lobster")
    assert not any(" @-@ " in d or " @,@ " in d for d in valid)
    shakespeare = shared("pretrain/tinyshakespeare")
    assert len(readers.read_text(shakespeare / "input.txt")) == 1115394
    assert len(readers.read_lines(shakespeare / "input.txt")) == 40000
    speeches = readers.read_corpus(shakespeare / "input.txt", format="paragraphs")
    assert speeches[0] == "First Citizen:\nBefore we proceed any further, hear me speak."


# ----------------------------------------------------------------------------- formats, by hand


def test_csv_tsv_jsonl_variants(tmp_path):
    csv_file = tmp_path / "a.csv"
    csv_file.write_text('id,review,other,label\n1,"good, really",x,pos\n\n2,bad,y,neg\n')
    records = readers.read_classification(csv_file, text="review", label=3, text_pair="other")
    assert [(r.text, r.label, r.text_pair) for r in records] == [
        ("good, really", "pos", "x"),
        ("bad", "neg", "y"),
    ]
    assert records[1].where == f"{csv_file}:4"
    tsv = tmp_path / "b.tsv"
    tsv.write_text('"quoted" text\t1\nplain\t0\n')
    records = readers.read_classification(tsv, text=0, label=1, header=False)
    assert [r.text for r in records] == ['"quoted" text', "plain"]  # TSV: no quoting (GLUE)
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"x": {"t": "hi"}, "y": 2}\n\n{"x": {"t": "yo"}, "y": 10}\n')
    records = readers.read_classification(jl, text="x.t", label="y")
    examples, labels = readers.label_texts(records)
    assert labels == ["2", "10"]  # numeric labels sort as numbers
    assert [e.label for e in examples] == [0, 1]


def test_conll_iob1_bioes_docstart_comments(tmp_path):
    f = tmp_path / "iob1.conll"
    f.write_text(
        "-DOCSTART- -X- -X- O\n\n"
        "# a comment\n"
        "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\n"
        "Peter NNP I-NP I-PER\nPaul NNP I-NP B-PER\n"
    )
    [sentence] = readers.read_conll(f, scheme="iob1")
    assert sentence.tokens == ("EU", "rejects", "German", "Peter", "Paul")
    assert sentence.tags == ("B-ORG", "O", "B-MISC", "B-PER", "B-PER")
    g = tmp_path / "bioes.tsv"
    g.write_text("New\tB-LOC\nYork\tE-LOC\nis\tO\nbig\tO\nAnn\tS-PER\n\nnext\tO\n")
    first, second = readers.read_conll(g, scheme="bioes")
    assert first.tags == ("B-LOC", "I-LOC", "O", "O", "B-PER")
    assert second.tokens == ("next",)


def test_polarity_encoding_option(tmp_path):
    f = tmp_path / "rt.pos"
    f.write_bytes("fine\nun film charmant et déjà culte\n".encode("latin-1"))
    message = one_line_error(readers.read_polarity, [f])
    assert f"{f}:2:" in message and "latin-1" in message
    records = readers.read_polarity([f], encoding="latin-1")
    assert records[1].text == "un film charmant et déjà culte" and records[1].label == "pos"


def test_parallel_gzip_and_jsonl(tmp_path):
    src, tgt = tmp_path / "a.en.gz", tmp_path / "a.de"
    src.write_bytes(gzip.compress(b"one\n\nthree\n"))
    tgt.write_text("eins\nzwei\ndrei\n")
    pairs = readers.read_parallel(src, tgt)
    assert [(p.source, p.target) for p in pairs] == [("one", "eins"), ("three", "drei")]
    jl = tmp_path / "t.jsonl"
    jl.write_text(json.dumps({"translation": {"en": "hi", "de": "hallo"}}) + "\n")
    [pair] = readers.read_parallel_jsonl(jl, "translation.en", "translation.de")
    assert (pair.source, pair.target) == ("hi", "hallo")


# --------------------------------------------------------------------------- broken files: errors


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.json"
    message = one_line_error(readers.read_squad, missing)
    assert str(missing) in message and "no such file" in message


def test_malformed_json_names_line_and_column(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"data": [\n  {"title": "x",, "paragraphs": []}\n]}\n')
    message = one_line_error(readers.read_squad, f)
    assert message.startswith(f"{f}:2:") and "malformed JSON" in message
    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"text": "a", "label": "x"}\n{"text": "b" "label": "y"}\n')
    assert one_line_error(readers.read_classification, jl).startswith(f"{jl}:2:")


def squad_file(tmp_path, start: int):
    doc = {
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": "Paris is the capital of France.",
                        "qas": [
                            {
                                "id": "q-17",
                                "question": "Capital?",
                                "answers": [{"text": "Paris", "answer_start": start}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    f = tmp_path / "squad.json"
    f.write_text(json.dumps(doc))
    return f


def test_answer_not_in_context_names_question(tmp_path):
    assert readers.read_squad(squad_file(tmp_path, 0))[0].answers == (("Paris", 0),)
    f = squad_file(tmp_path, 3)
    message = one_line_error(readers.read_squad, f)
    assert str(f) in message and "'q-17'" in message and "answer_start 3" in message


def test_unknown_tag_scheme_names_file_and_line(tmp_path):
    f = tmp_path / "x.conll"
    f.write_text("Ann\tB-PER\nlives\tO\nhere\tX-PER\n")
    message = one_line_error(readers.read_conll, f)
    assert message.startswith(f"{f}:3:") and "'X-PER'" in message and "IOB2" in message
    g = tmp_path / "bioes.conll"
    g.write_text("Ann\tS-PER\n")
    assert one_line_error(readers.read_conll, g, scheme="iob1").startswith(f"{g}:1:")
    assert "unknown tag scheme 'bilou'" in one_line_error(readers.read_conll, g, scheme="bilou")
    h = tmp_path / "short.conll"
    h.write_text("Ann B-PER\nlonely\n")
    assert one_line_error(readers.read_conll, h).startswith(f"{h}:2:")


def test_mismatched_parallel_line_counts(tmp_path):
    a, b = tmp_path / "x.en", tmp_path / "x.de"
    a.write_text("one\ntwo\nthree\n")
    b.write_text("eins\nzwei\n")
    message = one_line_error(readers.read_parallel, a, b)
    assert f"{a} has 3 lines" in message and f"{b} has 2" in message


def test_label_column_missing_and_short_rows(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("text,sentiment\ngood,pos\n")
    message = one_line_error(readers.read_classification, f)
    assert message.startswith(f"{f}:1:") and "label column 'label'" in message
    g = tmp_path / "y.tsv"
    g.write_text("text\tlabel\ngood\tpos\nno label here\n")
    assert one_line_error(readers.read_classification, g).startswith(f"{g}:3:")
    h = tmp_path / "z.jsonl"
    h.write_text('{"text": "good"}\n')
    assert one_line_error(readers.read_classification, h).startswith(f"{h}:1: no label key")


def test_label_out_of_range_and_unknown_label(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(
        '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", "label": 2}\n'
    )
    records = readers.read_classification(f)
    message = one_line_error(readers.label_texts, records, ["negative", "positive"])
    assert message.startswith(f"{f}:3: label 2 out of range 0..1")
    g = tmp_path / "y.csv"
    g.write_text("text,label\na,negative\nb,neutral\n")
    message = one_line_error(readers.label_texts, readers.read_classification(g), ["negative"])
    assert message.startswith(f"{g}:3: unknown label 'neutral'")


def test_empty_split_is_an_error(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)))
    test.write_text("text,label\n\n")
    source = {"type": "classification", "train": str(train), "test": str(test)}
    message = one_line_error(task_splits_from_source, "cls", source, 0, "sequence", "text")
    assert "split 'test' has no examples" in message and str(test) in message
    # Too few examples for the fractions: the carved split would be empty.
    small = {"type": "classification", "path": str(train), "fractions": {"validation": 0.01}}
    message = one_line_error(task_splits_from_source, "cls", small, 0)
    assert "split 'validation' would be empty" in message


def test_source_config_mistakes(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("text,label\na,0\n")
    typo = {"type": "classification", "path": str(f), "fractons": {"test": 0.2}}
    assert "unknown option 'fractons'" in one_line_error(task_splits_from_source, "c", typo, 0)
    wrong_kind = {"type": "conll", "path": str(f)}
    message = one_line_error(task_splits_from_source, "c", wrong_kind, 0, "sequence", "text")
    assert "gives token examples but kind 'sequence' needs text" in message
    message = one_line_error(task_splits, "c", {"type": "sqad", "path": str(f)}, 0)
    assert "unknown source type 'sqad'" in message and "squad" in message
    both = {"type": "classification", "path": str(f), "train": str(f)}
    assert "either path or train" in one_line_error(task_splits_from_source, "c", both, 0)


# -------------------------------------------------------------------------------- seeded splits


def qa_pool(n_groups: int = 12, per_group: int = 5) -> list[QAExample]:
    return [
        QAExample(f"{g}-{i}", "q?", f"context {g}", (("context", 0),), group=f"article-{g}")
        for g in range(n_groups)
        for i in range(per_group)
    ]


def test_group_split_is_deterministic_and_leak_free():
    pool = qa_pool()
    fractions = {"validation": 0.2, "test": 0.2}
    a = split_off(pool, fractions, 0, "task 'qa'", group=lambda e: e.group)
    b = split_off(list(reversed(pool)), fractions, 0, "task 'qa'", group=lambda e: e.group)
    c = split_off(pool, fractions, 1, "task 'qa'", group=lambda e: e.group)
    groups = {s: {e.group for e in xs} for s, xs in a.items()}
    assert not groups["train"] & groups["validation"]
    assert not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    assert sum(len(xs) for xs in a.values()) == len(pool)
    # The same seed gives the same split whatever the file order; another seed another split.
    assert {s: sorted(e.id for e in xs) for s, xs in a.items()} == {
        s: sorted(e.id for e in xs) for s, xs in b.items()
    }
    assert groups != {s: {e.group for e in xs} for s, xs in c.items()}


def test_stratified_split_keeps_label_shares():
    pool = [TextExample(f"t{i}", int(i % 4 == 0)) for i in range(400)]  # 100 positives
    out = split_off(pool, {"validation": 0.1, "test": 0.2}, 3, "x", stratify=lambda e: e.label)
    assert [len(out[s]) for s in ("train", "validation", "test")] == [280, 40, 80]
    assert [sum(e.label for e in out[s]) for s in ("train", "validation", "test")] == [70, 10, 20]


def test_limit_is_a_seeded_sample_in_order():
    xs = list(range(100))
    assert limit(xs, 10, 0, "a") == limit(xs, 10, 0, "a")
    assert limit(xs, 10, 0, "a") != limit(xs, 10, 1, "a")
    assert limit(xs, 10, 0, "a") == sorted(limit(xs, 10, 0, "a"))
    assert limit(xs, None, 0, "a") is xs and limit(xs, 500, 0, "a") is xs


def test_real_squad_split_by_article():
    folder = shared("qa/squadshifts-new_wiki")
    source = {"type": "squad", "root": str(folder), "path": "new_wiki_v1.0.json"}
    splits = task_splits_from_source("qa", source, 0, "span", "qa")
    groups = {s: {e.group for e in getattr(splits, s)} for s in ("train", "validation", "test")}
    assert not groups["train"] & (groups["validation"] | groups["test"])
    assert not groups["validation"] & groups["test"]
    sizes = [len(splits.train), len(splits.validation), len(splits.test)]
    assert sum(sizes) == 7938 and all(700 < n < 1100 for n in sizes[1:])
    again = task_splits_from_source("qa", source, 0, "span", "qa")
    assert [e.id for e in again.validation] == [e.id for e in splits.validation]
    limited = task_splits_from_source("qa", {**source, "n_val": 50}, 0, "span", "qa")
    assert len(limited.validation) == 50
    assert {e.id for e in limited.validation} <= {e.id for e in splits.validation}


def test_real_uner_official_test_and_seeded_validation():
    folder = shared("ner/uner-en-ewt")
    source = {
        "type": "conll",
        "root": str(folder),
        "train": "en_ewt-ud-dev.iob2",
        "test": "en_ewt-ud-test.iob2",
        "token_col": 1,
        "tag_col": 2,
        "fractions": {"validation": 0.1},
    }
    splits = task_splits_from_source("ner", source, 0, "token", "token")
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (1801, 200, 2077)
    assert splits.labels == ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]


# ------------------------------------------------------------------------------------ hub source


def test_hf_source_with_local_json(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    f = tmp_path / "reviews.jsonl"
    rows = [{"sentence": f"film {i}", "stars": "good" if i % 3 else "bad"} for i in range(30)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = {
        "type": "hf",
        "path": "json",
        "data_files": {"train": str(f)},
        "splits": {"train": "train"},
        "columns": {"text": "sentence", "label": "stars"},
        "fractions": {"validation": 0.2, "test": 0.2},
        "cache_dir": str(tmp_path / "hf-cache"),
    }
    splits = task_splits_from_source("reviews", source, 0, "sequence", "text")
    assert splits.labels == ["bad", "good"]
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (18, 6, 6)
    assert {e.text for e in splits.train + splits.validation + splits.test} == {
        r["sentence"] for r in rows
    }
    bad = {**source, "data_files": {"train": str(tmp_path / "absent.jsonl")}}
    message = one_line_error(task_splits_from_source, "reviews", bad, 0, "sequence", "text")
    assert "hf dataset 'json'" in message and "cannot load" in message
    missing_col = {**source, "columns": {"text": "review", "label": "stars"}}
    message = one_line_error(task_splits_from_source, "reviews", missing_col, 0, "sequence", "text")
    assert "no column 'review'" in message and "record 0" in message
    corpus = corpus_from_source(
        {
            "type": "hf",
            "path": "json",
            "data_files": {"train": str(f)},
            "column": "sentence",
            "cache_dir": str(tmp_path / "hf-cache"),
        }
    )
    assert corpus[:2] == ["film 0", "film 1"]
    # SQuAD as the hub lays it out: answers as {text: [...], answer_start: [...]}, title = group.
    squad = tmp_path / "squad.jsonl"
    qa_rows = [
        {
            "id": f"q{i}",
            "title": f"article-{i % 10}",
            "context": f"Ann {i} lives in Oslo.",
            "question": "Where?",
            "answers": {"text": ["Oslo", "Oslo"], "answer_start": [len(f"Ann {i} lives in ")] * 2},
        }
        for i in range(40)
    ]
    squad.write_text("".join(json.dumps(r) + "\n" for r in qa_rows))
    qa_source = {
        "type": "hf",
        "path": "json",
        "data_files": {"train": str(squad)},
        "cache_dir": str(tmp_path / "hf-cache"),
    }
    splits = task_splits_from_source("qa", qa_source, 0, "span", "qa")
    groups = [{e.group for e in getattr(splits, s)} for s in ("train", "validation", "test")]
    assert len(groups[1]) == len(groups[2]) == 1 and len(groups[0]) == 8  # whole articles
    assert splits.train[0].answers[0][0] == "Oslo"


# ---------------------------------------------------------------------------------- end to end


def test_build_suite_on_real_data(monkeypatch):
    """A real-data suite: WikiText corpus, MR polarity and SQuADShifts, encoded for fine-tuning."""
    data = SHARED_DATA
    shared("pretrain/wikitext-2"), shared("sentiment/mr-sentence-polarity")
    shared("qa/squadshifts-new_wiki")
    monkeypatch.chdir(data.parent)  # relative roots resolve against the working directory
    data_cfg = {
        "seed": 0,
        "vocab_size": 600,
        "seq_len": 32,
        "val_blocks": 4,
        "tokenizer_task_texts": True,
        "corpus": {
            "type": "text",
            "root": "data/pretrain/wikitext-2",
            "path": ["valid.txt"],
            "detokenize": "wikitext",
            "max_documents": 60,
        },
    }
    limits = {"n_train": 48, "n_val": 16, "n_test": 16}
    tasks = {
        "sentiment": {
            "kind": "sequence",
            "max_len": 48,
            "source": {
                "type": "polarity",
                "root": "data/sentiment/mr-sentence-polarity",
                "path": {"negative": "rt-polarity.neg", "positive": "rt-polarity.pos"},
                **limits,
            },
        },
        "qa": {
            "kind": "span",
            "max_len": 256,
            "source": {
                "type": "squad",
                "root": "data/qa/squadshifts-new_wiki",
                "path": "new_wiki_v1.0.json",
                **limits,
            },
        },
    }
    suite = build_suite(data_cfg, tasks)
    assert suite is build_suite(data_cfg, tasks)  # memoised
    assert suite.vocab_size == 600 and suite.train_blocks.shape[1] == 33
    sentiment, qa = suite.tasks["sentiment"], suite.tasks["qa"]
    assert sentiment.splits.labels == ["negative", "positive"]
    assert len(sentiment.encoded("validation")) == 16
    batch = next(iter(qa.loader("train", batch_size=4)))
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] <= 256
    # The tokenizer was fitted on the tasks' training text too: it cuts that text into fewer
    # pieces than a tokenizer fitted on the corpus alone.
    corpus_only = build_suite({**data_cfg, "tokenizer_task_texts": False}, tasks)
    texts = [ex.text for ex in sentiment.splits.train] + [ex.context for ex in qa.splits.train]

    def n_tokens(tok) -> int:
        return sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))

    assert n_tokens(suite.tokenizer) < 0.95 * n_tokens(corpus_only.tokenizer)


def test_real_suite_experiment_reads_every_source(monkeypatch):
    """conf/experiment/real_suite.yaml composes and each of its sources reads the shared data."""
    for rel in ("pretrain/wikitext-2", "qa/squadshifts-new_wiki", "ner/uner-en-ewt"):
        shared(rel)
    shared("sentiment/mr-sentence-polarity"), shared("translation/multi30k")
    monkeypatch.setenv("ADAPTNAS_DATA", str(SHARED_DATA))
    cfg = compose_config("search", ["experiment=real_suite"])
    assert list(cfg.tasks) == ["sentiment", "ner", "translation", "qa"]
    assert cfg.data.vocab_size == 8000 and cfg.data.tokenizer_task_texts
    docs = corpus_texts(plain(cfg.data.corpus), 0)
    assert len(docs) == 1841 + 2185  # paragraphs of valid.txt + test.txt, headings dropped
    sizes = {}
    for name, task in cfg.tasks.items():
        example = TASK_KINDS[task.kind].example
        splits = task_splits(name, plain(task.source), int(cfg.data.seed), task.kind, example)
        sizes[name] = (len(splits.train), len(splits.validation), len(splits.test))
    assert sizes == {
        "sentiment": (8530, 500, 1000),
        "qa": (sizes["qa"][0], 300, 500),
        "ner": (1801, 200, 2077),
        "translation": (10000, 300, 500),
    }
    assert 6000 < sizes["qa"][0] < 6700  # whole articles: the train share is not exactly 80%
    fewer = compose_config("search", ["experiment=real_suite", "~tasks.translation"])
    assert list(fewer.tasks) == ["sentiment", "ner", "qa"]
