"""Shared pieces for the structured loaders: blocks → Document, heading paths, heading guesses.

Every structured loader (PDF, DOCX, HTML, HWP, HWPX) first produces :class:`Block` objects in
reading order and then calls :func:`build_document`, so ``Document.text`` is always the blocks
joined by blank lines and every element is an exact slice of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polisum.loaders.base import LoadError
from polisum.types import Document, Element, ElementKind

_WS = re.compile(r"[ \t\u00a0\u3000]+")


@dataclass
class Block:
    text: str
    kind: ElementKind = "paragraph"
    section: str | None = None
    page: int | None = None


def clean_inline(text: str) -> str:
    """One line of running text: runs of spaces/tabs (incl. NBSP, ideographic space) → one space."""
    return _WS.sub(" ", text).strip()


def build_document(
    path: Path, blocks: list[Block], metadata: dict[str, Any] | None = None, *, what: str = "file"
) -> Document:
    """Join blocks with blank lines into ``Document.text``; elements are exact slices of it."""
    parts: list[str] = []
    elements: list[Element] = []
    pos = 0
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if parts:
            pos += 2  # the "\n\n" separator
        parts.append(text)
        elements.append(Element(text, block.kind, block.section, block.page, pos, pos + len(text)))
        pos += len(text)
    if not elements:
        raise LoadError(path, f"no text found in {what}")
    return Document(path=path, text="\n\n".join(parts), elements=elements, metadata=metadata or {})


class SectionPath:
    """A stack of (level, title) headings; ``path`` is what ``Element.section`` holds."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> None:
        title = clean_inline(title)
        if not title:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title[:120]))

    @property
    def path(self) -> str | None:
        return " > ".join(t for _, t in self._stack) or None


# Korean government documents (HWP/HWPX, and PDFs made from them) rarely use heading styles:
# their outline is typed into the text as "Ⅰ. 개요", "1. 우선 추진과제", "4.1. 데이터 레코드".
# A short line (no sentence ending) that starts with such a number is taken as a heading.
_ROMAN = re.compile(r"^(?:[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ]|(?=[IVX])X{0,3}(?:IX|IV|V?I{0,3}))\s*[.．]\s*\S")
_DOTTED = re.compile(r"^(\d{1,2}(?:\.\d{1,2}){0,3})\.?\s+\S")
_CHAPTER = re.compile(r"^제\s*\d+\s*[장편부]\s*\S")
_SENTENCE_END = re.compile(r"(?:[.!?。:;,]|다)\s*$")
# A table-of-contents line ("Ⅰ. 개요 ······ 1", "Ⅰ. 개요<TAB>1") names a heading but is not one.
_TOC_LINE = re.compile(r"(?:\t|[·.…‥]{2,}|\s{3,})\s*\d+\s*$")
# The pattern backtracks cubically on a long run of whitespace (2,000 spaces: 27 s). Its only
# whitespace is ``\s``, where any run of 3+ matches alike, so runs are shortened to 3 first.
_LONG_SPACE_RUN = re.compile(r"\s{4,}")
MAX_HEADING_CHARS = 40


def _is_toc_line(text: str) -> bool:
    return _TOC_LINE.search(_LONG_SPACE_RUN.sub("   ", text)) is not None


_CAPS_TOP = re.compile(r"^(?:CHAPTER|PART|SECTION|ARTICLE|TITLE)\s+[\dIVXLC]+\b")
MAX_CAPS_HEADING_CHARS = 60


def guess_caps_heading_level(text: str) -> int | None:
    """For files without heading styles: a short ALL-CAPS line ("CHAPTER 1", "A. PURPOSE") is
    a heading. Level 1 for CHAPTER/PART lines, else 2. Korean text has no case: see
    :func:`guess_heading_level`."""
    line = clean_inline(text)
    if not line or len(line) > MAX_CAPS_HEADING_CHARS or "\n" in text.strip():
        return None
    if not line.isupper() or _SENTENCE_END.search(line) or _is_toc_line(text):
        return None
    if sum(c.isalpha() for c in line) < 3:
        return None
    return 1 if _CAPS_TOP.match(line) else 2


def guess_heading_level(text: str) -> int | None:
    """Level (1 = top) if ``text`` reads like a numbered heading, else None.

    "제1장 총칙" / "Ⅰ. 개요" → 1; "1. 추진 배경" → 2; "2.1 자료형" → 3; "2.1.3 ..." → 4.
    Long lines and lines that end like a sentence are body text, not headings.
    """
    line = clean_inline(text)  # length first: the patterns below then see a short line
    if not line or len(line) > MAX_HEADING_CHARS or "\n" in text.strip():
        return None
    if _is_toc_line(text):
        return None
    if _SENTENCE_END.search(line) and not _ROMAN.match(line) and not _CHAPTER.match(line):
        return None
    if _CHAPTER.match(line):
        return 1
    if _ROMAN.match(line):
        return 1
    m = _DOTTED.match(line)
    if m:
        number = m.group(1)
        if not re.search(r"[^\d.\s]", line[m.end(1) :]):  # "1. 2. 3." or a bare number
            return None
        return 2 + number.count(".")
    return None
