"""Tables without ruling lines in generated PDFs (``PdfLoader(unruled_tables=True)``):
whitespace-aligned columns read as " | " rows; a lone wide gap, a blank to fill in and running
text stay text."""

from __future__ import annotations

from pathlib import Path

from polisum.loaders import PdfLoader
from polisum.types import Document
from test_bad_inputs import make_pdf

COLS = [72, 250, 330, 410]  # left edges of the columns
ROWS = [
    ("Indicator", "2021", "2022", "2023"),
    ("Scope 1 emissions", "19,656", "18,204", "17,950"),
    ("Scope 2 emissions", "8,112", "7,640", ""),  # an empty cell keeps its column
    ("Water withdrawal", "1,204", "1,187", "1,150"),
]


def text(x: float, y: float, s: str) -> bytes:
    return b"BT /F1 10 Tf %.1f %.1f Td (%s) Tj ET\n" % (x, y, s.encode("latin-1"))


def load(tmp_path: Path, content: bytes, *, unruled_tables: bool = True) -> Document:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf([content]))
    return PdfLoader(unruled_tables=unruled_tables).load(path)


def table_page() -> bytes:
    out = text(72, 720, "Table 2. Environmental performance")
    for r, row in enumerate(ROWS):
        for c, cell in enumerate(row):
            if cell:
                out += text(COLS[c], 690 - 16 * r, cell)
    out += text(72, 600, "Emissions fell in every year of the reporting period.")
    return out


def test_whitespace_aligned_columns_read_as_rows(tmp_path: Path):
    doc = load(tmp_path, table_page())
    assert [(el.kind, el.text) for el in doc.elements] == [
        ("paragraph", "Table 2. Environmental performance"),
        (
            "table",
            "Indicator | 2021 | 2022 | 2023\n"
            "Scope 1 emissions | 19,656 | 18,204 | 17,950\n"
            "Scope 2 emissions | 8,112 | 7,640\n"
            "Water withdrawal | 1,204 | 1,187 | 1,150",
        ),
        ("paragraph", "Emissions fell in every year of the reporting period."),
    ]


def test_a_single_wide_gap_and_a_blank_to_fill_in_stay_text(tmp_path: Path):
    page = (
        text(72, 720, "Facebook AI")
        + text(300, 720, "University of Washington")
        + text(72, 690, "The premium is paid by (")
        + text(260, 690, ") on the first day of every month.")
    )
    doc = load(tmp_path, page)
    assert all(el.kind == "paragraph" for el in doc.elements)
    assert "|" not in doc.text


def test_off_by_default_rows_stay_lines(tmp_path: Path):
    doc = load(tmp_path, table_page(), unruled_tables=False)
    assert all(el.kind == "paragraph" for el in doc.elements)
    assert "Scope 1 emissions 19,656 18,204 17,950" in doc.text
