"""Hybrid retrieval: dense paragraph vectors + dense summary vectors + BM25 on Kiwi terms (of the
chunk, and of its context window).

The retriever computes the query once (embedding and BM25 terms), asks the backend for
candidates (the union of each retriever's top n, each scored by every retriever), fuses the
scores with the fusion component (polisum.fusion) and hydrates the best ones, all inside one
backend view: the hits come from one complete generation of the index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polisum.config import FusionWeights
from polisum.embed import Embedder
from polisum.fusion import Fusion, ScoreFusion, make_fusion
from polisum.index.backend import (
    ALL_SIGNALS,
    SIGNALS,
    WINDOW,
    Candidates,
    IndexBackend,
    IndexView,
    Query,
    SearchFilter,
)
from polisum.text import index_terms
from polisum.types import Hit

__all__ = ["ALL_SIGNALS", "SIGNALS", "WINDOW", "Candidates", "HybridRetriever", "ScoredChunk"]


@dataclass(frozen=True)
class ScoredChunk:
    id: int
    score: float
    scores: dict[str, float]


class HybridRetriever:
    def __init__(
        self,
        embedder: Embedder,
        backend: IndexBackend,
        fusion: Fusion | None = None,
        candidates: int = 100,
    ) -> None:
        self.embedder = embedder
        self.backend = backend
        self.fusion = fusion or ScoreFusion()
        self.n_candidates = candidates

    @property
    def weights(self) -> FusionWeights:
        return getattr(self.fusion, "weights", FusionWeights())

    def query(
        self, text: str, use: tuple[str, ...] = ALL_SIGNALS, vector: np.ndarray | None = None
    ) -> Query:
        """The query as the backends take it; ``vector``: its embedding when the caller has it
        (benchmarks embed their queries in batches)."""
        if vector is None and ("dense" in use or "summary" in use):
            vector = self.embedder.embed_queries([text])[0]
        lexical = "bm25" in use or WINDOW in use
        return Query(text, vector, index_terms(text) if lexical else [])

    def candidates(
        self,
        query: str,
        n: int | None = None,
        use: tuple[str, ...] = ALL_SIGNALS,
        where: SearchFilter | None = None,
        query_vector: np.ndarray | None = None,
    ) -> Candidates:
        """Each used retriever's top ``n`` for ``query``, every one scored by every used
        retriever (for benchmarks; ``hits`` is the search)."""
        q = self.query(query, use, query_vector)
        with self.backend.view() as view:
            return view.candidates(q, n or self.n_candidates, use, where)

    def rank(
        self,
        cands: Candidates,
        k: int,
        weights: FusionWeights | None = None,
        fusion: str | None = None,
    ) -> list[ScoredChunk]:
        """The k best of ``cands``; ``weights``/``fusion`` override the configured fusion (the
        benchmarks compare settings on the same candidates)."""
        fused = self._fusion(weights, fusion).fuse(cands)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            ScoredChunk(
                id=int(cands.ids[i]),
                score=float(fused[i]),
                scores={name: float(v[i]) for name, v in cands.signals.items()},
            )
            for i in order
        ]

    def _fusion(self, weights: FusionWeights | None, fusion: str | None = None) -> Fusion:
        if weights is None and fusion is None:
            return self.fusion
        return make_fusion(fusion or self.fusion.name, weights or self.weights)

    def search(self, query: str, k: int, weights: FusionWeights | None = None) -> list[ScoredChunk]:
        use = self._fusion(weights).signals
        n = max(self.n_candidates, k)
        return self.rank(self.candidates(query, n, use), k, weights)

    def hits(self, query: str, k: int, where: SearchFilter | None = None) -> list[Hit]:
        """The k best chunks as hits, candidates and rows from one generation."""
        use = self.fusion.signals
        with self.backend.view() as view:
            if len(view) == 0:
                return []
            q = self.query(query, use)
            scored = self.rank(view.candidates(q, max(self.n_candidates, k), use, where), k)
            return _hydrate(view, scored)


def _hydrate(view: IndexView, scored: list[ScoredChunk]) -> list[Hit]:
    rows = view.chunk_rows(s.id for s in scored)
    return [Hit(score=s.score, scores=s.scores, **rows[s.id]) for s in scored if s.id in rows]
