"""The bad-input catalogue of docs/faults.md: one real command per row.

Each row runs an entry point in a subprocess, as a user would, and checks the contract: exit code
2, exactly one line on stderr (``adaptnas: error: ...``) that names the culprit, and nothing left
behind (no study, weights, export or data cache; Hydra's own log folder is allowed). The ids are
the ``test`` column of the table in docs/faults.md.
"""

from __future__ import annotations

import ast
import hashlib
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO, SEARCH_ONLY, tiny_overrides
from tests.nas.test_cli import run

SECRET = "s3cr3t-pw"


@dataclass(frozen=True)
class Row:
    """One catalogue row: a command (``{in}`` is the folder of the row's input files) and what
    its one-line error must contain."""

    id: str
    args: tuple[str, ...]
    needle: str
    script: str = "search.py"
    files: dict[str, str] = field(default_factory=dict)
    tiny: str | None = None  # tiny_overrides(task) for commands that would otherwise train
    slow: bool = False
    allowed: tuple[str, ...] = ("hydra",)  # what may be left under paths.root: Hydra's logs


def space(params: str) -> dict[str, str]:
    return {"space.yaml": f"name: bad\nparams:\n  {params}\n"}


def jsonl_source(task: str = "classification", labels: str | None = None) -> tuple[str, ...]:
    """Overrides that point a classification task at ``{in}/data.jsonl``."""
    src = f"tasks.{task}.source"
    out = (f"{src}.type=classification", f"{src}.name=null", f"+{src}.path={{in}}/data.jsonl")
    return out + ((f"+{src}.labels={labels}",) if labels else ())


CONLL = ("tasks.ner.source.type=conll", "tasks.ner.source.name=null")
ARCH = "n_layer: 1\nd_model: 32\nn_head: 2\nd_ff: 64\n"

ROWS = [
    # ---- the config: composed by Hydra, checked by the schema (nas/config/schema.py) -------------
    Row(
        "unknown-group-option",
        ("sampler=tpee",),
        "sampler=tpee: no such option (available: cmaes, gp, nsga2, random, tpe); "
        "did you mean sampler=tpe?",
    ),
    Row("unknown-task", ("task=nosuchtask",), "task=nosuchtask: no such option"),
    Row(
        "misspelt-key-cli",
        ("pretrain.tokenz=5",),
        "unknown key 'pretrain.tokenz' (did you mean pretrain.tokens?)",
    ),
    Row("misspelt-top-level-key-cli", ("n_trialz=3",), "unknown key 'n_trialz'"),
    Row(
        "misspelt-key-in-file",
        ("hydra.searchpath=[file://{in}/conf]", "experiment=mine"),
        "in experiment/mine: unknown key 'pretrain.tokenz' (did you mean pretrain.tokens?)",
        files={"conf/experiment/mine.yaml": "# @package _global_\npretrain:\n  tokenz: 5\n"},
    ),
    Row(
        "sampler-unknown-argument",
        ("+sampler.n_startup_trialz=3",),
        "sampler: TPESampler.__init__() got an unexpected keyword argument 'n_startup_trialz'",
    ),
    Row(
        "wrong-type",
        ("seed=abc",),
        "seed=abc: Value 'abc' of type 'str' could not be converted to Integer",
    ),
    # ---- the search space ------------------------------------------------------------------
    Row(
        "space-low-above-high",
        ("search_space={in}/space.yaml",),
        "entry 'd_ff': low (512) is above high (128)",
        files=space("d_ff: {type: int, low: 512, high: 128}"),
    ),
    Row(
        "space-empty-choices",
        ("search_space={in}/space.yaml",),
        "entry 'mlp': choices is empty",
        files=space("mlp: {type: categorical, choices: []}"),
    ),
    Row(
        "space-unknown-field",
        ("search_space={in}/space.yaml",),
        "entry 'd_modle': not a TransformerConfig field (did you mean 'd_model'?)",
        files=space("d_modle: {type: int, low: 32, high: 64}"),
    ),
    Row(
        "space-log-low-not-positive",
        ("search_space={in}/space.yaml",),
        "entry 'dropout': log needs low > 0, got low (0.0)",
        files=space("dropout: {type: float, low: 0.0, high: 0.2, log: true}"),
    ),
    Row("space-unknown-name", ("search_space=smal",), "unknown search space 'smal'"),
    # ---- budgets -----------------------------------------------------------------------------
    Row("budget-n-trials-zero", ("n_trials=0",), "n_trials=0 must be a positive integer"),
    Row("budget-steps-negative", ("finetune.steps=-3",), "finetune.steps=-3 must be a positive"),
    Row(
        "budget-tokens-negative",
        ("pretrain.tokens=-1",),
        "pretrain.tokens=-1 must be an integer >= 0; 0 = no pretraining",
    ),
    Row("budget-trial-timeout-zero", ("trial_timeout=0",), "trial_timeout=0 must be a positive"),
    Row("budget-lr-negative", ("finetune.lr=-1",), "finetune.lr=-1 must be a number >= 0"),
    Row(
        "budget-warmup-above-one",
        ("pretrain.warmup_frac=1.5",),
        "pretrain.warmup_frac=1.5 must be a number in [0, 1]",
    ),
    Row(
        "budget-examples-zero",
        ("++finetune.examples=0",),
        "finetune.examples=0 must be a positive integer (or null)",
    ),
    Row(
        "budget-curve-zero",
        ("++finetune.curve=[0,8]",),
        "finetune.curve=[0, 8] must be a list of positive integers (or null)",
    ),
    Row(
        "adapt-method-unknown",
        ("finetune.method=bitfit",),
        "finetune.method='bitfit' must be one of full, lora, adapter, probe",
    ),
    Row(
        "adapt-lora-rank-zero",
        ("finetune.lora.rank=0",),
        "finetune.lora.rank=0 must be a positive integer",
    ),
    Row(
        "objective-test-top-k-zero",
        ("objective.test_top_k=0",),
        "objective.test_top_k=0 must be a positive integer",
    ),
    # ---- task blocks: one schema per kind (nas/config/schema.py TASK_SCHEMAS) --------------------
    Row(
        "task-max-len-negative", ("tasks.qa.max_len=-5",), "tasks.qa.max_len=-5 must be an integer"
    ),
    Row(
        "task-misspelt-key-cli",
        ("+tasks.qa.stpes=10",),
        "tasks.qa.stpes=10: unknown key for a span task (did you mean tasks.qa.steps?)",
    ),
    Row(
        "task-misspelt-key-in-file",
        ("hydra.searchpath=[file://{in}/conf]", "task=mine"),
        "tasks.mine.stpes=10: unknown key for a span task (did you mean tasks.mine.steps?)",
        files={
            "conf/task/mine.yaml": "# @package tasks.mine\nkind: span\nmax_len: 96\nstpes: 10\n"
            "source: {type: builtin, name: qa}\n"
        },
    ),
    Row(
        "task-key-of-another-kind",
        ("+tasks.qa.max_new_tokens=8",),
        "tasks.qa.max_new_tokens=8: unknown key for a span task",
    ),
    Row(
        "task-kind-unknown",
        ("tasks.qa.kind=spam",),
        "tasks.qa.kind='spam' must be one of span, sequence, token, generation, code",
    ),
    Row(
        "task-metric-of-another-kind",
        ("tasks.qa.metric=bleu",),
        "tasks.qa.metric='bleu' must be one of f1, exact_match",
    ),
    Row(
        "task-steps-not-a-number",
        ("tasks.qa.steps=many",),
        "tasks.qa.steps='many' must be a positive integer (or null)",
    ),
    Row(
        "task-selected-twice",
        ("task=[qa,qa]",),
        "task=[qa,qa]: task 'qa' is selected twice",
    ),
    Row(
        "task-code-timeout-zero",
        ("task=code", "tasks.code.timeout=0"),
        "tasks.code.timeout=0 must be a positive number (or null); seconds per program",
    ),
    # ---- data (real readers; fails while the suite is built, after the study is opened) -------
    Row(
        "data-missing-file",
        jsonl_source(),
        "data.jsonl: no such file",
        tiny="classification",
    ),
    Row(
        "data-empty-file",
        jsonl_source(),
        "task 'classification': split 'train' has no examples",
        files={"data.jsonl": ""},
        tiny="classification",
    ),
    Row(
        "data-malformed-json",
        jsonl_source(),
        "data.jsonl:2:26: malformed JSON: Expecting value",
        files={"data.jsonl": '{"text": "good", "label": "pos"}\n{"text": "bad", "label": }\n'},
        tiny="classification",
    ),
    Row(
        "data-malformed-conll",
        (*CONLL, "+tasks.ner.source.path={in}/train.conll"),
        "train.conll:2: tag 'X-PER' is not IOB2",
        files={"train.conll": "Ann\tB-PER\nBob\tX-PER\n"},
        tiny="ner",
    ),
    Row(
        "data-code-jsonl-not-a-problem",
        (
            "task=code",
            "tasks.code.source.type=code_jsonl",
            "tasks.code.source.name=null",
            "+tasks.code.source.path={in}/problems.jsonl",
        ),
        "problems.jsonl:1: neither a HumanEval record (prompt, canonical_solution, test, "
        "entry_point) nor an MBPP one (text, code, test_list)",
        files={"problems.jsonl": '{"question": "q"}\n'},
        tiny="code",
    ),
    Row(
        "data-label-out-of-range",
        jsonl_source(labels="[neg,pos]"),
        "data.jsonl:2: label 2 out of range 0..1 (neg, pos)",
        files={"data.jsonl": '{"text": "good", "label": 1}\n{"text": "odd", "label": 2}\n'},
        tiny="classification",
    ),
    Row(
        "data-label-unknown",
        jsonl_source(labels="[neg,pos]"),
        "data.jsonl:2: unknown label 'meh' (labels: neg, pos)",
        files={
            "data.jsonl": '{"text": "good", "label": "pos"}\n{"text": "so so", "label": "meh"}\n'
        },
        tiny="classification",
    ),
    # ---- the storage and the study name --------------------------------------------------------
    Row(
        "storage-url-malformed",
        ("storage.url=notaurl",),
        "storage.url='notaurl' is not an sqlite:/// URL",
    ),
    Row(
        "storage-unreachable",
        ("storage=postgres", f"storage.url=postgresql://u:{SECRET}@127.0.0.1:1/db"),
        "storage.url='postgresql://u:***@127.0.0.1:1/db'",
    ),
    Row("study-name-parent", ("study_name=../escape",), "study_name='../escape': use letters"),
    Row("study-name-slash", ("study_name=a/b",), "study_name='a/b': use letters"),
    # ---- architectures (nas/train.py) ------------------------------------------------------
    Row(
        "arch-not-an-architecture",
        ("arch={in}/arch.yaml",),
        "arch.yaml: unknown architecture field(s): layers",
        script="train.py",
        files={"arch.yaml": "layers: 3\n"},
    ),
    Row(
        "arch-missing-file",
        ("arch={in}/nope.yaml",),
        "nope.yaml: no such architecture file",
        script="train.py",
    ),
    Row(
        "arch-not-a-mapping",
        ("arch={in}/arch.yaml",),
        "arch.yaml: expected a mapping of architecture fields",
        script="train.py",
        files={"arch.yaml": "- 1\n- 2\n"},
    ),
    # ---- export --------------------------------------------------------------------------------
    Row("export-missing-study", ("study=nosuch",), "study=nosuch: no such study", "export.py"),
    # ---- safety: config strings are never run, weights are never unpickled ------------------
    Row(
        "sampler-target-not-optuna",
        ("sampler._target_=os.system",),
        "sampler._target_='os.system' is not a class",
    ),
    Row(
        "weights-not-safetensors",
        ("arch={in}/arch.yaml", "init_from={in}/export"),
        "backbone.safetensors: not a safetensors file",
        script="train.py",
        files={"arch.yaml": ARCH},
        tiny="sentiment",
        slow=True,
        allowed=("hydra", "cache"),  # the tokenizer this run trained before it read the weights
    ),
]


def write_inputs(row: Row, folder: Path) -> None:
    for name, text in row.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if row.id == "weights-not-safetensors":  # a pickle that would create a file when unpickled
        bomb = pickle.dumps(_Bomb(str(folder / "pwned")))
        (folder / "export").mkdir()
        (folder / "export" / "backbone.safetensors").write_bytes(bomb)


class _Bomb:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def command(row: Row, inputs: Path, root: Path) -> list[str]:
    args = [a.replace("{in}", str(inputs)) for a in row.args]
    if row.tiny is None:
        return [*args, f"paths.root={root}"]
    base = tiny_overrides(root, row.tiny)
    if row.script != "search.py":
        base = [o for o in base if not o.startswith(SEARCH_ONLY)]
    return [*base, *args]


def left_behind(root: Path, allowed: tuple[str, ...] = ("hydra",)) -> list[str]:
    """What a failed command left under ``paths.root``, outside the ``allowed`` folders."""
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.relative_to(root).parts[0] not in allowed
    )


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_one_line(proc, needle: str, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("adaptnas: error: "), lines[0]
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "row",
    [pytest.param(r, id=r.id, marks=[pytest.mark.slow] if r.slow else []) for r in ROWS],
)
def test_catalogue(row: Row, tmp_path):
    inputs, root = tmp_path / "in", tmp_path / "root"
    inputs.mkdir()
    write_inputs(row, inputs)
    proc = run(row.script, *command(row, inputs, root))
    line = assert_one_line(proc, row.needle)
    assert left_behind(root, row.allowed) == []
    assert SECRET not in proc.stderr + proc.stdout
    if row.id == "storage-unreachable":  # nor in the files Hydra saved for the run
        saved = [p for p in root.rglob("*") if p.is_file()]
        assert saved and not [p for p in saved if SECRET in p.read_text(errors="replace")]
    if row.id == "weights-not-safetensors":
        assert not (inputs / "pwned").exists(), "the pickle was loaded"
    assert "Traceback" not in line


def test_bad_data_leaves_an_existing_study_unchanged(tmp_path):
    """A resumed study whose run fails on its data keeps every byte of its folder."""
    root = tmp_path / "root"
    folder = root / "studies" / "kept"
    folder.mkdir(parents=True)
    study = optuna.create_study(
        study_name="kept", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize"
    )
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    (folder / "config.yaml").write_text("kept: true\n")
    before = snapshot(folder)
    args = [*jsonl_source(), "study_name=kept", "n_trials=3"]
    proc = run(
        "search.py",
        *tiny_overrides(root, "classification"),
        *[a.replace("{in}", str(tmp_path)) for a in args],
    )
    assert_one_line(proc, "data.jsonl: no such file")
    assert snapshot(folder) == before
    assert sorted(p.name for p in (root / "studies").iterdir()) == ["kept"]


# ---- safety, by reading the code -------------------------------------------------------------
PACKAGES = ("nas", "lightning_modules", "search_spaces", "adaptnas")


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


#: The one place code runs from strings: the code task's sandbox child, a forked process of the
#: sandbox worker (never the search's process), after its limits and audit hook are in place.
SANDBOX = ("lightning_modules/code_scorer.py", "_child")


def _sandboxed_lines(tree: ast.AST) -> set[int]:
    """Lines of ``SANDBOX``'s function that exec/compile may use, once it has added its hook."""
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == SANDBOX[1])
    calls = {name: call.lineno for call, name in _calls(fn)}
    assert calls["sys.addaudithook"] < calls["exec"], "the hook must be added before exec"
    return {calls["exec"], calls["compile"]}


def test_no_code_runs_from_strings_and_nothing_is_unpickled():
    """No eval/exec/compile (but in the code sandbox's child), no pickle, yaml only with safe
    loaders, torch.load only with weights_only=True, torch.save never (weights are
    safetensors)."""
    unsafe = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            where = str(path.relative_to(REPO))
            allowed = _sandboxed_lines(tree) if where == SANDBOX[0] else set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                    if any(
                        n.split(".")[0] in ("pickle", "dill", "marshal", "shelve") for n in names
                    ):
                        unsafe.append(f"{where}:{node.lineno}: imports a pickle module")
            for call, name in _calls(tree):
                line = f"{where}:{call.lineno}: {name}"
                kwargs = {k.arg: ast.unparse(k.value) for k in call.keywords}
                if name in ("eval", "exec", "compile", "__import__", "builtins.eval"):
                    if call.lineno not in allowed:
                        unsafe.append(line)
                elif name in ("torch.save", "yaml.unsafe_load", "yaml.full_load"):
                    unsafe.append(line)
                elif name == "torch.load" and kwargs.get("weights_only") != "True":
                    unsafe.append(f"{line} without weights_only=True")
                elif name == "yaml.load" and not re.search(
                    r"Safe|_Loader", kwargs.get("Loader", "")
                ):
                    unsafe.append(f"{line} with an unsafe Loader")
    assert unsafe == []
