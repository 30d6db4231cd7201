"""Tables → text a reader can follow: one line per row, cells separated by " | ".

Merged cells: a cell that spans columns is written once, and the grid positions it covers hold
``None`` (see :func:`rows_to_text`); a cell that spans rows is copied into the rows below when
it is a short label (:func:`copied_down`), so each row reads on its own ("Seoul | Gangnam | 12",
"Seoul | Mapo | 9").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from polisum.loaders.structure import clean_inline

CELL_SEP = " | "
# A table inside a table cell is written on one line: its cells joined by "; ", rows by " / ".
INLINE_CELL_SEP = "; "
INLINE_ROW_SEP = " / "
# Text longer than this in a cell spanning rows is written once, not copied into every row.
MAX_COPIED_SPAN_CHARS = 80
# HTML clamps colspan to 1000 and rowspan to 65534; hostile values are cut much shorter here.
# Spans can still make a grid far larger than the table's markup (a cell spanning every row
# below, in every row, is quadratic): once a grid holds GRID_CELLS_PER_CELL positions per cell
# of the table (plus a little), its remaining spans are ignored.
MAX_COLSPAN = 100
GRID_CELLS_PER_CELL = 8
# Grid positions (rows × columns, after dropping addresses no cell uses) a table may fill with
# gaps. Cell addresses come from the file (HWP: 16 bits, HWPX: any integer): a diagonal of n
# cells is an n × n grid of mostly gaps. A real table of 1,000 rows × 100 columns fits; past
# that, rows keep their cells in column order without gaps: all text kept, columns unaligned.
MAX_GRID_CELLS = 100_000

Row = Sequence[str | None]


def rows_to_text(rows: Iterable[Row]) -> str:
    """Rows of cell texts → "a | b | c" lines. ``None`` marks a grid position covered by the
    cell to its left (a column span): it counts as a column but is not written. Whitespace
    inside a cell collapses to one space, columns empty in every row (spacer columns in HTML
    layouts) and empty rows are dropped, and a row that merely repeats the previous one (a
    rowspan copied down) is kept once."""
    table = [
        [None if c is None else clean_inline(c.replace("\n", " ")) for c in row] for row in rows
    ]
    used = {
        c for row in table for c, cell in enumerate(row) if cell
    }  # one pass: cells, not rows × width
    lines: list[str] = []
    for row in table:
        cells = [cell for c, cell in enumerate(row) if c in used and cell is not None]
        while cells and not cells[-1]:
            cells.pop()
        if not any(cells):
            continue
        line = CELL_SEP.join(cells)
        if not lines or lines[-1] != line:
            lines.append(line)
    return "\n".join(lines)


def inline_table_text(rows: Iterable[Row]) -> str:
    """A nested table on one line, for the text of the cell that holds it."""
    text = rows_to_text(rows)
    return text.replace(CELL_SEP, INLINE_CELL_SEP).replace("\n", INLINE_ROW_SEP)


def copied_down(text: str | None) -> str:
    """What a cell spanning rows shows in the rows below its first: short labels repeat."""
    return text if text and len(text) <= MAX_COPIED_SPAN_CHARS else ""


def grid_rows(cells: Iterable[tuple[int, int, str]]) -> list[list[str]]:
    """(row, col, text) cells (from HWP/HWPX cell addresses) → rows in order, gaps as "".

    Columns are numbered by rank among the addresses in use, so a column address of 20,000,000
    costs one column, not twenty million; :func:`rows_to_text` drops unused columns anyway, so
    the text is the same as with the raw addresses. Grids past :data:`MAX_GRID_CELLS` lose
    their gaps instead (see there)."""
    grid: dict[int, dict[int, str]] = {}
    for row, col, text in cells:
        grid.setdefault(row, {})[col] = text
    columns = sorted({c for cols in grid.values() for c in cols})
    if len(grid) * len(columns) > MAX_GRID_CELLS:
        return [[cols[c] for c in sorted(cols)] for _, cols in sorted(grid.items())]
    rank = {c: i for i, c in enumerate(columns)}
    out = []
    for r in sorted(grid):
        cols = {rank[c]: text for c, text in grid[r].items()}
        out.append([cols.get(c, "") for c in range(max(cols) + 1)])
    return out


def span_grid(rows: Sequence[Sequence[tuple[str, int, int]]]) -> list[list[str | None]]:
    """Rows of (text, colspan, rowspan) cells, placed as the HTML table model places them:
    a cell goes to the first column not taken by a rowspan from above. Returns the grid for
    :func:`rows_to_text`. A rowspan of 0 runs to the end of the table, as in HTML."""
    grid: list[list[str | None]] = []
    below: dict[int, tuple[str | None, int]] = {}  # column → (text shown, rows still covered)
    budget = GRID_CELLS_PER_CELL * sum(len(cells) for cells in rows) + 64
    for index, cells in enumerate(rows):
        row: list[str | None] = []
        rows_left = len(rows) - index
        if budget <= 0:
            below.clear()
        for text, colspan, rowspan in cells:
            _take_covered(row, below)
            col = len(row)
            span = min(max(colspan, 1), MAX_COLSPAN) if budget > 0 else 1
            row.append(text)
            row.extend([None] * (span - 1))
            down = rows_left if rowspan <= 0 else min(rowspan, rows_left)
            for c in range(col, col + span) if down > 1 and budget > 0 else ():
                below[c] = (copied_down(text) if c == col else None, down - 1)
        while below and max(below) >= len(row):  # spans from above past this row's last cell
            if len(row) in below:
                _take_covered(row, below)
            else:
                row.append("")
        budget -= len(row)
        grid.append(row)
    return grid


def _take_covered(row: list[str | None], below: dict[int, tuple[str | None, int]]) -> None:
    """Fill the row's next positions held by cells spanning down from rows above."""
    while len(row) in below:
        text, left = below.pop(len(row))
        row.append(text)
        if left > 1:
            below[len(row) - 1] = (text, left - 1)


def html_table_grid(
    table: Any, cell_text: Callable[[Any], str] | None = None
) -> list[list[str | None]]:
    """The grid of an lxml HTML ``<table>``: its own rows (``tr`` directly under it or under
    ``thead``/``tbody``/``tfoot``), not those of tables nested in its cells. ``cell_text``
    turns a ``td``/``th`` into text (default: all text inside it)."""
    text_of = cell_text or _string
    rows = []
    for tr in own_rows(table):
        cells = []
        for cell in tr.iterchildren("td", "th"):
            cells.append((text_of(cell), _span(cell.get("colspan")), _span(cell.get("rowspan"))))
        rows.append(cells)
    return span_grid(rows)


def own_rows(table: Any):
    """A table's own ``tr`` rows, not those of tables nested in its cells."""
    for child in table.iterchildren("tr", "thead", "tbody", "tfoot"):
        if child.tag == "tr":
            yield child
        else:
            yield from child.iterchildren("tr")


def _span(value: str | None) -> int:
    try:
        return int(value.strip()) if value else 1
    except ValueError:
        return 1


_string = etree.XPath("string()")


def html_table_rows(table_html: str) -> list[list[str | None]]:
    """Rows of an HTML ``<table>`` given as markup (unstructured's ``text_as_html``)."""
    try:
        root = lxml_html.fragment_fromstring(table_html, create_parent="div")
    except Exception:  # malformed markup: the caller falls back to the flat text
        return []
    table = root.find(".//table")
    return html_table_grid(table) if table is not None else []
