"""Keep the weights of the best trials of a search, so that the winner can be exported later.

``KeepWeights`` is a trial hook: when a trial completes and ranks among the best ``keep_top_k``
of the study (multi-objective: on the Pareto front of adaptability vs. parameters, the
``keep_top_k`` most adaptable of it), its pretrained language model and every task's fine-tuned
backbone + head are written as safetensors under ``<study_dir>/weights/trial_<n>/``; the folders
of trials that drop out of the top ``keep_top_k`` of the *complete* trials are deleted (a
trial's hooks run before its ``tell``, and its worker can die in between), so disk use stays
bounded by ``keep_top_k`` trials plus one per worker. Workers publish and prune under one
``flock`` on ``weights/.lock``.

Layout of one trial's folder::

    meta.json                 architecture, scores, tasks (kind, labels, config), run config
    tokenizer.json            the run's tokenizer
    backbone.safetensors      the pretrained language model (backbone + LM head)
    tasks/<task>.safetensors  the task's fine-tuned backbone + head (LoRA merged into it)
    tasks/<task>.adapter.safetensors   finetune.method=lora or adapter: the adapter + head alone

The ranking reads the storage, in which every finished trial has its ``adaptability`` user
attribute before the hooks run, so workers sharing a study agree on which folders to keep.

Each kept file is also an Optuna artifact of its trial (``<study_dir>/artifacts``, a
``FileSystemArtifactStore``), so optuna-dashboard lists and serves them on the trial's page
(``optuna-dashboard <storage> --artifact-dir <study_dir>/artifacts``). The artifact and the
weights file are hard links of one file where the file system allows: no second copy on disk.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import optuna

from lightning_modules.adaptation import METHODS
from lightning_modules.export import (
    TaskModel,
    follow_umask,
    save_adapter,
    save_safetensors,
    save_task_weights,
)
from nas.study.finalists import is_repeat
from nas.study.lr_calibration import with_rates
from nas.study.storage import file_lock
from nas.trial import record as rec
from nas.trial.hooks import TrialHook
from nas.trial.record import State, TrialRecord

log = logging.getLogger("adaptnas")

WEIGHTS_DIR = "weights"
WEIGHTS_ATTR = rec.WEIGHTS  # trial user attr: the folder, relative to the study folder
ARTIFACTS_DIR = "artifacts"  # the study's optuna.artifacts.FileSystemArtifactStore
ARTIFACTS_ATTR = rec.WEIGHTS_ARTIFACTS  # trial user attr: {file in the weights folder: id}
FORMAT = "adaptnas-weights-v1"
LOCK = ".lock"  # in the weights folder: held while a worker publishes or prunes


def trial_weights_dir(study_folder: Path, number: int) -> Path:
    """Where trial ``number``'s weights live (whether or not they still exist)."""
    return Path(study_folder) / WEIGHTS_DIR / f"trial_{number}"


def artifact_store(study_folder: Path):
    """The study's artifact store (``<study_dir>/artifacts``), for optuna-dashboard's
    ``--artifact-dir``."""
    from optuna.artifacts import FileSystemArtifactStore

    base = Path(study_folder) / ARTIFACTS_DIR
    base.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(base))


def register_artifacts(trial: optuna.Trial, study_folder: Path, weights: Path) -> dict[str, str]:
    """Upload every file of ``weights`` as an artifact of ``trial``; returns file -> artifact id.

    The uploaded copy then replaces the weights file by a hard link (same inode, one copy on
    disk); where links are impossible the two copies stay.
    """
    from optuna.artifacts import upload_artifact

    store = artifact_store(study_folder)
    ids: dict[str, str] = {}
    for path in sorted(p for p in weights.rglob("*") if p.is_file()):
        rel = path.relative_to(weights).as_posix()
        mimetype = "application/json" if path.suffix == ".json" else "application/octet-stream"
        ids[rel] = upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=mimetype
        )
        stored = Path(study_folder) / ARTIFACTS_DIR / ids[rel]  # FileSystemArtifactStore's layout
        link = path.with_name(f".{path.name}.link")
        try:
            os.link(stored, link)
            os.replace(link, path)
        except OSError:
            link.unlink(missing_ok=True)
    return ids


def remove_artifacts(study: optuna.Study, study_folder: Path, numbers: set[int]) -> None:
    """Delete the artifacts of trials ``numbers`` (their weights left the top k)."""
    store = None
    for t in study.get_trials(deepcopy=False):
        ids = rec.weights_artifacts(t) if t.number in numbers else {}
        for artifact_id in ids.values():
            store = store or artifact_store(study_folder)
            try:
                store.remove(artifact_id)
            except Exception:  # already gone (another worker removed it): nothing to do
                pass


def _ranked_trials(
    study: optuna.Study, running: Collection[int] | None = None
) -> list[tuple[int, float, float]]:
    """``(number, adaptability, n_params)`` of every trial that finished its run.

    Complete trials, plus running ones whose objective already recorded a result (between
    recording and ``tell``, while their hooks run): all of them when ``running`` is ``None``,
    else only those whose numbers ``running`` holds.
    """
    out = []
    for t in study.get_trials(deepcopy=False, states=(State.COMPLETE, State.RUNNING)):
        if is_repeat(t):
            # a finalist's repeat (nas/study/finalists.py): the winner's weights are its own
            continue
        if t.state == State.RUNNING and running is not None and t.number not in running:
            continue
        record = TrialRecord.from_trial(t)
        # objective.per_trainable_param: the trial's value is this, not the plain adaptability
        score = record.rank_score()
        if t.state == State.COMPLETE and t.values:
            score = t.values[0]
        if score is None or math.isnan(score):
            continue
        n_params = math.inf if record.n_params is None else record.n_params
        out.append((t.number, float(score), float(n_params)))
    return out


def kept_trials(
    study: optuna.Study,
    keep_top_k: int,
    multi_objective: bool,
    running: Collection[int] | None = None,
) -> set[int]:
    """Numbers of the trials whose weights should be kept now.

    Args:
        study: The study (its storage is read; nothing is written).
        keep_top_k: How many trials to keep at most.
        multi_objective: Keep the Pareto front of (adaptability up, parameters down), its
            ``keep_top_k`` most adaptable members, instead of the top ``keep_top_k`` by score.
        running: The running trials (result recorded, not yet told) that take part in the
            ranking; ``None``: all of them. A running trial is not settled: its worker can
            still die before ``tell`` and the trial fail.
    """
    if keep_top_k <= 0:
        return set()
    cands = _ranked_trials(study, running)
    if multi_objective:
        cands = [
            c
            for c in cands
            if not any(
                o[1] >= c[1] and o[2] <= c[2] and (o[1] > c[1] or o[2] < c[2]) for o in cands
            )
        ]
    # Best first; equal scores: the earlier trial wins, as in Optuna's best_trial.
    cands.sort(key=lambda c: (-c[1], c[0]))
    return {c[0] for c in cands[:keep_top_k]}


def _task_info(module) -> dict[str, Any]:
    task = module.task
    labels = list(getattr(task.splits, "labels", []) or [])
    return {"kind": task.kind, "num_labels": len(labels) or None, "labels": labels}


def write_trial_weights(folder: Path, result, meta: dict[str, Any], tokenizer=None) -> Path:
    """Write one trial's weights into a new temporary folder beside ``folder``; returns it.

    ``KeepWeights`` then moves it to ``folder`` whole, under its lock (``os.replace``).

    Args:
        folder: The target folder (``weights/trial_<n>``); not touched here.
        result: The trial's ``TrialRecord`` with its models still in memory.
        meta: What ``meta.json`` records besides the tasks (architecture, scores, config).
        tokenizer: The run's ``tokenizers.Tokenizer`` (taken from a task when ``None``).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    follow_umask(tmp, folder=True)  # mkdtemp makes 0700
    try:
        tasks = {}
        save_safetensors(result.pretrained, tmp / "backbone.safetensors", {"format": FORMAT})
        for name, module in result.finetuned.items():
            info = _task_info(module)
            tasks[name] = info
            model = TaskModel(module.backbone, module.head, info["kind"])
            spec = getattr(module, "adaptation", None)
            file_meta = {"format": FORMAT, "task": name, "kind": info["kind"]}
            # LoRA merged into the weights; adapters (which cannot merge) kept with them
            save_task_weights(model, tmp / "tasks" / f"{name}.safetensors", spec, file_meta)
            if spec is not None and METHODS[spec.method].adapter_file:
                # ...and the adapter alone, which the pretrained backbone turns into the model
                save_adapter(model, tmp / "tasks" / f"{name}.adapter.safetensors", spec, file_meta)
            if tokenizer is None:
                tokenizer = module.task.tokenizer
        if tokenizer is not None:
            tokenizer.save(str(tmp / "tokenizer.json"))
        doc = {"format": FORMAT, **meta, "task_info": tasks}
        (tmp / "meta.json").write_text(json.dumps(doc, indent=1, default=str))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _move_into_place(tmp: Path, folder: Path) -> None:
    """Move the written ``tmp`` folder to ``folder``, replacing what was there."""
    try:
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class KeepWeights(TrialHook):
    """Trial hook that keeps the weights of the best ``keep_top_k`` trials of the study.

    Args:
        study_folder: ``nas.study.storage.study_dir(cfg)``.
        keep_top_k: Trials to keep (0: none).
        cfg: The run config as plain dicts (recorded in each trial's ``meta.json``).
    """

    def __init__(self, study_folder: Path, keep_top_k: int, cfg: dict[str, Any]) -> None:
        self.folder = Path(study_folder)
        self.keep_top_k = int(keep_top_k)
        self.cfg = cfg
        self.multi = bool(cfg["objective"]["multi_objective"])

    def _meta(self, trial: optuna.Trial, result: TrialRecord) -> dict[str, Any]:
        run = {
            k: self.cfg.get(k)
            for k in ("search_space", "seed", "data", "tasks", "pretrain", "finetune", "objective")
        }
        # finetune.lr_choice=family: the rates it adapted at, so that a retrain adapts at them.
        run = with_rates(run, TrialRecord.from_trial(trial).lr_rates)
        if "sampler" in self.cfg:
            run["sampler"] = self.cfg["sampler"].get("_target_")
        if "pruner" in self.cfg:
            run["pruner"] = self.cfg["pruner"].get("_target_")
        return {
            "study": trial.study.study_name,
            "trial": trial.number,
            **result.weights_doc(),
            "config": run,
        }

    def on_trial_end(self, trial, state, result, reason) -> None:
        """Save this trial's weights if it ranks, then drop the folders of trials that left.

        Workers share the folder, and a worker can die between its hooks and ``tell``. So:

        * this trial is kept when it ranks among the complete trials (other workers' running
          trials do not count); the ranking is read again under one ``flock`` on
          ``weights/.lock`` before the folder is published, and
        * a folder is deleted only when its trial has left the top ``keep_top_k`` of the
          *complete* trials, under the same lock; running trials' folders (this one's too)
          are never deleted. What this trial displaces goes at the next trial's end or at
          the search's end (``on_search_end``).
        """
        if self.keep_top_k <= 0 or state != "complete" or result is None:
            return
        study, number = trial.study, trial.number
        target = trial_weights_dir(self.folder, number)
        tmp = None
        if number in kept_trials(study, self.keep_top_k, self.multi, running=(number,)):
            try:  # written outside the lock: seconds, and only this worker's files
                tmp = write_trial_weights(target, result, self._meta(trial, result))
            except OSError as err:  # a full disk costs the export, not the trial's result
                log.warning("trial %d: weights not kept: %s", number, err)
        target.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(target.parent / LOCK):
            if tmp is not None:
                if number in kept_trials(study, self.keep_top_k, self.multi, running=(number,)):
                    self._publish(trial, tmp, target)
                else:  # overtaken while it was written
                    shutil.rmtree(tmp, ignore_errors=True)
            self._prune_settled(study)

    def on_search_end(self, study: optuna.Study) -> None:
        """Drop the folders that this worker's last trial displaced."""
        if self.keep_top_k > 0 and (self.folder / WEIGHTS_DIR).is_dir():
            with file_lock(self.folder / WEIGHTS_DIR / LOCK):
                self._prune_settled(study)

    def _publish(self, trial: optuna.Trial, tmp: Path, target: Path) -> None:
        try:
            _move_into_place(tmp, target)
        except OSError as err:
            log.warning("trial %d: weights not kept: %s", trial.number, err)
            return
        rec.write_weights(trial, str(target.relative_to(self.folder)))
        log.info("trial %d: weights kept in %s", trial.number, target)
        try:
            ids = register_artifacts(trial, self.folder, target)
        except OSError as err:
            log.warning("trial %d: no artifacts of the weights: %s", trial.number, err)
        else:
            rec.write_weights_artifacts(trial, ids)

    def _prune_settled(self, study: optuna.Study) -> None:
        """Delete the folders of complete trials out of the top k (the lock held)."""
        keep = kept_trials(study, self.keep_top_k, self.multi, running=())
        running = {t.number for t in study.get_trials(deepcopy=False, states=(State.RUNNING,))}
        deleted = self.prune(keep | running)
        if deleted:
            remove_artifacts(study, self.folder, set(deleted))

    def prune(self, keep: set[int]) -> list[int]:
        """Delete the weights of every trial not in ``keep``; returns the numbers deleted."""
        root = self.folder / WEIGHTS_DIR
        deleted = []
        if not root.is_dir():
            return deleted
        for path in root.glob("trial_*"):
            number = path.name.removeprefix("trial_")
            if not number.isdigit() or int(number) in keep:
                continue
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(int(number))
        if deleted:
            log.info(
                "weights of trial(s) %s deleted (out of the top %d)",
                sorted(deleted),
                self.keep_top_k,
            )
        # Half-written folders (``.trial_<n>.<random>.tmp``) of workers killed while writing.
        for path in root.glob(".trial_*.tmp"):
            number = path.name.split(".")[1].removeprefix("trial_")
            if number.isdigit() and int(number) not in keep:
                shutil.rmtree(path, ignore_errors=True)
        return sorted(deleted)
