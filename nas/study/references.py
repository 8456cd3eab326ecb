"""Reference designs inside every search, and the verdict of the search against them.

A search is only worth its CPU-hours if it finds something better than the first design a user
would write by hand. So every new study starts with the hand-written designs (GPT-2-like,
Llama-like; T5-like when the space samples encoder-decoders; BERT-like when it samples encoders),
each as the configuration **of the search space** nearest a target size (the space's median
parameter count by default). They are enqueued as the study's first trials
(``study.enqueue_trial``, as Optuna's maintainers advise for known-good points), never again on a
resume, and run through exactly the same pipeline as any sampled candidate: same budgets, same
seeds rule, same learning rates. They can win.

The best reference (by validation mean, like every finalist) is always a finalist, so it re-runs
with as many seeds as the top searched trials and is scored on test. When the finalists are done,
:func:`verdict` compares the winner with it on **test** adaptability, paired by seed index
(first seed, repeat 1, repeat 2, ...), with a t-based 95% interval over the real degrees of
freedom.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from lightning_modules.config import ArchitectureError, TransformerConfig
from nas.study.finalists import ranked
from nas.trial.record import REFERENCE, REPEAT_OF, TrialRecord
from nas.trial.run import adaptability
from search_spaces import SearchSpace
from search_spaces.space import Param

log = logging.getLogger("adaptnas")

FrozenTrial = optuna.trial.FrozenTrial

STUDY_ATTR = "adaptnas:references"  # study user attr: what was enqueued and what was skipped
VERDICT_ATTR = "adaptnas:verdict"  # study user attr: the last verdict (a plain dict)
FLOORS_ATTR = "adaptnas:floors"  # study user attr: each task's floor and how adaptability combines
SHAPE = ("n_layer", "n_dec_layer", "d_model", "n_head", "n_kv_head", "d_ff")
MEDIAN_DRAWS = 512  # random architectures behind the space's median parameter count


@dataclass(frozen=True)
class Design:
    """A hand-written design: the knobs that make it, and how its shape is usually chosen.

    Attributes:
        title: Its name in reports (``Llama-like``).
        knobs: ``TransformerConfig`` fields that define it; the space must be able to take each.
        soft: Knobs it prefers but may give up when the space cannot take them (the reason is
            logged): BERT's post-norm in a pre-norm-only space.
        ff_ratio: Its own MLP width over ``d_model``.
        kv: ``mha`` (one key/value head per query head) or ``gqa`` (grouped, fewer kv heads).
    """

    title: str
    knobs: dict[str, Any]
    soft: frozenset[str] = frozenset()
    ff_ratio: float = 4.0
    kv: str = "mha"


DESIGNS: dict[str, Design] = {
    "gpt2": Design(
        "GPT-2-like",
        dict(
            family="decoder",
            pos="learned",
            norm="layernorm",
            norm_position="pre",
            mlp="gelu",
            tie_embeddings=True,
        ),
    ),
    "llama": Design(
        "Llama-like",
        dict(
            family="decoder",
            pos="rope",
            norm="rmsnorm",
            norm_position="pre",
            mlp="swiglu",
            tie_embeddings=False,
        ),
        ff_ratio=8.0 / 3.0,
        kv="gqa",
    ),
    # T5's relative position bias is closest to alibi here (exported as T5 buckets exactly).
    "t5": Design(
        "T5-like",
        dict(
            family="encoder_decoder",
            pos="alibi",
            norm="rmsnorm",
            norm_position="pre",
            mlp="relu",
            tie_embeddings=True,
        ),
    ),
    "bert": Design(
        "BERT-like",
        dict(
            family="encoder",
            pos="learned",
            norm="layernorm",
            norm_position="post",
            mlp="gelu",
            tie_embeddings=True,
        ),
        soft=frozenset({"norm_position"}),
    ),
}


def title(name: str) -> str:
    """``Llama-like`` for ``llama`` (the key itself for an unknown design)."""
    return DESIGNS[name].title if name in DESIGNS else name


# ---- sizing a design inside a space --------------------------------------------------------
class _Pick:
    """A stand-in for an Optuna trial that answers each ``suggest_*`` from a table.

    ``values`` maps a field to its value (a per-layer field: one value for every block, or a
    list with one per block); ``draw`` answers what the table lacks (without one, a missing
    field is a ``KeyError``). What was answered is kept in ``params``: the Optuna parameters
    that :meth:`SearchSpace.sample` asks for, ready for ``study.enqueue_trial``.
    """

    def __init__(self, values: Mapping[str, Any], draw=None):
        self.values, self.draw = dict(values), draw
        self.params: dict[str, Any] = {}

    def _answer(self, name: str, default) -> Any:
        key, _, index = name.partition(".")
        if key in self.values:
            value = self.values[key]
            if index and isinstance(value, list | tuple):
                value = value[int(index)]
        elif self.draw is None:
            raise KeyError(name)
        else:
            value = default()
        self.params[name] = value
        return value

    def suggest_categorical(self, name, choices):
        return self._answer(name, lambda: self.draw.choice(list(choices)))

    def suggest_int(self, name, low, high, step=1, log=False):
        return self._answer(name, lambda: self.draw.randrange(low, high + 1, step))

    def suggest_float(self, name, low, high, step=None, log=False):
        if step:
            n = int(round((high - low) / step))
            return self._answer(name, lambda: low + step * self.draw.randint(0, n))
        return self._answer(name, lambda: self.draw.uniform(low, high))


def median_params(space: SearchSpace, overrides: Mapping[str, Any], draws: int = MEDIAN_DRAWS):
    """The median parameter count of ``draws`` random architectures of ``space`` (seeded)."""
    rng = random.Random(0)
    counts = []
    for _ in range(draws):
        try:
            arch = TransformerConfig.from_dict(space.sample(_Pick({}, rng), **overrides))
        except ArchitectureError:
            continue
        counts.append(arch.num_params())
    if not counts:
        raise ValueError(f"search space {space.name!r}: no valid architecture in {draws} draws")
    return int(statistics.median(counts))


def _values(p: Param) -> list[Any]:
    """Every value a (shape) entry can take, in order."""
    if p.type == "categorical":
        return list(p.choices)
    if p.type == "int":
        return list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
    raise ValueError(f"entry {p.name!r}: a float entry cannot size a reference")


def _neutral(p: Param) -> Any:
    """What a reference takes for a knob it does not define: no dropout, else the field default."""
    if p.name == "dropout":
        return 0.0 if p.can_take(0.0) else p.low
    default = p.fallback
    if not p.per_layer and p.can_take(default):
        return default
    return p.choices[0] if p.type == "categorical" else p.low


@dataclass
class Reference:
    """One design as the space expresses it.

    Attributes:
        name: The design's key (``llama``).
        arch: Its ``TransformerConfig`` kwargs, as ``SearchSpace.sample`` returns them.
        params: The Optuna parameters that make the space sample exactly ``arch``.
        n_params: Its parameter count.
        target: The size it was matched to.
        notes: Soft knobs it gave up, and a size outside the tolerance.
    """

    name: str
    arch: dict[str, Any]
    params: dict[str, Any]
    n_params: int
    target: int
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return title(self.name)


def express(
    name: str,
    space: SearchSpace,
    overrides: Mapping[str, Any],
    target: int,
    tolerance: float = 0.15,
) -> Reference | str:
    """Design ``name`` as the configuration of ``space`` nearest ``target`` parameters.

    Every shape the space can take (depth, width, heads, kv heads, one MLP width for all blocks)
    is built with the design's knobs; among those within ``tolerance`` of ``target`` it prefers
    the design's own MLP ratio, then its own head width (16-dimensional heads up to
    ``d_model`` 64, 32 above), then its kv-head kind (and, for an encoder-decoder, as many
    decoder as encoder blocks), then the closest count.

    Returns:
        The reference, or one line saying which knob the space cannot express.
    """
    design = DESIGNS[name]
    by_name = {p.name: p for p in space.params}
    notes: list[str] = []
    knobs: dict[str, Any] = {}
    for knob, value in design.knobs.items():
        if knob in by_name:
            ok = by_name[knob].can_take(value)
        else:  # fixed by the space, or the field's default
            default = TransformerConfig.__dataclass_fields__[knob].default
            ok = space.fixed.get(knob, default) == value
        if ok:
            knobs[knob] = value
        elif knob in design.soft:
            notes.append(f"{knob}={value} not in the space: takes the space's value")
        else:
            return f"{design.title}: the space cannot take {knob}={value}"
    shape = [p for p in space.params if p.name in SHAPE]
    others = {
        p.name: _neutral(p) for p in space.params if p.name not in SHAPE and p.name not in knobs
    }
    best, best_key = None, None
    for combo in itertools.product(*(_values(p) for p in shape)):
        values = {**others, **knobs, **dict(zip([p.name for p in shape], combo, strict=True))}
        pick = _Pick(values)
        try:
            arch = space.sample(pick, **overrides)
            config = TransformerConfig.from_dict(arch)
        except ArchitectureError:
            continue
        if any(arch.get(k) != v for k, v in knobs.items()):
            continue  # a condition of the space overrode a knob of the design
        n = config.num_params()
        rel = abs(n / target - 1.0)
        key = (rel > tolerance, _unfaithfulness(design, config), rel)
        if best_key is None or key < best_key:
            best, best_key = (arch, pick.params, n, rel), key
    if best is None:
        return f"{design.title}: no shape of the space builds with its knobs"
    arch, params, n, rel = best
    if rel > tolerance:
        notes.append(f"{n} parameters, {rel:.0%} from the target {target} (the closest shape)")
    return Reference(name, arch, params, n, target, notes)


def _unfaithfulness(design: Design, c: TransformerConfig) -> float:
    """How far a shape is from the design's habits (0: its own), coarse so that size can decide.

    The sum of: the MLP ratio's distance from the design's (|log|, to 0.1), the head count's from
    its usual head width (|log2|, to 0.1), 1 for the wrong kv-head kind (0.5 for MQA where GQA is
    the habit), 1 for a single block, and an encoder-decoder's depth difference of its stacks.
    """
    d_ff = c.d_ff if isinstance(c.d_ff, int) else c.d_ff[0]
    ff = round(abs(math.log(d_ff / (design.ff_ratio * c.d_model))), 1)
    heads = max(1, c.d_model // 16) if c.d_model <= 64 else c.d_model // 32
    head = round(abs(math.log2(c.n_head / heads)), 1)
    kv = c.n_kv_head if c.n_kv_head is not None else c.n_head
    if design.kv == "gqa":  # grouped; one kv head (MQA) is the next best
        habit = 0.0 if 1 < kv < c.n_head else (0.5 if kv == 1 < c.n_head else 1.0)
    else:
        habit = float(kv != c.n_head)
    habit += c.n_layer < 2  # nobody writes a one-block model by hand
    if c.family == "encoder_decoder":
        habit += abs(c.n_layer - c.n_dec_layer)
    return round(ff + head + habit, 1)


def wanted(setting: Any, space: SearchSpace) -> list[str]:
    """The designs a ``references.designs`` setting names (``auto``: those the space samples)."""
    if setting in (None, "none"):
        return []
    if setting != "auto":
        return list(setting)
    family = next((p for p in space.params if p.name == "family"), None)
    families = list(family.choices) if family is not None else [space.fixed.get("family")]
    return [n for n, d in DESIGNS.items() if d.knobs["family"] in families]


def build(
    space: SearchSpace,
    overrides: Mapping[str, Any],
    designs: Any = "auto",
    size: Any = "median",
    tolerance: float = 0.15,
) -> tuple[list[Reference], dict[str, str]]:
    """The references of a search: ``(references, {skipped design: why})``."""
    target = median_params(space, overrides) if size == "median" else int(size)
    refs, skipped = [], {}
    for name in wanted(designs, space):
        got = express(name, space, overrides, target, tolerance)
        if isinstance(got, str):
            skipped[name] = got
        else:
            refs.append(got)
    return refs, skipped


def enqueue(study: optuna.Study, refs: Sequence[Reference], skipped: Mapping[str, str]) -> bool:
    """Enqueue ``refs`` as the first trials of a new study; never again on a resume.

    Returns:
        Whether they were enqueued (``False``: the study already has trials or references).
    """
    if STUDY_ATTR in study.user_attrs or study.get_trials(deepcopy=False):
        return False
    doc = {
        "enqueued": {
            r.name: {"n_params": r.n_params, "target": r.target, "notes": r.notes} for r in refs
        },
        "skipped": dict(skipped),
    }
    study.set_user_attr(STUDY_ATTR, doc)
    for r in refs:
        study.enqueue_trial(r.params, user_attrs={REFERENCE: r.name})
        extra = f" ({'; '.join(r.notes)})" if r.notes else ""
        log.info(
            "reference %s queued: %s, %d params (target %d)%s",
            r.title,
            TransformerConfig.from_dict(r.arch).describe(),
            r.n_params,
            r.target,
            extra,
        )
    for why in skipped.values():
        log.warning("reference left out: %s", why)
    return True


def enqueue_new(
    study: optuna.Study, space: SearchSpace, overrides: Mapping[str, Any], settings: Any
) -> bool:
    """The references of a new study, built (``build``) and enqueued (``enqueue``) in one call.

    Args:
        study: The study.
        space: The space it samples.
        overrides: ``vocab_size`` and ``max_seq_len`` (``nas.trial.run.data_fields``).
        settings: The checked ``references`` section (``designs``, ``size``, ``tolerance``).

    Returns:
        Whether they were enqueued (``False``: the study already has trials or references).
    """
    refs, skipped = build(space, overrides, settings.designs, settings.size, settings.tolerance)
    return enqueue(study, refs, skipped)


def is_reference(t: FrozenTrial | optuna.Trial) -> bool:
    """Whether ``t`` runs a reference design (a finalist repeat of one included)."""
    return REFERENCE in t.user_attrs


def duplicate_of(trial: optuna.Trial, live: Iterable[FrozenTrial]) -> int | None:
    """An earlier live trial of the same reference (two workers enqueued a new study at once)."""
    name = trial.user_attrs.get(REFERENCE)
    for t in live:
        if t.number < trial.number and t.user_attrs.get(REFERENCE) == name:
            if REPEAT_OF not in t.user_attrs:
                return t.number
    return None


# ---- the verdict ---------------------------------------------------------------------------
def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided Student-t quantile for ``df`` degrees of freedom (2.776 at df 4)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, df))


def paired_interval(diffs: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of paired differences with its t interval (``None`` bounds with fewer than 2)."""
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "se": None, "df": None, "low": None, "high": None}
    sd = statistics.stdev(diffs)
    se = sd / math.sqrt(n)
    half = t_quantile(n - 1, level) * se
    low, high = mean - half, mean + half
    return {"n": n, "mean": mean, "sd": sd, "se": se, "df": n - 1, "low": low, "high": high}


def _test_adaptability(t: FrozenTrial, floors: Mapping[str, float] | None) -> float | None:
    """Mean test score (``floors``: mean skill above each task's test floor)."""
    scores = TrialRecord.from_trial(t).test_scores
    if not scores:
        return None
    return adaptability(scores, {}, "skill" if floors else "mean", floors)


def record_floors(study: optuna.Study, suite: Any, method: str) -> dict[str, Any]:
    """Keep each task's floor (validation and test) and the adaptability method in the study."""
    doc = {
        "adaptability": method,
        "validation": suite.floors("validation"),
        "test": suite.floors("test"),
        "rule": {name: task.floor_rule for name, task in suite.tasks.items()},
    }
    if study.user_attrs.get(FLOORS_ATTR) != doc:
        study.set_user_attr(FLOORS_ATTR, doc)
    log.info(
        "task floors (validation): %s",
        ", ".join(f"{n} {f:.3f} ({doc['rule'][n]})" for n, f in doc["validation"].items()),
    )
    return doc


def verdict(
    ranked: Sequence[Any], level: float = 0.95, floors: Mapping[str, float] | None = None
) -> dict[str, Any] | None:
    """The winner against the best reference, on test, paired by seed index.

    Args:
        ranked: ``nas.study.finalists.ranked(study)``: the finalists, best validation mean first
            (``SeedScores``: ``.trial``, ``.runs``, ``.mean``).
        level: The interval's confidence level.
        floors: Per task, the test floor: the comparison is then of skill above the floors
            (``objective.adaptability=skill``); ``None``: of mean test scores.

    Returns:
        A plain dict (``text`` is the one-line verdict), or ``None`` when no reference is among
        the finalists (a study without references, or one whose references all failed).
    """
    if not ranked:
        return None
    refs = [s for s in ranked if is_reference(s.trial)]
    if not refs:
        return None
    best_ref = refs[0]  # the best reference by validation mean: chosen without test data
    winner = ranked[0]
    searched = [s for s in ranked if not is_reference(s.trial)]
    challenger = winner if winner is not best_ref else (searched[0] if searched else None)
    ref_name = best_ref.trial.user_attrs[REFERENCE]
    doc: dict[str, Any] = {
        "winner": winner.trial.number,
        "winner_is_reference": winner is best_ref,
        "reference": ref_name,
        "reference_title": title(ref_name),
        "reference_trial": best_ref.trial.number,
        "level": level,
    }
    if challenger is None:
        doc.update(searched=None, text=f"{title(ref_name)} wins; no searched candidate finished")
        return doc
    a = [_test_adaptability(t, floors) for t in challenger.runs]
    b = [_test_adaptability(t, floors) for t in best_ref.runs]
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if x is not None and y is not None]
    stats = paired_interval([x - y for x, y in pairs], level)
    doc.update(
        searched=challenger.trial.number,
        test_searched=[x for x, _ in pairs],
        test_reference=[y for _, y in pairs],
        **{f"diff_{k}": v for k, v in stats.items()},
    )
    doc["text"] = _sentence(doc, challenger is winner, title(ref_name))
    return doc


def _sentence(doc: Mapping[str, Any], searched_won: bool, ref: str) -> str:
    n, mean, low, high = doc["diff_n"], doc["diff_mean"], doc["diff_low"], doc["diff_high"]
    if n == 0:
        return f"no test scores to compare trial {doc['searched']} with {ref}"
    pct = int(round(100 * doc["level"]))
    seeds = f"on test, {n} paired seed{'s' if n > 1 else ''}"
    if low is None:
        return f"{'beats' if mean > 0 else 'trails'} {ref} by {mean:+.3f} ({seeds}, no interval)"
    interval = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] ({pct}% t interval, {seeds})"
    if not searched_won:
        if high < 0:
            return f"{ref} wins; the search found nothing better: best searched {interval}"
        return f"{ref} wins on validation; the best searched candidate ties it on test: {interval}"
    if low > 0:
        return f"beats {ref} by {interval}"
    if high < 0:
        return f"{ref} wins on test; the search's winner trails it by {interval}"
    return f"ties {ref}: {interval}"


def study_verdict(
    finalists: Sequence[Any], attrs: Mapping[str, Any], n_directions: int = 1
) -> dict[str, Any] | None:
    """The verdict of a study from its ranked ``finalists`` and its user attributes ``attrs``.

    Skill above the floors where the study recorded ``objective.adaptability=skill``
    (``record_floors``); ``None`` for a multi-objective study (a Pareto front has no single winner
    to judge) or one without a reference among its finalists.
    """
    if n_directions > 1:
        return None
    kept = attrs.get(FLOORS_ATTR) or {}
    floors = kept.get("test") if kept.get("adaptability") == "skill" else None
    return verdict(finalists, floors=floors)


def record_verdict(
    study: optuna.Study, finalists: Sequence[Any] | None = None
) -> dict[str, Any] | None:
    """Compute the study's verdict and keep it in the study (``VERDICT_ATTR``); ``None``: none.

    ``finalists``: ``ranked(study)`` when the caller has it (``None``: ranked here).
    """
    attrs = study.user_attrs
    if finalists is None:
        finalists = ranked(study)
    return keep_verdict(study, study_verdict(finalists, attrs, len(study.directions)), attrs)


def keep_verdict(
    study: optuna.Study, doc: dict[str, Any] | None, attrs: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Store the verdict ``doc`` in ``study`` unless its attributes ``attrs`` already hold it."""
    if doc is not None and attrs.get(VERDICT_ATTR) != doc:
        study.set_user_attr(VERDICT_ATTR, doc)
    return doc
