"""Summarizers write one short summary per paragraph, made for embedding and for display.

Spec strings: ``extractive`` (default, offline) or ``none``. LLM backends register here too.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from polisum.summarize.extractive import ExtractiveSummarizer

__all__ = ["ExtractiveSummarizer", "Summarizer", "SummarizerError", "load_summarizer"]


class SummarizerError(RuntimeError):
    pass


@runtime_checkable
class Summarizer(Protocol):
    """``name`` identifies model, prompt and settings; it keys the summary cache."""

    name: str

    def summarize(self, texts: list[str]) -> list[str]: ...


def load_summarizer(spec: str = "extractive") -> Summarizer | None:
    """Returns None for ``none``: chunks are then indexed without summaries."""
    kind, _, _arg = spec.strip().partition(":")
    if kind == "extractive":
        return ExtractiveSummarizer()
    if kind == "none":
        return None
    raise SummarizerError(f"unknown summarizer '{spec}' (expected extractive or none)")
