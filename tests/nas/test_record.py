"""The trial record: one dataclass, the user attributes every study so far has written."""

from __future__ import annotations

import math

import optuna

from lightning_modules.config import TransformerConfig
from nas.trial.record import FINISHED, LIVE, State, TrialRecord

ARCH = TransformerConfig(vocab_size=50, max_seq_len=8, n_layer=1, d_model=16, n_head=2, d_ff=16)
# The keys of a completed trial as nas/engine/optuna_objective.py wrote them before TrialRecord
# existed: studies of earlier versions must keep loading, export reads them.
COMPLETED_KEYS = [
    "n_params", "flops_per_token", "pretrain_val_loss", "task_scores", "task_metrics", "curves",
    "data_curves", "adaptability", "timings", "steps", "trainable_params", "test_metrics",
]  # fmt: skip


def _record() -> TrialRecord:
    return TrialRecord(
        arch=ARCH,
        flops_per_token=123.0,
        pretrain_val_loss=2.5,
        task_scores={"ner": 0.75, "qa": 0.25},
        task_metrics={"ner": {"score": 0.75, "f1": 0.75}, "qa": {"score": 0.25}},
        curves={"ner": [0.5, 0.75], "qa": [0.25]},
        data_curves={"ner": {64: 0.5, 256: 0.75}},
        test_metrics={"ner": {"score": 0.7}, "qa": {"score": 0.2}},
        adaptability=0.5,
        timings={"pretrain": 1.23456, "ner": 2.0, "total": 3.23456},
        steps={"pretrain": 8, "ner": 16, "qa": 8},
        trainable_params={"ner": 1000, "qa": 1200},
        seed=7,
    )


def test_to_attrs_writes_the_keys_of_earlier_studies():
    attrs = _record().to_attrs()
    assert list(attrs) == COMPLETED_KEYS
    assert attrs["n_params"] == ARCH.num_params()  # from the architecture when not given
    assert attrs["data_curves"] == {"ner": {"64": 0.5, "256": 0.75}}  # JSON keys are strings
    assert attrs["timings"]["pretrain"] == 1.235  # milliseconds
    bare = TrialRecord(arch=ARCH, task_scores={"ner": 0.5}, adaptability=0.5).to_attrs()
    assert "data_curves" not in bare and "test_metrics" not in bare  # only when there are any


def test_a_stored_trial_reads_back_as_the_record_it_was():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    for key, value in {**TrialRecord.start_attrs(ARCH), **_record().to_attrs()}.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("seed", 7)
    study.tell(trial, 0.5)
    back = TrialRecord.from_trial(study.trials[0])
    want = _record()
    assert back.arch == ARCH and back.describe == ARCH.describe()
    assert back.number == 0 and back.state == State.COMPLETE and back.seed == 7
    assert back.data_curves == want.data_curves  # int keys again
    assert back.task_scores == want.task_scores and back.test_scores == {"ner": 0.7, "qa": 0.2}
    assert back.timings["pretrain"] == 1.235 and back.steps == want.steps
    assert back.pretrained is None and back.finetuned == {}  # models live in memory only


def test_a_trial_that_never_ran_reads_as_empty_not_as_an_error():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr("fail_reason", "invalid architecture: d_model 30 / 4 heads")
    study.tell(trial, state=State.PRUNED)
    back = TrialRecord.from_trial(study.trials[0])
    assert back.arch is None and back.n_params is None and back.describe == ""
    assert math.isnan(back.adaptability) and back.task_scores == {} and back.timings == {}
    assert back.fail_reason.startswith("invalid architecture")
    assert back.rank_score() is back.adaptability


def test_the_states_counted_by_are_defined_once():
    assert FINISHED == (State.COMPLETE, State.PRUNED)
    assert set(FINISHED) < set(LIVE) and State.FAIL not in LIVE


def test_an_architecture_this_version_cannot_build_is_kept_as_stored():
    old = {**ARCH.to_dict(), "rotary_base": 10000}  # a field some earlier version had
    back = TrialRecord.from_attrs({"architecture": old, "describe": "decoder L1 d16"})
    assert back.arch is None and back.architecture == old
    assert back.describe == "decoder L1 d16"  # the leaderboard still reads it


def test_a_repeat_carries_its_identity_and_the_log_file_is_on_the_record():
    from nas.trial.record import repeat_attrs

    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            value=0.5,
            user_attrs={**repeat_attrs(3, 2), "seed": 7, "log_file": "logs/trial_4.log"},
        )
    )
    record = TrialRecord.from_trial(study.trials[0])
    assert (record.repeat_of, record.repeat, record.seed) == (3, 2, 7)
    assert record.log_file == "logs/trial_4.log"
    assert study.trials[0].user_attrs["finalist_of"] == 3  # the keys of earlier studies
    assert TrialRecord.from_attrs({}).repeat_of is None


def _spelled_attr_keys(path) -> list[str]:
    """``file:line`` of every string literal used as a trial attribute key outside the record."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        literal = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            args = node.args
            if name in ("set_user_attr", "set_system_attr") and args:
                literal = args[0]
            elif name in ("set_trial_user_attr", "set_trial_system_attr") and len(args) > 1:
                literal = args[1]
            elif name == "get" and isinstance(node.func.value, ast.Attribute) and args:
                if node.func.value.attr in ("user_attrs", "system_attrs"):
                    literal = args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            if node.value.attr in ("user_attrs", "system_attrs"):
                literal = node.slice
        if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
            out.append(f"{path.name}:{node.lineno} {literal.value!r}")
    return out


def test_no_module_but_the_record_spells_a_trial_attribute_key():
    from tests.conftest import REPO

    spelled = [
        hit
        for path in sorted((REPO / "nas").rglob("*.py"))
        if path != REPO / "nas" / "trial" / "record.py"
        for hit in _spelled_attr_keys(path)
    ]
    assert spelled == []


def test_the_key_check_sees_a_spelled_key(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f(t):\n    t.set_user_attr('seed', 1)\n    return t.user_attrs['pid']\n")
    assert _spelled_attr_keys(path) == ["x.py:2 'seed'", "x.py:3 'pid'"]
