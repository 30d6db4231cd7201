"""Tables → text a reader can follow: one line per row, cells separated by " | "."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import html as lxml_html

from polisum.loaders.structure import clean_inline

CELL_SEP = " | "


def rows_to_text(rows: Iterable[Iterable[str]]) -> str:
    """Rows of cell texts → "a | b | c" lines. Whitespace inside a cell collapses to one space,
    columns empty in every row (spacer columns in HTML layouts) and empty rows are dropped, and
    a row that merely repeats the previous one (a rowspan copied down) is kept once."""
    table = [[clean_inline(c.replace("\n", " ")) for c in row] for row in rows]
    width = max((len(r) for r in table), default=0)
    used = [any(c < len(r) and r[c] for r in table) for c in range(width)]
    lines: list[str] = []
    for row in table:
        cells = [cell for c, cell in enumerate(row) if used[c]]
        while cells and not cells[-1]:
            cells.pop()
        if not any(cells):
            continue
        line = CELL_SEP.join(cells)
        if not lines or lines[-1] != line:
            lines.append(line)
    return "\n".join(lines)


def grid_rows(cells: Iterable[tuple[int, int, str]]) -> list[list[str]]:
    """(row, col, text) cells (from HWP/HWPX cell addresses) → rows in order, gaps as ""."""
    grid: dict[int, dict[int, str]] = {}
    for row, col, text in cells:
        grid.setdefault(row, {})[col] = text
    out = []
    for r in sorted(grid):
        cols = grid[r]
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
