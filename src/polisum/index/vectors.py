"""Vector index over chunk ids: exact (flat) or approximate (FAISS HNSW) inner-product search
on L2-normalised vectors (= cosine).

The vectors live once, in a FAISS flat storage, and are viewed as a numpy matrix without a
copy. Search goes through FAISS (a flat scan, or the HNSW graph for large corpora); the fusion's
exact re-scoring of a few hundred candidate ids is one fancy-indexing gather and a mat-vec
instead of a per-id ``reconstruct`` loop.

HNSW graphs cannot delete nodes, so removals there are tombstones (the row's id becomes -1 and
searches skip it through an ID selector); the graph is rebuilt without them once they pass a
fifth of the rows, or when the index is built again from SQLite.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from polisum.index.files import atomic_write_bytes

IndexKind = Literal["flat", "hnsw"]
IndexPolicy = Literal["auto", "flat", "hnsw"]

# "auto" switches to HNSW at this size: below it a flat scan costs under ~5 ms per query on one
# core (benchmarks/query_latency.py), above it the scan grows linearly while HNSW stays ~1 ms.
AUTO_HNSW_MIN = 50_000
HNSW_M = 32
# Measured on the 100k synthetic KorQuAD corpus of query_latency.py (each vector with ~100 near
# copies, a hard case), 200 queries, dense recall@100 against exact search, one core:
#   efConstruction 40, efSearch 160: 0.800, 0.24 ms   (the settings before)
#   efConstruction 80, efSearch 320: 0.950, 0.45 ms, build 8 s   (these)
#   efConstruction 160, efSearch 320: 0.968, 0.58 ms, build 18 s
# A query embedding costs ~20 ms, so the extra 0.2 ms per search buys recall cheaply.
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 320  # ≥ the candidate pool the retriever asks for (100)
_MAX_DEAD_FRACTION = 0.2
_FORMAT = 2


def resolve_kind(policy: str, n: int) -> IndexKind:
    if policy == "flat":
        return "flat"
    if policy == "hnsw":
        return "hnsw"
    if policy == "auto":
        return "hnsw" if n >= AUTO_HNSW_MIN else "flat"
    raise ValueError(f"vector_index must be 'auto', 'flat' or 'hnsw', not {policy!r}")


def _new_faiss(kind: IndexKind, dim: int) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


class VectorIndex:
    """Vectors keyed by 64-bit chunk ids (SQLite row ids map straight through)."""

    def __init__(
        self,
        dim: int,
        kind: IndexKind = "flat",
        policy: IndexPolicy | str = "flat",
        *,
        _index: faiss.Index | None = None,
        _ids: np.ndarray | None = None,
    ) -> None:
        self.dim = dim
        self.kind: IndexKind = kind
        self.policy = policy
        self._index = _index if _index is not None else _new_faiss(kind, dim)
        # Row position → chunk id (-1: a tombstone in an HNSW graph).
        self._ids = _ids if _ids is not None else np.zeros(0, np.int64)
        self._refresh()

    # -- bookkeeping ----------------------------------------------------------------------
    def _refresh(self) -> None:
        n = int(self._index.ntotal)
        if n != len(self._ids):
            raise ValueError(f"vector index holds {n} rows but {len(self._ids)} ids")
        storage = self._index if self.kind == "flat" else faiss.downcast_index(self._index.storage)
        # Zero-copy view of FAISS's own storage; refreshed after every change because adds
        # may reallocate it.
        self._matrix = (
            faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)
            if n
            else np.zeros((0, self.dim), np.float32)
        )
        self._order = np.argsort(self._ids, kind="stable")
        self._sorted_ids = self._ids[self._order]
        self._alive = self._ids >= 0
        self._n_alive = int(self._alive.sum())
        self._selector = None
        if self.kind == "hnsw" and self._n_alive < n:
            self._bitmap = np.packbits(self._alive, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(self._bitmap))

    def __len__(self) -> int:
        return self._n_alive

    @property
    def ids(self) -> np.ndarray:
        """Chunk ids in the index, ascending."""
        return self._sorted_ids[self._sorted_ids >= 0]

    # -- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls, dim: int, ids: np.ndarray, vectors: np.ndarray, policy: IndexPolicy | str = "flat"
    ) -> VectorIndex:
        idx = cls(dim, resolve_kind(policy, len(ids)), policy)
        idx.add(ids, vectors)
        return idx

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        self._index.add(vectors)
        self._ids = np.concatenate([self._ids, ids])
        self._refresh()
        self._maybe_rebuild()

    def remove(self, ids: list[int] | np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids) or not len(self._ids):
            return
        rows = np.flatnonzero(np.isin(self._ids, ids) & self._alive)
        if not len(rows):
            return
        if self.kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(rows.astype(np.int64)))
            self._ids = np.delete(self._ids, rows)
        else:
            self._ids = self._ids.copy()
            self._ids[rows] = -1
        self._refresh()
        self._maybe_rebuild()

    def _maybe_rebuild(self) -> None:
        """Switch flat ↔ HNSW when the size crosses the auto threshold, and drop tombstones."""
        want = resolve_kind(self.policy, self._n_alive)
        if self.policy == "auto" and self.kind == "hnsw" and self._n_alive >= 0.8 * AUTO_HNSW_MIN:
            want = "hnsw"  # hysteresis: a few removals near the threshold must not flip-flop
        dead = len(self._ids) - self._n_alive
        if want == self.kind and dead <= _MAX_DEAD_FRACTION * max(len(self._ids), 1):
            return
        keep = self._alive
        ids, vectors = self._ids[keep].copy(), np.array(self._matrix[keep])
        self.kind = want
        self._index = _new_faiss(want, self.dim)
        self._ids = np.zeros(0, np.int64)
        if len(ids):
            self._index.add(vectors)
            self._ids = ids
        self._refresh()

    def copy(self) -> VectorIndex:
        """An independent copy (a publish patches a copy while searches use the original)."""
        return VectorIndex(
            self.dim,
            self.kind,
            self.policy,
            _index=faiss.clone_index(self._index),
            _ids=self._ids.copy(),
        )

    # -- queries ----------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (ids, scores) of the k best, best first."""
        if len(self) == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        k = min(k, len(self))
        # One query is too little work to share: OpenMP threads only contend (measured 2.4x
        # slower with 2 threads on a busy 2-core machine).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k))
                if self._selector is not None:
                    params.sel = self._selector
                scores, rows = self._index.search(q, k, params=params)
            else:
                scores, rows = self._index.search(q, k)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = rows[0] >= 0
        return self._ids[rows[0][keep]], scores[0][keep]

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row position of each id, -1 where the id is not in the index."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self._sorted_ids):
            return np.full(len(ids), -1, np.int64)
        at = np.clip(np.searchsorted(self._sorted_ids, ids), 0, len(self._sorted_ids) - 1)
        found = self._sorted_ids[at] == ids
        return np.where(found, self._order[at], -1)

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (rows of zeros for absent ids)."""
        rows = self.rows_of(ids)
        out = np.zeros((len(rows), self.dim), np.float32)
        present = rows >= 0
        out[present] = self._matrix[rows[present]]
        return out

    def scores_for(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact scores of given ids (ids absent from the index score -inf)."""
        rows = self.rows_of(ids)
        out = np.full(len(rows), -np.inf, dtype=np.float32)
        present = rows >= 0
        if present.any():
            out[present] = self._matrix[rows[present]] @ np.asarray(query, np.float32).ravel()
        return out

    # -- files ----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """One file, written atomically: an .npz (no pickle) of the FAISS index bytes, the
        row → id map and the kind."""
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.asarray([_FORMAT]),
            kind=np.asarray([self.kind]),
            ids=self._ids,
            faiss=faiss.serialize_index(self._index),
        )
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path, dim: int, policy: IndexPolicy | str = "flat") -> VectorIndex:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic != b"PK":  # format 1: a bare serialized IndexIDMap2(IndexFlatIP)
            legacy = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
            if legacy.d != dim:
                raise ValueError(f"{path}: vector dimension {legacy.d}, expected {dim}")
            # deserialize_index returns the concrete class; downcast_index would hand back a
            # non-owning wrapper, so the object is kept in ``legacy`` while it is read.
            ids = faiss.vector_to_array(legacy.id_map).astype(np.int64)
            n = int(legacy.ntotal)
            vectors = legacy.index.reconstruct_n(0, n) if n else np.zeros((0, dim), np.float32)
            return cls.build(dim, ids, vectors, policy)
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"][0]) != _FORMAT:
                raise ValueError(f"{path}: unknown vector index format {data['format'][0]}")
            kind = str(data["kind"][0])
            ids = data["ids"].astype(np.int64)
            index = faiss.deserialize_index(data["faiss"])
        if kind not in ("flat", "hnsw"):
            raise ValueError(f"{path}: unknown vector index kind {kind!r}")
        if index.d != dim:
            raise ValueError(f"{path}: vector dimension {index.d}, expected {dim}")
        loaded = cls(dim, kind, policy, _index=index, _ids=ids)  # type: ignore[arg-type]
        loaded._maybe_rebuild()  # a changed vector_index setting takes effect on open
        return loaded
