"""strategy=supernet: the space one super-network covers, its pretraining, resume, lock, search."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.export import load_safetensors, save_safetensors
from lightning_modules.model import build_model
from lightning_modules.supernet import SuperNetwork, check_fits
from nas.config.errors import ConfigError
from nas.strategies.supernet import (
    FINAL,
    LOCK,
    PROGRESS,
    SubnetSampler,
    budget_steps,
    build_lock,
    ensure_supernet,
    pretrain_supernet,
    spec_of,
    strategy_settings,
    super_config,
    supernet_dir,
    supernet_space,
)
from search_spaces import SearchSpace, SearchSpaceError, load_space

REPO = Path(__file__).resolve().parents[2]
DATA = {"vocab_size": 64, "max_seq_len": 16}


class FakeSuite:
    """What super-network pretraining reads of a ``Suite``: no tokenizer, learnable blocks.

    Each block counts up from a random start with a random stride (mod 59), so the next token
    follows from the last two.
    """

    def __init__(self):
        g = torch.Generator().manual_seed(0)

        def blocks(n: int) -> torch.Tensor:
            start = torch.randint(0, 59, (n, 1), generator=g)
            stride = torch.randint(1, 4, (n, 1), generator=g)
            return 5 + (start + stride * torch.arange(17)) % 59

        self.train_blocks, self.val_blocks = blocks(64), blocks(8)
        self.special_ids = {"mask": 4, "n_special": 5}
        self.vocab_size, self.seq_len, self.tasks = 64, 16, {}


PRETRAIN = {"tokens": 128, "batch_size": 4, "lr": 3e-3, "weight_decay": 0.01, "warmup_frac": 0.1}
TRAINER = {"accelerator": "cpu", "precision": "32-true", "gradient_clip_val": 1.0}


def setup(**strategy):
    """A tiny super-network run: the tiny space, 24 steps, a checkpoint every 4."""
    torch.set_num_threads(1)
    space = supernet_space(load_space("tiny"))
    torch.manual_seed(0)
    net = SuperNetwork(super_config(space, DATA))
    settings = strategy_settings({"tokens": 24 * 4 * 16, "checkpoint_every": 4, **strategy})
    return net, SubnetSampler(space, DATA), FakeSuite(), settings


def run_cfg(**strategy) -> dict:
    return {
        "strategy": {"name": "supernet", "tokens": 8 * 4 * 16, **strategy},
        "pretrain": PRETRAIN,
        "trainer": TRAINER,
        "data": {"seed": 0},
        "seed": 0,
    }


# ---- the space ----------------------------------------------------------------------------------
def test_supernet_section_fixes_the_knobs_that_cannot_share_weights():
    space = supernet_space(load_space("small"))
    names = [p.name for p in space.params]
    for knob in ("mlp", "norm", "norm_position", "pos", "tie_embeddings"):
        assert knob not in names and knob in space.fixed
    assert space.param("family").choices == ("decoder", "prefix_lm")
    for elastic in ("n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "dropout"):
        assert elastic in names
    big = super_config(space, DATA)
    assert (big.n_layer, big.d_model, big.d_ff) == (3, 128, [512, 512, 512])
    assert big.pos == "rope" and big.family == "decoder"


def test_strategy_fixed_overrides_the_section():
    space = supernet_space(load_space("tiny"), {"pos": "alibi", "n_layer": 1})
    assert space.fixed["pos"] == "alibi" and space.fixed["n_layer"] == 1
    assert super_config(space, DATA).n_layer == 1


def _without_section(name: str) -> SearchSpace:
    data = load_space(name).to_dict()
    data.pop("supernet")
    return SearchSpace.from_dict(data)


def test_a_shared_knob_that_varies_is_a_one_line_error_naming_it():
    with pytest.raises(SearchSpaceError, match=r"strategy=supernet: mlp varies \(gelu, relu, swig"):
        supernet_space(_without_section("small"))
    fixed = {"mlp": "gelu", "norm": "rmsnorm", "norm_position": "pre", "pos": "rope"}
    with pytest.raises(SearchSpaceError, match="tie_embeddings varies") as err:
        supernet_space(_without_section("small"), fixed)
    assert "\n" not in str(err.value) and "+strategy.fixed.tie_embeddings" in str(err.value)


def test_encoders_cannot_share_with_decoders():
    with pytest.raises(SearchSpaceError, match="family varies .*encoders learn another objective"):
        supernet_space(load_space("tiny"), {"family": ["decoder", "encoder"]})
    space = supernet_space(load_space("tiny"), {"family": "encoder"})
    assert super_config(space, DATA).family == "encoder"


def test_a_rule_the_space_cannot_take_is_an_error():
    with pytest.raises(SearchSpaceError, match="pos='rotary'"):
        supernet_space(load_space("tiny"), {"pos": "rotary"})
    with pytest.raises(SearchSpaceError, match="'widths' is not a TransformerConfig field"):
        supernet_space(load_space("tiny"), {"widths": 3})
    with pytest.raises(SearchSpaceError, match="supernet: 'vocab_size'"):
        SearchSpace.from_dict({"params": {}, "supernet": {"vocab_size": 3}}, name="x")


def test_sampler_draws_valid_sub_networks_of_the_super_network():
    space = supernet_space(load_space("small"))
    sampler = SubnetSampler(space, DATA)
    big = super_config(space, DATA)
    assert sampler.largest.describe() == "decoder L3 d128 h8/8 ff512 gelu layernorm-pre rope"
    assert sampler.smallest.describe() == "decoder L1 d64 h2/2 ff128 gelu layernorm-pre rope"
    subs = sampler.sandwich(7, 30)
    assert subs[:2] == [sampler.largest, sampler.smallest]
    for sub in subs:
        check_fits(big, sub)
    assert len({s.describe() for s in subs}) > 10  # random ones vary
    assert sampler.sandwich(7, 30) == subs  # and are a function of the seed


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("sandwich_random", -1, "strategy.sandwich_random=-1 must be an integer >= 0"),
        ("tokens_factor", 0, "strategy.tokens_factor=0 must be a positive number"),
        ("checkpoint_every", 2.5, "strategy.checkpoint_every=2.5 must be a positive integer"),
        ("distill_weight", 2, "strategy.distill_weight=2 must be a number in [0, 1]"),
        (
            "tokenz",
            1,
            "strategy.tokenz=1: unknown key for a strategy (did you mean strategy.tokens?)",
        ),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        strategy_settings({"name": "supernet", key: value})


def test_budget_is_ten_times_a_candidates_by_default():
    settings = strategy_settings({"name": "supernet"})
    steps = budget_steps(settings, {"tokens": 64_000, "batch_size": 10}, 32)
    assert steps == 10 * 64_000 // (10 * 32)


# ---- pretraining, resume, lock ------------------------------------------------------------------
def test_pretraining_lowers_the_loss_of_largest_and_smallest(tmp_path):
    from nas.strategies.supernet import val_loss

    net, sampler, suite, settings = setup()
    before = [val_loss(net, s, suite) for s in (sampler.largest, sampler.smallest)]
    assert pretrain_supernet(net, sampler, suite, settings, PRETRAIN, TRAINER, tmp_path, 0) == 24
    after = [val_loss(net, s, suite) for s in (sampler.largest, sampler.smallest)]
    assert all(a < b for a, b in zip(after, before, strict=True))
    assert (tmp_path / PROGRESS).is_file()


KILLED = """
import sys, time
from pathlib import Path
from tests.nas.test_supernet import PRETRAIN, TRAINER, setup
from nas.strategies.supernet import pretrain_supernet

def stop(step):
    if step == 8:
        print("CHECKPOINT", step, flush=True)
        time.sleep(120)  # killed here

net, sampler, suite, settings = setup()
pretrain_supernet(net, sampler, suite, settings, PRETRAIN, TRAINER, Path(sys.argv[1]), 0, stop)
"""


def test_a_killed_pretraining_resumes_to_the_same_weights(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir(), whole.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(killed)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.split() == ["CHECKPOINT", "8"], line
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    net, sampler, suite, settings = setup()
    seen: list[int] = []
    pretrain_supernet(net, sampler, suite, settings, PRETRAIN, TRAINER, killed, 0, seen.append)
    assert seen == [12, 16, 20, 24]  # went on from the checkpoint of step 8
    ref, *_ = setup()
    pretrain_supernet(ref, sampler, suite, settings, PRETRAIN, TRAINER, whole, 0)
    for (k, a), b in zip(net.lm.state_dict().items(), ref.lm.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    fresh, *_ = setup()
    assert not torch.allclose(fresh.lm.backbone.tok_emb.weight, ref.lm.backbone.tok_emb.weight)


def test_ensure_builds_once_then_loads(tmp_path, monkeypatch):
    space = supernet_space(load_space("tiny"))
    net, folder = ensure_supernet(space, FakeSuite(), run_cfg(), tmp_path)
    assert (folder / FINAL).is_file() and not (folder / PROGRESS).exists()
    assert folder.parent == tmp_path / "supernet"
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["steps"] == 8 and spec["val_loss"]["largest"] > 0

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr("nas.strategies.supernet.pretrain_supernet", no_training)
    again, folder2 = ensure_supernet(space, FakeSuite(), run_cfg(continue_tokens=64), tmp_path)
    assert folder2 == folder  # continue_tokens is a trial setting: same super-network
    for a, b in zip(net.lm.state_dict().values(), again.lm.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(AssertionError, match="trained again"):  # another budget: another one
        ensure_supernet(space, FakeSuite(), run_cfg(sandwich_random=1), tmp_path)


def test_a_worker_waits_for_the_builder_and_loads_its_result(tmp_path, monkeypatch):
    space = supernet_space(load_space("tiny"))
    cfg = run_cfg()
    super_cfg = super_config(space, DATA)
    folder = supernet_dir(tmp_path, spec_of(space, super_cfg, cfg))
    folder.mkdir(parents=True)
    monkeypatch.setattr(
        "nas.strategies.supernet.pretrain_supernet", lambda *a, **k: pytest.fail("trained")
    )
    out: dict = {}
    with build_lock(folder / LOCK):  # another worker is building
        waiter = threading.Thread(
            target=lambda: out.update(net=ensure_supernet(space, FakeSuite(), cfg, tmp_path)[0])
        )
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()  # blocked on the lock
        built = SuperNetwork(super_cfg)
        save_safetensors(built.lm, folder / FINAL)
    waiter.join(30)
    got = out["net"].lm.state_dict()
    for k, v in built.lm.state_dict().items():
        assert torch.equal(got[k], v), k


def test_in_place_distillation_trains(tmp_path):
    net, sampler, suite, settings = setup(distill=True, sandwich_random=1)
    pretrain_supernet(net, sampler, suite, settings, PRETRAIN, TRAINER, tmp_path, 0)
    assert torch.isfinite(net.lm.backbone.tok_emb.weight).all()


# ---- a search -----------------------------------------------------------------------------------
def test_standalone_stays_the_default(tiny_cfg):
    cfg = tiny_cfg("qa")
    assert cfg.strategy.name == "standalone"


def test_a_tiny_supernet_search_end_to_end(tiny_cfg, caplog):
    from nas.engine.run import run_search

    extra = ["strategy=supernet", "n_trials=3", "strategy.tokens_factor=2", "export.keep_top_k=1"]
    cfg = tiny_cfg("qa", extra)
    with caplog.at_level("INFO", logger="adaptnas"):
        result = run_search(cfg)
    assert result.folder.name == "qa-tiny-supernet"  # never mixed with a standalone study
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    sub_folder = Path(trials[0].user_attrs["supernet"])
    assert (sub_folder / FINAL).is_file() and sub_folder.parent.parent == result.folder
    assert "supernet: pretraining" in caplog.text
    for t in trials:
        assert t.user_attrs["strategy"] == "supernet" and t.user_attrs["steps"]["pretrain"] == 0
        arch = TransformerConfig.from_dict(t.user_attrs["architecture"])
        assert arch.pos == "rope" and arch.family in ("decoder", "prefix_lm")
    # The winner's kept weights are a plain model: exactly the super-network's slices.
    best = result.study.best_trial
    arch = TransformerConfig.from_dict(best.user_attrs["architecture"])
    model = load_safetensors(
        build_model(arch), result.folder / "weights" / f"trial_{best.number}/backbone.safetensors"
    )
    data = {"vocab_size": arch.vocab_size, "max_seq_len": arch.max_seq_len}
    net = SuperNetwork(super_config(supernet_space(load_space("tiny")), data))
    load_safetensors(net.lm, sub_folder / FINAL)
    for k, v in net.extract(arch).state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k

    # Resumed with brief continued pretraining: the super-network is loaded, not rebuilt.
    caplog.clear()
    cfg = tiny_cfg("qa", [*extra[:1], "n_trials=4", *extra[2:], "strategy.continue_tokens=512"])
    with caplog.at_level("INFO", logger="adaptnas"):
        result = run_search(cfg)
    assert "supernet: loaded" in caplog.text and "supernet: pretraining" not in caplog.text
    last = result.study.trials[-1]
    assert last.state.name == "COMPLETE" and last.user_attrs["steps"]["pretrain"] == 1


def test_a_space_that_one_super_network_cannot_cover_leaves_no_study(tiny_cfg):
    from nas.engine.run import run_search

    cfg = tiny_cfg("qa", ["strategy=supernet", "n_trials=1", "+strategy.fixed.mlp=[gelu,relu]"])
    with pytest.raises(SearchSpaceError, match="mlp varies"):
        run_search(cfg)
    assert not (Path(cfg.paths.studies) / "qa-tiny-supernet" / "study.db").exists()


def test_inherited_vs_standalone_reads_the_validity_ranking(tmp_path):
    from nas.validity.report import inherited_vs_standalone

    doc = {"rank": {"study_scores": [0.5, 0.4, 0.3, None], "search": [0.6, 0.2, 0.1, 0.3]}}
    (tmp_path / "validity.json").write_text(json.dumps(doc))
    out = inherited_vs_standalone(tmp_path / "validity.json")
    assert out["n"] == 3 and out["kendall_tau"] == pytest.approx(1.0)
    doc["rank"]["search"] = [0.1, 0.2, 0.6, 0.3]
    assert inherited_vs_standalone(doc)["kendall_tau"] == pytest.approx(-1.0)
