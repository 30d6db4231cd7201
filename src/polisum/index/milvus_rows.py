"""The rows the Milvus backend writes, made from the store: a chunk row (one version of a chunk,
with both BM25 sparse vectors, polisum.index.bm25_sparse) and a vocabulary row (a version of a
term's document frequencies among chunks and among context windows). polisum.index.
milvus_publish decides which rows a generation writes; polisum.index.milvus_schema describes
the fields."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polisum.index import bm25_sparse
from polisum.index.bm25 import context_windows
from polisum.index.milvus_conn import MilvusError
from polisum.index.milvus_schema import (
    DUMMY_DIM,
    FOREVER,
    LEXICAL,
    ROW_BITS,
    TEXT_BYTES,
    WINDOW_BM25,
    extension,
    term_key,
)
from polisum.index.view import StoreView

# A chunk with no BM25 term still needs a sparse vector (Milvus refuses empty ones): this
# dimension, which no query ever has, keeps its place.
NO_TERMS = 2**32 - 2

CHUNK_FIELDS = (
    "pk", "id", "chunk_id", "document_id", "source", "ext", "section", "page", "text",
    "summary", "start_char", "end_char", "has_summary", "gen_from", "gen_to", "dense",
    "summary_vector",
    *(f for lex in LEXICAL for f in (lex.dl, lex.avgdl, lex.exact, lex.vector)),
)  # fmt: skip
TERM_FIELDS = (
    "pk", "term_key", "term", "term_id", *(lex.df for lex in LEXICAL), "gen_from", "gen_to",
    "dummy",
)  # fmt: skip


@dataclass
class Term:
    term: str
    term_id: int
    df: dict[str, int]  # document frequency by Lexical.df field
    old: dict[str, Any] | None  # the version visible now (None: a new term)


def store_records(store: StoreView, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The store's records of chunks ``ids`` (StoreView.chunk_records), each with the terms of
    its context window (``window``), as polisum.index.bm25.context_windows makes them for the
    local backend: from the chunks of its document in reading order."""
    records = store.chunk_records(ids)
    documents = {r["document_id"] for r in records}
    wanted = {r["id"] for r in records}
    windows = {
        cid: terms
        for cid, terms in context_windows(store.iter_terms_by_document(documents))
        if cid in wanted
    }
    for r in records:
        r[WINDOW_BM25.record] = windows[r["id"]]
    return records


def statistics(rows: Iterable[tuple[int, list[str]]]) -> tuple[list[int], int, Counter[str]]:
    """(ids, sum of the documents' lengths, document frequencies) of a corpus of (id, terms)."""
    ids: list[int] = []
    total = 0
    df: Counter[str] = Counter()
    for cid, terms in rows:
        ids.append(cid)
        total += len(terms)
        df.update(set(terms))
    return ids, total, df


def chunk_row(
    record: dict[str, Any],
    generation: int,
    term_ids: Mapping[str, int],
    means: Mapping[str, float],
    dense: Mapping[int, np.ndarray],
    summary: np.ndarray | None,
    dim: int,
) -> dict[str, Any]:
    """A new version (written by ``generation``) of the chunk of ``record`` (store_records),
    its BM25 weighted with ``means`` (avgdl by Lexical.signal); ``dense``: paragraph vectors by
    chunk row id, ``summary``: its summary vector (None: no summary)."""
    cid = record["id"]
    if cid not in dense:
        raise MilvusError(f"chunk {record['chunk_id']} of {record['source']} has no vector")
    for name in ("text", "summary", "section"):
        if record[name] and len(record[name].encode("utf-8", "replace")) > TEXT_BYTES:
            raise MilvusError(
                f"{record['source']}: a chunk's {name} is over Milvus's {TEXT_BYTES}-byte "
                "text limit; lower max_chars"
            )
    row = {
        "pk": generation << ROW_BITS | cid,
        "id": cid,
        "chunk_id": record["chunk_id"],
        "document_id": record["document_id"],
        "source": record["source"],
        "ext": extension(record["source"]),
        "section": record["section"],
        "page": record["page"],
        "text": record["text"],
        "summary": record["summary"],
        "start_char": record["start"],
        "end_char": record["end"],
        "has_summary": summary is not None,
        "gen_from": generation,
        "gen_to": FOREVER,
        "dense": dense[cid].tolist(),
        "summary_vector": [0.0] * dim if summary is None else summary.tolist(),
    }
    for lex in LEXICAL:
        terms = record[lex.record]
        sparse, exact = bm25_sparse.document_vector(terms, term_ids, means[lex.signal])
        row[lex.vector] = sparse or {NO_TERMS: 1.0}
        row[lex.dl] = len(terms)
        row[lex.avgdl] = means[lex.signal]
        row[lex.exact] = exact
    return row


def term_row(t: Term, generation: int) -> dict[str, Any]:
    """A new version (written by ``generation``) of a term's vocabulary row."""
    return {
        "pk": generation << ROW_BITS | t.term_id,
        "term_key": term_key(t.term),
        "term": t.term.encode("utf-8", "replace")[:TEXT_BYTES].decode("utf-8", "ignore"),
        "term_id": t.term_id,
        **t.df,
        "gen_from": generation,
        "gen_to": FOREVER,
        "dummy": [0.0] * DUMMY_DIM,
    }
