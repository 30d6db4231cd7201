"""Fusion: one score per candidate from the per-retriever scores (a component of its own).

Candidates are the union of every retriever's top n, each scored exactly by every retriever
(see polisum.index.backend). The default is a convex combination of per-query min-max
normalised scores: rank fusion (RRF) throws the score gaps away, and on Korean QA a confident
BM25 match is then outvoted by a weak dense ranking (benchmarks/retrieval_korquad.py measures
both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from polisum.config import FusionWeights
from polisum.index.backend import SIGNALS, Candidates

__all__ = [
    "NORMALISERS",
    "Fusion",
    "RankFusion",
    "ScoreFusion",
    "fuse_rrf",
    "fuse_scores",
    "make_fusion",
    "minmax",
    "zscore",
]


class Fusion(Protocol):
    """Fused scores (higher is better) aligned with ``cands.ids``; ``signals`` are the
    retrievers it reads (the others need not be computed)."""

    name: str
    signals: tuple[str, ...]

    def fuse(self, cands: Candidates) -> np.ndarray: ...


def minmax(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    out = np.zeros(x.shape, dtype=np.float32)
    if not finite.any():
        return out
    lo, hi = x[finite].min(), x[finite].max()
    if hi > lo:
        out[finite] = (x[finite] - lo) / (hi - lo)
    elif hi > 0:
        out[finite] = 1.0
    return out


def zscore(x: np.ndarray) -> np.ndarray:
    """Standard scores over the candidate pool (absent scores count as the pool minimum).
    Kept as an alternative for the benchmarks: on KorQuAD DEV it ties or trails min-max."""
    finite = np.isfinite(x)
    out = np.zeros(x.shape, dtype=np.float32)
    if not finite.any():
        return out
    vals = np.where(finite, x, x[finite].min()).astype(np.float64)
    sd = vals.std()
    return ((vals - vals.mean()) / sd).astype(np.float32) if sd > 0 else out


NORMALISERS = {"minmax": minmax, "zscore": zscore}


def fuse_scores(cands: Candidates, weights: FusionWeights, norm: str = "minmax") -> np.ndarray:
    normalise = NORMALISERS[norm]
    fused = np.zeros(len(cands.ids), dtype=np.float32)
    for name in SIGNALS:
        w = getattr(weights, name)
        if w and name in cands.signals:
            fused += w * normalise(cands.signals[name])
    return fused


def fuse_rrf(cands: Candidates, weights: FusionWeights, k: int = 60) -> np.ndarray:
    """Weighted reciprocal-rank fusion, kept for comparison in the benchmarks."""
    fused = np.zeros(len(cands.ids), dtype=np.float64)
    for name in SIGNALS:
        w = getattr(weights, name)
        if not w or name not in cands.signals:
            continue
        values = np.nan_to_num(cands.signals[name], nan=-np.inf)
        ranks = np.empty(len(values), dtype=np.int64)
        ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
        fused += w / (k + ranks)
    return fused.astype(np.float32)


def _used(weights: FusionWeights) -> tuple[str, ...]:
    return tuple(name for name in SIGNALS if getattr(weights, name))


@dataclass(frozen=True)
class ScoreFusion:
    """Weighted sum of per-query normalised scores (the default)."""

    weights: FusionWeights = field(default_factory=FusionWeights)
    norm: str = "minmax"
    name: str = "score"

    @property
    def signals(self) -> tuple[str, ...]:
        return _used(self.weights)

    def fuse(self, cands: Candidates) -> np.ndarray:
        return fuse_scores(cands, self.weights, self.norm)


@dataclass(frozen=True)
class RankFusion:
    """Weighted reciprocal-rank fusion."""

    weights: FusionWeights = field(default_factory=FusionWeights)
    k: int = 60
    name: str = "rrf"

    @property
    def signals(self) -> tuple[str, ...]:
        return _used(self.weights)

    def fuse(self, cands: Candidates) -> np.ndarray:
        return fuse_rrf(cands, self.weights, self.k)


def make_fusion(kind: str = "score", weights: FusionWeights | None = None) -> Fusion:
    weights = weights or FusionWeights()
    if kind == "score":
        return ScoreFusion(weights)
    if kind == "rrf":
        return RankFusion(weights)
    raise ValueError(f"unknown fusion '{kind}' (expected 'score' or 'rrf')")
