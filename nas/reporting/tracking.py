"""Experiment tracking: Weights & Biases runs or CSV logs for every trial of a search.

``logger=wandb`` gives one W&B run per trial (``group`` = the study name, ``name`` = ``trial-<n>``)
with the architecture and the budgets as config, each stage's losses and metrics as history
(``pretrain/loss``, ``qa/validation_score``, ... each against its own ``<stage>/step``) and the
outcome in the summary (per-task scores, adaptability, parameters, pruning reason). A study run per
search process logs every finished trial and the best adaptability so far, and ends with the
leaderboard as a table. Without an API key (no ``WANDB_API_KEY``, no ``wandb login``) and no
``WANDB_MODE``, runs are written offline under ``<logger.dir>/wandb``; ``wandb sync`` uploads them.

``logger=csv`` writes the same metrics with Lightning's ``CSVLogger`` to
``<logger.dir>/<study>/trial-<n>/<stage>/metrics.csv`` and the summary to ``summary.json`` beside
them. ``logger=none`` tracks nothing (the study storage and the leaderboard are the record).

Every config that is logged passes through :func:`mask_secrets`: storage URLs never carry their
password. :func:`read_wandb_run` reads an offline ``.wandb`` file back without syncing it.
"""

from __future__ import annotations

import json
import logging
import math
import netrc
import os
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import optuna
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from lightning_modules.config import TransformerConfig
from nas.config.errors import ConfigError
from nas.study import references
from nas.study import screen as scr
from nas.study.storage import mask_url
from nas.trial.hooks import TrialHook
from nas.trial.record import (
    ADAPTABILITY,
    DESCRIBE,
    FLOPS_PER_TOKEN,
    N_PARAMS,
    PRETRAIN_VAL_LOSS,
    REFERENCE,
    State,
    TrialRecord,
)

log = logging.getLogger("adaptnas")

LOGGER_KINDS = ("none", "csv", "wandb")
WANDB_MODES = ("online", "offline", "disabled")
# Config sections that describe where things are, not what was run: not logged.
_NOT_LOGGED = ("logger", "paths", "hydra")
# With a logger, Lightning repeats this for every short stage of every trial.
warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")


class TrackingError(ConfigError):
    """Tracking cannot start (bad W&B project, key, mode...); the message says what to change."""


# ---- configs and summaries ---------------------------------------------------------------------
def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with the password of every URL inside it replaced by ``***``.

    Args:
        value: A config (nested dicts, lists, scalars).

    Returns:
        The same structure; strings that hold ``scheme://user:password@host`` are masked.
    """
    if isinstance(value, Mapping):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def run_config(cfg: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The config a tracked run records: the run config (budgets, tasks, sampler...) plus ``extra``.

    Args:
        cfg: The resolved run config as plain dicts.
        **extra: Added on top (``arch``, ``trial``, ``params``...).

    Returns:
        A masked plain dict.
    """
    out = {k: v for k, v in cfg.items() if k not in _NOT_LOGGED}
    out.update(extra)
    return mask_secrets(out)


def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def summary_of(record: TrialRecord, state: str) -> dict[str, Any]:
    """The summary of a trial (or a single run) from its record.

    Args:
        record: The trial's record (``TrialRecord.from_trial``, or ``run_trial``'s for a single
            run); what it did not reach is left out.
        state: ``complete``, ``pruned`` or ``fail``.

    Returns:
        Flat keys: ``state``, ``reason``, ``adaptability``, ``score/<task>``, ``test/<task>``,
        ``n_params``, ``flops_per_token``, ``pretrain_val_loss``, ``time/<stage>``, ``describe``.
    """
    out: dict[str, Any] = {"state": state}
    if record.fail_reason:
        out["reason"] = record.fail_reason
    for key, value in (
        (ADAPTABILITY, record.adaptability),
        (N_PARAMS, record.n_params),
        (FLOPS_PER_TOKEN, record.flops_per_token),
        (PRETRAIN_VAL_LOSS, record.pretrain_val_loss),
        (DESCRIBE, record.describe or None),
    ):
        if _finite(value):
            out[key] = value
    for task, score in record.task_scores.items():
        out[f"score/{task}"] = score
    for task, score in record.test_scores.items():
        out[f"test/{task}"] = score
    for stage, seconds in record.timings.items():
        out[f"time/{stage}"] = round(seconds, 3)
    return out


# ---- W&B mode ----------------------------------------------------------------------------------
def has_wandb_key() -> bool:
    """Whether W&B can authenticate, by wandb's own login lookup.

    wandb looks at ``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` (workload identity), the
    ``.netrc`` entry ``wandb login`` writes and an ``api_key`` in its settings; asking it rather
    than copying its rules keeps a search online exactly when ``wandb.init`` would be. A wandb
    without that lookup (before 0.22) falls back on the environment and ``~/.netrc``. Malformed
    credentials count: online mode then lets wandb say what is wrong with them.
    """
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib.wbauth import authenticate
        from wandb.sdk.lib.wbauth.host_url import HostUrl
    except ImportError:
        return _env_or_netrc_key()
    # The lookup reads wandb's settings singleton, which then keeps the environment of this
    # moment; wandb.init must still see WANDB_MODE and the rest as they are when it runs.
    fresh = getattr(wandb_setup, "_singleton", None) is None
    try:
        host = HostUrl(wandb_setup.singleton().settings.base_url)
        found = authenticate._use_system_auth(host=host, source="adaptnas", update_session=False)
    except Exception:  # AuthenticationError, a bad WANDB_BASE_URL: wandb.init reports it
        return True
    finally:
        if fresh:
            wandb_setup._singleton = None  # no service was started: nothing to tear down
    return found is not None


def _env_or_netrc_key() -> bool:
    """``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` or a ``wandb login`` entry in .netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        return bool(host) and netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(logger_cfg: Mapping[str, Any]) -> str | None:
    """The ``mode`` for ``wandb.init``: the configured one, else ``WANDB_MODE``, else offline
    when there is no API key (so a search never stops to ask for one)."""
    mode = logger_cfg.get("mode")
    if mode is not None:
        if mode not in WANDB_MODES:
            raise ConfigError(f"logger.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
        return str(mode)
    if os.environ.get("WANDB_MODE"):
        return None  # wandb reads it itself
    return None if has_wandb_key() else "offline"


def require_wandb() -> Any:
    """The ``wandb`` module (an optional dependency), or a one-line ``TrackingError``."""
    try:
        import wandb
    except ImportError:
        raise TrackingError(
            "logger=wandb needs the wandb package: pip install 'adaptnas[wandb]'"
        ) from None
    return wandb


# ---- per-stage Lightning logger ----------------------------------------------------------------
class WandbStageLogger(Logger):
    """Sends one stage's Lightning metrics to a W&B run, against the stage's own step.

    Stages restart their global step at 0, so each stage gets ``<stage>/step`` as its x axis
    (``define_metric``) instead of sharing W&B's run step.
    """

    def __init__(self, run: Any, stage: str):
        super().__init__()
        self._run, self._stage = run, stage
        run.define_metric(f"{stage}/step")
        run.define_metric(f"{stage}/*", step_metric=f"{stage}/step")

    @property
    def name(self) -> str:
        return self._stage

    @property
    def version(self) -> str:
        return str(self._run.id)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        data = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        if step is not None:
            data[f"{self._stage}/step"] = step
        _safely(f"logging {self._stage} metrics", self._run.log, data)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The run's config is set once by the tracker; module hparams add nothing."""


# ---- tracked runs ------------------------------------------------------------------------------
class TrackedRun:
    """One tracked unit of work (a trial or a single run). The base class tracks nothing."""

    def logger_for(self, stage: str) -> Logger | None:
        """The Lightning logger of ``stage`` (``pretrain`` or a task name), or ``None``."""
        return None

    def log_stage(self, stage: str, seconds: float, info: Mapping[str, float]) -> None:
        """After a stage: its wall time and final metrics."""

    def finish(self, state: str, summary: Mapping[str, Any]) -> None:
        """Record the outcome and close the run (``state``: complete, pruned or fail)."""


class WandbRun(TrackedRun):
    """A W&B run (``wandb.init(reinit="create_new")``, so trial and study runs coexist)."""

    def __init__(
        self,
        logger_cfg: Mapping[str, Any],
        name: str | None,
        group: str | None,
        job_type: str,
        config: Mapping[str, Any],
        console: str = "off",
    ):
        wandb = require_wandb()
        root = Path(str(logger_cfg.get("dir") or ".")).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(
                project=logger_cfg.get("project") or "adaptnas",
                entity=logger_cfg.get("entity"),
                group=group,
                name=name,
                job_type=job_type,
                tags=list(logger_cfg.get("tags") or []),
                config=dict(config),
                dir=str(root),
                mode=wandb_mode(logger_cfg),
                reinit="create_new",
                settings=wandb.Settings(silent=True, console=console, save_code=False),
            )
        except (wandb.Error, OSError, ValueError) as err:
            raise TrackingError(f"logger=wandb: cannot start a run: {err}") from None

    @property
    def folder(self) -> Path:
        """The run's local folder (``.../wandb/offline-run-...`` or ``run-...``)."""
        return Path(self.run.dir).parent

    def logger_for(self, stage: str) -> Logger:
        return WandbStageLogger(self.run, stage)

    def log_stage(self, stage: str, seconds: float, info: Mapping[str, float]) -> None:
        self.run.summary[f"time/{stage}"] = round(seconds, 3)

    def finish(self, state: str, summary: Mapping[str, Any]) -> None:
        try:
            if ADAPTABILITY in summary:
                # In history too: a W&B sweep reads its metric from the run; charts want a point.
                self.run.log({ADAPTABILITY: summary[ADAPTABILITY]})
            self.run.summary.update(dict(summary))
            if state != "complete":
                self.run.tags = (*self.run.tags, state)
        finally:  # never leave the run open
            self.run.finish(exit_code=1 if state == "fail" else 0)


class CSVRun(TrackedRun):
    """Lightning ``CSVLogger`` per stage under ``folder``; ``config.json``, ``summary.json``."""

    def __init__(self, folder: Path, config: Mapping[str, Any]):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(dict(config), indent=1, default=str))

    def logger_for(self, stage: str) -> Logger:
        return CSVLogger(save_dir=self.folder.parent, name=self.folder.name, version=stage)

    def finish(self, state: str, summary: Mapping[str, Any]) -> None:
        (self.folder / "summary.json").write_text(json.dumps(dict(summary), indent=1, default=str))


def logger_kind(cfg: Mapping[str, Any]) -> str:
    """``cfg["logger"]["kind"]``, checked (``none`` when there is no logger section)."""
    kind = (cfg.get("logger") or {}).get("kind", "none")
    if kind not in LOGGER_KINDS:
        raise ConfigError(f"logger.kind={kind!r} is not one of {', '.join(LOGGER_KINDS)}")
    return kind


def open_run(
    cfg: Mapping[str, Any],
    name: str | None,
    group: str | None,
    job_type: str,
    config: Mapping[str, Any],
) -> TrackedRun:
    """Start a tracked run of the kind ``cfg["logger"]`` asks for.

    Args:
        cfg: The run config as plain dicts (its ``logger`` section picks the backend).
        name: Run name (``trial-3``); ``None`` lets W&B pick one (sweep runs).
        group: W&B group and CSV folder (the study name).
        job_type: ``trial``, ``train`` or ``study``.
        config: What the run records as config (masked already).
    """
    kind = logger_kind(cfg)
    if kind == "wandb":
        return WandbRun(cfg["logger"], name, group, job_type, config)
    if kind == "csv":
        root = Path(str(cfg["logger"].get("dir") or "logs")).expanduser()
        return CSVRun(root / (group or job_type) / (name or job_type), config)
    return TrackedRun()


def open_train_run(cfg: Mapping[str, Any], arch: TransformerConfig) -> TrackedRun:
    """The tracked run of ``nas/train.py`` (one architecture; a W&B sweep's run).

    Args:
        cfg: The train config as plain dicts (``logger``, ``run_name``, ``arch``...).
        arch: The architecture being trained.
    """
    if logger_kind(cfg) == "none":
        return TrackedRun()
    name = cfg.get("run_name")
    in_sweep = bool(os.environ.get("WANDB_SWEEP_ID"))
    if not name and not in_sweep:  # a sweep's agent names its runs
        source = cfg.get("arch")
        name = f"train-{Path(str(source)).stem}" if source and source != "???" else "train"
    extra: dict[str, Any] = {"arch": arch.to_dict()}
    return open_run(cfg, name, None if in_sweep else "train", "train", run_config(cfg, **extra))


def _safely(what: str, fn: Any, *args: Any) -> Any:
    """Call ``fn(*args)``; a tracking failure is a warning, never the end of a trial or search."""
    try:
        return fn(*args)
    except Exception as err:  # W&B service hiccups, full disks...: the study storage still has it
        log.warning("tracking: %s failed: %s: %s", what, type(err).__name__, err)
        return None


# ---- the search hook ---------------------------------------------------------------------------
class TrackingHook(TrialHook):
    """Tracks every trial of a search (one run each) and, with W&B, the study's best so far."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = dict(cfg)
        self.kind = logger_kind(cfg)
        if self.kind == "wandb":  # fail before the search starts, in one line
            require_wandb()
            wandb_mode(cfg["logger"])
        self.group = str(cfg.get("study_name") or "search")
        self.runs: dict[int, TrackedRun] = {}
        self.study_run: WandbRun | None = None
        self.best = -math.inf

    def on_search_start(self, study: optuna.Study, cfg: dict[str, Any]) -> None:
        self.cfg = dict(cfg)
        self.group = study.study_name
        done = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
        self.best = max((t.values[0] for t in done), default=-math.inf)
        if self.kind == "wandb":
            logger_cfg = self.cfg["logger"]
            mode = wandb_mode(logger_cfg) or os.environ.get("WANDB_MODE") or "online"
            folder = Path(str(logger_cfg.get("dir") or ".")).expanduser() / "wandb"
            log.info(
                "W&B: project %s, group %s, %s, runs in %s%s",
                logger_cfg.get("project"),
                self.group,
                mode,
                folder,
                f" (upload later: wandb sync {folder}/offline-run-*)" if mode == "offline" else "",
            )
            if logger_cfg["study_run"]:
                worker = int(self.cfg["worker"])
                # Fails early (bad project, key...) before any trial has run.
                self.study_run = WandbRun(
                    logger_cfg,
                    name="study" if worker == 0 else f"study-w{worker}",
                    group=self.group,
                    job_type="study",
                    config=run_config(self.cfg),
                    console="auto",
                )
                self.study_run.run.define_metric("trial")
                self.study_run.run.define_metric("*", step_metric="trial")
        elif self.kind == "csv":
            folder = Path(str(self.cfg["logger"].get("dir"))).expanduser() / self.group
            log.info("CSV logs: %s/trial-<n>/<stage>/metrics.csv", folder)

    def _open(self, trial: optuna.Trial, arch: TransformerConfig | None) -> TrackedRun:
        extra: dict[str, Any] = {"trial": trial.number, "params": dict(trial.params)}
        if arch is not None:
            extra["arch"] = arch.to_dict()
        try:
            run = open_run(
                self.cfg,
                f"trial-{trial.number}",
                self.group,
                "trial",
                run_config(self.cfg, **extra),
            )
        except TrackingError as err:
            # A tracking hiccup must not cost the trial (hours of search): warn and go on.
            log.warning("trial %d: not tracked: %s", trial.number, err)
            run = TrackedRun()
        self.runs[trial.number] = run
        return run

    def on_trial_start(self, trial: optuna.Trial, arch: TransformerConfig) -> None:
        self._close_stale(keep=trial.number)
        self._open(trial, arch)

    def logger_for(self, trial: optuna.Trial, stage: str) -> Any | None:
        run = self.runs.get(trial.number)
        return run.logger_for(stage) if run is not None else None

    def on_stage(self, trial: optuna.Trial, stage: str, seconds: float, info: dict) -> None:
        run = self.runs.get(trial.number)
        if run is not None:
            _safely(f"trial {trial.number}: logging {stage}", run.log_stage, stage, seconds, info)

    def on_trial_end(
        self, trial: optuna.Trial, state: str, result: Any | None, reason: str | None
    ) -> None:
        # An invalid architecture ends before on_trial_start: its run records the params and why.
        if trial.number not in self.runs:
            self._open(trial, None)
        run = self.runs.pop(trial.number)
        stored = TrialRecord.from_trial(trial)
        if reason:
            stored.fail_reason = reason
        summary = summary_of(stored, state)
        summary["trial"] = trial.number
        if REFERENCE in trial.user_attrs:  # a hand-written design (nas.study.references)
            summary[REFERENCE] = references.title(trial.user_attrs[REFERENCE])
        if result is not None and state == "complete":
            self.best = max(self.best, result.adaptability)
        if self.best > -math.inf:
            summary["best_adaptability_so_far"] = self.best
        _safely(f"trial {trial.number}: closing its run", run.finish, state, summary)
        if self.study_run is not None:
            row: dict[str, Any] = {"trial": trial.number, "pruned": int(state == "pruned")}
            if ADAPTABILITY in summary and state == "complete":
                row[ADAPTABILITY] = summary[ADAPTABILITY]
            if N_PARAMS in summary:
                row[N_PARAMS] = summary[N_PARAMS]
            if self.best > -math.inf:
                row["best_adaptability"] = self.best
            _safely("study run: logging a trial", self.study_run.run.log, row)

    def _close_stale(self, keep: int | None = None) -> None:
        """Fail runs whose trial ended without ``on_trial_end`` (an exception in the trial)."""
        for number in [n for n in self.runs if n != keep]:
            run = self.runs.pop(number)
            _safely(f"trial {number}: closing its run", run.finish, "fail", {"state": "fail"})

    def on_search_end(self, study: optuna.Study) -> None:
        self._close_stale()
        if self.study_run is None:
            return
        from nas.reporting.leaderboard import best_trials, leaderboard_rows
        from nas.reporting.standing import Standing

        run = self.study_run.run
        now = Standing.of(study)  # the storage read once for the table, the winner, the verdict
        rows = leaderboard_rows(now)
        if rows:
            import wandb

            columns = list(rows[0])
            data = [[None if r[c] == "" else r[c] for c in columns] for r in rows]
            run.log({"leaderboard": wandb.Table(columns=columns, data=data)})
        best = best_trials(now)
        if best:
            run.summary.update(
                {
                    "best_trial": best[0].number,
                    "best_adaptability": best[0].values[0],
                    "best_architecture": TrialRecord.from_trial(best[0]).describe,
                }
            )
        said = now.verdict
        if said:  # the winner against the best reference design, on test
            flat = {f"verdict/{k}": v for k, v in said.items() if not isinstance(v, list)}
            run.summary.update(flat)
        run.summary.update(screen_summary(study))
        run.finish()
        self.study_run = None


def screen_summary(study: optuna.Study) -> dict[str, Any]:
    """A two-tier study's screen for the study run's summary (``{}`` for other studies)."""
    said = scr.summary(study, top=0)
    if said is None:
        return {}
    return {
        "screen/screened": said.screened,
        "screen/target": said.target,
        "screen/seconds": said.seconds,
        "screen/build_seconds": said.build_seconds,
        "screen/confirmed": len(scr.confirmed(study)),
    }


class TrainRunHook(TrialHook):
    """What a single run (``nas/train.py``) hands ``run_trial``: its tracked run and ``test``.

    Args:
        run: The tracked run (``open_train_run``).
        test: Whether the adapted models are scored on the test splits (``test=true``).
    """

    def __init__(self, run: TrackedRun, test: bool):
        self.run, self.test = run, test

    def logger_for(self, trial: None, stage: str) -> Logger | None:
        return self.run.logger_for(stage)

    def on_stage(self, trial: None, stage: str, seconds: float, info: dict) -> None:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in info.items())
        log.info("%s done in %.1fs (%s)", stage, seconds, shown)
        self.run.log_stage(stage, seconds, info)

    def wants_test(self, trial: None, adaptability: float) -> bool:
        return self.test


def build_tracking_hooks(cfg: Mapping[str, Any]) -> list[TrialHook]:
    """The tracking hook ``cfg["logger"]`` asks for (none for ``logger=none``)."""
    return [] if logger_kind(cfg) == "none" else [TrackingHook(cfg)]


# ---- reading offline W&B runs back ---------------------------------------------------------------
# The .wandb file is a LevelDB-style log: a 7-byte file header, then records in 32 KiB blocks,
# each chunk with a 7-byte header (crc32c, length, type); records may span blocks.
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _item_key(item: Any) -> list[str]:
    return [item.key] if item.key else list(item.nested_key)


def _set_path(target: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def read_wandb_run(path: str | Path) -> dict[str, Any]:
    """Read a W&B run's ``.wandb`` file (offline or not yet synced) without the W&B service.

    Args:
        path: The ``run-<id>.wandb`` file or the run folder that holds it.

    Returns:
        ``{"id", "name", "group", "job_type", "project", "config", "history", "summary",
        "exit_code"}``: ``history`` is the list of logged rows (flat keys), ``summary`` the
        final summary (last logged values, then explicit summary updates).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.wandb"))
        if not found:
            raise FileNotFoundError(f"{path}: no .wandb file")
        path = found[0]
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "exit_code": None}
    for chunk in _chunks(data):
        record = pb.Record.FromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            out.update(
                id=r.run_id,
                name=r.display_name,
                group=r.run_group,
                job_type=r.job_type,
                project=r.project,
            )
            for item in r.config.update:
                _set_path(out["config"], _item_key(item), json.loads(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _set_path(out["config"], _item_key(item), json.loads(item.value_json))
        elif kind == "history":
            row = {".".join(_item_key(i)): json.loads(i.value_json) for i in record.history.item}
            out["history"].append(row)
            out["summary"].update({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "summary":
            for item in record.summary.update:
                _set_path(out["summary"], _item_key(item), json.loads(item.value_json))
            for item in record.summary.remove:
                out["summary"].pop(_item_key(item)[0], None)
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    out["config"].pop("_wandb", None)
    out["summary"].pop("_wandb", None)
    return out
