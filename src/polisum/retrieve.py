"""Hybrid retrieval: dense paragraph vectors + dense summary vectors + BM25 on Kiwi morphemes.

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
from polisum.fusion import Fusion, ScoreFusion, fuse_rrf, fuse_scores, make_fusion
from polisum.index.backend import SIGNALS, Candidates, IndexBackend, IndexView, Query, SearchFilter
from polisum.text import terms
from polisum.types import Hit

__all__ = [
    "SIGNALS",
    "Candidates",
    "HybridRetriever",
    "ScoredChunk",
    "fuse_rrf",
    "fuse_scores",
]


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

    def query(self, text: str, use: tuple[str, ...] = SIGNALS) -> Query:
        wants_vector = "dense" in use or "summary" in use
        vector = self.embedder.embed_queries([text])[0] if wants_vector else None
        return Query(text, vector, terms(text) if "bm25" in use else [])

    def candidates(
        self,
        query: str,
        n: int | None = None,
        use: tuple[str, ...] = SIGNALS,
        where: SearchFilter | None = None,
    ) -> Candidates:
        with self.backend.view() as view:
            return view.candidates(self.query(query, use), n or self.n_candidates, use, where)

    def rank(
        self,
        cands: Candidates,
        k: int,
        weights: FusionWeights | None = None,
        fusion: str | None = None,
    ) -> list[ScoredChunk]:
        """The k best of ``cands``; ``weights``/``fusion`` override the configured fusion (the
        benchmarks compare settings on the same candidates)."""
        fuser = self.fusion
        if weights is not None or fusion is not None:
            fuser = make_fusion(fusion or self.fusion.name, weights or self.weights)
        fused = fuser.fuse(cands)
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
        use = self.fusion.signals if weights is None else _used(weights)
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


def _used(weights: FusionWeights) -> tuple[str, ...]:
    return tuple(name for name in SIGNALS if getattr(weights, name))


def _hydrate(view: IndexView, scored: list[ScoredChunk]) -> list[Hit]:
    rows = view.chunk_rows(s.id for s in scored)
    return [Hit(score=s.score, scores=s.scores, **rows[s.id]) for s in scored if s.id in rows]
