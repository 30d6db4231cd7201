"""Ruled tables in PDFs → " | " rows: PDFium's vector lines, pdfplumber's grid finder.

PDFium reads a table row left to right as one line, so without this a table is a soup of cell
fragments. Korean public documents draw their tables with ruling lines, so the grid is in the
vector graphics: every axis-aligned straight segment of the page's path objects becomes an edge,
and pdfplumber's table finder (snap and join edges → intersections → cells → tables) turns the
edges into cells. Only the geometry comes from pdfplumber: running its own page parser
(pdfminer.six) costs ~150 ms a page, 30× PDFium, so the edges are read from PDFium here and the
cell text is PDFium's too (the same Korean repair as the rest of the page).

A grid counts as a table only when at least two rows have two or more filled cells: boxes
drawn around a callout, a table of contents or a section title are frames, and their text stays
running text. Tables without ruling lines (whitespace-aligned columns) are not detected; their
rows stay lines of text.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from polisum.loaders.korean_fix import join_lines
from polisum.loaders.tables import rows_to_text

# pdfplumber's defaults (points): edges this close snap/join, cells at least this big.
TOLERANCE = 3.0
MIN_EDGE = 3.0
# A page drawn with more segments than this is a chart or a drawing, not a ruled table; the
# grid search is quadratic in edges, so it is skipped there.
MAX_SEGMENTS = 20_000
MAX_EDGES = 2_000
# pdfplumber's cell search is quadratic in rule crossings (measured here: 3,721 crossings
# 0.5 s, 14,641 crossings 8 s, a 240 × 240 grid's 58,081 crossings 212 s). Horizontal ×
# vertical rules bounds the crossings before any is computed; the largest real table page in
# the shared samples has 154 (a 30 × 12 table has 403).
MAX_CROSSINGS = 5_000


class TableSearchSkipped(Exception):
    """The page's rules are too many to search for tables in bounded time; the message says
    why. The page's text is still read, as lines."""


@dataclass
class PdfTable:
    """One table: its text and its box in PDF coordinates (origin bottom left)."""

    text: str
    left: float
    bottom: float
    right: float
    top: float
    page: int

    def contains(self, x: float, y: float) -> bool:
        return self.left <= x <= self.right and self.bottom <= y <= self.top


def find_tables(page: Any, textpage: Any, raw: Any, page_no: int) -> list[PdfTable]:
    """The ruled tables of one PDFium page (1-based ``page_no``), top to bottom. Raises
    :class:`TableSearchSkipped` where the rules exceed the caps above."""
    height = page.get_height()
    edges = _ruling_edges(page, raw, height)
    if edges is None:
        return []
    from pdfplumber.table import (
        Table,
        cells_to_tables,
        edges_to_intersections,
        intersections_to_cells,
        merge_edges,
    )

    edges = merge_edges(edges, TOLERANCE, TOLERANCE, TOLERANCE, TOLERANCE)
    edges = [e for e in edges if e["width" if e["orientation"] == "h" else "height"] >= MIN_EDGE]
    if len(edges) > MAX_EDGES:
        raise TableSearchSkipped(f"{len(edges):,} ruling lines, over the limit of {MAX_EDGES:,}")
    if not _has_grid(edges):
        return []
    horizontal = sum(1 for e in edges if e["orientation"] == "h")
    if horizontal * (len(edges) - horizontal) > MAX_CROSSINGS:
        vertical = len(edges) - horizontal
        raise TableSearchSkipped(
            f"{horizontal} × {vertical} ruling lines, up to {horizontal * vertical:,} "
            f"crossings, over the limit of {MAX_CROSSINGS:,}"
        )
    cells = intersections_to_cells(edges_to_intersections(edges, TOLERANCE, TOLERANCE))
    found: list[PdfTable] = []
    for table_cells in cells_to_tables(cells):
        table = Table(None, table_cells)
        x0, top, x1, bottom = table.bbox
        box = PdfTable("", x0, height - bottom, x1, height - top, page_no)
        if any(_inside(box, other) for other in found):
            continue  # a grid nested in a table already read
        rows = [
            [_cell_text(textpage, cell, height) for cell in row.cells if cell is not None]
            for row in table.rows
        ]
        if sum(1 for row in rows if sum(1 for c in row if c) >= 2) < 2:
            continue  # a frame around text, not a table
        box.text = rows_to_text(rows)
        if box.text:
            found.append(box)
    return sorted(found, key=lambda t: -t.top)


def _inside(inner: PdfTable, outer: PdfTable) -> bool:
    return (
        inner.left >= outer.left - TOLERANCE
        and inner.right <= outer.right + TOLERANCE
        and inner.bottom >= outer.bottom - TOLERANCE
        and inner.top <= outer.top + TOLERANCE
    )


def _has_grid(edges: list[dict[str, Any]]) -> bool:
    horizontal = sum(1 for e in edges if e["orientation"] == "h")
    return horizontal >= 2 and len(edges) - horizontal >= 2


def _cell_text(textpage: Any, cell: tuple[float, float, float, float], height: float) -> str:
    x0, top, x1, bottom = cell
    # Shrunk by a point so that glyphs of the neighbouring cells, touching the rule, stay out.
    text = textpage.get_text_bounded(
        left=x0 + 1, bottom=height - bottom + 1, right=x1 - 1, top=height - top - 1
    )
    return join_lines(text.replace("\r\n", "\n").split("\n"))


def _ruling_edges(page: Any, raw: Any, height: float) -> list[dict[str, Any]] | None:
    """Axis-aligned straight segments of the page's paths as pdfplumber edges (y from the top),
    or None when the page has no grid to look for."""
    # The raw API: pypdfium2's get_objects wraps every text object too (thousands a page).
    handles = []
    for i in range(raw.FPDFPage_CountObjects(page.raw)):
        obj = raw.FPDFPage_GetObject(page.raw, i)
        if raw.FPDFPageObj_GetType(obj) == raw.FPDF_PAGEOBJ_PATH:
            handles.append(obj)
    if len(handles) < 2:
        return None
    x, y = ctypes.c_float(), ctypes.c_float()
    matrix = raw.FS_MATRIX()
    edges: list[dict[str, Any]] = []
    segments = 0
    for obj in handles:
        if not raw.FPDFPageObj_GetMatrix(obj, matrix):
            continue
        a, b, c, d, e, f = matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f
        n = raw.FPDFPath_CountSegments(obj)
        segments += n
        if segments > MAX_SEGMENTS:
            raise TableSearchSkipped(f"over {MAX_SEGMENTS:,} path segments: a drawing or chart")
        points: list[tuple[float, float] | None] = []  # None: a move (pen up)
        start: tuple[float, float] | None = None
        for i in range(n):
            seg = raw.FPDFPath_GetPathSegment(obj, i)
            raw.FPDFPathSegment_GetPoint(seg, x, y)
            point = (a * x.value + c * y.value + e, b * x.value + d * y.value + f)
            kind = raw.FPDFPathSegment_GetType(seg)
            if kind == raw.FPDF_SEGMENT_MOVETO:
                points.append(None)
                start = point
            elif kind != raw.FPDF_SEGMENT_LINETO:
                points.append(None)  # a curve: rounded corners and drawings are not rules
            points.append(point)
            if raw.FPDFPathSegment_GetClose(seg) and start is not None:
                points.append(start)
        for p, q in pairwise(points):
            if p is not None and q is not None:
                edge = _edge(p, q, height)
                if edge is not None:
                    edges.append(edge)
    return edges if _has_grid(edges) else None


def _edge(p: tuple[float, float], q: tuple[float, float], height: float) -> dict[str, Any] | None:
    (px, py), (qx, qy) = p, q
    if abs(py - qy) < 0.5 and abs(px - qx) >= MIN_EDGE:
        x0, x1 = sorted((px, qx))
        top = height - py
        return {
            "x0": x0, "x1": x1, "top": top, "bottom": top,
            "width": x1 - x0, "height": 0.0, "orientation": "h",
        }  # fmt: skip
    if abs(px - qx) < 0.5 and abs(py - qy) >= MIN_EDGE:
        top, bottom = sorted((height - py, height - qy))
        return {
            "x0": px, "x1": px, "top": top, "bottom": bottom,
            "width": 0.0, "height": bottom - top, "orientation": "v",
        }  # fmt: skip
    return None
