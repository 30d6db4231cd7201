"""Builders of small hostile files (HWPX, HWP 5, PDF) for tests/test_hostile_readers.py.

HWP 5 files are OLE compound files; olefile only reads them and no maintained PyPI package
writes them, so :func:`compound_file` writes the minimal subset of the format ([MS-CFB] v3:
512-byte sectors, one FAT, no mini stream: every stream is padded to the 4,096-byte cutoff).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

HP_NS = "http://www.hancom.co.kr/hwpml/2011/paragraph"
HS_NS = "http://www.hancom.co.kr/hwpml/2011/section"
HH_NS = "http://www.hancom.co.kr/hwpml/2011/head"

# ---------------------------------------------------------------------------------------- HWPX


def hwpx(section_body: str, header: str = f'<hh:head xmlns:hh="{HH_NS}"/>') -> bytes:
    """A minimal HWPX package whose one section holds ``section_body`` (hp: elements)."""
    section = (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<hs:sec xmlns:hs="{HS_NS}" xmlns:hp="{HP_NS}">{section_body}</hs:sec>'
    )
    header = f'<?xml version="1.0" encoding="UTF-8"?>{header}'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("mimetype", "application/hwp+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("Contents/header.xml", header)
        z.writestr("Contents/section0.xml", section)
    return out.getvalue()


def hwpx_paragraph(text: str, inner: str = "") -> str:
    """One hp:p with a text run; ``inner`` (objects) goes into a second run."""
    extra = f"<hp:run>{inner}</hp:run>" if inner else ""
    return f"<hp:p><hp:run><hp:t>{text}</hp:t></hp:run>{extra}</hp:p>"


def hwpx_nested_boxes(depth: int) -> bytes:
    """Text boxes (hp:rect with hp:drawText) nested ``depth`` deep, each with its own line of
    text: a few hundred bytes that an ancestor-revisiting reader reads 2^depth times."""
    body = ""
    for level in range(depth, 0, -1):
        box = f"<hp:rect><hp:drawText><hp:subList>{body}</hp:subList></hp:drawText></hp:rect>"
        body = hwpx_paragraph(f"box level {level}", box)
    return hwpx(hwpx_paragraph("Top paragraph before the boxes.") + body)


def hwpx_table(cells: list[tuple[int, int, str]]) -> bytes:
    """One table whose cells carry the given (rowAddr, colAddr, text)."""
    tcs = "".join(
        f"<hp:tr><hp:tc><hp:subList>{hwpx_paragraph(text)}</hp:subList>"
        f'<hp:cellAddr colAddr="{col}" rowAddr="{row}"/></hp:tc></hp:tr>'
        for row, col, text in cells
    )
    table = f"<hp:tbl>{tcs}</hp:tbl>"
    return hwpx(hwpx_paragraph("Budget table follows.", table))


# ------------------------------------------------------------------------------------- HWP 5
TAG_PARA_HEADER = 0x10 + 50
TAG_PARA_TEXT = 0x10 + 51
TAG_CTRL_HEADER = 0x10 + 55
TAG_LIST_HEADER = 0x10 + 56


def record(tag: int, level: int, data: bytes) -> bytes:
    """One HWP record: a 32-bit header (tag, level, size; size 0xFFF → a 32-bit size after)."""
    if len(data) < 0xFFF:
        return struct.pack("<I", tag | level << 10 | len(data) << 20) + data
    return struct.pack("<II", tag | level << 10 | 0xFFF << 20, len(data)) + data


def paragraph(text: str, level: int = 0) -> bytes:
    return record(TAG_PARA_HEADER, level, bytes(22)) + record(
        TAG_PARA_TEXT, level + 1, (text + "\r").encode("utf-16-le")
    )


def table_cell(row: int, col: int, text: str, level: int) -> bytes:
    """A cell of a table control at ``level``: its LIST_HEADER, then its paragraph."""
    header = struct.pack("<HIHHHH", 1, 0, 0, col, row, 1) + bytes(16)  # n_paras, attr, addr
    return record(TAG_LIST_HEADER, level, header) + paragraph(text, level)


def table_control(cells: list[tuple[int, int, str]], level: int = 1) -> bytes:
    return record(TAG_CTRL_HEADER, level, b" lbt" + bytes(40)) + b"".join(
        table_cell(r, c, t, level + 1) for r, c, t in cells
    )


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def deflate_zeros(size: int) -> bytes:
    """Raw deflate of ``size`` zero bytes (~1,000:1), compressed a MiB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(2**20)
    parts = [packer.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(packer.compress(bytes(size % len(chunk))))
    return b"".join(parts) + packer.flush()


def hwp(sections: list[bytes], *, compressed: bool = True) -> bytes:
    """An HWP 5 file with these BodyText/SectionN streams (already deflated if compressed)."""
    header = b"HWP Document File".ljust(32, b"\0") + struct.pack("<II", 0x05000300, compressed)
    streams = {"FileHeader": header.ljust(256, b"\0")}
    for i, data in enumerate(sections):
        streams[f"BodyText/Section{i}"] = data
    return compound_file(streams)


def compound_file(streams: dict[str, bytes]) -> bytes:
    """A CFB v3 file with these streams ("Storage/Stream" names one level deep at most)."""
    sector = 512
    end_of_chain, fat_sect, free = 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    # Directory entries: 0 is the root; storages and streams follow.
    entries: list[dict] = [{"name": "Root Entry", "type": 5, "kids": []}]
    by_path: dict[str, int] = {}
    for name in streams:
        parent = 0
        parts = name.split("/")
        for depth, part in enumerate(parts):
            key = "/".join(parts[: depth + 1])
            if key not in by_path:
                is_stream = depth == len(parts) - 1
                entries.append({"name": part, "type": 2 if is_stream else 1, "kids": []})
                by_path[key] = len(entries) - 1
                entries[parent]["kids"].append(len(entries) - 1)
            parent = by_path[key]
    data = io.BytesIO()
    chains: list[tuple[int, int]] = []  # (first sector, n sectors) of each stream, in order
    for name, payload in streams.items():
        payload = payload.ljust(4096, b"\0")  # at the cutoff: a regular stream, no mini FAT
        n = -(-len(payload) // sector)
        chains.append((data.tell() // sector, n))
        data.write(payload.ljust(n * sector, b"\0"))
        entry = entries[by_path[name]]
        entry["start"], entry["size"] = data.tell() // sector - n, len(payload)
    dir_first = data.tell() // sector
    directory = io.BytesIO()
    for entry in entries:
        # Siblings in CFB order (shorter names first) chained through the right pointer.
        kids = sorted(entry["kids"], key=lambda k: (len(entries[k]["name"]), entries[k]["name"]))
        for a, b in zip(kids, [*kids[1:], None], strict=False):
            entries[a]["right"] = b
        entry["child"] = kids[0] if kids else None
    for entry in entries:
        name = entry["name"].encode("utf-16-le") + b"\0\0"
        directory.write(name.ljust(64, b"\0"))
        directory.write(struct.pack("<HBB", len(name), entry["type"], 1))
        for link in (None, entry.get("right"), entry.get("child")):  # left, right, child
            directory.write(struct.pack("<I", free if link is None else link))
        directory.write(bytes(36))  # CLSID, state bits, times
        start = entry.get("start", end_of_chain if entry["type"] == 5 else 0)
        directory.write(struct.pack("<IQ", start, entry.get("size", 0)))
    dir_bytes = directory.getvalue().ljust(-(-directory.tell() // sector) * sector, b"\0")
    chains.append((dir_first, len(dir_bytes) // sector))
    data.write(dir_bytes)
    used = data.tell() // sector
    n_fat = 1
    while n_fat * sector // 4 < used + n_fat:
        n_fat += 1
    fat = [free] * (n_fat * sector // 4)
    for first, n in chains:
        for k in range(first, first + n):
            fat[k] = k + 1 if k < first + n - 1 else end_of_chain
    for k in range(used, used + n_fat):
        fat[k] = fat_sect
    if n_fat > 109:
        raise ValueError("this writer has no DIFAT: keep test files under ~6 MiB")
    difat = list(range(used, used + n_fat)) + [free] * (109 - n_fat)
    head = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("d0cf11e0a1b11ae1"),
        bytes(16),
        0x3E,  # minor version
        3,  # major version: 512-byte sectors
        0xFFFE,  # byte order
        9,  # sector shift
        6,  # mini sector shift
        bytes(6),
        0,  # directory sectors (v3: 0)
        n_fat,
        dir_first,
        0,  # transaction signature
        4096,  # mini stream cutoff
        end_of_chain,  # first mini FAT sector
        0,
        end_of_chain,  # first DIFAT sector
        0,
    ) + struct.pack("<109I", *difat)
    return head + data.getvalue() + struct.pack(f"<{len(fat)}I", *fat)


# ---------------------------------------------------------------------------------------- PDF


def ruled_grid(n: int, *, size: float = 600.0, origin: float = 6.0) -> bytes:
    """A content stream drawing an n × n ruled grid (n + 1 lines each way), one path each."""
    step = size / n
    out = [b"0.2 w"]
    for i in range(n + 1):
        at = origin + i * step
        out.append(b"%.2f %.2f m %.2f %.2f l S" % (origin, at, origin + size, at))
        out.append(b"%.2f %.2f m %.2f %.2f l S" % (at, origin, at, origin + size))
    return b"\n".join(out)


def pdf(pages: list[tuple[bytes, tuple[float, float]]]) -> bytes:
    """A PDF of pages given as (content stream, (width, height) in points), written by pypdf;
    font /F1 is Helvetica."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    def name_dict(**items: str) -> DictionaryObject:
        return DictionaryObject({NameObject(f"/{k}"): NameObject(v) for k, v in items.items()})

    helvetica = name_dict(Type="/Font", Subtype="/Type1", BaseFont="/Helvetica")
    fonts = DictionaryObject({NameObject("/F1"): helvetica})
    writer = PdfWriter()
    for content, (width, height) in pages:
        page = writer.add_blank_page(width, height)
        stream = DecodedStreamObject()
        stream.set_data(content)
        page.replace_contents(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def text_line(text: str, x: float = 72, y: float = 720, size: int = 12) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"BT /F1 %d Tf %.0f %.0f Td (" % (size, x, y) + escaped.encode("latin-1") + b") Tj ET"


def image_over(width: float, height: float) -> bytes:
    """An 8×8 grey inline image scaled over the whole page: a "scan" without a text layer."""
    return (
        b"q %.0f 0 0 %.0f 0 0 cm BI /W 8 /H 8 /CS /G /BPC 8 ID " % (width, height)
        + bytes(range(64))
        + b" EI Q"
    )
