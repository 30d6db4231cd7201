"""Summarizers write one short summary per paragraph, made for embedding and for display.

Spec strings: ``extractive`` (default, offline), ``none``, or an LLM through a Generator:
``hf:MODEL_ID_OR_PATH`` (with ``adapter=PATH`` for a PEFT LoRA), ``gguf:PATH`` (llama.cpp) and
``openai:MODEL`` (with ``base_url=URL``): see ``polisum.summarize.llm``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from polisum.summarize.extractive import ExtractiveSummarizer

__all__ = ["ExtractiveSummarizer", "Summarizer", "SummarizerError", "load_summarizer"]


class SummarizerError(RuntimeError):
    pass


@runtime_checkable
class Summarizer(Protocol):
    """``name`` identifies model, prompt and settings; it keys the summary cache."""

    name: str

    def summarize(self, texts: list[str]) -> list[str]: ...


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
        except (GeneratorError, ValueError) as exc:
            raise SummarizerError(f"summarizer '{spec}': {exc}") from exc
    raise SummarizerError(
        f"unknown summarizer '{spec}' (expected extractive, none, hf:MODEL, gguf:PATH or "
        "openai:MODEL)"
    )
