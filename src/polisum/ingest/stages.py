"""The ingest's stage functions, pure and picklable, so any engine can run them anywhere (this
process, a worker process with limits, a Ray worker): load + chunk a file, summarize, embed,
BM25 terms. The caches and the publish stay with the driver (polisum.ingest.pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from polisum.chunking import ParagraphChunker
from polisum.embed import Embedder
from polisum.loaders import LoaderRegistry, LoadError, default_registry, load_ocr
from polisum.summarize import Summarizer, SummaryResult, summarize_detailed
from polisum.text import index_terms_many
from polisum.types import Chunk


@dataclass(frozen=True)
class ParseSettings:
    """Everything that decides what a file becomes (part of the index's pipeline key)."""

    max_bytes: int = 200 * 1024 * 1024
    ocr: str = "auto"
    ocr_languages: str = "kor+eng"
    min_chars: int = 120
    max_chars: int = 1200

    @classmethod
    def from_config(cls, config: Any) -> ParseSettings:
        return cls(
            config.max_file_bytes,
            config.ocr,
            config.ocr_languages,
            config.min_chars,
            config.max_chars,
        )

    def registry(self) -> LoaderRegistry:
        return _registry(self.max_bytes, self.ocr, self.ocr_languages)

    def chunker(self) -> ParagraphChunker:
        return ParagraphChunker(self.min_chars, self.max_chars)


@lru_cache(maxsize=4)
def _registry(max_bytes: int, ocr: str, languages: str) -> LoaderRegistry:
    """Built once per process and settings: finding the OCR engine runs a program."""
    return default_registry(max_bytes, load_ocr(ocr, languages))


MEMORY_ERROR = "ran out of memory reading the file"


@dataclass(frozen=True)
class FileJob:
    path: Path
    source: str


@dataclass
class ParsedFile:
    """A file as the loaders and the chunker made it, or the reason it could not be read."""

    path: Path
    source: str
    chunks: list[Chunk] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def parse_file(settings: ParseSettings, job: FileJob) -> ParsedFile:
    """Load and chunk one file. Never raises for a bad file: the reason is in ``error``."""
    try:
        document = settings.registry().load(job.path)
        chunks = settings.chunker().chunk(document, job.source)
        if not chunks:
            raise LoadError(job.path, "no text found")
    except LoadError as exc:
        return ParsedFile(job.path, job.source, error=exc.reason)
    except MemoryError:
        return ParsedFile(job.path, job.source, error=MEMORY_ERROR)
    except Exception as exc:  # a loader bug must not stop the other files
        return ParsedFile(job.path, job.source, error=f"unexpected {type(exc).__name__}: {exc}")
    metadata = {k: v for k, v in document.metadata.items() if _jsonable(v)}
    return ParsedFile(job.path, job.source, chunks, metadata)


def summarize_texts(summarizer: Summarizer, texts: list[str]) -> list[SummaryResult]:
    return summarize_detailed(summarizer, texts)


def embed_texts(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return embedder.embed_documents(texts)


def terms_of(texts: list[str]) -> list[list[str]]:
    """BM25 terms of chunks: the retriever's query terms are made the same way."""
    return index_terms_many(texts)


def _jsonable(value: Any) -> bool:
    """Metadata kept in the index: scalars, and lists of strings (a reader's warnings)."""
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return isinstance(value, (str, int, float, bool)) or value is None
