"""Hybrid retrieval: dense paragraph vectors + dense summary vectors + BM25 on Kiwi morphemes.

Fusion is a convex combination of per-query min-max normalised scores over the union of each
retriever's candidates, with every candidate scored exactly by every retriever. Rank fusion
(RRF) throws the score gaps away: on Korean QA a confident BM25 match is outvoted by a weak
dense ranking and RRF lands below BM25 alone, while the score combination keeps that
confidence (benchmarks/retrieval_korquad.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from polisum.config import FusionWeights
from polisum.embed import Embedder
from polisum.index.bm25 import BM25Index
from polisum.index.vectors import VectorIndex
from polisum.text import terms

SIGNALS = ("dense", "summary", "bm25")


@dataclass(frozen=True)
class ScoredChunk:
    id: int
    score: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Candidates:
    """Chunk ids gathered from every retriever, each scored exactly by every retriever."""

    ids: np.ndarray
    signals: dict[str, np.ndarray]


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[ScoredChunk]: ...


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


class HybridRetriever:
    def __init__(
        self,
        embedder: Embedder,
        paragraphs: VectorIndex,
        summaries: VectorIndex | None,
        bm25: BM25Index,
        weights: FusionWeights | None = None,
        candidates: int = 100,
        fusion: Literal["score", "rrf"] = "score",
    ) -> None:
        self.embedder = embedder
        self.paragraphs = paragraphs
        self.summaries = summaries
        self.bm25 = bm25
        self.weights = weights or FusionWeights()
        self.n_candidates = candidates
        self.fusion = fusion

    def candidates(
        self, query: str, n: int | None = None, use: tuple[str, ...] = SIGNALS
    ) -> Candidates:
        n = n or self.n_candidates
        want_dense = "dense" in use
        want_summary = "summary" in use and self.summaries is not None and len(self.summaries)
        qv = self.embedder.embed_queries([query])[0] if (want_dense or want_summary) else None
        pools: list[np.ndarray] = []
        bm25_all = None
        if "bm25" in use and len(self.bm25):
            bm25_all = self.bm25.scores(terms(query))
            top = min(n, len(bm25_all))
            best = np.argpartition(-bm25_all, top - 1)[:top]
            pools.append(self.bm25.ids[best[bm25_all[best] > 0]])
        if want_dense:
            pools.append(self.paragraphs.search(qv, n)[0])
        if want_summary:
            pools.append(self.summaries.search(qv, n)[0])
        ids = np.unique(np.concatenate(pools)) if pools else np.zeros(0, np.int64)
        signals: dict[str, np.ndarray] = {}
        if len(ids) == 0:
            return Candidates(ids, signals)
        if bm25_all is not None:
            rows = np.clip(np.searchsorted(self.bm25.ids, ids), 0, len(self.bm25.ids) - 1)
            signals["bm25"] = np.where(self.bm25.ids[rows] == ids, bm25_all[rows], 0.0).astype(
                np.float32
            )
        if want_dense:
            signals["dense"] = self.paragraphs.scores_for(qv, ids)
        if want_summary:
            signals["summary"] = self.summaries.scores_for(qv, ids)
        return Candidates(ids, signals)

    def rank(
        self,
        cands: Candidates,
        k: int,
        weights: FusionWeights | None = None,
        fusion: str | None = None,
    ) -> list[ScoredChunk]:
        w = weights or self.weights
        fused = (fuse_rrf if (fusion or self.fusion) == "rrf" else fuse_scores)(cands, w)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            ScoredChunk(
                id=int(cands.ids[i]),
                score=float(fused[i]),
                scores={name: float(v[i]) for name, v in cands.signals.items()},
            )
            for i in order
        ]

    def search(self, query: str, k: int, weights: FusionWeights | None = None) -> list[ScoredChunk]:
        w = weights or self.weights
        use = tuple(name for name in SIGNALS if getattr(w, name))
        return self.rank(self.candidates(query, max(self.n_candidates, k), use), k, w)
