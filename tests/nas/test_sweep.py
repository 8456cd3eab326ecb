"""W&B sweeps: sweep.yaml from every built-in space, sampled values back through nas/train.py."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from lightning_modules.config import TransformerConfig
from nas.config.errors import ConfigError
from nas.engine.run import run_train
from nas.engine.wandb_sweep import max_layers, sweep_arch, sweep_config, write_sweep
from search_spaces import SearchSpaceError, builtin_spaces, load_space
from tests.conftest import REPO, SEARCH_ONLY, compose_config, tiny_overrides
from tests.nas.test_tracking import read_finished

DATA = {"vocab_size": 384, "max_seq_len": 128}


def draw(spec: dict, rng: random.Random, edge: str | None = None):
    """One value of a W&B parameter spec, drawn as W&B's sweep engine does (``edge``: min/max)."""
    if "values" in spec:
        values = spec["values"]
        return {"min": values[0], "max": values[-1]}.get(edge, rng.choice(values))
    dist, low, high = spec["distribution"], spec["min"], spec["max"]
    if edge:
        x = low if edge == "min" else high
    elif "log" in dist:
        x = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif dist == "int_uniform":
        return rng.randint(low, high)
    else:
        x = rng.uniform(low, high)
    if "q" in spec:  # W&B rounds to multiples of q
        q = spec["q"]
        x = round(x / q) * q
        if all(isinstance(v, int) for v in (low, high, q)):
            x = int(x)
    return x


def train_config(sweep: dict, values: dict, extra: list[str] | None = None):
    """Compose nas/train.py's config as ``wandb agent`` would call it with ``values``."""
    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    overrides = list(extra or [])
    for part in sweep["command"]:
        if part == "${args_override_hydra}":
            overrides += args["args_override_hydra"]  # W&B's own formatting: ++params.x=None
        elif not part.startswith("${"):
            overrides.append(part)
    return compose_config("train", overrides)


@pytest.mark.parametrize("name", builtin_spaces())
@pytest.mark.parametrize("method", ["bayes", "random"])
def test_sweep_yaml_covers_the_space(name, method):
    space = load_space(name)
    sweep = sweep_config(space, method=method).config
    assert sweep["method"] == method and sweep["program"] == "nas/train.py"
    assert sweep["metric"] == {"name": "adaptability", "goal": "maximize"}
    assert sweep["command"][-1] == "${args_override_hydra}"
    assert f"search_space={name}" in sweep["command"] and "logger=wandb" in sweep["command"]
    expected = set()
    for p in space.params:
        names = (
            [f"params.{p.name}.{i}" for i in range(max_layers(space))]
            if p.per_layer
            else [f"params.{p.name}"]
        )
        expected |= set(names)
        for n in names:
            spec = sweep["parameters"][n]
            if p.type == "categorical":
                assert spec["values"] == list(p.choices)
            else:
                assert (spec["min"], spec["max"]) == (p.low, p.high)
    assert set(sweep["parameters"]) == expected
    # the file round-trips through YAML as W&B reads it
    assert yaml.safe_load(sweep_config(space, method=method).to_yaml()) == sweep


@pytest.mark.parametrize("name", builtin_spaces())
def test_sampled_values_build_valid_architectures(name):
    space = load_space(name)
    sweep = sweep_config(space).config
    rng = random.Random(name)
    draws = [
        {k: draw(s, rng, edge) for k, s in sweep["parameters"].items()} for edge in ("min", "max")
    ]
    draws += [{k: draw(s, rng) for k, s in sweep["parameters"].items()} for _ in range(6)]
    for values in draws:
        cfg = train_config(sweep, values)
        arch = sweep_arch(cfg, DATA)
        assert isinstance(arch, TransformerConfig) and arch.num_params() > 0
        assert arch.vocab_size == DATA["vocab_size"]
        # What the space says these values mean, built independently of nas/sweep.py.
        want = dict(space.fixed)
        for p in space.params:
            enabled = all(values[f"params.{k}"] in v for k, v in p.when.items())
            if p.per_layer:  # one value per block (encoder_decoder: both stacks); rest ignored
                blocks = want["n_layer"] + (want.get("n_dec_layer") or 0)
                want[p.name] = [values[f"params.{p.name}.{i}"] for i in range(blocks)]
            elif not enabled:  # the condition failed: the sampled value is ignored
                want[p.name] = p.fallback
            else:
                want[p.name] = values[f"params.{p.name}"]
        expected = TransformerConfig.from_dict({**want, **DATA})
        got = arch.to_dict()
        for key, value in expected.to_dict().items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, abs=1e-9), key
                assert got[key] == round(got[key], 12), key  # snapped: no 0.15000000000000002
            else:
                assert got[key] == value and type(got[key]) is type(value), key


def sweeps_schema() -> dict:
    """The JSON schema of W&B's sweep configs, read from the ``sweeps`` package's files.

    Read, not imported: ``import sweeps`` pulls in its engine (scikit-learn, numpy<2 pins), while
    the schema is a plain JSON file. ``make setup`` installs the package with ``--no-deps``.
    """
    spec = importlib.util.find_spec("sweeps")
    assert spec is not None and spec.submodule_search_locations, (
        "W&B's sweeps package is missing: pip install --no-deps sweeps (make setup does)"
    )
    path = Path(next(iter(spec.submodule_search_locations))) / "config" / "schema.json"
    return json.loads(path.read_text())


def test_every_generated_sweep_meets_wandbs_sweep_schema():
    schema = sweeps_schema()
    validator = jsonschema.Draft7Validator(schema)
    validator.check_schema(schema)
    checked = 0
    for name in builtin_spaces():
        for method in ("random", "bayes"):
            sweep = sweep_config(load_space(name), method=method).config
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(sweep)]
            assert errors == [], (name, method, errors)
            checked += 1
    assert checked == 2 * len(builtin_spaces())
    # The schema has teeth: what W&B would refuse, it refuses.
    sweep = sweep_config(load_space("tiny")).config
    broken = {**sweep, "method": "anneal"}
    assert list(validator.iter_errors(broken))
    first = next(iter(sweep["parameters"]))
    bad_param = {**sweep["parameters"], first: {"distribution": "zipf", "min": 1, "max": 2}}
    assert list(validator.iter_errors({**sweep, "parameters": bad_param}))


def test_with_wandbs_own_sweep_engine():
    """Validate with W&B's sweep schema and sample with its engine (random and bayes)."""
    sweeps = pytest.importorskip(
        "sweeps", reason="W&B's sweep engine is not installed (pip install 'wandb[sweeps]')"
    )
    space = load_space("small")
    for method in ("random", "bayes"):
        sweep = sweep_config(space, method=method).config
        assert sweeps.schema_violations_from_proposed_config(sweep) == []
        for _ in range(3):
            run = sweeps.next_run(sweep, [])
            values = {k: v["value"] for k, v in run.config.items()}
            values = {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}
            arch = sweep_arch(train_config(sweep, values), DATA)
            assert arch.n_layer == values["params.n_layer"]


def test_bad_sampled_values_are_one_line_errors():
    sweep = sweep_config(load_space("tiny")).config
    base = {k: draw(s, random.Random(0), "min") for k, s in sweep["parameters"].items()}
    with pytest.raises(SearchSpaceError, match=r"params\.n_layr: not a parameter.*params\.n_layer"):
        sweep_arch(train_config(sweep, {**base, "params.n_layr": 2}), DATA)
    with pytest.raises(SearchSpaceError, match="n_layer=7 is not a value"):
        sweep_arch(train_config(sweep, {**base, "params.n_layer": 7}), DATA)
    with pytest.raises(SearchSpaceError, match="'mlp=tanh'|mlp='tanh'"):
        sweep_arch(train_config(sweep, {**base, "params.mlp": "tanh"}), DATA)
    cfg = compose_config("train", ["++params.n_layer=1"])
    with pytest.raises(ConfigError, match="search_space"):
        sweep_arch(cfg, DATA)


def sweep_main(argv: list[str]):
    """What ``nas/sweep.py <argv>`` runs, in this process."""
    return write_sweep(compose_config("sweep", argv), argv)


def test_cli_writes_sweep_yaml_and_prints_the_differences(tmp_path, capsys):
    out = tmp_path / "sweep.yaml"
    sweep_main(["search_space=small", "method=random", f"out={out}", "task=qa", "project=p"])
    printed = capsys.readouterr().out
    written = yaml.safe_load(out.read_text())
    assert written["method"] == "random" and written["project"] == "p"
    assert "task=qa" in written["command"]
    assert "params.n_kv_head: sampled in every run but used only when n_head in [4, 8]" in printed
    assert "params.n_dec_layer: sampled in every run but used only when family in" in printed
    # One d_ff per possible block: an encoder_decoder has up to 3 + 2 of them.
    assert "params.d_ff.0 .. params.d_ff.4" in printed
    assert out.read_text().startswith("# params.")  # the differences head the file too


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    out = f"out={tmp_path / 's.yaml'}"
    with pytest.raises(SearchSpaceError, match="did you mean 'small'"):
        sweep_main(["search_space=smal", out])
    for args, line in [
        ([out, "method=grid"], "method='grid' is not one of bayes, random"),
        (  # a run's override is checked as nas/train.py checks it
            [out, "pretrain.tokenz=5"],
            "pretrain.tokenz=5: unknown key 'pretrain.tokenz' (did you mean pretrain.tokens?)",
        ),
    ]:
        proc = subprocess.run(
            [sys.executable, "nas/sweep.py", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [f"adaptnas: error: {line}"]
    assert not (tmp_path / "s.yaml").exists()


@pytest.mark.usefixtures("offline_wandb")
def test_a_sweep_run_trains_the_architecture_and_logs_adaptability(tmp_path):
    sweep = sweep_config(load_space("tiny")).config
    values = {k: draw(s, random.Random(1)) for k, s in sweep["parameters"].items()}
    tiny = [o for o in tiny_overrides(tmp_path, "qa") if not o.startswith(SEARCH_ONLY)]
    cfg = train_config(sweep, values, extra=tiny)
    result = run_train(cfg)
    assert result.arch.n_layer == values["params.n_layer"]
    assert result.arch.family == values["params.family"]
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_finished(folder)
    assert run["job_type"] == "train" and run["exit_code"] == 0
    assert run["config"]["arch"] == result.arch.to_dict()
    assert run["config"]["params"]["n_layer"] == values["params.n_layer"]
    # the sweep's metric, in history and summary
    assert [r["adaptability"] for r in run["history"] if "adaptability" in r] == [
        pytest.approx(result.adaptability)
    ]
    assert run["summary"]["adaptability"] == pytest.approx(result.adaptability)
    assert run["summary"]["score/qa"] == pytest.approx(result.task_scores["qa"])
    assert "test/qa" not in run["summary"]  # test=false: test splits are for finalists
