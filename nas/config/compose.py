"""What the entry points share: one-line errors for bad input, before and after Hydra composes.

Hydra reports a bad override with several lines (and a hint about HYDRA_FULL_ERROR); users who
mistype ``sampler=tpee`` deserve one line that names the culprit. So a single run composes the
config here, once (``run_once``), turns Hydra's exceptions into that line and runs the job as
``hydra.main`` would; a multirun and Hydra's flags are left to Hydra. ``precheck`` composes only,
for callers that want the check without the run.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf.errors import OmegaConfBaseException

from nas.config.errors import USER_ERRORS
from nas.config.schema import field_names


def conf_dir() -> Path:
    """Hydra's config folder: ``conf/`` of a source checkout, else the installed package data.

    ``pip install .`` copies ``conf/`` into the ``adaptnas`` package (``adaptnas/conf``, see
    pyproject.toml); the spec is looked up without importing ``adaptnas`` (torch and all).
    """
    source = Path(__file__).resolve().parents[2] / "conf"
    if (source / "search.yaml").is_file():
        return source
    spec = importlib.util.find_spec("adaptnas")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "conf" / "search.yaml").is_file():
            return Path(location) / "conf"
    return source  # neither: Hydra names the missing folder


# Absolute, so that the entry points find it whether run as files (python nas/search.py), as
# modules (python -m nas.search) or as console commands (adaptnas-search).
CONF_DIR = conf_dir()


def fail(message: str, code: int = 2) -> None:
    """Print ``adaptnas: error: <message>`` (one line) on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    print(f"adaptnas: error: {line}", file=sys.stderr)
    raise SystemExit(code)


def _error_lines(err: BaseException) -> list[str]:
    """The non-blank lines of ``err`` and of the exceptions that caused it, in that order."""
    lines: list[str] = []
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        lines += [line.strip() for line in str(err).splitlines() if line.strip()]
        err = err.__cause__
    return lines


def _did_you_mean(config_name: str | None, full_key: str) -> str:
    """`` (did you mean pretrain.tokens?)`` from the schema's keys beside ``full_key``."""
    names = field_names(config_name or "", full_key)
    parent, _, last = full_key.rpartition(".")
    close = difflib.get_close_matches(last, names or [], n=1)
    if not close:
        return "" if names is not None else f"; add a new key with +{full_key}=..."
    return f" (did you mean {parent + '.' if parent else ''}{close[0]}?)"


def describe_hydra_error(err: Exception, config_name: str | None = None) -> str:
    """A one-line description of a composition error, naming the override or file at fault.

    Args:
        err: What ``compose`` raised.
        config_name: The primary config (``search``, ...): its schema suggests close keys.
    """
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        options = sorted(err.options or [])
        if group and options:
            close = difflib.get_close_matches(option, options, n=1)
            hint = f"; did you mean {group}={close[0]}?" if close else ""
            return f"{group}={option}: no such option (available: {', '.join(options)}){hint}"
    lines = _error_lines(err)
    if not lines:
        return type(err).__name__
    head = lines[0]
    # Where: the override (``To append ... use +key=value`` / ``Error merging override k=v``) or
    # the config file being merged (``In 'experiment/mine': ...``).
    where = None
    for line in lines:
        if m := re.match(r"To append to your config use \+(\S+)$", line):
            where = m.group(1)
            break
        if m := re.match(r"Error merging override (\S+)$", line):
            where = m.group(1)
            break
        if m := re.match(r"In '([^']+)':", line):
            where = f"in {m.group(1)}"
            break
    full_key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("full_key:")), "")
    detail = [
        ln
        for ln in lines[1:]
        if not ln.startswith(("To append", "full_key:", "object_type=", "reference_type=", "In '"))
        and not ln.startswith("Error merging")
    ]
    if where is None or not detail:
        return head
    reason = detail[0]
    if full_key and re.match(r"Key '[^']*' (not in|is not in struct)", reason):
        return f"{where}: unknown key '{full_key}'{_did_you_mean(config_name, full_key)}"
    if full_key and full_key not in reason and where.split("=")[0].lstrip("+~") != full_key:
        reason = f"{full_key}: {reason}"
    return f"{where}: {reason}"


def _hydra_override(arg: str) -> bool:
    """Whether ``arg`` overrides Hydra's own config (``hydra.run.dir=``, ``hydra/launcher=``)."""
    return arg.lstrip("+~").startswith("hydra")


def precheck(config_name: str, argv: list[str]) -> None:
    """Compose ``config_name`` with the command-line overrides and fail in one line if it breaks.

    ``hydra.searchpath=[file://...]`` (user config files, e.g. their own experiments) is composed
    with the rest, so a mistake in such a file is one line too; other ``hydra`` overrides and
    flags (``--multirun``, ``--help``, ``--config-dir``, ``hydra/launcher=...``) are left to Hydra.
    """
    if _left_to_hydra(argv):
        return
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=argv)
            _refuse_a_repeated_task(config_name, argv)
    except (HydraException, OmegaConfBaseException) as err:
        fail(describe_hydra_error(err, config_name))


def _refuse_a_repeated_task(config_name: str, argv: list[str]) -> None:
    """Fail in one line when a task is selected twice (``task=[qa,qa]``)."""
    if twice := _tasks_selected_twice(config_name, argv):
        where = next((a for a in argv if a.lstrip("+~").startswith("task=")), "task")
        fail(f"{where}: task '{twice}' is selected twice (a task runs once; drop the repeat)")


def _tasks_selected_twice(config_name: str, argv: list[str]) -> str | None:
    """The first task whose config file the defaults list names twice (``task=[qa,qa]``).

    The composed config cannot tell: both copies merge into the one ``tasks.qa`` block.
    """
    loader = GlobalHydra.instance().config_loader()
    defaults = loader.compute_defaults_list(config_name, argv, RunMode.RUN).defaults
    seen: set[str] = set()
    for default in defaults:
        package = default.package or ""
        if package.startswith("tasks.") and not default.is_self:
            if package in seen:
                return package.removeprefix("tasks.")
            seen.add(package)
    return None


def run_guarded(fn: Callable, cfg) -> object:
    """Call ``fn(cfg)``; input errors become one line and exit code 2, bugs keep their traceback."""
    try:
        return fn(cfg)
    except USER_ERRORS as err:
        fail(str(err))
    except KeyboardInterrupt:
        print(
            "adaptnas: interrupted; the study is saved, run the same command to resume",
            file=sys.stderr,
        )
        raise SystemExit(130) from None


def _left_to_hydra(argv: list[str]) -> bool:
    """Whether Hydra's own ``main`` handles this command line (flags, ``hydra`` overrides)."""
    if any(a.startswith("-") for a in argv):  # --multirun, --help, --cfg, --config-dir, ...
        return True
    return any(_hydra_override(a) and not a.startswith("hydra.searchpath=") for a in argv)


def run_once(main: Callable[[], None], config_name: str, argv: list[str]) -> None:
    """Compose ``config_name`` once and run ``main``'s task function on it as Hydra's run does.

    What ``hydra.main`` does for a single run (``Hydra.run``: compose, then ``run_job`` in the run
    folder with Hydra's logging), except that a composition error is the one line of
    ``describe_hydra_error`` rather than Hydra's report, so the config need not be composed a
    second time just to check it.
    """
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    task = main.__wrapped__  # type: ignore[attr-defined]  # hydra.main keeps it (functools.wraps)
    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task)
    hydra = Hydra.create_main_hydra2(
        task_name=detect_task_name(calling_file, calling_module),
        config_search_path=create_automatic_config_search_path(
            calling_file, calling_module, str(CONF_DIR)
        ),
    )
    try:
        cfg = hydra.compose_config(
            config_name, argv, run_mode=RunMode.RUN, with_log_configuration=True
        )
        _refuse_a_repeated_task(config_name, argv)
    except (HydraException, OmegaConfBaseException) as err:
        fail(describe_hydra_error(err, config_name))
    if cfg.hydra.mode is None:
        cfg.hydra.mode = RunMode.RUN
    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name=config_name)
    ret = run_job(
        hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
        task_function=task,
        config=cfg,
        job_dir_key="hydra.run.dir",
        job_subdir_key=None,
    )
    callbacks.on_run_end(config=cfg, config_name=config_name, job_return=ret)
    _ = ret.return_value  # a failed job raises its exception here


def entry(main: Callable[[], None], config_name: str) -> None:
    """Run a Hydra ``main``: one composition, one-line errors (``run_once``).

    Flags and ``hydra`` overrides (``--multirun``, ``--help``, ``--cfg``,
    ``hydra/launcher=...``) go to Hydra's own ``main``. The ``adaptnas-*`` console commands
    (pyproject.toml) call this through each entry point's ``cli()``, exactly as
    ``python nas/<name>.py`` does.
    """
    argv = sys.argv[1:]
    if _left_to_hydra(argv):
        main()
    else:
        run_once(main, config_name, argv)
