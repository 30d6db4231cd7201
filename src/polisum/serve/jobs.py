"""Writes as jobs: one writer thread runs uploads, ingests and deletes one at a time, in order.

Why a queue rather than answering 409 to a second write: an upload is already on disk when its
request ends, and the person who sent it wants it indexed, not a "try again". So a write that
arrives while another runs waits its turn (``position`` says how many are ahead); only a full
queue (``max_queued_jobs``) is refused, with 429. Writes never interleave: the index's write
lock is taken by one job at a time, and a writer in another process (a CLI ingest) makes the
job fail with the lock's message instead of waiting forever.

Readers are not involved: searches and answers keep reading the last published generation.
Progress comes from the core's ``on_progress`` callback into a :class:`StageLog`; the per-file
report is ``IngestReport.to_dict()``. Jobs live in memory (the last ``keep``); a restart
forgets them, never the index's data (each publish is atomic).
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polisum.errors import PolisumError
from polisum.progress import StageLog

if TYPE_CHECKING:
    from polisum.api import Index
    from polisum.index.records import DocumentRecord
    from polisum.serve.uploads import StagedFile

log = logging.getLogger("polisum.serve")


class QueueFullError(PolisumError):
    status = 429


@dataclass
class Job:
    id: str
    kind: str  # upload | ingest | delete
    target: str
    work: Callable[[Job], None]
    created_at: float = field(default_factory=time.time)
    state: str = "queued"  # queued | running | done | failed
    started_at: float | None = None
    finished_at: float | None = None
    progress: StageLog = field(default_factory=StageLog)
    report: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class JobQueue:
    """A FIFO of write jobs and the one thread that runs them."""

    def __init__(self, max_queued: int, keep: int = 200) -> None:
        self.max_queued = max_queued
        self.keep = keep
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}  # insertion order = submission order
        self._running: Job | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="polisum-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking jobs; queued ones fail, a running one gets ``timeout`` seconds to finish.
        True when the writer is idle (the index may be closed)."""
        with self._cond:
            self._closing = True
            while self._pending:
                self._finish(self._pending.popleft(), "failed", "the server shut down first")
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- submitting and reading -----------------------------------------------------------------
    def submit(
        self,
        kind: str,
        target: str,
        work: Callable[[Job], None],
        files: list[dict[str, Any]] | None = None,
    ) -> Job:
        with self._cond:
            if self._closing:
                raise QueueFullError("the server is shutting down; send the request again later")
            if len(self._pending) >= self.max_queued:
                raise QueueFullError(
                    f"{len(self._pending)} writes are already waiting (limit "
                    f"{self.max_queued}); try again when GET /v1/jobs shows fewer"
                )
            job = Job(secrets.token_hex(8), kind, target, work, files=list(files or []))
            self._jobs[job.id] = job
            self._pending.append(job)
            self._forget_old()
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._cond:
            return list(reversed(self._jobs.values()))

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job`` (the running one included); 0 once it runs or ended."""
        with self._cond:
            if job.state != "queued":
                return 0
            ahead = next((i for i, j in enumerate(self._pending) if j is job), 0)
            return ahead + (self._running is not None)

    def state(self) -> tuple[str | None, int]:
        """(id of the running job, number queued)."""
        with self._cond:
            return (self._running.id if self._running else None), len(self._pending)

    # -- the writer thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing and not self._pending:
                    return
                job = self._pending.popleft()
                self._running = job
                job.state, job.started_at = "running", time.time()
            state, error = "done", None
            try:
                job.work(job)
            except (PolisumError, ValueError) as exc:
                state, error = "failed", str(exc)
            except OSError as exc:
                state, error = "failed", _os_reason(exc)
            except Exception:
                log.exception("job %s (%s %s) failed", job.id, job.kind, job.target)
                state = "failed"
                error = f"unexpected error; the server log has the details under job {job.id}"
            with self._cond:
                self._running = None
                self._finish(job, state, error)

    def _finish(self, job: Job, state: str, error: str | None) -> None:
        job.state, job.error, job.finished_at = state, error, time.time()
        job.done.set()

    def _forget_old(self) -> None:
        ended = [j for j in self._jobs.values() if j.state in ("done", "failed")]
        for job in ended[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job.id]


def _os_reason(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


# -- the work of each kind of job ---------------------------------------------------------------
def ingest_work(index: Index, folder: Path, prune: bool, retry_failed: bool):
    """Bring the index up to date with ``folder`` (``POST /v1/ingest``)."""

    def work(job: Job) -> None:
        report = index.ingest(
            folder, prune=prune, retry_failed=retry_failed, on_progress=job.progress
        )
        job.report = report.to_dict()
        job.files = [
            {"name": Path(f.source).name, "source": f.source, "status": "failed",
             "error": f.reason}
            for f in report.failures
        ]  # fmt: skip

    return work


def upload_work(index: Index, uploads: Path, staging: Path, staged: list[StagedFile]):
    """Move staged uploads into the uploads folder, then ingest that folder.

    The folder is ingested with ``prune=True``: pruning only ever touches sources under the
    folder ingested, and it keeps the index equal to the uploads folder (a file whose DELETE
    was cut short by a crash goes at the next upload)."""
    from polisum.ingest.scan import source_name

    def work(job: Job) -> None:
        uploads.mkdir(parents=True, exist_ok=True)
        for f in staged:
            os.replace(f.path, uploads / f.name)  # an existing name: the newer version wins
        shutil.rmtree(staging, ignore_errors=True)
        report = index.ingest(uploads, prune=True, on_progress=job.progress)
        job.report = report.to_dict()
        root = uploads.resolve()
        by_source = {d.source: d for d in index.documents()}
        files = []
        for f in staged:
            source = source_name(root / f.name, index.project_root)
            doc = by_source.get(source)
            entry: dict[str, Any] = {"name": f.name, "source": source, "status": "pending"}
            if doc is not None:
                entry.update(status=doc.status, error=doc.error, document_id=doc.id,
                             chunks=doc.n_chunks)  # fmt: skip
            files.append(entry)
        job.files = files

    return work


def delete_work(index: Index, doc: DocumentRecord, uploads: Path):
    """Remove a document from the index and, for an upload, its file.

    The file goes first: if the server dies between the two steps, the next upload's ingest
    (which prunes the uploads folder) drops the document; the other order would bring a
    deleted upload back."""

    def work(job: Job) -> None:
        path = source_path(index, doc.source)
        if is_upload(index, doc.source, uploads):
            path.unlink(missing_ok=True)
        removed = index.remove(doc.source)
        job.files = [
            {"name": path.name, "source": doc.source,
             "status": "removed" if removed else "failed",
             "error": None if removed else "it was no longer in the index",
             "document_id": doc.id, "chunks": doc.n_chunks}
        ]  # fmt: skip

    return work


def source_path(index: Index, source: str) -> Path:
    """The file of a source name (relative names are relative to the project folder)."""
    path = Path(source)
    return path if path.is_absolute() else index.project_root / path


def is_upload(index: Index, source: str, uploads: Path) -> bool:
    path = source_path(index, source)
    return path.parent == uploads.resolve()


def clean_staging(uploads: Path) -> None:
    """Staging folders left by a server that stopped mid-upload (never published)."""
    shutil.rmtree(uploads / STAGING, ignore_errors=True)


STAGING = ".incoming"  # hidden: an ingest of the uploads folder skips it
_staging_ids = itertools.count()


def staging_dir(uploads: Path) -> Path:
    return uploads / STAGING / f"{os.getpid()}-{next(_staging_ids)}-{secrets.token_hex(4)}"
