"""A query's view of one generation of a Milvus collection: each retriever's top n from Milvus,
then every candidate scored exactly by every retriever from its stored vectors (what
polisum.fusion needs to fuse as it does for the local backend), and hits hydrated from the
collection (no store needed)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from polisum.index import bm25_sparse
from polisum.index.backend import ALL_SIGNALS, Candidates, Query, SearchFilter
from polisum.index.milvus_schema import (
    STRONG,
    Lexical,
    State,
    int_list,
    term_key,
    where_expression,
)
from polisum.index.vectors import HNSW_EF_SEARCH

if TYPE_CHECKING:
    from polisum.index.milvus import MilvusBackend

_ROW_FIELDS = ("id", "chunk_id", "source", "section", "page", "text", "summary")
_PAGE = 1000  # ids per filter


@dataclass
class MilvusView:
    """One generation of the collection, for the duration of a query. Rows found by its
    searches are read again by primary key (``pk in [...]``: the very versions this generation
    holds, looked up through the primary key index) rather than by a filter on the row id and
    the generation."""

    backend: MilvusBackend
    state: State | None
    _pk: dict[int, int] = field(default_factory=dict)  # chunk row id → its version's pk

    @property
    def generation(self) -> int:
        return self.state.generation if self.state else 0

    def __len__(self) -> int:
        return self.state.chunks if self.state else 0

    def _hits(
        self, field: str, data: Any, n: int, expr: str, params: dict, fields=("id",)
    ) -> list[dict[str, Any]]:
        """The ``n`` rows of ``expr`` with the largest inner product of ``field`` and ``data``,
        best first: ``fields`` and the ``distance``."""
        b = self.backend
        hits = b._call(
            "searching",
            b.client.search,
            b.names.chunks,
            data=[data],
            anns_field=field,
            limit=n,
            filter=expr,
            output_fields=["pk", *fields],
            search_params={"metric_type": "IP", "params": params},
            consistency_level=STRONG,
        )
        out = [{**h["entity"], "distance": h["distance"]} for h in hits[0]]
        self._pk.update((h["id"], h["pk"]) for h in out)
        return out

    def _search(self, field: str, data: Any, n: int, expr: str, params: dict) -> np.ndarray:
        return np.asarray([h["id"] for h in self._hits(field, data, n, expr, params)], np.int64)

    def _by_pk(self, ids: Sequence[int], extra: str = "") -> Iterator[tuple[str, int]]:
        """(filter, how many rows it selects) for this generation's versions of ``ids``, 1,000
        at a time (``extra``: a further condition)."""
        known = [self._pk[i] for i in ids if i in self._pk]
        other = [i for i in ids if i not in self._pk]
        extra = f" and {extra}" if extra else ""
        for start in range(0, len(known), _PAGE):
            part = known[start : start + _PAGE]
            yield f"pk in {int_list(part)}{extra}", len(part)
        for start in range(0, len(other), _PAGE):
            part = other[start : start + _PAGE]
            yield f"id in {int_list(part)} and {self.state.visible}{extra}", len(part)

    def _rows(self, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        b = self.backend
        out: list[dict[str, Any]] = []
        for expr, _ in self._by_pk(ids):
            out += b._call(
                "reading",
                b.client.query,
                b.names.chunks,
                filter=expr,
                output_fields=list(fields),
                consistency_level=STRONG,
            )
        return out

    def _query_vectors(self, terms: list[str], used: Sequence[Lexical]) -> dict[str, dict]:
        """The query's side of each used BM25 (Lexical.signal → term id → count * idf) from
        this generation's vocabulary and document frequencies."""
        counts = bm25_sparse.query_counts(terms)
        if not counts or not used:
            return {}
        known = self.backend.vocabulary(self.state)
        keys = {term_key(t): t for t in counts if t not in known}
        if keys:
            b = self.backend
            rows = b._call(
                "reading",
                b.client.query,
                b.names.terms,
                filter=f"term_key in {int_list(keys)} and {self.state.visible}",
                output_fields=["term_key", "term", "term_id", *(x.df for x in b.lexical)],
                consistency_level=STRONG,
            )
            found = {keys[r["term_key"]]: r for r in rows if keys.get(r["term_key"]) == r["term"]}
            for t in keys.values():  # None: not in this generation's vocabulary
                known[t] = found.get(t)
        rows = {t: known[t] for t in counts if known.get(t) is not None}
        return {
            lex.signal: bm25_sparse.query_vector(
                counts, {t: (r["term_id"], r[lex.df]) for t, r in rows.items()}, self.state.chunks
            )
            for lex in used
        }

    def candidates(
        self,
        query: Query,
        n: int,
        use: Sequence[str] = ALL_SIGNALS,
        where: SearchFilter | None = None,
    ) -> Candidates:
        """Each used retriever's top ``n`` from Milvus, then every candidate scored exactly by
        every retriever from its stored vectors (read back by primary key in one request:
        faster on Milvus Lite than searches restricted to the candidates, and exact where an
        HNSW search restricted to a few ids may skip some)."""
        empty = Candidates(np.zeros(0, np.int64), {})
        if not self.state or not self.state.chunks:
            return empty
        expr, recheck = where_expression(where) if where else ("", False)
        expr = f"{self.state.visible} and ({expr})" if expr else self.state.visible
        dense = "dense" in use and query.vector is not None
        summary = "summary" in use and query.vector is not None and self.state.summaries > 0
        # (a collection of an earlier polisum holds fewer: MilvusBackend.lexical)
        lexical = [lex for lex in self.backend.lexical if lex.signal in use]
        ef = {"ef": max(HNSW_EF_SEARCH, n)}
        pools: list[np.ndarray] = []
        if dense:
            pools.append(self._search("dense", query.vector.tolist(), n, expr, ef))
        if summary:
            expr_s = f"{expr} and has_summary == true"
            pools.append(self._search("summary_vector", query.vector.tolist(), n, expr_s, ef))
        weights = self._query_vectors(query.terms, lexical)
        for lex in lexical:
            if weights.get(lex.signal):  # each BM25's top n joins the pool
                pools.append(self._search(lex.vector, weights[lex.signal], n, expr, {}))
        ids = np.unique(np.concatenate(pools)) if pools else np.zeros(0, np.int64)
        if not len(ids):
            return empty
        fields = [
            "id",
            *(f for lex in lexical for f in (lex.dl, lex.avgdl, lex.vector)),
            *(["dense"] if dense else []),
            *(["has_summary", "summary_vector"] if summary else []),
            *(["source"] if recheck else []),
        ]
        rows = self._rows(ids.tolist(), fields)
        if recheck:  # file types Milvus could only narrow down
            rows = [r for r in rows if where.matches(r["source"])]
        rows.sort(key=lambda r: r["id"])
        ids = np.asarray([r["id"] for r in rows], dtype=np.int64)
        signals: dict[str, np.ndarray] = {}
        for lex in lexical:
            signals[lex.signal] = bm25_sparse.exact_scores(
                weights.get(lex.signal, {}),
                [r[lex.vector] for r in rows],
                np.asarray([r[lex.dl] for r in rows], np.float64),
                np.asarray([r[lex.avgdl] for r in rows], np.float64),
                self.state.avgdl(lex),
            )
        q = np.asarray(query.vector, np.float32).ravel() if query.vector is not None else None
        if dense:
            signals["dense"] = np.asarray([r["dense"] for r in rows], np.float32) @ q
        if summary:
            scores = np.asarray([r["summary_vector"] for r in rows], np.float32) @ q
            has = np.asarray([bool(r["has_summary"]) for r in rows])
            signals["summary"] = np.where(has, scores, -np.inf).astype(np.float32)
        return Candidates(ids, signals)

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        ids = [int(i) for i in ids]
        if not self.state or not ids:
            return {}
        fields = [*_ROW_FIELDS, "start_char", "end_char"]
        out = {}
        for r in self._rows(ids, fields):
            row = {k: r.get(k) for k in _ROW_FIELDS if k != "id"}
            out[r["id"]] = {**row, "start": r["start_char"], "end": r["end_char"]}
        return out
