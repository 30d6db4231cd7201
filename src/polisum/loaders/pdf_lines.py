"""One visual line of a PDF page as PDFium gives it, with the geometry the later stages use
(paragraphs, unruled tables, headings)."""

from __future__ import annotations

from dataclasses import dataclass

Cell = tuple[float, float, str]  # left, right, raw text


@dataclass
class PdfLine:
    """Coordinates are PDF points, origin bottom left; ``size`` is the median glyph box
    height; ``page`` is 1-based."""

    raw: str
    left: float
    right: float
    top: float
    bottom: float
    size: float
    bold: bool
    page: int
    cells: tuple[Cell, ...] = ()  # words apart by wide gaps: a row of an unruled table

    @property
    def text(self) -> str:
        return self.raw.strip()
