"""The Ray engine: the ingest's stage functions on a Ray cluster (``polisum ingest --engine ray``).

The driver (polisum.ingest.pipeline) still decides what is missing from the caches, writes each
result back and publishes; this engine only computes, with the same functions the local engine
runs (polisum.ingest.stages), so both give the same chunks, summaries and vectors.

- parse: Ray tasks over groups of files (one file per task unless there are many), yielded as
  each task finishes; a group whose worker died past Ray's retries is split into single-file
  tasks, and a file that still kills its worker is a per-file failure, as a bad file is.
- summarize, embed: a pool of actors per model, each loading the model once from its spec (the
  resolver's :class:`~polisum.components.Choice`), restarted by Ray if its process dies, its
  unfinished calls retried. They start when parsing starts, so models load meanwhile. Batches
  are submitted ahead and yielded in order.
- terms: Ray tasks over batches of texts, yielded in order (workers load Kiwi ahead).

What runs on the workers is in polisum.ingest.ray_workers.

Why Ray Core actors and not Ray Data's ``map_batches``: the driver asks for the summaries and
vectors of one publish batch at a time and writes each result batch to the caches before the
next publish batch is parsed. A Ray Data pipeline per call would start its actor pool, and load
the model, for every publish batch; one pipeline over the whole ingest would take the cache
decisions and the publish away from the driver, which must stay the single point of truth.
Long-lived actors keep the models loaded across calls, restore order by submission (no index
bookkeeping), and get the same fault tolerance from Ray's actor restarts and task retries.

Resources: the driver runs the stages one after another, so an idle actor must not hold CPUs
the parse and terms tasks of the next stage need (on a small cluster that would deadlock).
Model actors therefore reserve no CPU once placed (Ray's default for actors), are spread
over the nodes, and get their thread count (``OMP_NUM_THREADS``) explicitly: the node's cores
shared by the pool's actors on it, as the local engine's one model uses all cores. GPU actors
(``hf:`` summarizers, ``st:`` embedders with ``actor_gpus`` > 0) reserve their GPUs.

Documents must be on a path every node sees: the first parse checks it on every node.

Length: about half of this file is the explanation above and the cluster checks' messages;
the driver side of each stage stays here, next to the others, so the scheduling reads in one
place (the worker side is already apart, in ray_workers.py).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polisum.errors import PolisumError
from polisum.ingest.engine import EMBED_BATCH, SUMMARY_BATCH, TERMS_BATCH, batched
from polisum.ingest.ray_workers import (
    ModelActor,
    ModelPool,
    node_sees,
    parse_group,
    warm_up,
)
from polisum.ingest.stages import FileJob, ParsedFile, ParseSettings, terms_of
from polisum.ingest.workers import ParseLimits

if TYPE_CHECKING:
    from polisum.components import Choice
    from polisum.embed import Embedder
    from polisum.summarize import Summarizer, SummaryResult

__all__ = ["RayEngine", "RayEngineError"]

# Calls queued per actor: the next batch is already there when one finishes.
DEPTH = 2
# A file's group is at most this many files (fewer when there are few files: progress streams).
MAX_GROUP = 32


class RayEngineError(PolisumError, RuntimeError):
    pass


# -- the engine ---------------------------------------------------------------------------------
class RayEngine:
    """Runs the ingest's stages on Ray.

    ``address``: None starts a local Ray (or joins ``$RAY_ADDRESS``), ``"auto"`` joins the cluster
    on this machine, ``"ray://HOST:10001"`` a remote one through Ray Client. If Ray is already
    initialised in this process, that connection is used (and left open by :meth:`close`).
    ``summarizer`` / ``embedder``: the specs the actors load; without one, the driver's model
    object itself is shipped (it must pickle). ``parse_tasks``: files parsed at once (default:
    the cluster's CPUs). ``actor_gpus``: GPUs per actor for GPU models (hf:, st:).
    ``actor_threads``: threads per model actor (default: see the module docstring).
    ``computed`` counts what this engine computed (files, texts): what a rerun must not redo.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        summarizer: Choice | None = None,
        embedder: Choice | None = None,
        summarize_actors: int = 1,
        embed_actors: int = 1,
        parse_tasks: int | None = None,
        actor_gpus: float = 0.0,
        actor_threads: int | None = None,
        parse_limits: ParseLimits | None = None,
        max_restarts: int = 3,
        summary_batch: int = SUMMARY_BATCH,
        embed_batch: int = EMBED_BATCH,
        terms_batch: int = TERMS_BATCH,
    ) -> None:
        self.address = address
        self.choices = {"summarize": summarizer, "embed": embedder}
        self.actors = {"summarize": summarize_actors, "embed": embed_actors}
        self.parse_tasks = parse_tasks
        # Each parse task runs its files in a limited worker process on its node, as the local
        # engine does (a file past the time or memory limit fails alone).
        self.parse_limits = parse_limits or ParseLimits(workers=1)
        self.actor_gpus = actor_gpus
        self.actor_threads = actor_threads
        self.max_restarts = max_restarts
        self.batch = {"summarize": summary_batch, "embed": embed_batch, "terms": terms_batch}
        self.computed: Counter[str] = Counter()
        self._ray: Any = None
        self._owns_ray = False
        self._remote: dict[str, Any] = {}
        self._pools: dict[str, ModelPool] = {}
        self._checked: set[str] = set()
        self._prepared = self._warmed = False

    # -- connection -------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise RayEngineError(
                "the ray engine needs Ray on this machine and every node: "
                "pip install 'polisum[ray]'"
            ) from None
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                options["include_dashboard"] = False  # a local Ray serves no dashboard
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or os.environ.get("RAY_ADDRESS")
                hint = (
                    " (is the cluster up? `ray status` on its head node; without --ray-address "
                    "a local Ray is started)"
                    if where
                    else ""
                )
                raise RayEngineError(
                    f"cannot {'reach Ray at ' + where if where else 'start a local Ray'}: "
                    f"{_first_line(exc)}{hint}"
                ) from exc
            self._owns_ray = True
        self._ray = ray
        self._remote = {
            "parse": ray.remote(parse_group),
            "terms": ray.remote(terms_of),
            "probe": ray.remote(node_sees),
            "warm": ray.remote(warm_up),
        }
        return ray

    def prepare(self, settings: ParseSettings, jobs: int) -> None:
        """When there are files to parse: join Ray and start the model actors, so they load
        their models while the files are parsed (not after)."""
        if not jobs or self._prepared:
            return
        self._prepared = True
        for role, choice in self.choices.items():
            if choice is not None and choice.spec not in (None, "none"):
                self._start(role)

    def _cpu_nodes(self) -> list[dict[str, Any]]:
        return [
            n
            for n in self._ray.nodes()
            if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0
        ]

    def _parallelism(self) -> int:
        if self.parse_tasks:
            return self.parse_tasks
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    # -- parse ------------------------------------------------------------------------------------
    def parse(self, settings: ParseSettings, jobs: Sequence[FileJob]) -> Iterator[ParsedFile]:
        if not jobs:
            return
        ray = self._connect()
        folder = Path(os.path.commonpath([str(j.path.parent) for j in jobs]))
        probes = self._probe(folder, jobs[0])
        self.prepare(settings, len(jobs))
        parallel = self._parallelism()
        size = max(1, min(MAX_GROUP, len(jobs) // (parallel * 4)))
        groups = iter(batched(list(jobs), size))
        settings_ref = ray.put(settings)
        running: dict[Any, list[FileJob]] = {}

        def submit(group: Sequence[FileJob]) -> None:
            limits = self.parse_limits
            task = self._remote["parse"].remote(settings_ref, list(group), limits)
            running[task] = list(group)

        def refill() -> None:
            while len(running) < 2 * parallel:
                group = next(groups, None)
                if group is None:
                    return
                submit(group)

        refill()
        if not self._warmed:  # behind the first parse tasks: the terms workers load Kiwi
            self._warmed = True  # while the models run (results unused: Ray frees them)
            for _ in range(parallel):
                self._remote["warm"].remote()
        try:
            self._verify(folder, probes)  # before any result is used
        except RayEngineError:
            for ref in running:
                ray.cancel(ref)
            raise
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            group = running.pop(ref)
            try:
                results = ray.get(ref)
            except ray.exceptions.RayTaskError:
                raise  # a bug, not a bad file (parse_file reports those): as the local engine
            except ray.exceptions.RayError as exc:  # the worker died past Ray's retries
                if len(group) > 1:  # find the file that kills its worker
                    for job in group:
                        submit([job])
                    continue
                results = [ParsedFile(group[0].path, group[0].source, error=_died(exc))]
            refill()
            self.computed["parse"] += len(results)
            yield from results

    def check_visible(self, folder: Path, probe: FileJob) -> None:
        """Every node that runs parse tasks must see ``folder`` (a shared filesystem) and run
        this polisum version; else a RayEngineError naming the node."""
        self._verify(folder, self._probe(folder, probe))

    def _probe(self, folder: Path, probe: FileJob) -> list[tuple[dict[str, Any], Any]]:
        """A probe task on every node (they run while the first files are parsed)."""
        if str(folder) in self._checked:
            return []
        self._connect()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return [
            (
                node,
                self._remote["probe"]
                .options(
                    num_cpus=0,  # runs even while parse tasks hold every CPU
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                )
                .remote(str(folder), str(probe.path)),
            )
            for node in self._cpu_nodes()
        ]

    def _verify(self, folder: Path, probes: list[tuple[dict[str, Any], Any]]) -> None:
        import polisum

        for node, ref in probes:
            seen = self._ray.get(ref)
            where = f"{seen['host']} ({node.get('NodeManagerAddress', '?')})"
            if seen["problem"]:
                raise RayEngineError(
                    f"documents must be on a shared filesystem every Ray node sees: {folder} is "
                    f"not visible on node {where}: {seen['problem']}"
                )
            if seen["version"] != polisum.__version__:
                raise RayEngineError(
                    f"Ray node {where} runs polisum {seen['version']}, this machine "
                    f"{polisum.__version__}: install the same version on every node"
                )
        self._checked.add(str(folder))

    # -- models -----------------------------------------------------------------------------------
    def summarize(
        self, summarizer: Summarizer, texts: Sequence[str]
    ) -> Iterator[list[SummaryResult]]:
        yield from self._model_calls("summarize", summarizer, texts)

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Iterator[np.ndarray]:
        yield from self._model_calls("embed", embedder, texts)

    def _model_calls(self, role: str, model: Any, texts: Sequence[str]) -> Iterator[Any]:
        if not texts:
            return
        pool = self._pool(role, model)
        batches = batched(texts, self.batch[role])
        for result in self._in_order(pool.submit, batches, role, DEPTH * len(pool.actors)):
            self.computed[role] += len(result)
            yield result

    def _start(self, role: str, payload: Any = None) -> ModelPool:
        """Create the ``role`` actors; they load their model while the caller goes on."""
        ray = self._connect()
        choice, n = self.choices[role], self.actors[role]
        gpus = self.actor_gpus if _uses_gpu(choice) else 0.0
        if gpus:
            have = ray.cluster_resources().get("GPU", 0)
            if have < n * gpus:
                raise RayEngineError(
                    f"{n} {role} actor(s) × {gpus} GPU need {n * gpus:g} GPUs; the Ray cluster "
                    f"has {have:g}: use fewer actors, a smaller actor_gpus, or add GPU nodes"
                )
        options: dict[str, Any] = {
            "max_restarts": self.max_restarts,
            "max_task_retries": self.max_restarts,
            "scheduling_strategy": "SPREAD",
            "runtime_env": {
                "env_vars": {"OMP_NUM_THREADS": str(self.actor_threads or self._threads(n))}
            },
        }
        if gpus:  # naming any resource makes Ray hold a CPU too, unless told otherwise
            options.update(num_gpus=gpus, num_cpus=0)
        cls = ray.remote(ModelActor).options(**options)
        pool = ModelPool(ray, role, [cls.remote(choice, payload) for _ in range(n)], payload)
        self._pools[role] = pool
        return pool

    def _pool(self, role: str, model: Any) -> ModelPool:
        """The ``role`` actors, ready; the driver's model name (the cache key) must be what
        every actor loaded. Without a spec, the driver's ``model`` itself is shipped."""
        pool = self._pools.get(role)
        payload = None if self.choices[role] else model
        if pool is not None and pool.payload is not payload:
            self._kill(pool)
            pool = None
        if pool is None:
            pool = self._start(role, payload)
        if not pool.info:
            try:
                pool.info = self._ray.get(pool.loading)
            except self._ray.exceptions.RayError as exc:
                self._kill(pool)
                what = self.choices[role].spec if self.choices[role] else model.name
                raise RayEngineError(f"the {role} actors could not load {what}: {exc}") from exc
        loaded = {i["name"] for i in pool.info}
        if loaded != {model.name}:
            self._kill(pool)
            raise RayEngineError(
                f"the Ray workers loaded {role} model {sorted(loaded)}, this machine "
                f"'{model.name}': install the same polisum and models on every node"
            )
        return pool

    def _threads(self, actors: int) -> int:
        nodes = self._cpu_nodes()
        cores = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
        per_node = math.ceil(actors / max(1, len(nodes)))
        return max(1, cores // per_node)

    def actor_pids(self, role: str, *, live: bool = False) -> list[int]:
        """Process ids of the ``role`` actors: as they started, or (``live``) as they are now,
        after any restart (a call each, queued behind the actor's work)."""
        pool = self._pools.get(role)
        return pool.pids(live) if pool is not None else []

    # -- terms ------------------------------------------------------------------------------------
    def terms(self, texts: Sequence[str]) -> Iterator[list[list[str]]]:
        if not texts:
            return
        self._connect()

        def submit(batch: Sequence[str]) -> tuple[Any, Callable[[], None]]:
            return self._remote["terms"].remote(list(batch)), _nothing

        batches = batched(texts, self.batch["terms"])
        for result in self._in_order(submit, batches, "terms", self._parallelism()):
            self.computed["terms"] += len(result)
            yield result

    # -- shared -----------------------------------------------------------------------------------
    def _in_order(
        self,
        submit: Callable[[Sequence[str]], tuple[Any, Callable[[], None]]],
        batches: Iterable[Sequence[str]],
        role: str,
        ahead: int,
    ) -> Iterator[Any]:
        """Results of ``submit`` over ``batches`` in order, ``ahead`` calls in flight.

        Written here rather than with ray.util.ActorPool: its map keeps one call per actor and
        frees an actor only when its result is consumed in order, so actors idle while the
        driver writes a batch to the caches or waits on a slower actor's earlier batch."""
        ray = self._ray
        batches = iter(batches)
        pending: deque[tuple[Sequence[str], Any, Callable[[], None], int]] = deque()

        def fill() -> None:
            while len(pending) < ahead:
                batch = next(batches, None)
                if batch is None:
                    return
                pending.append((batch, *submit(batch), 0))

        fill()
        while pending:
            batch, ref, done, failures = pending.popleft()
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError:
                raise  # the stage function raised: as it would in the local engine
            except ray.exceptions.RayError as exc:
                # Ray retries what a dead worker was doing, but not a call whose worker its
                # memory monitor killed: resubmit it (to the restarted actor) a few times.
                done()
                if failures < self.max_restarts:
                    pending.appendleft((batch, *submit(batch), failures + 1))
                    continue
                raise RayEngineError(
                    f"the Ray workers running {role} kept dying ({type(exc).__name__}: "
                    f"{_first_line(exc)}); what was computed is cached: rerun to resume"
                ) from exc
            done()
            fill()
            yield result

    def _kill(self, pool: ModelPool) -> None:
        pool.kill()
        self._pools.pop(pool.role, None)

    def close(self) -> None:
        """Stop the actors; shut Ray down if this engine started it."""
        if self._ray is None:
            return
        for pool in list(self._pools.values()):
            self._kill(pool)
        if self._owns_ray:
            self._ray.shutdown()
        self._ray, self._owns_ray, self._remote = None, False, {}
        self._checked.clear()
        self._prepared = self._warmed = False


def _nothing() -> None:
    pass


def _uses_gpu(choice: Choice | None) -> bool:
    """Models that run on a GPU when there is one: transformers summarizers and
    sentence-transformers embedders."""
    if choice is None:
        return False
    kind = (choice.spec or "").partition(":")[0]
    return kind == "hf" if choice.role == "summarizer" else kind in ("st", "sentence-transformers")


def _died(exc: BaseException) -> str:
    name = type(exc).__name__
    if "OutOfMemory" in name:
        return "ran out of memory on its Ray node while reading the file"
    return f"the Ray worker reading it died ({name})"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
