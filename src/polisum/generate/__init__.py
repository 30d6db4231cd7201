"""Generators: text generation behind one interface, shared by the summarizer and the chatbot.

Spec strings (CLI ``--summarizer``/``--generator``, polisum.toml, env):

- ``hf:MODEL_ID_OR_PATH`` — transformers (``polisum.generate.hf``), optional PEFT ``adapter``.
- ``gguf:PATH`` — llama.cpp on CPU (``polisum.generate.gguf``).
- ``openai:MODEL`` — any OpenAI-compatible server at ``base_url`` (``polisum.generate.openai``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from polisum.errors import PolisumError

__all__ = [
    "BatchGenerationError",
    "GenerationConfig",
    "GenerationResult",
    "Generator",
    "GeneratorError",
    "Message",
    "load_generator",
]


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class GeneratorError(PolisumError, RuntimeError):
    """A model could not be loaded or a generation failed; the message says which and why."""


class BatchGenerationError(GeneratorError):
    """Some conversations of a batch failed. ``results`` holds the ones that succeeded (None for
    the failures) and ``errors`` the reason of each failure (None for the successes), so a caller
    can keep the good ones and fall back for the rest."""

    def __init__(
        self,
        message: str,
        results: list[GenerationResult | None],
        errors: list[str | None],
    ) -> None:
        super().__init__(message)
        self.results = results
        self.errors = errors


def complete_concurrently(
    name: str,
    conversations: list[list[Message]],
    complete: Callable[[list[Message]], GenerationResult],
    max_workers: int,
) -> list[GenerationResult]:
    """Run ``complete`` on every conversation with up to ``max_workers`` in flight (servers batch
    concurrent requests); failures are collected, not raised one by one, so a caller keeps the
    good results of a partly failed batch (see BatchGenerationError)."""
    results: list[GenerationResult | None] = [None] * len(conversations)
    errors: list[str | None] = [None] * len(conversations)

    def one(i: int) -> None:
        try:
            results[i] = complete(conversations[i])
        except GeneratorError as exc:
            errors[i] = str(exc)

    if len(conversations) <= 1 or max_workers <= 1:
        for i in range(len(conversations)):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(conversations))) as pool:
            list(pool.map(one, range(len(conversations))))
    failed = [e for e in errors if e]
    if failed:
        raise BatchGenerationError(
            f"{name}: {len(failed)} of {len(conversations)} generations failed: {failed[0]}",
            results=results,
            errors=errors,
        )
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop", "length", ...
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """``name`` identifies backend, model and adapter (it keys caches, e.g. summaries).

    A generator may also have ``special_tokens: frozenset[str]``, the control tokens of its model
    (read with ``polisum.generate.special_tokens.special_tokens_of``, which adds the common
    chat-template markers); prompt builders neutralise them in untrusted text, and the backends
    neutralise them in every message content they are given."""

    name: str

    def generate(
        self, conversations: list[list[Message]], config: GenerationConfig | None = None
    ) -> list[GenerationResult]:
        """One result per conversation (batched where the backend can)."""
        ...

    def stream(
        self, conversation: list[Message], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        """Text pieces of one generation as they are produced."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's tokenizer (for prompt budgets)."""
        ...

    @property
    def context_length(self) -> int: ...


def load_generator(
    spec: str,
    *,
    adapter: str | None = None,
    base_url: str | None = None,
    **options: Any,
) -> Generator:
    """Build a generator from a spec string; see the module docstring."""
    kind, _, arg = spec.strip().partition(":")
    if not arg:
        raise GeneratorError(
            f"generator spec '{spec}' needs a model: hf:ID_OR_PATH, gguf:PATH or openai:MODEL"
        )
    if kind == "hf":
        from polisum.generate.hf import HFGenerator

        return HFGenerator(arg, adapter=adapter, **options)
    if kind == "gguf":
        from polisum.generate.gguf import GGUFGenerator

        return GGUFGenerator(arg, **options)
    if kind == "openai":
        from polisum.generate.openai import OpenAIGenerator

        return OpenAIGenerator(arg, base_url=base_url, **options)
    raise GeneratorError(f"unknown generator '{spec}' (expected hf:, gguf: or openai:)")
