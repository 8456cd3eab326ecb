"""Building the Optuna study from config: sampler, pruner, storage, folder, resume.

A search opens its study in one call, :func:`open_search_study`: name, folder, storage, the study,
the trials of killed local workers failed (:func:`fail_orphans`) and the finished ones counted.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import importlib.util
import logging
import os
import re
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import hydra.errors
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.storages._heartbeat import BaseHeartbeat

from nas.config.errors import USER_ERRORS, ConfigError, first_line
from nas.config.nodes import plain
from nas.trial import record as rec
from nas.trial.record import FAIL_REASON, FINISHED, State

log = logging.getLogger("adaptnas")

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]{0,127}$")

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@contextmanager
def file_lock(path: Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing), blocking until it is free.

    The kernel drops the lock when its holder dies, SIGKILL included, so a killed worker never
    leaves a stale lock behind. On a shared file system it needs working POSIX locks (NFSv4 has
    them).

    Args:
        path: The lock file (empty; its contents are never read).
        waiting: Logged once at INFO when another process holds the lock (``None``: silent).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            if waiting:
                log.info("%s (%s)", waiting, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def default_study_name(cfg: DictConfig, task_choice: str | None = None) -> str:
    """``<task>-<space>``: the task option as typed (``suite``, ``qa``) or the task names joined."""
    label = task_choice or "+".join(cfg.tasks.keys())
    label = re.sub(r"[^A-Za-z0-9_.+=-]", "", label.replace(",", "+"))
    space = Path(str(cfg.search_space)).stem
    return f"{label}-{space}"


def check_study_name(name: str) -> str:
    """Reject names that could escape the studies folder or break a storage URL."""
    if not STUDY_NAME.match(name) or name in (".", ".."):
        raise ConfigError(
            f"study_name={name!r}: use letters, digits and _ . + = - only (no path characters)"
        )
    return name


def study_dir(cfg: DictConfig) -> Path:
    """The stable folder of the study: ``<paths.studies>/<study_name>``."""
    return Path(cfg.paths.studies).expanduser().resolve() / check_study_name(cfg.study_name)


STORAGE_KINDS = ("sqlite", "journal", "postgres", "memory")
URL_ENV = "ADAPTNAS_STORAGE_URL"


def storage_url(cfg: DictConfig) -> str:
    """Where the study lives, as a URL (``journal:<path>`` for a journal file, ``memory``).

    ``sqlite`` defaults to ``study.db`` and ``journal`` to ``journal.log`` in the study folder;
    ``postgres`` needs ``storage.url`` (by default read from ``$ADAPTNAS_STORAGE_URL``).
    """
    kind = cfg.storage.kind
    if kind not in STORAGE_KINDS:
        raise ConfigError(f"storage={kind} is not supported (known: {', '.join(STORAGE_KINDS)})")
    if kind == "memory":
        return "memory"
    if kind == "journal":
        path = cfg.storage.get("path") or study_dir(cfg) / "journal.log"
        return f"journal:{Path(str(path)).expanduser().resolve()}"
    url = cfg.storage.get("url")
    if url:
        return str(url)
    if kind == "postgres":
        raise ConfigError(
            f"storage=postgres needs a database URL: set {URL_ENV}=postgresql://user:password@host"
            "/db in the environment (or storage.url=, which Hydra would save with its password)"
        )
    return f"sqlite:///{study_dir(cfg) / 'study.db'}"


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``.

    Everything between the user's colon and the last ``@`` goes, so a password holding ``@`` or
    ``:`` is hidden whole.
    """
    return re.sub(r"(://[^:/@\s]*:)\S*@", r"\1***@", url)


def url_password(url: str) -> str | None:
    """The password inside a storage URL, if any (to scrub it from messages and saved files)."""
    match = re.search(r"://[^:/@\s]*:(\S*)@", url)
    return match.group(1) if match and match.group(1) else None


def error_text(url: str, err: BaseException) -> str:
    """The first line of ``err`` from opening ``url``, with no password in it."""
    # SQLAlchemy starts with "(psycopg2.OperationalError) ": the driver's class says nothing.
    text = re.sub(r"^\([\w.]+\)\s*", "", first_line(err))
    secret = url_password(url)
    if secret:
        text = text.replace(secret, "***")
    return mask_url(text)


def masked_error(url: str, err: BaseException) -> str:
    """One line naming the (masked) URL and the first line of ``err``, with no password in it."""
    return f"storage.url={mask_url(url)!r}: {error_text(url, err)}"


def scrub_saved_secrets(url: str) -> list[Path]:
    """Replace the storage password in the files Hydra saved for this run with ``***``.

    Hydra writes the command line and the config to ``.hydra/*.yaml`` (and ``multirun.yaml``)
    before our code runs; a password typed as ``storage.url=...`` would stay there. The
    environment variable keeps it out in the first place; this is the safety net.

    Returns:
        The files that were rewritten.
    """
    secret = url_password(url)
    if not secret:
        return []
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return []
        hc = HydraConfig.get()
        files = []
        if hc.runtime.output_dir and hc.output_subdir:
            files += sorted((Path(hc.runtime.output_dir) / hc.output_subdir).glob("*.yaml"))
        files.append(Path(hc.sweep.dir) / "multirun.yaml")
    except Exception:  # noqa: BLE001 (no Hydra run: nothing was saved)
        return []
    scrubbed = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if secret in text:
            tmp = path.with_suffix(".scrub.tmp")
            tmp.write_text(text.replace(secret, "***"))
            tmp.replace(path)
            scrubbed.append(path)
    return scrubbed


def heartbeat_settings(cfg: DictConfig) -> tuple[int | None, int | None, int | None]:
    """``(heartbeat_interval, grace_period, max_retry)`` from ``cfg.storage`` (``None``: off)."""
    interval = cfg.storage.get("heartbeat_interval")
    if interval is None:
        return None, None, None
    grace = cfg.storage.get("grace_period")
    retry = cfg.storage.get("max_retry", 1)
    for key, value in (("heartbeat_interval", interval), ("grace_period", grace)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"storage.{key}={value!r} must be a positive integer (seconds)")
        if value is not None and value < 1:
            raise ConfigError(f"storage.{key}={value!r} must be a positive integer (seconds)")
    if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
        raise ConfigError(f"storage.max_retry={retry!r} must be a non-negative integer (or null)")
    return interval, grace or 2 * interval, retry


def _retry_callback(max_retry: int | None):
    if max_retry == 0:
        return None
    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


# Optuna's own JournalStorage has no heartbeat (https://github.com/optuna/optuna/issues/6615);
# tests/nas/test_conventions.py fails once it gains one: then delete this class and use Optuna's.
class JournalHeartbeatStorage(optuna.storages.JournalStorage, BaseHeartbeat):
    """A journal-file storage with Optuna's heartbeat protocol, which ``JournalStorage`` lacks.

    Each running trial records ``time.time()`` as a system attribute every ``heartbeat_interval``
    seconds (one line in the journal); a running trial whose last beat is older than
    ``grace_period`` is stale, and Optuna's own machinery (``fail_stale_trials`` at the start of
    every trial, the retry callback) fails it and queues its copy. Wall clocks are compared, so
    workers on several machines sharing the file need synchronised clocks (NTP), which a cluster
    has; the RDB storages compare the database server's clock instead.
    """

    KEY = "adaptnas:heartbeat"

    def __init__(
        self,
        path: Path,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        stale_trial_callback=None,
    ):
        super().__init__(optuna.storages.journal.JournalFileBackend(str(path)))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or (2 * heartbeat_interval if heartbeat_interval else None)
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:  # noqa: D102 (Optuna's interface)
        try:
            self.set_trial_system_attr(trial_id, self.KEY, time.time())
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
            pass  # another worker already failed this trial as stale: nothing left to beat for

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert self.grace_period is not None
        now = time.time()
        running = self.get_all_trials(
            study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        )
        # Like RDBStorage: a trial that never beat (its worker had not started it) is not stale.
        beats = {t._trial_id: t.system_attrs.get(self.KEY) for t in running}
        return [
            i for i, beat in beats.items() if beat is not None and now - beat > self.grace_period
        ]

    def get_heartbeat_interval(self) -> int | None:  # noqa: D102
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):  # noqa: D102
        return self.stale_trial_callback

    # Optuna < 5 asks for the callback under this name.
    get_failed_trial_callback = get_heartbeat_stale_trial_callback


def postgres_driver() -> str:
    """The installed PostgreSQL driver for a plain ``postgresql://`` URL: psycopg 3, else 2.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3 only; the ``cluster`` extra installs
    psycopg2, so pick whichever is there.
    """
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return driver
    raise ConfigError(
        "storage=postgres needs a PostgreSQL driver: pip install 'adaptnas[cluster]' "
        "(psycopg2-binary) or psycopg"
    )


def build_storage(cfg: DictConfig) -> optuna.storages.BaseStorage:
    """The Optuna storage named by ``cfg.storage`` (with heartbeats, so killed trials are retried).

    Any failure to open it (bad URL, unreachable server, missing driver) is a one-line
    ``ConfigError`` with the password masked.
    """
    kind = cfg.storage.kind
    url = storage_url(cfg)
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    interval, grace, retry = heartbeat_settings(cfg)
    callback = _retry_callback(retry) if interval else None
    if kind == "journal":
        path = Path(url.removeprefix("journal:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalHeartbeatStorage(path, interval, grace, callback)
        except OSError as err:
            raise ConfigError(f"storage.path={str(path)!r}: {err.strerror or err}") from None
    engine_kwargs: dict[str, Any] = {}
    typed = url  # errors name the URL as the user gave it (masked), not our rewrite of it
    if kind == "sqlite":
        if not url.startswith("sqlite:///"):
            raise ConfigError(f"storage.url={mask_url(url)!r} is not an sqlite:/// URL")
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    else:  # postgres
        if url.startswith("postgres://"):
            # SQLAlchemy 2 dropped this alias; many providers still print URLs that way.
            url = "postgresql://" + url.removeprefix("postgres://")
        if not url.startswith("postgresql"):
            raise ConfigError(
                f"storage.url={mask_url(url)!r} is not a postgresql:// URL (storage=postgres)"
            )
        if url.startswith("postgresql://"):
            url = "postgresql+" + postgres_driver() + url.removeprefix("postgresql")
        timeout = int(cfg.storage.get("connect_timeout") or 10)
        # Fail fast on an unreachable server; re-check pooled connections a restart dropped.
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": timeout}}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs or None,
            heartbeat_interval=interval,
            grace_period=grace,
            heartbeat_stale_trial_callback=callback,
        )
    except Exception as err:  # SQLAlchemy raises many kinds; all mean "cannot open this URL"
        raise ConfigError(masked_error(typed, err)) from None


def _targets(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """``(key, _target_)`` of ``node`` and of every mapping nested in it."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield f"{where}._target_", node["_target_"]
        for key, value in node.items():
            yield from _targets(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _targets(value, f"{where}.{i}")


def instantiate_optuna(section: str, node: Any, base: type, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node)`` for a config section that must build an Optuna object.

    A ``_target_`` is a string from a config file or the command line; calling whatever it names
    would run any function (``_target_: os.system``). So the top ``_target_`` must be a subclass
    of ``base`` and any nested one a class from the ``optuna`` package; anything else, and any
    error while building, is a one-line ``ConfigError`` naming the key.
    """
    data = plain(node) if isinstance(node, DictConfig) else node
    for key, target in _targets(data, section):
        try:
            cls = hydra.utils.get_class(str(target))
        except Exception as err:  # noqa: BLE001 (import errors of any kind: the name is wrong)
            raise ConfigError(f"{key}={target!r} is not a class ({first_line(err)})") from None
        top = key == f"{section}._target_"
        allowed = issubclass(cls, base) if top else cls.__module__.split(".")[0] == "optuna"
        if not allowed:
            what = f"an {base.__module__}.{base.__name__}" if top else "an optuna class"
            raise ConfigError(f"{key}={target!r} is not {what}")
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as err:
        raise ConfigError(f"{section}: {first_line(err.__cause__ or err)}") from None


def build_sampler(cfg: DictConfig, existing: int = 0) -> optuna.samplers.BaseSampler:
    """Instantiate ``cfg.sampler`` (``_target_``), seeded by ``seed + worker``.

    Args:
        cfg: The search config.
        existing: Trials the study already has. A resumed study's sampler gets another seed:
            with the same one, its random start-up suggestions would repeat the architectures
            the first run already trained.
    """
    seed = int(cfg.seed) + int(cfg.get("worker", 0)) + 100_003 * int(existing)
    return instantiate_optuna("sampler", cfg.sampler, optuna.samplers.BaseSampler, seed=seed)


def build_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """Instantiate ``cfg.pruner``; multi-objective studies cannot prune, so they get none."""
    if cfg.objective.multi_objective:
        return optuna.pruners.NopPruner()
    return instantiate_optuna("pruner", cfg.pruner, optuna.pruners.BasePruner)


def directions(cfg: DictConfig) -> list[str]:
    """Maximise adaptability; minimise parameter count too when multi-objective."""
    return ["maximize", "minimize"] if cfg.objective.multi_objective else ["maximize"]


def metric_names(n_objectives: int) -> list[str]:
    """The objectives' names, for ``trials_dataframe`` (``values_adaptability``) and
    optuna-dashboard instead of ``values_0``, ``values_1``."""
    return ["adaptability", "n_params"][:n_objectives]


def open_study(cfg: DictConfig, footprint: StudyFootprint | None = None) -> optuna.Study:
    """Create the study, or load it when it exists (same name and storage: a resume).

    Args:
        cfg: The search config.
        footprint: Filled with what this call creates (the study, files, folders), so that
            :meth:`StudyFootprint.undo_on_user_error` can remove them again.
    """
    footprint = footprint if footprint is not None else StudyFootprint()
    sampler, pruner = build_sampler(cfg), build_pruner(cfg)  # bad ones fail before any file
    footprint.new_paths = _new_paths(cfg)
    storage = build_storage(cfg)
    footprint.storage = storage
    footprint.created = not _has_study(storage, cfg.study_name)
    # Optuna's "A new study created" line would go to stderr even when bad data then undoes the
    # study; the engine logs the study it opened (new or resumed) itself.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:
        study = optuna.create_study(
            study_name=cfg.study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=directions(cfg),
            load_if_exists=True,
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    existing = len(study.get_trials(deepcopy=False))
    if existing:
        study.sampler = build_sampler(cfg, existing)
    if len(study.directions) != len(directions(cfg)):
        raise ConfigError(
            f"study '{cfg.study_name}' exists with {len(study.directions)} objective(s); "
            f"objective.multi_objective={cfg.objective.multi_objective} "
            f"needs {len(directions(cfg))}"
            " (pick another study_name)"
        )
    if footprint.created:  # a resumed study is left byte for byte as it was (bad input undoes)
        study.set_metric_names(metric_names(len(study.directions)))
    return study


def _has_study(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def _new_paths(cfg: DictConfig) -> list[Path]:
    """The files and folders that opening the study's storage would create (not there yet)."""
    url = storage_url(cfg)
    if url.startswith("sqlite:///"):
        target = Path(url.removeprefix("sqlite:///"))
    elif url.startswith("journal:"):
        target = Path(url.removeprefix("journal:"))
    else:
        return []  # a database server or memory: the study row is all that is created
    target = target.expanduser().absolute()
    if target.exists():
        return []
    top = target  # the outermost missing folder: storages create parents as needed
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    if top != target:
        return [top]
    # A new file in an existing folder, and what SQLite and the journal lock leave beside it.
    return [target] + [target.with_name(target.name + s) for s in ("-journal", "-wal", "-shm")]


@dataclass
class StudyFootprint:
    """What :func:`open_study` created: the study (``created``) and files or folders.

    A run that fails on its input after opening its study (bad data, a bad ``threads``) must not
    leave an empty study behind: the next, corrected run would resume it, and a typo would leave
    a folder per attempt. A study that existed before is never touched.
    """

    created: bool = False
    new_paths: list[Path] = field(default_factory=list)
    storage: Any = None

    @contextmanager
    def undo_on_user_error(self, study: optuna.Study) -> Iterator[None]:
        """On a user error inside the block, remove what this run created, then re-raise."""
        try:
            yield
        except USER_ERRORS:
            self.discard(study)
            raise

    def discard(self, study: optuna.Study) -> None:
        """Delete the study and the files this run created, if it created them and no trial ran."""
        if not self.created or study.get_trials(deepcopy=False):
            return  # someone else's study, or another worker already uses it
        try:
            optuna.delete_study(study_name=study.study_name, storage=study._storage)
        except Exception as err:  # noqa: BLE001 (best effort; the files below go anyway)
            log.warning("could not delete the new study '%s': %s", study.study_name, err)
        engine = getattr(getattr(self.storage, "_backend", self.storage), "engine", None)
        if engine is not None:
            engine.dispose()  # close SQLite's file before it goes
        for path in self.new_paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)


def count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: completed or pruned (failed ones are re-run).

    Finalist repeats (``nas.study.finalists``) are not search trials and never count.
    """
    from nas.study.finalists import search_trials

    return len(search_trials(study.get_trials(deepcopy=False, states=FINISHED)))


# ---- the search's study: opened once, orphans failed, finished trials counted -----------------
def pid_namespace() -> str | None:
    """This process's PID namespace (``pid:[4026531836]``) on Linux, else ``None``.

    Containers sharing a host name (``--network host``) each have their own PIDs: a PID is only
    checked by a process of the same namespace.
    """
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:  # a killed child its parent has not reaped yet is still listed, as a zombie
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def fail_orphans(
    study: optuna.Study,
    max_retry: int | None = 1,
    host: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> list[int]:
    """Fail the running trials whose worker process on this machine is gone, and queue them again.

    A trial records the ``host``, ``pid`` and ``pid_ns`` of its process (``WorkerInfo.attrs``). A
    running trial of this host (and PID namespace) whose process no longer exists was left by a
    killed worker: it gets ``fail_reason`` ``worker process <pid> died``, becomes FAIL, and a
    copy with the same parameters is queued (WAITING) by the storage's heartbeat retry callback
    when it has one, else by ``RetryHeartbeatStaleTrialCallback(max_retry)``; either way the copy
    carries ``retry_history`` and counts retries like a trial failed by heartbeat. Trials of
    other hosts, of this process, or without a pid are left to the heartbeat.

    Args:
        study: The study, just opened.
        max_retry: Retries of one trial when the storage has no callback (``0``: fail only).
        host: This machine's name (default: ``socket.gethostname()``).
        alive: Whether a pid runs (tests pass their own).

    Returns:
        The numbers of the trials failed.
    """
    storage = study._storage
    host = host or socket.gethostname()
    namespace = pid_namespace()
    callback = None
    if isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat):
        callback = storage.get_heartbeat_stale_trial_callback()
    if callback is None and max_retry != 0:
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        attrs = trial.user_attrs
        pid = attrs.get(rec.PID)
        if attrs.get(rec.HOST) != host or not isinstance(pid, int) or pid == os.getpid():
            continue
        if attrs.get(rec.PID_NS, namespace) != namespace or alive(pid):
            continue
        reason = f"worker process {pid} died"
        try:
            storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
            if not storage.set_trial_state_values(trial._trial_id, state=State.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker starting at the same moment failed it first
        failed.append(trial.number)
        queued = ""
        if callback is not None:
            frozen = copy.deepcopy(storage.get_trial(trial._trial_id))
            # The copy inherits the user attributes; the reason is the original's alone.
            frozen.user_attrs.pop(FAIL_REASON, None)
            before = len(study.get_trials(deepcopy=False, states=(State.WAITING,)))
            callback(study, frozen)
            if len(study.get_trials(deepcopy=False, states=(State.WAITING,))) > before:
                queued = ", queued again with the same parameters"
        log.warning("trial %d: %s on %s: failed%s", trial.number, reason, host, queued)
    return failed


@dataclass
class SearchStudy:
    """The study of a search as :func:`open_search_study` leaves it, with what the engine asks.

    Attributes:
        study: The study, created or loaded (a resume).
        folder: Its folder, ``<paths.studies>/<study_name>``.
        url: Where it lives (``storage_url``); it may hold a password: show ``masked_url``.
        footprint: What opening it created (:meth:`StudyFootprint.undo_on_user_error`).
        finished: Trials that count towards ``n_trials`` (``count_finished``), orphans failed.
    """

    study: optuna.Study
    folder: Path
    url: str
    footprint: StudyFootprint
    finished: int

    @property
    def masked_url(self) -> str:
        """``url`` with its password masked, for messages."""
        return mask_url(self.url)


def open_search_study(cfg: DictConfig, suffix: str = "") -> SearchStudy:
    """Open (or resume) the study of the search ``cfg`` describes, in this order.

    1. ``study_name``: when the config has none, ``default_study_name(cfg) + suffix`` (the
       strategy's, so that studies of two strategies never mix), written to ``cfg``;
    2. its folder and storage URL (a bad name or storage kind fails here), and a password typed
       on the command line scrubbed from the files Hydra saved;
    3. the study created or loaded (:func:`open_study`; a bad URL fails before any data is
       built), what that created kept in ``footprint``;
    4. trials left running by a killed process on this machine failed and queued again now
       (:func:`fail_orphans`, ``storage.max_retry``), rather than after the heartbeat's grace
       period;
    5. the finished trials counted (:func:`count_finished`).
    """
    if cfg.get("study_name") is None:
        cfg.study_name = default_study_name(cfg) + suffix
    folder, url = study_dir(cfg), storage_url(cfg)
    scrub_saved_secrets(url)  # a password typed on the command line
    created = StudyFootprint()  # what opening the study creates, undone on bad input later
    study = open_study(cfg, created)
    fail_orphans(study, max_retry=cfg.storage.get("max_retry", 1))
    return SearchStudy(study, folder, url, created, count_finished(study))


# ---- an existing study: report, export, validate ------------------------------------------------
def known_studies(root: Path) -> list[str]:
    """The study folders under ``root`` (those holding a run config or a storage file)."""
    marks = ("config.yaml", "study.db", "journal.log")
    return sorted(p.name for p in root.glob("*") if any((p / m).is_file() for m in marks))


def recorded_run_config(folder: Path, resolve: bool = False) -> dict[str, Any]:
    """The run config a search saved in its study folder (``config.yaml``); ``{}`` without one."""
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    return OmegaConf.to_container(OmegaConf.load(path), resolve=resolve) or {}  # type: ignore[return-value]


def open_existing_study(cfg: DictConfig, what: str = "open") -> tuple[optuna.Study, Path]:
    """Load study ``cfg.study`` and its folder, never creating either (report, export, validate).

    The storage is ``cfg.storage`` when given (``storage=journal``, ``storage.url=...``), else the
    one the search recorded in ``<study folder>/config.yaml``, else the default SQLite file.

    Args:
        cfg: A config with ``study``, ``paths.studies`` and ``storage`` (may be ``None``).
        what: The verb of the error for a missing ``study=`` (``export``, ``validate``).

    Raises:
        ConfigError: No study named, no such study (the message lists the known ones), or a
            recorded storage whose password was masked.
    """
    if OmegaConf.is_missing(cfg, "study") or not cfg.get("study"):
        raise ConfigError(f"study: name the study to {what}, e.g. study=suite-small")
    name = check_study_name(str(cfg.study))
    root = Path(cfg.paths.studies).expanduser().resolve()
    folder = root / name
    scfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    scfg.study_name = name
    recorded = recorded_run_config(folder).get("storage") or {"kind": "sqlite", "url": None}
    missing = (
        f"study={name}: no such study in {root} (known: {', '.join(known_studies(root)) or 'none'})"
    )
    if scfg.get("storage") is None:
        if not folder.is_dir():
            raise ConfigError(missing)
        if "***" in str(recorded.get("url") or ""):
            raise ConfigError(
                f"study={name} lives in {recorded['url']}: give the storage with its password, "
                "e.g. storage=postgres with ADAPTNAS_STORAGE_URL set, "
                "or storage=postgres storage.url=..."
            )
        scfg.storage = recorded
    if scfg.storage.get("kind") == "sqlite" and not scfg.storage.get("url"):
        if not (folder / "study.db").is_file():
            if recorded.get("kind", "sqlite") != "sqlite":
                raise ConfigError(
                    f"study={name}: it was run with storage={recorded['kind']}; "
                    f"add storage={recorded['kind']}"
                )
            raise ConfigError(missing)
    storage = build_storage(scfg)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise ConfigError(
            f"study={name}: not in storage {mask_url(storage_url(scfg))}"
            + (f" (studies there: {', '.join(names)})" if names else "")
        ) from None
    return study, folder
