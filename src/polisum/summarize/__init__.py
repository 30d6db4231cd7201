"""Summarizers write one short summary per paragraph, made for embedding and for display.

Spec strings: ``extractive`` (default, offline), ``none``, or an LLM through a Generator:
``hf:MODEL_ID_OR_PATH`` (with ``adapter=PATH`` for a PEFT LoRA), ``gguf:PATH`` (llama.cpp) and
``openai:MODEL`` (with ``base_url=URL``): see ``polisum.summarize.llm``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from polisum.errors import PolisumError
from polisum.summarize.extractive import ExtractiveSummarizer
from polisum.summarize.result import SummaryResult

__all__ = [
    "ExtractiveSummarizer",
    "Summarizer",
    "SummarizerError",
    "SummaryResult",
    "load_summarizer",
    "summarize_detailed",
]


class SummarizerError(PolisumError, RuntimeError):
    pass


@runtime_checkable
class Summarizer(Protocol):
    """``name`` identifies model, prompt and settings; it keys the summary cache."""

    name: str

    def summarize(self, texts: list[str]) -> list[str]: ...


def summarize_detailed(summarizer: Summarizer, texts: list[str]) -> list[SummaryResult]:
    """Summaries with their provenance, from any summarizer: LLM summarizers report fallbacks
    and guard results themselves; the rest are plain extractive summaries."""
    detailed = getattr(summarizer, "summarize_detailed", None)
    if detailed is not None:
        return list(detailed(texts))
    return [SummaryResult(s, method="extractive") for s in summarizer.summarize(texts)]


def load_summarizer(
    spec: str = "extractive",
    *,
    adapter: str | None = None,
    base_url: str | None = None,
    **options: Any,
) -> Summarizer | None:
    """Returns None for ``none``: chunks are then indexed without summaries.

    ``options`` go to the LLMSummarizer (``max_new_tokens``, ``guard``, ``prompt_version``) or,
    for the rest, to the generator backend (``dtype``, ``batch_size``, ``concurrency``, ...)."""
    kind, _, _arg = spec.strip().partition(":")
    if kind == "extractive":
        return ExtractiveSummarizer()
    if kind == "none":
        return None
    if kind in ("hf", "gguf", "openai"):
        from polisum.generate import GeneratorError, load_generator
        from polisum.summarize.llm import LLMSummarizer

        summary_keys = ("max_new_tokens", "guard", "prompt_version", "max_sentences")
        summary_options = {k: options.pop(k) for k in summary_keys if k in options}
        try:
            generator = load_generator(spec, adapter=adapter, base_url=base_url, **options)
            return LLMSummarizer(generator, **summary_options)
        except (GeneratorError, ValueError, ImportError) as exc:
            raise SummarizerError(f"summarizer '{spec}': {exc}") from exc
    raise SummarizerError(
        f"unknown summarizer '{spec}' (expected extractive, none, hf:MODEL, gguf:PATH or "
        "openai:MODEL)"
    )
