"""A summary and how it was made: what the index stores next to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class SummaryResult:
    """A paragraph's summary and how it was made; ``info()`` is what the index stores next to
    it, and :meth:`from_info` reads it back from the summary cache."""

    summary: str
    method: Literal["llm", "extractive"] = "llm"
    fallback: str | None = None  # why the extractive summary was used instead
    dropped: list[str] = field(default_factory=list)  # sentences removed by the guard
    unsupported: list[str] = field(default_factory=list)  # numbers/entities not in the source
    truncated: bool = False
    sentences: int = 0  # generated sentences the guard checked
    unsupported_sentences: int = 0  # of those, how many had facts not in the source
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # False for fallbacks after a failed request: those are retried by the next ingest.
    cacheable: bool = True
    # An extractive summary's sentences as [start, end) character offsets into the paragraph:
    # the paragraph vector can then share the summary's encoding (polisum.ingest.vectors).
    spans: list[tuple[int, int]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.fallback:
            out["fallback"] = self.fallback
        if self.dropped:
            out["dropped"] = self.dropped
        if self.unsupported:
            out["unsupported"] = self.unsupported
        if self.truncated:
            out["truncated"] = True
        if self.sentences:
            out["sentences"] = self.sentences
            out["unsupported_sentences"] = self.unsupported_sentences
        if self.spans:
            out["spans"] = [list(span) for span in self.spans]
        return out

    @classmethod
    def from_info(cls, summary: str, info: dict[str, Any] | None) -> SummaryResult:
        info = info or {}
        return cls(
            summary=summary,
            method=info.get("method", "extractive"),
            fallback=info.get("fallback"),
            dropped=list(info.get("dropped", [])),
            unsupported=list(info.get("unsupported", [])),
            truncated=bool(info.get("truncated", False)),
            sentences=int(info.get("sentences", 0)),
            unsupported_sentences=int(info.get("unsupported_sentences", 0)),
            spans=[(int(a), int(b)) for a, b in info.get("spans", [])],
        )

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
