"""The built-in code task's generator, the newline markers, the HumanEval/MBPP reader, leakage."""

from __future__ import annotations

import json

import pytest

from lightning_modules.code_scorer import run_programs
from lightning_modules.data import readers
from lightning_modules.data.code import (
    KINDS,
    CodeExample,
    capacity,
    code_splits,
    code_to_text,
    program,
    text_to_code,
)
from lightning_modules.data.errors import DataError
from lightning_modules.data.leakage import held_out_texts, remove_held_out
from lightning_modules.data.sources import task_splits_from_source, training_texts
from lightning_modules.data.texts import BUILTIN_TASKS, task_splits
from lightning_modules.data.tokenizer import train_tokenizer
from lightning_modules.data.world import World


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------ the generator


def test_generator_is_deterministic_per_seed_and_varies_with_it():
    a, b, c = code_splits(0, 50, 10, 10), code_splits(0, 50, 10, 10), code_splits(1, 50, 10, 10)
    assert a.train == b.train and a.validation == b.validation and a.test == b.test
    assert a.train != c.train
    sources = [e.source for e in a.train + a.validation + a.test]
    assert len(set(sources)) == len(sources)  # no description in two splits
    assert task_splits("code", {}, 0).train[:5] == code_splits(0).train[:5]
    assert "code" in BUILTIN_TASKS


def test_every_reference_program_passes_its_own_tests_and_a_wrong_one_does_not():
    splits = code_splits(3, 400, 20, 20)
    examples = splits.train + splits.validation + splits.test
    kinds = {e.target.split("\n", 1)[1] for e in examples}
    assert len(KINDS) >= 40 and len(kinds) > 100  # many kinds, names, arguments, constants
    for ex in examples:
        assert ex.target.startswith(f"def {ex.entry_point}(")
        assert ex.tests.count("assert ") >= 1 and ex.entry_point in ex.tests
    right = run_programs([program(e, e.target) for e in examples], timeout=5)
    assert [o.error for o in right if not o.passed] == []
    # The tests can fail: the same signature returning any one constant fails nearly all.
    for constant in ("0", "[]", "True", "False"):
        body = f"\n    return {constant}"
        wrong = [program(e, e.target.split("\n")[0] + body) for e in examples]
        failed = sum(not o.passed for o in run_programs(wrong, timeout=5))
        assert failed > 0.97 * len(examples), constant


def test_sizes_are_checked():
    assert "n_val=0" in one_line_error(code_splits, 0, 10, 0, 10)
    assert "distinct" in one_line_error(code_splits, 0, capacity(), 10, 10)
    assert capacity() > 4 * (2000 + 100 + 300)  # the configured sizes draw from a wide pool
    code_splits(0, capacity() // 2 - 2, 1, 1)  # the largest allowed draw still finishes


# ------------------------------------------------------------------------------ newline markers

CODE = (
    "def f(xs, c=3):\n"
    "    total = 0  # [a] {b}\n"
    "\n"
    "    for x in xs[::-1]:\n"
    "        if x % 2 != 0 and x <= c or \"`q`\" == '\\t':\n"
    "\ttotal += x * x - (c // 2) + 1.5e3\n"
    "    return {k: v for k, v in zip(xs, xs)} | {0: -total}\n"
)


def test_markers_round_trip_every_program():
    text = code_to_text(CODE)
    assert "\n" not in text and "\t" not in text
    assert text_to_code(text) == CODE
    assert text_to_code(code_to_text("a\r\nb")) == "a\nb"
    for ex in code_splits(0, 200, 5, 5).train:
        assert text_to_code(code_to_text(ex.target)) == ex.target


def test_code_symbols_and_indentation_survive_the_builtin_bpe():
    tok = train_tokenizer(World(seed=0).corpus(n_sentences=1200), 384)

    def round_trip(text: str) -> str:
        return tok.decode(tok.encode(text, add_special_tokens=False).ids)

    # Raw newlines do not survive (the BPE's alphabet has none): hence the markers.
    assert round_trip(CODE) != CODE
    assert text_to_code(round_trip(code_to_text(CODE))) == CODE
    assert tok.token_to_id("[UNK]") not in tok.encode(code_to_text(CODE)).ids
    for ex in code_splits(0, 300, 5, 5).train:
        assert text_to_code(round_trip(code_to_text(ex.target))) == ex.target


# -------------------------------------------------------------------------- HumanEval / MBPP

HUMANEVAL = {
    "task_id": "HumanEval/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Return a plus b."""\n',
    "canonical_solution": "    return a + b\n",
    "test": (
        "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
    ),
    "entry_point": "add",
}
MBPP = {
    "task_id": 2,
    "text": "Write a function to find the shared elements of two lists.",
    "code": "import math\r\ndef similar_elements(a, b):\r\n  return tuple(sorted(set(a) & set(b)))",
    "test_list": [
        "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)",
        "assert similar_elements((1, 2), (3,)) == ()",
    ],
    "test_setup_code": "",
}


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_humaneval_and_mbpp_records_are_read_and_their_solutions_pass(tmp_path):
    path = _write(tmp_path / "mixed.jsonl", [HUMANEVAL, MBPP])
    he, mbpp = readers.read_code_jsonl(path)
    assert he.entry_point == "add" and he.prefix == HUMANEVAL["prompt"]
    assert he.source == HUMANEVAL["prompt"] and he.tests.endswith("check(add)")
    assert mbpp.entry_point == "similar_elements" and mbpp.prefix == ""
    assert mbpp.source.startswith(MBPP["text"]) and MBPP["test_list"][0] in mbpp.source
    assert "\r" not in mbpp.target
    outcomes = run_programs([program(e, e.target) for e in (he, mbpp)])
    assert [o.passed for o in outcomes] == [True, True]
    wrong = run_programs([program(he, "    return a - b"), program(mbpp, "def x(): pass")])
    assert [o.passed for o in wrong] == [False, False]


def test_code_jsonl_source_splits_and_checks_the_kind(tmp_path):
    records = [
        {**HUMANEVAL, "task_id": f"HumanEval/{i}", "prompt": HUMANEVAL["prompt"] + f"# {i}\n"}
        for i in range(20)
    ]
    path = _write(tmp_path / "he.jsonl", records)
    source = {"type": "code_jsonl", "path": str(path)}
    splits = task_splits_from_source("he", source, 0, "code", "code")
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 20
    assert all(isinstance(e, CodeExample) for e in splits.test)
    assert training_texts(splits)[1] == code_to_text(splits.train[0].target)
    message = one_line_error(task_splits_from_source, "he", source, 0, "generation", "pair")
    assert "gives code examples" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"prompt": "def f():\\n", "test": "", "entry_point": "f"', "bad.jsonl:1:"),
        ('{"prompt": "def f():\\n", "test": "x", "entry_point": "f"}', "'canonical_solution'"),
        ('{"text": "t", "code": "def f(): pass", "test_list": "assert f()"}', "'test_list' must"),
        ('{"text": "t", "code": "x = 1", "test_list": ["assert f()"]}', "defines no function"),
        ('{"question": "q"}', "neither a HumanEval record"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_code_jsonl_is_one_line_naming_the_file(tmp_path, line, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    message = one_line_error(readers.read_code_jsonl, path)
    assert str(path) in message and expected in message


# ------------------------------------------------------------------------------------ leakage


def test_held_out_descriptions_and_code_leave_the_corpus():
    splits = code_splits(0, 20, 5, 5)
    held = held_out_texts(splits)
    test = splits.test[0]
    assert test.source in held and test.target in held
    assert splits.train[0].source not in held
    corpus = [f"Some prose. {test.source} More prose.", splits.train[0].source]
    kept, removed = remove_held_out(corpus, held)
    assert removed == 1 and kept == ["Some prose. More prose.", splits.train[0].source]
