"""Chunk and section quality: are the chunks and section paths ones a reader would accept?

    python benchmarks/chunk_quality.py [--data FOLDER] [--extra FILE ...] [--txt-ids] [--json]

For every PDF, HWP, HWPX and DOCX under ../shared/data/docs_{en,ko,hwp} (and any ``--extra``
files): the number of chunks, the share under 60 characters, the share that are headings alone,
the number of distinct section paths ("paths": of chunks / of elements; a heading-only chunk
used to add its parent's path, so the chunk count can fall while no section is lost).
Section paths are checked against the PDF's own outline (bookmarks, read here with pypdfium2
independently of the loader) and, for PDFs without a useful one, against the hand-checked
contents in ``HAND_TOC``: an entry counts as found when an element on its page has a section
path with a component that names it (letters and digits compared, a numbering label of up to 10
characters allowed: "2.1 ASN.1 syntax" names "ASN.1 syntax"). "o.path" is stricter: an element
on the page has exactly the bookmark's path from the outline root (no extra or missing levels).

Plain-text ingestion must not move: ``--txt-ids`` also chunks every KorQuAD dev paragraph
written as a .txt file (as benchmarks/retrieval_korquad.py ingests them) plus the shared
Markdown files, and prints one digest of all their chunk ids; run it before and after a change
and compare.

Uses only the public loader and chunker API, so the same file runs on older commits (run it from
a worktree of the base commit with its own ``src`` on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import unicodedata
from pathlib import Path

from polisum.chunking import ParagraphChunker
from polisum.loaders import default_registry
from polisum.types import Chunk, Document

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBDIRS = ("docs_en", "docs_ko", "docs_hwp")
FORMATS = (".pdf", ".hwp", ".hwpx", ".docx")
SHORT = 60

# Contents checked by hand against the rendered pages: (title, PDF page). SPRi's contents page
# (p. 2) lists parts and articles with printed page numbers (printed 1 = PDF page 4); its
# category lines ("1. 정책/법제") are left out: the pages show them only in the tab strip.
HAND_TOC: dict[str, list[tuple[str, int]]] = {
    "SPRI_AI_Brief_2023년12월호_F.pdf": [
        ("Ⅰ. 인공지능 산업 동향 브리프", 3),
        ("미국, 안전하고 신뢰할 수 있는 AI 개발과 사용에 관한 행정명령 발표", 4),
        ("G7, 히로시마 AI 프로세스를 통해 AI 기업 대상 국제 행동강령에 합의", 5),
        ("영국 AI 안전성 정상회의에 참가한 28개국, AI 위험에 공동 대응 선언", 6),
        ("미국 법원, 예술가들이 생성 AI 기업에 제기한 저작권 소송 기각", 7),
        ("미국 연방거래위원회, 저작권청에 소비자 보호와 경쟁 측면의 AI 의견서 제출", 8),
        ("EU AI 법 3자 협상, 기반모델 규제 관련 견해차로 난항", 9),
        ("미국 프런티어 모델 포럼, 1,000만 달러 규모의 AI 안전 기금 조성", 10),
        ("코히어, 데이터 투명성 확보를 위한 데이터 출처 탐색기 공개", 11),
        ("알리바바 클라우드, 최신 LLM ‘통이치엔원 2.0’ 공개", 12),
        ("삼성전자, 자체 개발 생성 AI ‘삼성 가우스’ 공개", 13),
        ("구글, 앤스로픽에 20억 달러 투자로 생성 AI 협력 강화", 14),
        ("IDC, 2027년 AI 소프트웨어 매출 2,500억 달러 돌파 전망", 15),
        ("빌 게이츠, AI 에이전트로 인한 컴퓨터 사용의 패러다임 변화 전망", 16),
        ("유튜브, 2024년부터 AI 생성 콘텐츠 표시 의무화", 17),
        ("영국 과학혁신기술부, AI 안전 연구소 설립 발표", 18),
        ("구글 딥마인드, 범용 AI 모델의 기능과 동작에 대한 분류 체계 발표", 19),
        ("갈릴레오의 LLM 환각 지수 평가에서 GPT-4가 가장 우수", 20),
        ("영국 옥스퍼드 인터넷 연구소, AI 기술자의 임금이 평균 21% 높아", 21),
        ("Ⅱ. 주요 행사", 22),
    ],
    "multi-column-2p.pdf": [
        ("Dense Passage Retrieval for Open-Domain Question Answering", 1),
        ("1 Introduction", 1),
        ("2 Background", 2),
        ("3 Dense Passage Retriever (DPR)", 2),
        ("3.1 Overview", 2),
    ],
    "layout-parser-paper-fast.pdf": [
        ("LayoutParser: A Unified Toolkit for Deep Learning Based Document Image Analysis", 1),
        ("1 Introduction", 1),
    ],
    "insurance_terms_korean_texts_two_page.pdf": [
        ("【보통약관】", 1),
        ("제1관 목적 및 용어의 정의", 1),
        ("제2관 보험금의 지급", 1),
    ],
}


def key(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


def outline(path: Path) -> list[tuple[list[str], int]]:
    """(titles from the outline's root down to the bookmark, 1-based page) of every bookmark
    that points to a page."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        out, trail = [], []
        for mark in pdf.get_toc():
            title = mark.get_title().strip()
            trail = [*trail[: mark.level], title]
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            if title and index is not None:
                out.append((trail, index + 1))
        return out
    finally:
        pdf.close()


def names(part: str, title: str) -> bool:
    """Does a section path component name this title (a numbering label may be added)?"""
    want = key(title)
    return want in key(part) and len(key(part)) <= len(want) + 10


def found_share(doc: Document, entries: list[tuple[list[str], int]], *, whole_path: bool = False):
    """Share of entries (trail of titles, page) named by a section path component on their
    page, or with ``whole_path`` whose section path is exactly their trail; the missing ones."""
    missing = []
    for trail, page in entries:
        paths = {el.section for el in doc.elements if el.page == page and el.section}
        if whole_path:
            ok = any(
                len(parts) == len(trail) and all(map(names, parts, trail))
                for parts in (path.split(" > ") for path in paths)
            )
        else:
            ok = any(names(part, trail[-1]) for path in paths for part in path.split(" > "))
        if not ok:
            missing.append(f"{trail[-1]} (p{page})")
    return round(1 - len(missing) / len(entries), 3), missing


def heading_only(doc: Document, chunks: list[Chunk]) -> int:
    headings = {el.text for el in doc.elements if el.kind == "heading"}
    return sum(all(part in headings for part in c.text.split("\n\n")) for c in chunks)


def measure(path: Path, registry, chunker: ParagraphChunker) -> dict:
    doc = registry.load(path)
    chunks = chunker.chunk(doc, path.name)
    row: dict = {
        "file": f"{path.parent.name}/{path.name}",
        "chunks": len(chunks),
        "short": round(sum(len(c.text) < SHORT for c in chunks) / len(chunks), 3),
        "heading_only": round(heading_only(doc, chunks) / len(chunks), 3),
        "sections": len({c.section for c in chunks if c.section}),
        "element_sections": len({el.section for el in doc.elements if el.section}),
    }
    if path.suffix.lower() == ".pdf":
        marks = outline(path)
        if marks:
            row["outline"], row["outline_missing"] = found_share(doc, marks)
            row["outline_path"], _ = found_share(doc, marks, whole_path=True)
            row["outline_entries"] = len(marks)
        if path.name in HAND_TOC:
            toc = [([title], page) for title, page in HAND_TOC[path.name]]
            row["toc"], row["toc_missing"] = found_share(doc, toc)
            row["toc_entries"] = len(toc)
    return row


def plain_text_digest(data: Path, registry, chunker: ParagraphChunker) -> tuple[int, str]:
    """Chunk ids of the KorQuAD paragraphs as .txt files and of the shared Markdown files."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _korquad import load_korquad, write_corpus

    digest = hashlib.blake2b(digest_size=12)
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        paragraphs, _ = load_korquad(data / "korquad" / "KorQuAD_v1.0_dev.json")
        write_corpus(paragraphs, Path(tmp))
        files = sorted(Path(tmp).glob("*.txt")) + sorted(data.glob("docs_*/*.md"))
        for path in files:
            for chunk in chunker.chunk(registry.load(path), path.name):
                digest.update(chunk.chunk_id.encode())
                n += 1
    return n, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more files to measure")
    parser.add_argument("--txt-ids", action="store_true", help="digest of .txt/.md chunk ids")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    files = sorted(
        p for sub in SUBDIRS for p in (args.data / sub).glob("*") if p.suffix.lower() in FORMATS
    )
    registry, chunker = default_registry(), ParagraphChunker()
    rows = [measure(p, registry, chunker) for p in [*files, *args.extra]]
    total = sum(r["chunks"] for r in rows)
    summary = {
        "chunks": total,
        "short": round(sum(r["short"] * r["chunks"] for r in rows) / total, 3),
        "heading_only": round(sum(r["heading_only"] * r["chunks"] for r in rows) / total, 3),
    }
    if args.txt_ids:
        summary["txt_md_chunks"], summary["txt_md_digest"] = plain_text_digest(
            args.data, registry, chunker
        )
    if args.json:
        print(json.dumps({"files": rows, "summary": summary}, ensure_ascii=False, indent=1))
        return
    print(
        f"{'file':50} {'chunks':>6} {'<60':>6} {'head':>6} {'paths':>9} "
        f"{'outline':>8} {'o.path':>6} {'toc':>9}"
    )
    for r in rows:
        found = f"{r['outline']:.2f}/{r['outline_entries']}" if "outline" in r else ""
        whole = f"{r['outline_path']:.2f}" if "outline" in r else ""
        toc = f"{r['toc']:.2f}/{r['toc_entries']}" if "toc" in r else ""
        print(
            f"{r['file'][:50]:50} {r['chunks']:6} {r['short']:6.3f} {r['heading_only']:6.3f} "
            f"{r['sections']:4}/{r['element_sections']:<4} {found:>8} {whole:>6} {toc:>9}"
        )
    for r in rows:
        for what in ("outline_missing", "toc_missing"):
            if r.get(what):
                print(f"  {r['file']} {what}: {'; '.join(r[what][:8])}")
    print("all:", json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
