"""What the entry points share: one-line errors for bad input, before and after Hydra composes.

Hydra reports a bad override with several lines (and a hint about HYDRA_FULL_ERROR); users who
mistype ``sampler=tpee`` deserve one line that names the culprit. So a single run composes the
config once up front and turns Hydra's exceptions into that line; a multirun is left to Hydra.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from nas.errors import USER_ERRORS

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def fail(message: str, code: int = 2) -> None:
    """Print ``adaptnas: error: <message>`` (one line) on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    print(f"adaptnas: error: {line}", file=sys.stderr)
    raise SystemExit(code)


def describe_hydra_error(err: Exception) -> str:
    """A one-line description of a composition error, naming the override at fault."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        options = sorted(err.options or [])
        if group and options:
            close = difflib.get_close_matches(option, options, n=1)
            hint = f"; did you mean {group}={close[0]}?" if close else ""
            return f"{group}={option}: no such option (available: {', '.join(options)}){hint}"
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def precheck(config_name: str, argv: list[str]) -> None:
    """Compose ``config_name`` with the command-line overrides and fail in one line if it breaks."""
    if any(a.startswith("-") for a in argv) or any(a.startswith(("hydra", "+hydra")) for a in argv):
        return  # --multirun, --help, --cfg, hydra/launcher=...: Hydra's own business
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=argv)
    except (HydraException, OmegaConfBaseException) as err:
        fail(describe_hydra_error(err))


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


def entry(main: Callable[[], None], config_name: str) -> None:
    """Run a Hydra ``main`` after the one-line precheck of its overrides."""
    precheck(config_name, sys.argv[1:])
    main()
