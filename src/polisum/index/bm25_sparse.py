"""BM25 as a sparse inner product: the weighting the Milvus backend stores and queries with.

polisum's BM25 (polisum.index.bm25, bm25s "bm25+", k1=1.2, b=0.75) scores a chunk d for a query
q as::

    score(q, d) = sum over query terms t present in d of  idf(t) * sat(tf(t, d), |d|)
    idf(t)      = log((N + 1) / df(t))
    sat(tf, dl) = (k1 + 1) * tf / (k1 * (1 - b + b * dl / avgdl) + tf)

(the delta of BM25+ cancels out, see BM25Index.scores). That is an inner product of two sparse
vectors over term ids: the chunk's ``sat`` weights (document side, stored with the chunk) and
the query's ``count * idf`` weights (query side, from document frequencies the backend keeps
per generation). Milvus's own BM25 function cannot stand in for it: it tokenizes with its own
analyzers (not Kiwi morphemes), uses Lucene's idf, and Milvus Lite keeps IDF per segment.

The Milvus backend weights two corpora this way, with statistics of their own: the chunks,
and their context windows (polisum.index.bm25.context_windows, polisum.index.milvus_schema.
LEXICAL).

Document weights depend on one global statistic, avgdl, which drifts as documents come and go.
A stored row records the avgdl it was weighted with; the candidates' exact scores are
recomputed at query time from the term frequencies recovered from those weights
(:func:`recover_tf`) and the current avgdl, so scores are exact whatever the drift. Only the
pool of BM25 candidates (the top n by stored weights) can differ from the local backend's, and
rows whose avgdl is more than :data:`AVGDL_TOLERANCE` away from the current one are re-weighted
at publish (polisum.index.milvus_publish).

No library does this: bm25s has no sparse-vector export with a separable query side, and
Milvus's BM25 function is not the same BM25.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from polisum.index.bm25 import K1, B

# Re-weight rows whose avgdl differs from the current one by more than this (relative). Scores
# stay exact regardless; this bounds how far the BM25 candidate pool can drift from the local
# backend's (a 2% avgdl change moves a chunk's weights by at most ~1.5%).
AVGDL_TOLERANCE = 0.02


def avgdl(total_terms: int, chunks: int) -> float:
    return total_terms / chunks if chunks else 0.0


def idf(df: np.ndarray | Sequence[int], chunks: int) -> np.ndarray:
    """bm25s's BM25+ idf, rounded to float32 as bm25s stores it."""
    df = np.asarray(df, dtype=np.float64)
    return np.log((chunks + 1) / df).astype(np.float32)


def _norm(dl: np.ndarray | float, mean: float | np.ndarray) -> np.ndarray | float:
    return 1 - B + B * np.asarray(dl, np.float64) / np.asarray(mean, np.float64)


def saturation(tf: np.ndarray, dl: np.ndarray | float, mean: float | np.ndarray) -> np.ndarray:
    """The document-side weight of a term occurring ``tf`` times in a chunk of ``dl`` terms."""
    tf = np.asarray(tf, np.float64)
    return (K1 + 1) * tf / (K1 * _norm(dl, mean) + tf)


def recover_tf(weights: np.ndarray, dl: np.ndarray | float, mean: float | np.ndarray) -> np.ndarray:
    """The term frequencies that stored ``weights`` (float32) were computed from with ``mean``
    as avgdl: the inverse of :func:`saturation`, rounded (frequencies are whole numbers)."""
    w = np.asarray(weights, np.float64)
    return np.rint(w * K1 * _norm(dl, mean) / (K1 + 1 - w))


def document_vector(
    terms: Sequence[str], term_ids: Mapping[str, int], mean: float
) -> tuple[dict[int, float], bool]:
    """A chunk's sparse vector (term id → weight, float32 values) and whether its term
    frequencies can be recovered exactly from it."""
    if not terms:
        return {}, True
    counts = Counter(terms)
    ids = np.fromiter((term_ids[t] for t in counts), np.int64, len(counts))
    tf = np.fromiter(counts.values(), np.float64, len(counts))
    weights = saturation(tf, len(terms), mean).astype(np.float32)
    exact = bool((recover_tf(weights, len(terms), mean) == tf).all())
    return dict(zip(ids.tolist(), weights.tolist(), strict=True)), exact


def query_counts(terms: Iterable[str]) -> Counter[str]:
    """How often each term occurs in the query (bm25s adds a repeated term's score again)."""
    return Counter(terms)


def query_vector(
    counts: Mapping[str, int], vocabulary: Mapping[str, tuple[int, int]], chunks: int
) -> dict[int, float]:
    """The query side: term id → count * idf, over the query terms the index knows
    (``vocabulary``: term → (term id, document frequency))."""
    known = [(vocabulary[t], n) for t, n in counts.items() if t in vocabulary]
    if not known or not chunks:
        return {}
    weights = idf([df for (_, df), _ in known], chunks).astype(np.float64)
    return {tid: float(n * w) for ((tid, _), n), w in zip(known, weights, strict=True)}


def exact_scores(
    query: Mapping[int, float],
    documents: Sequence[Mapping[int, float]],
    dl: np.ndarray,
    weighted_with: np.ndarray,
    mean: float,
) -> np.ndarray:
    """BM25 of each document (a stored sparse vector weighted with avgdl ``weighted_with[i]``)
    for ``query`` (term id → count * idf) under the current avgdl ``mean``: the frequencies are
    recovered from the stored weights and saturated again in float64, as bm25s does, so the
    score is the local backend's whatever avgdl the row was weighted with."""
    out = np.zeros(len(documents), np.float32)
    if not query or mean <= 0:
        return out
    for i, doc in enumerate(documents):
        shared = [t for t in query if t in doc]
        if not shared:
            continue
        stored = np.fromiter((doc[t] for t in shared), np.float64, len(shared))
        sat = saturation(recover_tf(stored, dl[i], weighted_with[i]), dl[i], mean)
        if weighted_with[i] == mean:
            # Term frequencies are recovered exactly from float32 weights up to a few thousand
            # occurrences of a term in a chunk; a row beyond (document_vector's ``exact`` is
            # False) is re-weighted whenever avgdl changes: its weights are today's saturation.
            lost = sat.astype(np.float32) != stored.astype(np.float32)
            sat[lost] = stored[lost]
        q = np.fromiter((query[t] for t in shared), np.float64, len(shared))
        # bm25s keeps idf * saturation as float32 per (chunk, term), then sums in float32
        out[i] = (q * sat).astype(np.float32).sum(dtype=np.float32)
    return out
