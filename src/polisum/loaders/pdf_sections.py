"""Sections of a PDF: which paragraphs are headings, and the heading path of every block.

The file's own outline (its bookmarks, :func:`read_outline`) is the authority when it has one:
each entry is looked up on the page it points to, and the paragraph that carries its title
becomes the heading; an entry whose title is not found there still starts its section at the
point on the page the bookmark points to. Headings guessed from the layout nest below the
outline entries, or make the whole path when there is no outline.

Layout guesses: a paragraph in a font noticeably larger than the body (levels by size, largest
first), or a bold numbered line ("3.1 Overview", "1. 서 론"). A guess must read like a heading
(:func:`~polisum.loaders.structure.looks_like_heading`: chart figures such as "19,656" or
"94 만 tCO2eq/년", axis labels and contents lines are not), and text that recurs on half the
pages or more is furniture (a logo word, a running title), never a heading.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from polisum.loaders.korean_fix import join_lines
from polisum.loaders.pdf_lines import PdfLine
from polisum.loaders.pdf_tables import PdfTable
from polisum.loaders.structure import (
    Block,
    SectionPath,
    clean_inline,
    guess_heading_level,
    looks_like_heading,
)

MAX_HEADING_CHARS = 120
# Bookmarks read at most: a hostile file can hold millions, and a reader never needs that many.
MAX_OUTLINE_ENTRIES = 5000
MAX_OUTLINE_DEPTH = 12
# A bookmark's title may lack the label its heading has on the page ("Appendix A", "2.1").
_MAX_LABEL = 10
# Layout-guessed headings sit below every outline level.
_BELOW_OUTLINE = 100


class LooseParagraph(Protocol):
    """A paragraph without line geometry (an OCR'd one)."""

    text: str
    page: int


Paragraph = list[PdfLine] | PdfTable | LooseParagraph


@dataclass(frozen=True)
class OutlineEntry:
    level: int  # 1 = top
    title: str
    page: int  # 1-based
    top: float | None  # where on the page the bookmark points (PDF points, y up), if it says


def read_outline(pdf: Any, n_pages: int) -> list[OutlineEntry]:
    """The document's bookmarks that point to one of its pages, in outline order. An outline
    PDFium cannot walk is ignored: it refines the sections, the text does not depend on it."""
    entries: list[OutlineEntry] = []
    try:
        for mark in itertools.islice(pdf.get_toc(max_depth=MAX_OUTLINE_DEPTH), MAX_OUTLINE_ENTRIES):
            title = clean_inline(mark.get_title() or "")[:MAX_HEADING_CHARS]
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            if title and index is not None and 0 <= index < n_pages:
                entries.append(OutlineEntry(mark.level + 1, title, index + 1, _dest_top(dest)))
    except Exception:  # a damaged outline must not cost the document its text
        return entries
    # Bookmarks that all point to one page of a longer document are broken, not an outline.
    if len(entries) > 1 and n_pages > 1 and len({e.page for e in entries}) == 1:
        return []
    return entries


def _dest_top(dest: Any) -> float | None:
    """The y a destination scrolls to: XYZ (left, top, zoom), FitH/FitBH (top), FitR (l, b,
    r, t). 0 means "unchanged" in practice."""
    mode, pos = dest.get_view()
    top = {1: 1, 3: 0, 7: 0, 5: 3}.get(mode)
    if top is None or top >= len(pos) or pos[top] <= 0:
        return None
    return float(pos[top])


def _key(text: str) -> str:
    """Text compared for matching: letters and digits only, case and width folded."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


def _text(para: Paragraph) -> str:
    if isinstance(para, list):
        return join_lines([ln.raw for ln in para])
    return para.text


def section_blocks(
    paras: list[Paragraph], outline: list[OutlineEntry], n_pages: int
) -> list[Block]:
    """Paragraphs in reading order → blocks with their heading paths."""
    texts = [_text(p) for p in paras]
    starts = _place_outline(paras, texts, outline)
    guessed = _guess_headings(paras, texts, n_pages, nested=bool(starts))
    outline_keys = {_key(e.title) for e in outline}
    sections = SectionPath()
    blocks: list[Block] = []
    for i, (para, text) in enumerate(zip(paras, texts, strict=True)):
        for entry, _ in starts.get(i, []):
            sections.push(entry.level, entry.title)
        if not text:
            continue
        page = para[0].page if isinstance(para, list) else para.page
        if isinstance(para, PdfTable):
            kind = "table"
        elif any(is_title for _, is_title in starts.get(i, [])):
            kind = "heading"
        elif i in guessed:
            kind = "heading"
            if _key(text) not in outline_keys:  # the outline already names it
                sections.push(guessed[i], text)
        else:
            kind = "paragraph"
        blocks.append(Block(text, kind, sections.path, page))
    return blocks


def _place_outline(
    paras: list[Paragraph], texts: list[str], outline: list[OutlineEntry]
) -> dict[int, list[tuple[OutlineEntry, bool]]]:
    """Paragraph index → the outline entries whose sections start there, each with whether
    that paragraph is the entry's title (then it is a heading block)."""
    if not outline:
        return {}
    by_page: dict[int, list[int]] = defaultdict(list)
    for i, para in enumerate(paras):
        by_page[para[0].page if isinstance(para, list) else para.page].append(i)
    # Only a paragraph's start is compared (titles are capped): matching stays linear in the
    # number of bookmarks whatever the paragraphs' length.
    width = 2 * (MAX_HEADING_CHARS + _MAX_LABEL)
    keys = [_key(text[:width]) for text in texts]
    used: set[int] = set()
    starts: dict[int, list[tuple[OutlineEntry, bool]]] = defaultdict(list)
    for entry in outline:
        found = _find_title(entry, paras, keys, by_page, used)
        if found is not None:
            used.add(found)
            is_title = len(_key(texts[found])) <= 1.2 * len(_key(entry.title)) + _MAX_LABEL
            starts[found].append((entry, is_title))
            continue
        at = _position(entry, paras, by_page)
        if at is not None:
            starts[at].append((entry, False))
    return starts


def _find_title(
    entry: OutlineEntry,
    paras: list[Paragraph],
    keys: list[str],
    by_page: dict[int, list[int]],
    used: set[int],
) -> int | None:
    """The paragraph on the bookmark's page (or the next: some writers point at the bottom of
    the page before) that starts with the bookmark's title, nearest to where it points."""
    title = _key(entry.title)
    if not title:
        return None
    for page in (entry.page, entry.page + 1):
        hits = []
        for i in by_page.get(page, []):
            if i in used or isinstance(paras[i], PdfTable):
                continue
            key = keys[i]
            # The page may number what the bookmark does not ("2.1 ASN.1 syntax" for "ASN.1
            # syntax", "Appendix A ..." for "A ..."), or wrap a long title over two paragraphs.
            at = key.find(title, 0, len(title) + _MAX_LABEL)
            if at >= 0 or (len(key) >= 0.6 * len(title) and title.startswith(key)):
                hits.append(i)
        if hits:
            return min(hits, key=lambda i: _distance(paras[i], entry))
    return None


def _distance(para: Paragraph, entry: OutlineEntry) -> float:
    if entry.top is None or not isinstance(para, list):
        return 0.0
    return abs(para[0].top - entry.top)


def _position(
    entry: OutlineEntry, paras: list[Paragraph], by_page: dict[int, list[int]]
) -> int | None:
    """Where a bookmark whose title is not on its page starts its section: the first paragraph
    whose first line's middle is at or below the point it scrolls to (the page's first if it
    does not say), else the first paragraph of a later page."""
    for i in by_page.get(entry.page, []):
        middle = _middle(paras[i])
        if entry.top is None or middle is None or middle <= entry.top:
            return i
    for page in range(entry.page + 1, max(by_page, default=0) + 1):
        if by_page.get(page):
            return by_page[page][0]
    return None


def _middle(para: Paragraph) -> float | None:
    if isinstance(para, list):
        return para[0].top - para[0].size / 2
    if isinstance(para, PdfTable):
        return para.top
    return None


def _guess_headings(
    paras: list[Paragraph], texts: list[str], n_pages: int, *, nested: bool
) -> dict[int, int]:
    """Paragraph index → heading level guessed from the layout (levels below the outline's when
    ``nested``)."""
    lines = [ln for p in paras if isinstance(p, list) for ln in p]
    body = _weighted_median([(ln.size, len(ln.raw.strip())) for ln in lines])
    furniture = _recurring(paras, texts, n_pages)
    candidates: dict[int, tuple[str, float]] = {}
    for i, (para, text) in enumerate(zip(paras, texts, strict=True)):
        if not isinstance(para, list) or not text or len(text) > MAX_HEADING_CHARS:
            continue
        if len(para) > 3 or _furniture_key(text) in furniture or not looks_like_heading(text):
            continue
        first = para[0]
        if first.size >= 1.2 * body:
            candidates[i] = ("size", round(first.size, 1))
        elif first.bold and first.size >= (0.95 if len(para) == 1 else 1.05) * body:
            candidates[i] = ("numbered", 0.0)
    levels = _size_levels([size for how, size in candidates.values() if how == "size"])
    out: dict[int, int] = {}
    for i, (how, size) in candidates.items():
        level = levels[size] if how == "size" else guess_heading_level(texts[i])
        if level:
            out[i] = level + _BELOW_OUTLINE if nested else level
    return out


def _size_levels(sizes: list[float]) -> dict[float, int]:
    """Heading sizes → levels, largest first (3 at most). Sizes within 8% of a level's largest
    are the same level: glyph boxes of one font size vary a little with the font."""
    levels: dict[float, int] = {}
    level, top = 0, 0.0
    for size in sorted(set(sizes), reverse=True):
        if not level or size < 0.92 * top:
            level, top = level + 1, size
        levels[size] = min(level, 3)
    return levels


def _furniture_key(text: str) -> str:
    return re.sub(r"\d+", "#", _key(text))


def _recurring(paras: list[Paragraph], texts: list[str], n_pages: int) -> set[str]:
    """Short texts found on half the pages or more (at least 3): a logo word or a running
    title the page-edge filter missed (it sits mid-page, or moves between odd and even
    pages)."""
    if n_pages < 3:
        return set()
    pages: dict[str, set[int]] = defaultdict(set)
    for para, text in zip(paras, texts, strict=True):
        if isinstance(para, list) and len(para) <= 3 and len(text) <= MAX_HEADING_CHARS:
            pages[_furniture_key(text)].add(para[0].page)
    need = max(3, -(-n_pages // 2))
    return {key for key, seen in pages.items() if key and len(seen) >= need}


def _weighted_median(pairs: list[tuple[float, int]]) -> float:
    pairs = sorted(pairs)
    total = sum(w for _, w in pairs)
    acc = 0
    for value, weight in pairs:
        acc += weight
        if acc * 2 >= total:
            return value
    return pairs[-1][0] if pairs else 0.0
