"""The figures the docs quote from ``docs/benchmark_results/*.json`` are the ones in the JSON.

A registry below names, for each quoted table and sentence, the doc, the JSON file it comes from,
where in the JSON each figure lies and how the doc prints it:

* ``Table``: a Markdown table, found by the start of its header row. Each JSON record under
  ``rows`` is one table row, found by its first cell (``key``); each named column's cell must read
  exactly what the record's value gives in the column's format (``**bold**`` is ignored).
* ``Quote``: a sentence with its figures as ``str.format`` fields (``"tau {:.2f}, rho {:.2f}"``)
  and one JSON path per field. Whitespace is compared loosely (a quote may wrap lines). The
  sentence with the JSON's figures must be in the doc; the same sentence with other figures is
  reported as a wrong figure, and a sentence no longer there as a stale entry of this registry.

A path is dotted keys and list indices (``rank.kendall_tau``, ``results[2].params.adaptnas``),
relative to the row's record in a table; a callable receives the record and the whole JSON.
A figure quoted in a doc from a JSON file belongs here; a rerun that changes the JSON then fails
this test until the doc says the new figures.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO

Value = str | Callable[[Any, Any], Any]  # a path, or (record, whole JSON) -> value
Format = str | Callable[..., str]  # a format spec for the value(s), or a function of them


@dataclass(frozen=True)
class Table:
    doc: str  # relative to the repository
    header: str  # the start of the table's header row
    json: str  # a file of docs/benchmark_results/
    rows: str  # path of the list of records, one per table row
    key: Callable[[Any], str]  # record -> the row's first cell
    columns: dict[str, tuple[Value | tuple[Value, ...], Format]] = field(default_factory=dict)


@dataclass(frozen=True)
class Quote:
    doc: str
    text: str  # the quoted sentence, one format field per figure
    json: str
    values: tuple[Value, ...]


# ---- formats ------------------------------------------------------------------------------------
def kilo(n: float) -> str:
    return f"{round(n / 1000)}k"


def interval(mean: float, low: float, high: float) -> str:
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def headroom(mean: float, sd: float, lead: float) -> str:
    return f"{mean:.3f} ± {sd:.3f} ({lead:+.1f})"


def mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.3f} ± {sd:.3f}"


def winner_mean_sd(board: list[dict]) -> str:
    """default_searches.py: the leaderboard's first row, mean ± sd over its seeds."""
    return mean_sd(float(board[0]["adaptability"]), float(board[0]["sd"]))


def cpu_s(record: Any, whole: Any) -> str:
    """pretraining_gain.py: mean CPU seconds of an architecture's runs, per condition."""
    runs = [r for r in whole["runs"] if r["arch"] == record["arch"]]
    each = [
        statistics.fmean(r["cpu_s"] for r in runs if r["condition"] == c)
        for c in ("pretrained", "untrained")
    ]
    return " / ".join(f"{s:.0f}" for s in each)


def ratio(record: Any, whole: Any) -> str:
    """search_efficiency.py: TPE's time over random's, or its bound when TPE never got there."""
    if record["tpe_over_random_time"] is not None:
        return f"{record['tpe_over_random_time']:.2f}"
    bound = whole["settings"]["budget_s"] / record["random_time_to_target_s"]
    return f"({bound:.2f}, bound)"


def rank_ci(prefix: str) -> tuple[str, ...]:
    """The paths of tau, its interval, Spearman and its interval under ``prefix``."""
    return tuple(
        f"{prefix}.{k}"
        for k in ("kendall_tau", "kendall_tau_ci[0]", "kendall_tau_ci[1]", "spearman",
                  "spearman_ci[0]", "spearman_ci[1]")
    )  # fmt: skip


# Tau and Spearman with their intervals, as a validity.md table row ends.
RANK_CELLS = "{:.2f} [{:+.2f}, {:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] |"
# benchmarks/rank_extrapolation.py's predictors: (validity.md's row, the JSON's name).
EXTRAPOLATIONS = (
    ("x1 (the default budget)", "x1"),
    *((n, n) for n in (
        "x1 + 1 (x1 - x0.5)", "x1 + 2 (x1 - x0.5), the model", "x1 + 3 (x1 - x0.5)",
        "x2 + 1 (x2 - x1), the model", "x2 + 2 (x2 - x1)", "line through x0.5, x1, x2 at x4",
    )),
)  # fmt: skip


def extrapolated(name: str) -> tuple[Value, ...]:
    """A predictor's cost, tau, its interval, Spearman and its interval (its name has dots)."""
    keys = ("cost_vs_default", "kendall_tau", "kendall_tau_ci", "spearman", "spearman_ci")

    def value(key: str, i: int | None) -> Value:
        def get(_: Any, whole: Any) -> Any:
            v = whole["rank"][name][key]
            return v if i is None else v[i]

        return get

    k = keys
    return (value(k[0], None), value(k[1], None), value(k[2], 0), value(k[2], 1),
            value(k[3], None), value(k[4], 0), value(k[4], 1))  # fmt: skip


# benchmarks/rank_ceiling.py's pairs, each a row of validity.md's table.
CEILING_PAIRS = (
    "x4 seed 0 against x4 seed 100",
    "default seed 0 against default seed 100",
    "default seed 0 against x4 seed 0",
    "default seed 0 against x4 seed 100",
    "default mean against x4 mean",
)


def mean_task(task: str, side: str) -> Callable[[Any, Any], float]:
    """budget_rank: the mean validation score of ``task`` over the architectures at ``side``
    (``default`` or ``x4 adapt`` from the x4-adaptation JSON, ``x4`` from the default one)."""

    def value(record: Any, whole: Any) -> float:
        archs = whole["archs"]
        if side == "x4":
            archs = json.loads((RESULTS / "budget_rank_default.json").read_text())["archs"]
        key = "default" if side == "default" else "scaled"
        return statistics.fmean(a["runs"][key]["tasks"][task] for a in archs)

    return value


def change_from_fixed(family: str, score: Callable[[Any], float]) -> Callable[[Any, Any], float]:
    """budget_rank: the mean change of ``score(arch row)`` over ``family``'s architectures from
    the fixed rates (``budget_rank_default.json``) to these."""

    def value(record: Any, whole: Any) -> float:
        fixed = json.loads((RESULTS / "budget_rank_default.json").read_text())["archs"]
        return statistics.fmean(
            score(a) - score(f)
            for a, f in zip(whole["archs"], fixed, strict=True)
            if a["family"] == family
        )

    return value


def qa_change(family: str) -> Callable[[Any, Any], float]:
    """The change of QA's default-budget validation score (``change_from_fixed``)."""
    return change_from_fixed(family, lambda a: a["runs"]["default"]["tasks"]["qa"])


def score_change(family: str) -> Callable[[Any, Any], float]:
    """The change of the default-budget adaptability (``change_from_fixed``)."""
    return change_from_fixed(family, lambda a: a["default"])


# ---- the registry -------------------------------------------------------------------------------
VALIDITY, BENCH, SUPERNET = "docs/validity.md", "docs/benchmarks.md", "docs/supernet.md"
RESULTS = REPO / "docs" / "benchmark_results"
GAIN = ("gain", "+.3f")
TABLES: list[Table] = [
    # validity.md: the pretraining gain at the default budgets
    Table(
        VALIDITY, "| arch | architecture | params | pretrained | untrained | gain | seed sd |",
        "pretraining_gain.json", "summary", lambda r: r["arch"],
        {
            "architecture": ("describe", "{}"),
            "params": ("n_params", kilo),
            "pretrained": ("pretrained", ".3f"),
            "untrained": ("untrained", ".3f"),
            "gain": GAIN,
            "seed sd": ("seed_sd", ".3f"),
            "gain / sd": ("gain_over_sd", ".1f"),
            "trial CPU s (pretrained / untrained)": (cpu_s, "{}"),
        },
    ),
    Table(
        VALIDITY, "| arch | sentiment | ner | qa | translation | summarization |",
        "pretraining_gain.json", "summary", lambda r: r["arch"],
        {t: (f"task_gain.{t}", "+.3f")
         for t in ("sentiment", "ner", "qa", "translation", "summarization")},
    ),
    *(
        Table(
            VALIDITY, "| arch | architecture | lr 1e-3: pretrained / untrained / gain |",
            f"pretraining_gain_ner_lr{lr}.json", "summary", lambda r: r["arch"],
            {f"lr {lr}: pretrained / untrained / gain": (
                ("pretrained", "untrained", "gain"), "{:.3f} / {:.3f} / {:+.3f}")},
        )
        for lr in ("1e-3", "3e-3")
    ),
    # tasks.md: the floors of the built-in and the real suites
    Table(
        "docs/tasks.md", "| task | metric | validation | test | the floor |",
        "floors.json", "builtin", lambda r: r["task"],
        {"metric": ("metric", "{}"), "validation": ("validation", ".3f"),
         "test": ("test", ".3f")},
    ),
    Table(
        "docs/tasks.md", "| real_suite task | metric | validation | test |",
        "floors.json", "real_suite", lambda r: r["task"],
        {"metric": ("metric", "{}"), "validation": ("validation", ".3f"),
         "test": ("test", ".3f")},
    ),
    # tasks.md: each reference design's lead over each task's floor, per adaptation recipe
    Table(
        "docs/tasks.md", "| task (recipe) | GPT-2-like | Llama-like | T5-like |",
        "task_headroom.json", "rows", lambda r: r["row"],
        {title: ((f"{d}.mean", f"{d}.sd", f"{d}.lead_in_sd"), headroom)
         for title, d in (("GPT-2-like", "gpt2"), ("Llama-like", "llama"), ("T5-like", "t5"))},
    ),
    # tasks.md: the pretraining gain of the reference designs at the default and lifted budgets
    Table(
        "docs/tasks.md", "| design | gain, default budgets | summarization, default |",
        "pretraining_gain_budgets.json", "rows", lambda r: r["design"],
        {title: ((f"{k}.mean", f"{k}.low", f"{k}.high"), interval)
         for title, k in (("gain, default budgets", "default.adaptability"),
                          ("summarization, default", "default.summarization"),
                          ("gain, lifted budgets", "lifted.adaptability"),
                          ("summarization, lifted", "lifted.summarization"))},
    ),
    # tasks.md: pretraining's worth with and without target-language stories in the corpus
    Table(
        "docs/tasks.md", "| design (corpus) | adaptability | translation |",
        "pretraining_gain_target_stories.json", "rows",
        lambda r: "{} ({})".format(
            {"gpt2": "GPT-2-like", "llama": "Llama-like", "t5": "T5-like"}[r["design"]],
            {"task_headroom_gain.json": "English only",
             "task_headroom_gain_target50.json": "target_stories=0.5"}[r["run"]]),
        {k: ((f"{k}.mean", f"{k}.low", f"{k}.high"), interval)
         for k in ("adaptability", "translation", "summarization", "sentiment")},
    ),
    # tasks.md: the reference designs' pretraining gain in the default suite
    Table(
        "docs/tasks.md", "| design (pretraining) | adaptability | gain / sd | qa | ner |",
        "pretraining_gain_t5_encoder_mlm.json", "rows",
        lambda r: {"gpt2": "GPT-2-like", "llama": "Llama-like"}.get(r["design"]) or {
            "task_headroom_default_suite.json": "T5-like (infilling only)",
            "task_headroom_t5_encoder_mlm.json": "T5-like (infilling + encoder MLM)"}[r["run"]],
        {"gain / sd": (("adaptability.mean", "adaptability.sd"), lambda m, sd: f"{m / sd:.1f}"),
         **{k: ((f"{k}.mean", f"{k}.low", f"{k}.high"), interval)
            for k in ("adaptability", "qa", "ner", "translation")}},
    ),
    # validity.md: the default search, five seeds
    Table(
        VALIDITY, "| seed | winner | adaptability (3 seeds) | verdict on test |",
        "default_searches.json", "per_seed", lambda r: str(r["seed"]),
        {"verdict on test": ("verdict.text", "{}")},
    ),
    # validity.md: the default search of the default suite, five seeds
    Table(
        VALIDITY, "| seed (default suite) | winner | adaptability (3 seeds) | verdict on test |",
        "default_searches_default_suite.json", "per_seed", lambda r: str(r["seed"]),
        {"verdict on test": ("verdict.text", "{}"),
         "adaptability (3 seeds)": (("leaderboard",), winner_mean_sd)},
    ),
    # validity.md: the default search at the lifted (withdrawn) task budgets, three seeds
    Table(
        VALIDITY, "| search seed | winner | adaptability (3 seeds) | verdict on test |",
        "default_searches_lifted.json", "per_seed", lambda r: str(r["seed"]),
        {"verdict on test": ("verdict.text", "{}")},
    ),
    # validity.md: the default search validated, with the five tasks and with the default suite
    *(
        Table(
            VALIDITY, f"| {rank} | trial | architecture | params | search (3 seeds) |",
            json_file, "architectures", lambda a: str(a["search_rank"]),
            {
                "trial": ("trial", "{}"),
                "architecture": ("describe", "{}"),
                "params": ("n_params", kilo),
                "search (3 seeds)": ("search_score", ".3f"),
                "pretrained (3 new seeds)": (
                    ("pretrained.adaptability.mean", "pretrained.adaptability.sd"), mean_sd),
                "not pretrained": (
                    ("not_pretrained.adaptability.mean", "not_pretrained.adaptability.sd"),
                    mean_sd),
                "gain": ("gain.adaptability.mean", "+.3f"),
                "x4 budget": ("large.adaptability.mean", ".3f"),
            },
        )
        for rank, json_file in (("rank", "validity_default_study.json"),
                                ("rank (default suite)", "validity_default_suite_study.json"))
    ),
    # validity.md: eight architectures ranked at x4, and the same eight at NER lr 1e-3
    Table(
        VALIDITY, "| trial | architecture | pretrained (2 seeds) | not pretrained | gain |",
        "validity_rank8.json", "architectures", lambda a: str(a["trial"]),
        {
            "architecture": ("describe", "{}"),
            "pretrained (2 seeds)": (
                ("pretrained.adaptability.mean", "pretrained.adaptability.sd"), mean_sd),
            "not pretrained": ("not_pretrained.adaptability.mean", ".3f"),
            "gain": ("gain.adaptability.mean", "+.3f"),
            "NER gain": ("gain.tasks.ner.mean", "+.3f"),
            "x4 budget": ("large.adaptability.mean", ".3f"),
        },
    ),
    Table(
        VALIDITY, "| trial | architecture | pretrained (2 seeds) | not pretrained | gain |",
        "validity_rank8_ner_lr1e-3.json", "architectures", lambda a: str(a["trial"]),
        {"at NER 1e-3: pretrained / NER gain": (
            ("pretrained.adaptability.mean", "gain.tasks.ner.mean"), "{:.3f} / {:+.3f}")},
    ),
    # benchmarks.md: throughput, fp32 runners and the bf16 runs
    Table(
        BENCH, "| model (d_model x layers) | params | precision | adaptnas tok/s | plain loop",
        "throughput.json", "results", lambda r: f"{r['d_model']} x {r['n_layer']}",
        {
            "params": ("params.adaptnas", lambda n: f"{n / 1e6:.2f}M"),
            "adaptnas tok/s": ("runners.adaptnas.tokens_per_s", ",.0f"),
            "plain loop tok/s": ("runners.plain.tokens_per_s", ",.0f"),
            "HF GPT-2 tok/s": ("runners.gpt2_hf.tokens_per_s", ",.0f"),
            "HF GPT-2 + fused AdamW tok/s": ("runners.gpt2_hf_fused.tokens_per_s", ",.0f"),
            "adaptnas / GPT-2": ("adaptnas_vs_gpt2", "{:.2f}x"),
            "Lightning's cost": ("lightning_cost", ".1%"),
            "adaptnas GFLOP/s": ("runners.adaptnas.flops_per_s", lambda f: f"{f / 1e9:.0f}"),
            "of fp32 roof": ("runners.adaptnas.fraction_of_fp32_peak", ".2f"),
        },
    ),
    Table(
        BENCH, "| model (d_model x layers) | params | `auto` picks |",
        "throughput_bf16.json", "results", lambda r: f"{r['d_model']} x {r['n_layer']}",
        {
            "`auto` picks": ("auto_precision", "{}"),
            "adaptnas fp32 tok/s": ("runners.adaptnas_fp32.tokens_per_s", ",.0f"),
            "adaptnas bf16 tok/s": ("runners.adaptnas_bf16.tokens_per_s", ",.0f"),
            "HF GPT-2 fp32 tok/s": ("runners.gpt2_hf.tokens_per_s", ",.0f"),
            "bf16 / fp32": ("bf16_vs_fp32", "{:.2f}x"),
            "**adaptnas (`auto`) / GPT-2**": ("adaptnas_vs_gpt2", "{:.2f}x"),
        },
    ),
    # benchmarks.md: the pretraining rung at 5 seeds, in two files (seeds 0-2 and 3-4)
    *(
        Table(
            BENCH, "| seed | random: trials, final best, reached at | TPE + pretrain_halving:",
            f"search_efficiency_pretrain_halving_seeds{seeds}.json", "per_seed",
            lambda s: str(s["seed"]),
            {
                "random: trials, final best, reached at": (
                    ("random_trials", "random_final_best", "random_time_to_target_s"),
                    "{}, {:.4f}, {:.0f} s"),
                "TPE + pretrain_halving: trials (pruned), final best": (
                    ("tpe_trials", "tpe_pruned", "tpe_final_best"), "{} ({}), {:.4f}"),
                "reached random's best at": (
                    "tpe_time_to_target_s", lambda s: "not reached" if s is None else f"{s:.0f} s"),
                "ratio": ((ratio,), "{}"),
            },
        )
        for seeds in ("0-2", "3-4")
    ),
    # supernet.md: inherited against standalone scores at the bench budgets
    Table(
        SUPERNET, "| | architecture | params | inherited | standalone |",
        "supernet_rank_bench.json", "archs", lambda a: a["label"],
        {
            "params": ("n_params", kilo),
            "inherited": ("inherited.adaptability", ".3f"),
            "standalone": ("standalone[0].adaptability", ".3f"),
        },
    ),
    # supernet.md: the two-tier screen against standalone adaptability
    Table(
        SUPERNET, "| arch | family | architecture | params | lm_loss |",
        "two_tier.json", "archs", lambda a: a["label"],
        {"family": ("family", "{}"), "architecture": ("arch", "{}"),
         "params": ("n_params", kilo), "lm_loss": ("screen_scores.lm_loss", ".4f"),
         "suffix_loss": ("screen_scores.suffix_loss", ".4f"),
         "standalone": ("standalone.adaptability", ".4f")},
    ),
    # supernet.md: the task-adapted screen against standalone adaptability
    Table(
        SUPERNET, "| arch | adapted | sentiment |",
        "two_tier_adapted.json", "archs", lambda a: a["label"],
        {"adapted": (lambda r, j: -r["screen_scores"]["adapted"], ".4f"),
         **{t: (f"adapted_task_scores.{t}", ".3f")
            for t in ("sentiment", "ner", "qa", "translation", "summarization")},
         "standalone": ("standalone.adaptability", ".4f")},
    ),
    # validity.md: 24 architectures of the default space at the default budget and at x4
    Table(
        VALIDITY, "| arch | architecture | tied | params | default | 2nd seed |",
        "budget_rank_default.json", "archs", lambda r: r["label"],
        {
            "architecture": ("arch", "{}"),
            "params": ("n_params", kilo),
            "default": ("default", ".3f"),
            "2nd seed": ("second_seed", lambda v: "-" if v is None else f"{v:.3f}"),
            "x4": ("scaled", ".3f"),
            "NER default / x4": (("runs.default.tasks.ner", "runs.scaled.tasks.ner"),
                                 "{:.3f} / {:.3f}"),
        },
    ),
]  # fmt: skip

QUOTES: list[Quote] = [
    # validity.md
    Quote(VALIDITY, "the best searched candidate ties it on test:\n{:+.3f} [{:+.3f}, {:+.3f}]**",
          "verdict_default_seed0.json",
          ("verdict.diff_mean", "verdict.diff_low", "verdict.diff_high")),
    Quote(VALIDITY, "**ties\nLlama-like: {:+.3f} [{:+.3f}, {:+.3f}]**",
          "verdict_default_seed1.json",
          ("verdict.diff_mean", "verdict.diff_low", "verdict.diff_high")),
    Quote(VALIDITY, "winner {:+.3f} = **{:.1f} x** the pooled seed sd ({:.3f}:",
          "validity_default_study.json",
          ("gain.winner", "gain.winner_over_pooled_sd", "noise.pooled_sd")),
    Quote(VALIDITY, "median finalist {:+.3f} = **{:.1f} x**", "validity_default_study.json",
          ("gain.median_finalist", "gain.median_over_pooled_sd")),
    Quote(VALIDITY, "over the runner-up ({:+.3f}) is just **within** seed noise (threshold {:.3f})",
          "validity_default_study.json", ("winner.lead", "winner.threshold")),
    Quote(VALIDITY, "gave a winner gain of {:+.3f} ({:.1f} x its pooled sd of {:.3f}) and a "
          "median finalist gain of {:.1f} x", "validity_default_study_postnorm_space.json",
          ("gain.winner", "gain.winner_over_pooled_sd", "noise.pooled_sd",
           "gain.median_over_pooled_sd")),
    Quote(VALIDITY, "winner decoder L2 d96, 228k) {:.1f} x and {:.1f} x",
          "validity_default_study_ner_lr1e-3.json",
          ("gain.winner_over_pooled_sd", "gain.median_over_pooled_sd")),
    Quote(VALIDITY, "**Kendall tau {:.2f} [{:+.2f}, {:+.2f}], Spearman {:.2f} [{:+.2f}, {:+.2f}]** "
          "between the default budget and x4 over the 24", "budget_rank_default.json",
          ("rank.kendall_tau", "rank.kendall_tau_ci[0]", "rank.kendall_tau_ci[1]", "rank.spearman",
           "rank.spearman_ci[0]", "rank.spearman_ci[1]")),
    Quote(VALIDITY,
          "over **24 architectures of the default suite's space, {:.2f} [{:+.2f}, {:+.2f}]**",
          "budget_rank_default.json",
          ("rank.kendall_tau", "rank.kendall_tau_ci[0]", "rank.kendall_tau_ci[1]")),
    Quote(VALIDITY, "the same runs give tau {:.2f} [{:+.2f}, {:+.2f}]", "budget_rank_default.json",
          ("rank_skill.kendall_tau", "rank_skill.kendall_tau_ci[0]",
           "rank_skill.kendall_tau_ci[1]")),
    Quote(VALIDITY, "(encoder plus decoder): Kendall tau {:.2f} [{:+.2f}, {:+.2f}]; against its "
          "parameter count: {:.2f} [{:+.2f}, {:+.2f}]", "budget_rank_default.json",
          ("scaled_gain_vs.layers.kendall_tau", "scaled_gain_vs.layers.kendall_tau_ci[0]",
           "scaled_gain_vs.layers.kendall_tau_ci[1]", "scaled_gain_vs.n_params.kendall_tau",
           "scaled_gain_vs.n_params.kendall_tau_ci[0]",
           "scaled_gain_vs.n_params.kendall_tau_ci[1]")),
    Quote(VALIDITY, "the two default-budget seeds agree with Kendall tau {:.2f} [{:+.2f}, {:+.2f}] "
          "over the {} architectures with both, and their mean against x4 gives {:.2f} "
          "[{:+.2f}, {:+.2f}]", "budget_rank_default.json",
          ("rank_seed_to_seed.kendall_tau", "rank_seed_to_seed.kendall_tau_ci[0]",
           "rank_seed_to_seed.kendall_tau_ci[1]", "rank_seed_to_seed.n",
           "rank_mean_vs_scaled.kendall_tau", "rank_mean_vs_scaled.kendall_tau_ci[0]",
           "rank_mean_vs_scaled.kendall_tau_ci[1]")),
    Quote(VALIDITY, "**Kendall tau {:.2f}, Spearman {:.2f}** between the default budget",
          "validity_rank8.json", ("rank.kendall_tau", "rank.spearman")),
    Quote(VALIDITY, "(at NER 1e-3: {:.2f} / {:.2f};", "validity_rank8_ner_lr1e-3.json",
          ("rank.kendall_tau", "rank.spearman")),
    Quote(VALIDITY, "winner {:+.3f} ({:.1f} x the pooled sd of {:.3f}), median {:+.3f} ({:.1f} x)",
          "validity_rank8.json",
          ("gain.winner", "gain.winner_over_pooled_sd", "noise.pooled_sd",
           "gain.median_finalist", "gain.median_over_pooled_sd")),
    Quote(VALIDITY, "at 1e-3 {:+.3f} ({:.1f} x) and {:+.3f} ({:.1f} x)",
          "validity_rank8_ner_lr1e-3.json",
          ("gain.winner", "gain.winner_over_pooled_sd", "gain.median_finalist",
           "gain.median_over_pooled_sd")),
    Quote(VALIDITY, "`docs/benchmark_results/validity_rank8_postnorm_space.json`) gave tau {:.2f}",
          "validity_rank8_postnorm_space.json", ("rank.kendall_tau",)),
    # supernet.md
    Quote(SUPERNET, "the build costs as much CPU time as about {:.0f} standalone trials ({:.1f})",
          "supernet_rank.json",
          ("candidates_ratio.build_in_standalone_trials",
           "candidates_ratio.build_in_standalone_trials")),
    Quote(SUPERNET, "= {:,.0f} / ({:.1f} - {:.1f})", "supernet_rank.json",
          ("cpu_s.build", "cpu_s.standalone_mean", "cpu_s.inherited_mean")),
    Quote(SUPERNET, "after about {:.0f} (build", "supernet_rank.json",
          (lambda r, j: j["cpu_s"]["build"]
           / (j["cpu_s"]["standalone_mean"] - j["cpu_s"]["inherited_mean"]),)),
    Quote(SUPERNET, "Kendall tau **{:.3f}** (p {:.3f}), Spearman {:.3f} over 8 architectures",
          "supernet_rank.json", ("rank.kendall_tau", "rank.kendall_p", "rank.spearman")),
    Quote(SUPERNET, "**{:.2f}x at K = 8** (still building), **{:.2f}x at K = 50, {:.2f}x at K = "
          "200, asymptote {:.2f}x**", "supernet_rank.json",
          ("candidates_ratio.per_k.8", "candidates_ratio.per_k.50", "candidates_ratio.per_k.200",
           "candidates_ratio.asymptotic")),
    Quote(SUPERNET, "Kendall tau **{:.2f}** (p {:.2f}), Spearman {:.2f} over 8 architectures",
          "supernet_rank_bench.json", ("rank.kendall_tau", "rank.kendall_p", "rank.spearman")),
    # validity.md: which half of x4 reorders the space
    Quote(VALIDITY, "| default against x4 adaptation | {:.2f} [{:+.2f}, {:+.2f}] | {:.2f} "
          "[{:+.2f}, {:+.2f}] |", "budget_rank_x4adapt.json", rank_ci("rank")),
    Quote(VALIDITY, "| x4 adaptation against x4 (adaptation and pretraining) | {:.2f} [{:+.2f}, "
          "{:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] |", "budget_rank_x4adapt_vs_x4.json",
          rank_ci("rank")),
    Quote(VALIDITY, "steps keep a good part of the default ranking ({:.2f} [{:+.2f}, {:+.2f}])",
          "budget_rank_x4adapt.json", rank_ci("rank")[:3]),
    Quote(VALIDITY, "good part of that one ({:.2f} [{:+.2f}, {:+.2f}])",
          "budget_rank_x4adapt_vs_x4.json", rank_ci("rank")[:3]),
    Quote(VALIDITY, "adaptation over the default budget against the layer count: tau {:.2f} "
          "[{:+.2f}, {:+.2f}]", "budget_rank_x4adapt.json", rank_ci("scaled_gain_vs.layers")[:3]),
    Quote(VALIDITY, "the longer pretraining (x4 over x4 adaptation) against it: tau {:.2f} "
          "[{:+.2f}, {:+.2f}]", "budget_rank_x4adapt_vs_x4.json",
          rank_ci("scaled_gain_vs.layers")[:3]),
    Quote(VALIDITY, "x4 adaptation costs {:.0f} CPU s a run against {:.0f} for\nthe default budget "
          "(x4 in all: {:.0f})", "budget_rank_x4adapt_vs_x4.json",
          ("cpu_s.default", lambda r, j: json.loads((RESULTS / "budget_rank_x4adapt.json")
           .read_text())["cpu_s"]["default"], "cpu_s.scaled")),
    Quote(VALIDITY, "validation, QA F1 {:.3f} at the default budget, {:.3f} at x4 adaptation, "
          "{:.3f} at x4;\ntranslation chrF {:.3f}, {:.3f}, {:.3f}; NER F1 {:.3f}, {:.3f}, {:.3f}",
          "budget_rank_x4adapt.json",
          tuple(mean_task(task, side) for task in ("qa", "translation", "ner")
                for side in ("default", "x4 adapt", "x4"))),
    Quote(VALIDITY, "| default against x2 (adaptation and pretraining) | {:.2f} [{:+.2f}, "
          "{:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] |", "budget_rank_default_vs_x2.json",
          rank_ci("rank")),
    Quote(VALIDITY, "| x2 against x4 | {:.2f} [{:+.2f}, {:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] |",
          "budget_rank_x2_vs_x4.json", rank_ci("rank")),
    Quote(VALIDITY, "The default budget against x2: tau {:.2f} [{:+.2f}, {:+.2f}]",
          "budget_rank_default_vs_x2.json", rank_ci("rank")[:3]),
    Quote(VALIDITY, "x2 against x4: {:.2f} [{:+.2f}, {:+.2f}].", "budget_rank_x2_vs_x4.json",
          rank_ci("rank")[:3]),
    Quote(VALIDITY, "(x2 over the\ndefault against layers: tau {:.2f} [{:+.2f}, {:+.2f}]",
          "budget_rank_default_vs_x2.json", rank_ci("scaled_gain_vs.layers")[:3]),
    Quote(VALIDITY, "x4 over x2: {:.2f} [{:+.2f}, {:+.2f}]). An x2\nrun costs {:.0f} CPU s",
          "budget_rank_x2_vs_x4.json", (*rank_ci("scaled_gain_vs.layers")[:3], "cpu_s.default")),
    # validity.md: how well x4 ranks its own reruns
    *[
        Quote(VALIDITY, f"| {p} | {RANK_CELLS}", "rank_ceiling_x4.json", rank_ci(f"pairs.{p}"))
        for p in CEILING_PAIRS
    ],
    Quote(VALIDITY, "tau {:.2f} [{:+.2f}, {:+.2f}] between its two seeds",
          "budget_rank_x4_seeds.json", rank_ci("rank_seed_to_seed")[:3]),
    Quote(VALIDITY, "seeds gives {:.2f} [{:+.2f}, {:+.2f}]. Each budget", "rank_ceiling_x4.json",
          rank_ci("pairs.default mean against x4 mean")[:3]),
    # validity.md: learning-curve extrapolation against x4
    *[
        Quote(VALIDITY, f"| {row} | {{:.2f}}x | {RANK_CELLS}", "rank_extrapolation.json",
              extrapolated(name))
        for row, name in EXTRAPOLATIONS
    ],
    Quote(VALIDITY, "the gain from x1 to x4: tau {:.2f} [{:+.2f}, {:+.2f}]",
          "rank_extrapolation.json", extrapolated("gain x0.5 to x1 against gain x1 to x4")[1:4]),
    # validity.md: learning rates fixed, per family or per candidate
    Quote(VALIDITY, "| fixed | {:.2f} [{:+.2f}, {:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] | {:.0f} |",
          "budget_rank_default.json", (*rank_ci("rank"), "cpu_s_per_candidate")),
    Quote(VALIDITY, "| family | {:.2f} [{:+.2f}, {:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] | {:.0f} |",
          "budget_rank_lr_family.json", (*rank_ci("rank"), "cpu_s_per_candidate")),
    Quote(VALIDITY, "QA rose by {:.3f} on average for the ten\nencoder-decoders and by {:.3f} for "
          "the seven prefix-LMs", "budget_rank_lr_family.json",
          (qa_change("encoder_decoder"), qa_change("prefix_lm"))),
    Quote(VALIDITY, "| candidate | {:.2f} [{:+.2f}, {:+.2f}] | {:.2f} [{:+.2f}, {:+.2f}] | "
          "{:.0f} |",
          "budget_rank_lr_candidate.json", (*rank_ci("rank"), "cpu_s_per_candidate")),
    Quote(VALIDITY, "Adaptability rose by {:.3f} on average for the decoders, {:.3f} for the "
          "encoder-decoders and {:.3f}\n  for the prefix-LMs", "budget_rank_lr_candidate.json",
          (score_change("decoder"), score_change("encoder_decoder"),
           score_change("prefix_lm"))),
    # faults.md: the chaos run after the kept-weights fix
    Quote("docs/faults.md", "journal {} of {} trials, {} kills, {}\ntrials failed and re-run, "
          "{:.1f} s; PostgreSQL {} of {}, {} kills, {} re-run, {:.1f} s",
          "chaos_2026-12-07.json",
          ("[0].trials", "[0].target", "[0].kills", "[0].retried", "[0].wall_s",
           "[1].trials", "[1].target", "[1].kills", "[1].retried", "[1].wall_s")),
    # supernet.md: the two-tier search
    Quote(SUPERNET, "The build took **{:,.0f} CPU s** (1,920 sandwich steps; as much as {:.1f} "
          "standalone trials), a screened candidate **{:.3f} CPU s** (TPE included; the loss "
          "alone {:.3f}), a standalone trial **{:.1f} CPU s**", "two_tier.json",
          ("cpu_s.build", "accounting.build_in_standalone_trials", "cpu_s.screen_per_candidate",
           "cpu_s.screen_score_only_mean", "cpu_s.standalone_mean")),
    Quote(SUPERNET, "the screen evaluates {:.0f} candidates per CPU-hour at 200 screened and "
          "{:.0f} at 300, against {:.0f} standalone candidates per CPU-hour: **{:.1f}x at 200 "
          "screened, {:.1f}x at 300**", "two_tier.json",
          ("accounting.screened_per_cpu_hour.200", "accounting.screened_per_cpu_hour.300",
           "accounting.standalone_per_cpu_hour", "accounting.ratio.200", "accounting.ratio.300")),
    Quote(SUPERNET, "search of the same CPU time after {:.0f} candidates, reaches the goal of 20x "
          "after {:.0f}, and tends to {:.0f}x. The default two-tier search spends {:.1f}",
          "two_tier.json",
          ("accounting.break_even_screened", "accounting.screened_for_20x",
           "accounting.asymptotic_ratio", "accounting.default_screen_in_standalone_trials")),
    Quote(SUPERNET, "is **{:.2f} [{:.2f}, {:.2f}]** (`lm_loss`, bootstrap 95%; Spearman {:.2f} "
          "[{:.2f}, {:.2f}]) and {:.2f} [{:.2f}, {:.2f}] (`suffix_loss`)", "two_tier.json",
          ("rank.kendall_tau", "rank.kendall_tau_ci[0]", "rank.kendall_tau_ci[1]",
           "rank.spearman", "rank.spearman_ci[0]", "rank.spearman_ci[1]",
           "rank_by_screen.suffix_loss.all.kendall_tau",
           "rank_by_screen.suffix_loss.all.kendall_tau_ci[0]",
           "rank_by_screen.suffix_loss.all.kendall_tau_ci[1]")),
    Quote(SUPERNET, "within the families it is {:.2f} ({} decoders) and {:.2f} ({} prefix-LMs) for "
          "`lm_loss`, {:.2f} and {:.2f} for `suffix_loss`", "two_tier.json",
          ("rank_by_screen.lm_loss.decoder.kendall_tau", "rank_by_screen.lm_loss.decoder.n",
           "rank_by_screen.lm_loss.prefix_lm.kendall_tau", "rank_by_screen.lm_loss.prefix_lm.n",
           "rank_by_screen.suffix_loss.decoder.kendall_tau",
           "rank_by_screen.suffix_loss.prefix_lm.kendall_tau")),
    # supernet.md: the task-adapted screen
    Quote(SUPERNET, "Adapting the super-network to the five tasks took **{:.0f} CPU s** (sentiment "
          "{:.1f}, ner {:.1f}, qa {:.1f}, translation {:.1f}, summarization {:.1f}) on top of",
          "two_tier_adapted.json",
          ("adapted.cpu_s.adapt_total", "adapted.cpu_s.adapt_per_task.sentiment",
           "adapted.cpu_s.adapt_per_task.ner", "adapted.cpu_s.adapt_per_task.qa",
           "adapted.cpu_s.adapt_per_task.translation",
           "adapted.cpu_s.adapt_per_task.summarization")),
    # supernet.md: on the default suite of three tasks
    Quote(SUPERNET, "The super-network took **{:,.0f} CPU s** and its adaptation to the three "
          "tasks **{:.0f}\n  CPU s** (QA {:.1f}, NER {:.1f}, translation {:.1f}); a screened "
          "candidate costs **{:.2f} CPU s**", "two_tier_default_suite.json",
          ("adapted.cpu_s.supernet_build", "adapted.cpu_s.adapt_total",
           "adapted.cpu_s.adapt_per_task.qa", "adapted.cpu_s.adapt_per_task.ner",
           "adapted.cpu_s.adapt_per_task.translation", "adapted.cpu_s.screen_per_candidate")),
    Quote(SUPERNET, "a standalone trial **{:.1f} CPU s**. Builds amortised",
          "two_tier_default_suite.json", ("adapted.cpu_s.standalone_mean",)),
    Quote(SUPERNET, "adapted screen evaluates **{:.1f}x the candidates per CPU-hour of a "
          "standalone search at 200\n  screened and {:.1f}x at 300**, tends to {:.0f}x, and "
          "reaches the goal of 20x after {:.0f} screened", "two_tier_default_suite.json",
          ("adapted.accounting.ratio.200", "adapted.accounting.ratio.300",
           "adapted.accounting.asymptotic_ratio", "adapted.accounting.screened_for_20x")),
    Quote(SUPERNET, "the 300 trials of the loop were **{:d} distinct\n  architectures**",
          "two_tier_default_suite.json", ("screen_loop.distinct_architectures",)),
    Quote(SUPERNET, "adaptability over the 30: **{:.2f} [{:.2f}, {:.2f}]** (bootstrap 95%; "
          "Spearman {:.2f} [{:.2f}, {:.2f}])", "two_tier_default_suite.json",
          ("adapted.rank.kendall_tau", "adapted.rank.kendall_tau_ci[0]",
           "adapted.rank.kendall_tau_ci[1]", "adapted.rank.spearman", "adapted.rank.spearman_ci[0]",
           "adapted.rank.spearman_ci[1]")),
    Quote(SUPERNET, "suite; the LM loss gives {:.2f} [{:.2f}, {:.2f}]. Within the families: {:.2f} "
          "(16 decoders), {:.2f}", "two_tier_default_suite.json",
          ("rank_by_screen.lm_loss.all.kendall_tau", "rank_by_screen.lm_loss.all.kendall_tau_ci[0]",
           "rank_by_screen.lm_loss.all.kendall_tau_ci[1]",
           "rank_by_screen.adapted.decoder.kendall_tau",
           "rank_by_screen.adapted.prefix_lm.kendall_tau")),
    *[
        Quote(SUPERNET, f"| {row} | {{:.0f}} | {{:.2f}} [{{:.2f}}, {{:.2f}}] | {{:.2f}} "
              "[{:.2f}, {:.2f}] |", name,
              ("adapted.cpu_s.adapt_total", "adapted.rank.kendall_tau",
               "adapted.rank.kendall_tau_ci[0]", "adapted.rank.kendall_tau_ci[1]",
               "adapted.rank.spearman", "adapted.rank.spearman_ci[0]",
               "adapted.rank.spearman_ci[1]"))
        for row, name in (
            ("the tasks' steps (x1, the default)", "two_tier_default_suite.json"),
            ("x4", "two_tier_default_suite_adapt4.json"),
            ("x8", "two_tier_default_suite_adapt8.json"),
        )
    ],
    Quote(SUPERNET, "A screened candidate costs **{:.2f} CPU s**", "two_tier_adapted.json",
          ("adapted.cpu_s.screen_per_candidate",)),
    Quote(SUPERNET, "evaluates **{:.1f}x the candidates per CPU-hour of a standalone search at 200 "
          "screened and {:.1f}x at 300**", "two_tier_adapted.json",
          ("adapted.accounting.ratio.200", "adapted.accounting.ratio.300")),
    Quote(SUPERNET, "adaptability is **{:.2f} [{:.2f}, {:.2f}]** (bootstrap 95%; Spearman {:.2f} "
          "[{:.2f}, {:.2f}])", "two_tier_adapted.json",
          ("adapted.rank.kendall_tau", "adapted.rank.kendall_tau_ci[0]",
           "adapted.rank.kendall_tau_ci[1]", "adapted.rank.spearman", "adapted.rank.spearman_ci[0]",
           "adapted.rank.spearman_ci[1]")),
]  # fmt: skip

# benchmarks.md, the overhead table: phase -> seconds and share of the trial's wall time
OVERHEAD = {
    "forward": "forward",
    "backward": "backward",
    "optimizer step (clipping included)": "optimizer",
    "zero_grad": "zero_grad",
    "data and Lightning's loop between steps": "data_and_loop",
    "validation passes (5 tasks, pretraining loss)": "evaluation",
    "test scoring (only trials that enter the top 3)": "test_scoring",
    "Lightning set-up and teardown": "lightning_setup",
    "model build and copies": "model_build_and_copy",
    "hooks, kept weights, tracking": "hooks_weights_and_tracking",
    "Optuna and the objective": "optuna_and_objective",
}
QUOTES += [
    Quote(BENCH, f"| {label} | {{}} | {{:.2f}} | {{:.1%}} |", "overhead.json",
          (lambda r, j, k=key: "compute" if k in ("forward", "backward", "optimizer")
           else "overhead", f"phases_s.{key}",
           lambda r, j, k=key: j["phases_s"][k] / j["trial_wall_s"]))
    for label, key in OVERHEAD.items()
]  # fmt: skip


# ---- the check ----------------------------------------------------------------------------------
_NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?[%xk]?"


def at(obj: Any, path: Value, whole: Any) -> Any:
    """The value at ``path`` (dotted keys, ``[i]`` indices) in ``obj``, or ``path(obj, whole)``."""
    if callable(path):
        return path(obj, whole)
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        obj = obj[int(part[1:-1])] if part.startswith("[") else obj[part]
    return obj


def render(fmt: Format, values: Sequence[Any]) -> str:
    if callable(fmt):
        return fmt(*values)
    if "{" in fmt:
        return fmt.format(*values)
    return format(values[0], fmt)


def _loose(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _cells(line: str) -> list[str]:
    return [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]


def markdown_table(doc: str, header: str) -> tuple[list[str], dict[str, list[str]]] | None:
    """The header cells and the rows (by first cell) of the table whose header starts so."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            head = _cells(line)
            rows = {}
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = _cells(row)
                rows[cells[0]] = cells
            return head, rows
    return None


def check_table(t: Table, docs_root: Path, results: Path) -> list[str]:
    where = f"{t.doc} (table {t.header!r}, {t.json})"
    found = markdown_table((docs_root / t.doc).read_text(), t.header)
    if found is None:
        return [f"{where}: no table with that header"]
    head, rows = found
    whole = json.loads((results / t.json).read_text())
    problems = []
    for record in at(whole, t.rows, whole):
        key = t.key(record)
        if key not in rows:
            problems.append(f"{where}: no row {key!r}")
            continue
        for column, (paths, fmt) in t.columns.items():
            name = column.replace("**", "")
            if name not in head:
                problems.append(f"{where}: no column {column!r}")
                continue
            paths = paths if isinstance(paths, tuple) else (paths,)
            want = render(fmt, [at(record, p, whole) for p in paths])
            got = rows[key][head.index(name)]
            if got != want.replace("**", ""):
                problems.append(f"{where}: row {key!r}, {column!r} reads {got!r}, JSON {want!r}")
    return problems


def check_quote(q: Quote, docs_root: Path, results: Path) -> list[str]:
    where = f"{q.doc} ({q.json})"
    whole = json.loads((results / q.json).read_text())
    want = _loose(q.text.format(*(at(whole, v, whole) for v in q.values)))
    doc = _loose((docs_root / q.doc).read_text())
    if want in doc:
        return []
    pieces = re.split(r"\{[^}]*\}", q.text)
    pattern = f"({_NUMBER}|compute|overhead)".join(re.escape(_loose(p)) for p in pieces)
    match = re.search(pattern, doc)
    if match:
        return [f"{where}: the doc reads {match.group(0)!r}, the JSON gives {want!r}"]
    return [f"{where}: {want!r} is not in the doc (reworded? update tests/test_docs.py)"]


def check(docs_root: Path = REPO, results: Path | None = None) -> list[str]:
    """Every mismatch between the docs under ``docs_root`` and the JSON they quote."""
    results = results or REPO / "docs" / "benchmark_results"
    problems = []
    for t in TABLES:
        problems += check_table(t, docs_root, results)
    for q in QUOTES:
        problems += check_quote(q, docs_root, results)
    return problems


# ---- tests --------------------------------------------------------------------------------------
def test_the_docs_quote_the_figures_of_the_json_they_name():
    problems = check()
    assert not problems, "\n".join(problems)


def test_every_table_and_quote_of_the_registry_is_checked_against_a_json_file_that_exists():
    names = {t.json for t in TABLES} | {q.json for q in QUOTES}
    assert all((REPO / "docs" / "benchmark_results" / n).is_file() for n in names), names
    docs = {t.doc for t in TABLES} | {q.doc for q in QUOTES}
    assert docs == {VALIDITY, BENCH, SUPERNET, "docs/tasks.md", "docs/faults.md"}


def _plant(tmp_path: Path, doc: str, old: str, new: str) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "docs", root / "docs", ignore=shutil.ignore_patterns("*.json"))
    path = root / doc
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return root


def test_a_wrong_figure_planted_in_a_table_fails_the_check(tmp_path):
    # validity.md's default-study table: trial 11's gain +0.067 changed to +0.076.
    row = "| 1 | 11 | decoder L3 d96 h2/2 ff384 relu rmsnorm-pre none | 431k | 0.377 |"
    text = (REPO / VALIDITY).read_text()
    line = next(x for x in text.splitlines() if x.startswith(row))
    root = _plant(tmp_path, VALIDITY, line, line.replace("| +0.067 |", "| +0.076 |"))
    problems = check(root)
    assert problems == [
        f"{VALIDITY} (table '| rank | trial | architecture | params | search (3 seeds) |', "
        "validity_default_study.json): row '1', 'gain' reads '+0.076', JSON '+0.067'"
    ]


def test_a_wrong_figure_planted_in_a_sentence_fails_the_check(tmp_path):
    tau = "**Kendall tau {}, Spearman 0.19**"
    root = _plant(tmp_path, VALIDITY, tau.format("0.07"), tau.format("0.70"))
    assert check(root) == [
        f"{VALIDITY} (validity_rank8.json): the doc reads '**Kendall tau 0.70, Spearman 0.19** "
        "between the default budget', the JSON gives '**Kendall tau 0.07, Spearman 0.19** "
        "between the default budget'"
    ]


def test_a_reworded_quote_or_a_missing_row_is_reported_not_passed(tmp_path):
    row = "| A3 | prefix_lm L2 d128 h2/2 ff384/512 | 493k | 0.203 | 0.195 |\n"
    root = _plant(tmp_path, SUPERNET, row, "")
    assert any("no row 'A3'" in p for p in check(root))
    root = _plant(tmp_path / "2", VALIDITY, "gave tau 0.50", "gave a tau of 0.50")
    assert any("is not in the doc" in p for p in check(root))
