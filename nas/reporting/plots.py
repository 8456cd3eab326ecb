"""Pictures of a study, rebuilt from its storage: HTML (plotly) and PNG (matplotlib).

``write_plots(study, folder)`` writes into ``folder`` (``<study_dir>/plots``):

==========================  ====================================================================
``optimization_history``    adaptability of every completed trial and the best so far
``param_importances``       which knobs matter (fANOVA over the parameters every trial has)
``pareto_front``            adaptability vs. parameters (multi-objective studies)
``intermediate_values``     running adaptability after each task (what the pruner saw)
``task_scores``             heatmap: validation score per task of the top trials
``screen_tier``             two-tier studies: each screened candidate's screen score, the best so
                            far, and the ones confirmed by full trials
==========================  ====================================================================

each as ``<name>.html`` (one ``plotly.min.js`` beside them, so they open offline) and
``<name>.png``. A plot that a study cannot have yet (too few trials, single objective) is
skipped with the reason. Files are replaced atomically, so a report can run while the search
writes to the same storage. ``run_report(cfg)`` is what ``python nas/report.py study=<name>``
calls: plots plus the leaderboard files of ``nas.reporting.leaderboard``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from nas.reporting.files import atomic_path
from nas.study import screen as scr
from nas.trial.record import State, TrialRecord

log = logging.getLogger("adaptnas")

PLOTS = (
    "optimization_history",
    "param_importances",
    "pareto_front",
    "intermediate_values",
    "task_scores",
    "screen_tier",
)
OBJECTIVE_NAMES = ["adaptability", "parameters"]


class Skip(Exception):
    """A plot the study cannot have (yet); the message says why."""


@dataclass
class Plots:
    """What ``write_plots`` did: files per plot and the reason for each plot skipped."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """Every file written, in plot order."""
        return [p for paths in self.written.values() for p in paths]


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(State.COMPLETE,))
        if not math.isnan(t.values[0])
    ]


def _adaptability(t: optuna.trial.FrozenTrial) -> float:
    return t.values[0]


def _retitle(ax: Any, title: str) -> None:
    """Replace Optuna's titles (it puts some on the left) with ``title``."""
    for loc in ("left", "right"):
        ax.set_title("", loc=loc)
    ax.set_title(title)


# ---- the plots: each returns (plotly figure, matplotlib figure) --------------------------------
def optimization_history(study: optuna.Study, top_k: int) -> tuple[Any, Any]:
    """Adaptability per trial and the best so far."""
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as vm
    from optuna.visualization import plot_optimization_history

    done = sorted(_complete(study), key=lambda t: t.number)
    if not done:
        raise Skip("no completed trial yet")
    # Optuna draws no best-so-far line once a target is given (multi-objective needs one).
    numbers = [t.number for t in done]
    best = [max(t.values[0] for t in done[: i + 1]) for i in range(len(done))]
    kwargs = {"target": _adaptability, "target_name": "adaptability"}
    fig = plot_optimization_history(study, **kwargs)
    fig.add_scatter(x=numbers, y=best, mode="lines", name="best so far", line_shape="hv")
    fig.update_layout(title=f"Optimization history: {study.study_name}")
    ax = vm.plot_optimization_history(study, **kwargs)
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.legend(loc="lower right")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _retitle(ax, f"Optimization history: {study.study_name}")
    return fig, ax.figure


def param_importances(study: optuna.Study, top_k: int) -> tuple[Any, Any]:
    """fANOVA importance of each parameter for adaptability."""
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as vm
    from optuna.visualization import plot_param_importances

    done = _complete(study)
    if len(done) < 2:
        raise Skip(f"needs 2 completed trials, has {len(done)}")
    common = set(done[0].params).intersection(*(t.params for t in done[1:]))
    varied = [p for p in common if len({repr(t.params[p]) for t in done}) > 1]
    if not varied:
        raise Skip("no parameter varies across the completed trials")
    kwargs = {
        "evaluator": FanovaImportanceEvaluator(seed=0),
        "target": _adaptability,
        "target_name": "adaptability",
    }
    fig = plot_param_importances(study, **kwargs)
    fig.update_layout(title=f"Parameter importances (fANOVA): {study.study_name}")
    ax = vm.plot_param_importances(study, **kwargs)
    _retitle(ax, f"Parameter importances (fANOVA): {study.study_name}")
    return fig, ax.figure


def pareto_front(study: optuna.Study, top_k: int) -> tuple[Any, Any]:
    """Adaptability vs. parameter count; the non-dominated trials highlighted."""
    from optuna.visualization import matplotlib as vm
    from optuna.visualization import plot_pareto_front

    if len(study.directions) < 2:
        raise Skip("single-objective study (objective.multi_objective=false)")
    if not _complete(study):
        raise Skip("no completed trial yet")
    fig = plot_pareto_front(study, target_names=OBJECTIVE_NAMES)
    fig.update_layout(title=f"Pareto front: {study.study_name}")
    ax = vm.plot_pareto_front(study, target_names=OBJECTIVE_NAMES)
    _retitle(ax, f"Pareto front: {study.study_name}")
    return fig, ax.figure


def intermediate_values(study: optuna.Study, top_k: int) -> tuple[Any, Any]:
    """Running adaptability after each task, per trial (pruned trials stop early)."""
    from matplotlib.ticker import MaxNLocator
    from optuna.visualization import matplotlib as vm
    from optuna.visualization import plot_intermediate_values

    if len(study.directions) > 1:
        raise Skip("multi-objective trials report no intermediate values (no pruning)")
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise Skip("no trial has reported an intermediate value yet")
    fig = plot_intermediate_values(study)
    fig.update_layout(
        title=f"Running adaptability per task (pruning): {study.study_name}",
        xaxis_title="tasks done",
        yaxis_title="running adaptability",
    )
    ax = vm.plot_intermediate_values(study)
    _retitle(ax, f"Running adaptability per task: {study.study_name}")
    ax.set_xlabel("tasks done")
    ax.set_ylabel("running adaptability")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.get_legend() and ax.get_legend().remove()  # one entry per trial: unreadable
    return fig, ax.figure


def top_trials(study: optuna.Study, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``top_k`` completed trials by adaptability."""
    return sorted(_complete(study), key=lambda t: -t.values[0])[:top_k]


def task_score_matrix(
    study: optuna.Study, top_k: int
) -> tuple[list[str], list[str], list[list[float]]]:
    """``(row labels, task names, scores)`` of the top trials (NaN where a task is missing)."""
    best = top_trials(study, top_k)
    records = [TrialRecord.from_trial(t) for t in best]
    tasks: list[str] = []
    for r in records:
        tasks += [n for n in r.task_scores if n not in tasks]
    rows = [
        f"#{t.number} {t.values[0]:.3f} {r.describe}".strip()
        for t, r in zip(best, records, strict=True)
    ]
    scores = [[r.task_scores.get(n, math.nan) for n in tasks] for r in records]
    return rows, tasks, scores


def task_scores(study: optuna.Study, top_k: int) -> tuple[Any, Any]:
    """Heatmap of each task's validation score for the top trials (best on top)."""
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    rows, tasks, scores = task_score_matrix(study, top_k)
    if not rows or not tasks:
        raise Skip("no completed trial with task scores yet")
    title = f"Task scores of the top {len(rows)} trials: {study.study_name}"
    text = [["" if math.isnan(v) else f"{v:.3f}" for v in r] for r in scores]
    fig = go.Figure(
        go.Heatmap(
            z=scores,
            x=tasks,
            y=rows,
            text=text,
            texttemplate="%{text}",
            colorscale="Viridis",
            zmin=0.0,
            zmax=1.0,
            colorbar={"title": "score"},
        )
    )
    fig.update_layout(title=title, yaxis={"autorange": "reversed"}, xaxis_title="task")
    width = 2.2 + 1.4 * len(tasks) + 0.06 * max(map(len, rows))  # room for the row labels
    mfig = Figure(figsize=(width, 1.2 + 0.45 * len(rows)))
    ax = mfig.add_subplot()
    image = ax.imshow(scores, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.grid(False)  # optuna's plots switch a grid style on for the whole process
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i, r in enumerate(scores):
        for j, v in enumerate(r):
            if not math.isnan(v):
                ax.text(
                    j,
                    i,
                    f"{v:.3f}",
                    ha="center",
                    va="center",
                    color="white" if v < 0.6 else "black",
                    fontsize=9,
                )
    ax.set_title(title, fontsize=10)
    mfig.colorbar(image, ax=ax, label="score")
    mfig.tight_layout()
    return fig, mfig


def screen_tier(study: optuna.Study, top_k: int) -> tuple[Any, Any]:
    """Two-tier studies: screen score per screened candidate, best so far, the confirmed ones."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    screen = scr.screen_study(study)
    if screen is None:
        raise Skip("not a two-tier study")
    done = sorted(scr.complete(screen), key=lambda t: t.number)
    if not done:
        raise Skip("no screened candidate yet")
    kept = study.user_attrs[scr.STUDY_ATTR]
    label = f"{kept.get('screen', 'lm_loss')} (lower is better)"
    x, y = [t.number for t in done], [t.value for t in done]
    best = [min(y[: i + 1]) for i in range(len(y))]
    by = scr.confirmed(study)
    picked = [t for t in done if t.number in by]
    px, py = [t.number for t in picked], [t.value for t in picked]
    names = [f"trial {by[t.number].number}" for t in picked]
    title = f"Screen tier: {study.study_name} ({len(done)} screened, {len(picked)} confirmed)"
    fig = go.Figure()
    fig.add_scatter(x=x, y=y, mode="markers", name="screened", marker={"size": 5})
    fig.add_scatter(x=x, y=best, mode="lines", name="best so far", line_shape="hv")
    fig.add_scatter(x=px, y=py, mode="markers", name="confirmed", text=names, marker={"size": 11})
    fig.update_layout(title=title, xaxis_title="screen trial", yaxis_title=label)
    mfig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(x, y, s=8, alpha=0.6, label="screened")
    ax.step(x, best, where="post", color="tab:red", label="best so far")
    ax.scatter(px, py, s=60, facecolors="none", edgecolors="black", label="confirmed")
    ax.set_xlabel("screen trial")
    ax.set_ylabel(label)
    ax.legend(loc="upper right")
    ax.set_title(title)
    return fig, mfig


MAKERS: dict[str, Callable[[optuna.Study, int], tuple[Any, Any]]] = {
    "optimization_history": optimization_history,
    "param_importances": param_importances,
    "pareto_front": pareto_front,
    "intermediate_values": intermediate_values,
    "task_scores": task_scores,
    "screen_tier": screen_tier,
}


def write_plots(study: optuna.Study, folder: Path, top_k: int = 10) -> Plots:
    """Write every plot the study can have into ``folder`` as ``<name>.html`` and ``<name>.png``.

    Args:
        study: The study (read from its storage; may still be running).
        folder: Where the files go (created).
        top_k: Trials in the task-score heatmap.

    Returns:
        The files written per plot and the reason for every plot skipped.
    """
    import matplotlib.pyplot as plt

    out = Plots()
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, make in MAKERS.items():
            try:
                fig, mfig = make(study, top_k)
            except Skip as why:
                out.skipped[name] = str(why)
                continue
            html, png = folder / f"{name}.html", folder / f"{name}.png"
            with atomic_path(html) as tmp:
                # One plotly.min.js beside the pages: they open offline, and stay small.
                fig.write_html(tmp, include_plotlyjs="directory", full_html=True)
            with atomic_path(png) as tmp:
                mfig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
            plt.close(mfig)
            out.written[name] = [html, png]
    return out


# ---- the report: plots + leaderboard from the storage -------------------------------------------
def run_report(cfg: DictConfig) -> dict[str, Path]:
    """Rebuild the leaderboard files and the plots of study ``cfg.study`` from its storage.

    Returns:
        Every file written, by name (``leaderboard``, ``best_architecture``, ``<plot>.html``...).
    """
    from nas.reporting.leaderboard import report_results
    from nas.reporting.standing import Standing
    from nas.study.storage import open_existing_study

    study, folder = open_existing_study(cfg, "report on")
    now = Standing.of(study)
    running = sum(t.state == State.RUNNING for t in now.trials)
    title = f"study {study.study_name}" + (f" ({running} running)" if running else "")
    files = report_results(now, folder, title)  # two-tier studies: also the screen tier
    if cfg.get("plots", True):
        plots = write_plots(study, folder / "plots", top_k=int(cfg.get("top_k", 10)))
        for name, paths in plots.written.items():
            for p in paths:
                files[f"{name}{p.suffix}"] = p
        for name, why in plots.skipped.items():
            log.info("plot %s skipped: %s", name, why)
    for name, path in files.items():
        log.info("%-28s %s", name, path)
    return files


def write_plots_safely(study: optuna.Study, folder: Path, top_k: int = 10) -> dict[str, Path]:
    """``write_plots`` at the end of a search: a plotting problem is logged, never fatal.

    Returns:
        The files written, keyed ``<plot>.html`` / ``<plot>.png``.
    """
    try:
        plots = write_plots(study, folder, top_k=top_k)
    except Exception as err:  # the results are in the storage; pictures must not fail a search
        log.warning("plots not written: %s: %s", type(err).__name__, err)
        return {}
    log.info("plots: %s (%d files)", folder, len(plots.files()))
    return {f"{name}{p.suffix}": p for name, paths in plots.written.items() for p in paths}
