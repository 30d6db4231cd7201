"""A PDF page's items → paragraphs: ruled tables placed among the lines, pieces of one visual
line merged, running headers and footers dropped, lines grouped into paragraphs. Pure geometry
on what polisum.loaders.pdf read from PDFium."""

from __future__ import annotations

import re
from dataclasses import dataclass

from polisum.loaders.pdf_lines import PdfLine as _Line
from polisum.loaders.pdf_tables import PdfTable
from polisum.loaders.pdf_unruled import joined_cells

_BULLET = re.compile(
    r"^\s*(?:[■□▪▫●○◦•∙·※☞➢➔✓❑◻◆◇▶▷►\-–—*]|\d{1,2}[.)]\s|[가-하][.)]\s|\(\d{1,2}\)|"
    r"[①-⑳]|제\s*\d+\s*[조장관절]|【)"
)
_SENTENCE_END = re.compile(r"(?:[.!?。:]|[다음함임됨요])[\"'”’)\]]*\s*$")
_PAGE_NUMBER = re.compile(r"^\s*[-–—(]?\s*(?:\d{1,4}|[ivxlc]{1,6})\s*[-–—)]?\s*$", re.I)


@dataclass
class OcrParagraph:
    text: str
    page: int


# A page is its lines, ruled tables and OCR'd paragraphs in reading order.
Item = _Line | PdfTable | OcrParagraph


def place_tables(lines: list[_Line], tables: list[PdfTable]) -> list[Item]:
    """Lines inside a table are dropped; the table goes after the last line above it (its
    title or caption), since PDFium's content order often draws a table before its heading."""
    rest: list[_Line] = []
    for line in lines:
        x, y = (line.left + line.right) / 2, (line.top + line.bottom) / 2
        if not any(t.contains(x, y) for t in tables):
            rest.append(line)
    after: dict[int, list[PdfTable]] = {}
    for table in tables:
        above = [
            i
            for i, ln in enumerate(rest)
            if ln.bottom >= table.top - 1 and ln.left < table.right and ln.right > table.left
        ]
        after.setdefault(max(above, default=-1), []).append(table)
    out: list[Item] = list(after.get(-1, []))
    for i, line in enumerate(rest):
        out.append(line)
        out.extend(after.get(i, []))
    return out


def merge_same_line(lines: list[Item]) -> list[Item]:
    """PDFium breaks a visual line at superscripts, font changes and wide gaps (table cells):
    pieces that sit on the same baseline, left to right, are one line again."""
    out: list[Item] = []
    for line in lines:
        prev = out[-1] if out else None
        if isinstance(prev, _Line) and isinstance(line, _Line) and line.left >= prev.right - 1:
            overlap = min(prev.top, line.top) - max(prev.bottom, line.bottom)
            if overlap > 0.5 * min(prev.top - prev.bottom, line.top - line.bottom):
                main = prev if len(prev.text) >= len(line.text) else line
                out[-1] = _Line(
                    raw=prev.raw.rstrip() + " " + line.raw.lstrip(),
                    left=prev.left,
                    right=line.right,
                    top=max(prev.top, line.top),
                    bottom=min(prev.bottom, line.bottom),
                    size=main.size,
                    bold=main.bold,
                    page=prev.page,
                    cells=joined_cells(prev, line),
                )
                continue
        out.append(line)
    return out


def _norm_running(text: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", text))


def drop_running_lines(pages: list[list[Item]]) -> list[list[Item]]:
    """Running headers/footers: lines that recur (digits ignored) on at least a quarter of the
    pages (min. 3) either among the first or last few lines of a page, or at the same height
    wherever they fall in PDFium's reading order (a logo word, a chapter tab drawn last); and
    bare page numbers at a page's edges."""
    if len(pages) < 3:
        return pages
    edge = 4
    counts: dict[str, int] = {}
    for items in pages:
        lines = [ln for ln in items if isinstance(ln, _Line)]
        for key in {_norm_running(ln.raw) for ln in lines[:edge] + lines[-edge:]}:
            counts[key] = counts.get(key, 0) + 1
    need = max(3, -(-len(pages) // 4))  # a quarter of the pages: odd/even headers differ
    running = {k for k, c in counts.items() if c >= need and k}
    fixed = _fixed_position_lines(pages, need)
    out = []
    for lines in pages:
        keep: list[Item] = []
        for i, line in enumerate(lines):
            if isinstance(line, _Line):
                key = _norm_running(line.raw)
                at_edge = i < edge or i >= len(lines) - edge
                if at_edge and (key in running or _PAGE_NUMBER.match(line.raw)):
                    continue
                if (key, round(line.top / _Y_BIN)) in fixed:
                    continue
            keep.append(line)
        out.append(keep)
    return out


_Y_BIN = 2.0  # points


def _fixed_position_lines(pages: list[list[Item]], need: int) -> set[tuple[str, int]]:
    """(text key, height bin) of short lines with letters that sit at the same height (±1 bin)
    on ``need`` pages or more. Numbers alone are left alone: chart values can line up."""
    seen: dict[tuple[str, int], set[int]] = {}
    for page_no, items in enumerate(pages):
        for line in items:
            if isinstance(line, _Line) and len(line.text) <= 80:
                key = _norm_running(line.raw)
                if any(c.isalpha() for c in key):
                    seen.setdefault((key, round(line.top / _Y_BIN)), set()).add(page_no)
    fixed = set()
    for (key, y), on in seen.items():
        near = on | seen.get((key, y - 1), set()) | seen.get((key, y + 1), set())
        if len(near) >= need:
            fixed.add((key, y))
    return fixed


def paragraphs(lines: list[Item]) -> list[list[_Line] | PdfTable | OcrParagraph]:
    paras: list[list[_Line] | PdfTable | OcrParagraph] = []
    cur: list[_Line] = []
    for line in lines:
        if not isinstance(line, _Line):  # a table or an OCR'd paragraph stands alone
            if cur:
                paras.append(cur)
                cur = []
            paras.append(line)
            continue
        if cur and not _continues(cur, line):
            paras.append(cur)
            cur = []
        cur.append(line)
    if cur:
        paras.append(cur)
    return paras


def _continues(cur: list[_Line], line: _Line) -> bool:
    prev = cur[-1]
    size = min(prev.size, line.size)
    if abs(prev.size - line.size) > 0.15 * max(prev.size, line.size):
        return False  # font size changed: heading ↔ body
    if line.top > prev.top + 0.5 * size or line.left > prev.right + 2 * size:
        return False  # moved up or right: next column or a separate box
    if prev.bottom - line.top > 0.7 * size:
        return False  # a vertical gap wider than the line spacing
    if _BULLET.match(line.raw):
        return False
    if len(cur) >= 2:
        right = max(ln.right for ln in cur)
        if prev.right < right - 3 * size and _SENTENCE_END.search(prev.raw):
            return False  # the previous line was a short, finished last line
    return True
