"""``run_search`` and ``run_train``: what the entry points call; tests call them without Hydra."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf

from lightning_modules.config import TransformerConfig, params_human
from lightning_modules.suite import Suite, build_suite
from nas.config.check import check_config
from nas.config.errors import ConfigError
from nas.config.families import check_arch_serves_tasks, restrict_to_tasks
from nas.config.nodes import plain
from nas.config.schema import SearchConfig
from nas.engine.optuna_objective import TRIAL_FAULTS, Objective, fmt_duration
from nas.engine.wandb_sweep import sweep_arch
from nas.engine.workers import (
    MAX_CONSECUTIVE_FAILURES,
    StopAfterFailures,
    run_trials,
    setup_worker,
)
from nas.reporting.files import write_atomic
from nas.reporting.leaderboard import report_results
from nas.reporting.plots import write_plots_safely
from nas.reporting.standing import Standing
from nas.reporting.tracking import (
    TrainRunHook,
    build_tracking_hooks,
    open_train_run,
    summary_of,
)
from nas.study import finalists as fin
from nas.study import references
from nas.study.finalists import FinalistSettings
from nas.study.storage import count_finished, mask_url, open_search_study, study_dir
from nas.trial.hooks import TrialHook
from nas.trial.record import TrialRecord
from nas.trial.resources import prepare_process
from nas.trial.run import data_fields, run_trial
from nas.trial.stages import check_lr_choice
from search_spaces import load_space

log = logging.getLogger("adaptnas")


@dataclass
class SearchResult:
    """What a search leaves: the study, its folder and the files written there."""

    study: optuna.Study
    folder: Path
    files: dict[str, Path]
    ran: int


def load_suite(cfg: DictConfig) -> Suite:
    """The run's shared data (memoised per process)."""
    cache = Path(cfg.paths.cache).expanduser() if cfg.paths.get("cache") else None
    return build_suite(plain(cfg.data), plain(cfg.tasks), cache)


def build_hooks(cfg: DictConfig) -> list[TrialHook]:
    """The trial observers this config asks for (tracking, weight keeping, ...)."""
    hooks: list[TrialHook] = []
    hooks += build_tracking_hooks(plain(cfg))  # logger=wandb|csv: one tracked run per trial
    from nas.study.kept_weights import KeepWeights  # weights of the best trials, for nas/export.py

    keep_top_k = int(cfg.get("export", {}).get("keep_top_k", 0) or 0)
    if keep_top_k > 0:
        hooks.append(KeepWeights(study_dir(cfg), keep_top_k, plain(cfg)))
    from nas.reporting.progress import (  # a live bar where someone watches
        SearchProgress,
        interactive,
    )

    if cfg.get("n_trials") and interactive():
        hooks.append(SearchProgress(int(cfg.n_trials)))
    return hooks


def run_search(cfg: DictConfig) -> SearchResult:
    """Run (or resume) the architecture search described by ``cfg``.

    Re-running with the same ``study_name`` and storage resumes the study and runs only the trials
    still missing from ``n_trials`` (completed and pruned trials count; failed ones are re-run).
    Once the search trials are done, the finalists are re-run with more seeds (``finalists``:
    ``nas.study.finalists``), also on a resume that finds them missing.
    """
    typed = check_config(cfg)
    settings = FinalistSettings.from_config(typed.finalists)
    from nas.strategies.base import SearchSetup
    from nas.strategies.registry import strategy_for  # standalone|supernet|two_tier

    strategy = strategy_for(typed.strategy.name)
    # Families that cannot serve a selected task (encoders for generation) are never sampled.
    space = restrict_to_tasks(load_space(typed.search_space), cfg.tasks)
    space = strategy.space(typed.strategy, space)  # supernet: only what one super-network covers
    # Its name (the strategy's suffix by default), folder and storage; created or resumed (a bad
    # URL fails before any data is built); trials of killed local workers failed; counted.
    search = open_search_study(cfg, strategy.study_suffix)
    study, folder, finished = search.study, search.folder, search.finished
    # What trials and hooks (W&B, ...) see: resolved once, no storage password.
    run = _masked(cfg)
    target = cfg.n_trials
    target = _at_least(target, strategy.least_trials(study))  # two_tier: kept in the study
    remaining = None if target is None else max(0, int(target) - finished)
    # A complete search whose finalists were not (all) re-run: a resume runs them now.
    repeats_due = remaining == 0 and not fin.work(study, settings).done
    log.info(
        "study '%s' (%s) in %s: %d finished, %s to run%s",
        cfg.study_name,
        search.masked_url,
        folder,
        finished,
        "until timeout" if remaining is None else remaining,
        ", then the finalists' repeats" if remaining != 0 and settings.enabled else "",
    )
    if repeats_due:
        log.info("finalist repeats missing: running them")
    ran = 0
    if remaining != 0 or repeats_due:
        prepare_process()
        # Bad data, threads or logger settings: no empty study is left, nothing is written.
        with search.footprint.undo_on_user_error(study):
            worker = setup_worker(cfg)  # torch threads and GPU of this worker, before CUDA starts
            t0 = time.perf_counter()
            suite = load_suite(cfg)
            suite_s = time.perf_counter() - t0
            check_lr_choice(run, suite)
            public = OmegaConf.create(run)
            hooks = build_hooks(public)
            # What the strategy is given, resolved once: settings, run, space, data, folder.
            setup = SearchSetup(typed.strategy, run, space, suite, data_fields(suite), folder)
            # supernet: built (or resumed) by the first worker, loaded by the others.
            objective = Objective(
                run,
                suite,
                space,
                n_trials=int(target) if target else None,
                hooks=hooks,
                log_dir=folder / "logs",
                strategy=strategy.open(setup),
            )
            if finished == 0 and not study.get_trials(deepcopy=False):  # a new study
                references.enqueue_new(study, space, setup.data, typed.references)
            # two_tier: the screen on the super-network, then its top architectures enqueued.
            need = strategy.before_trials(setup, study, worker.attrs())
            target = _at_least(target, need)
            objective.n_trials = int(target) if target else None
        log.info(
            "suite: %d pretraining blocks of %d tokens, vocab %d, tasks %s (built in %.1fs)",
            len(suite.train_blocks),
            suite.seq_len,
            suite.vocab_size,
            ", ".join(suite.tasks),
            suite_s,
        )
        write_atomic(folder / "config.yaml", OmegaConf.to_yaml(public))
        if run["objective"]["adaptability"] == "skill":  # each task counted above its floor
            references.record_floors(study, suite, "skill")
        settings.record(study)  # how the winner is chosen, for reports rebuilt later
        for hook in hooks:
            hook.on_search_start(study, run)
        callbacks: list = []
        try:
            if target is not None:
                # n_trials counts for the whole study, exactly, whatever the number of workers;
                # this worker also waits for (and retries) trials of workers that die.
                ran = run_trials(
                    study,
                    objective,
                    int(target),
                    attrs=worker.attrs(),
                    timeout=cfg.get("timeout"),
                    callbacks=callbacks,
                    catch=TRIAL_FAULTS,  # fail that trial only; bugs stop the search
                    finalists=settings,
                )
            else:
                before = len(study.trials)
                study.optimize(
                    objective,
                    timeout=cfg.get("timeout"),
                    # run_trials counts failures itself; here a callback stops the loop.
                    callbacks=[*callbacks, StopAfterFailures(MAX_CONSECUTIVE_FAILURES)],
                    gc_after_trial=True,
                    catch=TRIAL_FAULTS,
                )
                ran = len(study.trials) - before
                if settings.enabled:  # the timeout bounds the search; the finalists follow it
                    ran += run_trials(
                        study,
                        objective,
                        count_finished(study),
                        attrs=worker.attrs(),
                        callbacks=callbacks,
                        catch=TRIAL_FAULTS,
                        finalists=settings,
                    )
        finally:  # also on Ctrl-C or a crash: hooks close their runs and files
            for hook in hooks:
                hook.on_search_end(study)
        log.info("search ran %d trial(s) in %s", ran, fmt_duration(time.perf_counter() - t0))
    else:
        log.info(
            "study '%s' is complete (%d finished trials): nothing to run", cfg.study_name, finished
        )
    files = _finish(cfg, typed, study, folder, ran)
    return SearchResult(study=study, folder=folder, files=files, ran=ran)


def _finish(
    cfg: DictConfig, typed: SearchConfig, study: optuna.Study, folder: Path, ran: int
) -> dict[str, Path]:
    """The search's end: its verdict kept, its results written and shown, the validity study.

    Every report reads one ``Standing``: the storage is read once, whatever its size.
    """
    now = Standing.of(study)
    said = references.keep_verdict(study, now.verdict, now.attrs)  # winner vs best reference
    files = report_results(now, folder, title=f"study {cfg.study_name}")
    if cfg.get("plots", True) and ran:  # plots/: HTML + PNG; nas/report.py rebuilds them any time
        files.update(write_plots_safely(study, folder / "plots"))
    if "best_architecture" in files:
        best = now.ranked
        if best and best[0].n > 1:
            log.info(
                "winner: trial %d, adaptability %.4f +- %.4f over %d seeds (%s)",
                best[0].trial.number,
                best[0].mean,
                best[0].sd,
                best[0].n,
                files["best_architecture"],
            )
        else:
            log.info("winner: %s", files["best_architecture"])
    if said is not None:
        log.info("verdict: %s", said["text"])
    log.info("leaderboard: %s", files["leaderboard"])
    if typed.validate.auto:  # validate.auto=true: nas/validate.py on the study
        from nas.validity.study import validate_after_search

        files.update(validate_after_search(cfg, typed.validate, study, folder))
    return files


def run_train(cfg: DictConfig) -> TrialRecord:
    """Run one fully specified architecture (``arch=<yaml>``) through the staged trial."""
    from_params = bool(cfg.get("params"))  # a W&B sweep run: values of a search space's params
    if not from_params and (OmegaConf.is_missing(cfg, "arch") or not cfg.arch):
        raise ConfigError(
            "arch: give the architecture YAML, "
            "e.g. arch=outputs/studies/<name>/best_architecture.yaml"
        )
    if from_params and OmegaConf.is_missing(cfg, "arch"):
        cfg.arch = None  # a sweep run: the params give the architecture
    check_config(cfg)
    # Read before the data is built: a wrong file fails at once and leaves no tokenizer cache.
    given = None if from_params else TransformerConfig.from_yaml(Path(str(cfg.arch)).expanduser())
    prepare_process()
    suite = load_suite(cfg)
    if given is None:
        arch = sweep_arch(cfg, data_fields(suite))
    else:
        arch = given
        # The data decides these; an exported architecture keeps its own when they agree.
        overrides = data_fields(suite)
        if arch.vocab_size != overrides["vocab_size"]:
            log.info(
                "vocab_size %d -> %d (this run's tokenizer)",
                arch.vocab_size,
                overrides["vocab_size"],
            )
        arch = TransformerConfig.from_dict({**arch.to_dict(), **overrides})
    check_arch_serves_tasks(arch.family, plain(cfg.tasks))  # an encoder cannot generate
    log.info("training %s (%s params)", arch.describe(), params_human(arch.num_params()))
    from nas.trial.init_from import (
        init_from_export,  # init_from=<export folder>: resume from its weights
    )

    init_model = init_from_export(cfg.get("init_from"), arch, suite)
    tracked = open_train_run(plain(cfg), arch)  # logger=csv|wandb; a no-op for none

    try:
        result = run_trial(
            arch,
            suite,
            plain(cfg),
            [TrainRunHook(tracked, test=bool(cfg.test))],
            seed=int(cfg.seed),
            init_model=init_model,
        )
    except BaseException as err:  # the tracked run is closed as failed, whatever stopped it
        tracked.finish("fail", {"state": "fail", "reason": f"{type(err).__name__}: {err}"})
        raise
    tracked.finish("complete", summary_of(result, "complete"))
    log.info(
        "adaptability %.4f; validation %s; test %s",
        result.adaptability,
        {k: round(v, 4) for k, v in result.task_scores.items()},
        {k: round(v, 4) for k, v in result.test_scores.items()},
    )
    return result


def _at_least(target: int | None, need: int | None) -> int | None:
    """``n_trials`` raised to what the strategy needs (two_tier: references + confirmations)."""
    if need is None or target is None or need <= int(target):
        return target
    log.info("n_trials %d -> %d: the references and the confirmations", target, need)
    return need


def _masked(cfg: DictConfig) -> dict:
    """``cfg`` resolved as plain values, with the password of ``storage.url`` masked."""
    run = plain(cfg)
    if run.get("storage") and run["storage"].get("url"):
        run["storage"]["url"] = mask_url(str(run["storage"]["url"]))
    return run
