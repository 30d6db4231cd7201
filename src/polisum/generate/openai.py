"""OpenAI-compatible HTTP backend: vLLM, Ollama, llama.cpp's server, TGI, OpenAI itself.

Conversations of a batch are sent as concurrent ``/chat/completions`` requests (bounded by
``concurrency``: the server batches them on its side). Timeouts, connection errors, 429 and 5xx
answers are retried with exponential backoff and jitter; other 4xx answers fail at once with the
server's message, since repeating them cannot help.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx

from polisum.generate import (
    GenerationConfig,
    GenerationResult,
    GeneratorError,
    Message,
    complete_concurrently,
)

DEFAULT_CONTEXT = 4096


class _Retryable(Exception):
    pass


class OpenAIGenerator:
    """``openai:MODEL`` at ``base_url`` (default ``$OPENAI_BASE_URL``)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        context_length: int | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise GeneratorError(
                f"openai:{model} needs a server address: --base-url URL (e.g. "
                "http://localhost:8000/v1) or $OPENAI_BASE_URL"
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.concurrency = max(1, concurrency)
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self._context_length = context_length
        key = api_key or os.environ.get("POLISUM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        # The server decides what a model name means: its address is part of the cache key.
        self.name = f"openai:{model}@{self.base_url}"

    def close(self) -> None:
        self._client.close()

    # -- Generator ----------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        if self._context_length is None:
            self._context_length = self._server_context_length() or DEFAULT_CONTEXT
        return self._context_length

    def count_tokens(self, text: str) -> int:
        """An estimate (the tokenizer lives on the server): ~4 bytes of UTF-8 per token for
        English, ~1 Hangul syllable (3 bytes) per token for Korean; errs on the high side."""
        return max(1, len(text.encode("utf-8")) // 3)

    def generate(
        self, conversations: list[list[Message]], config: GenerationConfig | None = None
    ) -> list[GenerationResult]:
        config = config or GenerationConfig()
        return complete_concurrently(
            self.name, conversations, lambda c: self._complete(c, config), self.concurrency
        )

    def stream(
        self, conversation: list[Message], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        config = config or GenerationConfig()
        body = {**self._body(conversation, config), "stream": True}
        # Retries only before the first piece: a half-streamed answer cannot be taken back.
        for attempt in range(self.max_retries + 1):
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise_for(response)
                    for line in response.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        try:
                            choice = json.loads(data)["choices"][0]
                        except (ValueError, KeyError, IndexError):
                            continue
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
                    return
            except (_Retryable, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.max_retries:
                    raise GeneratorError(f"{self.name}: {_describe(exc)}") from exc
                self._sleep(attempt)

    # -- HTTP ---------------------------------------------------------------------------------
    def _body(self, conversation: list[Message], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in conversation],
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if config.seed is not None:
            body["seed"] = config.seed
        return body

    def _complete(self, conversation: list[Message], config: GenerationConfig) -> GenerationResult:
        body = self._body(conversation, config)
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post("/chat/completions", json=body)
                if response.status_code >= 400:
                    self._raise_for(response)
                return _parse_completion(response, self.name)
            except (_Retryable, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.max_retries:
                    raise GeneratorError(
                        f"{self.name}: {_describe(exc)} (after {attempt + 1} attempts)"
                    ) from exc
                self._sleep(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_for(self, response: httpx.Response) -> None:
        message = _server_message(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}: {message}")
        raise GeneratorError(f"{self.name}: HTTP {response.status_code}: {message}")

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))

    def _server_context_length(self) -> int | None:
        """vLLM reports ``max_model_len`` per model, llama.cpp ``meta.n_ctx`` (what it serves)."""
        try:
            response = self._client.get("/models", timeout=5.0)
            models = response.json().get("data", [])
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        for entry in models:
            if not isinstance(entry, dict):
                continue
            if entry.get("id") == self.model or len(models) == 1:
                meta = entry.get("meta") or {}
                for value in (
                    entry.get("max_model_len"),
                    meta.get("n_ctx"),
                    meta.get("n_ctx_train"),
                    entry.get("context_length"),
                ):
                    if isinstance(value, int) and value > 0:
                        return value
        return None


def _parse_completion(response: httpx.Response, name: str) -> GenerationResult:
    try:
        data = response.json()
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise GeneratorError(
            f"{name}: not an OpenAI chat completion: {response.text[:200]!r}"
        ) from exc
    usage = data.get("usage") or {}
    return GenerationResult(
        text=text.strip(),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=choice.get("finish_reason"),
    )


def _server_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error:
            return str(error)
    except (ValueError, AttributeError):
        pass
    return response.text[:200] or response.reason_phrase


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"request timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to the server: {exc}"
    return str(exc)
