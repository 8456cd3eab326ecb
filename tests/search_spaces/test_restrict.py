"""``SearchSpace.restrict``: limiting a field to the values the selected tasks can use."""

from __future__ import annotations

import optuna
import pytest

from search_spaces import SearchSpace, SearchSpaceError, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

DATA = {"vocab_size": 97, "max_seq_len": 32}
CAUSAL = ("decoder", "prefix_lm")


def _space(**entries) -> SearchSpace:
    return SearchSpace.from_dict({"name": "t", **entries})


def test_categorical_choices_are_filtered_in_order_and_the_space_is_untouched():
    space = load_space("small")
    limited = space.restrict("family", ["prefix_lm", "decoder"])
    assert limited.param("family").choices == CAUSAL  # the space's order, not the argument's
    assert space.param("family").choices == ("decoder", "encoder", "prefix_lm", "encoder_decoder")
    assert [p.name for p in limited.params] == [p.name for p in space.params]
    assert limited.param("d_model") is space.param("d_model")


def test_sampling_never_leaves_the_restriction():
    limited = load_space("tiny").restrict("family", CAUSAL)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        arch = limited.sample(trial, **DATA)
        assert arch["family"] in CAUSAL
        study.tell(trial, 0.0)
    assert {t.params["family"] for t in study.trials} == set(CAUSAL)


def test_nothing_to_change_returns_the_same_space():
    space = load_space("tiny")
    assert space.restrict("family", ["decoder", "encoder", "prefix_lm"]) is space
    fixed = _space(fixed={"family": "decoder", "n_layer": 1})
    assert fixed.restrict("family", CAUSAL) is fixed
    default = _space(params={"n_layer": {"type": "int", "low": 1, "high": 2}})
    assert default.restrict("family", CAUSAL) is default  # family stays 'decoder'


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"params": {"family": {"type": "categorical", "choices": ["encoder"]}}},
            "search space 't': entry 'family': none of its choices (encoder) is allowed; only "
            "decoder, prefix_lm can serve (task 'translation' needs decoder or prefix_lm)",
        ),
        (
            {"fixed": {"family": "encoder"}},
            "search space 't': family='encoder' is fixed, but only decoder, prefix_lm can serve",
        ),
        (
            {"params": {"n_layer": {"type": "int", "low": 1, "high": 2}}},
            "cannot restrict 'n_layer': only categorical entries can be restricted",
        ),
        ({"fixed": {"n_layer": 1}}, "cannot restrict 'famly': not a TransformerConfig field"),
    ],
)
def test_impossible_restrictions_are_one_line_errors(space, message):
    field = "famly" if "famly" in message else "n_layer" if "n_layer" in message else "family"
    allowed = [1] if field == "n_layer" else list(CAUSAL)
    with pytest.raises(SearchSpaceError) as err:
        _space(**space).restrict(
            field, allowed, why="task 'translation' needs decoder or prefix_lm"
        )
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_conditions_on_a_removed_value_never_hold():
    space = _space(
        params={
            "family": {"type": "categorical", "choices": ["decoder", "encoder"]},
            "n_layer": {"type": "int", "low": 1, "high": 3, "when": {"family": ["encoder"]}},
        }
    )
    limited = space.restrict("family", CAUSAL)
    trial = optuna.create_study().ask()
    arch = limited.sample(trial, **DATA)
    assert arch["family"] == "decoder" and "n_layer" not in trial.params
    # A conditional entry whose fallback is not allowed cannot be restricted silently.
    cond = _space(
        params={
            "n_head": {"type": "categorical", "choices": [2, 4]},
            "family": {
                "type": "categorical",
                "choices": ["decoder", "encoder"],
                "when": {"n_head": [4]},
                "default": "encoder",
            },
        }
    )
    with pytest.raises(SearchSpaceError, match="its value when its condition fails"):
        cond.restrict("family", CAUSAL)
