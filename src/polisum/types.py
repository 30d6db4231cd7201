"""Data that flows between pipeline stages: load → chunk → summarize → embed → index → retrieve."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ElementKind = Literal["paragraph", "heading", "table", "code", "list"]


@dataclass(frozen=True)
class Element:
    """One structural block a loader found in a document, in reading order.

    ``start``/``end`` are character offsets into ``Document.text``; ``section`` is the
    heading path above the block ("Chapter 1 > Eligibility"), ``page`` is 1-based or None.
    """

    text: str
    kind: ElementKind = "paragraph"
    section: str | None = None
    page: int | None = None
    start: int = 0
    end: int = 0


@dataclass
class Document:
    """A loaded file: its decoded text and the elements found in it."""

    path: Path
    text: str
    elements: list[Element]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: a paragraph (or part of one) with where it came from."""

    text: str
    source: str
    section: str | None
    page: int | None
    start: int
    end: int
    ordinal: int
    chunk_id: str

    @staticmethod
    def make_id(source: str, section: str | None, text: str, occurrence: int = 0) -> str:
        """Stable id derived from content, so re-ingesting unchanged text gives the same id."""
        key = f"{source}\x1f{section or ''}\x1f{occurrence}\x1f{text}"
        return hashlib.blake2b(key.encode("utf-8"), digest_size=10).hexdigest()


@dataclass(frozen=True)
class Hit:
    """One search result."""

    score: float
    source: str
    page: int | None
    section: str | None
    text: str
    summary: str | None
    chunk_id: str
    start: int
    end: int
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "source": self.source,
            "page": self.page,
            "section": self.section,
            "text": self.text,
            "summary": self.summary,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "scores": self.scores,
        }


def text_hash(text: str) -> str:
    """Content hash used as a cache key for embeddings and summaries."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
