"""Optional second retrieval stage: a reranker re-scores the fused top candidates with the
query and passage read together (a cross-encoder), which first-stage retrievers cannot do.

Off by default: the package runs offline on a CPU and no cross-encoder ships with it. Configure
one with ``rerank = "st:MODEL_ID_OR_PATH"`` (a sentence-transformers CrossEncoder, e.g.
``st:BAAI/bge-reranker-v2-m3`` or a local folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from polisum.errors import PolisumError


class RerankerError(PolisumError, ValueError):
    pass


@runtime_checkable
class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Relevance of each passage to ``query`` (higher is better), aligned with passages."""
        ...


class CrossEncoderReranker:
    """sentence-transformers CrossEncoder (any sequence-classification checkpoint with one
    output, or two where the second is "relevant")."""

    def __init__(self, model: str, batch_size: int = 16, max_length: int = 512) -> None:
        from sentence_transformers import CrossEncoder

        self.name = f"st:{model}"
        self.batch_size = batch_size
        try:
            self._model = CrossEncoder(model, device="cpu", max_length=max_length)
        except Exception as exc:  # hub ids offline, missing files, wrong architecture
            raise RerankerError(f"cannot load cross-encoder '{model}': {exc}") from exc

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, np.float32)
        scores = self._model.predict(
            [(query, p) for p in passages],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        scores = np.asarray(scores, dtype=np.float32)
        if scores.ndim == 2:  # two-label heads: the "relevant" logit
            scores = scores[:, -1]
        return scores


def load_reranker(spec: str | None) -> Reranker | None:
    """``None``/``"none"`` → no reranking; ``"st:MODEL"`` → CrossEncoderReranker."""
    if not spec or spec == "none":
        return None
    if spec.startswith("st:") and len(spec) > 3:
        return CrossEncoderReranker(spec[3:])
    raise RerankerError(f"unknown reranker '{spec}' (expected 'none' or 'st:MODEL_ID_OR_PATH')")


def rerank_order(
    reranker: Reranker, query: str, passages: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(positions of ``passages`` best first, their scores); ties keep the first-stage order."""
    scores = reranker.score(query, passages)
    if len(scores) != len(passages):
        raise RerankerError(
            f"reranker {reranker.name} returned {len(scores)} scores for {len(passages)} passages"
        )
    return np.argsort(-scores, kind="stable"), scores
