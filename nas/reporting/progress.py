"""A live progress display of a search on an interactive terminal: trial n/N, stage, ETA, best.

Only where someone watches: stderr is a terminal, ``TERM`` is not ``dumb`` and the process is not
a SLURM job (whose "terminal" is a log file). Piped output, CI logs and cluster jobs keep the
plain log lines, one per stage and trial. While the display runs, the log lines of the terminal's
handlers are printed above it (through rich's file proxy) rather than through it.
``trainer.progress_bar=rich`` adds Lightning's ``RichProgressBar`` inside each stage
(``nas.trial.stages.stage_callbacks``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Any

import optuna
from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lightning_modules.config import TransformerConfig
from nas.trial.hooks import TrialHook
from nas.trial.record import FINISHED, State


def interactive(stream: Any = None, environ: Any = None) -> bool:
    """Whether a person watches ``stream`` (default stderr): a terminal, not SLURM, not dumb."""
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    if environ.get("SLURM_JOB_ID") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class SearchProgress(TrialHook):
    """Trial hook that drives one rich progress bar over the study's ``n_trials``.

    Args:
        n_trials: The study's target (finished trials count towards it).
        console: Where to draw (default: stderr).
    """

    def __init__(self, n_trials: int, console: Console | None = None) -> None:
        self.n_trials = int(n_trials)
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task: Any = None
        self.best = math.nan
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []

    # ---- what the bar shows -------------------------------------------------------------------
    def _fields(self, trial: str, stage: str) -> dict[str, str]:
        best = "-" if math.isnan(self.best) else f"{self.best:.3f}"
        return {"trial": trial, "stage": stage, "best": best}

    def _update(self, trial: str, stage: str, advance: int = 0) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=advance, **self._fields(trial, stage))

    # ---- hooks --------------------------------------------------------------------------------
    def on_search_start(self, study: optuna.Study, cfg: dict[str, Any]) -> None:
        done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
        complete = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
        if complete:
            self.best = max(t.values[0] for t in complete)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[trial]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stage]}"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(
            "search",
            total=self.n_trials,
            completed=min(done, self.n_trials),
            **self._fields("trials", "starting"),
        )
        self._redirect_logs()
        self.progress.start()

    def on_trial_start(self, trial: optuna.Trial, arch: TransformerConfig) -> None:
        self._update(f"trial {trial.number}", "pretrain")

    def on_stage(self, trial: optuna.Trial, stage: str, seconds: float, info: dict) -> None:
        self._update(f"trial {trial.number}", f"{stage} done ({seconds:.0f}s)")

    def on_trial_end(self, trial, state, record, reason) -> None:
        score = record.adaptability if state == "complete" and record is not None else None
        if score is not None and not math.isnan(score):
            self.best = score if math.isnan(self.best) else max(self.best, score)
        counted = state in ("complete", "pruned")  # failed trials are run again
        self._update(f"trial {trial.number}", state, advance=int(counted))

    def on_search_end(self, study: optuna.Study) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped = []

    def _redirect_logs(self) -> None:
        """Log handlers writing to the terminal print above the live display, not through it."""
        loggers = [logging.getLogger(), logging.getLogger("adaptnas"), logging.getLogger("optuna")]
        for handler in [h for logger in loggers for h in logger.handlers]:
            stream = getattr(handler, "stream", None)
            if type(handler) is logging.StreamHandler and stream in (sys.stdout, sys.stderr):
                self._swapped.append((handler, handler.setStream(FileProxy(self.console, stream))))
