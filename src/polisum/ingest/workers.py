"""Parsing files in worker processes, each file under a wall-clock limit and a memory cap.

A document reader is a large surface (PDF, HWP, Office XML, HTML parsers, OCR) and one hostile
or broken file must not hang an ingest, exhaust the machine's memory or crash the process that
holds the index. So files are parsed by worker processes: each caps its own data segment
(RLIMIT_DATA) at its resting footprint plus ``memory_mb``, so a reader that would need more
fails (MemoryError, or the worker dies) instead of swapping the machine; a file that runs past
``timeout_s`` has its worker killed and replaced. Such a file fails alone, with the reason.

Why a small pool of our own rather than multiprocessing/pebble/concurrent.futures: their
spawn and forkserver start methods re-run the caller's ``__main__`` script in every worker, so
a plain script calling ``Index.ingest`` without an ``if __name__ == "__main__":`` guard would
re-run itself in each worker; and ``fork`` is unsafe in a process that runs Kiwi, FAISS and
torch threads. Workers here are fresh interpreters started with ``python -m
polisum.ingest.parse_worker``, fed over pipes (pickle frames between our own processes, never
stored).
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from polisum.ingest.stages import MEMORY_ERROR, FileJob, ParsedFile, ParseSettings

# Workers are recycled after this many files: allocator fragmentation from odd files does not
# accumulate for a whole ingest.
TASKS_PER_WORKER = 200
# A worker that is not ready this long after its start (imports, Kiwi's model) is broken.
START_TIMEOUT_S = 120.0
_HEADER = struct.Struct("<Q")
READY = "ready"
# How a worker dies when an allocation fails in C code (abort on bad_alloc, a NULL dereference)
# or the kernel's OOM killer picks it.
_MEMORY_DEATHS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL, signal.SIGBUS)


@dataclass(frozen=True)
class ParseLimits:
    """``workers``: processes (0 parses in this process, without limits: debugging only);
    ``timeout_s``: wall clock per file; ``memory_mb``: memory per file beyond a worker's own
    resting footprint (the loaders and Kiwi's model, about 0.7 GB)."""

    workers: int = 2
    timeout_s: float = 300.0
    memory_mb: int = 2048

    @classmethod
    def auto(cls, workers: int | None = None, **limits: float) -> ParseLimits:
        if workers is None:
            workers = max(1, min(os.cpu_count() or 1, 4))
        return cls(workers, **limits)


def write_frame(stream, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream) -> object:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    return pickle.loads(stream.read(size))


class _Worker:
    """One worker process and the job it is running."""

    def __init__(self, memory_mb: int) -> None:
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "polisum.ingest.parse_worker", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # readers' warnings would garble the progress display
            env=env,
        )
        self.ready = False
        self.job: FileJob | None = None
        self.deadline = time.monotonic() + START_TIMEOUT_S
        self.done = 0

    def send(self, settings: ParseSettings, job: FileJob, timeout_s: float) -> None:
        self.job = job
        self.deadline = time.monotonic() + timeout_s
        write_frame(self.proc.stdin, (settings, job))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()


class WorkerPool:
    """Worker processes for one ingest (started on first use, stopped by close)."""

    def __init__(self, settings: ParseSettings, limits: ParseLimits) -> None:
        self.settings = settings
        self.limits = limits
        self._idle: list[_Worker] = []

    def prepare(self, jobs: int) -> None:
        """Start the workers ``jobs`` files will use, so they load while the driver works."""
        while len(self._idle) < min(self.limits.workers, jobs):
            self._idle.append(_Worker(self.limits.memory_mb))

    def parse(self, jobs: Sequence[FileJob]) -> Iterator[ParsedFile]:
        """Every job's result, in the order they finish."""
        pending = deque(jobs)
        workers, self._idle = self._idle, []
        selector = selectors.DefaultSelector()

        def start() -> None:
            w = _Worker(self.limits.memory_mb)
            workers.append(w)
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)

        for w in workers:
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        try:
            while len(workers) < min(self.limits.workers, len(pending)):
                start()
            while pending or any(w.job is not None for w in workers):
                for w in workers:
                    if w.ready and w.job is None and pending:
                        w.send(self.settings, pending.popleft(), self.limits.timeout_s)
                soonest = min(w.deadline for w in workers) - time.monotonic()
                wait = None if soonest == float("inf") else max(0.0, soonest)
                for key, _ in selector.select(timeout=wait):
                    result = self._receive(key.data)
                    if result is not None:
                        yield result
                for w in list(workers):
                    if w.proc.returncode is None and time.monotonic() < w.deadline:
                        continue
                    selector.unregister(w.proc.stdout)
                    workers.remove(w)
                    failed = self._failed(w)  # kills w
                    if failed is not None:
                        yield failed
                    if pending and len(workers) < self.limits.workers:
                        start()
            self._idle = [w for w in workers if w.done < TASKS_PER_WORKER]
        finally:
            selector.close()
            for w in workers:
                if w not in self._idle:
                    w.kill()

    def _receive(self, w: _Worker) -> ParsedFile | None:
        try:
            message = read_frame(w.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            w.proc.wait()  # died: _failed reports it
            return None
        if message == READY:
            w.ready = True
            w.deadline = float("inf")
            return None
        parsed: ParsedFile = message  # type: ignore[assignment]
        w.job, w.deadline = None, float("inf")
        w.done += 1
        if parsed.error == MEMORY_ERROR:
            parsed.error = self._memory_reason()
        return parsed

    def _failed(self, w: _Worker) -> ParsedFile | None:
        """Stop a worker that died or ran out of time; the result for its file (None when it
        had none). A worker that cannot start means nothing can be parsed: an error."""
        timed_out = w.proc.poll() is None
        w.kill()
        if not w.ready:
            why = "did not start in time" if timed_out else f"exited {w.proc.returncode}"
            raise RuntimeError(
                f"a parse worker (python -m polisum.ingest.parse_worker) {why}: check that "
                "polisum imports in this environment, or set parse_workers = 0"
            )
        if w.job is None:
            return None
        if timed_out:
            reason = f"timed out after {self.limits.timeout_s:g} s (limit per file)"
        elif -w.proc.returncode in _MEMORY_DEATHS:
            reason = self._memory_reason()
        else:
            reason = f"the reader crashed (exit {w.proc.returncode})"
        return ParsedFile(w.job.path, w.job.source, error=reason)

    def _memory_reason(self) -> str:
        return f"needs more than {self.limits.memory_mb} MiB of memory (limit per file)"

    def close(self) -> None:
        for w in self._idle:
            w.kill()
        self._idle = []
