"""Chunker: elements → paragraph chunks of a size that embeds and reads well."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
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


class ParagraphChunker:
    """Blank-line paragraphs; tiny ones merge with neighbours in the same section and page,
    oversized ones split on sentence boundaries (Kiwi, which also handles English).

    ``min_chars``/``max_chars`` count characters: a Korean character carries about as much as
    a short English word, so the same limits keep both languages within the embedder's window.
    """

    def __init__(self, min_chars: int = 120, max_chars: int = 1200) -> None:
        if not 0 <= min_chars < max_chars:
            raise ValueError("need 0 <= min_chars < max_chars")
        self.min_chars = min_chars
        self.max_chars = max_chars

    def chunk(self, document: Document, source: str) -> list[Chunk]:
        pieces: list[_Piece] = []
        for element in document.elements:
            for piece in self._paragraphs(element):
                pieces.extend(self._split_oversized(piece))
        merged = self._merge_tiny(pieces)
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

    def _split_oversized(self, piece: _Piece) -> list[_Piece]:
        if len(piece.text) <= self.max_chars:
            return [piece]
        out: list[_Piece] = []
        cur_start: int | None = None
        cur_end = 0
        for sent in split_sentences(piece.text):
            for s_start, s_end in self._hard_wrap(piece.text, sent.start, sent.end):
                if cur_start is not None and s_end - cur_start > self.max_chars:
                    out.append(self._slice(piece, cur_start, cur_end))
                    cur_start = None
                if cur_start is None:
                    cur_start = s_start
                cur_end = s_end
        if cur_start is not None:
            out.append(self._slice(piece, cur_start, cur_end))
        return out

    def _hard_wrap(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """A sentence longer than max_chars (tables, lists without punctuation) breaks at spaces."""
        spans = []
        while end - start > self.max_chars:
            cut = text.rfind(" ", start + self.max_chars // 2, start + self.max_chars)
            if cut <= start:
                cut = start + self.max_chars
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
                and (len(prev.text) < self.min_chars or len(p.text) < self.min_chars)
                and len(prev.text) + len(p.text) + 2 <= self.max_chars
            ):
                out[-1] = _Piece(
                    prev.text + "\n\n" + p.text, prev.section, prev.page, prev.start, p.end
                )
            else:
                out.append(p)
        return out
