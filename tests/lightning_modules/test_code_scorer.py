"""The code sandbox (pass@1 by execution) and the code task end to end."""

from __future__ import annotations

import builtins
import time

import pytest

from lightning_modules.code_scorer import run_programs
from lightning_modules.config import TransformerConfig
from lightning_modules.data.code import code_splits, program
from lightning_modules.tasks import TASK_KINDS, CodeTask
from nas.config.compose import precheck
from nas.config.families import allowed_families
from nas.config.nodes import plain
from nas.config.schema import check_task
from nas.engine.run import load_suite
from nas.trial.resources import prepare_process
from nas.trial.run import data_fields, run_trial
from tests.conftest import compose_config

GOOD = "def f(x):\n    return x + 1\nassert f(1) == 2\n"
WRONG = "def f(x):\n    return x\nassert f(1) == 2\n"


def test_a_correct_program_passes_and_a_wrong_one_fails():
    good, wrong, broken = run_programs([GOOD, WRONG, "def f(:\n"])
    assert good.passed and good.error == ""
    assert not wrong.passed and wrong.error.startswith("AssertionError")
    assert not broken.passed and broken.error.startswith("SyntaxError")


def test_a_looping_program_is_killed_within_the_limit_and_fails_alone():
    start = time.monotonic()
    loop, sleeper, good = run_programs(
        ["while True:\n    pass\n", "import time\ntime.sleep(60)\n", GOOD], timeout=1.0, jobs=2
    )
    elapsed = time.monotonic() - start
    assert elapsed < 6, elapsed  # 1 s each, two at a time, plus the worker's start
    assert not loop.passed and not sleeper.passed and good.passed
    assert "timeout" in loop.error or "cpu limit" in loop.error
    assert "timeout" in sleeper.error


def test_file_access_is_blocked(tmp_path):
    target = tmp_path / "touched.txt"
    attempts = [
        f"open({str(target)!r}, 'w').write('x')\n",
        f"import io\nio.open({str(target)!r}, 'w').write('x')\n",
        f"import os\nos.open({str(target)!r}, os.O_CREAT | os.O_WRONLY)\n",
        f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')\n",
        "import os\nos.listdir('/')\n",
        f"import os\nos.system('touch {target}')\n",
        "import subprocess\n",
        "import sys\nsys.modules['subprocess'].run(['true'])\n",
        "import sys\nsys.modules['os'].remove('/etc/hostname')\n",
    ]
    outcomes = run_programs(attempts)
    assert [o.passed for o in outcomes] == [False] * len(attempts)
    assert not target.exists()
    assert all("Error" in o.error for o in outcomes), outcomes


def test_sockets_and_memory_hogs_fail():
    sock, hog, grow, good = run_programs(
        [
            "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
            "x = bytearray(8 * 1024 ** 3)\n",
            "x = []\nwhile True:\n    x.append('y' * 10 ** 6)\n",
            GOOD,
        ],
        timeout=5.0,
        memory_mb=256,
    )
    assert not sock.passed and "PermissionError" in sock.error
    assert not hog.passed and "MemoryError" in hog.error
    assert not grow.passed and good.passed


def test_programs_never_run_in_this_process():
    (outcome,) = run_programs(["import builtins\nbuiltins.ADAPTNAS_MARK = 1\n"])
    assert outcome.passed
    assert not hasattr(builtins, "ADAPTNAS_MARK")


def test_scoring_100_programs_takes_a_few_seconds():
    splits = code_splits(0, 100, 1, 1)
    programs = [program(e, e.target) for e in splits.train]
    start = time.monotonic()
    outcomes = run_programs(programs, jobs=2)
    elapsed = time.monotonic() - start
    assert all(o.passed for o in outcomes)
    assert elapsed < 5, elapsed  # measured 0.43 s on 2 shared cores (benchmarks/code_scorer.py)


# ------------------------------------------------------------------------------- the code task


def test_the_code_task_is_registered_with_its_schema_and_families():
    assert TASK_KINDS["code"] is CodeTask
    cfg = compose_config("search", ["task=code"])
    block = plain(cfg.tasks.code)
    metrics = {k: t.metrics for k, t in TASK_KINDS.items()}
    check_task("code", block, metrics)  # the shipped YAML meets its schema
    assert block["metric"] == "pass_at_1" and block["source"]["name"] == "code"
    with pytest.raises(ValueError, match="timeout"):
        check_task("code", {**block, "timeout": 0}, metrics)
    with pytest.raises(ValueError, match="memory_mb"):
        check_task("code", {**block, "memory_mb": 8}, metrics)
    assert allowed_families(plain(cfg.tasks)) == allowed_families({"t": {"kind": "generation"}})
    assert "encoder" not in allowed_families(plain(cfg.tasks))
    precheck("search", ["task=[suite,code]"])  # the documented way to add it to the suite
    assert list(compose_config("search", ["task=[suite,code]"]).tasks)[-1] == "code"


def test_gold_code_scores_one_and_a_tiny_candidate_scores_in_range(tiny_cfg):
    extra = [
        "tasks.code.source.n_train=64",
        "tasks.code.source.n_val=8",
        "tasks.code.source.n_test=8",
        "tasks.code.max_len=96",
        "tasks.code.max_new_tokens=24",
        "tasks.code.steps=null",
        "tasks.code.examples=null",
    ]
    cfg = tiny_cfg(task="code", extra=extra)
    prepare_process()
    suite = load_suite(cfg)
    task = suite.tasks["code"]
    assert isinstance(task, CodeTask)
    refs = task.encoded("validation").references
    gold = task.score([(i, _as_decoded(task, e.target)) for i, e in enumerate(refs)], "validation")
    assert gold["pass_at_1"] == 1.0 and gold["exact_match"] == 1.0
    for family, n_dec_layer in (("decoder", 0), ("encoder_decoder", 1)):
        arch = TransformerConfig(
            family=family, n_layer=1, n_dec_layer=n_dec_layer, d_model=32, n_head=2, d_ff=64,
            **data_fields(suite),
        )  # fmt: skip
        result = run_trial(arch, suite, plain(cfg), seed=0)
        assert 0.0 <= result.task_scores["code"] <= 1.0
        assert 0.0 <= result.adaptability <= 1.0


def _as_decoded(task: CodeTask, code: str) -> str:
    """What the model's decoding would give for ``code``: markers through the tokenizer."""
    from lightning_modules.data.code import code_to_text

    ids = task.tokenizer.encode(code_to_text(code), add_special_tokens=False).ids
    return task.tokenizer.decode(ids, skip_special_tokens=True)


def test_the_sandbox_benchmark_quick_mode_writes_its_json(tmp_path):
    from benchmarks import code_scorer

    payload = code_scorer.main(["--quick", "--out", str(tmp_path / "code_scorer.json")])
    assert (tmp_path / "code_scorer.json").is_file()
    assert [r["passed"] for r in payload["runs"].values()] == [20, 18]
