"""HTML via unstructured's partition_html: <h1>–<h6> become sections, <table> rows " | " text.

The bytes are decoded here, not by unstructured: a ``<meta charset>`` wins, otherwise the same
detection as for text files (BOM, UTF-8, then CP949/EUC-KR for older Korean pages).
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, read_bytes
from polisum.loaders.docx import one_line
from polisum.loaders.structure import build_document
from polisum.loaders.text import decode_text
from polisum.types import Document

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# Labels that browsers treat as a superset encoding (WHATWG): EUC-KR pages are decoded as CP949.
_ALIASES = {"euc-kr": "cp949", "ks_c_5601-1987": "cp949", "x-windows-949": "cp949"}


def decode_html(data: bytes, path: Path) -> tuple[str, str]:
    match = _META_CHARSET.search(data[:4096])
    if match and not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        label = match.group(1).decode("ascii", "ignore").lower()
        encoding = _ALIASES.get(label, label)
        try:
            codecs.lookup(encoding)
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong declaration: fall back to detection
    return decode_text(data, path)


class HtmlLoader:
    extensions: tuple[str, ...] = (".html", ".htm", ".xhtml")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        text, encoding = decode_html(read_bytes(path, self.max_bytes), path)
        if not text.strip():
            raise LoadError(path, "no text (file is blank)")

        from polisum.loaders._unstructured import (
            PARTITION_KWARGS,
            elements_to_blocks,
            ensure_offline,
        )

        ensure_offline()
        from unstructured.partition.html import partition_html

        try:
            elements = partition_html(text=text, **PARTITION_KWARGS)
        except Exception as exc:  # only library code runs here: lxml/unstructured parse errors
            raise LoadError(path, f"unreadable HTML ({one_line(exc)})") from exc
        blocks = elements_to_blocks(elements, pages=False)
        return build_document(path, blocks, {"format": "html", "encoding": encoding}, what="HTML")
