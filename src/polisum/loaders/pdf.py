"""PDF text layers via PDFium (pypdfium2): paragraphs with page numbers, headings by font size,
ruled tables as rows (:mod:`polisum.loaders.pdf_tables`), and OCR of scanned pages when an
engine is configured (:mod:`polisum.loaders.ocr`).

Why not unstructured here: its "fast" PDF strategy imports ``unstructured_inference`` at module
level, which pulls torch, torchvision, onnxruntime, opencv and transformers (the ``[pdf]``
extra). Measured on the shared PDFs, PDFium is also the better text layer: pdfminer.six (what
unstructured's fast strategy uses) runs at ~7 pages/s and doubles the spaces of justified Korean
lines; pypdf at ~12 pages/s; PDFium at 100+ pages/s with clean Korean (see
``benchmarks/parse_speed.py``). PDFium opens files lazily, so a huge PDF is not read into
memory.

Per page: PDFium's characters with their boxes → lines → paragraphs (split on vertical gaps,
font-size changes, column jumps, bullets and short last lines) → Korean line-join and spacing
repair (:mod:`polisum.loaders.korean_fix`). Lines repeated at the top or bottom of many pages,
or at the same height on many pages (running headers, page numbers, logo words), are dropped.
Headings and sections come from the PDF's outline when it has one, and from the layout
(:mod:`polisum.loaders.pdf_sections`).
"""

from __future__ import annotations

import ctypes
import io
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable
from polisum.loaders.korean_fix import SOFT_HYPHENS, symbol_char
from polisum.loaders.ocr import (
    MAX_OCR_PIXELS,
    MIN_OCR_DPI,
    OcrError,
    TesseractOCR,
    ocr_dpi,
    ocr_paragraphs,
)
from polisum.loaders.pdf_layout import (
    Item,
    OcrParagraph,
    drop_running_lines,
    merge_same_line,
    paragraphs,
    place_tables,
)
from polisum.loaders.pdf_lines import PdfLine as _Line
from polisum.loaders.pdf_sections import OutlineEntry, read_outline, section_blocks
from polisum.loaders.pdf_tables import PdfTable, TableSearchSkipped, find_tables
from polisum.loaders.pdf_unruled import cell_spans, unruled_tables
from polisum.loaders.structure import build_document
from polisum.types import Document

# Text that is mostly unmapped glyphs (private use area, U+FFFD, control codes) is not text.
_GARBAGE = re.compile(r"[\ufffd\ue000-\uf8ff\x00-\x08\x0b\x0c\x0e-\x1f]")
_SYMBOL_FONTS = ("wingdings", "webdings", "dingbats")
# Bounds on what one file can make the reader do. Pages and Form XObjects can be reused, so a
# small file can draw the same text on any number of pages, any number of times a page.
# - Pages read: a 10,000-page PDF is a very long book; pages after it are not read.
MAX_PAGES = 10_000
# - Characters read from one page (each costs a few PDFium calls in Python): a dense A4 page
#   holds ~5,000, a broadsheet ~30,000. The rest of such a page is not read.
MAX_PAGE_CHARS = 100_000
# - Characters read from the whole file (~10,000 dense pages); later pages are not read.
MAX_DOCUMENT_CHARS = 50_000_000
# - OCR'd pages per file (each takes Tesseract seconds); later scanned pages are not read.
MAX_OCR_PAGES = 1_000


def _pdfium() -> tuple[Any, Any]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    return pdfium, raw


class PdfLoader:
    """PDF text layers; pages that are only images go through ``ocr`` when one is given."""

    extensions: tuple[str, ...] = (".pdf",)

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ocr: TesseractOCR | None = None,
        *,
        unruled_tables: bool = False,
    ) -> None:
        self.max_bytes = max_bytes
        self.ocr = ocr
        # Whitespace-aligned columns as tables (:mod:`polisum.loaders.pdf_unruled`). Off by
        # default for now: tests/test_pdf_tables.py pins unruled rows as running text.
        self.unruled_tables = unruled_tables

    def load(self, path: Path) -> Document:
        size = check_readable(path, self.max_bytes)
        reading = self._read(path, size, ocr_all=False)
        lines = [line for page in reading.pages for line in page if isinstance(line, _Line)]
        sample = "".join(line.raw for line in lines)
        if sample and len(_GARBAGE.findall(sample)) > 0.3 * len(sample):
            if self.ocr is None:
                raise LoadError(
                    path, "text layer is unreadable (fonts without a Unicode map): needs OCR"
                )
            # Glyphs without Unicode: the page images are the only readable text.
            reading = self._read(path, size, ocr_all=True)
        pages, image_only, ocr_pages = reading.pages, reading.image_only, reading.ocr_pages
        if not any(pages):
            if image_only and self.ocr is not None:
                reason = "no text layer (scanned or image-only PDF), and OCR found no text"
                if reading.warnings:  # e.g. the page was too large to OCR: say so
                    reason += f" ({reading.warnings[0]})"
                raise LoadError(path, reason)
            if image_only:
                raise LoadError(path, "no text layer (scanned or image-only PDF): needs OCR")
            raise LoadError(path, "no text found in PDF (blank pages or text drawn as shapes)")
        pages = drop_running_lines(pages)
        if self.unruled_tables:
            pages = [unruled_tables(page) for page in pages]
        paras = [p for page in pages for p in paragraphs(page)]
        blocks = section_blocks(paras, reading.outline, reading.n_pages)
        metadata: dict[str, Any] = {"format": "pdf", "pages": reading.n_pages}
        if reading.outline:
            metadata["outline_entries"] = len(reading.outline)
        if image_only and not ocr_pages:
            metadata["pages_without_text"] = image_only
        if ocr_pages:
            metadata["ocr_pages"] = ocr_pages
            metadata["ocr"] = self.ocr.name if self.ocr else None
        if reading.warnings:
            metadata["warnings"] = reading.warnings
        return build_document(path, blocks, metadata, what="PDF")

    def _read(self, path: Path, size: int, *, ocr_all: bool) -> _Reading:
        try:
            with open(path, "rb") as fh:  # a file object: lazy reads, and any file name works
                return _read_document(path, fh, size, self.ocr, ocr_all)
        except OSError as exc:
            raise LoadError(path, f"cannot read file: {exc.strerror or exc}") from exc


@dataclass
class _Reading:
    """What reading the pages gave: every page's items, the number of image-only pages and of
    pages OCR'd, the outline, and one line for each part not read because it exceeded a bound."""

    pages: list[list[Item]] = field(default_factory=list)
    n_pages: int = 0
    image_only: int = 0
    ocr_pages: int = 0
    chars: int = 0
    ocr_capped: bool = False
    warnings: list[str] = field(default_factory=list)
    outline: list[OutlineEntry] = field(default_factory=list)


def _read_document(
    path: Path, fh: Any, size: int, ocr: TesseractOCR | None, ocr_all: bool
) -> _Reading:
    pdfium, _ = _pdfium()
    _check_header_and_eof(path, fh, size)
    try:
        pdf = pdfium.PdfDocument(fh)
    except pdfium.PdfiumError as exc:
        raise LoadError(path, _pdfium_reason(str(exc))) from exc
    try:
        reading = _read_pages(path, pdf, ocr, ocr_all)
        reading.outline = read_outline(pdf, len(pdf))
        return reading
    finally:
        pdf.close()


def _check_header_and_eof(path: Path, fh: Any, size: int) -> None:
    head = fh.read(1024)
    if b"%PDF-" not in head:
        raise LoadError(path, "not a PDF file (no %PDF header): damaged or misnamed")
    fh.seek(max(0, size - 4096))
    if b"%%EOF" not in fh.read():
        raise LoadError(
            path, "truncated PDF (no %%EOF end marker): the copy is incomplete, get it again"
        )
    fh.seek(0)


def _pdfium_reason(message: str) -> str:
    low = message.lower()
    if "password" in low:
        return "encrypted PDF: needs a password (save an unprotected copy)"
    if "format" in low or "file" in low:
        return "damaged PDF (PDFium could not parse it)"
    if "security" in low or "handler" in low:
        return "encrypted PDF with an unsupported security handler"
    return f"unreadable PDF ({message.strip()})"


def _read_pages(path: Path, pdf: Any, ocr: TesseractOCR | None, ocr_all: bool) -> _Reading:
    _, raw = _pdfium()
    reading = _Reading(n_pages=len(pdf))
    if reading.n_pages > MAX_PAGES:
        reading.warnings.append(
            f"pages {MAX_PAGES + 1:,} to {reading.n_pages:,} not read (limit {MAX_PAGES:,} pages)"
        )
    for index in range(min(reading.n_pages, MAX_PAGES)):
        if reading.chars > MAX_DOCUMENT_CHARS:
            reading.warnings.append(
                f"pages {index + 1:,} to {reading.n_pages:,} not read "
                f"(limit {MAX_DOCUMENT_CHARS:,} characters a file)"
            )
            break
        page = pdf[index]
        try:
            reading.pages.append(_read_page(path, page, index + 1, raw, ocr, ocr_all, reading))
        finally:
            page.close()
    return reading


def _read_page(
    path: Path,
    page: Any,
    page_no: int,
    raw: Any,
    ocr: TesseractOCR | None,
    ocr_all: bool,
    reading: _Reading,
) -> list[Item]:
    lines: list[Item] = []
    if not ocr_all:
        textpage = page.get_textpage()
        try:
            tables = _tables(page, textpage, raw, page_no, reading.warnings)
            lines = _page_lines(textpage, page_no, tables, reading.warnings)
        finally:
            textpage.close()
    if ocr_all or (not lines and _has_images(page, raw)):
        reading.image_only += 1
        if ocr is None:
            pass
        elif reading.ocr_pages < MAX_OCR_PAGES:
            ocr_lines = _ocr_page(path, page, page_no, ocr, reading.warnings)
            if ocr_lines is not None:
                lines = ocr_lines
                reading.ocr_pages += 1
        elif not reading.ocr_capped:
            reading.ocr_capped = True
            reading.warnings.append(
                f"scanned pages from page {page_no:,} on not OCR'd "
                f"(limit {MAX_OCR_PAGES:,} pages a file)"
            )
    reading.chars += sum(len(item.text) for item in lines)
    return lines


def _ocr_page(
    path: Path, page: Any, page_no: int, ocr: TesseractOCR, warnings: list[str]
) -> list[Item] | None:
    """The page's OCR'd paragraphs, or None (and a warning) when it is too large to render."""
    width, height = page.get_size()
    dpi = ocr_dpi(width, height, ocr.dpi)
    if dpi < MIN_OCR_DPI:
        warnings.append(
            f"page {page_no} not OCR'd: {width / 72:.0f} × {height / 72:.0f} in is too large "
            f"to render at {MIN_OCR_DPI} dpi within {MAX_OCR_PIXELS // 10**6} Mpx"
        )
        return None
    bitmap = page.render(scale=dpi / 72, grayscale=True)
    png = io.BytesIO()
    bitmap.to_pil().save(png, format="PNG")
    bitmap.close()  # before Tesseract runs: only the PNG is still needed
    try:
        text = ocr.image_text(png.getvalue(), dpi=round(dpi))
    except OcrError as exc:
        raise LoadError(path, f"OCR failed on page {page_no}: {exc}") from exc
    return [OcrParagraph(p, page_no) for p in ocr_paragraphs(text)]


def _tables(
    page: Any, textpage: Any, raw: Any, page_no: int, warnings: list[str]
) -> list[PdfTable]:
    try:
        return find_tables(page, textpage, raw, page_no)
    except TableSearchSkipped as exc:
        warnings.append(f"page {page_no}: tables not detected ({exc}); text read as lines")
        return []
    except Exception:  # odd vector geometry: table detection is a refinement, never lose the page
        return []


def _has_images(page: Any, raw: Any) -> bool:
    return any(True for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=2))


def _font_name(raw: Any, textpage: Any, index: int, buf: Any, flags: Any) -> str:
    raw.FPDFText_GetFontInfo(textpage, index, buf, len(buf), flags)
    return buf.value.decode("utf-8", "replace").lower()


def _page_lines(
    textpage: Any, page_no: int, tables: list[PdfTable], warnings: list[str]
) -> list[Item]:
    """The page's lines in PDFium's reading order; lines inside a table are replaced by the
    table, where its first line was."""
    _, raw = _pdfium()
    n = textpage.count_chars()
    if n <= 0:
        return []
    if n > MAX_PAGE_CHARS:
        warnings.append(
            f"page {page_no}: only the first {MAX_PAGE_CHARS:,} of {n:,} characters read"
        )
        n = MAX_PAGE_CHARS
    text = textpage.get_text_range(0, n)
    if len(text) != n:  # characters outside the BMP: index → character one by one
        text = "".join(chr(raw.FPDFText_GetUnicode(textpage, i) or 0xFFFD) for i in range(n))
    rect = raw.FS_RECTF()
    buf = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    lines: list[_Line] = []
    start = 0
    for end in [*(m.start() for m in re.finditer(r"[\r\n]", text)), n]:
        if end > start:
            line = _make_line(raw, textpage, text, start, end, page_no, rect, buf, flags)
            if line is not None:
                lines.append(line)
        start = end + 1
    # Before merging: a table row and text beside the table can share a baseline.
    return merge_same_line(place_tables(lines, tables) if tables else lines)


def _make_line(
    raw: Any, textpage: Any, text: str, start: int, end: int, page_no: int, rect, buf, flags
) -> _Line | None:
    chars = list(text[start:end])
    if not "".join(chars).strip():
        return None
    lefts, rights, tops, bottoms, heights = [], [], [], [], []
    boxes: list[tuple[int, float, float]] = []
    first = -1
    for i in range(start, end):
        ch = text[i]
        if ch.isspace() or ch in SOFT_HYPHENS:
            continue
        if first < 0:
            first = i
        if raw.FPDFText_GetLooseCharBox(textpage, i, rect):
            lefts.append(rect.left)
            rights.append(rect.right)
            tops.append(rect.top)
            bottoms.append(rect.bottom)
            heights.append(rect.top - rect.bottom)
            boxes.append((i - start, rect.left, rect.right))
        # A lone Latin-1 character from a dingbat font is a bullet glyph ("n" for ■).
        lone = (i == start or text[i - 1].isspace()) and (i + 1 >= end or text[i + 1].isspace())
        if ord(ch) < 0x100 and lone:
            font = _font_name(raw, textpage, i, buf, flags)
            if any(f in font for f in _SYMBOL_FONTS):
                chars[i - start] = symbol_char(ch)
    if not heights:
        return None
    name = _font_name(raw, textpage, first, buf, flags)
    weight = raw.FPDFText_GetFontWeight(textpage, first)
    size = statistics.median(heights)
    return _Line(
        raw="".join(chars),
        left=min(lefts),
        right=max(rights),
        top=max(tops),
        bottom=min(bottoms),
        size=size,
        bold=weight >= 600 or any(w in name for w in ("bold", "black", "heavy")),
        page=page_no,
        cells=cell_spans(chars, boxes, size),
    )
