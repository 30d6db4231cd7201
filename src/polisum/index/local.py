"""The local backend: FAISS paragraph and summary indexes and two BM25 indexes (chunks, and
each chunk's context window), as files beside the SQLite store, one set per generation
(``paragraphs.g7.faiss``, ``summaries.g7.faiss``, ``bm25.g7/``, ``bm25w.g7/``).

A publish derives generation N+1 from N (vectors patched in a copy, BM25 rebuilt from the
stored terms) and writes its files before the store commits N+1; generation N stays on disk
until the next publish, so a reader in another process that still sees N finds its files.
Files of a generation the store never committed (a crash mid-publish) are removed by the next
publish. Damaged or missing files are rebuilt from SQLite, which they are derived from.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from polisum.index.backend import ALL_SIGNALS, WINDOW, Candidates, Query, SearchFilter
from polisum.index.bm25 import BM25Index, context_windows
from polisum.index.records import Published
from polisum.index.store import MetadataStore
from polisum.index.vectors import VectorIndex
from polisum.index.view import StoreView

log = logging.getLogger(__name__)

_GEN_FILE = re.compile(r"^(paragraphs|summaries|bm25|bm25w)\.g(\d+)(\.faiss)?$")
_KINDS = ("paragraphs", "summaries", "bm25", "bm25w")
_BM25_KINDS = ("bm25", "bm25w")


@dataclass(frozen=True)
class Generation:
    """The search structures of one published generation. Never modified once built: a
    publish derives a new one, so searches holding this one are not disturbed."""

    number: int
    paragraphs: VectorIndex
    summaries: VectorIndex
    bm25: BM25Index
    windows: BM25Index  # BM25 of each chunk's context window (bm25.context_windows), same ids

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls, number: int, store: StoreView, embedder: str, dim: int, policy: str
    ) -> Generation:
        """Everything derived from the store as ``store`` sees it."""
        return cls(
            number,
            VectorIndex.build(dim, *store.vectors(embedder, "text", dim), policy),
            VectorIndex.build(dim, *store.vectors(embedder, "summary", dim), policy),
            *_lexical(store),
        )

    def patched(self, change: Published, store: StoreView, embedder: str) -> Generation:
        """The next generation: copies of the vector indexes with ``change`` applied (only the
        new vectors are read), both BM25 indexes rebuilt from the stored terms (bm25s cannot
        delete; a chunk's change also changes its neighbours' windows)."""
        dim = self.paragraphs.dim
        rewritten = [*change.added, *change.summaries_changed]
        retired = [*change.removed, *change.summaries_changed]
        paragraphs = self.paragraphs.copy()
        paragraphs.remove(retired)  # a new summary can change the paragraph vector too
        paragraphs.add(*store.vectors_for(embedder, "text", dim, rewritten))
        summaries = self.summaries.copy()
        summaries.remove(retired)
        summaries.add(*store.vectors_for(embedder, "summary", dim, rewritten))
        return Generation(change.generation, paragraphs, summaries, *_lexical(store))

    # -- files --------------------------------------------------------------------------------
    @staticmethod
    def file(folder: Path, kind: str, number: int) -> Path:
        return folder / f"{kind}.g{number}{'' if kind in _BM25_KINDS else '.faiss'}"

    def save(self, folder: Path) -> None:
        self.paragraphs.save(self.file(folder, "paragraphs", self.number))
        self.summaries.save(self.file(folder, "summaries", self.number))
        self.bm25.save(self.file(folder, "bm25", self.number))
        self.windows.save(self.file(folder, "bm25w", self.number))

    @classmethod
    def load(cls, folder: Path, number: int, dim: int, policy: str) -> Generation | None:
        """The generation's files, or None when one is missing (an index written before the
        window BM25 existed, a crash) or damaged: the caller rebuilds it from the store."""
        paths = [cls.file(folder, kind, number) for kind in _KINDS]
        if not all(p.exists() for p in paths):
            return None
        try:
            return cls(
                number,
                VectorIndex.load(paths[0], dim, policy),
                VectorIndex.load(paths[1], dim, policy),
                BM25Index.load(paths[2]),
                BM25Index.load(paths[3]),
            )
        except Exception as exc:  # a damaged derived file is rebuilt from SQLite
            log.warning("index files of generation %s unreadable (%s); rebuilding", number, exc)
            return None

    # -- queries ------------------------------------------------------------------------------
    def candidates(
        self,
        query: Query,
        n: int,
        use: Sequence[str] = ALL_SIGNALS,
        allowed: np.ndarray | None = None,
    ) -> Candidates:
        """``allowed``: the only chunk ids that may be returned (a filtered search); their
        vectors are scored exactly, so a filter never loses a match to the ANN pool."""
        dense = "dense" in use and query.vector is not None
        summary = "summary" in use and query.vector is not None and len(self.summaries) > 0
        pools: list[np.ndarray] = []
        lexical: dict[str, tuple[BM25Index, np.ndarray]] = {}  # signal -> (index, every row)
        for name, index in (("bm25", self.bm25), (WINDOW, self.windows)):
            if name not in use or not len(index):
                continue
            every = index.scores(query.terms)
            if allowed is not None:
                every = np.where(np.isin(index.ids, allowed), every, 0.0)
            top = min(n, len(every))
            best = np.argpartition(-every, top - 1)[:top]
            pools.append(index.ids[best[every[best] > 0]])
            lexical[name] = (index, every)
        for wanted, index in ((dense, self.paragraphs), (summary, self.summaries)):
            if not wanted:
                continue
            if allowed is None:
                pools.append(index.search(query.vector, n)[0])
            else:
                scores = index.scores_for(query.vector, allowed)
                top = np.argsort(-scores, kind="stable")[:n]
                pools.append(allowed[top[np.isfinite(scores[top])]])
        ids = np.unique(np.concatenate(pools)) if pools else np.zeros(0, np.int64)
        signals: dict[str, np.ndarray] = {}
        if len(ids) == 0:
            return Candidates(ids, signals)
        for name, (index, every) in lexical.items():
            rows = np.clip(np.searchsorted(index.ids, ids), 0, len(index.ids) - 1)
            signals[name] = np.where(index.ids[rows] == ids, every[rows], 0.0).astype(np.float32)
        if dense:
            signals["dense"] = self.paragraphs.scores_for(query.vector, ids)
        if summary:
            signals["summary"] = self.summaries.scores_for(query.vector, ids)
        return Candidates(ids, signals)


def _lexical(store: StoreView) -> tuple[BM25Index, BM25Index]:
    """BM25 over the chunks and over each chunk's context window, from the stored terms."""
    return (
        BM25Index.from_rows(store.iter_terms()),
        BM25Index.from_rows(context_windows(store.iter_terms_by_document())),
    )


class RowSource(Protocol):
    """Where a view's chunk rows come from: a store snapshot, or rows held in memory."""

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]: ...

    def chunk_ids_where(self, where: SearchFilter) -> np.ndarray: ...


@dataclass(frozen=True)
class LocalView:
    """A generation's structures with the rows they index (the IndexView of this module)."""

    structures: Generation
    rows: RowSource

    @property
    def generation(self) -> int:
        return self.structures.number

    def __len__(self) -> int:
        return len(self.structures.paragraphs)

    def candidates(
        self,
        query: Query,
        n: int,
        use: Sequence[str] = ALL_SIGNALS,
        where: SearchFilter | None = None,
    ) -> Candidates:
        allowed = self.rows.chunk_ids_where(where) if where else None
        return self.structures.candidates(query, n, use, allowed)

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        return self.rows.chunk_rows(ids)


class LocalBackend:
    """FAISS + BM25 files in the index folder."""

    name = "local"

    def __init__(
        self, folder: Path, store: MetadataStore, embedder: str, dim: int, policy: str = "auto"
    ) -> None:
        self.folder = folder
        self.store = store
        self.embedder = embedder
        self.dim = dim
        self.policy = policy
        # The latest generations in memory (the newest two: while a publish is being committed,
        # readers still see the one before it).
        self._loaded: dict[int, Generation] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def view(self) -> Iterator[LocalView]:
        with self.store.read() as snapshot:
            yield LocalView(self._generation(snapshot), snapshot)

    def current(self) -> Generation:
        """The structures of the latest committed generation."""
        with self.view() as view:
            return view.structures

    def _generation(self, snapshot: StoreView) -> Generation:
        number = snapshot.generation
        with self._lock:
            if number in self._loaded:
                return self._loaded[number]
            loaded = Generation.load(self.folder, number, self.dim, self.policy)
            if loaded is None:
                # Never written (an index from before generation files, deleted or damaged
                # files): derive it from the snapshot, and keep it for the next process.
                loaded = Generation.build(number, snapshot, self.embedder, self.dim, self.policy)
                with contextlib.suppress(OSError):  # a read-only index still answers queries
                    loaded.save(self.folder)
            self._keep(loaded)
            return loaded

    def _keep(self, generation: Generation) -> None:
        self._loaded[generation.number] = generation
        for number in sorted(self._loaded)[:-2]:
            del self._loaded[number]

    def publish(self, change: Published, store: StoreView) -> None:
        with self._lock:
            previous = self._loaded.get(change.generation - 1)
        if previous is None:
            previous = Generation.load(self.folder, change.generation - 1, self.dim, self.policy)
        if previous is None:
            new = Generation.build(change.generation, store, self.embedder, self.dim, self.policy)
        else:
            new = previous.patched(change, store, self.embedder)
        self._remove_files(lambda n: n >= change.generation)  # leftovers of a crashed publish
        new.save(self.folder)
        with self._lock:
            self._keep(new)

    def committed(self, generation: int) -> None:
        # The previous generation stays for readers in other processes that still see it.
        self._remove_files(lambda n: n < generation - 1)

    def sync(self, store: StoreView) -> dict[str, Any]:
        """Files of the committed generation, derived from the store if missing or damaged
        (queries would do the same on demand)."""
        number = store.generation
        if all(Generation.file(self.folder, kind, number).exists() for kind in _KINDS):
            return {"action": "none", "generation": number}
        self.current()
        return {"action": "rebuilt", "generation": number}

    def reset(self) -> None:
        with self._lock:
            self._loaded.clear()
        self._remove_files(lambda n: True)

    def info(self) -> dict[str, Any]:
        current = self.current()
        return {
            "backend": self.name,
            "path": str(self.folder),
            "generation": current.number,
            "vector_index": current.paragraphs.kind,
            "chunks": len(current.paragraphs),
        }

    def close(self) -> None:
        with self._lock:
            self._loaded.clear()

    def _remove_files(self, doomed) -> None:
        for entry in self.folder.iterdir():
            m = _GEN_FILE.match(entry.name)
            if m and doomed(int(m.group(2))):
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@dataclass(frozen=True)
class _MemoryRows:
    rows: dict[int, dict[str, Any]]

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        return {i: self.rows[i] for i in ids if i in self.rows}

    def chunk_ids_where(self, where: SearchFilter) -> np.ndarray:
        ids = [i for i, row in self.rows.items() if where.matches(row["source"])]
        return np.sort(np.asarray(ids, dtype=np.int64))


class MemoryBackend:
    """A fixed generation held in memory, with its rows: for benchmarks that time retrieval
    without the store, and for tests. Read-only."""

    name = "memory"

    def __init__(self, structures: Generation, rows: dict[int, dict[str, Any]] | None = None):
        self.structures = structures
        self.rows = rows or {}

    @contextlib.contextmanager
    def view(self) -> Iterator[LocalView]:
        yield LocalView(self.structures, _MemoryRows(self.rows))

    def publish(self, change: Published, store: StoreView) -> None:
        raise NotImplementedError("a MemoryBackend is read-only")

    def committed(self, generation: int) -> None:
        pass

    def sync(self, store: StoreView) -> dict[str, Any]:
        return {"action": "none", "generation": self.structures.number}

    def reset(self) -> None:
        raise NotImplementedError("a MemoryBackend is read-only")

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "chunks": len(self.structures.paragraphs)}

    def close(self) -> None:
        pass
