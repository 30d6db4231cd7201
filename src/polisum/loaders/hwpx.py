"""HWPX (OWPML, KS X 6101): a zip of XML parts, read with zipfile + lxml.

The reading order is the order of ``Contents/section*.xml`` in the package spine and of the
``hp:p`` paragraphs in them; tables (``hp:tbl``) become " | " rows using each cell's
``hp:cellAddr``, and a one-cell table (a framed title or box) is read as ordinary paragraphs.
Headings come from paragraph shapes with outline numbering (``hh:heading type="OUTLINE"`` in
``header.xml``), else from typed numbering ("Ⅰ. 과업안내", "1. 행사개요"); pages from the saved
line layout (``hp:lineseg/@vertpos`` restarts at the top of each page), as for HWP.

Libraries looked at: hwp-hwpx-parser 1.0 (a single release; renders tables as Markdown and,
for HWP, leaks control data into the text) and python-hwpx (an alpha-stage editing library).
Neither exposes the outline levels or saved page layout used here, and the part of the format
read for text is small.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable, one_line
from polisum.loaders.korean_fix import repair_line
from polisum.loaders.safezip import open_ooxml
from polisum.loaders.structure import Block, SectionPath, build_document, guess_heading_level
from polisum.loaders.tables import grid_rows, rows_to_text
from polisum.types import Document

HP = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
HH = "{http://www.hancom.co.kr/hwpml/2011/head}"
# One part's declared (and, by zipfile, enforced) unpacked size. Parts are streamed (a section
# one top-level paragraph at a time), so this bounds time; memory holds one paragraph.
MAX_PART_BYTES = 128 * 1024 * 1024
# All XML parts of a package together: a zip of many small, highly compressed sections cannot
# make the reader inflate and parse gigabytes. The largest shared sample holds 1.8 MiB.
MAX_PACKAGE_XML_BYTES = 256 * 1024 * 1024
# Text boxes and tables nest (a box in a table cell in a box ...). Real documents go 3-4 deep;
# past this depth objects are skipped and counted: the recursion stays shallow on any file.
MAX_NESTING = 16
# XML hardening (no entities, no network; libxml2's default depth and text-node limits stay).
_XML_OPTIONS = {"resolve_entities": False, "no_network": True, "remove_comments": True}
# Inline elements of hp:t that stand for characters.
_INLINE = {f"{HP}tab": "\t", f"{HP}lineBreak": " ", f"{HP}fwSpace": " ", f"{HP}nbSpace": " "}
_INLINE[f"{HP}hyphen"] = "-"
# Controls whose text is not body text (running headers/footers, hidden comments).
_SKIP = {f"{HP}header", f"{HP}footer", f"{HP}hiddenComment", f"{HP}pageNum"}


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


class HwpxLoader:
    extensions: tuple[str, ...] = (".hwpx",)

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        check_readable(path, self.max_bytes)
        with open_ooxml(path, "Contents/header.xml", "HWPX") as archive:
            names = _section_names(archive)
            if not names:
                raise LoadError(path, "HWPX without Contents/section*.xml")
            _check_package_size(archive, ["Contents/header.xml", *names], path)
            reader = _SectionReader(_outline_levels(archive, path))
            for name in names:
                _read_section(archive, name, path, reader)
        metadata: dict[str, Any] = {"format": "hwpx", "pages": reader.page, "sections": len(names)}
        if reader.skipped_nested:
            metadata["warnings"] = [
                f"{reader.skipped_nested} objects (text boxes, tables) nested deeper than "
                f"{MAX_NESTING} levels were not read"
            ]
        return build_document(path, reader.blocks, metadata, what="HWPX")


def _section_names(archive: zipfile.ZipFile) -> list[str]:
    """Section parts in numeric order (section0, section1, ...), the order Hancom writes them
    in the package spine."""
    names = [n for n in archive.namelist() if re.fullmatch(r"Contents/section\d+\.xml", n)]
    names.sort(key=lambda n: int(re.sub(r"\D", "", n.rsplit("/", 1)[-1]) or 0))
    return names


# _check_package_size and _iter_part are this module's own zip/XML guards, meant to give way to
# the shared safe-zip helpers once those exist (same checks: declared sizes, which zipfile
# enforces while reading, and a streaming parser without entities or network).


def _check_package_size(archive: zipfile.ZipFile, names: list[str], path: Path) -> None:
    for name in names:
        size = archive.getinfo(name).file_size
        if size > MAX_PART_BYTES:
            raise LoadError(path, f"HWPX part {name} is too large ({size // 2**20} MiB)")
    total = sum(archive.getinfo(name).file_size for name in names)
    if total > MAX_PACKAGE_XML_BYTES:
        raise LoadError(
            path,
            f"HWPX unpacks to {total // 2**20} MiB of XML "
            f"(limit {MAX_PACKAGE_XML_BYTES // 2**20} MiB)",
        )


def _iter_part(archive: zipfile.ZipFile, name: str, path: Path, tag: str) -> Iterator[Any]:
    """The ``tag`` elements of a part as their end tags arrive, streamed from the zip member
    (zipfile stops at the declared size and checks the CRC); the caller clears what it read."""
    try:
        with archive.open(name) as fh:
            for _, element in etree.iterparse(fh, events=("end",), tag=tag, **_XML_OPTIONS):
                yield element
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise LoadError(path, f"damaged HWPX ({name}: {one_line(exc)})") from exc
    except etree.XMLSyntaxError as exc:
        raise LoadError(path, f"damaged HWPX ({name} is not well-formed XML)") from exc


def _read_section(archive: zipfile.ZipFile, name: str, path: Path, reader: _SectionReader) -> None:
    """Each top-level paragraph is read when its end tag arrives and then dropped, so memory
    holds one paragraph (with its tables and boxes), not the section."""
    reader.start_section()
    for p in _iter_part(archive, name, path, f"{HP}p"):
        parent = p.getparent()
        if parent is None or parent.getparent() is not None:
            continue  # a nested paragraph: read with the top-level one holding it
        reader.top_paragraph(p)
        p.clear(keep_tail=True)
        while p.getprevious() is not None:
            del parent[0]


def _outline_levels(archive: zipfile.ZipFile, path: Path) -> dict[str, int]:
    """paraPr id → outline level (1-based) for paragraph shapes with outline numbering."""
    levels = {}
    for para_pr in _iter_part(archive, "Contents/header.xml", path, f"{HH}paraPr"):
        heading = para_pr.find(f".//{HH}heading")
        if heading is not None and heading.get("type") == "OUTLINE":
            level = heading.get("level") or "0"
            if level.isdigit() and len(level) < 3:  # 0-9 in the format; junk is no outline
                levels[para_pr.get("id", "")] = int(level) + 1
        para_pr.clear()
    return levels


def _clean(raw: str) -> str:
    return repair_line(raw).strip()


class _SectionReader:
    def __init__(self, outline_levels: dict[str, int]) -> None:
        self.outline_levels = outline_levels
        self.blocks: list[Block] = []
        self.sections = SectionPath()
        self.page = 1
        self.skipped_nested = 0
        self._last_vpos = -1

    def start_section(self) -> None:
        if self.blocks:
            self.page += 1  # each HWPX section starts on a new page
        self._last_vpos = -1

    def top_paragraph(self, p: Any) -> None:
        self._track_page(p)
        self._paragraph(p, 0)

    def _track_page(self, p: Any) -> None:
        for seg in p.iterchildren(f"{HP}linesegarray"):
            for line in seg.iterchildren(f"{HP}lineseg"):
                try:
                    vpos = int(line.get("vertpos", "-1"))
                except ValueError:
                    continue
                if 0 <= vpos < self._last_vpos:
                    self.page += 1
                self._last_vpos = vpos

    def _too_deep(self, depth: int) -> bool:
        if depth > MAX_NESTING:
            self.skipped_nested += 1
            return True
        return False

    def _paragraph(self, p: Any, depth: int) -> None:
        """Emit the paragraph's text, then its tables and text boxes, in document order."""
        parts: list[str] = []
        for run in p.iterchildren(f"{HP}run"):
            for child in run:
                tag = child.tag
                if tag == f"{HP}t":
                    parts.append(_t_text(child))
                elif tag == f"{HP}tbl":
                    self._emit(p, "".join(parts))
                    parts = []
                    if not self._too_deep(depth + 1):
                        self._table(child, depth + 1)
                elif tag in _SKIP or _local(tag) in ("ctrl", "secPr", "colPr", "pic"):
                    if _local(tag) == "ctrl":
                        self._sublists(child, depth + 1, notes_only=True)
                else:  # drawing objects with text (hp:rect/hp:drawText/...), equations
                    self._sublists(child, depth + 1)
        self._emit(p, "".join(parts))

    def _sublists(self, element: Any, depth: int, *, notes_only: bool = False) -> None:
        """The paragraphs of the text lists that belong to this object itself; lists nested in
        those paragraphs are read from there, so every paragraph is read once."""
        holders = element if notes_only else [element]
        for holder in holders:
            if notes_only and _local(holder.tag) not in ("footNote", "endNote"):
                continue
            for sub in _own_sublists(holder):
                if self._too_deep(depth):
                    return
                for inner in sub.iterchildren(f"{HP}p"):
                    self._paragraph(inner, depth)

    def _emit(self, p: Any, raw: str) -> None:
        text = _clean(raw)
        if not text:
            return
        level = self.outline_levels.get(p.get("paraPrIDRef", ""))
        if not level or len(text) > 80:
            level = guess_heading_level(raw)
        if level:
            self.sections.push(level, text)
            self.blocks.append(Block(text, "heading", self.sections.path, self.page))
        else:
            self.blocks.append(Block(text, "paragraph", self.sections.path, self.page))

    def _table(self, tbl: Any, depth: int) -> None:
        cells = list(_cells(tbl))
        if not cells:
            return
        if len(cells) == 1:  # a framed box: its paragraphs are ordinary paragraphs
            for inner in _cell_paragraphs(cells[0][2]):
                self._paragraph(inner, depth)
            return
        text = rows_to_text(grid_rows((r, c, self._cell_text(tc, depth)) for r, c, tc in cells))
        if text:
            self.blocks.append(Block(text, "table", self.sections.path, self.page))

    def _cell_text(self, tc: Any, depth: int) -> str:
        """A cell's paragraphs on one line (runs of a paragraph join without a space)."""
        parts = []
        for p in _cell_paragraphs(tc):
            text = []
            for run in p.iterchildren(f"{HP}run"):
                for child in run:
                    if child.tag == f"{HP}t":
                        text.append(_t_text(child))
                    elif child.tag == f"{HP}tbl" and not self._too_deep(depth + 1):
                        # a nested table, flattened into the cell
                        rows = grid_rows(
                            (r, c, self._cell_text(inner, depth + 1))
                            for r, c, inner in _cells(child)
                        )
                        text.append(" " + rows_to_text(rows).replace("\n", " / ") + " ")
            parts.append(_clean("".join(text)))
        return " ".join(p for p in parts if p)


def _own_sublists(element: Any):
    """``hp:subList`` elements under ``element`` that are not inside another subList, in
    document order. (``element.iter`` would also yield the lists of boxes nested in the boxes'
    own paragraphs, which are then read again from each ancestor: 2^depth times.)"""
    stack = [element]
    while stack:
        node = stack.pop()
        if node.tag == f"{HP}subList":
            yield node
        else:
            stack.extend(reversed(node))


def _t_text(t: Any) -> str:
    out = [t.text or ""]
    for child in t:
        out.append(_INLINE.get(child.tag, ""))
        out.append(child.tail or "")
    return "".join(out)


def _cells(tbl: Any):
    """(row, col, hp:tc) for the cells of this table (not of tables nested in them)."""
    for tr in tbl.iterchildren(f"{HP}tr"):
        for tc in tr.iterchildren(f"{HP}tc"):
            addr = tc.find(f"{HP}cellAddr")
            try:
                row = int(addr.get("rowAddr", "0")) if addr is not None else 0
                col = int(addr.get("colAddr", "0")) if addr is not None else 0
            except ValueError:
                row = col = 0
            yield row, col, tc


def _cell_paragraphs(tc: Any):
    for sub in tc.iterchildren(f"{HP}subList"):
        yield from sub.iterchildren(f"{HP}p")
