"""Chunker: elements → paragraph chunks of a size that embeds and reads well."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Protocol

from polisum.text import split_sentences
from polisum.types import Chunk, Document, Element

_BLANK_LINE = re.compile(r"\n[ \t]*\n+")


class Chunker(Protocol):
    def chunk(self, document: Document, source: str) -> list[Chunk]: ...


@dataclass
class _Piece:
    text: str
    section: str | None
    page: int | None
    start: int
    end: int
    headed: bool = False  # starts with the heading(s) of its section


class ParagraphChunker:
    """Blank-line paragraphs; tiny ones merge with neighbours in the same section and page,
    oversized ones split on sentence boundaries (Kiwi, which also handles English).

    A heading element never makes a chunk of its own: it opens the chunk of the text it heads
    (consecutive headings stack: "Ⅱ. 추진계획\n\n1. 배경\n\n..."), so a query for a title
    finds the paragraphs under it and no title-only chunk outranks them. A paragraph still
    tiny after merging on its page merges with a neighbour of its section on the next or
    previous page.

    ``min_chars``/``max_chars`` count characters: a Korean character carries about as much as
    a short English word, so the same limits keep both languages within the embedder's window.
    """

    def __init__(self, min_chars: int = 120, max_chars: int = 1200) -> None:
        if not 0 <= min_chars < max_chars:
            raise ValueError("need 0 <= min_chars < max_chars")
        self.min_chars = min_chars
        self.max_chars = max_chars

    def chunk(self, document: Document, source: str) -> list[Chunk]:
        merged = self._merge_across_pages(self._merge_tiny(self._pieces(document)))
        seen: Counter[tuple[str | None, str]] = Counter()
        chunks = []
        for ordinal, p in enumerate(merged):
            occurrence = seen[(p.section, p.text)]
            seen[(p.section, p.text)] += 1
            chunks.append(
                Chunk(
                    text=p.text,
                    source=source,
                    section=p.section,
                    page=p.page,
                    start=p.start,
                    end=p.end,
                    ordinal=ordinal,
                    chunk_id=Chunk.make_id(source, p.section, p.text, occurrence),
                )
            )
        return chunks

    def _pieces(self, document: Document) -> list[_Piece]:
        """Paragraph pieces of at most ``max_chars``; headings are prefixed to the first piece
        of the text after them (which is split shorter to leave them room)."""
        pieces: list[_Piece] = []
        heads: list[_Piece] = []
        for element in document.elements:
            for piece in self._paragraphs(element):
                if element.kind == "heading":
                    heads.append(piece)
                    continue
                room = self.max_chars - sum(len(h.text) + 2 for h in heads)
                if heads and room < self.max_chars // 2:  # a heading pile-up: let it stand
                    pieces.extend(self._split_oversized(self._joined(heads)))
                    heads, room = [], self.max_chars
                if heads and 0 < len(piece.text) - room < self.min_chars:
                    room = len(piece.text) // 2  # halves, rather than a tiny tail
                parts = self._split_oversized(piece, room)
                if heads:
                    parts[0] = self._joined([*heads, parts[0]], headed=True)
                    heads = []
                pieces.extend(parts)
        if heads:  # headings with no text after them close the last chunk, if there is room
            tail = self._joined(heads)
            last = pieces[-1] if pieces else None
            if last is not None and len(last.text) + len(tail.text) + 2 <= self.max_chars:
                joined = self._joined([last, tail], headed=last.headed)
                pieces[-1] = replace(joined, section=last.section)
            else:
                pieces.extend(self._split_oversized(tail))
        return pieces

    @staticmethod
    def _joined(parts: list[_Piece], *, headed: bool = False) -> _Piece:
        """Consecutive pieces as one: the section of the last (the deepest heading path) and
        the page most of the text is on."""
        page = max(parts, key=lambda p: len(p.text)).page
        text = "\n\n".join(p.text for p in parts)
        return _Piece(text, parts[-1].section, page, parts[0].start, parts[-1].end, headed)

    def _paragraphs(self, element: Element) -> list[_Piece]:
        # Tables and code keep their line structure: a blank line inside them is not a break.
        if element.kind in ("table", "code"):
            parts = [(0, element.text)]
        else:
            parts, pos = [], 0
            for m in _BLANK_LINE.finditer(element.text):
                parts.append((pos, element.text[pos : m.start()]))
                pos = m.end()
            parts.append((pos, element.text[pos:]))
        out = []
        for offset, raw in parts:
            text = raw.strip()
            if not text:
                continue
            lead = len(raw) - len(raw.lstrip())
            start = element.start + offset + lead
            out.append(_Piece(text, element.section, element.page, start, start + len(text)))
        return out

    def _split_oversized(self, piece: _Piece, first: int | None = None) -> list[_Piece]:
        """Pieces of at most ``max_chars``, the first of at most ``first`` (room left by the
        headings that will open it)."""
        limit = self.max_chars if first is None else first
        if len(piece.text) <= limit:
            return [piece]
        out: list[_Piece] = []
        cur_start: int | None = None
        cur_end = 0
        for sent in split_sentences(piece.text):
            for s_start, s_end in self._hard_wrap(piece.text, sent.start, sent.end, limit):
                if cur_start is not None and s_end - cur_start > limit:
                    out.append(self._slice(piece, cur_start, cur_end))
                    cur_start, limit = None, self.max_chars
                if cur_start is None:
                    cur_start = s_start
                cur_end = s_end
        if cur_start is not None:
            out.append(self._slice(piece, cur_start, cur_end))
        return out

    def _hard_wrap(self, text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
        """A sentence longer than the limit (tables, lists without punctuation) breaks at
        spaces."""
        spans = []
        while end - start > limit:
            cut = text.rfind(" ", start + limit // 2, start + limit)
            if cut <= start:
                cut = start + limit
            limit = self.max_chars
            spans.append((start, cut))
            start = cut
            while start < end and text[start].isspace():
                start += 1
        if start < end:
            spans.append((start, end))
        return spans

    @staticmethod
    def _slice(piece: _Piece, start: int, end: int) -> _Piece:
        raw = piece.text[start:end]
        text = raw.strip()
        lead = len(raw) - len(raw.lstrip())
        abs_start = piece.start + start + lead
        return _Piece(text, piece.section, piece.page, abs_start, abs_start + len(text))

    def _merge_tiny(self, pieces: list[_Piece]) -> list[_Piece]:
        out: list[_Piece] = []
        for p in pieces:
            prev = out[-1] if out else None
            if (
                prev is not None
                and prev.section == p.section
                and prev.page == p.page
                and self._tiny_pair(prev, p)
            ):
                out[-1] = _Piece(
                    prev.text + "\n\n" + p.text,
                    prev.section,
                    prev.page,
                    prev.start,
                    p.end,
                    prev.headed,
                )
            else:
                out.append(p)
        return out

    def _tiny_pair(self, prev: _Piece, p: _Piece) -> bool:
        """Should ``p`` join ``prev``? One of them is tiny and together they fit; a piece that
        opens with its heading starts a chunk unless what is before it is tiny."""
        if len(prev.text) + len(p.text) + 2 > self.max_chars:
            return False
        if p.headed:
            return len(prev.text) < self.min_chars
        return len(prev.text) < self.min_chars or len(p.text) < self.min_chars

    def _merge_across_pages(self, pieces: list[_Piece]) -> list[_Piece]:
        """A piece still tiny after the same-page merge (a chart label, a short line at a page
        break) joins its section's piece on the previous page, else the one on the next."""
        out = list(pieces)
        i = 0
        while i < len(out):
            p = out[i]
            if len(p.text) >= self.min_chars or p.page is None:
                i += 1
                continue
            for j in (i - 1, i + 1):
                if 0 <= j < len(out) and out[j].section == p.section:
                    a, b = sorted((i, j))
                    if self._tiny_pair(out[a], out[b]):
                        out[a : b + 1] = [self._joined([out[a], out[b]], headed=out[a].headed)]
                        i = a
                        break
            else:
                i += 1
        return out
