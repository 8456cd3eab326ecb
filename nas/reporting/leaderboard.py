"""Results of a study: the leaderboard (terminal + CSV) and the winner's architecture YAML.

Everything is rebuilt from the storage, so it is the same whether the search just ended, was
resumed, or ran on many workers. Files are written atomically (temp file + rename).

A finalist's repeats (``nas.study.finalists``) fold into its row: ``adaptability`` and the task
columns are means over its seeds, ``sd`` and ``seeds`` say how far to trust them. The finalists come
first, by mean; the winner is the first of them (rank 1), not Optuna's ``best_trial``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml
from rich.console import Console
from rich.table import Table

from lightning_modules.config import params_human
from nas.reporting.files import write_atomic
from nas.reporting.standing import Standing, standing_of
from nas.study import finalists as fin
from nas.study import references
from nas.study import screen as scr
from nas.trial import record as rec
from nas.trial.record import State, TrialRecord


def _score(t: optuna.trial.FrozenTrial) -> float:
    if t.state == State.COMPLETE:
        return t.values[0]
    return TrialRecord.from_trial(t).adaptability


def _round(v: float | None) -> float | str:
    return "" if v is None else round(v, 4)


def leaderboard_rows(study: optuna.Study | Standing) -> list[dict[str, Any]]:
    """One row per trial, best first: finalists by mean, other completed by score, then pruned,
    failed and running.

    A finalist's complete repeats are folded into its row (mean over seeds, ``sd``, ``seeds``);
    a repeat that did not complete keeps a row of its own, its reason saying which it repeats.
    """
    now = standing_of(study)
    # A surplus trial lost the race for a slot (nas/engine/workers.py) or a repeat
    # (nas/study/finalists.py) and never ran.
    everything = [t for t in now.trials if not rec.is_surplus(t)]
    scores = now.scores
    has_refs = any(rec.REFERENCE in t.user_attrs for t in everything)
    two_tier = scr.STUDY_ATTR in now.attrs  # strategy=two_tier: confirmations' screen
    chosen = {s.trial.number: i for i, s in enumerate(now.ranked)}
    trials = [t for t in everything if not (fin.is_repeat(t) and t.state == State.COMPLETE)]
    records = {t.number: TrialRecord.from_trial(t) for t in trials}
    task_names: list[str] = []
    for record in records.values():
        for name in record.task_scores:
            if name not in task_names:
                task_names.append(name)
    order = {State.COMPLETE: 0, State.PRUNED: 1, State.FAIL: 2, State.RUNNING: 3, State.WAITING: 4}

    def key(t: optuna.trial.FrozenTrial) -> tuple:
        if t.state != State.COMPLETE:
            return (order[t.state], 0, 0.0, t.number)
        if t.number in chosen:
            return (0, 0, float(chosen[t.number]), t.number)
        return (0, 1, -_score(t), t.number)

    rows = []
    rank = 0
    for t in sorted(trials, key=key):
        s = scores.get(t.number) if t.state == State.COMPLETE else None
        row: dict[str, Any] = {
            "rank": "",
            "trial": t.number,
            "state": t.state.name.lower(),
            "adaptability": "",
            "sd": "",
            "seeds": "",
        }
        record = records[t.number]
        task_scores, test = record.task_scores, record.test_scores
        if s is not None:
            rank += 1
            row.update(rank=rank, adaptability=_round(s.mean), sd=_round(s.sd), seeds=s.n)
            task_scores, test = s.task_means(), s.task_means(test=True)
        elif t.state == State.COMPLETE:  # an adaptability of NaN
            rank += 1
            row.update(rank=rank, adaptability=round(t.values[0], 4), seeds=1)
        for name in task_names:
            row[name] = _round(task_scores.get(name))
        for name in task_names:
            row[f"test_{name}"] = _round(test.get(name))
        row["params"] = "" if record.n_params is None else record.n_params
        row["time_s"] = round(record.timings.get("total", math.nan), 1) if record.timings else ""
        row["architecture"] = record.describe
        if has_refs:  # the hand-written designs the search competes with (nas.study.references)
            row["reference"] = references.title(t.user_attrs.get(rec.REFERENCE, ""))
        if two_tier:  # the confirmation tier: each trial's screen score (empty: not screened)
            row["screen_score"] = _round(t.user_attrs.get(scr.SCREEN_SCORE))
        reason = record.fail_reason or ""
        if fin.is_repeat(t):
            of, r = fin.repeat_key(t)
            reason = f"repeat {r} of trial {of}" + (f": {reason}" if reason else "")
        row["reason"] = reason
        rows.append(row)
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text with a header (empty study: header only)."""
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["rank", "trial", "state", "adaptability", "sd", "seeds"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# Which columns a narrow terminal keeps first: these, then every other column (the per-task
# validation scores, columns added later) in the table's order, then LAST, then the test scores.
PRIORITY = ("rank", "trial", "state", "adaptability", "params")
LAST = ("note", "time_s", "architecture")
WIDE = ("note", "architecture")  # cut (an ellipsis) rather than wrapped: WIDE_MAX characters, or
WIDE_MAX = 40  # up to NOTE_MAX for the note where the terminal has room to spare
NOTE_MAX = 80


def _cell(column: str, value: Any) -> str:
    if column == "params" and value != "":
        return params_human(int(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def fit_columns(
    columns: list[str], cells: dict[str, list[str]], width: int
) -> tuple[list[str], list[str]]:
    """The columns that fit in ``width`` characters, by :data:`PRIORITY`, in table order.

    Args:
        columns: Every column, in table order.
        cells: The text of each column's shown cells.
        width: The terminal's width.

    Returns:
        ``(shown, left_out)``; ``note`` and ``architecture`` count (and show) at most
        ``WIDE_MAX`` characters.
    """
    first = [c for c in PRIORITY if c in columns]
    test = [c for c in columns if c.startswith("test_")]
    last = [c for c in LAST if c in columns]
    order = first + [c for c in columns if c not in {*first, *test, *last}] + last + test
    used, shown = 4, set()  # table edges
    for c in order:
        need = max([len(c), *map(len, cells[c])])
        if c in WIDE:
            need = min(need, WIDE_MAX)
        if used + need + 3 > width and shown:  # 3: padding and separator
            if c in WIDE:
                continue  # a narrower column after it may still fit
            break  # the rest in order: no task column shown while an earlier one is not
        used += need + 3
        shown.add(c)
    return [c for c in columns if c in shown], [c for c in columns if c not in shown]


def print_leaderboard(
    rows: list[dict[str, Any]], title: str, limit: int = 20, console: Console | None = None
) -> None:
    """A rich table of the first ``limit`` rows, with the columns that fit the terminal.

    The columns are chosen by width (:func:`fit_columns`), so no row wraps onto several lines;
    the ones left out are named below the table, and ``leaderboard.csv`` has them all.
    """
    # Piped output (make search | tee, CI logs) would otherwise wrap at 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 220)
    hidden = {"reason"}
    columns = [c for c in (rows[0] if rows else {}) if c not in hidden]
    columns = [c for c in columns if not c.startswith("test_") or any(r[c] != "" for r in rows)]
    shown_rows = rows[:limit]
    cells = {c: [_cell(c, r[c]) for r in shown_rows] for c in columns}
    reasons = [str(r["reason"]) for r in shown_rows]
    for c in WIDE:  # cut here: rich would wrap them, or widen the table past the terminal
        cells[c] = [_note(v, WIDE_MAX) for v in cells.get(c, reasons if c == "note" else [])]
    note = ["note"] if any(reasons) else []  # no empty column for a study without faults
    shown, left_out = fit_columns([*columns, *note], cells, console.width)
    if "note" in shown:  # the room left over goes to the reason
        used = 4 + sum(max([len(c), *map(len, cells[c])]) + 3 for c in shown)
        cells["note"] = [_note(v, min(NOTE_MAX, WIDE_MAX + console.width - used)) for v in reasons]
    table = Table(title=title, show_lines=False)
    for c in shown:
        right = c not in ("state", "architecture", "note")
        table.add_column(c, justify="right" if right else "left", overflow="ellipsis", no_wrap=True)
    for i in range(len(shown_rows)):
        table.add_row(*(cells[c][i] for c in shown))
    console.print(table)
    if left_out:
        console.print(
            f"not shown at {console.width} columns: {', '.join(left_out)} (in leaderboard.csv)"
        )
    if len(rows) > limit:
        console.print(f"... {len(rows) - limit} more rows in leaderboard.csv")


def _note(reason: str, width: int = 80) -> str:
    """A prune/fail reason cut to ``width`` characters for the terminal (the CSV keeps it all)."""
    return reason if len(reason) <= width else reason[: width - 3] + "..."


def best_trials(study: optuna.Study | Standing) -> list[optuna.trial.FrozenTrial]:
    """The winner (single objective) or the Pareto front, best mean adaptability first.

    Single objective: the best mean over seeds among the finalists (``nas.study.finalists.ranked``).
    Multi-objective: the front of the search trials (repeats apart), by mean adaptability.
    """
    now = standing_of(study)
    if not now.multi:
        return [now.ranked[0].trial] if now.ranked else []
    scores = now.scores
    front = fin.pareto_front([s.trial for s in scores.values()], now.directions)
    return sorted(front, key=lambda t: (-scores[t.number].mean, t.number))


def winner_yaml(study: optuna.Study | Standing, t: optuna.trial.FrozenTrial) -> str:
    """YAML that ``TransformerConfig.from_yaml`` loads (``architecture:``) plus the scores.

    ``adaptability`` and ``task_scores`` are means over the seeds the trial ran (its finalist
    repeats included); ``seeds`` lists each seed's adaptability, ``search_adaptability`` the
    first seed's (the value the search ranked by).
    """
    now = standing_of(study)
    s = now.scores.get(t.number)
    runs = s.runs if s is not None else [t]
    record = TrialRecord.from_trial(t)
    doc = {
        rec.ARCHITECTURE: record.architecture,
        "study": now.name,
        "trial": t.number,
        rec.ADAPTABILITY: s.mean if s is not None else t.values[0],
        "adaptability_sd": s.sd if s is not None else None,
        "n_seeds": len(runs),
        "seeds": [
            {
                "trial": r.number,
                rec.SEED: TrialRecord.from_trial(r).seed,
                rec.ADAPTABILITY: r.values[0],
            }
            for r in runs
        ],
        "search_adaptability": t.values[0],
        rec.TASK_SCORES: s.task_means() if s is not None else record.task_scores,
        rec.TEST_METRICS: record.test_metrics,
        rec.N_PARAMS: record.n_params,
    }
    if s is not None and s.n > 1:
        doc["test_scores_mean"] = s.task_means(test=True)
    if rec.REFERENCE in t.user_attrs:
        doc[rec.REFERENCE] = references.title(t.user_attrs[rec.REFERENCE])
    said = now.verdict
    if said:  # the winner against the best reference design, on test
        doc["verdict"] = said
    return yaml.safe_dump(doc, sort_keys=False)


def screen_rows(summary: scr.ScreenSummary) -> list[dict[str, Any]]:
    """``screen.csv``: the best screened candidates, and which went on to confirmation."""
    return [
        {
            "screen_trial": r["screen_trial"],
            summary.screen: _round(r["score"]),
            "confirmed_by": "" if r["confirmed_by"] is None else r["confirmed_by"],
            "architecture": r["architecture"],
        }
        for r in summary.top
    ]


def print_screen_tier(study: optuna.Study | Standing, console: Console | None = None) -> None:
    """Under the leaderboard of a two-tier study: the screen's count, seconds and best ones."""
    summary = study.screen if isinstance(study, Standing) else scr.summary(study)
    if summary is None:
        return
    console = console or Console(width=None if sys.stdout.isatty() else 220)
    seconds = summary.build_seconds
    build = "" if seconds is None else f", super-network built in {seconds:.0f}s"
    table = Table(
        title=(
            f"screen tier: {summary.screened} candidates screened of {summary.target} "
            f"({summary.screen}, lower is better) in {summary.seconds:.0f}s{build}"
        )
    )
    rows = screen_rows(summary)
    for c in rows[0] if rows else []:
        table.add_column(c, justify="left" if c == "architecture" else "right", no_wrap=True)
    for r in rows:
        table.add_row(*(_cell(c, v) for c, v in r.items()))
    console.print(table)


def report_results(study: optuna.Study | Standing, folder: Path, title: str) -> dict[str, Path]:
    """Write the result files (``write_results``) and print the leaderboard under ``title``,
    then a two-tier study's screen tier; one read of the storage for all of it.

    Returns:
        The files written, by name (``leaderboard``, ``best_architecture``, ...).
    """
    now = standing_of(study)
    rows = leaderboard_rows(now)
    files = write_results(now, folder, rows)
    print_leaderboard(rows, title=title)
    print_screen_tier(now)
    return files


def write_results(
    study: optuna.Study | Standing, folder: Path, rows: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """Write ``leaderboard.csv``, ``best_architecture.yaml`` and any Pareto front to ``folder``;
    for a two-tier study also ``screen.csv`` (the best screened candidates).

    ``rows``: the study's ``leaderboard_rows`` when the caller has them (``None``: built here).
    """
    now = standing_of(study)
    rows = leaderboard_rows(now) if rows is None else rows
    written = {"leaderboard": folder / "leaderboard.csv"}
    write_atomic(written["leaderboard"], to_csv(rows))
    if now.screen is not None:
        written["screen"] = folder / "screen.csv"
        write_atomic(written["screen"], to_csv(screen_rows(now.screen)))
    best = best_trials(now)
    if best:
        written["best_architecture"] = folder / "best_architecture.yaml"
        write_atomic(written["best_architecture"], winner_yaml(now, best[0]))
    if now.multi and best:
        written["pareto_front"] = folder / "pareto_front.csv"
        front = {t.number for t in best}
        write_atomic(written["pareto_front"], to_csv([r for r in rows if r["trial"] in front]))
    return written
