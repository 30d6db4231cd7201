"""One writer per index: an exclusive lock file in the index folder, held while an ingest or a
reset writes. Readers take no lock (they read committed snapshots).

``filelock`` rather than ``fcntl`` directly: it works on every platform Python runs on
(fcntl does not exist on Windows) and releases the lock when the process dies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from polisum.errors import IndexBusyError

LOCK_NAME = "lock"


class WriteLock:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = FileLock(str(folder / LOCK_NAME), timeout=0)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block, or raise IndexBusyError at once."""
        try:
            self._lock.acquire()
        except Timeout as exc:
            raise IndexBusyError(
                f"another ingest is writing to {self.folder}; wait for it to finish"
            ) from exc
        try:
            yield
        finally:
            self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked
