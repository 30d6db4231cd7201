"""Headings in the chunker: a heading opens the chunk of the text it heads, never a chunk of its
own; tiny leftovers find a neighbour of their section on the next or previous page."""

from __future__ import annotations

from pathlib import Path

from polisum.chunking import ParagraphChunker
from polisum.loaders.structure import Block, SectionPath, build_document
from polisum.types import Document, Element

SENTENCE = "청년 주거 지원 정책은 무주택 청년의 월세 부담을 덜어 주기 위해 마련되었습니다. "


def document(*items: tuple[str, str, int | None, str | None]) -> Document:
    """(kind, text, page, heading level or None): headings push their section path."""
    sections, blocks = SectionPath(), []
    for kind, text, page, level in items:
        if kind == "heading":
            sections.push(int(level), text)
        blocks.append(Block(text, kind, sections.path, page))
    return build_document(Path("plan.pdf"), blocks)


def chunk(doc: Document, **kw) -> list:
    chunks = ParagraphChunker(**kw).chunk(doc, "plan.pdf")
    for c in chunks:  # offsets stay exact: elements are joined by blank lines, as chunks are
        assert doc.text[c.start : c.end] == c.text
    return chunks


def test_stacked_headings_open_the_chunk_of_their_text_even_when_it_is_long():
    body = (SENTENCE * 30).strip()  # ~1,300 characters: split, with room for the headings
    doc = document(
        ("heading", "Ⅱ. 추진계획", 1, "1"),
        ("heading", "1. 추진 배경", 1, "2"),
        ("paragraph", body, 1, None),
    )
    chunks = chunk(doc, max_chars=1200)
    assert chunks[0].text.startswith("Ⅱ. 추진계획\n\n1. 추진 배경\n\n청년 주거 지원")
    assert chunks[0].section == "Ⅱ. 추진계획 > 1. 추진 배경"
    assert all(len(c.text) <= 1200 for c in chunks)
    assert len(chunks) == 2 and chunks[1].text.endswith("마련되었습니다.")


def test_heading_at_the_foot_of_a_page_goes_with_its_text_on_the_next():
    doc = document(
        ("paragraph", (SENTENCE * 4).strip(), 3, None),
        ("heading", "2. 지원 대상", 3, "2"),
        ("paragraph", (SENTENCE * 3).strip(), 4, None),
    )
    chunks = chunk(doc)
    assert [c.text.split("\n\n")[0] for c in chunks] == [doc.elements[0].text, "2. 지원 대상"]
    assert chunks[1].section == "2. 지원 대상" and chunks[1].page == 4


def test_a_heading_with_nothing_after_it_closes_the_last_chunk():
    doc = document(("paragraph", (SENTENCE * 2).strip(), 1, None), ("heading", "부록", 1, "1"))
    (only,) = chunk(doc)
    assert only.text.endswith("\n\n부록") and only.section is None


def test_a_document_that_is_only_a_title_keeps_it():
    (only,) = chunk(document(("heading", "제안요청서", 1, "1")))
    assert only.text == "제안요청서" and only.section == "제안요청서"


def test_headed_chunk_does_not_swallow_the_long_paragraph_before_it():
    # Same section (a heading the outline already names does not push a new one).
    long_para = (SENTENCE * 4).strip()
    doc = build_document(
        Path("plan.pdf"),
        [
            Block(long_para, "paragraph", "A", 1),
            Block("세부 내용", "heading", "A", 1),
            Block((SENTENCE * 2).strip(), "paragraph", "A", 1),
        ],
    )
    chunks = chunk(doc)
    assert [c.text.split("\n\n")[0] for c in chunks] == [long_para, "세부 내용"]


def test_tiny_leftover_joins_its_section_on_the_next_page():
    full = (SENTENCE * 26).strip()  # 1,195 characters: the label cannot join it
    doc = build_document(
        Path("plan.pdf"),
        [
            Block(full, "paragraph", "A", 1),
            Block("그림 3. 연도별 지원 인원", "paragraph", "A", 1),
            Block((SENTENCE * 3).strip(), "paragraph", "A", 2),
            Block("다른 절의 짧은 문단.", "paragraph", "B", 2),
        ],
    )
    chunks = chunk(doc, max_chars=1200)
    assert [(c.section, c.page, c.text[:12]) for c in chunks] == [
        ("A", 1, full[:12]),
        ("A", 2, "그림 3. 연도별 지원"),  # page: where most of its text is
        ("B", 2, "다른 절의 짧은 문단."),  # alone in its section: nothing to join
    ]


def test_plain_text_without_pages_merges_as_before():
    text = "제목\n\n" + (SENTENCE * 3).strip() + "\n\n짧은 끝 문단."
    chunks = chunk(Document(Path("x.txt"), text, [Element(text, start=0, end=len(text))]))
    assert [c.text for c in chunks] == [text]  # title-only first line joins what follows
