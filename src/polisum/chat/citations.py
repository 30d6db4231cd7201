"""Citation markers in generated answers: ``[1]``, ``[1, 3]``, ``[2-4]``, ``[1][2]``.

A number is valid when it names a passage that was in the prompt; anything else is reported so
that callers can flag the answer instead of showing a source that was never given to the model.

Only the answerer's own markers count: a document that ends "...500,000 won [2]." would
otherwise cite passage [2] for a claim that passage never made. Passage text therefore goes
through :func:`neutralize_markers` (``[2]`` → ``(2)``) before it reaches a prompt or a quoted
answer, so the model never sees such a marker to copy and a quote never carries one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One bracket holding numbers separated by commas (ASCII or full-width) or a dash range.
_MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*(?:[,，]|[-–~])\s*\d{1,3})*)\s*\]")
_PART = re.compile(r"(\d{1,3})\s*(?:[-–~]\s*(\d{1,3}))?")


@dataclass(frozen=True)
class CitationCheck:
    """Cited numbers in order of first use, split into those that exist and those that don't."""

    valid: list[int]
    invalid: list[int]

    @property
    def ok(self) -> bool:
        return bool(self.valid) and not self.invalid


def parse_citations(text: str) -> list[int]:
    """Every passage number cited in ``text``, in order of first appearance, without repeats."""
    seen: list[int] = []
    for marker in _MARKER.finditer(text):
        for part in _PART.finditer(marker.group(1)):
            lo = int(part.group(1))
            hi = int(part.group(2)) if part.group(2) else lo
            # A reversed or huge range is a typo, not a request for 1,000 citations.
            numbers = range(lo, hi + 1) if 0 <= hi - lo <= 20 else (lo, hi)
            for n in numbers:
                if n not in seen:
                    seen.append(n)
    return seen


def neutralize_markers(text: str) -> str:
    """``text`` with every citation-shaped marker turned into parentheses (``[2]`` → ``(2)``,
    ``[1, 3]`` → ``(1, 3)``): still readable, never parsed as a citation."""
    return _MARKER.sub(lambda m: f"({m.group(1)})", text)


def check_citations(text: str, n_passages: int) -> CitationCheck:
    """Split the citations of ``text`` into valid (1..n_passages) and invalid numbers."""
    cited = parse_citations(text)
    return CitationCheck(
        valid=[n for n in cited if 1 <= n <= n_passages],
        invalid=[n for n in cited if not 1 <= n <= n_passages],
    )
