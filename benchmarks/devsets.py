"""Development corpora for retrieval, unlike KorQuAD: Korean document pages and PubMedQA.

    python benchmarks/devsets.py --out .bench   # writes .bench/<corpus>/{docs/,queries.jsonl}

``ko-pages``: every page of the Korean PDFs (docs_ko), the HWP/HWPX documents (docs_hwp, whose
loaders report pages) and the Korean news articles (sum_ko), read with polisum's own loaders
and written one page per text file, the way a page-per-document collection is searched.
Queries are Inverse-Cloze style (Lee et al., 2019), made deterministically (seed 19):
  * ``sentence``: a sentence of the page, removed from the page;
  * ``phrase``: a run of 4-10 words of a sentence, removed from the page (the rest of the
    sentence stays), like a key phrase someone remembers from the page.
The gold is the page the text was taken from; since it is no longer on the page, retrieval has
to find the page from the rest of it, as with a question about the page.

``pubmedqa``: the 500 PubMedQA PQA-L abstracts of shared/data (one file each), their own
expert questions as queries.

Splits: the queries of each corpus are split into ``tune`` and ``eval`` (ko-pages by page, seed
23, so no page gives queries to both; pubmedqa by question, seed 29). Choices of defaults may look
at ``tune`` only; ``eval`` is reported. KorQuAD keeps its own DEV (seed 14) / TEST (seed 13)
samples from benchmarks/_korquad.py. Every corpus is only read from shared/data; the files
written here are working copies for ingest and are not shipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from polisum.loaders import LoadError, default_registry
from polisum.text import has_hangul, split_sentences, terms

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.exists():  # a worktree one level deeper than the main checkout
    DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

QUERY_SEED = 19
PAGE_SPLIT_SEED = 23
PUBMED_SPLIT_SEED = 29
MIN_PAGE_CHARS = 300
SENTENCES_PER_PAGE = 2
PHRASES_PER_PAGE = 2


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    gold: str  # document file stem
    kind: str
    split: str  # "tune" or "eval"


def _stable_rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def korean_pages(data: Path) -> dict[str, str]:
    """Page id -> page text for every Korean document page polisum can read from ``data``."""
    registry = default_registry()
    pages: dict[str, str] = {}
    files = sorted((data / "docs_ko").glob("*.pdf")) + sorted((data / "docs_hwp").iterdir())
    for n, path in enumerate(files):
        try:
            doc = registry.load(path)
        except LoadError as exc:  # a loader regression should not silently shrink the corpus
            raise SystemExit(f"cannot build ko-pages: {exc}") from exc
        by_page: dict[int, list[str]] = defaultdict(list)
        for element in doc.elements:
            by_page[element.page or 1].append(element.text)
        for page, texts in sorted(by_page.items()):
            pages[f"doc{n}_p{page:03d}"] = "\n\n".join(texts)
    for path in sorted((data / "sum_ko" / "sci_news_sum_kr_50").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        body = " ".join(s.strip().rstrip(".") + "." for s in record["sentences"])
        pages[f"scinews_{path.stem}"] = record["title"] + "\n\n" + body
    dacon = data / "sum_ko" / "dacon_news_sample" / "train_test_part1.jsonl"
    for line in dacon.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            pages[f"dacon_{record['id']}"] = " ".join(record["article_original"])
    return {k: v for k, v in pages.items() if len(v) >= MIN_PAGE_CHARS}


def _usable(sentence: str, counts: Counter[str]) -> bool:
    """A sentence that can stand for its page: real Korean prose, long enough to say
    something, and found on no other page (boilerplate would have several golds)."""
    return (
        30 <= len(sentence) <= 300
        and has_hangul(sentence)
        and counts[sentence] == 1
        and len(terms(sentence)) >= 5
    )


def _remove(text: str, span: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", text.replace(span, " ", 1)).strip()


def ict_queries(pages: dict[str, str]) -> tuple[dict[str, str], list[Query]]:
    """The pages with their held-out sentences and phrases removed, and those as queries."""
    sentences = {pid: [s.text.strip() for s in split_sentences(t)] for pid, t in pages.items()}
    counts = Counter(s for sents in sentences.values() for s in sents)
    pids = sorted(pages)
    tune_pages = set(_stable_rng(PAGE_SPLIT_SEED).sample(pids, len(pids) // 2))
    out_pages: dict[str, str] = {}
    queries: list[Query] = []
    for pid in pids:
        rng = _stable_rng(QUERY_SEED, pid)
        usable = [s for s in sentences[pid] if _usable(s, counts)]
        rng.shuffle(usable)
        text = pages[pid]
        split = "tune" if pid in tune_pages else "eval"
        for i, sentence in enumerate(usable[:SENTENCES_PER_PAGE]):
            text = _remove(text, sentence)
            queries.append(Query(f"{pid}#s{i}", sentence, pid, "sentence", split))
        for i, sentence in enumerate(
            usable[SENTENCES_PER_PAGE : SENTENCES_PER_PAGE + PHRASES_PER_PAGE]
        ):
            words = sentence.split()
            if len(words) < 6:
                continue
            size = min(10, max(4, len(words) // 2))
            start = rng.randrange(0, len(words) - size + 1)
            phrase = " ".join(words[start : start + size])
            if phrase not in text:
                continue
            text = _remove(text, phrase)
            queries.append(Query(f"{pid}#p{i}", phrase, pid, "phrase", split))
        out_pages[pid] = text
    return out_pages, queries


def pubmedqa(data: Path) -> tuple[dict[str, str], list[Query]]:
    records = json.loads((data / "pubmedqa" / "ori_pqal_non_test_500.json").read_text("utf-8"))
    pmids = sorted(records)
    tune = set(_stable_rng(PUBMED_SPLIT_SEED).sample(pmids, len(pmids) // 2))
    docs = {f"pmid{p}": "\n\n".join(records[p]["CONTEXTS"]) for p in pmids}
    queries = [
        Query(f"pmid{p}", records[p]["QUESTION"], f"pmid{p}", "question",
              "tune" if p in tune else "eval")
        for p in pmids
    ]  # fmt: skip
    return docs, queries


BUILDERS = {
    "ko-pages": lambda data: ict_queries(korean_pages(data)),
    "pubmedqa": pubmedqa,
}


def write(folder: Path, docs: dict[str, str], queries: list[Query]) -> None:
    """Corpus files (rewritten only when changed, so the ingest skips them) and queries."""
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        path = folder / "docs" / f"{name}.txt"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for stale in (folder / "docs").glob("*.txt"):
        if stale.stem not in docs:
            stale.unlink()
    lines = [json.dumps(asdict(q), ensure_ascii=False) for q in queries]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_queries(folder: Path) -> list[Query]:
    text = (folder / "queries.jsonl").read_text(encoding="utf-8")
    return [Query(**json.loads(line)) for line in text.splitlines() if line.strip()]


def build(name: str, out: Path, data: Path = DATA) -> Path:
    folder = out / name
    if not (folder / "queries.jsonl").exists():
        docs, queries = BUILDERS[name](data)
        write(folder, docs, queries)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(".bench"))
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    for name in BUILDERS:
        folder = build(name, args.out, args.data)
        queries = read_queries(folder)
        kinds = Counter((q.kind, q.split) for q in queries)
        n_docs = len(list((folder / "docs").glob("*.txt")))
        print(f"{name}: {n_docs} documents, {len(queries)} queries {dict(kinds)}")


if __name__ == "__main__":
    main()
