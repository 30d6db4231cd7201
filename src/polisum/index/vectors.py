"""FAISS vector index over chunk ids (inner product on L2-normalised vectors = cosine)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from polisum.index.files import atomic_write_bytes


class VectorIndex:
    """Exact (flat) inner-product search with 64-bit ids, so SQLite row ids map straight
    through and removals need no renumbering."""

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        idx = cls(dim)
        idx.add(ids, vectors)
        return idx

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
            )

    def remove(self, ids: list[int] | np.ndarray) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (ids, scores) of the k best, best first."""
        if len(self) == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self._index.search(q, min(k, len(self)))
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def scores_for(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact scores of given ids (ids absent from the index score -inf)."""
        out = np.full(len(ids), -np.inf, dtype=np.float32)
        for i, chunk_id in enumerate(ids):
            try:
                out[i] = float(self._index.reconstruct(int(chunk_id)) @ query)
            except RuntimeError:
                continue
        return out

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, faiss.serialize_index(self._index).tobytes())

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        data = np.fromfile(path, dtype=np.uint8)
        index = faiss.deserialize_index(data)
        if index.d != dim:
            raise ValueError(f"{path}: vector dimension {index.d}, expected {dim}")
        return cls(dim, index)
