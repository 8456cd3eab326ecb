"""The statistics of a validity study: seed summaries, pooled noise, rank agreement.

Pure functions of numbers (no study, no training), so that anything that compares two rankings
of the same architectures (``nas.validity.report.inherited_vs_standalone``, the supernet rank
benchmark) uses the same figures as ``validity.json``.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from nas.study.references import t_quantile  # noqa: F401  (the one Student-t of the package)

BOOTSTRAP = 2000  # resamples behind the rank-agreement intervals


def json_number(x: Any) -> float | None:
    """JSON-safe number: NaN and infinities become ``None``."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def summarise(values: list[float | None]) -> dict[str, Any]:
    """``values`` (one per seed; ``None`` for a failed run), their mean, sd (n-1) and count."""
    ok = [v for v in values if v is not None and not math.isnan(v)]
    return {
        "values": values,
        "mean": statistics.fmean(ok) if ok else None,
        "sd": statistics.stdev(ok) if len(ok) >= 2 else None,
        "n": len(ok),
    }


def pooled_sd(sds: list[float | None]) -> float | None:
    """The root mean square of per-architecture seed sds (each over the same number of seeds)."""
    ok = [s for s in sds if s is not None]
    return math.sqrt(statistics.fmean(s * s for s in ok)) if ok else None


def rank_agreement(
    x: list[float], y: list[float], resamples: int = BOOTSTRAP, level: float = 0.95
) -> dict[str, Any]:
    """Kendall tau and Spearman rho between two scores of the same architectures.

    With p-values and percentile bootstrap intervals (``resamples`` draws of the architectures
    with replacement, seeded; a draw whose ranks are all tied is left out): over 8 architectures
    tau's standard error is near 0.3, and the interval says so.
    """
    from scipy import stats

    if len(x) < 2:
        return {"n": len(x), "kendall_tau": None, "kendall_p": None, "spearman": None}
    tau = stats.kendalltau(x, y)
    rho = stats.spearmanr(x, y)
    taus, rhos = [], []
    rng = random.Random(0)
    for _ in range(resamples if len(x) >= 3 else 0):
        pick = [rng.randrange(len(x)) for _ in x]
        a, b = [x[i] for i in pick], [y[i] for i in pick]
        if len(set(a)) < 2 or len(set(b)) < 2:
            continue  # no ranking to agree on
        taus.append(stats.kendalltau(a, b).statistic)
        rhos.append(stats.spearmanr(a, b).statistic)
    return {
        "n": len(x),
        "kendall_tau": json_number(tau.statistic),
        "kendall_p": json_number(tau.pvalue),
        "kendall_tau_ci": percentiles(taus, level),
        "spearman": json_number(rho.statistic),
        "spearman_p": json_number(rho.pvalue),
        "spearman_ci": percentiles(rhos, level),
        "bootstrap": len(taus),
    }


def percentiles(values: list[float], level: float) -> list[float] | None:
    """The central ``level`` interval of ``values`` (numpy's linear percentiles)."""
    import numpy as np

    ok = [v for v in values if v is not None and not math.isnan(v)]
    if not ok:
        return None
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(ok, tail)), float(np.percentile(ok, 100 - tail))]


def median(values: list[float | None]) -> float | None:
    """The median of the values present (``None`` when there is none)."""
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def difference(a: float | None, b: float | None) -> float | None:
    """``a - b``, or ``None`` when either is missing."""
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when ``a`` is missing or ``b`` is zero or missing."""
    return None if a is None or not b else a / b
