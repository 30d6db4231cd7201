"""Ingest: scan → load → chunk → summarize → embed → publish, resumable and atomic.

Expensive results (summaries, vectors) are committed to caches in SQLite as they are made,
so an interrupted ingest loses no model work. The documents and chunks of one ingest are then
published in a single transaction: readers see the old index or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from polisum.chunking import Chunker
from polisum.embed import Embedder
from polisum.index.store import (
    ChunkRow,
    DocumentRecord,
    DocumentUpdate,
    MetadataStore,
    SummaryUpdate,
)
from polisum.loaders import LoaderRegistry, LoadError
from polisum.summarize import Summarizer
from polisum.text import terms_many
from polisum.types import text_hash

SUMMARY_BATCH = 32
EMBED_BATCH = 64
TERMS_BATCH = 512


def crashpoint(name: str) -> None:
    """Fault injection for the crash tests: POLISUM_CRASH_AT=name kills the process here,
    as kill -9 would (no cleanup, no atexit)."""
    if os.environ.get("POLISUM_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class FileFailure:
    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "reason": self.reason}


@dataclass
class IngestReport:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    ignored: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    summaries_updated: int = 0
    seconds: float = 0.0
    failures: list[FileFailure] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        return self.new + self.changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": {
                "new": self.new,
                "changed": self.changed,
                "unchanged": self.unchanged,
                "failed": self.failed,
                "removed": self.removed,
                "ignored": self.ignored,
            },
            "chunks": {
                "added": self.chunks_added,
                "removed": self.chunks_removed,
                "total": self.chunks_total,
                "summaries_updated": self.summaries_updated,
            },
            "seconds": round(self.seconds, 3),
            "failures": [f.to_dict() for f in self.failures],
        }


def source_name(path: Path, project_root: Path) -> str:
    """How a file is named in the index: relative to the project (the folder holding the
    index) when inside it, so the project can move; absolute otherwise. Names that are not
    valid UTF-8 are stored with replacement characters."""
    try:
        name = path.relative_to(project_root).as_posix()
    except ValueError:
        name = path.as_posix()
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def scan(folder: Path, registry: LoaderRegistry) -> tuple[list[Path], int]:
    """Supported files under ``folder`` (hidden folders and symlinked folders are skipped,
    so a symlink loop cannot recurse), and the count of files ignored as unsupported."""
    found: list[Path] = []
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if registry.supports(path):
                found.append(path)
            else:
                ignored += 1
    return found, ignored


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _SpeedColumn(ProgressColumn):
    """Throughput of tasks that report it (the summarize task: paragraphs/s and tokens/s)."""

    def render(self, task: Task) -> Text:
        tokens = task.fields.get("tokens")
        elapsed = task.elapsed or 0.0
        if tokens is None or not elapsed or not task.completed:
            return Text("")
        return Text(
            f"{task.completed / elapsed:.1f} para/s · {tokens / elapsed:.0f} tok/s", style="cyan"
        )


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        _SpeedColumn(),
        disable=not enabled,
        transient=False,
    )


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class _Parsed:
    path: Path
    source: str
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    chunks: list = field(default_factory=list)
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Ingestor:
    def __init__(
        self,
        store: MetadataStore,
        registry: LoaderRegistry,
        chunker: Chunker,
        embedder: Embedder,
        summarizer: Summarizer | None,
        project_root: Path,
        on_published: Callable[[list[int], list[int], int], None],
    ) -> None:
        self.store = store
        self.registry = registry
        self.chunker = chunker
        self.embedder = embedder
        self.summarizer = summarizer
        self.project_root = project_root
        self.on_published = on_published

    def run(
        self, folder: Path, *, prune: bool = True, force: bool = False, progress: bool = False
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        folder = folder.resolve()
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        files, report.ignored = scan(folder, self.registry)
        known = {d.source: d for d in self.store.documents()}

        with _progress(progress) as bar:
            todo = self._select(files, known, force, report, bar)
            seen = {p.source for p in todo} | {source_name(f, self.project_root) for f in files}
            removed_sources = []
            if prune:
                for source, doc in known.items():
                    if source not in seen and self._is_under(source, folder):
                        removed_sources.append(doc.source)
            # Chunks that stay but whose summary another summarizer made (a switch, a new
            # prompt version): only their summaries are redone, their paragraph vectors stay.
            redo = {p.source for p in todo} | set(removed_sources)
            name = self.summarizer.name if self.summarizer else None
            stale = [r for r in self.store.stale_summary_chunks(name) if r[1] not in redo]
            parsed = self._parse(todo, bar)
            crashpoint("after_parse")
            chunk_texts = {text_hash(c.text): c.text for p in parsed for c in p.chunks}
            texts = chunk_texts | {h: text for _, _, h, text in stale}
            summaries = self._summarize(texts, bar)
            self._embed(texts, summaries, bar)
            chunk_terms = self._terms(chunk_texts, bar)

        updates = [self._update(p, summaries, chunk_terms) for p in parsed]
        summary_updates = [self._summary_update(cid, h, summaries) for cid, _, h, _ in stale]
        for p in parsed:
            if p.error:
                report.failed += 1
                report.failures.append(FileFailure(p.source, p.error))
            elif p.source in known:
                report.changed += 1
            else:
                report.new += 1
        report.removed = len(removed_sources)

        if updates or removed_sources or summary_updates:
            crashpoint("before_publish")
            added, removed, generation = self.store.publish(
                updates, removed_sources, summary_updates
            )
            crashpoint("after_publish")
            report.chunks_added, report.chunks_removed = len(added), len(removed)
            report.summaries_updated = len(summary_updates)
            self.on_published(
                added, removed, generation, summaries_changed=[u.chunk for u in summary_updates]
            )
            crashpoint("after_index_write")
            self.store.prune_caches(
                self.embedder.name, self.summarizer.name if self.summarizer else None
            )
        report.chunks_total = self.store.count_chunks()
        report.seconds = time.perf_counter() - started
        return report

    def _is_under(self, source: str, folder: Path) -> bool:
        path = Path(source)
        if not path.is_absolute():
            path = self.project_root / path
        return path == folder or folder in path.parents

    def _select(self, files, known: dict[str, DocumentRecord], force, report, bar) -> list[_Parsed]:
        """Files to (re)process. Size and mtime equal to the recorded ones mean unchanged (as
        git does); otherwise the content hash decides, so a touched file is not re-embedded."""
        task = bar.add_task("scan", total=len(files))
        todo = []
        for path in files:
            bar.advance(task)
            source = source_name(path, self.project_root)
            record = known.get(source)
            try:
                st = path.stat()
            except OSError as exc:
                todo.append(_Parsed(path, source, None, None, None, error=_os_reason(exc)))
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
                todo.append(_Parsed(path, source, None, None, None, error="not a regular file"))
                continue
            if (
                not force
                and record
                and record.status == "ok"
                and (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns)
            ):
                report.unchanged += 1
                continue
            try:
                digest = file_hash(path)
            except OSError as exc:
                todo.append(_Parsed(path, source, None, st.st_size, None, error=_os_reason(exc)))
                continue
            if not force and record and record.status == "ok" and record.content_hash == digest:
                report.unchanged += 1
                # Same content under a new mtime: record the new stat so the next scan is cheap.
                self.store.update_stat(source, st.st_size, st.st_mtime_ns)
                continue
            todo.append(_Parsed(path, source, digest, st.st_size, st.st_mtime_ns))
        return todo

    def _parse(self, todo: list[_Parsed], bar) -> list[_Parsed]:
        task = bar.add_task("parse", total=len(todo))
        for item in todo:
            bar.advance(task)
            if item.error:
                continue
            try:
                document = self.registry.load(item.path)
                chunks = self.chunker.chunk(document, item.source)
                if not chunks:
                    raise LoadError(item.path, "no text found")
            except LoadError as exc:
                item.error = exc.reason
                continue
            except Exception as exc:  # a loader bug must not stop the other files
                item.error = f"unexpected {type(exc).__name__}: {exc}"
                continue
            item.chunks = chunks
            item.metadata = {k: v for k, v in document.metadata.items() if _jsonable(v)}
        return todo

    def _summarize(self, texts: dict[str, str], bar) -> dict[str, Made]:
        """text_hash → summary for every chunk, from the cache or made now (cached per batch)."""
        if self.summarizer is None:
            return {}
        task = bar.add_task("summarize", total=None, tokens=0)
        tokens_done = 0

        def on_batch(paragraphs: int, tokens: int) -> None:
            nonlocal tokens_done
            tokens_done += tokens
            bar.update(task, advance=paragraphs, tokens=tokens_done)

        def on_start(missing: int) -> None:
            bar.update(task, total=missing)

        return summarize_cached(self.summarizer, texts, self.store, on_start, on_batch)

    def _embed(self, chunk_texts: dict[str, str], summaries: dict[str, Made], bar) -> None:
        texts: dict[str, str] = {}
        for h, text in chunk_texts.items():
            texts[h] = text
            made = summaries.get(h)
            if made and made.summary:
                texts[text_hash(made.summary)] = made.summary
        name = self.embedder.name
        cached = self.store.cached_embedding_hashes(name, texts)
        missing = [h for h in texts if h not in cached]
        task = bar.add_task("embed", total=len(missing))
        for i, batch in enumerate(_batches(missing, EMBED_BATCH)):
            vectors = self.embedder.embed_documents([texts[h] for h in batch])
            self.store.put_embeddings(name, batch, vectors)
            bar.advance(task, len(batch))
            if i == 0:
                crashpoint("during_embed")

    def _terms(self, texts: dict[str, str], bar) -> dict[str, list[str]]:
        """text_hash → BM25 terms. Kiwi is the slowest CPU step after the models (~4-8 ms a
        paragraph), so it runs batched on all cores, with its own progress bar."""
        task = bar.add_task("terms", total=len(texts))
        out: dict[str, list[str]] = {}
        for batch in _batches(list(texts), TERMS_BATCH):
            out.update(zip(batch, terms_many([texts[h] for h in batch]), strict=True))
            bar.advance(task, len(batch))
        return out

    def _summary_update(self, chunk: int, h: str, summaries: dict[str, Made]) -> SummaryUpdate:
        made = summaries.get(h)
        summary = made.summary if made else None
        return SummaryUpdate(
            chunk=chunk,
            summary=summary,
            summary_hash=text_hash(summary) if summary else None,
            summarizer=made.summarizer if made else None,
            info=made.info if made else None,
        )

    def _update(
        self, p: _Parsed, summaries: dict[str, Made], chunk_terms: dict[str, list[str]]
    ) -> DocumentUpdate:
        rows = []
        for c in p.chunks:
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
                    terms=chunk_terms[h],
                    summarizer=made.summarizer if made else None,
                    summary_info=made.info if made else None,
                )
            )
        return DocumentUpdate(
            source=p.source,
            content_hash=p.content_hash,
            size=p.size,
            mtime_ns=p.mtime_ns,
            status="failed" if p.error else "ok",
            error=p.error,
            chunks=rows,
            metadata=p.metadata,
        )


@dataclass(frozen=True)
class Made:
    """A chunk's summary, the summarizer it is recorded under and how it was made.

    ``summarizer`` is None for a fallback after a failed request: the chunk then counts as
    stale, and the next ingest tries the LLM again instead of keeping the fallback for good."""

    summary: str
    summarizer: str | None
    info: dict[str, Any] | None = None


def summarize_cached(
    summarizer: Summarizer,
    texts: dict[str, str],
    store: MetadataStore | None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, Made]:
    """text_hash → Made for ``texts`` (text_hash → text): cached summaries from ``store``, the
    rest made in batches and cached as they come (an interrupted run keeps its model work).

    ``on_batch(paragraphs, tokens)`` reports progress. Summarizers with ``summarize_detailed``
    (the LLM one) also record fallbacks and guard flags."""
    name = summarizer.name
    out: dict[str, Made] = {}
    if store is not None:
        for h, (summary, info) in store.cached_summary_records(name, texts).items():
            out[h] = Made(summary, name, info)
    missing = [h for h in texts if h not in out]
    if on_start:
        on_start(len(missing))
    detailed = getattr(summarizer, "summarize_detailed", None)
    for batch in _batches(missing, SUMMARY_BATCH):
        batch_texts = [texts[h] for h in batch]
        if detailed is not None:
            results = detailed(batch_texts)
            made = [Made(r.summary, name if r.cacheable else None, r.info()) for r in results]
            tokens = sum(r.prompt_tokens + r.completion_tokens for r in results)
        else:
            made = [Made(s, name) for s in summarizer.summarize(batch_texts)]
            tokens = 0
        if store is not None:
            store.put_summaries(
                name,
                [(h, m.summary, m.info) for h, m in zip(batch, made, strict=True) if m.summarizer],
            )
        out.update(zip(batch, made, strict=True))
        if on_batch:
            on_batch(len(batch), tokens)
    return out


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read file: {exc.strerror or exc}"


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
