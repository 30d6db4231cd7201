"""A query's view of one generation of a Milvus collection: each retriever's top n from Milvus,
then every candidate scored exactly by every retriever from its stored vectors (what
polisum.fusion needs to fuse as it does for the local backend), and hits hydrated from the
collection (no store needed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from polisum.index import bm25_sparse
from polisum.index.backend import SIGNALS, Candidates, Query, SearchFilter
from polisum.index.milvus_schema import STRONG, State, int_list, term_key, where_expression
from polisum.index.vectors import HNSW_EF_SEARCH

if TYPE_CHECKING:
    from polisum.index.milvus import MilvusBackend

_ROW_FIELDS = ("id", "chunk_id", "source", "section", "page", "text", "summary")
_PART = 4096  # candidates per restricted search (Milvus returns at most 16,384 hits)


@dataclass
class MilvusView:
    """One generation of the collection, for the duration of a query."""

    backend: MilvusBackend
    state: State | None

    @property
    def generation(self) -> int:
        return self.state.generation if self.state else 0

    def __len__(self) -> int:
        return self.state.chunks if self.state else 0

    def _search(self, field: str, data: Any, n: int, expr: str, params: dict) -> np.ndarray:
        b = self.backend
        hits = b._call(
            "searching",
            b.client.search,
            b.names.chunks,
            data=[data],
            anns_field=field,
            limit=n,
            filter=expr,
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": params},
            consistency_level=STRONG,
        )
        return np.asarray([h["entity"]["id"] for h in hits[0]], dtype=np.int64)

    def _rows(self, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        b = self.backend
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 1000):
            part = ids[start : start + 1000]
            out += b._call(
                "reading",
                b.client.query,
                b.names.chunks,
                filter=f"id in {int_list(part)} and {self.state.visible}",
                output_fields=list(fields),
                consistency_level=STRONG,
            )
        return out

    def _query_vector(self, terms: list[str]) -> dict[int, float]:
        """The query's BM25 side (term id → count * idf) from this generation's vocabulary."""
        counts = bm25_sparse.query_counts(terms)
        if not counts:
            return {}
        known = self.backend.vocabulary(self.state.generation)
        keys = {term_key(t): t for t in counts if t not in known}
        if keys:
            b = self.backend
            rows = b._call(
                "reading",
                b.client.query,
                b.names.terms,
                filter=f"term_key in {int_list(keys)} and {self.state.visible}",
                output_fields=["term_key", "term", "term_id", "df"],
                consistency_level=STRONG,
            )
            found = {keys[r["term_key"]]: r for r in rows if keys.get(r["term_key"]) == r["term"]}
            for t in keys.values():  # None: not in this generation's vocabulary
                known[t] = (found[t]["term_id"], found[t]["df"]) if t in found else None
        vocabulary = {t: known[t] for t in counts if known.get(t) is not None}
        return bm25_sparse.query_vector(counts, vocabulary, self.state.chunks)

    def _scores(
        self, field: str, data: Any, ids: Sequence[int], expr: str, params: dict, fields=("id",)
    ) -> dict[int, dict[str, Any]]:
        """Milvus's inner product of ``field`` with ``data`` for each of ``ids`` (hit: its
        ``distance`` and ``fields``), by searches restricted to them. An id missing is absent
        from ``expr``, shares no term with a sparse query, or was skipped by an approximate
        (HNSW) search: the callers tell which."""
        out: dict[int, dict[str, Any]] = {}
        b = self.backend
        for start in range(0, len(ids), _PART):
            part = ids[start : start + _PART]
            hits = b._call(
                "scoring",
                b.client.search,
                b.names.chunks,
                data=[data],
                anns_field=field,
                limit=len(part),
                filter=f"id in {int_list(part)} and {expr}",
                output_fields=list(fields),
                search_params={"metric_type": "IP", "params": params},
                consistency_level=STRONG,
            )
            for h in hits[0]:
                out[h["entity"]["id"]] = {**h["entity"], "distance": h["distance"]}
        return out

    def _dense_scores(
        self, field: str, vector: np.ndarray, ids: list[int], only: str = ""
    ) -> np.ndarray:
        """Exact inner products of ``field`` with ``vector`` (float32, aligned with ``ids``;
        -inf for rows ``only`` excludes: those without a summary)."""
        params = {"ef": max(HNSW_EF_SEARCH, min(len(ids), _PART))}
        expr = f"{self.state.visible} and {only}" if only else self.state.visible
        hits = self._scores(field, vector.tolist(), ids, expr, params)
        scores = {i: h["distance"] for i, h in hits.items()}
        missing = [i for i in ids if i not in scores]
        if missing:  # skipped by an approximate search, or excluded: read the vectors
            fields = ["id", field, *(["has_summary"] if only else [])]
            for r in self._rows(missing, fields):
                if not only or r["has_summary"]:
                    scores[r["id"]] = float(np.asarray(r[field], np.float32) @ vector)
        return np.asarray([scores.get(i, -np.inf) for i in ids], np.float32)

    def _bm25_scores(self, weights: dict[int, float], ids: list[int]) -> np.ndarray:
        """Exact BM25: Milvus's sparse inner product for rows weighted with today's avgdl,
        recomputed from the stored term frequencies for the others (bm25_sparse); 0 for rows
        that share no term with the query."""
        hits = self._scores(
            "sparse", weights, ids, self.state.visible, {}, fields=("id", "bm25_avgdl")
        )
        out = np.asarray([hits[i]["distance"] if i in hits else 0.0 for i in ids], np.float32)
        drifted = [i for i, h in hits.items() if h["bm25_avgdl"] != self.state.avgdl]
        if drifted:
            rows = {r["id"]: r for r in self._rows(drifted, ["id", "sparse", "dl", "bm25_avgdl"])}
            rows = [rows[i] for i in drifted]
            exact = bm25_sparse.exact_scores(
                weights,
                [r["sparse"] for r in rows],
                np.asarray([r["dl"] for r in rows], np.float64),
                np.asarray([r["bm25_avgdl"] for r in rows], np.float64),
                self.state.avgdl,
            )
            at = {i: k for k, i in enumerate(ids)}
            for i, score in zip(drifted, exact, strict=True):
                out[at[i]] = score
        return out

    def candidates(
        self,
        query: Query,
        n: int,
        use: Sequence[str] = SIGNALS,
        where: SearchFilter | None = None,
    ) -> Candidates:
        """Each used retriever's top ``n`` from Milvus, then every candidate scored by every
        retriever: dense scores by searches restricted to the candidates (exact inner products;
        vectors read back only where an approximate search skipped one), BM25 exactly."""
        empty = Candidates(np.zeros(0, np.int64), {})
        if not self.state or not self.state.chunks:
            return empty
        expr, recheck = where_expression(where) if where else ("", False)
        expr = f"{self.state.visible} and ({expr})" if expr else self.state.visible
        dense = "dense" in use and query.vector is not None
        summary = "summary" in use and query.vector is not None and self.state.summaries > 0
        bm25 = "bm25" in use
        ef = {"ef": max(HNSW_EF_SEARCH, n)}
        pools: list[np.ndarray] = []
        if dense:
            pools.append(self._search("dense", query.vector.tolist(), n, expr, ef))
        if summary:
            expr_s = f"{expr} and has_summary == true"
            pools.append(self._search("summary_vector", query.vector.tolist(), n, expr_s, ef))
        weights = self._query_vector(query.terms) if bm25 else {}
        if weights:
            pools.append(self._search("sparse", weights, n, expr, {}))
        ids = np.unique(np.concatenate(pools)) if pools else np.zeros(0, np.int64)
        if recheck:  # file types Milvus could only narrow down
            sources = {r["id"]: r["source"] for r in self._rows(ids.tolist(), ["id", "source"])}
            ids = np.asarray([i for i in ids if where.matches(sources[int(i)])], np.int64)
        if not len(ids):
            return empty
        ids_list = ids.tolist()
        signals: dict[str, np.ndarray] = {}
        if bm25:
            no_terms = np.zeros(len(ids), np.float32)
            signals["bm25"] = self._bm25_scores(weights, ids_list) if weights else no_terms
        q = np.asarray(query.vector, np.float32).ravel() if query.vector is not None else None
        if dense:
            signals["dense"] = self._dense_scores("dense", q, ids_list)
        if summary:
            signals["summary"] = self._dense_scores(
                "summary_vector", q, ids_list, only="has_summary == true"
            )
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
