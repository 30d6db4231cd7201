"""Reads of the SQLite store through one connection.

A :class:`StoreView` over a connection inside a read transaction is a consistent snapshot: the
generation number, the chunk rows and the vectors it returns all belong to the same published
state (SQLite's WAL mode gives each read transaction its own snapshot). The writer reads
through a view of its own connection, which sees its uncommitted publish.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from polisum.index.records import DocumentRecord

if TYPE_CHECKING:
    from polisum.index.backend import SearchFilter

_DOCUMENT_COLUMNS = (
    "id, source, content_hash, size, mtime_ns, status, error, n_chunks, metadata, ingested_at"
)
# A paragraph vector made from its summary's and its rest's (polisum.ingest.vectors) has a key
# of its own; the others are keyed by the text they encode.
_VECTOR_COLUMN = {"text": "COALESCE(c.vector_hash, c.text_hash)", "summary": "c.summary_hash"}


class StoreView:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _select_in(self, sql: str, params: list[Any], values: Iterable[Any]) -> Iterator[tuple]:
        """Rows of ``sql`` whose ``{marks}`` placeholder is filled with ``values`` 500 at a time
        (SQLite caps the number of bound parameters per statement)."""
        values = list(values)
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            yield from self._db.execute(
                sql.format(marks=",".join("?" * len(part))), [*params, *part]
            )

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    # -- documents and chunks -----------------------------------------------------------------
    def documents(self) -> list[DocumentRecord]:
        rows = self._db.execute(
            f"SELECT {_DOCUMENT_COLUMNS} FROM documents ORDER BY source"
        ).fetchall()
        return [_document(r) for r in rows]

    def document(self, doc_id: int) -> DocumentRecord | None:
        row = self._db.execute(
            f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        return _document(row) if row else None

    def count_chunks(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Row id → what a hit shows (chunk id, source, section, page, text, summary, span)."""
        out: dict[int, dict[str, Any]] = {}
        for r in self._select_in(
            "SELECT c.id, c.chunk_id, d.source, c.section, c.page, c.text, c.summary, "
            "c.start_char, c.end_char FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.id IN ({marks})",
            [],
            ids,
        ):
            out[r[0]] = _chunk(r)
        return out

    def chunk_records(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """Everything a backend stores about chunks besides vectors (their hit fields, document
        id and BM25 terms), in id order: what a Milvus collection is published from."""
        rows = self._select_in(
            "SELECT c.id, c.chunk_id, d.source, c.section, c.page, c.text, c.summary, "
            "c.start_char, c.end_char, c.document_id, c.terms FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})",
            [],
            ids,
        )
        out = [
            {**_chunk(r), "id": r[0], "document_id": r[9], "terms": json.loads(r[10])} for r in rows
        ]
        return sorted(out, key=lambda r: r["id"])

    def fingerprint(self) -> tuple[int, int]:
        """(number of chunks, sum of their row ids): a cheap check that a backend published
        from this store holds the same chunk set."""
        sql = "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM chunks"
        count, total = self._db.execute(sql).fetchone()
        return int(count), int(total)

    def chunk_ids(self) -> set[str]:
        """Every chunk's stable id (``Chunk.chunk_id``)."""
        return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    def chunk_ids_where(self, where: SearchFilter) -> np.ndarray:
        """Row ids of the chunks of documents ``where`` allows, ascending."""
        docs = [d.id for d in self.documents() if d.status == "ok" and where.matches(d.source)]
        ids = [r[0] for r in self._select_in(
            "SELECT id FROM chunks WHERE document_id IN ({marks})", [], docs
        )]  # fmt: skip
        return np.sort(np.asarray(ids, dtype=np.int64))

    def document_chunks(self, doc_id: int) -> list[dict[str, Any]]:
        """A document's chunks in reading order."""
        rows = self._db.execute(
            "SELECT c.id, c.chunk_id, d.source, c.section, c.page, c.text, c.summary, "
            "c.start_char, c.end_char FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.id = ? ORDER BY c.ordinal",
            (doc_id,),
        ).fetchall()
        return [_chunk(r) for r in rows]

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

    # -- vectors and terms ------------------------------------------------------------------
    def vectors(self, embedder: str, which: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every chunk's paragraph (which='text') or summary vector."""
        rows = self._db.execute(
            f"SELECT c.id, e.vector FROM chunks c JOIN embeddings e "
            f"ON e.embedder = ? AND e.text_hash = {_VECTOR_COLUMN[which]} ORDER BY c.id",
            (embedder,),
        ).fetchall()
        return _stack(rows, dim)

    def vectors_for(
        self, embedder: str, which: str, dim: int, ids: Iterable[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = list(
            self._select_in(
                f"SELECT c.id, e.vector FROM chunks c JOIN embeddings e "
                f"ON e.embedder = ? AND e.text_hash = {_VECTOR_COLUMN[which]} "
                "WHERE c.id IN ({marks})",
                [embedder],
                ids,
            )
        )
        return _stack(rows, dim)

    def iter_terms(self) -> Iterator[tuple[int, list[str]]]:
        """(chunk id, BM25 terms) in id order, streamed from one SELECT (one snapshot)."""
        for chunk_id, terms in self._db.execute("SELECT id, terms FROM chunks ORDER BY id"):
            yield chunk_id, json.loads(terms)

    def iter_terms_by_document(
        self, documents: Iterable[int] | None = None
    ) -> Iterator[tuple[int, int, list[str]]]:
        """(chunk id, document id, BM25 terms) in reading order, document by document (what
        polisum.index.bm25.context_windows reads), streamed from one SELECT (``documents``:
        only the chunks of these documents, read 500 documents at a time)."""
        sql = "SELECT id, document_id, terms FROM chunks {where} ORDER BY document_id, ordinal"
        if documents is None:
            rows: Iterable[tuple] = self._db.execute(sql.format(where=""))
        else:  # ascending batches of documents: the order holds across batches
            where = "WHERE document_id IN ({marks})"
            rows = self._select_in(sql.format(where=where), [], sorted(set(documents)))
        for chunk_id, document_id, terms in rows:
            yield chunk_id, document_id, json.loads(terms)

    # -- caches -----------------------------------------------------------------------------
    def cached_summary_records(
        self, summarizer: str, hashes: Iterable[str]
    ) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """text_hash → (summary, info) for the cached summaries of ``summarizer``."""
        rows = self._select_in(
            "SELECT text_hash, summary, info FROM summaries WHERE summarizer = ? "
            "AND text_hash IN ({marks})",
            [summarizer],
            hashes,
        )
        return {h: (s, json.loads(i) if i else None) for h, s, i in rows}

    def cached_embeddings(self, embedder: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """text_hash → cached vector of ``embedder``, for those of ``hashes`` it has."""
        rows = self._select_in(
            "SELECT text_hash, vector FROM embeddings WHERE embedder = ? AND text_hash IN "
            "({marks})",
            [embedder],
            hashes,
        )
        return {h: np.frombuffer(blob, dtype="<f4") for h, blob in rows}

    def cached_embedding_hashes(self, embedder: str, hashes: Iterable[str]) -> set[str]:
        rows = self._select_in(
            "SELECT text_hash FROM embeddings WHERE embedder = ? AND text_hash IN ({marks})",
            [embedder],
            hashes,
        )
        return {r[0] for r in rows}


def _document(r: tuple) -> DocumentRecord:
    return DocumentRecord(*r[:8], json.loads(r[8] or "{}"), r[9])  # type: ignore[arg-type]


def _chunk(r: tuple) -> dict[str, Any]:
    return {
        "chunk_id": r[1],
        "source": r[2],
        "section": r[3],
        "page": r[4],
        "text": r[5],
        "summary": r[6],
        "start": r[7],
        "end": r[8],
    }


def _stack(rows: list[tuple], dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return ids, vecs
