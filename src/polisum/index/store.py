"""SQLite metadata store: documents, chunks, summaries and the embedding/summary caches.

SQLite is the source of truth. Vector and BM25 index files are derived from it and stamped
with the store's generation number, so a crash between the database commit and an index
write is repaired on the next open by rebuilding that index from here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# 2: summary provenance: chunks.summarizer / chunks.summary_info and summaries.info (JSON).
# Version-1 indexes are migrated in place (columns added); nothing is recomputed.
SCHEMA_VERSION = 2

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
    summary_info TEXT
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
    # guard flags), as recorded by polisum.summarize.llm.SummaryResult.info().
    summarizer: str | None = None
    summary_info: dict[str, Any] | None = None


@dataclass(frozen=True)
class DocumentUpdate:
    """The new state of one source file, published together with all others of an ingest."""

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


class MetadataStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each publish is one transaction.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self.transaction():
            for stmt in _SCHEMA.strip().split(";\n"):
                if stmt.strip():
                    self._db.execute(stmt)
            if self.get_meta("schema_version") is None:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
                self._set_meta("generation", "0")
        version = int(self.get_meta("schema_version") or 0)
        if version == 1:
            self._migrate_v1()
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path}: index schema version {version}, this polisum reads {SCHEMA_VERSION}; "
                "re-create it with `polisum ingest --rebuild`"
            )

    def close(self) -> None:
        self._db.close()

    def _migrate_v1(self) -> None:
        """Add the summary provenance columns. Existing summaries were made by an unknown
        summarizer: marked 'legacy', they are redone (from the caches) on the next ingest."""
        with self.transaction() as db:
            db.execute("ALTER TABLE chunks ADD COLUMN summarizer TEXT")
            db.execute("ALTER TABLE chunks ADD COLUMN summary_info TEXT")
            db.execute("ALTER TABLE summaries ADD COLUMN info TEXT")
            db.execute("UPDATE chunks SET summarizer = 'legacy' WHERE summary IS NOT NULL")
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _select_in(self, sql: str, params: list[Any], values: Iterable[Any]) -> Iterator[tuple]:
        """Rows of ``sql`` whose ``{marks}`` placeholder is filled with ``values`` 500 at a time
        (SQLite caps the number of bound parameters per statement)."""
        values = list(values)
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            yield from self._db.execute(
                sql.format(marks=",".join("?" * len(part))), [*params, *part]
            )

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

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

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- documents ------------------------------------------------------------------------
    def documents(self) -> list[DocumentRecord]:
        rows = self._db.execute(
            "SELECT id, source, content_hash, size, mtime_ns, status, error, n_chunks, metadata, "
            "ingested_at FROM documents ORDER BY source"
        ).fetchall()
        return [
            DocumentRecord(*r[:8], json.loads(r[8] or "{}"), r[9])  # type: ignore[arg-type]
            for r in rows
        ]

    def update_stat(self, source: str, size: int, mtime_ns: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE documents SET size = ?, mtime_ns = ? WHERE source = ?",
                (size, mtime_ns, source),
            )

    def count_chunks(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        ids = list(ids)
        if not ids:
            return {}
        out: dict[int, dict[str, Any]] = {}
        for r in self._select_in(
            "SELECT c.id, c.chunk_id, d.source, c.section, c.page, c.text, c.summary, "
            "c.start_char, c.end_char FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.id IN ({marks})",
            [],
            ids,
        ):
            out[r[0]] = {
                "chunk_id": r[1],
                "source": r[2],
                "section": r[3],
                "page": r[4],
                "text": r[5],
                "summary": r[6],
                "start": r[7],
                "end": r[8],
            }
        return out

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    # -- caches ---------------------------------------------------------------------------
    def cached_summaries(self, summarizer: str, hashes: Iterable[str]) -> dict[str, str]:
        return dict(self._lookup("summaries", "summary", "summarizer", summarizer, hashes))

    def cached_summary_records(
        self, summarizer: str, hashes: Iterable[str]
    ) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """text_hash → (summary, info) for the cached summaries of ``summarizer``."""
        return {
            h: (s, json.loads(i) if i else None)
            for h, (s, i) in self._lookup(
                "summaries", "summary, info", "summarizer", summarizer, hashes, pairs=True
            )
        }

    def put_summaries(
        self,
        summarizer: str,
        items: Iterable[tuple[str, str]] | Iterable[tuple[str, str, dict[str, Any] | None]],
    ) -> None:
        """Cache (text_hash, summary) or (text_hash, summary, info) items."""
        rows = []
        for item in items:
            info = item[2] if len(item) > 2 else None  # type: ignore[misc]
            rows.append(
                (
                    summarizer,
                    item[0],
                    item[1],
                    json.dumps(info, ensure_ascii=False) if info else None,
                )
            )
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO summaries(summarizer, text_hash, summary, info) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    def stale_summary_chunks(self, summarizer: str | None) -> list[tuple[int, str, str, str]]:
        """(chunk id, source, text_hash, text) of chunks whose summary was not made by
        ``summarizer`` (None: chunks that have a summary while there should be none)."""
        select = (
            "SELECT c.id, d.source, c.text_hash, c.text FROM chunks c "
            "JOIN documents d ON d.id = c.document_id "
        )
        if summarizer is None:
            return self._db.execute(select + "WHERE c.summary IS NOT NULL ORDER BY c.id").fetchall()
        return self._db.execute(
            select + "WHERE c.summarizer IS NOT ? ORDER BY c.id", (summarizer,)
        ).fetchall()

    def summary_stats(self) -> dict[str, Any]:
        """How the current summaries were made: per summarizer, LLM vs fallback counts,
        fallback reasons and the guard's unsupported-sentence rate."""
        out: dict[str, Any] = {}
        for name, info_json in self._db.execute(
            "SELECT summarizer, summary_info FROM chunks WHERE summary IS NOT NULL"
        ):
            entry = out.setdefault(
                name or "unknown",
                {"chunks": 0, "llm": 0, "fallbacks": {}, "sentences": 0, "unsupported": 0},
            )
            entry["chunks"] += 1
            info = json.loads(info_json) if info_json else {}
            if info.get("method") == "llm":
                entry["llm"] += 1
            if info.get("fallback"):
                reason = info["fallback"].split(":")[0]
                entry["fallbacks"][reason] = entry["fallbacks"].get(reason, 0) + 1
            entry["sentences"] += int(info.get("sentences", 0))
            entry["unsupported"] += int(info.get("unsupported_sentences", 0))
        for entry in out.values():
            entry["unsupported_rate"] = round(entry["unsupported"] / max(entry["sentences"], 1), 4)
        return out

    def cached_embedding_hashes(self, embedder: str, hashes: Iterable[str]) -> set[str]:
        rows = self._select_in(
            "SELECT text_hash FROM embeddings WHERE embedder = ? AND text_hash IN ({marks})",
            [embedder],
            hashes,
        )
        found = {r[0] for r in rows}
        return found

    def put_embeddings(self, embedder: str, hashes: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings(embedder, text_hash, vector) VALUES (?, ?, ?)",
                [(embedder, h, v.tobytes()) for h, v in zip(hashes, vectors, strict=True)],
            )

    def _lookup(self, table, column, key_col, key, hashes, pairs=False):
        rows = self._select_in(
            f"SELECT text_hash, {column} FROM {table} WHERE {key_col} = ? "
            "AND text_hash IN ({marks})",
            [key],
            hashes,
        )
        for row in rows:
            yield (row[0], row[1:]) if pairs else row

    def vectors(self, embedder: str, which: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every chunk's paragraph (which='text') or summary vector."""
        column = {"text": "c.text_hash", "summary": "c.summary_hash"}[which]
        rows = self._db.execute(
            f"SELECT c.id, e.vector FROM chunks c JOIN embeddings e "
            f"ON e.embedder = ? AND e.text_hash = {column} ORDER BY c.id",
            (embedder,),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return ids, vecs

    def vectors_for(self, embedder: str, which: str, dim: int, ids: list[int]):
        column = {"text": "c.text_hash", "summary": "c.summary_hash"}[which]
        out_ids, blobs = [], []
        for r in self._select_in(
            f"SELECT c.id, e.vector FROM chunks c JOIN embeddings e "
            f"ON e.embedder = ? AND e.text_hash = {column} WHERE c.id IN ({{marks}})",
            [embedder],
            ids,
        ):
            out_ids.append(r[0])
            blobs.append(r[1])
        vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)
        return np.asarray(out_ids, dtype=np.int64), vecs

    def terms(self) -> tuple[np.ndarray, list[list[str]]]:
        rows = list(self.iter_terms())
        return np.asarray([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def iter_terms(self) -> Iterator[tuple[int, list[str]]]:
        """(chunk id, BM25 terms) in id order, streamed from one SELECT (one snapshot)."""
        for chunk_id, terms in self._db.execute("SELECT id, terms FROM chunks ORDER BY id"):
            yield chunk_id, json.loads(terms)

    # -- publish ----------------------------------------------------------------------------
    def publish(
        self,
        updates: list[DocumentUpdate],
        removed_sources: list[str],
        summary_updates: Iterable[SummaryUpdate] = (),
    ) -> tuple[list[int], list[int], int]:
        """Apply an ingest in one transaction. Returns (added chunk ids, removed chunk ids,
        new generation). ``summary_updates`` replace the summaries of chunks that stay (a
        summarizer switch), keeping their ids and paragraph vectors."""
        added: list[int] = []
        removed: list[int] = []
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
                for c in u.chunks:
                    cur = db.execute(
                        "INSERT INTO chunks(chunk_id, document_id, ordinal, text, section, page, "
                        "start_char, end_char, text_hash, summary, summary_hash, terms, "
                        "summarizer, summary_info) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                            json.dumps(c.summary_info, ensure_ascii=False)
                            if c.summary_info
                            else None,
                        ),
                    )
                    added.append(cur.lastrowid)
            db.executemany(
                "UPDATE chunks SET summary = ?, summary_hash = ?, summarizer = ?, "
                "summary_info = ? WHERE id = ?",
                [
                    (
                        u.summary,
                        u.summary_hash,
                        u.summarizer,
                        json.dumps(u.info, ensure_ascii=False) if u.info else None,
                        u.chunk,
                    )
                    for u in summary_updates
                ],
            )
            generation = self.generation + 1
            self._set_meta("generation", str(generation))
        return added, removed, generation

    def prune_caches(self, embedder: str, summarizer: str | None) -> None:
        """Drop cached vectors and summaries no chunk uses, once an ingest has published."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM embeddings WHERE embedder = ? AND text_hash NOT IN "
                "(SELECT text_hash FROM chunks UNION SELECT summary_hash FROM chunks "
                "WHERE summary_hash IS NOT NULL)",
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
            db.execute("DELETE FROM meta WHERE key NOT IN ('schema_version', 'generation')")
            self._set_meta("generation", str(self.generation + 1))
