"""Tables → text a reader can follow: one line per row, cells separated by " | "."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import html as lxml_html

from polisum.loaders.structure import clean_inline

CELL_SEP = " | "
# Grid positions (rows × columns, after dropping addresses no cell uses) a table may fill with
# gaps. Cell addresses come from the file (HWP: 16 bits, HWPX: any integer): a diagonal of n
# cells is an n × n grid of mostly gaps. A real table of 1,000 rows × 100 columns fits; past
# that, rows keep their cells in column order without gaps: all text kept, columns unaligned.
MAX_GRID_CELLS = 100_000


def rows_to_text(rows: Iterable[Iterable[str]]) -> str:
    """Rows of cell texts → "a | b | c" lines. Whitespace inside a cell collapses to one space,
    columns empty in every row (spacer columns in HTML layouts) and empty rows are dropped, and
    a row that merely repeats the previous one (a rowspan copied down) is kept once."""
    table = [[clean_inline(c.replace("\n", " ")) for c in row] for row in rows]
    used = {
        c for row in table for c, cell in enumerate(row) if cell
    }  # one pass: cells, not rows × width
    lines: list[str] = []
    for row in table:
        cells = [cell for c, cell in enumerate(row) if c in used]
        while cells and not cells[-1]:
            cells.pop()
        if not any(cells):
            continue
        line = CELL_SEP.join(cells)
        if not lines or lines[-1] != line:
            lines.append(line)
    return "\n".join(lines)


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


def html_table_rows(table_html: str) -> list[list[str]]:
    """Rows of an HTML ``<table>`` (as unstructured's ``text_as_html`` gives it)."""
    try:
        root = lxml_html.fragment_fromstring(table_html, create_parent="div")
    except Exception:  # malformed markup: the caller falls back to the flat text
        return []
    rows = []
    for tr in root.iter("tr"):
        rows.append([cell.text_content() for cell in tr if cell.tag in ("td", "th")])
    return rows
