"""Engines run the ingest's stage functions (polisum.ingest.stages) somewhere.

The driver (polisum.ingest.pipeline) decides what must be computed, from the store's caches,
and writes every result back; an engine only computes. ``local`` runs everything on this
machine; other engines (Ray) run the same functions on a cluster, so the two give the same
chunks, summaries and vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from polisum.embed import Embedder
from polisum.ingest.stages import (
    FileJob,
    ParsedFile,
    ParseSettings,
    embed_texts,
    parse_file,
    summarize_texts,
    terms_of,
)
from polisum.ingest.workers import ParseLimits, WorkerPool
from polisum.summarize import Summarizer, SummaryResult

SUMMARY_BATCH = 32
EMBED_BATCH = 64
TERMS_BATCH = 512


class Engine(Protocol):
    name: str

    def prepare(self, settings: ParseSettings, jobs: int) -> None:
        """``jobs`` files will be parsed with ``settings``: start what that needs (workers
        load while the driver does other work). May do nothing."""
        ...

    def parse(self, settings: ParseSettings, jobs: Sequence[FileJob]) -> Iterator[ParsedFile]:
        """Every job's result, in any order, as each finishes."""
        ...

    def summarize(
        self, summarizer: Summarizer, texts: Sequence[str]
    ) -> Iterator[list[SummaryResult]]:
        """Summaries of ``texts`` in order, a batch at a time (the driver caches each batch)."""
        ...

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Iterator[np.ndarray]:
        """Vectors of ``texts`` in order, a batch at a time."""
        ...

    def terms(self, texts: Sequence[str]) -> Iterator[list[list[str]]]:
        """BM25 terms of ``texts`` in order, a batch at a time."""
        ...

    def close(self) -> None: ...


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class LocalEngine:
    """This machine: files parsed in worker processes under per-file limits (see
    polisum.ingest.workers), models in this process, loaded once."""

    name = "local"

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits.auto()
        self._pool: WorkerPool | None = None

    def prepare(self, settings: ParseSettings, jobs: int) -> None:
        if self.limits.workers and jobs:
            self._workers(settings).prepare(jobs)

    def parse(self, settings: ParseSettings, jobs: Sequence[FileJob]) -> Iterator[ParsedFile]:
        if self.limits.workers == 0:
            for job in jobs:
                yield parse_file(settings, job)
            return
        yield from self._workers(settings).parse(jobs)

    def _workers(self, settings: ParseSettings) -> WorkerPool:
        if self._pool is None or self._pool.settings != settings:
            self.close()
            self._pool = WorkerPool(settings, self.limits)
        return self._pool

    def summarize(
        self, summarizer: Summarizer, texts: Sequence[str]
    ) -> Iterator[list[SummaryResult]]:
        for batch in batched(texts, SUMMARY_BATCH):
            yield summarize_texts(summarizer, list(batch))

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Iterator[np.ndarray]:
        for batch in batched(texts, EMBED_BATCH):
            yield embed_texts(embedder, list(batch))

    def terms(self, texts: Sequence[str]) -> Iterator[list[list[str]]]:
        # Kiwi is the slowest CPU step after the models (~4-8 ms a paragraph): batches run on
        # all of Kiwi's worker threads.
        for batch in batched(texts, TERMS_BATCH):
            yield terms_of(list(batch))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
