"""Overhead: where a default trial's wall time goes besides forward, backward and optimizer steps.

Runs real trials of the default search (``conf/search.yaml``: ``small`` space, built-in suite,
TPE, Hyperband, SQLite storage) through ``nas.engine.optuna_objective.Objective`` and
``study.optimize``, as ``nas/search.py`` does, and splits their wall time with Lightning callback
hooks:

* compute: forward (``training_step``: model, loss, divergence check, ``self.log``), backward,
  optimizer step (gradient clipping included);
* per-trial overhead: zero_grad, data and loop (fetching batches, Lightning's loop between steps),
  evaluation (validation passes), test scoring (only trials that enter the top k score their test
  splits), Lightning set-up and teardown (trainer construction, ``fit`` outside its steps), model
  build and copies, Optuna and the objective's bookkeeping (sampling, storage writes, pruning
  reports, ``gc_after_trial``);
* per-process costs, paid once per worker and shared by its trials: interpreter start and imports
  (measured in a fresh subprocess), Hydra composition, building the suite (corpus, tasks,
  tokenizer, tokenisation, blocks, task encoding) cold and with the on-disk tokenizer cache,
  opening the study. Checkpointing is off in every trial (``enable_checkpointing=False``).

    python benchmarks/overhead.py                 # 1 default trial: 5-10 min on 2 cores
    python benchmarks/overhead.py --trials 3 task=[sentiment,qa]   # Hydra overrides
    python benchmarks/overhead.py --quick         # two tasks, tiny budgets, ~30 s
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    REPO,
    base_parser,
    machine,
    median,
    print_table,
    run_and_write,
    set_threads,
    sync,
    warn_if_loaded,
)
from nas.config.nodes import TINY as TINY_BUDGETS  # noqa: E402
from nas.trial.hooks import TrialHook  # noqa: E402

COMPUTE = ("forward", "backward", "optimizer")
# The smoke mode: two tasks and the tiny budgets of tests/conftest.py's TINY.
QUICK_OVERRIDES = [
    "task=[sentiment,qa]",
    "search_space=tiny",
    *TINY_BUDGETS,
    "tasks.qa.source.n_train=96",
    "tasks.qa.source.n_val=32",
    "tasks.qa.source.n_test=32",
    "tasks.qa.max_len=96",
    "tasks.sentiment.source.n_train=96",
    "tasks.sentiment.source.n_val=32",
    "tasks.sentiment.source.n_test=32",
    "tasks.sentiment.steps=null",
]

IMPORT_PROBE = r"""
import json, time
t0 = time.perf_counter()
marks = {}
import torch; marks["torch"] = time.perf_counter()
import pytorch_lightning; marks["pytorch_lightning"] = time.perf_counter()
import optuna; marks["optuna"] = time.perf_counter()
import hydra, omegaconf; marks["hydra"] = time.perf_counter()
import nas.engine.run, nas.engine.optuna_objective, search_spaces
marks["adaptnas"] = time.perf_counter()
print(json.dumps({k: v - t0 for k, v in marks.items()}))
"""


class Clock:
    """Accumulates named durations."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def time(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - t0


class PhaseTimer(pl.Callback):
    """Splits every ``fit``/``validate`` of a trial into phases with Lightning's hooks.

    Step order in Lightning 2.x automatic optimisation: ``on_train_batch_start`` ->
    ``training_step`` -> ``on_before_zero_grad`` -> zero_grad -> ``on_before_backward`` ->
    backward -> ``on_after_backward`` -> clipping and ``optimizer.step`` -> ``on_train_batch_end``.
    """

    def __init__(self, totals: dict[str, float], device: torch.device):
        self.totals, self.device = totals, device
        self.t: dict[str, float] = {}
        self.last_end: float | None = None
        self.steps = 0

    def _now(self) -> float:
        sync(self.device)
        return time.perf_counter()

    def _add(self, name: str, since: str, now: float) -> None:
        self.totals[name] += now - self.t[since]

    def on_train_start(self, trainer, pl_module) -> None:
        self.last_end = self._now()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = self._now()
        if self.last_end is not None:
            self.totals["data_and_loop"] += now - self.last_end
        self.t["batch_start"] = now

    def on_before_zero_grad(self, trainer, pl_module, optimizer) -> None:
        now = self._now()
        self._add("forward", "batch_start", now)
        self.t["zero"] = now

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        now = self._now()
        self._add("zero_grad", "zero", now)
        self.t["backward"] = now

    def on_after_backward(self, trainer, pl_module) -> None:
        now = self._now()
        self._add("backward", "backward", now)
        self.t["optimizer"] = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = self._now()
        self._add("optimizer", "optimizer", now)
        self.last_end = now
        self.steps += 1

    def on_validation_start(self, trainer, pl_module) -> None:
        self.t["validation"] = self._now()

    def on_validation_end(self, trainer, pl_module) -> None:
        now = self._now()
        # Test splits are scored only for trials that enter the top k (nas.trial.stages.score_test).
        split = getattr(pl_module, "eval_split", "validation")
        self._add("test_scoring" if split == "test" else "evaluation", "validation", now)
        if self.last_end is not None:
            self.last_end = now  # validation inside fit is not "data and loop"

    def on_train_end(self, trainer, pl_module) -> None:
        self.last_end = None


class TimingHook(TrialHook):
    """Trial hooks (``nas.trial.hooks.TrialHook``) that cut the running totals per trial.

    ``TimingHook.pair`` gives two hooks sharing one record: the first goes before every other hook
    (its ``on_trial_start`` takes the snapshot), the second after them (its ``on_trial_end`` takes
    the difference), so the other hooks' time falls inside the trial.
    """

    def __init__(self, totals: dict[str, float], record: dict, role: str):
        self.totals, self.record, self.role = totals, record, role

    @classmethod
    def pair(cls, totals: dict[str, float]) -> tuple[TimingHook, TimingHook]:
        record: dict = {"start": {}, "per_trial": {}}
        return cls(totals, record, "start"), cls(totals, record, "end")

    @property
    def per_trial(self) -> dict[int, dict[str, float]]:
        return self.record["per_trial"]

    def on_search_start(self, study, cfg) -> None:
        self.record["start"] = dict(self.totals)

    def on_trial_start(self, trial, arch) -> None:
        if self.role == "start":
            self.record["start"] = dict(self.totals)

    def logger_for(self, trial, stage):
        return None

    def on_stage(self, trial, stage, seconds, info) -> None:
        pass

    def on_trial_end(self, trial, state, result, reason) -> None:
        if self.role == "end":
            start = self.record["start"]
            self.per_trial[trial.number] = {
                k: v - start.get(k, 0.0) for k, v in self.totals.items()
            }
            self.record["start"] = dict(self.totals)

    def on_search_end(self, study) -> None:
        pass


@contextlib.contextmanager
def instrumented(totals: dict[str, float], device: torch.device):
    """Time the search's trainers, fits, model builds, trials and hooks while the block runs.

    Wraps ``nas.trial.stages.make_trainer`` (each trainer gets a ``PhaseTimer`` and timed ``fit``
    and ``validate``), ``nas.trial.stages.build_model``, ``nas.engine.optuna_objective.run_trial``
    and the hooks that ``nas.engine.run.build_hooks`` returns; the real functions run inside, and
    the originals are restored on exit. Yields the ``TimingHook`` that holds the per-trial totals.
    """
    import nas.engine.optuna_objective
    import nas.engine.run
    import nas.trial.stages

    originals = {
        (nas.trial.stages, "make_trainer"): nas.trial.stages.make_trainer,
        (nas.trial.stages, "build_model"): nas.trial.stages.build_model,
        (nas.engine.optuna_objective, "run_trial"): nas.engine.optuna_objective.run_trial,
        (nas.engine.run, "build_hooks"): nas.engine.run.build_hooks,
    }
    timer = PhaseTimer(totals, device)
    first, last = TimingHook.pair(totals)

    def timed(fn, name):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - t0

        return wrapper

    def make_trainer(trainer_cfg, max_steps, val_every, **extra):
        t0 = time.perf_counter()
        callbacks = [*extra.pop("callbacks", []), timer]
        trainer = originals[nas.trial.stages, "make_trainer"](
            trainer_cfg, max_steps, val_every, callbacks=callbacks, **extra
        )
        totals["trainer_construction"] += time.perf_counter() - t0
        trainer.fit = timed(trainer.fit, "fit_calls")
        trainer.validate = timed(trainer.validate, "fit_calls")
        return trainer

    def build_hooks(cfg):
        hooks = originals[nas.engine.run, "build_hooks"](cfg)
        for hook in hooks:  # tracking, weight keeping: "logging" and "checkpointing"
            for name in ("on_trial_start", "on_stage", "on_trial_end", "logger_for"):
                setattr(hook, name, timed(getattr(hook, name), "hooks"))
        return [first, *hooks, last]

    nas.trial.stages.make_trainer = make_trainer
    nas.trial.stages.build_model = timed(originals[nas.trial.stages, "build_model"], "model_build")
    nas.engine.optuna_objective.run_trial = timed(
        originals[nas.engine.optuna_objective, "run_trial"], "run_trial"
    )
    nas.engine.run.build_hooks = build_hooks
    try:
        yield last
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)


def measure_imports(repeats: int) -> dict[str, float]:
    """Seconds to start Python and import the stack, in fresh subprocesses (median)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - t0
        marks = json.loads(out.stdout.strip().splitlines()[-1])
        steps, prev = {}, 0.0
        for name, at in marks.items():
            steps[f"import {name}"] = at - prev
            prev = at
        steps["interpreter start and exit"] = wall - prev
        steps["total"] = wall
        runs.append(steps)
    return {k: median(r[k] for r in runs) for k in runs[0]}


def compose(overrides: list[str]):
    """The search config exactly as ``nas/search.py`` composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from nas.config.compose import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("search", overrides=overrides)


def measure_suite(cfg) -> dict[str, float]:
    """Seconds for each step of building the suite (as ``build_suite`` does), cold and cached."""
    from lightning_modules import suite as suite_mod
    from lightning_modules.data import texts as data_texts
    from lightning_modules.data.tokenizer import EOS, load_or_train_tokenizer
    from nas.config.nodes import plain
    from nas.engine.run import load_suite

    data, tasks = plain(cfg.data), plain(cfg.tasks)
    seed = int(data.get("seed", 0))
    clock = Clock()
    with clock.time("corpus generation"):
        texts = data_texts.corpus_texts(data.get("corpus", {}), seed)
    with clock.time("task generation"):
        for name, task_cfg in tasks.items():
            data_texts.task_splits(name, task_cfg.get("source", {}), seed)
    with tempfile.TemporaryDirectory() as tmp:
        with clock.time("tokenizer training (no cache)"):
            load_or_train_tokenizer(texts, int(data["vocab_size"]), tmp)
        with clock.time("tokenizer load (disk cache)"):
            tok = load_or_train_tokenizer(texts, int(data["vocab_size"]), tmp)
    with clock.time("corpus tokenisation"):
        enc = tok.encode_batch(texts, add_special_tokens=False)
    with clock.time("blocks"):
        data_texts.make_blocks([e.ids for e in enc], tok.token_to_id(EOS), int(data["seq_len"]))
    # What a new worker process pays: build_suite from scratch with the tokenizer on disk.
    load_suite(cfg)  # makes sure the tokenizer is cached under paths.cache
    suite_mod._build_suite_cached.cache_clear()
    with clock.time("build_suite, new process (tokenizer cached)"):
        suite = load_suite(cfg)
    with clock.time("build_suite, memo hit (every later trial)"):
        load_suite(cfg)
    with clock.time("task encoding (first trial only)"):
        for task in suite.tasks.values():
            for split in ("train", "validation", "test"):
                task.encoded(split)
    return dict(clock.totals)


def run(args) -> dict[str, Any]:
    """Measure per-process and per-trial costs; returns the JSON payload."""
    threads = set_threads(args.threads)
    warn_if_loaded()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("pytorch_lightning", "lightning.pytorch", "adaptnas"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        user = [*(QUICK_OVERRIDES if args.quick else []), *args.overrides]
        n_study = int(compose(user).n_trials or args.trials)  # the study the costs spread over
        overrides = [
            f"paths.root={tmp}",
            "study_name=overhead",
            f"threads={threads}",
            *user,
            f"n_trials={args.trials}",
            "finalists.seeds=0",  # the measured trials only: no finalist repeats after them
        ]
        per_process: dict[str, float] = {}
        imports = measure_imports(1 if args.quick else args.import_repeats)
        per_process["interpreter start, imports"] = imports["total"]
        t0 = time.perf_counter()
        cfg = compose(overrides)
        per_process["Hydra composition"] = time.perf_counter() - t0
        suite_steps = measure_suite(cfg)
        per_process["suite build (tokenizer cached)"] = suite_steps[
            "build_suite, new process (tokenizer cached)"
        ]
        per_process["task encoding"] = suite_steps["task encoding (first trial only)"]
        measured = run_trials(cfg)
        per_process["search set-up, between trials, results"] = measured["search_other_s"]
    trials = measured["trials"]
    phases = measured["phases"]
    wall = sum(t["wall_s"] for t in trials)
    compute = sum(phases[k] for k in COMPUTE)
    per_process_total = sum(per_process.values())
    trial_wall = wall / len(trials)
    amortised = per_process_total / n_study
    share_in_trial = 1 - compute / wall
    payload = {
        "benchmark": "overhead",
        "machine": {**machine(), "torch_threads": threads},
        "settings": {
            "overrides": user,
            "trials": args.trials,
            "study_n_trials": n_study,
            "quick": bool(args.quick),
        },
        "imports": imports,
        "suite": suite_steps,
        "per_process": per_process,
        "per_process_total_s": per_process_total,
        "trials": trials,
        "phases_s": phases,
        "trial_wall_s": trial_wall,
        "compute_s": compute / len(trials),
        "overhead_share": share_in_trial,
        "overhead_share_without_evaluation": share_in_trial
        - (phases["evaluation"] + phases["test_scoring"]) / wall,
        # A trial outside the top k (most trials of a search) scores no test split.
        "overhead_share_without_test_scoring": 1 - compute / (wall - phases["test_scoring"]),
        "overhead_share_with_process_amortised": 1
        - (compute / len(trials)) / (trial_wall + amortised),
    }
    _print(payload)
    return payload


def run_trials(cfg) -> dict[str, Any]:
    """Run the configured search (``nas.engine.run.run_search``) with every phase timed."""
    from nas.engine.run import run_search

    totals: dict[str, float] = defaultdict(float)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with instrumented(totals, device) as timing:
        t0 = time.perf_counter()
        result = run_search(cfg)
        search_wall = time.perf_counter() - t0
    trials = []
    for trial in result.study.trials:
        if trial.datetime_start is None or trial.datetime_complete is None:
            continue
        delta = timing.per_trial.get(trial.number, {})
        trials.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "describe": trial.user_attrs.get("describe"),
                "adaptability": trial.value if trial.values else None,
                "wall_s": trial.duration.total_seconds(),
                "compute_s": sum(delta.get(k, 0.0) for k in COMPUTE),
                "phases_s": delta,
                "timings": trial.user_attrs.get("timings"),
                "reason": trial.user_attrs.get("fail_reason"),
            }
        )
    wall = sum(t["wall_s"] for t in trials)
    in_steps = (*COMPUTE, "zero_grad", "data_and_loop", "evaluation", "test_scoring")
    phases = {k: totals.get(k, 0.0) for k in in_steps}
    phases["lightning_setup"] = (
        totals["fit_calls"] - sum(phases.values()) + totals["trainer_construction"]
    )
    phases["model_build_and_copy"] = (
        totals["run_trial"] - totals["fit_calls"] - totals["trainer_construction"]
    )
    phases["hooks_weights_and_tracking"] = totals["hooks"]
    phases["optuna_and_objective"] = wall - totals["run_trial"] - totals["hooks"]
    return {"trials": trials, "phases": phases, "search_other_s": search_wall - wall}


def _print(p: dict[str, Any]) -> None:
    print(f"\nper process (once per worker; {p['settings']['study_n_trials']} trials share it)")
    print_table(["step", "seconds"], [[k, f"{v:.2f}"] for k, v in p["per_process"].items()])
    print("\n  suite build in detail")
    print_table(["step", "seconds"], [[k, f"{v:.3f}"] for k, v in p["suite"].items()])
    print("\n  imports in detail (fresh process)")
    print_table(["step", "seconds"], [[k, f"{v:.2f}"] for k, v in p["imports"].items()])
    wall = sum(t["wall_s"] for t in p["trials"])
    print(f"\nper trial ({len(p['trials'])} trial(s), {wall:.1f}s in all)")
    rows = []
    for k, v in p["phases_s"].items():
        kind = "compute" if k in COMPUTE else "overhead"
        rows.append([k, kind, f"{v:.2f}", f"{100 * v / wall:.1f}%"])
    print_table(["phase", "kind", "seconds", "share"], rows)
    for t in p["trials"]:
        print(f"  trial {t['number']} {t['state'].lower()}: {t['describe']}, {t['wall_s']:.1f}s")
    print(
        f"\noverhead: {100 * p['overhead_share']:.1f}% of trial wall time "
        f"({100 * p['overhead_share_without_test_scoring']:.1f}% for a trial outside the top k, "
        "which scores no test split; "
        f"{100 * p['overhead_share_without_evaluation']:.1f}% without any evaluation); "
        f"{100 * p['overhead_share_with_process_amortised']:.1f}% with the per-process costs "
        f"spread over {p['settings']['study_n_trials']} trials"
    )


def build_parser():
    """The command-line options."""
    p = base_parser("overhead", __doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=1, help="trials to run and time")
    p.add_argument("--import-repeats", type=int, default=3, help="fresh processes (median)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the search config")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables, write its JSON; returns the payload."""
    args = build_parser().parse_args(argv)
    return run_and_write(run, args)


if __name__ == "__main__":
    main()
