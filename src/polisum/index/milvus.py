"""The Milvus backend: what a query needs lives in Milvus collections (polisum.index.
milvus_schema describes them), so any number of stateless query processes answer from the same
index while one ingest worker publishes to it from its SQLite store.

Generations. The store commits generation S in one SQLite transaction; the backend mirrors it
in two steps:

1. ``publish`` (inside the store's transaction) writes the collection's next generation G:
   rows invisible to queries, which read ``current`` (G-1), and a ``prepared`` record.
2. ``committed(S)`` (after the SQLite commit) makes ``prepared`` the ``current`` record, one
   row upsert: queries switch to G at once. Rows that left the collection are deleted once no
   query can still be reading them (PURGE_AFTER_S after the generation that replaced them).

A crash before the SQLite commit leaves queries on G-1 and the store on S-1: the next publish
removes the leftovers and writes G again. A crash between the commit and the switch leaves
queries on G-1 while the store is at S: the next ingest (or ``polisum index sync``) finds
``prepared`` matching the store and switches; anything else out of step (another backend used
in between, a collection deleted) is rebuilt from the store.

Queries rank as the local backend does: each retriever's top n from Milvus (dense paragraph
vectors, dense summary vectors, BM25 of the chunks and of their context windows as sparse inner
products), then every candidate scored exactly by every retriever from its stored vectors, and
fused by polisum.fusion.

A collection written by an earlier polisum (an older ``FORMAT``) is rebuilt from the store by
the ingest worker's next ingest or ``polisum index sync``; until then queries answer with the
signals it holds (no context-window BM25), and say so in the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from typing import Any

from polisum.errors import EmbedderMismatchError
from polisum.index.milvus_conn import MilvusError, MilvusSettings, connect, disconnect
from polisum.index.milvus_publish import Names, OutOfStep, Publisher
from polisum.index.milvus_schema import (
    BM25_PARAMS,
    FORMAT,
    STRONG,
    Lexical,
    State,
    check_info,
    collections,
    lexical_of,
    meta_value,
    outdated,
)
from polisum.index.milvus_view import MilvusView
from polisum.index.records import Published
from polisum.index.view import StoreView

log = logging.getLogger(__name__)
# Rows a publish replaced stay this long after it (queries that began before read them).
PURGE_AFTER_S = 300.0


class MilvusBackend:
    """An index backend on a Milvus server or a Milvus Lite file. ``store`` is None on a
    query-only replica: it then reads everything, the embedder included, from the
    collection."""

    name = "milvus"

    def __init__(
        self, settings: MilvusSettings, store: StoreView | None, vector_index: str = "auto"
    ) -> None:
        self.settings = settings
        self.store = store
        self.vector_index = vector_index
        self.names = Names.of(settings.collection)
        self._lock = threading.Lock()
        self._vocabulary: tuple[tuple[str, int], dict[str, dict | None]] = (("", -1), {})
        self._warned: str | None = None  # the outdated collection a warning was logged for
        self.client = connect(settings)
        try:
            self._info = self._open()
            # a replica queries with the embedder of the collection as it found it
            self._embedder = _embedder_of(self._info or {})
            if self._info is not None:
                self._check(store.meta() if store is not None else None)
        except BaseException:
            disconnect(settings, self.client)
            raise

    # -- collections --------------------------------------------------------------------------
    def _call(self, what: str, fn, *args, **kwargs):
        """A Milvus request; its failure as a MilvusError naming the collection."""
        try:
            return fn(*args, **kwargs)
        except (MilvusError, OutOfStep):
            raise
        except Exception as exc:
            reason = self.settings.clean(getattr(exc, "message", None) or str(exc))
            raise MilvusError(
                f"Milvus at {self.settings.display}, collection {self.names.chunks}: "
                f"{what} failed ({reason})"
            ) from None

    def _open(self) -> dict[str, Any] | None:
        """The collection's ``info`` record (None: no collection yet), collections loaded."""
        names = (self.names.chunks, self.names.terms, self.names.meta)
        present = [self._call("listing", self.client.has_collection, n) for n in names]
        if not all(present):
            return None
        for name in names:
            state = self._call("load state", self.client.get_load_state, name)["state"]
            if getattr(state, "name", str(state)) != "Loaded":
                self._call("loading", self.client.load_collection, name)
        return self._meta("info")

    def _meta(self, key: str) -> Any:
        rows = self._call(
            "reading",
            self.client.query,
            self.names.meta,
            filter=f"key == {json.dumps(key)}",
            output_fields=["value"],
            consistency_level=STRONG,
        )
        return json.loads(rows[0]["value"]) if rows else None

    def _set_meta(self, key: str, value: Any) -> None:
        self._call(
            "writing", self.client.upsert, self.names.meta, [{"key": key, **meta_value(value)}]
        )

    def _state(self, key: str = "current") -> State | None:
        value = self._meta(key) if self._info is not None else None
        return State(**value) if value else None

    def _check(self, meta: Mapping[str, str] | None) -> None:
        """The collection must hold this index, built with this index's embedder (``meta``:
        the store's record; None on a query-only replica)."""
        check_info(self._info or {}, meta, f"{self.names.chunks} at {self.settings.display}")

    def _create(self, meta: Mapping[str, str]) -> None:
        """The three collections, empty, recording the embedder and the store they serve."""
        self._drop()
        dim = int(meta["embedder_dim"])
        c = self.client
        for name, schema, index in collections(self.names, dim, c, self.vector_index):
            self._call(
                "creating", c.create_collection, name, schema=schema, consistency_level=STRONG
            )
            # sync=False: Milvus builds indexes in the background (a segment being filled is
            # searched exactly meanwhile); waiting asks for timestamps Milvus Lite cannot give
            self._call("indexing", c.create_index, name, index, sync=False)
            self._call("loading", c.load_collection, name)
        info = {
            "format": FORMAT,
            "embedder_spec": meta.get("embedder_spec"),
            "embedder": meta["embedder"],
            "embedder_dim": dim,
            "index_id": meta.get("index_id"),
            "bm25": BM25_PARAMS,
            "vector_index": self.vector_index,
            "incarnation": uuid.uuid4().hex,
        }
        self._set_meta("info", info)
        self._info = info

    def _drop(self) -> None:
        for name in (self.names.meta, self.names.chunks, self.names.terms):
            if self._call("listing", self.client.has_collection, name):
                self._call("dropping", self.client.drop_collection, name)
        self._info = None

    def recorded(self) -> dict[str, str]:
        """The embedder the collection was built with, as an index records it (for a replica
        that has no store to read it from)."""
        info = self._info or {}
        return {
            k: str(info[k]) for k in ("embedder_spec", "embedder", "embedder_dim") if info.get(k)
        }

    @property
    def exists(self) -> bool:
        return self._info is not None

    @property
    def lexical(self) -> tuple[Lexical, ...]:
        """The BM25 signals the collection holds."""
        return lexical_of(self._info or {})

    # -- queries ---------------------------------------------------------------------------------
    def vocabulary(self, state: State) -> dict[str, dict | None]:
        """Term → its vocabulary row (term id, document frequencies) looked up so far in the
        generation of ``state`` (None: not in its vocabulary). Versions never change, so lookups
        are kept until the generation does: a frequent query term costs one lookup per
        publish."""
        key = (state.incarnation, state.generation)
        cached, terms = self._vocabulary
        if cached != key or len(terms) > 200_000:
            terms = {}
            self._vocabulary = (key, terms)
        return terms

    @contextlib.contextmanager
    def view(self) -> Iterator[MilvusView]:
        try:
            if self._info is None:  # published since this process opened it?
                self._info = self._open()
            state = self._state()
        except MilvusError:
            self._info = self._open()  # dropped by a rebuild (and perhaps created again)
            state = self._state()
        if state is not None and state.incarnation != (self._info or {}).get("incarnation"):
            self._info = self._open()  # created again since this process read it
            built = _embedder_of(self._info or {})
            mine = _embedder_of(self.store.meta()) if self.store is not None else self._embedder
            if mine[0] is not None and built != mine:
                raise EmbedderMismatchError(
                    f"collection {self.names.chunks} was rebuilt with embedder '{built[0]}' "
                    f"({built[1]}-d) while this process queries with '{mine[0]}': restart it"
                )
        if outdated(self._info or {}) and self._warned != self._info.get("incarnation"):
            self._warned = self._info.get("incarnation")
            log.warning(
                "collection %s was written by an earlier polisum (format %s): queries go "
                "without context-window BM25 until `polisum index sync` (or an ingest) on the "
                "ingest worker rebuilds it",
                self.names.chunks,
                self._info.get("format"),
            )
        yield MilvusView(self, state)

    # -- publishing ------------------------------------------------------------------------------
    def _publisher(self, meta: Mapping[str, str]) -> tuple[Publisher, State | None]:
        """A publisher of the next generation, and the current one. A collection an earlier
        polisum wrote in another layout is created again (its rows are derived from the
        store, which holds everything they did)."""
        with self._lock:
            if self._info is not None:
                self._check(meta)
            if self._info is None or outdated(self._info):
                self._create(meta)
        current = self._state()
        generation = (current.generation if current else 0) + 1
        publisher = Publisher(
            self.client, self.names, meta["embedder"], int(meta["embedder_dim"]), generation
        )
        return publisher, current

    def publish(self, change: Published, store: StoreView) -> None:
        publisher, current = self._publisher(store.meta())
        self._call("cleaning up", publisher.cleanup, current)
        state = None
        same_bm25 = (self._info or {}).get("bm25") == BM25_PARAMS
        if current is not None and current.store_generation == change.generation - 1 and same_bm25:
            try:
                state = self._call("publishing", publisher.incremental, store, change, current)
            except OutOfStep as why:
                log.info("publishing generation %s whole: %s", publisher.generation, why)
                self._call("cleaning up", publisher.cleanup, current)
        if state is None:
            state = self._full(publisher, store, change.generation)
        self._prepare(state)

    def _prepare(self, state: State) -> None:
        """The generation is written: sealed, and recorded as the one to switch to."""
        self._flush()
        state = replace(state, incarnation=self._info["incarnation"])
        self._set_meta("prepared", asdict(state))

    def _flush(self) -> None:
        """Seal what a publish wrote, so that Milvus searches it through its indexes (Milvus
        Lite scans unsealed rows one by one: 10-20x slower). Only an optimisation: a server
        that refuses (Milvus rate-limits flushes) seals on its own schedule."""
        for name in (self.names.chunks, self.names.terms):
            try:
                self.client.flush(name)
            except Exception as exc:
                log.debug("flush of %s refused: %s", name, self.settings.clean(str(exc)))

    def _full(self, publisher: Publisher, store: StoreView, generation: int) -> State:
        state = self._call("publishing", publisher.full, store, generation)
        if self._info is not None and self._info.get("bm25") != BM25_PARAMS:
            self._info = {**self._info, "bm25": BM25_PARAMS}  # every row weighted anew
            self._set_meta("info", self._info)
        return state

    def committed(self, generation: int) -> None:
        prepared = self._state("prepared")
        if prepared is None or prepared.store_generation != generation:
            return
        current = self._state()
        if current is not None and current.generation >= prepared.generation:
            return
        self._set_meta("current", asdict(prepared))  # the switch: one row
        self._purge(prepared)

    def _purge(self, current: State) -> None:
        """Delete the rows no query can still be reading. A query reads the generation that
        was current when it began, so rows that left the collection at generation g (gen_to
        <= g, or written before g's floor) can go once g has been current for longer than any
        query takes (PURGE_AFTER_S), whatever happened since."""
        now = time.time()
        history = [h for h in self._meta("history") or [] if h["generation"] < current.generation]
        history.append({"generation": current.generation, "floor": current.floor, "at": now})
        settled = [h for h in history if h["at"] <= now - PURGE_AFTER_S]
        if settled:
            g = settled[-1]
            doomed = f"gen_to <= {g['generation']} or gen_from < {g['floor']}"
            for name in (self.names.chunks, self.names.terms):
                self._call("purging", self.client.delete, name, filter=doomed)
            history = [h for h in history if h["generation"] >= g["generation"]]
        self._set_meta("history", history)

    def sync(self, store: StoreView) -> dict[str, Any]:
        """Bring the collection to the store's committed generation: finish a publish whose
        switch was interrupted, or publish everything again when the collection is out of
        step. Run under the index's write lock (ingest, ``polisum index sync``)."""
        generation = store.generation
        if self._in_sync(store):
            return {"action": "none", "generation": generation}
        prepared = self._state("prepared")
        if (
            prepared is not None
            and prepared.store_generation == generation
            and (prepared.chunks, prepared.id_sum) == store.fingerprint()
        ):
            self.committed(generation)
            if self._in_sync(store):
                return {"action": "switched", "generation": generation}
        publisher, current = self._publisher(store.meta())
        self._call("cleaning up", publisher.cleanup, current)
        state = self._full(publisher, store, generation)
        self._prepare(state)
        self.committed(generation)
        return {"action": "rebuilt", "generation": generation, "chunks": state.chunks}

    def _in_sync(self, store: StoreView) -> bool:
        return self._sync_problem(store, self._state()) is None

    def _sync_problem(self, store: StoreView, state: State | None) -> str | None:
        """Why the collection does not answer for the store's committed state (None: it does)."""
        if self._info is None:
            return "no collection yet"
        self._check(store.meta())
        if state is None:
            return "nothing published yet"
        if outdated(self._info):
            return f"written by an earlier polisum (format {self._info['format']})"
        if self._info.get("bm25") != BM25_PARAMS:
            return "weighted for other BM25 parameters"
        if state.store_generation != store.generation:
            return (
                f"collection at store generation {state.store_generation}, "
                f"store at {store.generation}"
            )
        if (state.chunks, state.id_sum) != store.fingerprint():
            return "collection and store hold different chunks"
        rows = self.count(state)
        if rows != state.chunks:
            return f"{rows} rows visible, {state.chunks} expected"
        return None

    def count(self, state: State) -> int:
        rows = self._call(
            "counting",
            self.client.query,
            self.names.chunks,
            filter=state.visible,
            output_fields=["count(*)"],
            consistency_level=STRONG,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def reset(self) -> None:
        with self._lock:
            self._drop()

    def info(self) -> dict[str, Any]:
        state = self._state()
        out: dict[str, Any] = {
            "backend": self.name,
            "uri": self.settings.display,
            "collection": self.names.chunks,
            "generation": state.generation if state else 0,
            "store_generation": state.store_generation if state else None,
            "chunks": state.chunks if state else 0,
            "vector_index": (self._info or {}).get("vector_index", self.vector_index),
        }
        if state is not None:
            out["rows"] = self.count(state)
        if self.store is not None:
            problem = self._sync_problem(self.store, state)
            out["in_sync"] = problem is None
            out["sync_problem"] = problem
        return out

    def close(self) -> None:
        disconnect(self.settings, self.client)


def _embedder_of(record: Mapping[str, Any]) -> tuple[str | None, str]:
    """(name, dimension) of the embedder a store or a collection records."""
    return record.get("embedder"), str(record.get("embedder_dim"))
