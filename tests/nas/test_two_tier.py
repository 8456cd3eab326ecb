"""strategy=two_tier: the screen score, the screen's resume, the hand-off, a tiny search."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
import torch

from lightning_modules.config import TransformerConfig
from lightning_modules.supernet import SuperNetwork
from nas.config.errors import ConfigError
from nas.strategies.supernet import spec_of, super_config, supernet_dir, supernet_space
from nas.strategies.two_tier import (
    TwoTier,
    confirm_k,
    hand_off,
    open_screen,
    params_in,
    run_screen,
    screen_score,
)
from nas.study import references
from nas.study import screen as scr
from nas.study.screen import top_distinct
from nas.trial.record import REFERENCE, State
from search_spaces import SearchSpace, SearchSpaceError, load_space
from tests.nas.test_supernet import DATA, FakeSuite, run_cfg, strategy_settings

FULL = load_space("tiny")
NARROW = supernet_space(FULL)


def _net() -> SuperNetwork:
    torch.manual_seed(0)
    return SuperNetwork(super_config(NARROW, DATA))


def _arch(t: optuna.trial.FrozenTrial) -> dict:
    return NARROW.params_to_arch(t.params, **DATA)


def _screened(storage, name: str, n: int, seed: int = 0) -> optuna.Study:
    """A screen study of ``n`` random trials scored by a stand-in (depth x width x 1e-3 + eps)."""
    screen = optuna.create_study(
        study_name=scr.screen_name(name),
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    for _ in range(n):
        trial = screen.ask()
        arch = TransformerConfig.from_dict(NARROW.sample(trial, **DATA))
        trial.set_user_attr(scr.ARCH, arch.describe())
        score = arch.n_layer * arch.d_model * 1e-3 + sum(arch.d_ff) * 1e-6 + arch.n_head * 1e-8
        screen.tell(trial, score)
    return screen


# ---- the screen score ---------------------------------------------------------------------------
def test_the_screen_score_is_the_held_out_loss_and_deterministic():
    net, suite = _net(), FakeSuite()
    arch = TransformerConfig.from_dict(NARROW.sample(optuna.trial.FixedTrial(_fixed()), **DATA))
    first = screen_score(net, arch, suite)
    assert first == screen_score(net, arch, suite)  # the same architecture, the same score
    suite.train_blocks = suite.train_blocks.flip(0)  # the training text does not count
    assert screen_score(net, arch, suite) == first
    suite.val_blocks = suite.train_blocks[:8]  # the held-out text does
    assert screen_score(net, arch, suite) != first
    with pytest.raises(ConfigError, match="strategy.screen='acc'"):
        screen_score(net, arch, suite, "acc")


def test_the_suffix_loss_scores_both_families_on_the_same_tokens():
    net, suite = _net(), FakeSuite()
    decoder = TransformerConfig.from_dict(NARROW.sample(optuna.trial.FixedTrial(_fixed()), **DATA))
    prefix = TransformerConfig.from_dict({**decoder.to_dict(), "family": "prefix_lm"})
    # A prefix-LM's suffix loss is its own objective; a decoder's leaves its first tokens out.
    assert screen_score(net, prefix, suite, "suffix_loss") == screen_score(net, prefix, suite)
    suffix = screen_score(net, decoder, suite, "suffix_loss")
    assert suffix != screen_score(net, decoder, suite)
    assert suffix == screen_score(net, decoder, suite, "suffix_loss")  # deterministic


def _fixed() -> dict:
    return {"family": "decoder", "n_layer": 1, "d_model": 32, "n_head": 2, "n_kv_head": 1,
            "d_ff.0": 64}  # fmt: skip


# ---- the screen's resume ------------------------------------------------------------------------
def test_the_screen_resumes_after_a_kill_to_exactly_screen_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    main = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    cfg = {"sampler": {"_target_": "optuna.samplers.TPESampler", "n_startup_trials": 2}, "seed": 0}
    settings = strategy_settings({"name": "two_tier", "screen": "lm_loss"})
    net, suite = _net(), FakeSuite()
    screen = open_screen(main, cfg)
    assert run_screen(screen, NARROW, net, suite, 5, settings) == 5
    screen.ask()  # a trial in flight when the worker was killed: left RUNNING, not counted
    again = open_screen(optuna.load_study(study_name="s", storage=storage), cfg)
    assert again.study_name == "s-screen"
    assert run_screen(again, NARROW, net, suite, 12, settings) == 7
    assert len(scr.complete(again)) == 12
    assert run_screen(again, NARROW, net, suite, 12, settings) == 0  # complete: nothing to do
    for t in scr.complete(again):  # each one scored as the screen scores it
        arch = TransformerConfig.from_dict(_arch(t))
        assert t.value == screen_score(net, arch, suite) and t.user_attrs[scr.ARCH]


# ---- the hand-off -------------------------------------------------------------------------------
def test_top_distinct_takes_the_lowest_scores_one_per_architecture():
    trials = [
        optuna.trial.create_trial(value=v, params={}, distributions={}, user_attrs={"a": a})
        for v, a in [(0.5, "x"), (0.1, "y"), (0.2, "y"), (0.3, "z"), (0.4, "w")]
    ]
    for i, t in enumerate(trials):
        t.number = i
    picks = top_distinct(trials, 3, lambda t: {"a": t.user_attrs["a"], "dropout": t.number})
    assert [t.value for t in picks] == [0.1, 0.3, 0.4]  # y once (its best), dropout unseen


def _references(study: optuna.Study) -> list:
    refs, skipped = references.build(FULL, DATA, ["gpt2"])
    assert refs and not skipped
    references.enqueue(study, refs, skipped)
    return refs


def test_the_hand_off_enqueues_the_top_k_once_after_the_references(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    main = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    _references(main)
    screen = _screened(storage, "s", 40)
    args = (main, screen, NARROW, FULL, DATA, 3, tmp_path / "lock", {"screen": "lm_loss"})
    queued = hand_off(*args)
    best = top_distinct(screen.get_trials(), 3, _arch)
    assert queued == [t.number for t in best]
    assert len({json_arch(t) for t in best}) == 3
    waiting = main.get_trials(states=(State.WAITING,))
    assert REFERENCE in waiting[0].user_attrs  # the references first
    assert [t.user_attrs[scr.SCREEN_TRIAL] for t in waiting[1:]] == queued
    for t, s in zip(waiting[1:], best, strict=True):
        # The main study samples the whole space: the enqueued parameters give the screened arch.
        assert FULL.params_to_arch(t.system_attrs["fixed_params"], **DATA) == _arch(s)
        assert t.user_attrs[scr.SCREEN_SCORE] == s.value
    assert main.user_attrs[scr.STUDY_ATTR]["picks"] == queued
    with pytest.raises(SearchSpaceError, match="cannot take"):  # never a neighbour instead
        params_in(FULL.restrict("pos", ["learned"]), _arch(best[0]), DATA)
    # Called again (a resume, a second worker): nothing more.
    assert hand_off(*args) == []
    again = optuna.load_study(study_name="s", storage=storage)
    assert hand_off(again, *args[1:]) == []
    assert len(main.get_trials(states=(State.WAITING,))) == 4
    # A better screen trial that comes after the hand-off (a worker's trial in flight) does not
    # change the picks.
    late = screen.ask()
    NARROW.sample(late, **DATA)
    screen.tell(late, -1.0)
    assert hand_off(*args) == [] and main.user_attrs[scr.STUDY_ATTR]["picks"] == queued


def json_arch(t) -> str:
    import json

    return json.dumps({k: v for k, v in _arch(t).items() if k != "dropout"}, sort_keys=True)


def test_a_hand_off_killed_half_way_enqueues_only_what_is_missing(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    main = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    screen = _screened(storage, "s", 30)
    best = top_distinct(screen.get_trials(), 3, _arch)
    # The picks were written and the first one enqueued, then the worker died.
    main.set_user_attr(scr.STUDY_ATTR, {"picks": [t.number for t in best]})
    first = params_in(FULL, _arch(best[0]), DATA)
    main.enqueue_trial(first, user_attrs={scr.SCREEN_TRIAL: best[0].number})
    queued = hand_off(main, screen, NARROW, FULL, DATA, 3, tmp_path / "lock", {})
    assert queued == [best[1].number, best[2].number]
    numbers = [t.user_attrs[scr.SCREEN_TRIAL] for t in main.get_trials()]
    assert sorted(numbers) == sorted(t.number for t in best)


def test_the_screens_are_the_settings_choices():
    import dataclasses

    from nas.config.schema import StrategyConfig
    from nas.strategies.two_tier import SCREENS

    field = next(f for f in dataclasses.fields(StrategyConfig) if f.name == "screen")
    assert field.metadata["rule"].choices == SCREENS


def test_confirm_k_fills_n_trials_or_takes_the_setting():
    two = strategy_settings({"name": "two_tier", "screen": "lm_loss"})
    assert confirm_k(two, 12, 3) == 9 and confirm_k(two, 2, 3) == 1
    assert confirm_k(strategy_settings({"name": "two_tier", "confirm_top_k": 4}), 12, 3) == 4
    with pytest.raises(ConfigError, match="strategy.confirm_top_k=null"):
        confirm_k(two, None, 3)


def test_screen_settings_do_not_change_the_super_network():
    space, data = NARROW, DATA
    base = supernet_dir(Path("/s"), spec_of(space, super_config(space, data), run_cfg()))
    other = run_cfg(name="two_tier", screen_trials=7, confirm_top_k=2, screen="lm_loss")
    assert supernet_dir(Path("/s"), spec_of(space, super_config(space, data), other)) == base


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("screen_trials", "0", "strategy.screen_trials=0 must be a positive integer"),
        ("confirm_top_k", "-1", "strategy.confirm_top_k=-1 must be a positive integer"),
        ("screen", "acc", "strategy.screen='acc' must be one of lm_loss, suffix_loss"),
    ],
)
def test_a_bad_two_tier_setting_is_a_one_line_error_naming_the_key(tiny_cfg, key, value, says):
    from nas.config.check import check_config

    cfg = tiny_cfg("qa", ["strategy=two_tier", f"strategy.{key}={value}"])
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert says in str(err.value) and "\n" not in str(err.value)


# ---- a tiny search ------------------------------------------------------------------------------
TWO_TIER = [
    "strategy=two_tier",
    "strategy.tokens_factor=2",
    "strategy.screen=lm_loss",  # the default, adapted, has a test of its own below
    "strategy.screen_trials=12",
    "strategy.confirm_top_k=2",
    "references.designs=[gpt2]",
    "n_trials=2",  # raised to the reference and the two confirmations
]


def test_a_tiny_two_tier_search_end_to_end_and_resumed_in_the_confirmation_tier(
    tiny_cfg, caplog, capsys, monkeypatch
):
    import nas.engine.run as engine

    real = engine.run_trials
    # Killed after two trials (the reference, one confirmation): n_trials=2 is reached, the
    # second confirmation still waits.
    monkeypatch.setattr(engine, "run_trials", lambda study, obj, n, **kw: real(study, obj, 2, **kw))
    cfg = tiny_cfg("qa", TWO_TIER)
    with caplog.at_level("INFO", logger="adaptnas"):
        first = engine.run_search(cfg)
    assert first.folder.name == "qa-tiny-two-tier"
    assert "supernet: pretraining" in caplog.text and "n_trials 2 -> 3" in caplog.text
    states = [t.state.name for t in first.study.trials]
    assert states == ["COMPLETE", "COMPLETE", "WAITING"]
    screen = optuna.load_study(study_name="qa-tiny-two-tier-screen", storage=first.study._storage)
    assert len(scr.complete(screen)) == 12
    picks = first.study.user_attrs[scr.STUDY_ATTR]["picks"]

    # The resume: no new screen trial, no new pick, the first two are not run again.
    monkeypatch.setattr(engine, "run_trials", real)
    caplog.clear()
    with caplog.at_level("INFO", logger="adaptnas"):
        result = engine.run_search(tiny_cfg("qa", TWO_TIER))
    assert "supernet: pretraining" not in caplog.text and "screen: done" in caplog.text
    assert len(screen.get_trials()) == 12
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert trials[0].user_attrs[REFERENCE] == "gpt2"
    for t, before in zip(trials[:2], first.study.trials[:2], strict=True):
        assert t.datetime_complete == before.datetime_complete
    assert [t.user_attrs[scr.SCREEN_TRIAL] for t in trials[1:]] == picks
    screened = {t.number: t for t in screen.get_trials()}
    for t in trials[1:]:  # a full standalone trial of the screened architecture
        arch = TransformerConfig.from_dict(t.user_attrs["architecture"])
        assert arch.describe() == screened[t.user_attrs[scr.SCREEN_TRIAL]].user_attrs[scr.ARCH]
        assert t.user_attrs["steps"]["pretrain"] > 0 and "strategy" not in t.user_attrs

    # Both tiers in the results: the leaderboard's screen scores and screen.csv.
    rows = list(csv.DictReader(result.files["leaderboard"].open()))
    by_trial = {int(r["trial"]): r for r in rows}
    assert by_trial[0]["screen_score"] == ""
    for t in trials[1:]:
        assert float(by_trial[t.number]["screen_score"]) == pytest.approx(
            t.user_attrs[scr.SCREEN_SCORE], abs=1e-4
        )
    top = list(csv.DictReader(result.files["screen"].open()))
    assert [int(r["screen_trial"]) for r in top[:2]] == picks
    assert [r["confirmed_by"] for r in top[:2]] == [str(t.number) for t in trials[1:]]
    assert "screen tier: 12 candidates screened of 12" in capsys.readouterr().out
    from nas.reporting.plots import write_plots
    from nas.reporting.tracking import screen_summary

    said = screen_summary(result.study)  # W&B's study run summary
    assert said["screen/screened"] == 12 and said["screen/confirmed"] == 2
    assert said["screen/build_seconds"] > 0 and said["screen/seconds"] > 0

    plots = write_plots(result.study, result.folder / "plots")
    assert "screen_tier" in plots.written and "screen_tier" not in plots.skipped


def test_two_workers_handing_off_at_once_enqueue_each_pick_once(tmp_path, monkeypatch):
    import threading
    import time

    from nas.strategies import two_tier

    storage = optuna.storages.InMemoryStorage()
    main = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    screen = _screened(storage, "s", 30)
    real = scr.confirmed

    def slow(study):  # what is there is read, then a while passes before anything is enqueued
        there = real(study)
        time.sleep(0.3)
        return there

    monkeypatch.setattr(two_tier.scr, "confirmed", slow)
    args = (screen, NARROW, FULL, DATA, 3, tmp_path / "lock", {})
    got: list[list[int]] = []
    workers = [threading.Thread(target=lambda: got.append(hand_off(main, *args))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(map(len, got)) == [0, 3]  # one worker enqueued, the other found them there
    assert len(main.get_trials()) == 3


# ---- the task-adapted super-network (strategy.screen=adapted) -----------------------------------
@pytest.fixture
def adapted_setup(tiny_cfg, tmp_path):
    """The tiny suite's run config, narrowed space, suite and a (not pretrained) super-network."""
    from nas.config.nodes import plain
    from nas.engine.run import load_suite
    from nas.trial.run import data_fields

    cfg = tiny_cfg("suite", ["strategy=two_tier", "strategy.screen=adapted"])
    run = plain(cfg)
    for name in run["tasks"]:
        run["tasks"][name]["steps"] = 3
    suite = load_suite(cfg)
    space = supernet_space(load_space(str(cfg.search_space)))
    torch.manual_seed(0)
    net = SuperNetwork(super_config(space, data_fields(suite)))
    return run, space, suite, net, tmp_path / "sn"


def _subs(space, suite):
    """A decoder and a prefix-LM narrower than the super-network, each other layer widths."""
    from nas.strategies.supernet import SubnetSampler
    from nas.trial.run import data_fields

    small = SubnetSampler(space, data_fields(suite)).smallest
    wide = {**small.to_dict(), "d_ff": [max(small.d_ff)] + small.d_ff[1:]}
    return [small, TransformerConfig.from_dict({**wide, "family": "prefix_lm"})]


def test_a_sub_network_of_the_adapted_super_network_equals_its_extracted_model(adapted_setup):
    from nas.strategies.adapted import ensure_adapted, extract, sub_modules

    run, space, suite, net, folder = adapted_setup
    adapted = ensure_adapted(net, space, suite, run, folder, strategy_settings(run["strategy"]))
    assert not torch.equal(adapted.nets["qa"].lm.lm_head.weight, net.lm.lm_head.weight)
    subs = _subs(space, suite)
    assert subs[0].d_model < net.super_cfg.d_model  # the heads' columns are really sliced
    for name, task in suite.tasks.items():
        big, head = adapted.nets[name], adapted.heads[name]
        batch = next(iter(task.loader("validation", 4)))
        for sub in subs:
            sliced = [m.eval() for m in sub_modules(big, head, sub, task)]
            alone = [m.eval() for m in extract(big, head, sub, task)]
            with torch.no_grad():
                if task.needs_lm_head:  # generation: the sliced LM head's logits
                    got, want = (b(batch["input_ids"]) for b, _ in (sliced, alone))
                else:  # the head on the backbone's states (pooling by the sub's family)
                    kw = task.backbone_kwargs(sub, batch)
                    got, want = (
                        h(b(batch["input_ids"], **kw), batch["attention_mask"])
                        for b, h in (sliced, alone)
                    )
            for g, w in zip(
                *(x if isinstance(x, tuple) else (x,) for x in (got, want)), strict=True
            ):
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
            if not task.needs_lm_head:  # (decoding needs a KV cache: the extracted model's)
                assert task.predict(*sliced, batch) == task.predict(*alone, batch), (name, sub)


def test_the_adapted_screen_is_deterministic_and_scores_adaptation(adapted_setup):
    from nas.strategies.adapted import ensure_adapted, task_scores

    run, space, suite, net, folder = adapted_setup
    settings = strategy_settings(run["strategy"])
    adapted = ensure_adapted(net, space, suite, run, folder, settings)
    arch = _subs(space, suite)[1]
    first = screen_score(net, arch, suite, "adapted", adapted)
    scores = task_scores(adapted, arch, suite)
    assert first == pytest.approx(-sum(scores.values()) / len(scores))  # minus the mean
    assert screen_score(net, arch, suite, "adapted", adapted) == first
    # Built again elsewhere from the same super-network: the same weights, the same score.
    again = ensure_adapted(net, space, suite, run, folder.parent / "other", settings)
    assert screen_score(net, arch, suite, "adapted", again) == first
    # Adapted another way (more steps): another score.
    for name in run["tasks"]:
        run["tasks"][name]["steps"] = 12
    longer = ensure_adapted(net, space, suite, run, folder, settings)
    assert screen_score(net, arch, suite, "adapted", longer) != first
    with pytest.raises(ConfigError, match="needs the task-adapted super-network"):
        screen_score(net, arch, suite, "adapted")


def test_the_adapted_super_networks_are_built_once_and_reused_on_resume(adapted_setup, monkeypatch):
    from nas.strategies import adapted as ad

    run, space, suite, net, folder = adapted_setup
    settings = strategy_settings(run["strategy"])
    real, built = ad.adapt_supernet, []

    def counting(net, head, sampler, task, *args):
        built.append(task.name)
        return real(net, head, sampler, task, *args)

    monkeypatch.setattr(ad, "adapt_supernet", counting)
    first = ad.ensure_adapted(net, space, suite, run, folder, settings)
    assert built == list(suite.tasks) and set(first.seconds) == set(suite.tasks)
    files = sorted((folder / ad.FOLDER).glob("*.safetensors"))
    assert len(files) == len(suite.tasks)
    files[0].unlink()  # a kill before this task's file was written
    built.clear()
    again = ad.ensure_adapted(net, space, suite, run, folder, settings)
    assert built == [files[0].name.split("-")[0]]  # only the missing task is adapted again
    for name in suite.tasks:
        for a, b in zip(first.nets[name].parameters(), again.nets[name].parameters(), strict=True):
            assert torch.equal(a, b)
        for a, b in zip(
            first.heads[name].parameters(), again.heads[name].parameters(), strict=True
        ):
            assert torch.equal(a, b)
    built.clear()
    ad.ensure_adapted(net, space, suite, run, folder, settings)
    assert built == []


def test_a_tiny_two_tier_search_with_the_adapted_screen(tiny_cfg, caplog):
    import nas.engine.run as engine
    from nas.strategies.adapted import FOLDER

    extra = [o for o in TWO_TIER if not o.startswith("strategy.screen")]
    cfg = tiny_cfg("qa", [*extra, "strategy.screen=adapted", "strategy.screen_trials=6"])
    with caplog.at_level("INFO", logger="adaptnas"):
        result = engine.run_search(cfg)
    assert "adapted supernet: qa" in caplog.text
    doc = result.study.user_attrs[scr.STUDY_ATTR]
    assert doc["screen"] == "adapted"
    screen = optuna.load_study(study_name=doc["screen_study"], storage=result.study._storage)
    values = [t.value for t in scr.complete(screen)]
    assert len(values) == 6 and all(-1.0 <= v <= 0.0 for v in values)
    assert len(list((Path(doc["supernet"]) / FOLDER).glob("qa-*.safetensors"))) == 1
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    by = {t.number: t.value for t in scr.complete(screen)}
    assert by[doc["picks"][0]] == min(values)  # the best adapted screen score is confirmed
    assert [t.user_attrs[scr.SCREEN_SCORE] for t in trials[1:]] == [by[n] for n in doc["picks"]]


def test_a_space_one_super_network_cannot_cover_names_two_tier_in_its_error():
    data = load_space("small").to_dict()
    data.pop("supernet")
    space = SearchSpace.from_dict(data)
    with pytest.raises(SearchSpaceError, match=r"strategy=two_tier: mlp varies \(gelu, relu"):
        TwoTier().space(strategy_settings({"name": "two_tier"}), space)
