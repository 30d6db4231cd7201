"""Progress of long work, reported through a callback.

The core never draws anything: an ingest calls ``on_progress(event)`` with the state of a stage
each time it moves, and the surface decides what to show (the CLI draws rich bars, the service
keeps the latest event per stage for ``GET /v1/jobs/{id}``, tests record them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["OnProgress", "ProgressEvent", "Stage", "StageLog"]


@dataclass(frozen=True)
class ProgressEvent:
    """A stage's state: ``done`` of ``total`` items (``total`` None while unknown).

    ``tokens`` counts model tokens spent (summaries), for a tokens/s figure."""

    stage: str
    done: int
    total: int | None
    tokens: int = 0
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "tokens": self.tokens,
            "elapsed": round(self.elapsed, 3),
        }


OnProgress = Callable[[ProgressEvent], None]


@dataclass
class Stage:
    """The counter of one stage of a run; every change is reported to ``on_progress``."""

    name: str
    on_progress: OnProgress | None = None
    total: int | None = None
    done: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self._emit()

    def add_total(self, n: int) -> None:
        """More work became known (a later batch of the same run)."""
        self.total = (self.total or 0) + n
        self._emit()

    def advance(self, n: int = 1, tokens: int = 0) -> None:
        self.done += n
        self.tokens += tokens
        self._emit()

    def _emit(self) -> None:
        if self.on_progress is not None:
            self.on_progress(
                ProgressEvent(
                    self.name,
                    self.done,
                    self.total,
                    self.tokens,
                    time.perf_counter() - self.started,
                )
            )


class StageLog:
    """An ``on_progress`` that keeps the latest event of each stage (thread-safe): what a job
    status endpoint or a test reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, ProgressEvent] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._latest[event.stage] = event

    def snapshot(self) -> list[ProgressEvent]:
        with self._lock:
            return list(self._latest.values())
