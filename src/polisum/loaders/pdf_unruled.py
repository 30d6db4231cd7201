"""Tables without ruling lines in PDFs: whitespace-aligned columns → " | " rows.

Ruled tables are found from their vector lines (:mod:`polisum.loaders.pdf_tables`). An unruled
one has nothing but space between its columns, and read line by line its header becomes one
line of run-together words ("구분 2021 2022 2023 증감률"). Here a line whose words are
separated by a gap of at least :data:`GAP` line heights is a row of cells; two or more such lines
one under the other become a table when their gaps line up: the columns are the bands of the
page that no cell of any row covers (a "whitespace river"), so a left-aligned text column and a
right-aligned number column both line up, and a cell that spans two columns in one row merges
them rather than inventing a split. Hand-written: pdfplumber's "text" strategy and camelot's
stream mode find columns from any words that line up, so every left-aligned paragraph turns into
a table unless a rule like the wide-gap one here comes first, and both re-parse the page with
pdfminer (~30× slower than PDFium's text layer, which already has the character boxes).

What is not split: gaps next to a bracket ("(      )" is a blank to fill in) and gaps between
single Hangul syllables (a letter-spaced title or header: "구      분").
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from polisum.loaders.korean_fix import is_hangul, join_lines
from polisum.loaders.pdf_lines import Cell, PdfLine
from polisum.loaders.pdf_tables import PdfTable
from polisum.loaders.tables import rows_to_text

# A gap this many line heights wide separates cells (justified text stays well below; the
# option lists and figure tables of the test documents are at 3 and more).
GAP = 2.5
# Columns must be at least this many line heights apart to count.
MIN_GUTTER = 0.8
_OPENING = "([{（「『【〈《<"
_CLOSING = ")]}）」』】〉》>"


def cell_spans(
    chars: list[str], boxes: list[tuple[int, float, float]], size: float
) -> tuple[Cell, ...]:
    """Cells of one PDFium line, or () when it has no wide gap. ``boxes`` are (index into
    ``chars``, left, right) of its visible characters, left to right."""
    cuts = [
        k + 1
        for k, ((i, _, right), (j, left, _)) in enumerate(pairwise(boxes))
        if left - right >= GAP * size and _separates(chars, i, j)
    ]
    if not cuts:
        return ()
    cells = []
    for a, b in pairwise([0, *cuts, len(boxes)]):
        group = boxes[a:b]
        text = "".join(chars[group[0][0] : group[-1][0] + 1])
        cells.append((min(g[1] for g in group), max(g[2] for g in group), text))
    return tuple(cells)


def _separates(chars: list[str], i: int, j: int) -> bool:
    if chars[i] in _OPENING or chars[j] in _CLOSING:
        return False
    lone_left = is_hangul(chars[i]) and (i == 0 or chars[i - 1].isspace())
    lone_right = is_hangul(chars[j]) and (j + 1 == len(chars) or chars[j + 1].isspace())
    return not (lone_left and lone_right)


def joined_cells(prev: PdfLine, line: PdfLine) -> tuple[Cell, ...]:
    """Cells of two pieces of one visual line that PDFium gave apart."""
    if not prev.cells and not line.cells and line.left - prev.right < GAP * prev.size:
        return ()
    left = prev.cells or ((prev.left, prev.right, prev.raw),)
    right = line.cells or ((line.left, line.right, line.raw),)
    if line.left - prev.right >= GAP * min(prev.size, line.size):
        return (*left, *right)
    (l0, _, t0), (_, r1, t1) = left[-1], right[0]
    return (*left[:-1], (l0, r1, t0.rstrip() + " " + t1.lstrip()), *right[1:])


def unruled_tables(items: list[Any]) -> list[Any]:
    """A page's items (lines, ruled tables, OCR'd paragraphs) with runs of aligned cell lines
    replaced by tables."""
    out: list[Any] = []
    run: list[PdfLine] = []

    def flush() -> None:
        table = _table(run) if len(run) >= 2 else None
        out.extend([table] if table else run)
        run.clear()

    for item in items:
        if not (isinstance(item, PdfLine) and len(item.cells) >= 2):
            flush()
            out.append(item)
            continue
        if run and not _under(run[-1], item):
            flush()
        run.append(item)
    flush()
    return out


def _under(prev: PdfLine, line: PdfLine) -> bool:
    """The next row: on the same page, below, within two and a half line heights."""
    return (
        line.page == prev.page
        and line.top <= prev.bottom + 0.5 * prev.size
        and prev.bottom - line.top <= 2.5 * prev.size
    )


def _table(rows: list[PdfLine]) -> PdfTable | None:
    size = min(r.size for r in rows)
    gutters = _gutters([(c[0], c[1]) for r in rows for c in r.cells], MIN_GUTTER * size)
    if not gutters:
        return None
    grid = []
    for row in rows:
        cells = [""] * (len(gutters) + 1)
        for left, _, text in row.cells:
            col = sum(g < left for g in gutters)
            cells[col] = f"{cells[col]} {join_lines([text])}".strip()
        grid.append(cells)
    if sum(sum(bool(c) for c in row) >= 2 for row in grid) < 2:
        return None
    return PdfTable(
        rows_to_text(grid),
        left=min(r.left for r in rows),
        bottom=min(r.bottom for r in rows),
        right=max(r.right for r in rows),
        top=max(r.top for r in rows),
        page=rows[0].page,
    )


def _gutters(spans: list[tuple[float, float]], width: float) -> list[float]:
    """Middles of the vertical bands at least ``width`` wide that no span covers."""
    spans = sorted(spans)
    out = []
    reach = spans[0][1]
    for left, right in spans[1:]:
        if left - reach >= width:
            out.append((left + reach) / 2)
        reach = max(reach, right)
    return out
