"""Prediction/reference JSONL for Korean news summarization, for `polisum eval text`.

    python benchmarks/summary_eval_sumko.py [--data ../shared/data/sum_ko] [--out DIR]

Writes, under DIR (default ``eval-sumko/``), one folder per reference set:

- ``sci_news/``   sci-news-sum-kr-50 (25 articles): reference = the human-selected sentences.
- ``dacon_abs/``  Dacon news sample (6 articles): reference = the human-written abstract.
- ``dacon_ext/``  the same articles: reference = the 3 human-selected sentences.

each with ``ref.jsonl`` and one prediction file per system:

- ``pred_polisum.jsonl``  polisum's ExtractiveSummarizer with the settings ``polisum ingest`` uses.
- ``pred_lead3.jsonl``    the first three sentences (the standard news baseline).

Articles are given to the summarizer as their sentences one per line (sci-news sentences have no
final period; joining them with spaces would make sentence splitting guess). The data are read
as is; nothing is written next to them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polisum.summarize import ExtractiveSummarizer

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sum_ko"


def load_sets(data: Path) -> dict[str, list[tuple[str, list[str], str]]]:
    """``set → [(id, article sentences, reference)]``."""
    sci = []
    for path in sorted((data / "sci_news_sum_kr_50").glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        sentences = [s.strip() for s in rec["sentences"]]
        ref = "\n".join(sentences[i] for i in sorted(rec["summaries"]))
        sci.append((f"sci-{path.stem}", sentences, ref))
    dacon_abs, dacon_ext = [], []
    lines = (data / "dacon_news_sample" / "train_test_part1.jsonl").read_text("utf-8").splitlines()
    for line in filter(str.strip, lines):
        rec = json.loads(line)
        sentences = [s.strip() for s in rec["article_original"]]
        key = f"dacon-{rec['id']}"
        dacon_abs.append((key, sentences, rec["abstractive"].strip()))
        ext = "\n".join(sentences[i] for i in sorted(rec["extractive"]))
        dacon_ext.append((key, sentences, ext))
    if not sci or not dacon_abs:
        raise SystemExit(f"{data}: expected sci_news_sum_kr_50/*.json and dacon_news_sample/")
    return {"sci_news": sci, "dacon_abs": dacon_abs, "dacon_ext": dacon_ext}


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("eval-sumko"))
    args = ap.parse_args()

    summarizer = ExtractiveSummarizer()  # the defaults `polisum ingest` uses
    for name, records in load_sets(args.data).items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        articles = ["\n".join(sentences) for _, sentences, _ in records]
        summaries = summarizer.summarize(articles)
        write_jsonl(folder / "ref.jsonl", [{"id": i, "text": ref} for i, _, ref in records])
        write_jsonl(
            folder / "pred_polisum.jsonl",
            [{"id": i, "text": s} for (i, _, _), s in zip(records, summaries, strict=True)],
        )
        write_jsonl(
            folder / "pred_lead3.jsonl",
            [{"id": i, "text": "\n".join(sents[:3])} for i, sents, _ in records],
        )
        print(f"{folder}: {len(records)} articles ({summarizer.name})")


if __name__ == "__main__":
    main()
