"""Ruled tables in generated PDFs: cells become " | " rows in reading order, frames stay text."""

from __future__ import annotations

from pathlib import Path

from polisum.loaders import default_registry
from test_bad_inputs import make_pdf

ROWS = [
    ("Programme", "Budget", "Year"),
    ("Solar schools", "120", "2024"),
    ("Bike lanes", "80", "2025"),
]
COLS = [72, 212, 322, 432]  # column rules, x
TOP, ROW_H = 690, 30


def text(x: float, y: float, s: str) -> bytes:
    return b"BT /F1 10 Tf %.1f %.1f Td (%s) Tj ET\n" % (x, y, s.encode("latin-1"))


def table_page(*, rules_as_rectangles: bool = False) -> bytes:
    out = b"0.5 w\n"
    bottom = TOP - ROW_H * len(ROWS)
    for i in range(len(ROWS) + 1):  # horizontal rules
        y = TOP - i * ROW_H
        if rules_as_rectangles:  # thin filled boxes, as many office exporters draw rules
            out += b"%d %.1f %d 0.6 re f\n" % (COLS[0], y - 0.3, COLS[-1] - COLS[0])
        else:
            out += b"%d %d m %d %d l S\n" % (COLS[0], y, COLS[-1], y)
    for x in COLS:  # vertical rules
        if rules_as_rectangles:
            out += b"%.1f %d 0.6 %d re f\n" % (x - 0.3, bottom, TOP - bottom)
        else:
            out += b"%d %d m %d %d l S\n" % (x, TOP, x, bottom)
    # The table is drawn first and its caption after it, as exporters often do.
    for r, row in enumerate(ROWS):
        for c, cell in enumerate(row):
            out += text(COLS[c] + 6, TOP - (r + 1) * ROW_H + 10, cell)
    out += text(72, 710, "Table 1. Budget by programme")
    out += text(72, 560, "Spending rose in both programmes after the council vote.")
    # A box around a note: a frame, not a table.
    out += b"72 470 360 40 re S\n"
    out += text(80, 486, "Note: figures are in thousands of euros.")
    return out


def load(tmp_path: Path, content: bytes):
    path = tmp_path / "budget.pdf"
    path.write_bytes(make_pdf([content]))
    return default_registry().load(path)


def test_ruled_table_reads_row_by_row_after_its_caption(tmp_path: Path):
    doc = load(tmp_path, table_page())
    kinds = [(el.kind, el.text) for el in doc.elements]
    assert kinds == [
        ("paragraph", "Table 1. Budget by programme"),
        ("table", "Programme | Budget | Year\nSolar schools | 120 | 2024\nBike lanes | 80 | 2025"),
        ("paragraph", "Spending rose in both programmes after the council vote."),
        ("paragraph", "Note: figures are in thousands of euros."),
    ]
    assert all(el.page == 1 for el in doc.elements)


def test_rules_drawn_as_thin_rectangles_are_found(tmp_path: Path):
    doc = load(tmp_path, table_page(rules_as_rectangles=True))
    (table,) = [el for el in doc.elements if el.kind == "table"]
    assert table.text.split("\n")[1] == "Solar schools | 120 | 2024"


def test_text_beside_a_table_stays_running_text(tmp_path: Path):
    page = table_page() + text(450, TOP - ROW_H + 10, "Margin remark")
    doc = load(tmp_path, page)
    (table,) = [el for el in doc.elements if el.kind == "table"]
    assert "Margin" not in table.text
    assert any(el.kind == "paragraph" and "Margin remark" in el.text for el in doc.elements)


def test_a_page_without_rules_has_no_table(tmp_path: Path):
    rows = b"".join(
        text(COLS[c] + 6, TOP - (r + 1) * ROW_H + 10, cell)
        for r, row in enumerate(ROWS)
        for c, cell in enumerate(row)
    )
    doc = load(tmp_path, rows)
    assert all(el.kind != "table" for el in doc.elements)
    assert "Solar schools 120 2024" in doc.text  # unruled: the row stays one line
