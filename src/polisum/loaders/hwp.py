"""HWP 5.x (Hangul Word Processor binary format): a focused reader on olefile + zlib.

Why not a library: pyhwp (the reference implementation) is AGPL, unmaintained since 2020 and
stops on ``hwp5_format_spec_rev1.3.hwp`` ("unmatched field end"); the small PyPI readers
tried (hwp-hwpx-parser 1.0) leak the inline data of tab controls into the text as CJK glyph
soup ("Ⅰ. 개요 翌ȃ 1") and cannot read distribution documents. The format parts needed for
text are small and documented by Hancom ("한글문서파일형식 5.0"):

* an OLE compound file; ``FileHeader`` holds flags (compressed, password, distribution, DRM);
* ``BodyText/SectionN`` streams of raw-deflate records: a 32-bit header (tag, level, size);
* ``PARA_TEXT`` records hold UTF-16LE text in which codes < 32 are controls, most of which
  occupy 8 code units (their data follows inline) and must be skipped whole;
* controls (``CTRL_HEADER``) own the records nested one level deeper: a table's cells are
  ``LIST_HEADER`` records (with row/column address) followed by the cell's paragraphs;
* distribution documents ("배포용 문서", read-only copies) keep the body in ``ViewText``,
  AES-128-ECB encrypted with a key scrambled into the stream's first record (MSVC rand()
  XOR); it is the copy-protection scheme every HWP viewer opens without a password.

Headings: HWP files from Korean government rarely use outline styles; their numbering is
typed into the text, so numbered short paragraphs ("Ⅰ. 개요", "1. 추진 배경") become sections
(:func:`structure.guess_heading_level`). Pages: the layout cache stored with each paragraph
(``PARA_LINE_SEG``) restarts its vertical position at the top of every page, which gives the
page a paragraph was on when the file was last saved.

One file (~430 lines) for one binary format: records, controls, tables, distribution
decryption and the size caps share the record walker and are read together.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable, one_line
from polisum.loaders.korean_fix import repair_line
from polisum.loaders.structure import Block, SectionPath, build_document, guess_heading_level
from polisum.loaders.tables import grid_rows, rows_to_text
from polisum.types import Document

# Record tags (HWPTAG_BEGIN = 0x10).
TAG_PARA_SHAPE = 0x10 + 9
TAG_DISTRIBUTE_DOC_DATA = 0x10 + 12
TAG_PARA_HEADER = 0x10 + 50
TAG_PARA_TEXT = 0x10 + 51
TAG_PARA_LINE_SEG = 0x10 + 53
TAG_CTRL_HEADER = 0x10 + 55
TAG_LIST_HEADER = 0x10 + 56
TAG_TABLE = 0x10 + 61

FLAG_COMPRESSED = 1 << 0
FLAG_PASSWORD = 1 << 1
FLAG_DISTRIBUTION = 1 << 2
FLAG_DRM = 1 << 4

# Control characters in PARA_TEXT: these occupy one code unit; all others < 32 occupy eight.
_CHAR_CONTROLS = {0, 10, 13, 24, 25, 26, 27, 28, 29, 30, 31}
_CONTROL_TEXT = {9: "\t", 10: "\n", 24: "-", 30: " ", 31: " "}
# Controls whose content is not body text: headers/footers repeat on every page.
_SKIP_CONTROLS = {"head", "foot", "tcmt", "pghd", "pgnp", "pgct", "nwno", "atno", "bokm"}
# Caps on what a file makes the reader inflate, hold and walk; each stops a zlib bomb or a
# forged size field with a reason instead of a MemoryError. For scale: the largest stream in
# the shared samples inflates to 0.8 MiB in 26,351 records, none over 1 KiB, 9 levels deep.
# - One stream (a section, DocInfo) inflates to at most this: ~1,500 pages at the samples'
#   density of ~20 KiB a page, 40 times the largest sample stream.
MAX_SECTION_BYTES = 32 * 1024 * 1024
# - All streams of a file together: many sections cannot add up to gigabytes.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
# - Records per stream, kept as a list (~100 bytes each): a stream of zero bytes is 4-byte
#   empty records, 8 million in 32 MiB. Real streams hold one record per ~32 bytes, so this
#   matches MAX_SECTION_BYTES.
MAX_RECORDS = 1_000_000
# - One record: a paragraph's text of 4 MiB is 2 million characters (a forged 64 MiB text
#   record in a 29 KB file was then split into sentences for minutes).
MAX_RECORD_BYTES = 4 * 1024 * 1024
# - Controls inside controls (a table in a text box in a table cell ...): the walk recurses per
#   level, and the format allows 1,023 levels. Deeper controls are skipped and counted.
MAX_NESTING = 16


@dataclass(slots=True)
class _Record:
    tag: int
    level: int
    data: bytes


class HwpLoader:
    extensions: tuple[str, ...] = (".hwp",)

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        import olefile

        check_readable(path, self.max_bytes)
        with open(path, "rb") as fh:
            head = fh.read(32)
        if head.startswith(b"PK"):  # an HWPX (zip) file saved with the .hwp extension
            from polisum.loaders.hwpx import HwpxLoader

            return HwpxLoader(self.max_bytes).load(path)
        if head.startswith(b"HWP Document File V"):
            raise LoadError(path, "HWP 3.x file: not supported, save it as HWP 5 or HWPX")
        if head[:8] != olefile.MAGIC:
            raise LoadError(path, "not an HWP file (no OLE signature): damaged or misnamed")
        try:
            with open(path, "rb") as fh, olefile.OleFileIO(fh) as ole:
                return self._read(path, ole)
        except LoadError:
            raise
        except (OSError, struct.error, zlib.error, ValueError) as exc:
            raise LoadError(path, f"damaged HWP ({one_line(exc)})") from exc

    def _read(self, path: Path, ole) -> Document:
        if not ole.exists("FileHeader"):
            raise LoadError(path, "not an HWP 5 file (OLE file without FileHeader)")
        header = ole.openstream("FileHeader").read(256)
        if not header.startswith(b"HWP Document File"):
            raise LoadError(path, "not an HWP 5 file (bad FileHeader signature)")
        version = struct.unpack_from("<I", header, 32)[0]
        flags = struct.unpack_from("<I", header, 36)[0]
        if flags & FLAG_PASSWORD:
            raise LoadError(path, "password-protected HWP: save a copy without the password")
        if flags & FLAG_DRM:
            raise LoadError(path, "DRM-protected HWP: export it without DRM first")
        distribution = bool(flags & FLAG_DISTRIBUTION)
        storage = "ViewText" if distribution else "BodyText"
        sections = sorted(
            (e for e in ole.listdir() if len(e) == 2 and e[0] == storage),
            key=lambda e: int(e[1][7:]) if e[1][7:].isdigit() else 0,
        )
        if not sections:
            raise LoadError(path, f"HWP file without {storage} sections")
        budget = _Budget(path)
        docinfo = ole.openstream("DocInfo").read() if ole.exists("DocInfo") else b""
        if docinfo and flags & FLAG_COMPRESSED:
            docinfo = budget.inflate(docinfo, "DocInfo")
        reader = _BodyReader(_outline_levels(_read_records(docinfo, path, "DocInfo")))
        for entry in sections:
            raw = ole.openstream(entry).read()
            if distribution:
                raw = _decrypt_distribution(raw, path)
            data = budget.inflate(raw, entry[1]) if flags & FLAG_COMPRESSED else raw
            reader.read_section(_read_records(data, path, entry[1]))
        metadata: dict[str, Any] = {
            "format": "hwp",
            "hwp_version": ".".join(str(b) for b in version.to_bytes(4, "big")),
            "pages": reader.page,
            "distribution": distribution,
        }
        if reader.skipped_nested:
            metadata["warnings"] = [
                f"{reader.skipped_nested} controls (text boxes, tables) nested deeper than "
                f"{MAX_NESTING} levels were not read"
            ]
        return build_document(path, reader.blocks, metadata, what="HWP")


def _outline_levels(docinfo: list[_Record]) -> dict[int, int]:
    """Paragraph-shape id → outline level (1-based) for shapes that make an outline heading
    ("개요" numbering): bits 23-24 of the shape's first attribute say heading type 1."""
    levels: dict[int, int] = {}
    shape_id = 0
    for rec in docinfo:
        if rec.tag != TAG_PARA_SHAPE:
            continue
        if len(rec.data) >= 4:
            attr = struct.unpack_from("<I", rec.data, 0)[0]
            if (attr >> 23) & 0x3 == 1:
                levels[shape_id] = ((attr >> 25) & 0x7) + 1
        shape_id += 1
    return levels


# Raw deflate is inflated this much at a time, so that a bomb stops within a step of the cap.
_INFLATE_STEP = 1024 * 1024


class _Budget:
    """Inflates a file's streams, each to at most MAX_SECTION_BYTES and all together to at most
    MAX_DOCUMENT_BYTES, a step at a time into one growing buffer: a bomb costs the cap (once,
    not twice as a single ``decompress`` call's result buffer would), not its size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.left = MAX_DOCUMENT_BYTES

    def inflate(self, data: bytes, name: str) -> bytearray:
        limit = min(MAX_SECTION_BYTES, self.left)
        inflater = zlib.decompressobj(-15)
        out = bytearray()
        step = inflater.decompress(data, _INFLATE_STEP)
        while step and len(out) <= limit:
            out += step
            step = inflater.decompress(inflater.unconsumed_tail, _INFLATE_STEP)
        if len(out) > limit:
            if limit < MAX_SECTION_BYTES:
                what = f"streams unpack to more than {MAX_DOCUMENT_BYTES // 2**20} MiB in all"
            else:
                what = f"stream {name} unpacks to more than {MAX_SECTION_BYTES // 2**20} MiB"
            raise LoadError(self.path, f"HWP {what} (damaged file or a zip bomb)")
        self.left -= len(out)
        return out


def _read_records(data: bytes | bytearray, path: Path, name: str) -> list[_Record]:
    records = []
    for rec in _records(data, path, name):
        if len(records) == MAX_RECORDS:
            raise LoadError(
                path, f"HWP stream {name} has more than {MAX_RECORDS:,} records (damaged file)"
            )
        records.append(rec)
    return records


def _records(data: bytes | bytearray, path: Path, name: str) -> Iterator[_Record]:
    view = memoryview(data)  # a record's bytes are copied once, out of the view
    pos, end = 0, len(data)
    while pos + 4 <= end:
        (value,) = struct.unpack_from("<I", data, pos)
        pos += 4
        tag, level, size = value & 0x3FF, (value >> 10) & 0x3FF, value >> 20
        if size == 0xFFF:
            if pos + 4 > end:
                return
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4
        if pos + size > end:  # a truncated record ends the section, keeping what came before
            return
        if size > MAX_RECORD_BYTES:
            raise LoadError(
                path,
                f"HWP stream {name} has a record of {size / 2**20:.0f} MiB "
                f"(limit {MAX_RECORD_BYTES // 2**20} MiB): damaged file",
            )
        yield _Record(tag, level, view[pos : pos + size].tobytes())
        pos += size


def _decrypt_distribution(raw: bytes, path: Path) -> bytes:
    """ViewText stream → the compressed record stream (see the module docstring)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    first = next(_records(raw[:260], path, "ViewText"), None)
    if first is None or first.tag != TAG_DISTRIBUTE_DOC_DATA or len(first.data) != 256:
        raise LoadError(path, "damaged distribution HWP (no key record in ViewText)")
    data = bytearray(first.data)
    seed = struct.unpack_from("<I", data, 0)[0]
    key, run = 0, 0
    for i in range(256):
        if run == 0:
            seed = (seed * 214013 + 2531011) & 0xFFFFFFFF
            key = (seed >> 16) & 0xFF
            seed = (seed * 214013 + 2531011) & 0xFFFFFFFF
            run = ((seed >> 16) & 0xF) + 1
        if i >= 4:
            data[i] ^= key
        run -= 1
    offset = 4 + (data[0] & 0xF)
    aes_key = bytes(data[offset : offset + 16])
    body = raw[4 + 256 :]
    body = body[: len(body) - len(body) % 16]
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()
    return decryptor.update(body) + decryptor.finalize()


def decode_para_text(data: bytes) -> str:
    """PARA_TEXT payload → text, skipping the 8-unit inline/extended controls whole."""
    units = struct.unpack(f"<{len(data) // 2}H", data[: len(data) // 2 * 2])
    out: list[str] = []
    i, n = 0, len(units)
    while i < n:
        code = units[i]
        if code >= 32:
            out.append(chr(code))
            i += 1
        elif code in _CHAR_CONTROLS:
            out.append(_CONTROL_TEXT.get(code, ""))
            i += 1
        else:
            out.append(_CONTROL_TEXT.get(code, ""))
            i += 8
    # Surrogate pairs arrive as two units: let Python join them.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _ctrl_id(data: bytes) -> str:
    return data[:4][::-1].decode("latin-1") if len(data) >= 4 else ""


def _clean(text: str) -> str:
    """Forced line breaks inside an HWP paragraph are visual wraps: they join with a space."""
    lines = [repair_line(line).strip() for line in text.split("\n")]
    return " ".join(line for line in lines if line)


class _BodyReader:
    """Walks the record tree of each section in reading order and collects blocks."""

    def __init__(self, outline_levels: dict[int, int]) -> None:
        self.outline_levels = outline_levels
        self._outline: int | None = None  # outline level of the paragraph being read
        self.blocks: list[Block] = []
        self.sections = SectionPath()
        self.page = 1
        self.skipped_nested = 0
        self._last_vpos = -1
        self._last_column = 0

    def read_section(self, records: list[_Record]) -> None:
        if self.blocks:  # a new HWP section starts on a new page
            self.page += 1
        self._last_vpos = -1
        self._walk(records, 0, len(records), top=True, depth=0)

    def _subtree_end(self, records: list[_Record], i: int, end: int) -> int:
        level = records[i].level
        j = i + 1
        while j < end and records[j].level > level:
            j += 1
        return j

    def _too_deep(self, depth: int) -> bool:
        if depth > MAX_NESTING:
            self.skipped_nested += 1
            return True
        return False

    def _walk(self, records: list[_Record], start: int, end: int, *, top: bool, depth: int) -> None:
        i = start
        while i < end:
            rec = records[i]
            if rec.tag == TAG_CTRL_HEADER:
                j = self._subtree_end(records, i, end)
                ctrl = _ctrl_id(rec.data)
                if ctrl in _SKIP_CONTROLS or self._too_deep(depth + 1):
                    pass
                elif ctrl == "tbl ":
                    self._table(records, i + 1, j, depth + 1)
                else:  # text boxes, footnotes
                    self._walk(records, i + 1, j, top=False, depth=depth + 1)
                i = j
                continue
            if rec.tag == TAG_PARA_HEADER:
                shape = struct.unpack_from("<H", rec.data, 8)[0] if len(rec.data) >= 10 else -1
                self._outline = self.outline_levels.get(shape) if top else None
            elif rec.tag == TAG_PARA_TEXT:
                self._paragraph(decode_para_text(rec.data))
            elif rec.tag == TAG_PARA_LINE_SEG and top and rec.level == 1:
                self._track_page(rec.data)
            i += 1

    def _track_page(self, data: bytes) -> None:
        for k in range(0, len(data) - 35, 36):
            vpos = struct.unpack_from("<i", data, k + 4)[0]
            column = struct.unpack_from("<i", data, k + 24)[0]
            if 0 <= vpos < self._last_vpos and column <= self._last_column:
                self.page += 1
            self._last_vpos, self._last_column = vpos, column

    def _paragraph(self, raw: str) -> None:
        text = _clean(raw)
        if not text:
            return
        # An outline-numbered paragraph is a heading by its shape; otherwise guess from the
        # typed numbering (the raw text still has the tab that marks a table-of-contents line).
        level = self._outline if self._outline and len(text) <= 80 else guess_heading_level(raw)
        if level:
            self.sections.push(level, text)
            self.blocks.append(Block(text, "heading", self.sections.path, self.page))
        else:
            self.blocks.append(Block(text, "paragraph", self.sections.path, self.page))

    def _cells(self, records: list[_Record], start: int, end: int) -> list[tuple[int, int, int]]:
        """(row, col, index of the LIST_HEADER) for each cell of the table at this level."""
        level = records[start].level if start < end else 0
        cells = []
        for k in range(start, end):
            rec = records[k]
            if rec.tag == TAG_LIST_HEADER and rec.level == level and len(rec.data) >= 16:
                col, row = struct.unpack_from("<HH", rec.data, 8)
                cells.append((row, col, k))
        return cells

    def _table(self, records: list[_Record], start: int, end: int, depth: int) -> None:
        cells = self._cells(records, start, end)
        if not cells:
            return
        if len(cells) == 1:  # a one-cell box frames ordinary paragraphs (often a heading)
            self._walk(records, cells[0][2] + 1, end, top=False, depth=depth)
            return
        bounds = [k for _, _, k in cells] + [end]
        texts = []
        for (row, col, k), nxt in zip(cells, bounds[1:], strict=False):
            texts.append((row, col, self._cell_text(records, k + 1, nxt, depth)))
        text = rows_to_text(grid_rows(texts))
        if text:
            self.blocks.append(Block(text, "table", self.sections.path, self.page))

    def _cell_text(self, records: list[_Record], start: int, end: int, depth: int) -> str:
        parts: list[str] = []
        i = start
        while i < end:
            rec = records[i]
            if rec.tag == TAG_CTRL_HEADER:
                j = self._subtree_end(records, i, end)
                ctrl = _ctrl_id(rec.data)
                if ctrl in _SKIP_CONTROLS or self._too_deep(depth + 1):
                    pass
                elif ctrl == "tbl ":  # a nested table, flattened into the cell
                    nested = self._cells(records, i + 1, j)
                    bounds = [k for _, _, k in nested] + [j]
                    rows = grid_rows(
                        (r, c, self._cell_text(records, k + 1, nxt, depth + 1))
                        for (r, c, k), nxt in zip(nested, bounds[1:], strict=False)
                    )
                    parts.append(rows_to_text(rows).replace("\n", " / "))
                else:
                    parts.append(self._cell_text(records, i + 1, j, depth + 1))
                i = j
                continue
            if rec.tag == TAG_PARA_TEXT:
                parts.append(_clean(decode_para_text(rec.data)).replace("\n", " "))
            i += 1
        return " ".join(p for p in parts if p)
