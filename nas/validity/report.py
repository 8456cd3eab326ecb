"""The files of a validity study (``validity.json``, ``.md``, ``.png``) and readings of them.

``write_validity`` writes the three files (each atomically); ``summary_lines`` is the verdict in a
few terminal lines; ``inherited_vs_standalone`` reads a supernet study's ``validity.json`` as the
rank agreement of inherited and standalone scores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

from lightning_modules.config import params_human
from nas.reporting.files import atomic_path, write_atomic
from nas.validity.baselines import BASELINE_NAMES
from nas.validity.statistics import rank_agreement

matplotlib.use("Agg")  # files only, never a window


def write_validity(folder: Path, doc: dict[str, Any]) -> dict[str, Path]:
    """Write ``validity.json``, ``validity.md`` and ``validity.png`` into ``folder``, atomically."""
    files = {
        "validity_json": folder / "validity.json",
        "validity_md": folder / "validity.md",
        "validity_png": folder / "validity.png",
    }
    write_atomic(files["validity_json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    write_atomic(files["validity_md"], validity_markdown(doc))
    plot_scaling(doc, files["validity_png"])
    return files


def _f(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    """``[0.12, 0.85] (bootstrap 95%)``, or nothing without one."""
    return "" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}] (bootstrap 95%)"


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _ms(s: Mapping[str, Any]) -> str:
    """``0.512 ± 0.010`` from a summary."""
    return (
        f"{_f(s.get('mean'))} ± {_f(s.get('sd'))}" if s.get("sd") is not None else _f(s.get("mean"))
    )


def validity_markdown(doc: Mapping[str, Any]) -> str:
    """The readable report of ``validity.json``: the verdict first, then the tables."""
    s, w, g, r, noise = doc["settings"], doc["winner"], doc["gain"], doc["rank"], doc["noise"]
    archs = doc["architectures"]
    win = archs[0]
    n = noise["seeds"]
    lines = [
        f"# Validity of study `{doc['study']}`",
        "",
        f"{len(archs)} architectures (the top {len(archs)} of the search), seeds "
        f"{', '.join(map(str, s['seeds']))} (not used by the search), adaptability = "
        f"{s['adaptability']} of the task scores; large budget = x{s['scale']:g} "
        f"(seeds {', '.join(map(str, s['large_seeds']))}). Written {doc['written']}, "
        f"{doc['seconds']:.0f} s. Every figure is in `validity.json`; `docs/validity.md` explains "
        "them.",
        "",
        "## Verdict",
        "",
        f"- **Winner**: trial {w['trial']} ({w['describe']}), adaptability "
        f"{_ms(win['pretrained']['adaptability'])} over {n} seeds (search: "
        f"{_f(win['search_score'])} over {_seeds(win.get('search_seeds', 1))}).",
    ]
    said = doc.get("search_verdict")
    if said:
        lines.append(f"- **The search against its reference designs**: {said['text']}.")
    lead_word = {True: "**exceeds** seed noise", False: "is **within** seed noise", None: "n/a"}
    lines.append(
        f"- **Lead over the runner-up** (trial {w['runner_up']}): {_f(w['lead'], sign=True)} "
        f"against a threshold of {_f(w['threshold'])}: the lead "
        f"{lead_word[w['exceeds_noise']]}. Rule: {w['rule']}."
    )
    if w["best_by_validation"] != w["trial"]:
        lines.append(
            f"- Over the validation seeds trial {w['best_by_validation']} scores higher than the "
            "winner: the search's order of its top trials does not hold."
        )
    lines.append(
        f"- **Seed noise**: pooled seed sd {_f(noise['pooled_sd'])} (root mean square of the "
        "per-architecture sds of adaptability)."
    )
    lines.append(
        f"- **Pretraining gain** (pretrained minus not pretrained, mean over seeds): winner "
        f"{_f(g['winner'], sign=True)} ({_f(g['winner_over_pooled_sd'], 1)} x pooled sd), median "
        f"finalist {_f(g['median_finalist'], sign=True)} ({_f(g['median_over_pooled_sd'], 1)} x "
        "pooled sd) on validation; on test (both conditions scored there) winner "
        f"{_f(g.get('test_winner'), sign=True)} ({_f(g.get('test_winner_over_pooled_sd'), 1)} x "
        f"the test pooled sd {_f(g.get('test_pooled_sd'))}), median finalist "
        f"{_f(g.get('test_median_finalist'), sign=True)} "
        f"({_f(g.get('test_median_over_pooled_sd'), 1)} x)."
    )
    lines.append(
        f"- **Ranking at x{s['scale']:g} budget**: Kendall tau {_f(r['kendall_tau'], 2)} "
        f"{_ci(r.get('kendall_tau_ci'))}, Spearman {_f(r.get('spearman'), 2)} "
        f"{_ci(r.get('spearman_ci'))} over {r['n']} architectures (search-budget mean "
        "over the validation seeds vs large-budget score; see `validity.png`)."
    )
    for b in doc["baselines"]:
        m, noise_t = b["winner_minus_test"], b["noise_test"]
        verdict = "n/a" if m is None else ("beats" if m > 0 else "loses to")
        within = (
            ""
            if m is None or noise_t is None
            else (" (beyond" if abs(m) > noise_t else " (within")
            + f" seed noise: 95% t half-width {_f(noise_t)})"
        )
        behind = [
            f"{t} {_f(d, sign=True)}"
            for t, d in b["winner_minus_test_tasks"].items()
            if d is not None and d < 0
        ]
        lines.append(
            f"- **vs {b['title']}** ({params_human(b['n_params'])} params): the winner {verdict} "
            f"it on mean test score by {_f(None if m is None else abs(m))}{within}; validation "
            f"{_f(b['winner_minus_validation'], sign=True)}."
            + (
                f" Tasks where the baseline is ahead on test: {', '.join(behind)}."
                if behind
                else ""
            )
        )
    for name, why in doc["baselines_skipped"].items():
        lines.append(f"- {BASELINE_NAMES[name]} baseline left out: {why}.")
    lines += [
        "",
        "## Architectures",
        "",
        "| rank | trial | architecture | params | search | pretrained (mean ± sd) | not "
        f"pretrained | gain | x{s['scale']:g} budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in archs:
        lines.append(
            f"| {a['search_rank']} | {a['trial']} | {a['describe']} | "
            f"{params_human(a['n_params'])} | {_f(a['search_score'])} | "
            f"{_ms(a['pretrained']['adaptability'])} | {_ms(a['not_pretrained']['adaptability'])} "
            f"| {_f(a['gain']['adaptability']['mean'], sign=True)} | "
            f"{_ms(a['large']['adaptability'])} |"
        )
    lines += ["", "## Per task", ""]
    lines += [
        "| trial | task | pretrained | not pretrained | gain | large budget | test |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in archs:
        for t in doc["tasks"]:
            test = a["pretrained"].get("test", {}).get(t, {})
            lines.append(
                f"| {a['trial']} | {t} | {_ms(a['pretrained']['tasks'][t])} | "
                f"{_ms(a['not_pretrained']['tasks'][t])} | "
                f"{_f(a['gain']['tasks'][t]['mean'], sign=True)} | "
                f"{_ms(a['large']['tasks'][t])} | {_ms(test)} |"
            )
    if doc["baselines"]:
        lines += [
            "",
            "## Baselines",
            "",
            f"Matched to the winner's {params_human(win['n_params'])} parameters within "
            f"{s['param_tolerance']:.0%} where the grid allows; same seeds and budget as the "
            "finalists.",
            "",
            "| baseline | architecture | params | validation | test | winner - baseline "
            "(validation) | winner - baseline (test) |",
            "|---|---|---|---|---|---|---|",
            f"| winner (trial {w['trial']}) | {win['describe']} | "
            f"{params_human(win['n_params'])} | {_ms(win['pretrained']['adaptability'])} | "
            f"{_ms(win['pretrained'].get('test_adaptability', {}))} | | |",
        ]
        for b in doc["baselines"]:
            lines.append(
                f"| {b['title']} | {b['describe']} | {params_human(b['n_params'])} "
                f"({b['param_difference']:+.0%}) | {_ms(b['adaptability'])} | "
                f"{_ms(b.get('test_adaptability', {}))} | "
                f"{_f(b['winner_minus_validation'], sign=True)} | "
                f"{_f(b['winner_minus_test'], sign=True)} |"
            )
    failed = [
        (f"trial {a['trial']}", c, f)
        for a in archs
        for c in ("pretrained", "not_pretrained", "large")
        for f in a[c].get("failed", [])
    ]
    failed += [(b["title"], "pretrained", f) for b in doc["baselines"] for f in b.get("failed", [])]
    if failed:
        lines += ["", "## Failed runs (left out of the means)", ""]
        lines += [f"- {who}, {c}: {f}" for who, c, f in failed]
    return "\n".join(lines) + "\n"


def plot_scaling(doc: Mapping[str, Any], path: Path) -> None:
    """``validity.png``: search-budget score (mean ± sd over seeds) vs large-budget score."""
    import matplotlib.pyplot as plt

    s, r = doc["settings"], doc["rank"]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    try:
        for a in doc["architectures"]:
            x, y = a["pretrained"]["adaptability"], a["large"]["adaptability"]
            if x["mean"] is None or y["mean"] is None:
                continue
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=x["sd"] or 0.0,
                yerr=y["sd"] or 0.0,
                fmt="o",
                color="tab:red" if a["search_rank"] == 1 else "tab:blue",
                capsize=3,
            )
            ax.annotate(
                f"#{a['trial']}",
                (x["mean"], y["mean"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set_xlabel(f"adaptability at the search budget (mean ± sd, {len(s['seeds'])} seeds)")
        ax.set_ylabel(f"adaptability at x{s['scale']:g} budget")
        ax.set_title(
            f"{doc['study']}: Kendall tau {_f(r['kendall_tau'], 2)}, "
            f"Spearman {_f(r.get('spearman'), 2)} (n={r['n']})",
            fontsize=10,
        )
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def summary_lines(doc: Mapping[str, Any]) -> list[str]:
    """The verdict in a few terminal lines."""
    w, g, r, noise = doc["winner"], doc["gain"], doc["rank"], doc["noise"]
    out = [
        f"winner trial {w['trial']}: lead {_f(w['lead'], sign=True)} over trial "
        f"{w['runner_up']} vs threshold {_f(w['threshold'])} "
        f"({'exceeds' if w['exceeds_noise'] else 'within'} seed noise)",
        f"pooled seed sd {_f(noise['pooled_sd'])}; pretraining gain winner "
        f"{_f(g['winner'], sign=True)}, median finalist {_f(g['median_finalist'], sign=True)}",
        f"Kendall tau {_f(r['kendall_tau'], 2)}, Spearman {_f(r.get('spearman'), 2)} "
        f"(x{doc['settings']['scale']:g} budget, {r['n']} architectures)",
    ]
    out += [
        f"vs {b['title']}: winner - baseline on test {_f(b['winner_minus_test'], sign=True)}"
        for b in doc["baselines"]
    ]
    return out


def inherited_vs_standalone(validity: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Kendall tau between a supernet study's scores and the same architectures trained alone.

    ``nas/validate.py`` re-runs the top trials of a study with the study's run config through
    the plain staged trial, i.e. standalone (pretrained from scratch with ``pretrain.tokens``,
    same adaptation budget). For a ``strategy=supernet`` study its ``rank.study_scores`` are the
    inherited scores and ``rank.search`` the standalone means over the validation seeds.

    Args:
        validity: ``validity.json`` (its path or its parsed content).

    Returns:
        ``nas.validity.statistics.rank_agreement`` of the two (``n``, ``kendall_tau``,
        ``kendall_p``, ``spearman``) plus both lists.
    """
    if not isinstance(validity, Mapping):
        validity = json.loads(Path(validity).read_text())
    rank = validity["rank"]
    pairs = [
        (a, b)
        for a, b in zip(rank["study_scores"], rank["search"], strict=True)
        if a is not None and b is not None
    ]
    out = rank_agreement([a for a, _ in pairs], [b for _, b in pairs])
    out["inherited"], out["standalone"] = [a for a, _ in pairs], [b for _, b in pairs]
    return out
