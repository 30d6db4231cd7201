"""Word .docx via unstructured's partition_docx (python-docx underneath).

unstructured gives headings from Word's paragraph styles (→ sections), list items, tables with
their cell structure (``text_as_html`` → " | " rows) and page numbers from the page breaks Word
recorded when the file was last saved. Headers and footers are dropped: they repeat on every
page and would drown the body in duplicates.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable
from polisum.loaders.structure import build_document
from polisum.types import Document

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The XML python-docx parses is held in memory several times over: refuse zip bombs.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024


def one_line(exc: BaseException, limit: int = 120) -> str:
    """An exception as a short single line for a LoadError reason."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def open_ooxml(path: Path, main_part: str, what: str) -> zipfile.ZipFile:
    """Open a zip-based office file, or raise LoadError saying why it is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise LoadError(path, f"cannot read file: {exc.strerror or exc}") from exc
    if head == OLE_MAGIC:
        raise LoadError(
            path,
            f"password-protected {what} (or an old binary file renamed): remove the password "
            "or save it again in the current format",
        )
    if not head.startswith(b"PK"):
        raise LoadError(path, f"not a {what} file (no zip signature): damaged or misnamed")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoadError(path, f"damaged {what} (bad zip archive: {one_line(exc)})") from exc
    names = set(archive.namelist())
    if main_part not in names:
        archive.close()
        raise LoadError(path, f"not a {what} file: zip archive without {main_part}")
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        archive.close()
        raise LoadError(
            path,
            f"{what} unpacks to {unpacked / 2**20:.0f} MiB "
            f"(limit {MAX_UNPACKED_BYTES / 2**20:.0f} MiB): refusing a possible zip bomb",
        )
    return archive


class DocxLoader:
    extensions: tuple[str, ...] = (".docx",)

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        check_readable(path, self.max_bytes)
        open_ooxml(path, "word/document.xml", "DOCX").close()

        from polisum.loaders._unstructured import (
            PARTITION_KWARGS,
            elements_to_blocks,
            ensure_offline,
        )

        ensure_offline()
        from unstructured.partition.docx import partition_docx

        try:
            # A file object, not the name: names that are not valid UTF-8 stay openable.
            with open(path, "rb") as fh:
                elements = partition_docx(file=fh, infer_table_structure=True, **PARTITION_KWARGS)
        except Exception as exc:
            # Only library code runs in this call; python-docx fails on malformed parts with
            # whatever error the missing piece causes (KeyError, AttributeError, lxml errors).
            raise LoadError(path, f"damaged DOCX ({one_line(exc)})") from exc
        blocks = elements_to_blocks(elements, pages=True)
        return build_document(path, blocks, {"format": "docx"}, what="DOCX")
