"""Writing a generation into the Milvus collections, from the store.

Every row a publish writes is invisible to queries until the generation it belongs to becomes
``current`` (polisum.index.milvus): new chunk versions carry ``gen_from = G`` (above what
queries read), and retired ones only get ``gen_to = G`` (they stay visible to generation G-1).
So a publish can stop anywhere (a crash, an error, a SQLite rollback) without queries seeing a
half-written state; :meth:`Publisher.cleanup` removes what an interrupted publish left before
the next one starts.

Two ways to a generation:
- incremental: the chunks a store publish added, removed or re-summarized, plus rows whose
  BM25 weights (of the chunk or of its context window) were made with an avgdl too far from
  today's (bm25_sparse.AVGDL_TOLERANCE); the document frequencies of the terms involved get new
  versions. Unchanged chunks are not touched. A store publish replaces documents whole, so the
  context windows that change are exactly those of the chunks it adds and removes.
- full: every chunk and term written again, with ``floor = G`` so that rows of earlier
  generations are not part of it. Used for the first publish, when the collection is not at
  the store's previous generation (an interrupted sync, another backend in between), and when
  re-weighting would touch a large part of the collection anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polisum.index import bm25_sparse
from polisum.index.bm25 import context_windows
from polisum.index.milvus_rows import (
    CHUNK_FIELDS,
    NO_TERMS,
    TERM_FIELDS,
    Term,
    chunk_row,
    statistics,
    store_records,
    term_row,
)
from polisum.index.milvus_schema import (
    BM25,
    FOREVER,
    LEXICAL,
    WINDOW_BM25,
    State,
    int_list,
    term_key,
)
from polisum.index.records import Published
from polisum.index.view import StoreView

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# Re-weighting more than this fraction of the rows is done as a full publish (cheaper: old rows
# need not be read back to retire them).
FULL_REWRITE_FRACTION = 0.3
BATCH_ROWS = 500
BATCH_BYTES = 8 << 20
PAGE = 1000


@dataclass(frozen=True)
class Names:
    chunks: str
    terms: str
    meta: str

    @classmethod
    def of(cls, collection: str) -> Names:
        return cls(collection, f"{collection}_terms", f"{collection}_meta")


class Publisher:
    """Writes generation ``generation`` of the collections from a store view."""

    def __init__(
        self, client: MilvusClient, names: Names, embedder: str, dim: int, generation: int
    ) -> None:
        self.client = client
        self.names = names
        self.embedder = embedder
        self.dim = dim
        self.generation = generation

    # -- reading back ---------------------------------------------------------------------------
    def _query(self, collection: str, expr: str, fields: Sequence[str], limit: int | None = None):
        return self.client.query(
            collection,
            filter=expr,
            output_fields=list(fields),
            limit=limit,
            consistency_level="Strong",
        )

    def _by_ids(
        self, collection: str, field: str, ids: Iterable[int], expr: str, fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        ids = sorted(set(ids))
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), PAGE):
            part = ids[start : start + PAGE]
            out += self._query(collection, f"{field} in {int_list(part)} and {expr}", fields)
        return out

    def _drain(self, collection: str, expr: str, fields: Sequence[str]) -> Iterator[list[dict]]:
        """Pages of rows matching ``expr``, for a caller that changes each page so that it no
        longer matches (Milvus has no cursor both Milvus and Milvus Lite serve)."""
        while True:
            page = self._query(collection, expr, fields, limit=PAGE)
            if not page:
                return
            yield page

    def count(self, collection: str, expr: str) -> int:
        rows = self._query(collection, expr, ["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # -- writing --------------------------------------------------------------------------------
    def _write(self, collection: str, rows: list[dict[str, Any]], upsert: bool = False) -> None:
        write = self.client.upsert if upsert else self.client.insert
        batch: list[dict[str, Any]] = []
        size = 0
        for row in rows:
            batch.append(row)
            size += len(row.get("text") or "") * 3 + 8 * self.dim
            size += sum(8 * len(row.get(lex.vector, ())) for lex in LEXICAL)
            if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                write(collection, batch)
                batch, size = [], 0
        if batch:
            write(collection, batch)

    def _retire(self, collection: str, rows: list[dict[str, Any]]) -> None:
        """The versions ``rows`` end before this generation (they stay visible to the one
        before it). Milvus upserts whole rows, so they are written back whole."""
        self._write(collection, [{**r, "gen_to": self.generation} for r in rows], upsert=True)

    def cleanup(self, current: State | None) -> None:
        """Undo what a publish interrupted after ``current`` left behind: rows it wrote are
        deleted, rows it retired are made current again."""
        g = current.generation if current else 0
        for collection, fields in (
            (self.names.chunks, CHUNK_FIELDS),
            (self.names.terms, TERM_FIELDS),
        ):
            self.client.delete(collection, filter=f"gen_from > {g}")
            for page in self._drain(collection, f"gen_to > {g} and gen_to < {FOREVER}", fields):
                self._write(collection, [{**r, "gen_to": FOREVER} for r in page], upsert=True)

    # -- chunk rows -----------------------------------------------------------------------------
    def _chunk_rows(
        self,
        store: StoreView,
        ids: Sequence[int],
        term_ids: dict[str, int],
        means: dict[str, float],
        current: State | None = None,
    ) -> list[dict[str, Any]]:
        """New versions of chunks ``ids`` from the store, weighted with ``means`` (avgdl by
        Lexical.signal). Term ids missing from ``term_ids`` are those of terms ``current`` has
        (a re-written chunk's): looked up, and kept."""
        records = store_records(store, ids)
        missing = {
            t for r in records for lex in LEXICAL for t in r[lex.record] if t not in term_ids
        }
        if missing:
            found = self._lookup_terms(current, missing) if current else {}
            if len(found) != len(missing):
                raise OutOfStep("the BM25 vocabulary lacks terms of chunks it holds")
            term_ids.update((t, r["term_id"]) for t, r in found.items())
        dense = dict(zip(*store.vectors_for(self.embedder, "text", self.dim, ids), strict=True))
        summary = dict(
            zip(*store.vectors_for(self.embedder, "summary", self.dim, ids), strict=True)
        )
        return [
            chunk_row(r, self.generation, term_ids, means, dense, summary.get(r["id"]), self.dim)
            for r in records
        ]

    # -- full -----------------------------------------------------------------------------------
    def full(self, store: StoreView, store_generation: int) -> State:
        """Every chunk and term of ``store`` as generation ``self.generation``."""
        corpora = {  # each Lexical's documents: the chunks, and their context windows
            BM25.signal: store.iter_terms(),
            WINDOW_BM25.signal: context_windows(store.iter_terms_by_document()),
        }
        ids: list[int] = []
        totals: dict[str, int] = {}
        df: dict[str, Counter[str]] = {}
        for lex in LEXICAL:
            ids, totals[lex.signal], df[lex.df] = statistics(corpora[lex.signal])
        ids.sort()  # both corpora hold every chunk once, the windows in reading order
        # one vocabulary: a window's terms are terms of chunks of its document
        term_ids = {t: i for i, t in enumerate(sorted(df[BM25.df]))}
        terms = [Term(t, i, {f: c[t] for f, c in df.items()}, None) for t, i in term_ids.items()]
        self._write(self.names.terms, [term_row(t, self.generation) for t in terms])
        means = {s: bm25_sparse.avgdl(total, len(ids)) for s, total in totals.items()}
        summaries = 0
        for part in _parts(ids, BATCH_ROWS * 4):
            rows = self._chunk_rows(store, part, term_ids, means)
            self._write(self.names.chunks, rows)
            summaries += sum(r["has_summary"] for r in rows)
        g = self.generation
        return State(
            generation=g,
            floor=g,
            store_generation=store_generation,
            chunks=len(ids),
            terms=totals[BM25.signal],
            window_terms=totals[WINDOW_BM25.signal],
            summaries=summaries,
            next_term=len(terms),
            id_sum=sum(ids),
        )

    # -- incremental ------------------------------------------------------------------------------
    def incremental(self, store: StoreView, change: Published, current: State) -> State:
        """Generation ``self.generation`` as ``current`` plus ``change``. Raises OutOfStep when
        the collection does not hold what the store held before, or when re-weighting would
        touch much of it: a full publish is then the way."""
        visible = current.visible
        retired = set(change.removed) | set(change.summaries_changed)
        old = self._by_ids(self.names.chunks, "id", retired, visible, CHUNK_FIELDS)
        if len(old) != len(retired):
            raise OutOfStep("chunks the store replaces are not in the collection")
        added = store_records(store, change.added)
        gone = set(change.removed)
        removed = [r for r in old if r["id"] in gone]
        chunks = current.chunks + len(added) - len(removed)
        id_sum = current.id_sum + sum(change.added) - sum(change.removed)
        if (chunks, id_sum) != store.fingerprint():
            raise OutOfStep("the collection does not hold the store's previous chunks")
        totals = {
            lex.signal: getattr(current, lex.total)
            + sum(len(r[lex.record]) for r in added)
            - sum(r[lex.dl] for r in removed)
            for lex in LEXICAL
        }
        means = {s: bm25_sparse.avgdl(total, chunks) for s, total in totals.items()}
        drift = self._drifted(current, means)
        drifting = self.count(self.names.chunks, drift) - sum(
            self.count(self.names.chunks, f"{drift} and id in {int_list(part)}")
            for part in _parts(sorted(retired))
        )
        if drifting > FULL_REWRITE_FRACTION * max(chunks, 1):
            raise OutOfStep(f"{drifting} chunks to re-weight")

        vocabulary = self._vocabulary(current, added, removed)
        terms_changed = [
            t
            for t in vocabulary.values()
            if t.old is None or any(t.old[f] != n for f, n in t.df.items())
        ]
        self._retire(self.names.terms, [t.old for t in terms_changed if t.old is not None])
        # a term no chunk holds any more (then no window either) leaves the vocabulary
        self._write(
            self.names.terms, [term_row(t, self.generation) for t in terms_changed if t.df[BM25.df]]
        )

        term_ids = {t.term: t.term_id for t in vocabulary.values()}
        summaries = current.summaries - sum(bool(r["has_summary"]) for r in old)
        self._retire(self.names.chunks, old)
        rewrite = [*change.added, *change.summaries_changed]
        for part in _parts(rewrite, BATCH_ROWS * 4):
            rows = self._chunk_rows(store, part, term_ids, means, current)
            self._write(self.names.chunks, rows)
            summaries += sum(r["has_summary"] for r in rows)
        # retired rows no longer match ``drift`` (their gen_to is this generation), nor do the
        # rows drained below once re-written
        for page in self._drain(self.names.chunks, drift, CHUNK_FIELDS):
            rows = self._chunk_rows(store, [r["id"] for r in page], term_ids, means, current)
            self._write(self.names.chunks, rows)
            self._retire(self.names.chunks, page)
        next_term = max([current.next_term, *(t.term_id + 1 for t in vocabulary.values())])
        return State(
            generation=self.generation,
            floor=current.floor,
            store_generation=change.generation,
            chunks=chunks,
            terms=totals[BM25.signal],
            window_terms=totals[WINDOW_BM25.signal],
            summaries=summaries,
            next_term=next_term,
            id_sum=id_sum,
        )

    def _drifted(self, current: State, means: dict[str, float]) -> str:
        """Rows of ``current``, not retired yet, whose weights (of either BM25) must be made
        again for the avgdl ``means``: made with an avgdl beyond the tolerance, or not
        invertible and not made with exactly today's."""
        stale = []
        for lex in LEXICAL:
            mean = means[lex.signal]
            lo, hi = (mean * (1 + s * bm25_sparse.AVGDL_TOLERANCE) for s in (-1, 1))
            stale.append(
                f"{lex.avgdl} < {lo!r} or {lex.avgdl} > {hi!r} or "
                f"({lex.exact} == false and {lex.avgdl} != {mean!r})"
            )
        return f"{current.visible} and gen_to == {FOREVER} and ({' or '.join(stale)})"

    def _vocabulary(
        self, current: State, added: list[dict[str, Any]], removed: list[dict[str, Any]]
    ) -> dict[str, Term]:
        """The terms of added and removed chunks (and of their windows), with their new
        document frequencies."""
        delta: dict[str, Counter[str]] = {lex.df: Counter() for lex in LEXICAL}
        lost: dict[str, Counter[int]] = {lex.df: Counter() for lex in LEXICAL}
        for lex in LEXICAL:
            for r in added:
                delta[lex.df].update(set(r[lex.record]))
            for r in removed:
                lost[lex.df].update(t for t in r[lex.vector] if t != NO_TERMS)
        found = self._lookup_terms(current, {t for d in delta.values() for t in d})
        lost_ids = {t for c in lost.values() for t in c}
        by_id = self._by_ids(self.names.terms, "term_id", lost_ids, current.visible, TERM_FIELDS)
        if len(by_id) != len(lost_ids):
            raise OutOfStep("the BM25 vocabulary lacks terms of removed chunks")
        found |= {r["term"]: r for r in by_id}
        next_id = current.next_term
        out: dict[str, Term] = {}
        for term in sorted(set(found).union(*delta.values())):
            row = found.get(term)
            if row is None:
                out[term] = Term(term, next_id, {f: 0 for f in delta}, None)
                next_id += 1
            else:
                out[term] = Term(term, row["term_id"], {f: row[f] for f in delta}, row)
        for t in out.values():
            for f in t.df:
                t.df[f] += delta[f].get(t.term, 0) - lost[f].get(t.term_id, 0)
                if t.df[f] < 0:
                    raise OutOfStep(f"term '{t.term}': document frequency ({f}) below 0")
        return out

    def _lookup_terms(self, current: State, terms: set[str]) -> dict[str, dict[str, Any]]:
        """The versions of ``terms`` visible in ``current``, by term."""
        keys = {term_key(t): t for t in terms}
        rows = self._by_ids(self.names.terms, "term_key", keys, current.visible, TERM_FIELDS)
        return {r["term"]: r for r in rows if keys.get(r["term_key"]) == r["term"]}


class OutOfStep(Exception):
    """The collection cannot be brought to the next generation incrementally."""


def _parts(values: Sequence[int], size: int = PAGE) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
