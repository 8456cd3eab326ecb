"""The statistics of a validity study: seed summaries, pooled noise, rank agreement.

Pure functions of numbers (no study, no training), so that anything that compares two rankings
of the same architectures (``nas.validity.report.inherited_vs_standalone``, the supernet rank
benchmark) uses the same figures as ``validity.json``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any


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


def rank_agreement(x: list[float], y: list[float]) -> dict[str, Any]:
    """Kendall tau and Spearman rho (with p-values) between two scores of the same architectures."""
    from scipy import stats

    if len(x) < 2:
        return {"n": len(x), "kendall_tau": None, "kendall_p": None, "spearman": None}
    tau = stats.kendalltau(x, y)
    rho = stats.spearmanr(x, y)
    return {
        "n": len(x),
        "kendall_tau": json_number(tau.statistic),
        "kendall_p": json_number(tau.pvalue),
        "spearman": json_number(rho.statistic),
        "spearman_p": json_number(rho.pvalue),
    }


def difference(a: float | None, b: float | None) -> float | None:
    """``a - b``, or ``None`` when either is missing."""
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when ``a`` is missing or ``b`` is zero or missing."""
    return None if a is None or not b else a / b
