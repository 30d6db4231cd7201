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


@dataclass
class Part:
    """A paragraph, list item or table as a markup reader (DOCX, HTML) found it, before
    sections are assigned by :func:`sectioned_blocks`."""

    kind: ElementKind
    text: str
    page: int | None = None
    level: int | None = None  # heading level from the markup (Word styles, <h1>-<h6>)
    rows: list[list[str | None]] | None = None  # a table's grid, to write it inline in a cell
    starts: str | None = None  # a new top-level unit (a slide, a sheet) of this name starts here


def sectioned_blocks(parts: list[Part]) -> list[Block]:
    """Parts → blocks with section paths. Headings come from the markup's levels; a file with
    none (Word files formatted by hand, pages without <h1>-<h6>) gets them guessed from numbered
    or ALL-CAPS short lines. Consecutive list items on one page form one list block."""
    guess = not any(part.level for part in parts)
    sections = SectionPath()
    blocks: list[Block] = []
    for part in parts:
        if part.starts is not None:
            sections.reset(part.starts)
        text = part.text.strip()
        if not text:
            continue
        level = part.level
        if guess and part.kind == "paragraph":
            level = guess_heading_level(part.text) or guess_caps_heading_level(part.text)
        if level and part.kind != "table":
            sections.push(level, text)
            blocks.append(Block(text, "heading", sections.path, part.page))
        elif part.kind == "list" and blocks and blocks[-1].kind == "list":
            if blocks[-1].page == part.page:
                blocks[-1].text += "\n" + text
            else:
                blocks.append(Block(text, "list", sections.path, part.page))
        else:
            blocks.append(Block(text, part.kind, sections.path, part.page))
    return blocks


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
        self._path: str | None = None  # asked for once per block: kept, not joined each time

    def reset(self, root: str | None = None) -> None:
        """Start over, under ``root`` (level 0) if given."""
        self._stack = []
        self._path = None
        if root:
            self.push(0, root)

    def push(self, level: int, title: str) -> None:
        title = clean_inline(title)
        if not title:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title[:120]))
        self._path = " > ".join(t for _, t in self._stack)

    @property
    def path(self) -> str | None:
        return self._path


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


# What a heading is not: chart figures ("19,656", "94 만 tCO2eq/년"), axis labels, page
# numbers, contents lines with dot leaders. A heading names something, so it needs at least
# one word of two or more letters that is not a unit.
_TOKEN = re.compile(r"[^\W_]+")
_LEADER_TO_NUMBER = re.compile(r"(?:[·.…‥•_-]\s*){3,}\d+\s*$")
_LETTER_SPACED = re.compile(r"(?<![가-힣])([가-힣])\s(?=[가-힣](?![가-힣]))")
_UNIT_WORDS = (
    "kwh mwh gwh twh kw mw gw tj gj mj pj kg km mm cm ton tons toe ppm ppb usd krw eur jpy "
    "cny tco2 tco2e tco2eq co2 co2e co2eq nm3 m2 m3 bn mn yoy qoq bp bps pts pct "
    "억원 만원 천원 백만원 십억원 조원 개월 만명 천명 만톤 천톤 백만 천만"
)
_UNITS = frozenset(_UNIT_WORDS.split())
_UNIT_SYLLABLES = frozenset("만억천백십조원년월일개명건톤회배점호세분초시차위주")


def _is_word(token: str) -> bool:
    letters = "".join(c for c in token if c.isalpha())
    if len(letters) < 2 or token.lower() in _UNITS or letters.lower() in _UNITS:
        return False
    if any(c.isdigit() for c in token):
        # "12개월", "234억원", "tCO2", "m2": a number with its unit, not a name
        return len(letters) > 3 and not set(letters) <= _UNIT_SYLLABLES
    return True


def looks_like_heading(text: str) -> bool:
    """Could ``text`` be a heading at all, whatever its font? False for numbers with units,
    chart and axis labels, page numbers and contents lines; letter-spaced Korean titles
    ("서 론", "개 요") count as words."""
    line = clean_inline(text)
    if not line or _LEADER_TO_NUMBER.search(line):
        return False
    tokens = _TOKEN.findall(_LETTER_SPACED.sub(r"\1", line))
    if not any(_is_word(t) for t in tokens):
        return False
    digits = sum(c.isdigit() for c in line)
    letters = sum(c.isalpha() for c in line)
    return digits <= letters
