"""What the Ray engine (polisum.ingest.ray_engine) runs on the cluster's workers: the stage
functions over groups of files, a Kiwi warm-up, the shared-filesystem probe, the model actors
and the driver's handle on a pool of them. Imported by every worker: keep it light."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from polisum.components import Choice, load_choice
from polisum.ingest.stages import (
    FileJob,
    ParsedFile,
    ParseSettings,
    embed_texts,
    parse_file,
    summarize_texts,
    terms_of,
)
from polisum.ingest.workers import ParseLimits, WorkerPool

if TYPE_CHECKING:
    from polisum.summarize import SummaryResult


def parse_group(
    settings: ParseSettings, jobs: list[FileJob], limits: ParseLimits
) -> list[ParsedFile]:
    """Parse a group of files on this node, each under the per-file limits: in a parse worker
    process of its own (polisum.ingest.workers), or here when ``limits.workers`` is 0."""
    if not limits.workers:
        return [parse_file(settings, job) for job in jobs]
    pool = WorkerPool(settings, ParseLimits(1, limits.timeout_s, limits.memory_mb))
    try:
        by_source = {p.source: p for p in pool.parse(jobs)}
    finally:
        pool.close()
    return [by_source[job.source] for job in jobs]


def warm_up() -> None:
    """Load Kiwi (about a second or more) in a worker while the models work, not when its
    first terms batch arrives."""
    terms_of(["warm up"])


def node_sees(folder: str, probe: str) -> dict[str, Any]:
    """Run on one node: can it read ``probe`` under ``folder``? And which polisum is there?"""
    import polisum

    problem = None
    try:
        with open(probe, "rb") as f:
            f.read(1)
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
    if not os.path.isdir(folder):
        problem = "no such folder"
    return {"host": socket.gethostname(), "problem": problem, "version": polisum.__version__}


class ModelActor:
    """One model, loaded once per actor process (and again by Ray after a restart).

    ``payload`` is a model object shipped as is, for components built in code that have no
    spec; models named by a spec are rebuilt here, never pickled."""

    def __init__(self, choice: Choice | None, payload: Any = None) -> None:
        self.model = payload if payload is not None else load_choice(choice)

    def describe(self) -> dict[str, Any]:
        import ray

        return {
            "name": self.model.name,
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
        }

    def summarize(self, texts: list[str]) -> list[SummaryResult]:
        return summarize_texts(self.model, texts)

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.model, texts)


class ModelPool:
    """The driver's handle on the actors of one role (``summarize`` or ``embed``): created
    at once, loading their model meanwhile; ``info`` (name, pid, node of each) once loaded."""

    def __init__(self, ray: Any, role: str, actors: list, payload: Any = None) -> None:
        self.ray, self.role, self.actors, self.payload = ray, role, actors, payload
        self.loading = [a.describe.remote() for a in actors]
        self.info: list[dict[str, Any]] = []
        self._queued = [0] * len(actors)

    def submit(self, batch: Sequence[str]) -> tuple[Any, Callable[[], None]]:
        """A call on the least busy actor, and what to call once its result is taken."""
        i = min(range(len(self._queued)), key=self._queued.__getitem__)
        self._queued[i] += 1

        def done() -> None:
            self._queued[i] -= 1

        return getattr(self.actors[i], self.role).remote(list(batch)), done

    def pids(self, live: bool = False) -> list[int]:
        if not live:
            return [i["pid"] for i in self.info or self.ray.get(self.loading)]
        return [i["pid"] for i in self.ray.get([a.describe.remote() for a in self.actors])]

    def kill(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
