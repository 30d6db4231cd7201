"""Confidence intervals for mean per-item scores: scipy's bootstrap, made safe for edge cases."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["MetricSummary", "bootstrap_ci"]


@dataclass(frozen=True)
class MetricSummary:
    """Mean of per-item scores and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    method: str  # which interval was computed: "BCa", "percentile", "degenerate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> MetricSummary:
    """Mean and BCa bootstrap interval (``scipy.stats.bootstrap``) of ``values``.

    BCa is undefined when every value is the same (no spread to resample) or when there is a
    single item; the interval is then the point itself, marked ``degenerate`` so a report can say
    so rather than print a confident-looking band. When BCa fails numerically (it needs the
    jackknife, which can be NaN for tiny, skewed samples), the percentile interval is used.
    """
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap_ci needs a non-empty 1-D sequence of scores")
    if not np.all(np.isfinite(data)):
        raise ValueError("scores contain NaN or infinity")
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return MetricSummary(mean, mean, mean, int(data.size), "degenerate")
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on degenerate BCa; we fall back below
            res = bootstrap(
                (data,),
                np.mean,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return MetricSummary(mean, low, high, int(data.size), method)
    return MetricSummary(mean, mean, mean, int(data.size), "degenerate")
