"""What the store keeps and returns: documents, chunks, and the changes an ingest publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    source: str
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    status: str
    error: str | None
    n_chunks: int
    metadata: dict[str, Any]
    ingested_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "chunks": self.n_chunks,
            "content_hash": self.content_hash,
            "size": self.size,
            "metadata": self.metadata,
            "ingested_at": self.ingested_at,
        }


@dataclass(frozen=True)
class ChunkRow:
    """A chunk ready to publish: everything the store keeps about it."""

    chunk_id: str
    ordinal: int
    text: str
    section: str | None
    page: int | None
    start: int
    end: int
    text_hash: str
    summary: str | None
    summary_hash: str | None
    terms: list[str]
    # The summarizer's name (None: no summarizer) and how the summary was made (fallbacks,
    # guard flags), as recorded by polisum.summarize.Summary.info.
    summarizer: str | None = None
    summary_info: dict[str, Any] | None = None
    # The paragraph vector's key when it is not the whole text's (polisum.ingest.vectors).
    vector_hash: str | None = None


@dataclass(frozen=True)
class DocumentUpdate:
    """The new state of one source file, published together with the others of its batch."""

    source: str
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    status: str
    error: str | None
    chunks: list[ChunkRow]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SummaryUpdate:
    """A new summary for a chunk that is otherwise unchanged (row id ``chunk``)."""

    chunk: int
    summary: str | None
    summary_hash: str | None
    summarizer: str | None
    info: dict[str, Any] | None = None
    vector_hash: str | None = None  # as ChunkRow.vector_hash: the summary can change it


@dataclass(frozen=True)
class Published:
    """What one publish changed, for the derived index to follow: chunk row ids added and
    removed, and chunks that kept their id but got a new summary (and so maybe a new
    paragraph vector: polisum.ingest.vectors)."""

    generation: int
    added: list[int]
    removed: list[int]
    summaries_changed: list[int]
    # (source, reason) of documents whose rows could not be stored: failures of their own.
    failed: list[tuple[str, str]] = field(default_factory=list)
