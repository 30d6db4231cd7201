from __future__ import annotations

from pathlib import Path

from polisum.chunking import ParagraphChunker
from polisum.types import Document, Element


def _doc(text: str, section: str | None = None) -> Document:
    return Document(Path("x.txt"), text, [Element(text, section=section, start=0, end=len(text))])


def test_blank_lines_split_paragraphs_and_offsets_point_into_the_text():
    a = "첫 번째 문단은 충분히 길어서 다른 문단과 합쳐지지 않는다. " * 4
    b = "The second paragraph is long enough to stand on its own in the index. " * 3
    text = f"{a.strip()}\n\n  \n{b.strip()}\n"
    chunks = ParagraphChunker(min_chars=50, max_chars=1000).chunk(_doc(text), "x.txt")
    assert [c.text for c in chunks] == [a.strip(), b.strip()]
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.page is None and c.source == "x.txt"
    assert [c.ordinal for c in chunks] == [0, 1]


def test_tiny_paragraphs_merge_within_a_section_only():
    doc = Document(
        Path("x.md"),
        "",
        [
            Element("짧은 문단.", section="A"),
            Element("또 짧은 문단.", section="A"),
            Element("다른 절의 짧은 문단.", section="B"),
        ],
    )
    chunks = ParagraphChunker(min_chars=40, max_chars=500).chunk(doc, "x.md")
    assert [(c.section, c.text) for c in chunks] == [
        ("A", "짧은 문단.\n\n또 짧은 문단."),
        ("B", "다른 절의 짧은 문단."),
    ]


def test_oversized_korean_paragraph_splits_on_sentence_boundaries():
    sentences = [f"{i}번째 문장은 청년 주거 지원 정책의 세부 내용을 설명합니다." for i in range(40)]
    text = " ".join(sentences)
    chunks = ParagraphChunker(min_chars=10, max_chars=300).chunk(_doc(text), "ko.txt")
    assert len(chunks) > 1
    assert all(len(c.text) <= 300 for c in chunks)
    # every piece ends at a sentence end, and together they cover every sentence in order
    assert all(c.text.endswith("니다.") for c in chunks)
    assert " ".join(c.text for c in chunks) == text
    for c in chunks:
        assert text[c.start : c.end] == c.text


def test_oversized_english_paragraph_and_unbroken_text():
    text = "This is a sentence about budgets. " * 60 + "x" * 900
    chunks = ParagraphChunker(min_chars=10, max_chars=400).chunk(_doc(text.strip()), "en.txt")
    assert all(len(c.text) <= 400 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.strip().replace(" ", "")


def test_ids_are_stable_and_depend_on_content():
    chunker = ParagraphChunker(min_chars=0, max_chars=500)
    first = chunker.chunk(_doc("같은 문단.\n\n다른 문단."), "a.txt")
    again = chunker.chunk(_doc("같은 문단.\n\n다른 문단."), "a.txt")
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    edited = chunker.chunk(_doc("같은 문단.\n\n바뀐 문단."), "a.txt")
    assert first[0].chunk_id == edited[0].chunk_id
    assert first[1].chunk_id != edited[1].chunk_id
    other_file = chunker.chunk(_doc("같은 문단.\n\n다른 문단."), "b.txt")
    assert first[0].chunk_id != other_file[0].chunk_id


def test_repeated_paragraphs_get_distinct_ids():
    chunks = ParagraphChunker(min_chars=0, max_chars=500).chunk(
        _doc("반복.\n\n반복.\n\n반복."), "r.txt"
    )
    assert len({c.chunk_id for c in chunks}) == 3
