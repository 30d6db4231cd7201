"""The index backend interface: where the derived search structures live.

The SQLite store is the source of truth for an ingest; a backend holds what a query needs,
published from the store one generation at a time. ``local`` keeps FAISS and BM25 files beside
the store (polisum.index.local); other backends (a Milvus collection) implement the same
interface, so retrieval, fusion and the surfaces above do not change with the backend.

A query runs inside one :meth:`IndexBackend.view`: candidates and the rows they are hydrated
from come from the same complete generation, even while an ingest publishes the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from polisum.index.records import Published
from polisum.index.view import StoreView

# The retrievers every backend scores: paragraph vectors, summary vectors, BM25 on Kiwi terms
# (each has a fusion weight, polisum.config.FusionWeights).
SIGNALS = ("dense", "summary", "bm25")
# BM25 of each chunk's context window (the chunk and its neighbours in its document,
# polisum.index.bm25.context_windows); the fusion reads it with part of the "bm25" weight.
WINDOW = "bm25_window"
# What a candidate search scores unless told otherwise.
ALL_SIGNALS = (*SIGNALS, WINDOW)


@dataclass(frozen=True)
class Query:
    """A query as the backends take it: computed once, by the retriever."""

    text: str
    vector: np.ndarray | None  # the query embedding (None when no dense signal is asked for)
    terms: list[str]  # BM25 terms (polisum.text.index_terms)


@dataclass(frozen=True)
class Candidates:
    """Chunk ids gathered from every retriever, each scored exactly by every retriever:
    ``signals[name][i]`` is retriever ``name``'s score of ``ids[i]`` (-inf: not scored; BM25
    and ``WINDOW``: 0 when no term is shared)."""

    ids: np.ndarray
    signals: dict[str, np.ndarray]


@dataclass(frozen=True)
class SearchFilter:
    """Restrict a search to some documents: sources under a path prefix, and/or file types
    (extensions, e.g. ``(".pdf", ".hwp")``; ``"PDF"`` means ``".pdf"``)."""

    source_prefix: str | None = None
    file_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        types = tuple(t.lower() if t.startswith(".") else "." + t.lower() for t in self.file_types)
        object.__setattr__(self, "file_types", types)

    def __bool__(self) -> bool:
        return bool(self.source_prefix or self.file_types)

    def matches(self, source: str) -> bool:
        if self.source_prefix and not source.startswith(self.source_prefix):
            return False
        return not self.file_types or source.lower().endswith(self.file_types)


class IndexView(Protocol):
    """One complete generation of the index, for the duration of a query."""

    generation: int

    def __len__(self) -> int:
        """Chunks in this generation."""
        ...

    def candidates(
        self,
        query: Query,
        n: int,
        use: Sequence[str] = ALL_SIGNALS,
        where: SearchFilter | None = None,
    ) -> Candidates:
        """The union of each used retriever's top ``n`` (among the chunks ``where`` allows),
        scored by every used retriever (``use``: names from ``ALL_SIGNALS``)."""
        ...

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """What a hit shows, per chunk row id (see StoreView.chunk_rows)."""
        ...


class IndexBackend(Protocol):
    name: str

    def view(self) -> AbstractContextManager[IndexView]:
        """The latest complete generation, consistent for the duration of the ``with``."""
        ...

    def publish(self, change: Published, store: StoreView) -> None:
        """Bring the backend to ``change.generation``. Called inside the store's publish
        transaction (``store`` sees the new rows): when it returns, the new generation must be
        complete in the backend, and the previous one still readable."""
        ...

    def committed(self, generation: int) -> None:
        """The store committed ``generation``: older generations may be dropped."""
        ...

    def sync(self, store: StoreView) -> dict[str, Any]:
        """Bring the backend to the store's committed generation (before an ingest, and
        ``polisum index sync``): complete or redo a publish a crash interrupted. Returns what
        was done (``{"action": "none" | "switched" | "rebuilt", ...}``)."""
        ...

    def reset(self) -> None:
        """Forget everything (``--rebuild``)."""
        ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
