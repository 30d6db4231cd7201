"""Ranking metrics over ranked id lists and gold sets: R@k, MRR@k, nDCG@k.

Each function scores one query; average over queries yourself (or use ``retrieval_metrics``)
so per-query values stay available for bootstrap confidence intervals and histograms.
Gold is a set of relevant ids with binary relevance; duplicates in a ranking count once (the
first occurrence), so a retriever cannot score twice by returning the same document twice.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

__all__ = [
    "first_relevant_rank",
    "hit_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "retrieval_metrics",
]


def _dedupe(ranked: Iterable[str], k: int | None = None) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in ranked:
        if item not in seen:
            seen.add(item)
            out.append(item)
            if k is not None and len(out) == k:
                break
    return out


def _check(gold: Collection[str], k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not gold:
        raise ValueError("gold set is empty: a query needs at least one relevant id to be scored")


def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """Share of the gold ids found in the top k.

    With a single gold id this is the usual hit rate ("R@k" in DPR-style tables)."""
    _check(gold, k)
    gold_set = set(gold)
    return len(gold_set.intersection(_dedupe(ranked, k))) / len(gold_set)


def hit_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """1.0 when any gold id is in the top k (success@k), else 0.0."""
    _check(gold, k)
    return 1.0 if set(gold).intersection(_dedupe(ranked, k)) else 0.0


def first_relevant_rank(ranked: Sequence[str], gold: Collection[str]) -> int | None:
    """1-based rank of the first gold id, or None when none is retrieved."""
    gold_set = set(gold)
    for rank, item in enumerate(_dedupe(ranked), 1):
        if item in gold_set:
            return rank
    return None


def mrr_at_k(ranked: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """Reciprocal rank of the first gold id within the top k, 0.0 when it is not there."""
    _check(gold, k)
    rank = first_relevant_rank(_dedupe(ranked, k), gold)
    return 0.0 if rank is None else 1.0 / rank


def ndcg_at_k(ranked: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k (gain 1 per gold id, log2 discount, ideal = all gold first)."""
    _check(gold, k)
    gold_set = set(gold)
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, item in enumerate(_dedupe(ranked, k), 1)
        if item in gold_set
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold_set), k) + 1))
    return dcg / ideal


def retrieval_metrics(
    rankings: Sequence[Sequence[str]],
    golds: Sequence[Collection[str]],
    ks: Sequence[int] = (1, 5, 10),
    cutoff: int = 10,
) -> dict[str, list[float]]:
    """Per-query R@k for each k, MRR@cutoff and nDCG@cutoff, keyed like ``"R@5"``."""
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings but {len(golds)} gold sets")
    out: dict[str, list[float]] = {f"R@{k}": [] for k in ks}
    out[f"MRR@{cutoff}"] = []
    out[f"nDCG@{cutoff}"] = []
    for ranked, gold in zip(rankings, golds, strict=True):
        for k in ks:
            out[f"R@{k}"].append(recall_at_k(ranked, gold, k))
        out[f"MRR@{cutoff}"].append(mrr_at_k(ranked, gold, cutoff))
        out[f"nDCG@{cutoff}"].append(ndcg_at_k(ranked, gold, cutoff))
    return out
