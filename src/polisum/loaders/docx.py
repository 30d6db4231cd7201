"""Word .docx: python-docx's XML element classes over parts read within bounds.

python-docx gives the element classes (paragraph and style properties, table cell spans) and the
style model; the parts are read through :mod:`polisum.loaders.safezip` rather than
``docx.Document``, whose package loader inflates every part whole with ``ZipFile.read`` (a
member under-stating its size inflated to 2 GiB before any check) and parses without an element
cap. The walk over the body is written here because python-docx's reading API drops text:
``Paragraph.text`` reads only ``w:r``/``w:hyperlink`` (not content controls, tracked insertions,
fields or smart tags), ``Document.iter_inner_content`` skips block-level content controls
(``w:sdt``), and text boxes are not read at all.

* **Sections**: a paragraph's outline level (its own or its style's, following ``basedOn``) or
  a style named "Heading N" / "제목 N" / "Title" makes it a heading. A file without any (Word
  files formatted by hand) gets headings guessed from numbered or ALL-CAPS short lines.
* **Lists**: paragraphs with numbering (``w:numPr``, own or by style) → one list block.
* **Tables** → " | " rows (:mod:`polisum.loaders.tables`): a cell spanning columns
  (``gridSpan``) is written once, one continuing a vertical merge (``vMerge``) repeats a short
  label from above, a table in a cell is written inline in that cell.
* **Text boxes** (``w:txbxContent``, DrawingML's copy; the VML fallback copy is skipped) are
  read as paragraphs after the paragraph that anchors them.
* **Pages**: a page starts at a hard break (``w:br type=page``, "page break before", a section
  break) and at each page boundary Word recorded when it last laid the file out
  (``w:lastRenderedPageBreak``); a recorded boundary right after a hard break is that break.
* Headers, footers, footnotes and comments live in other parts and are not read.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docx.enum.style import WD_STYLE_TYPE
from docx.exceptions import PythonDocxError
from docx.oxml.parser import element_class_lookup
from docx.styles.styles import Styles

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable, one_line
from polisum.loaders.safezip import open_ooxml, parse_xml, read_member
from polisum.loaders.structure import Part, build_document, sectioned_blocks
from polisum.loaders.tables import copied_down, inline_table_text, rows_to_text
from polisum.types import Document, ElementKind

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
STRICT_W = "{http://purl.oclc.org/ooxml/wordprocessingml/main}"
DOCUMENT_PART = "word/document.xml"
STYLES_PART = "word/styles.xml"
# Word's document.xml is ~10-30 bytes of XML per character of text: these caps admit books of
# several thousand pages and stop a small file from building a multi-gigabyte tree.
MAX_PART_BYTES = 128 * 1024 * 1024
MAX_XML_ELEMENTS = 2_000_000

# Subtrees holding no body text: properties, deleted or moved-away text, the VML copy of a
# drawing, field instructions.
_SKIP = {
    f"{W}{name}"
    for name in ("pPr", "rPr", "sdtPr", "sdtEndPr", "del", "moveFrom", "instrText", "delText")
} | {f"{W}{name}" for name in ("tblPr", "tblGrid", "trPr", "tcPr", "sectPr", "tblPrEx")}
_SKIP.add(f"{MC}Fallback")
_CHARS = {f"{W}tab": "\t", f"{W}ptab": "\t", f"{W}cr": "\n", f"{W}noBreakHyphen": "-"}
_HEADING_NAME = re.compile(r"^(?:heading|제목)\s*([1-9])$", re.I)
_TITLE_LEVELS = {"title": 1, "subtitle": 2, "제목": 1, "부제": 2}


@dataclass(frozen=True)
class _Style:
    level: int | None = None  # heading level, 1 = top
    numbered: bool = False
    break_before: bool = False


@dataclass
class _Reader:
    styles: dict[str, _Style]
    default_style: _Style
    next_section_type: dict[Any, str]  # paragraph-level w:sectPr → how the next section starts
    items: list[Part] = field(default_factory=list)
    page: int = 1
    _after_hard_break: bool = False  # no text since a hard page break
    _any_text: bool = False

    def hard_break(self) -> None:
        self.page += 1
        self._after_hard_break = True

    def rendered_break(self) -> None:
        if not self._after_hard_break:
            self.page += 1
        self._after_hard_break = False

    def blocks(self, container: Any, out: list[Part]) -> None:
        """Paragraphs and tables of a body, cell, text box or content control, in order."""
        for child in container:
            tag = child.tag
            if tag == f"{W}p":
                self.paragraph(child, out)
            elif tag == f"{W}tbl":
                rows = self.table_rows(child)
                out.append(Part("table", rows_to_text(rows), self.page, rows=rows))
            elif isinstance(tag, str) and tag not in _SKIP:
                self.blocks(child, out)  # w:sdt/w:sdtContent, w:customXml, mc:AlternateContent

    def paragraph(self, p: Any, out: list[Part]) -> None:
        ppr = p.find(f"{W}pPr")
        props = _Props.of(ppr)
        style = self.styles.get(props.style, self.default_style)
        break_before = props.break_before if props.break_before is not None else style.break_before
        if break_before and self._any_text:  # on a document's first paragraph: a no-op in Word
            self.hard_break()
        page_at_text, text, boxes = self.runs(p)
        level = props.level if props.level is not None else style.level
        numbered = props.numbered if props.numbered is not None else style.numbered
        kind: ElementKind = "list" if numbered and level is None else "paragraph"
        out.append(Part(kind, text, page_at_text or self.page, level))
        for box in boxes:
            self.blocks(box, out)
        sect = ppr.find(f"{W}sectPr") if ppr is not None else None
        if sect is not None and self.next_section_type.get(sect, "nextPage") != "continuous":
            self.hard_break()

    def runs(self, p: Any) -> tuple[int | None, str, list[Any]]:
        """(page where the text starts, text, text boxes) of one paragraph. Iterative: the
        inline content of a paragraph can nest (fields in hyperlinks in content controls)."""
        parts: list[str] = []
        boxes: list[Any] = []
        page_at_text: int | None = None
        stack = [iter(p)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIP:
                continue
            if tag == f"{W}t":
                if child.text:
                    if page_at_text is None and child.text.strip():
                        page_at_text = self.page
                        self._after_hard_break = False
                        self._any_text = True
                    parts.append(child.text)
            elif tag in _CHARS:
                parts.append(_CHARS[tag])
            elif tag == f"{W}br":
                kind = child.get(f"{W}type")
                if kind == "page":
                    self.hard_break()
                else:  # a line or column break
                    parts.append("\n")
            elif tag == f"{W}lastRenderedPageBreak":
                self.rendered_break()
            elif tag == f"{W}txbxContent":
                boxes.append(child)
            else:
                stack.append(iter(child))
        return page_at_text, "".join(parts), boxes

    def table_rows(self, tbl: Any) -> list[list[str | None]]:
        """The table as a grid (hand-written: python-docx's ``_Row.cells`` misses rows and cells
        wrapped in content controls and resolves each vertical merge by searching upwards)."""
        grid: list[list[str | None]] = []
        for tr in _wrapped(tbl, f"{W}tr"):
            row: list[str | None] = [""] * tr.grid_before
            for tc in _wrapped(tr, f"{W}tc"):
                col = len(row)
                text: str | None = self.cell_text(tc)
                if not text and tc.vMerge == "continue" and grid:  # Word leaves these empty
                    text = copied_down(grid[-1][col] if col < len(grid[-1]) else None)
                row.append(text)
                row.extend([None] * (max(tc.grid_span, 1) - 1))
            grid.append(row)
        return grid

    def cell_text(self, tc: Any) -> str:
        items: list[Part] = []
        self.blocks(tc, items)
        return " ".join(
            inline_table_text(item.rows) if item.rows is not None else item.text
            for item in items
            if item.text.strip()
        )


def _wrapped(parent: Any, tag: str):
    """Children with ``tag``, also those wrapped in content controls or custom XML."""
    for child in parent:
        if child.tag == tag:
            yield child
        elif child.tag in (f"{W}sdt", f"{W}sdtContent", f"{W}customXml"):
            yield from _wrapped(child, tag)


@dataclass(frozen=True)
class _Props:
    """What a paragraph's (or a style's) ``w:pPr`` says; None where it says nothing. Read
    with lxml's ``find``: python-docx's typed accessors cost ~5 µs each on every paragraph,
    and it does not model ``w:outlineLvl``."""

    style: str | None = None
    level: int | None = None  # from w:outlineLvl 0-8 (9 is body text)
    numbered: bool | None = None  # numId 0 turns numbering off
    break_before: bool | None = None

    @classmethod
    def of(cls, ppr: Any) -> _Props:
        if ppr is None:
            return _NO_PROPS
        style = ppr.find(f"{W}pStyle")
        outline = ppr.find(f"{W}outlineLvl")
        num_id = ppr.find(f"{W}numPr/{W}numId")
        before = ppr.find(f"{W}pageBreakBefore")
        level = outline.get(f"{W}val", "") if outline is not None else ""
        return cls(
            style.get(f"{W}val") if style is not None else None,
            int(level) + 1 if level.isdigit() and int(level) < 9 else None,
            num_id.get(f"{W}val", "0").strip() not in ("0", "") if num_id is not None else None,
            _on(before) if before is not None else None,
        )


_NO_PROPS = _Props()


def _on(el: Any) -> bool:
    """An OOXML on/off property: present means on unless its val says off."""
    return el.get(f"{W}val", "true").lower() not in ("0", "false", "off")


def _read_styles(root: Any) -> tuple[dict[str, _Style], _Style]:
    """Paragraph styles by id with inherited outline level, numbering and page break."""
    styles = Styles(root)
    out: dict[str, _Style] = {}
    default = _Style()
    for style in styles:
        element = style.element
        if element.type != WD_STYLE_TYPE.PARAGRAPH:
            continue
        level = numbered = break_before = None
        seen: set[str | None] = set()
        current: Any = style
        while current is not None and current.style_id not in seen:  # the basedOn chain
            seen.add(current.style_id)
            props = _Props.of(current.element.find(f"{W}pPr"))
            level = level if level is not None else props.level
            numbered = numbered if numbered is not None else props.numbered
            break_before = break_before if break_before is not None else props.break_before
            if level is None:
                level = _level_by_name(current.name or "")
            current = current.base_style
        info = _Style(level, bool(numbered), bool(break_before))
        out[style.style_id] = info
        if element.default:
            default = info
    return out, default


def _level_by_name(name: str) -> int | None:
    name = name.strip()
    match = _HEADING_NAME.match(name)
    return int(match.group(1)) if match else _TITLE_LEVELS.get(name.lower())


def _section_starts(body: Any) -> dict[Any, str]:
    """Each paragraph-level ``w:sectPr`` (the end of a section) → the ``w:type`` of the section
    after it, which says whether that one starts on a new page."""
    sects = list(body.iter(f"{W}sectPr"))
    starts = {}
    for this, following in itertools.pairwise(sects):
        kind = following.find(f"{W}type")
        starts[this] = kind.get(f"{W}val", "nextPage") if kind is not None else "nextPage"
    return starts


class DocxLoader:
    extensions: tuple[str, ...] = (".docx",)

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        check_readable(path, self.max_bytes)
        with open_ooxml(path, DOCUMENT_PART, "DOCX") as archive:
            root = _parse_part(archive, DOCUMENT_PART, path)
            has_styles = STYLES_PART in archive.namelist()
            styles_root = _parse_part(archive, STYLES_PART, path) if has_styles else None
        if root.tag != f"{W}document":
            if root.tag.startswith(STRICT_W):
                raise LoadError(path, "Strict Open XML DOCX is not read: save it as Word Document")
            raise LoadError(path, f"damaged DOCX ({DOCUMENT_PART} is not a Word document)")
        body = root.find(f"{W}body")
        if body is None:
            raise LoadError(path, "no text found in DOCX (no document body)")
        try:
            styles, default = (
                _read_styles(styles_root) if styles_root is not None else ({}, _Style())
            )
            reader = _Reader(styles, default, _section_starts(body))
            reader.blocks(body, reader.items)
        except (ValueError, TypeError, PythonDocxError) as exc:
            # python-docx's typed properties refuse malformed attribute values.
            raise LoadError(path, f"damaged DOCX ({one_line(exc)})") from exc
        blocks = sectioned_blocks(reader.items)
        metadata = {"format": "docx", "pages": reader.page}
        return build_document(path, blocks, metadata, what="DOCX")


def _parse_part(archive: Any, name: str, path: Path) -> Any:
    data = read_member(archive, name, MAX_PART_BYTES)
    return parse_xml(data, path, f"DOCX part {name}", MAX_XML_ELEMENTS, lookup=element_class_lookup)
