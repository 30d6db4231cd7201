"""Hybrid retrieval: dense paragraph vectors + dense summary vectors + BM25 on Kiwi morphemes.

Fusion is a convex combination of per-query min-max normalised scores over the union of each
retriever's candidates, with every candidate scored exactly by every retriever. Rank fusion
(RRF) throws the score gaps away: on Korean QA a confident BM25 match is outvoted by a weak
dense ranking and RRF lands below BM25 alone, while the score combination keeps that
confidence (benchmarks/retrieval_korquad.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from polisum.config import FusionWeights
from polisum.embed import Embedder
from polisum.index.bm25 import BM25Index
from polisum.index.vectors import VectorIndex
from polisum.text import terms


@dataclass(frozen=True)
class ScoredChunk:
    id: int
    score: float
    scores: dict[str, float]


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[ScoredChunk]: ...


def _minmax(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros_like(x)
    lo, hi = x[finite].min(), x[finite].max()
    out = np.zeros_like(x)
    if hi > lo:
        out[finite] = (x[finite] - lo) / (hi - lo)
    elif hi > 0:
        out[finite] = 1.0
    return out


class HybridRetriever:
    def __init__(
        self,
        embedder: Embedder,
        paragraphs: VectorIndex,
        summaries: VectorIndex | None,
        bm25: BM25Index,
        weights: FusionWeights | None = None,
        candidates: int = 100,
    ) -> None:
        self.embedder = embedder
        self.paragraphs = paragraphs
        self.summaries = summaries
        self.bm25 = bm25
        self.weights = weights or FusionWeights()
        self.candidates = candidates

    def search(
        self, query: str, k: int, weights: FusionWeights | None = None
    ) -> list[ScoredChunk]:
        w = weights or self.weights
        n = max(self.candidates, k)
        qv = self.embedder.embed_queries([query])[0] if (w.dense or w.summary) else None
        pools: list[np.ndarray] = []

        bm25_all = self.bm25.scores(terms(query)) if w.bm25 else None
        if bm25_all is not None and len(bm25_all):
            top = min(n, len(bm25_all))
            best = np.argpartition(-bm25_all, top - 1)[:top]
            pools.append(self.bm25.ids[best[bm25_all[best] > 0]])
        if qv is not None and w.dense:
            pools.append(self.paragraphs.search(qv, n)[0])
        use_summaries = qv is not None and w.summary and self.summaries is not None
        if use_summaries:
            pools.append(self.summaries.search(qv, n)[0])
        if not pools:
            return []
        cand = np.unique(np.concatenate(pools))
        if len(cand) == 0:
            return []

        signals: dict[str, np.ndarray] = {}
        fused = np.zeros(len(cand), dtype=np.float32)
        if bm25_all is not None:
            rows = np.searchsorted(self.bm25.ids, cand)
            rows = np.clip(rows, 0, max(len(self.bm25.ids) - 1, 0))
            valid = self.bm25.ids[rows] == cand if len(self.bm25.ids) else np.zeros(len(cand), bool)
            signals["bm25"] = np.where(valid, bm25_all[rows] if len(bm25_all) else 0, 0).astype(
                np.float32
            )
            fused += w.bm25 * _minmax(signals["bm25"])
        if qv is not None and w.dense:
            signals["dense"] = self.paragraphs.scores_for(qv, cand)
            fused += w.dense * _minmax(signals["dense"])
        if use_summaries:
            signals["summary"] = self.summaries.scores_for(qv, cand)
            fused += w.summary * _minmax(signals["summary"])

        order = np.argsort(-fused, kind="stable")[:k]
        return [
            ScoredChunk(
                id=int(cand[i]),
                score=float(fused[i]),
                scores={
                    name: float(v[i]) if np.isfinite(v[i]) else float("nan")
                    for name, v in signals.items()
                },
            )
            for i in order
        ]
