"""Fusion: one score per candidate from the per-retriever scores (a component of its own).

Candidates are the union of every retriever's top n, each scored exactly by every retriever
(see polisum.index.backend). Two fusions:

* :class:`ScoreFusion` (the default): a weighted sum of per-query normalised scores. Standard
  scores over the pool (``norm="zscore"``) rather than min-max: min-max gives every retriever
  the full [0, 1] range on every query, however little its scores separate the candidates;
  standard scores measure each gap against that retriever's own spread. BM25 is read on the
  chunk and on its context window (``WINDOW``, polisum.index.bm25.context_windows), half each.
* :class:`RankFusion`: weighted reciprocal-rank fusion (``fusion = "rrf"``). It throws the
  score gaps away: a confident BM25 match is outvoted by a weak dense ranking, and it ranked
  below the default on every development corpus.

The default weights (polisum.config.FusionWeights) were chosen on the TUNE splits of three
development corpora together (KorQuAD paragraphs, Korean document pages, PubMedQA abstracts;
benchmarks/retrieval_suite.py --tune): fixed weights tuned on one corpus lose to a single
retriever on another (issue 19).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from polisum.config import FusionWeights
from polisum.index.backend import SIGNALS, WINDOW, Candidates

__all__ = [
    "NORMALISERS",
    "Fusion",
    "RankFusion",
    "ScoreFusion",
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
    """Scores mapped to [0, 1] over the pool (absent scores: 0)."""
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
    """Standard scores over the candidate pool (absent scores count as the pool minimum; a
    constant signal says nothing: all 0)."""
    finite = np.isfinite(x)
    out = np.zeros(x.shape, dtype=np.float32)
    if not finite.any():
        return out
    vals = np.where(finite, x, x[finite].min()).astype(np.float64)
    sd = vals.std()
    return ((vals - vals.mean()) / sd).astype(np.float32) if sd > 0 else out


NORMALISERS = {"minmax": minmax, "zscore": zscore}


def _weighted(weights: FusionWeights) -> tuple[str, ...]:
    return tuple(name for name in SIGNALS if getattr(weights, name))


@dataclass(frozen=True)
class ScoreFusion:
    """Weighted sum of each retriever's normalised scores (the default).

    When the pool has context-window BM25 scores (``WINDOW``), ``window_share`` of the BM25
    weight goes to them and the rest to the chunk's own BM25: a page or a passage of a long
    file whose chunks share the query's words between them counts as a match. Without them the
    chunk's BM25 takes the whole weight."""

    weights: FusionWeights = field(default_factory=FusionWeights)
    norm: Literal["zscore", "minmax"] = "zscore"
    window_share: float = 0.5
    name: str = "score"

    def __post_init__(self) -> None:
        if self.norm not in NORMALISERS:
            raise ValueError(f"unknown normalisation {self.norm!r} (expected 'zscore' or 'minmax')")
        if not 0.0 <= self.window_share <= 1.0:
            raise ValueError(f"window_share must be in [0, 1], not {self.window_share}")

    @property
    def signals(self) -> tuple[str, ...]:
        used = _weighted(self.weights)
        return (*used, WINDOW) if "bm25" in used and self.window_share else used

    def fuse(self, cands: Candidates) -> np.ndarray:
        normalise = NORMALISERS[self.norm]
        fused = np.zeros(len(cands.ids), dtype=np.float32)
        for name in SIGNALS:
            w = getattr(self.weights, name)
            if not w or name not in cands.signals:
                continue
            if name == "bm25" and self.window_share and WINDOW in cands.signals:
                fused += w * self.window_share * normalise(cands.signals[WINDOW])
                w *= 1 - self.window_share
            fused += w * normalise(cands.signals[name])
        return fused


@dataclass(frozen=True)
class RankFusion:
    """Weighted reciprocal-rank fusion (Cormack et al., 2009) over dense, summary and chunk
    BM25 ranks."""

    weights: FusionWeights = field(default_factory=FusionWeights)
    k: int = 60
    name: str = "rrf"

    @property
    def signals(self) -> tuple[str, ...]:
        return _weighted(self.weights)

    def fuse(self, cands: Candidates) -> np.ndarray:
        fused = np.zeros(len(cands.ids), dtype=np.float64)
        for name in SIGNALS:
            w = getattr(self.weights, name)
            if not w or name not in cands.signals:
                continue
            values = np.nan_to_num(cands.signals[name], nan=-np.inf)
            ranks = np.empty(len(values), dtype=np.int64)
            ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
            fused += w / (self.k + ranks)
        return fused.astype(np.float32)


def make_fusion(kind: str = "score", weights: FusionWeights | None = None) -> Fusion:
    """The fusion named by the ``fusion`` setting, with ``weights``."""
    weights = weights or FusionWeights()
    if kind == "score":
        return ScoreFusion(weights)
    if kind == "rrf":
        return RankFusion(weights)
    raise ValueError(f"unknown fusion '{kind}' (expected 'score' or 'rrf')")
