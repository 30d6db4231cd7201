"""HTML with lxml's HTML parser (libxml2): <h1>–<h6> → sections, lists, <table> → " | " rows.

The bytes are decoded here: a ``<meta charset>`` wins, otherwise the same detection as for text
files (BOM, UTF-8, then CP949/EUC-KR for older Korean pages, CP1252 and others by
charset-normalizer).

**Depth.** libxml2 stops building the tree 256 elements deep unless asked for its "huge"
mode, and silently drops everything below: old Korean pages with hundreds of unclosed
``<font>``/``<div>`` tags lost most of their text that way. The parser here runs in huge mode
(2048 levels). A page deeper than that is read again by the standard library's tokenizer,
which keeps no tree and so has no depth limit: all text, as plain paragraphs, and the document
says so in ``metadata["warnings"]``.

**Bounds.** At most :data:`MAX_HTML_BYTES` of markup and :data:`MAX_HTML_ELEMENTS` elements
(counted while parsing); walks are iterative, so nesting depth costs no Python stack.

**Boilerplate.** Scripts, styles, templates, embedded objects, form controls, hidden elements
and inline-XBRL headers never show as text and are dropped. Navigation (``<nav>``,
``role=navigation``) and page-level ``<header>``/``<footer>`` are dropped too unless that
leaves no text. A table used for page layout (one column, or a cell holding a heading or long
text) is read as the paragraphs in its cells, not as rows.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes
from lxml import etree

from polisum.loaders.base import DEFAULT_MAX_BYTES, LoadError, check_readable, one_line, read_bytes
from polisum.loaders.structure import Part, build_document, clean_inline, sectioned_blocks
from polisum.loaders.tables import html_table_grid, inline_table_text, own_rows, rows_to_text
from polisum.loaders.text import decode_text
from polisum.types import Document, ElementKind

MAX_HTML_BYTES = 64 * 1024 * 1024
MAX_HTML_ELEMENTS = 1_000_000
LIBXML2_HUGE_DEPTH = 2048
# Cells longer than this mark a table as page layout rather than data.
LAYOUT_CELL_CHARS = 1000
# Tables nested in data cells deeper than this are written as plain text.
MAX_INLINE_TABLE_DEPTH = 8
_FEED_CHUNK = 1024 * 1024

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# Labels that browsers treat as a superset encoding (WHATWG): EUC-KR pages are decoded as CP949.
_ALIASES = {"euc-kr": "cp949", "ks_c_5601-1987": "cp949", "x-windows-949": "cp949"}

# Latin-script single-byte code pages charset-normalizer may name for a Western page.
_LATIN_CODE_PAGES = {
    *("cp1250", "cp1252", "cp1254", "cp1257", "cp775", "cp850", "cp857", "cp858", "latin_1"),
    *("iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_13", "iso8859_15"),
    *("iso8859_16", "mac_iceland", "mac_latin2", "mac_roman", "mac_turkish"),
}
_DROP = {
    *("script", "style", "noscript", "template", "head", "title", "iframe", "object", "embed"),
    *("svg", "math", "canvas", "audio", "video", "select", "textarea", "button", "ix:header"),
}
_CHROME_ROLES = {"navigation", "banner", "contentinfo"}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK = {
    *("address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details"),
    *("dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form"),
    *("header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "nav", "ol", "p", "pre"),
    *("section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"),
    *_HEADINGS,
}
_SPACE = re.compile(r"[ \t\n\r\f]+")
_string = etree.XPath("string()")


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
    text, encoding = decode_text(data, path)
    # Pages that declare nothing default to windows-1252 in browsers (WHATWG). On short Western
    # text charset-normalizer ranks cp1250 first but lists cp1252 as plausible; Central
    # European text decodes as cp1252 too but is not listed.
    if (
        encoding in _LATIN_CODE_PAGES
        and encoding != "cp1252"
        and any(match.encoding == "cp1252" for match in from_bytes(data))
    ):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    return text, encoding


def parse_html(text: str, path: Path) -> tuple[Any, bool]:
    """(root element or None, whether libxml2 cut the tree at its depth limit)."""
    parser = etree.HTMLPullParser(
        events=("start",),
        encoding="utf-8",
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
        no_network=True,
    )
    data = text.encode("utf-8")
    count = 0
    try:
        for at in range(0, len(data), _FEED_CHUNK):
            parser.feed(data[at : at + _FEED_CHUNK])
            count += sum(1 for _ in parser.read_events())
            if count > MAX_HTML_ELEMENTS:
                raise LoadError(path, f"HTML has more than {MAX_HTML_ELEMENTS:,} elements")
        root = parser.close()
    except etree.LxmlError as exc:
        raise LoadError(path, f"unreadable HTML ({one_line(exc)})") from exc
    cut = any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.feed_error_log)
    return root, cut


class _TreeReader:
    """Parts of a parsed page in reading order (iterative walk: any depth)."""

    def __init__(self, drop_chrome: bool) -> None:
        self.drop_chrome = drop_chrome
        self.parts: list[Part] = []
        self._buf: list[str] = []
        self._in_list = 0
        self._in_pre = 0

    def read(self, root: Any) -> list[Part]:
        walker = etree.iterwalk(root, events=("start", "end"))
        skipped: set[Any] = set()  # read whole at their start: only their tail is left
        for event, el in walker:
            tag = el.tag if isinstance(el.tag, str) else ""
            if event == "end":
                if el in skipped:
                    skipped.discard(el)
                elif tag in _BLOCK:
                    self._flush("code" if tag == "pre" else None)
                    self._in_list -= tag == "li"
                    self._in_pre -= tag == "pre"
                self._add(el.tail)
                continue
            if not tag or self._dropped(el):
                skipped.add(el)
                walker.skip_subtree()
            elif tag in _HEADINGS or (tag == "table" and not _is_layout(el)):
                self._flush()
                if tag == "table":
                    self._table(el)
                else:
                    text = self.inline_text(el)
                    self.parts.append(Part("paragraph", text, level=_HEADINGS[tag]))
                skipped.add(el)
                walker.skip_subtree()
            else:
                if tag == "br":
                    self._buf.append("\n")
                elif tag in _BLOCK:
                    self._flush()
                self._in_list += tag == "li"
                self._in_pre += tag == "pre"
                self._add(el.text)
        self._flush()
        return self.parts

    def _add(self, text: str | None) -> None:
        if text:
            self._buf.append(text if self._in_pre else _SPACE.sub(" ", text))

    def _flush(self, kind: ElementKind | None = None) -> None:
        if kind == "code":  # <pre>: spaces and blank lines are the content
            text = "\n".join(line.rstrip() for line in "".join(self._buf).split("\n")).strip("\n")
        else:
            lines = (clean_inline(line) for line in "".join(self._buf).split("\n"))
            text = "\n".join(line for line in lines if line)
        self._buf = []
        if text:
            kind = kind or ("list" if self._in_list > 0 else "paragraph")
            self.parts.append(Part(kind, text))

    def _dropped(self, el: Any) -> bool:
        if el.tag in _DROP or el.get("hidden") is not None:
            return True
        if not self.drop_chrome:
            return False
        if el.tag == "nav" or el.get("role") in _CHROME_ROLES:
            return True
        if el.tag in ("header", "footer"):  # page chrome, not an article's own header
            return not any(a.tag in ("article", "main") for a in el.iterancestors())
        return False

    def _table(self, table: Any) -> None:
        caption = table.find("caption")
        if caption is not None:
            self.parts.append(Part("paragraph", self.inline_text(caption)))
        self.parts.append(Part("table", rows_to_text(self.grid(table, 0))))

    def grid(self, table: Any, depth: int) -> list[list[str | None]]:
        return html_table_grid(table, lambda cell: self.inline_text(cell, depth))

    def inline_text(self, el: Any, depth: int = 0) -> str:
        """All text inside ``el`` on one line; a table inside it written inline."""
        parts: list[str] = []
        walker = etree.iterwalk(el, events=("start", "end"))
        for event, node in walker:
            tag = node.tag if isinstance(node.tag, str) else ""
            if event == "end":
                if node is el:
                    break
                parts.append(" " if tag in _BLOCK else "")
                parts.append(node.tail or "")
            elif node is not el and (not tag or self._dropped(node)):
                walker.skip_subtree()
            elif node is not el and tag == "table" and depth < MAX_INLINE_TABLE_DEPTH:
                parts.append(" " + inline_table_text(self.grid(node, depth + 1)) + " ")
                walker.skip_subtree()
            else:
                parts.append(" " if tag in _BLOCK or tag == "br" else "")
                parts.append(node.text or "")
        return clean_inline(_SPACE.sub(" ", "".join(parts)))


def _is_layout(table: Any) -> bool:
    """A table used to lay out a page: one column, or a cell with a heading or long text."""
    rows = [list(tr.iterchildren("td", "th")) for tr in own_rows(table)]
    if all(len(cells) <= 1 for cells in rows):
        return True
    cells = [cell for row in rows for cell in row]
    return any(
        len(_string(cell)) > LAYOUT_CELL_CHARS or any(True for _ in cell.iter(*_HEADINGS))
        for cell in cells
    )


class _FlatReader(HTMLParser):
    """The standard library's tokenizer: text in order, paragraphs at block tags, headings
    kept; no tree, so no depth limit. For pages nested deeper than libxml2 builds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[Part] = []
        self._buf: list[str] = []
        self._skip = 0
        self._level: int | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "title"):
            self._skip += 1
        elif tag in _BLOCK:
            self._flush()
            self._level = _HEADINGS.get(tag)
        elif tag == "br":
            self._buf.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._buf.append(_SPACE.sub(" ", data))

    def _flush(self) -> None:
        lines = (clean_inline(line) for line in "".join(self._buf).split("\n"))
        text = "\n".join(line for line in lines if line)
        if text:
            self.parts.append(Part("paragraph", text, level=self._level))
        self._buf = []
        self._level = None


class HtmlLoader:
    extensions: tuple[str, ...] = (".html", ".htm", ".xhtml")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def load(self, path: Path) -> Document:
        size = check_readable(path, self.max_bytes)
        if size > MAX_HTML_BYTES:
            raise LoadError(
                path, f"HTML too large to parse ({size / 2**20:.0f} MiB > limit 64 MiB)"
            )
        text, encoding = decode_html(read_bytes(path, self.max_bytes), path)
        if not text.strip():
            raise LoadError(path, "no text (file is blank)")
        metadata: dict[str, Any] = {"format": "html", "encoding": encoding}
        root, cut = parse_html(text, path)
        if cut:
            flat = _FlatReader()
            flat.feed(text)
            flat.close()
            flat._flush()
            parts = flat.parts
            metadata["warnings"] = [
                f"nested deeper than {LIBXML2_HUGE_DEPTH} elements: read as plain paragraphs "
                "(tables and lists not kept)"
            ]
        elif root is None:
            parts = []
        else:
            parts = _TreeReader(drop_chrome=True).read(root)
            if not any(p.text.strip() for p in parts):  # all of it was navigation: keep it
                parts = _TreeReader(drop_chrome=False).read(root)
        return build_document(path, sectioned_blocks(parts), metadata, what="HTML")
