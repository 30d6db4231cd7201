"""Plain text and Markdown loaders, with encoding detection for Korean legacy encodings."""

from __future__ import annotations

import codecs
from pathlib import Path

from charset_normalizer import from_bytes
from markdown_it import MarkdownIt

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, read_bytes
from polisum.types import Document, Element, ElementKind

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_KOREAN_CODECS = {"cp949", "euc_kr", "johab", "iso2022_kr"}


def _hangul_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum("\uac00" <= c <= "\ud7a3" for c in letters) / len(letters)


def _looks_like_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM: NUL in every other byte of ASCII-heavy text, and a sample that
    decodes to text in the scripts this package reads. Binary data with NULs in a regular
    pattern (``abc\\0`` repeated decodes to "扡c扡c...") fails the second test."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even_nul = sample[0::2].count(0) / len(sample[0::2])
    odd_nul = sample[1::2].count(0) / len(sample[1::2])
    if odd_nul > 0.3 and even_nul < 0.05:
        encoding = "utf-16-le"
    elif even_nul > 0.3 and odd_nul < 0.05:
        encoding = "utf-16-be"
    else:
        return None
    decoded = sample[: len(sample) // 2 * 2].decode(encoding, "replace")
    plausible = sum(1 for c in decoded if _plausible_char(c))
    return encoding if plausible >= 0.9 * len(decoded) else None


def _plausible_char(c: str) -> bool:
    """Characters of English and Korean text: ASCII printable and whitespace, Latin-1 and
    general punctuation, Hangul (syllables, jamo), CJK symbols and full-width forms. Not CJK
    ideographs: binary with a NUL every fourth byte decodes to them (Korean text uses few, and
    the 10% allowance covers those). Anything else means the guess was wrong."""
    code = ord(c)
    return (
        32 <= code < 127
        or c in "\t\n\r\f"
        or 0xA0 <= code < 0x250  # Latin-1, Latin Extended
        or 0x2000 <= code < 0x2700  # punctuation, symbols, arrows, boxes, circled numbers
        or 0x1100 <= code < 0x1200  # Hangul jamo
        or 0x3000 <= code < 0x3400  # CJK symbols, compatibility jamo, enclosed
        or 0xAC00 <= code < 0xD7A4  # Hangul syllables
        or 0xFF00 <= code < 0xFFF0  # full-width forms
    )


def _check_textual(text: str, path: Path | str, encoding: str) -> tuple[str, str]:
    """Valid UTF-8 can still be binary (NUL and control bytes decode fine): refuse it."""
    sample = text[:65536]
    control = sum(1 for c in sample if (ord(c) < 32 and c not in "\n\r\t\f\v") or c == "\x7f")
    if control > max(2, len(sample) // 100):
        raise LoadError(path, "binary file (control characters), not text")
    return text, encoding


def decode_text(data: bytes, path: Path | str = "<bytes>") -> tuple[str, str]:
    text, encoding = _decode(data, path)
    return _check_textual(text, path, encoding)


def _decode(data: bytes, path: Path | str) -> tuple[str, str]:
    """Decode bytes to text; returns (text, encoding). Raises LoadError for binary data.

    Order: BOM, BOM-less UTF-16, strict UTF-8, then charset-normalizer. Short Korean texts are
    ambiguous to statistical detectors (they may say Big5), so a clean CP949 decode that yields
    mostly Hangul wins over a non-Korean guess; CP949 is a superset of EUC-KR.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise LoadError(path, f"invalid {encoding} text: {exc.reason}") from exc
    # BOM-less UTF-16 first: its ASCII range is also valid UTF-8 (with NULs in between).
    utf16 = _looks_like_utf16(data)
    if utf16:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:8192]:
        raise LoadError(path, "binary file (contains NUL bytes), not text")
    try:
        as_cp949 = data.decode("cp949")
    except UnicodeDecodeError:
        as_cp949 = None
    best = from_bytes(data).best()
    if best is not None and best.encoding in _KOREAN_CODECS:
        return str(best), "cp949" if best.encoding == "euc_kr" else best.encoding
    if as_cp949 is not None and _hangul_ratio(as_cp949) > 0.3:
        return as_cp949, "cp949"
    if best is None:
        raise LoadError(path, "binary or undecodable file: no text encoding fits")
    text = str(best)
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text) / max(len(text), 1)
    if printable < 0.95:
        raise LoadError(path, "binary file, not text")
    return text, best.encoding


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class TextLoader:
    """Plain text: the whole file is one element; the chunker splits it into paragraphs."""

    extensions: tuple[str, ...] = (".txt", ".text")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        text, encoding = decode_text(read_bytes(path, self.max_bytes), path)
        text = _normalise_newlines(text)
        if not text.strip():
            raise LoadError(path, "no text (file is blank)")
        element = Element(text=text, kind="paragraph", start=0, end=len(text))
        return Document(path=path, text=text, elements=[element], metadata={"encoding": encoding})


_BLOCK_KINDS: dict[str, ElementKind] = {
    "paragraph_open": "paragraph",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
    "fence": "code",
    "code_block": "code",
    "blockquote_open": "paragraph",
    "html_block": "paragraph",
}


class MarkdownLoader:
    """Markdown via markdown-it: headings become the section of the blocks below them.

    Block text is the Markdown source of the block, so offsets point into the file exactly.
    """

    extensions: tuple[str, ...] = (".md", ".markdown")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._md = MarkdownIt("commonmark").enable("table")

    def load(self, path: Path) -> Document:
        text, encoding = decode_text(read_bytes(path, self.max_bytes), path)
        text = _normalise_newlines(text)
        if not text.strip():
            raise LoadError(path, "no text (file is blank)")
        lines = text.split("\n")
        line_starts = [0]
        for line in lines:
            line_starts.append(line_starts[-1] + len(line) + 1)

        headings: list[tuple[int, str]] = []  # (level, title) stack
        elements: list[Element] = []
        tokens = self._md.parse(text)
        for i, token in enumerate(tokens):
            if token.level != 0 or token.map is None:
                continue
            first, last = token.map
            start = line_starts[first]
            end = min(line_starts[last] - 1, len(text)) if last < len(line_starts) else len(text)
            if token.type == "heading_open":
                level = int(token.tag[1:])
                title = tokens[i + 1].content.strip()
                while headings and headings[-1][0] >= level:
                    headings.pop()
                headings.append((level, title))
                continue
            kind = _BLOCK_KINDS.get(token.type)
            if kind is None:
                continue
            block = text[start:end].strip("\n")
            if not block.strip():
                continue
            start = text.index(block, start)
            section = " > ".join(title for _, title in headings) or None
            elements.append(
                Element(
                    text=block,
                    kind=kind,
                    section=section,
                    start=start,
                    end=start + len(block),
                )
            )
        if not elements:
            raise LoadError(path, "no text (only headings or markup)")
        return Document(path=path, text=text, elements=elements, metadata={"encoding": encoding})
