"""Tests of the search-space language and of the built-in spaces."""

from __future__ import annotations

import copy
import logging
import math
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution, IntDistribution

from lightning_modules.config import ArchitectureError, TransformerConfig
from search_spaces import (
    SPACES_DIR,
    SearchSpace,
    SearchSpaceError,
    builtin_spaces,
    load_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

DATA = {"vocab_size": 97, "max_seq_len": 32}


def random_study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


def run_trials(space: SearchSpace, n: int, seed: int = 0, **overrides):
    """Sample ``n`` trials with ask/tell; return ``(study, [(trial, arch), ...])``."""
    study = random_study(seed)
    out = []
    for _ in range(n):
        trial = study.ask()
        arch = space.sample(trial, **overrides)
        study.tell(trial, 0.0)
        out.append((trial, arch))
    return study, out


# ---- built-in spaces -------------------------------------------------------------------------
def test_builtin_spaces_are_listed():
    assert {"tiny", "small", "base"} <= set(builtin_spaces())
    assert builtin_spaces() == sorted(builtin_spaces())


@pytest.mark.parametrize("name", builtin_spaces())
def test_builtin_space_file_is_valid(name):
    space = load_space(name)
    assert space.name == name
    assert space.description and "\n" not in space.description
    assert SearchSpace.from_yaml(SPACES_DIR / f"{name}.yaml") == space
    assert SearchSpace.from_dict(space.to_dict()) == space
    # to_dict is plain YAML that loads back to the same space
    assert (
        SearchSpace.from_dict(yaml.safe_load(yaml.safe_dump(space.to_dict(), sort_keys=False)))
        == space
    )


@pytest.mark.parametrize("name", builtin_spaces())
def test_every_builtin_combination_builds(name):
    space = load_space(name)
    _, trials = run_trials(space, 300, seed=1)
    for trial, arch in trials:
        try:
            config = TransformerConfig(**arch)
        except ArchitectureError as err:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{name}: trial {trial.number} {trial.params} -> {err}")
        assert config.vocab_size == DATA["vocab_size"] or "vocab_size" not in arch
    # the overrides path as the engine uses it
    _, trials = run_trials(space, 20, seed=2, **DATA)
    for _, arch in trials:
        config = TransformerConfig(**arch)
        assert (config.vocab_size, config.max_seq_len) == (97, 32)


def test_builtin_spaces_cover_the_requested_knobs():
    tiny, small, base = load_space("tiny"), load_space("small"), load_space("base")
    assert tiny.fixed == {"dropout": 0.0}
    assert tiny.param("n_layer").distribution() == IntDistribution(1, 2)
    assert tiny.param("d_model").choices == (32, 64)
    assert tiny.param("n_head").choices == (2, 4)
    assert tiny.param("n_kv_head").choices == (1, 2)
    assert tiny.param("n_kv_head").when == {"n_head": (2, 4)}
    assert tiny.param("d_ff").distribution() == IntDistribution(64, 256, step=64)
    assert small.param("n_layer").distribution() == IntDistribution(1, 3)
    assert small.param("d_model").choices == (64, 96, 128)
    assert small.param("n_head").choices == (2, 4, 8)
    assert small.param("d_ff").distribution() == IntDistribution(128, 512, step=128)
    assert small.param("dropout").distribution() == FloatDistribution(0.0, 0.2, step=0.05)
    assert base.param("n_layer").distribution() == IntDistribution(2, 8)
    assert base.param("d_model").choices == (128, 256, 384, 512)
    assert base.param("n_head").choices == (4, 8)
    assert base.param("d_ff").distribution() == IntDistribution(256, 2048, step=256)
    # The default space has every family and pre-norm blocks only (docs/validity.md).
    assert set(small.param("family").choices) == {
        "decoder",
        "encoder",
        "prefix_lm",
        "encoder_decoder",
    }
    assert small.fixed == {"norm_position": "pre"}
    assert "norm_position" not in [p.name for p in small.params]
    for space in (tiny, small, base):
        assert space.param("d_ff").per_layer
        assert set(space.param("mlp").choices) == {"gelu", "relu", "swiglu"}
        assert set(space.param("norm").choices) == {"layernorm", "rmsnorm"}
        if space is not small:
            assert set(space.param("family").choices) == {"decoder", "encoder", "prefix_lm"}
            assert set(space.param("norm_position").choices) == {"pre", "post"}
        assert set(space.param("pos").choices) == {
            "learned",
            "sinusoidal",
            "rope",
            "alibi",
            "none",
        }
        assert set(space.param("tie_embeddings").choices) == {True, False}


def test_the_families_space_is_the_small_space_with_post_norm_blocks():
    small, families = load_space("small"), load_space("families")
    assert families.fixed == {} and small.fixed == {"norm_position": "pre"}
    assert families.param("norm_position").choices == ("pre", "post")
    assert small.param("n_dec_layer").when == {"family": ("encoder_decoder",)}
    assert small.param("n_dec_layer").distribution() == IntDistribution(1, 2)
    others = [p.name for p in families.params if p.name != "norm_position"]
    assert others == [p.name for p in small.params]
    assert all(families.param(n) == small.param(n) for n in others)


# ---- sampling --------------------------------------------------------------------------------
def test_per_layer_values_follow_n_layer():
    space = load_space("families")
    _, trials = run_trials(space, 50)
    seen = set()
    for trial, arch in trials:
        seen.add(arch["n_layer"])
        # One d_ff per block: an encoder_decoder's decoder blocks come after its encoder's.
        dec = arch.get("n_dec_layer", 0)  # left out of the other families' architectures
        assert (dec > 0) == (arch["family"] == "encoder_decoder")
        assert ("n_dec_layer" in trial.params) == (dec > 0)
        n = arch["n_layer"] + dec
        assert isinstance(arch["d_ff"], list) and len(arch["d_ff"]) == n
        names = sorted(k for k in trial.params if k.startswith("d_ff"))
        assert names == sorted(f"d_ff.{i}" for i in range(n))
        assert arch["d_ff"] == [trial.params[f"d_ff.{i}"] for i in range(n)]
        assert "d_ff" not in trial.params
    assert seen == {1, 2, 3}
    assert {arch.get("n_dec_layer", 0) for _, arch in trials} == {0, 1, 2}


def test_n_dec_layer_must_come_before_per_layer_entries():
    entries = {
        "family": {"type": "categorical", "choices": ["decoder", "encoder_decoder"]},
        "n_layer": {"type": "int", "low": 1, "high": 2},
        "d_ff": {"type": "int", "low": 64, "high": 128, "step": 64, "per_layer": True},
        "n_dec_layer": {
            "type": "int",
            "low": 1,
            "high": 2,
            "when": {"family": ["encoder_decoder"]},
        },
    }
    with pytest.raises(SearchSpaceError, match="n_dec_layer.*before the per-layer entries"):
        SearchSpace.from_dict({"name": "t", "params": entries})


def test_per_layer_with_fixed_n_layer():
    space = SearchSpace.from_dict(
        {
            "fixed": {"n_layer": 3},
            "params": {"d_ff": {"type": "int", "low": 8, "high": 16, "per_layer": True}},
        }
    )
    _, trials = run_trials(space, 5)
    for trial, arch in trials:
        assert len(arch["d_ff"]) == 3
        assert set(trial.params) == {"d_ff.0", "d_ff.1", "d_ff.2"}


COND_SPACE = {
    "name": "cond",
    "params": {
        "n_head": {"type": "categorical", "choices": [2, 4, 8]},
        "n_kv_head": {"type": "categorical", "choices": [1, 2], "when": {"n_head": [4, 8]}},
        "pos": {"type": "categorical", "choices": ["rope", "alibi"]},
        "rope_base": {
            "type": "float",
            "low": 1e3,
            "high": 1e5,
            "log": True,
            "when": {"pos": ["rope"], "n_head": [8]},
            "default": 500.0,
        },
    },
}


def test_conditions_are_respected():
    space = SearchSpace.from_dict(COND_SPACE)
    _, trials = run_trials(space, 80)
    holds = fails = 0
    for trial, arch in trials:
        if arch["n_head"] in (4, 8):
            assert trial.params["n_kv_head"] == arch["n_kv_head"] in (1, 2)
        else:
            assert "n_kv_head" not in trial.params
            assert arch["n_kv_head"] is None  # the TransformerConfig default
        if arch["pos"] == "rope" and arch["n_head"] == 8:
            holds += 1
            assert 1e3 <= trial.params["rope_base"] == arch["rope_base"] <= 1e5
        else:
            fails += 1
            assert "rope_base" not in trial.params
            assert arch["rope_base"] == 500.0  # the entry's default
        TransformerConfig(**arch)
    assert holds and fails


def test_condition_on_a_conditional_param_sees_its_default():
    space = SearchSpace.from_dict(
        {
            "params": {
                "family": {"type": "categorical", "choices": ["decoder", "encoder"]},
                "mlp": {
                    "type": "categorical",
                    "choices": ["relu", "swiglu"],
                    "when": {"family": ["decoder"]},
                    "default": "gelu",
                },
                "norm": {
                    "type": "categorical",
                    "choices": ["layernorm", "rmsnorm"],
                    "when": {"mlp": ["gelu"]},
                },
            }
        }
    )
    _, trials = run_trials(space, 30)
    for trial, arch in trials:
        assert ("norm" in trial.params) == (arch["family"] == "encoder")


def test_log_and_step_are_honoured():
    space = SearchSpace.from_dict(
        {
            "params": {
                "n_layer": {"type": "int", "low": 1, "high": 64, "log": True},
                "d_model": {"type": "int", "low": 16, "high": 96, "step": 16},
                "rope_base": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.05},
                "norm_eps": {"type": "float", "low": 1e-6, "high": 1e-4},
            }
        }
    )
    expected = {
        "n_layer": IntDistribution(1, 64, log=True),
        "d_model": IntDistribution(16, 96, step=16),
        "rope_base": FloatDistribution(1e-4, 1e-1, log=True),
        "dropout": FloatDistribution(0.0, 0.3, step=0.05),
        "norm_eps": FloatDistribution(1e-6, 1e-4),
    }
    _, trials = run_trials(space, 100)
    for trial, arch in trials:
        assert trial.distributions == expected
        assert isinstance(arch["n_layer"], int) and 1 <= arch["n_layer"] <= 64
        assert isinstance(arch["d_model"], int) and arch["d_model"] in range(16, 97, 16)
        assert 1e-4 <= arch["rope_base"] <= 1e-1
        assert 0.0 <= arch["dropout"] <= 0.3 + 1e-12
        k = arch["dropout"] / 0.05
        assert math.isclose(k, round(k), abs_tol=1e-9)
    # the log scale shows: most log-uniform draws of [1e-4, 1e-1] lie below 1e-2
    assert sum(arch["rope_base"] < 1e-2 for _, arch in trials) > 50


def test_distributions_are_static_across_trials():
    space = load_space("small")
    _, trials = run_trials(space, 50)
    seen: dict[str, set] = {}
    for trial, _ in trials:
        for name, dist in trial.distributions.items():
            seen.setdefault(name, set()).add(dist)
    assert all(len(dists) == 1 for dists in seen.values()), seen
    for name, (dist,) in seen.items():
        assert dist == space.param(name.split(".")[0]).distribution()
    assert {"n_kv_head", "d_ff.0", "d_ff.2", "dropout"} <= set(seen)


def test_tpe_runs_on_small_without_warnings(caplog):
    space = load_space("small")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    optuna.logging.enable_propagation()
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            for _ in range(20):
                trial = study.ask()
                config = TransformerConfig(**space.sample(trial, **DATA))
                study.tell(trial, config.num_params() / 1e6)
    finally:
        optuna.logging.disable_propagation()
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(study.trials) == 20
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_overrides_win_and_skip_sampling():
    space = load_space("small")
    study = random_study()
    trial = study.ask()
    arch = space.sample(trial, n_layer=3, vocab_size=11, family="encoder")
    assert (arch["n_layer"], arch["vocab_size"], arch["family"]) == (3, 11, "encoder")
    assert "n_layer" not in trial.params and "family" not in trial.params
    assert len(arch["d_ff"]) == 3
    assert space.params_to_arch(trial.params, n_layer=3, vocab_size=11, family="encoder") == arch
    tiny = load_space("tiny")
    assert tiny.sample(random_study().ask(), dropout=0.1)["dropout"] == 0.1  # overrides beat fixed


def test_unknown_override_is_rejected():
    with pytest.raises(SearchSpaceError, match="override 'vocab_sise'.*did you mean 'vocab_size'"):
        load_space("tiny").sample(random_study().ask(), vocab_sise=10)


def test_sample_works_with_any_base_trial():
    space = load_space("small")
    _, trials = run_trials(space, 10)
    for trial, arch in trials:
        assert space.sample(optuna.trial.FixedTrial(trial.params)) == arch


# ---- rebuilding from storage -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny", "small"])
def test_params_to_arch_rebuilds_the_sample(name):
    space = load_space(name)
    study, trials = run_trials(space, 50, **DATA)
    for (trial, arch), frozen in zip(trials, study.trials, strict=True):
        assert space.params_to_arch(trial.params, **DATA) == arch
        assert space.params_to_arch(frozen.params, **DATA) == arch
    # unknown parameters (e.g. a learning rate suggested by the objective) are ignored
    trial, arch = trials[0]
    assert space.params_to_arch({**trial.params, "lr": 1e-3}, **DATA) == arch


def test_params_to_arch_reports_missing_and_foreign_values():
    space = load_space("small")
    _, [(trial, _)] = run_trials(space, 1)
    params = dict(trial.params)
    del params["mlp"]
    with pytest.raises(SearchSpaceError, match="entry 'mlp': trial params lack 'mlp'"):
        space.params_to_arch(params)
    params = {**trial.params, "d_model": 100}
    with pytest.raises(SearchSpaceError, match="entry 'd_model': d_model=100 is not a value"):
        space.params_to_arch(params)


# ---- validation ------------------------------------------------------------------------------
INT = {"type": "int", "low": 1, "high": 4}
CAT = {"type": "categorical", "choices": [2, 4]}


def entry(**kw):
    return {"type": "int", "low": 1, "high": 4, **kw}


BAD = [
    ("unknown-field", {"params": {"dropuot": INT}}, "dropuot", "did you mean 'dropout'"),
    ("derived-field", {"params": {"head_dim": INT}}, "head_dim", "not a TransformerConfig field"),
    ("unknown-key", {"params": {"n_layer": entry(steps=1)}}, "n_layer", "did you mean 'step'"),
    ("unknown-type", {"params": {"n_layer": entry(type="integer")}}, "n_layer", "'integer'"),
    ("missing-type", {"params": {"n_layer": {"low": 1, "high": 2}}}, "n_layer", "'type'"),
    ("missing-low", {"params": {"n_layer": {"type": "int", "high": 2}}}, "n_layer", "'low'"),
    ("missing-high", {"params": {"n_layer": {"type": "int", "low": 2}}}, "n_layer", "'high'"),
    ("missing-choices", {"params": {"mlp": {"type": "categorical"}}}, "mlp", "'choices'"),
    ("empty-choices", {"params": {"mlp": {"type": "categorical", "choices": []}}}, "mlp", "empty"),
    (
        "duplicate-choice",
        {"params": {"mlp": {"type": "categorical", "choices": ["relu", "relu"]}}},
        "mlp",
        "twice",
    ),
    (
        "low-on-categorical",
        {"params": {"n_head": {**CAT, "low": 1}}},
        "n_head",
        "'low' does not apply",
    ),
    ("choices-on-int", {"params": {"n_head": entry(choices=[1])}}, "n_head", "'choices'"),
    ("low-above-high", {"params": {"n_layer": entry(low=5)}}, "n_layer", "low (5) is above high"),
    ("log-low-zero", {"params": {"n_layer": entry(low=0, log=True)}}, "n_layer", "low > 0"),
    (
        "log-and-step",
        {
            "params": {
                "dropout": {"type": "float", "low": 0.1, "high": 0.2, "log": True, "step": 0.1}
            }
        },
        "dropout",
        "'log' cannot be combined with 'step'",
    ),
    ("step-zero", {"params": {"n_layer": entry(step=0)}}, "n_layer", "step (0) must be positive"),
    ("step-negative", {"params": {"n_layer": entry(step=-1)}}, "n_layer", "must be positive"),
    (
        "step-not-dividing",
        {"params": {"n_layer": entry(low=1, high=6, step=2)}},
        "n_layer",
        "not a multiple of step",
    ),
    ("int-low-float", {"params": {"n_layer": entry(low=1.5)}}, "n_layer", "must be an integer"),
    ("int-high-float", {"params": {"n_layer": entry(high=4.0)}}, "n_layer", "must be an integer"),
    ("int-step-float", {"params": {"n_layer": entry(step=0.5)}}, "n_layer", "must be an integer"),
    (
        "float-low-string",
        {"params": {"dropout": entry(type="float", low="x")}},
        "dropout",
        "number",
    ),
    ("log-not-bool", {"params": {"n_layer": entry(log="yes")}}, "n_layer", "log must be"),
    (
        "per-layer-wrong-field",
        {"params": {"n_layer": INT, "n_head": {**CAT, "per_layer": True}}},
        "n_head",
        "per_layer only applies to d_ff",
    ),
    (
        "per-layer-no-n-layer",
        {"params": {"d_ff": entry(per_layer=True)}},
        "d_ff",
        "per_layer needs n_layer",
    ),
    (
        "per-layer-n-layer-after",
        {"params": {"d_ff": entry(per_layer=True), "n_layer": INT}},
        "d_ff",
        "per_layer needs n_layer",
    ),
    (
        "when-later-param",
        {"params": {"n_kv_head": {**CAT, "when": {"n_head": [4]}}, "n_head": CAT}},
        "n_kv_head",
        "'n_head', which is not a param listed before",
    ),
    (
        "when-unknown-param",
        {"params": {"n_head": CAT, "n_kv_head": {**CAT, "when": {"n_haed": [4]}}}},
        "n_kv_head",
        "did you mean 'n_head'",
    ),
    (
        "when-fixed-field",
        {"fixed": {"n_head": 4}, "params": {"n_kv_head": {**CAT, "when": {"n_head": [4]}}}},
        "n_kv_head",
        "which is fixed",
    ),
    (
        "when-impossible-choice",
        {"params": {"n_head": CAT, "n_kv_head": {**CAT, "when": {"n_head": [4, 3]}}}},
        "n_kv_head",
        "'when' value 3 of 'n_head' can never be sampled",
    ),
    (
        "when-out-of-range",
        {"params": {"n_layer": INT, "n_head": {**CAT, "when": {"n_layer": [5]}}}},
        "n_head",
        "can never be sampled",
    ),
    (
        "when-off-grid",
        {"params": {"n_layer": entry(high=5, step=2), "n_head": {**CAT, "when": {"n_layer": [2]}}}},
        "n_head",
        "can never be sampled",
    ),
    (
        "when-bool-vs-int",
        {
            "params": {
                "tie_embeddings": {"type": "categorical", "choices": [True, False]},
                "n_head": {**CAT, "when": {"tie_embeddings": [1]}},
            }
        },
        "n_head",
        "can never be sampled",
    ),
    ("when-empty", {"params": {"n_head": CAT, "mlp": {**CAT, "when": {}}}}, "mlp", "non-empty"),
    (
        "when-per-layer",
        {
            "params": {
                "n_layer": INT,
                "d_ff": entry(per_layer=True),
                "n_head": {**CAT, "when": {"d_ff": [1]}},
            }
        },
        "n_head",
        "per-layer",
    ),
    ("default-without-when", {"params": {"n_head": {**CAT, "default": 4}}}, "n_head", "'default'"),
    ("fixed-and-param", {"fixed": {"n_head": 4}, "params": {"n_head": CAT}}, "n_head", "both"),
    ("vocab-size", {"params": {"vocab_size": INT}}, "vocab_size", "comes from the data"),
    ("max-seq-len", {"params": {"max_seq_len": INT}}, "max_seq_len", "comes from the data"),
    ("entry-not-mapping", {"params": {"n_head": [2, 4]}}, "n_head", "expected a mapping"),
]


@pytest.mark.parametrize(
    ("data", "entry_name", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_validation_errors_name_the_entry(data, entry_name, fragment):
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(copy.deepcopy(data), name="bad")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"search space 'bad': entry '{entry_name}': "), message
    assert fragment in message, message


def test_low_above_high_message_is_exact():
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(
            {
                "name": "small",
                "params": {
                    "n_layer": INT,
                    "d_ff": {"type": "int", "low": 512, "high": 128, "per_layer": True},
                },
            }
        )
    assert str(info.value) == "search space 'small': entry 'd_ff': low (512) is above high (128)"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"parms": {}}, "unknown top-level key 'parms' (did you mean 'params'?)"),
        ({"fixed": {"dropuot": 0.0}}, "fixed: 'dropuot' is not a TransformerConfig field"),
        ({"fixed": [1]}, "fixed must be a mapping"),
        ({"params": [1]}, "params must be a mapping"),
        ({"description": 3}, "description must be a string"),
    ],
)
def test_top_level_errors(data, fragment):
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(data, name="bad")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("search space 'bad': ")
    assert fragment in str(info.value)


def test_validation_accepts_the_corner_cases():
    space = SearchSpace.from_dict(
        {
            "params": {
                "n_head": {"type": "categorical", "choices": [4, 8]},
                # null as a choice; a scalar `when` value is read as a one-item list
                "n_kv_head": {"type": "categorical", "choices": [None, 1], "when": {"n_head": 8}},
                # a condition may name the default of a conditional param
                "mlp": {"type": "categorical", "choices": ["relu"], "when": {"n_kv_head": [None]}},
                "n_layer": {"type": "int", "low": 2, "high": 2},
                "dropout": {"type": "float", "low": 0, "high": 1, "step": 0.1},
            }
        }
    )
    assert space.name == "unnamed"
    assert space.param("n_kv_head").when == {"n_head": (8,)}
    assert space.param("dropout").low == 0.0 and isinstance(space.param("dropout").low, float)
    assert SearchSpace.from_dict(space.to_dict()) == space


# ---- files -----------------------------------------------------------------------------------
def write(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_file_with_exponent_floats(tmp_path):
    path = write(
        tmp_path,
        "description: mine\n"
        "params:\n"
        "  n_layer: {type: int, low: 1, high: 3}\n"
        "  rope_base: {type: float, low: 1e3, high: 1e+5, log: true}\n"
        "  norm_eps: {type: float, low: 1.0e-6, high: 1e-4}\n",
    )
    for ref in (path, str(path)):
        space = load_space(ref)
        assert space.name == "mine"  # the file name when there is no name key
        assert space.param("rope_base").distribution() == FloatDistribution(1e3, 1e5, log=True)
        assert space.param("norm_eps").distribution() == FloatDistribution(1e-6, 1e-4)
    assert load_space(write(tmp_path, "name: other\nparams: {}\n", "x.yml")).name == "other"


def test_yaml_file_errors(tmp_path):
    dup = write(tmp_path, "params:\n  n_layer: {type: int, low: 1, high: 2}\n  n_layer: {}\n")
    with pytest.raises(SearchSpaceError, match="duplicate key 'n_layer'") as info:
        load_space(dup)
    assert "\n" not in str(info.value)
    broken = write(tmp_path, "params: [\n", "broken.yaml")
    with pytest.raises(SearchSpaceError, match="not valid YAML") as info:
        load_space(broken)
    assert "\n" not in str(info.value)
    with pytest.raises(SearchSpaceError, match="no such file"):
        load_space(tmp_path / "missing.yaml")
    with pytest.raises(SearchSpaceError, match="expected a mapping"):
        load_space(write(tmp_path, "- 1\n", "list.yaml"))
    bad = write(tmp_path, "params:\n  d_ff: {type: int, low: 512, high: 128}\n", "bad.yaml")
    with pytest.raises(SearchSpaceError, match="^search space 'bad': entry 'd_ff': low"):
        load_space(bad)


def test_unknown_builtin_name_lists_the_builtins():
    with pytest.raises(SearchSpaceError) as info:
        load_space("smal")
    message = str(info.value)
    assert "'smal'" in message and "did you mean 'small'" in message
    for name in builtin_spaces():
        assert name in message
    space = load_space("tiny")
    assert load_space(space) is space


def test_search_spaces_does_not_import_nas():
    code = (
        "import sys, search_spaces; "
        "bad = [m for m in sys.modules if m == 'nas' or m.startswith('nas.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
