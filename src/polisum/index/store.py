"""SQLite metadata store: documents, chunks, summaries and the embedding/summary caches.

SQLite is the source of truth. The derived search structures (a backend's FAISS/BM25 files or
collection) are published from it inside the same transaction that bumps the store's generation
number, so a reader that sees generation N in a snapshot finds the structures of generation N.

One writer (this object's connection, behind the index lock); readers take snapshots with
:meth:`MetadataStore.read`, on a connection of their own thread, so a search served while an
ingest publishes sees the old state or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from polisum.errors import DiskFullError, IndexDamagedError
from polisum.index.records import (
    ChunkRow,
    DocumentRecord,
    DocumentUpdate,
    Published,
    SummaryUpdate,
)
from polisum.index.view import StoreView

__all__ = [
    "ChunkRow",
    "DocumentRecord",
    "DocumentUpdate",
    "MetadataStore",
    "Published",
    "StoreView",
    "SummaryUpdate",
]

# 2: summary provenance: chunks.summarizer / chunks.summary_info and summaries.info (JSON).
# 3: chunks.vector_hash, the key of a paragraph vector made from its summary's and its rest's
#    (polisum.ingest.vectors); NULL: the vector of the whole text, keyed by text_hash.
# Older indexes are migrated in place (columns added); nothing is recomputed.
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    content_hash TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    metadata TEXT,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    section TEXT,
    page INTEGER,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    text_hash TEXT NOT NULL,
    summary TEXT,
    summary_hash TEXT,
    terms TEXT NOT NULL,
    summarizer TEXT,
    summary_info TEXT,
    vector_hash TEXT
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
CREATE TABLE IF NOT EXISTS embeddings (
    embedder TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (embedder, text_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summaries (
    summarizer TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    summary TEXT NOT NULL,
    info TEXT,
    PRIMARY KEY (summarizer, text_hash)
) WITHOUT ROWID;
"""

BeforeCommit = Callable[[Published, StoreView], None]


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a publish is one transaction.
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=30000")
    db.execute("PRAGMA foreign_keys=ON")
    return db


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """SQLite failures a user can act on, as one line each."""
    full = (
        f"{path.parent}: no space left to write the index; it was left as it was — free some "
        "space and run the command again"
    )
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "full" in str(exc) or "disk I/O error" in str(exc):  # SQLITE_FULL, SQLITE_IOERR
            raise DiskFullError(f"{full} ({exc})") from exc
        raise
    except OSError as exc:  # the backend's files, written inside a publish transaction
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"{full} ({exc.strerror})") from exc
        raise
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        raise IndexDamagedError(
            f"{path}: the index database is damaged ({exc}); `polisum ingest FOLDER --rebuild` "
            "moves it aside and starts a new one"
        ) from exc


class MetadataStore(StoreView):
    """The writer's connection (reads through it see the writer's uncommitted work) plus
    snapshot reads for other threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with _sqlite_errors(path):
            super().__init__(_connect(path))
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self.transaction():
                for stmt in _SCHEMA.strip().split(";\n"):
                    if stmt.strip():
                        self._db.execute(stmt)
                if self.get_meta("schema_version") is None:
                    self._set_meta("schema_version", str(SCHEMA_VERSION))
                    self._set_meta("generation", "0")
                if self.get_meta("index_id") is None:  # who a shared backend was published from
                    self._set_meta("index_id", uuid.uuid4().hex)
            version = int(self.get_meta("schema_version") or 0)
        if version == 1:
            self._migrate_v1()
            version = 2
        if version == 2:
            self._migrate_v2()
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            self._db.close()
            raise IndexDamagedError(
                f"{path}: index schema version {version}, this polisum reads {SCHEMA_VERSION} "
                "(written by another polisum version); upgrade polisum, or start over with "
                "`polisum ingest FOLDER --rebuild` (the old database is moved aside)"
            )
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def close(self) -> None:
        with self._readers_lock:
            for db in self._readers:
                db.close()
            self._readers.clear()
        self._db.close()

    def _migrate_v1(self) -> None:
        """Add the summary provenance columns. Existing summaries were made by an unknown
        summarizer: marked 'legacy', they are redone (from the caches) on the next ingest."""
        with self.transaction() as db:
            db.execute("ALTER TABLE chunks ADD COLUMN summarizer TEXT")
            db.execute("ALTER TABLE chunks ADD COLUMN summary_info TEXT")
            db.execute("ALTER TABLE summaries ADD COLUMN info TEXT")
            db.execute("UPDATE chunks SET summarizer = 'legacy' WHERE summary IS NOT NULL")
            self._set_meta("schema_version", "2")

    def _migrate_v2(self) -> None:
        """Add chunks.vector_hash; every existing paragraph vector is of the whole text."""
        with self.transaction() as db:
            db.execute("ALTER TABLE chunks ADD COLUMN vector_hash TEXT")
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    # -- transactions and snapshots -----------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with _sqlite_errors(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on some errors (FULL)
                    self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[StoreView]:
        """A consistent snapshot on this thread's reader connection (nested calls share it)."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            yield self._local.view
            return
        if getattr(self._local, "view", None) is None:
            db = _connect(self.path)
            with self._readers_lock:
                self._readers.append(db)
            self._local.view = StoreView(db)
        view: StoreView = self._local.view
        view._db.execute("BEGIN")  # deferred: the snapshot is taken by the first SELECT
        self._local.depth = 1
        try:
            yield view
        finally:
            self._local.depth = 0
            with contextlib.suppress(sqlite3.Error):
                view._db.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------
    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_meta(self, **values: str) -> None:
        with self.transaction():
            for key, value in values.items():
                self._set_meta(key, value)

    # -- documents ------------------------------------------------------------------------
    def update_stat(self, source: str, size: int, mtime_ns: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE documents SET size = ?, mtime_ns = ? WHERE source = ?",
                (size, mtime_ns, source),
            )

    # -- caches ---------------------------------------------------------------------------
    def put_summaries(
        self, summarizer: str, items: Iterable[tuple[str, str, dict[str, Any] | None]]
    ) -> None:
        """Cache (text_hash, summary, info) items."""
        rows = [
            (summarizer, h, summary, json.dumps(info, ensure_ascii=False) if info else None)
            for h, summary, info in items
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO summaries(summarizer, text_hash, summary, info) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    def put_embeddings(self, embedder: str, hashes: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings(embedder, text_hash, vector) VALUES (?, ?, ?)",
                [(embedder, h, v.tobytes()) for h, v in zip(hashes, vectors, strict=True)],
            )

    # -- publish ----------------------------------------------------------------------------
    def publish(
        self,
        updates: list[DocumentUpdate],
        removed_sources: list[str],
        summary_updates: Iterable[SummaryUpdate] = (),
        before_commit: BeforeCommit | None = None,
    ) -> Published:
        """Apply a batch of an ingest in one transaction and bump the generation.

        ``before_commit(change, view)`` runs inside the transaction, with a view that sees the
        new rows: the backend writes its structures for the new generation there, so they
        exist before any reader can see that generation. If it raises, nothing is committed.
        ``summary_updates`` replace the summaries of chunks that stay (a summarizer switch),
        keeping their ids and paragraph vectors."""
        added: list[int] = []
        removed: list[int] = []
        failed: list[tuple[str, str]] = []
        summary_updates = list(summary_updates)
        now = time.time()
        with self.transaction() as db:
            for source in [*removed_sources, *(u.source for u in updates)]:
                row = db.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
                if row is None:
                    continue
                removed.extend(
                    r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", row)
                )
                db.execute("DELETE FROM chunks WHERE document_id = ?", row)
                db.execute("DELETE FROM documents WHERE id = ?", row)
            for u in updates:
                # One document's rows that cannot be stored (a constraint) fail that document
                # alone: its savepoint is rolled back and the rest of the batch goes in.
                db.execute("SAVEPOINT document")
                try:
                    added.extend(self._insert_document(db, u, now))
                except sqlite3.IntegrityError as exc:
                    db.execute("ROLLBACK TO document")
                    failed.append((u.source, f"could not be stored in the index ({exc})"))
                db.execute("RELEASE document")
            db.executemany(
                "UPDATE chunks SET summary = ?, summary_hash = ?, summarizer = ?, "
                "summary_info = ?, vector_hash = ? WHERE id = ?",
                [
                    (u.summary, u.summary_hash, u.summarizer, _json(u.info), u.vector_hash, u.chunk)
                    for u in summary_updates
                ],
            )
            change = Published(
                self.generation + 1, added, removed, [u.chunk for u in summary_updates], failed
            )
            self._set_meta("generation", str(change.generation))
            if before_commit is not None:
                before_commit(change, self)
        return change

    @staticmethod
    def _insert_document(db: sqlite3.Connection, u: DocumentUpdate, now: float) -> list[int]:
        cur = db.execute(
            "INSERT INTO documents(source, content_hash, size, mtime_ns, status, error, "
            "n_chunks, metadata, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                u.source,
                u.content_hash,
                u.size,
                u.mtime_ns,
                u.status,
                u.error,
                len(u.chunks),
                json.dumps(u.metadata, ensure_ascii=False),
                now,
            ),
        )
        doc_id = cur.lastrowid
        ids = []
        for c in u.chunks:
            cur = db.execute(
                "INSERT INTO chunks(chunk_id, document_id, ordinal, text, section, page, "
                "start_char, end_char, text_hash, summary, summary_hash, terms, summarizer, "
                "summary_info, vector_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.chunk_id,
                    doc_id,
                    c.ordinal,
                    c.text,
                    c.section,
                    c.page,
                    c.start,
                    c.end,
                    c.text_hash,
                    c.summary,
                    c.summary_hash,
                    json.dumps(c.terms, ensure_ascii=False),
                    c.summarizer,
                    _json(c.summary_info),
                    c.vector_hash,
                ),
            )
            ids.append(cur.lastrowid)
        return ids

    def prune_caches(self, embedder: str, summarizer: str | None) -> None:
        """Drop cached vectors and summaries no chunk uses, once an ingest has published."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM embeddings WHERE embedder = ? AND text_hash NOT IN "
                "(SELECT text_hash FROM chunks UNION SELECT summary_hash FROM chunks "
                "WHERE summary_hash IS NOT NULL UNION SELECT vector_hash FROM chunks "
                "WHERE vector_hash IS NOT NULL)",
                (embedder,),
            )
            if summarizer:
                db.execute(
                    "DELETE FROM summaries WHERE summarizer = ? AND text_hash NOT IN "
                    "(SELECT text_hash FROM chunks)",
                    (summarizer,),
                )

    def reset(self) -> None:
        """--rebuild: forget every document, chunk and cached result."""
        with self.transaction() as db:
            for table in ("chunks", "documents", "embeddings", "summaries"):
                db.execute(f"DELETE FROM {table}")
            db.execute(
                "DELETE FROM meta WHERE key NOT IN ('schema_version', 'generation', 'index_id')"
            )
            self._set_meta("generation", str(self.generation + 1))


def _json(value: dict[str, Any] | None) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value else None
