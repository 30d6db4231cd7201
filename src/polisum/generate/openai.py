"""OpenAI-compatible backend: vLLM, Ollama, llama.cpp's server, TGI, OpenAI itself.

Requests go through the ``openai`` client: timeouts, retries with exponential backoff and jitter
on timeouts, connection errors, 408/409/429 and 5xx (``Retry-After`` honoured), server-sent-event
parsing. Conversations of a batch are sent as concurrent requests (bounded by ``concurrency``: the
server batches them on its side). On top of the client, this module makes every failure a
GeneratorError and never a shorter answer: an error event in the middle of a stream, a stream that
ends without the server saying it finished, or a 200 answer that carries an error.

Credentials never leave the request: the generator's ``name`` (a cache key, shown in status and
logs) and every error message go through :func:`polisum.security.redact_url` and mask the API
key, since a server may echo it back in its error text.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from polisum.generate import (
    GenerationConfig,
    GenerationResult,
    GeneratorError,
    Message,
    complete_concurrently,
)
from polisum.generate.special_tokens import CHAT_TEMPLATE_MARKERS, neutralize_messages
from polisum.security import redact, redact_url

DEFAULT_CONTEXT = 4096


class OpenAIGenerator:
    """``openai:MODEL`` at ``base_url`` (default ``$OPENAI_BASE_URL``).

    The API key is ``api_key``, else ``$POLISUM_API_KEY``, else ``$OPENAI_API_KEY``; without one
    no Authorization header is sent (local servers need none). ``user:password@`` in the URL is
    sent as HTTP basic auth instead of the key. ``max_retries`` counts retries after the first
    attempt. The server's model is unknown here, so the common chat-template markers (plus
    ``extra_special_tokens``) are neutralised in message contents."""

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
        context_length: int | None = None,
        extra_special_tokens: Sequence[str] = (),
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise GeneratorError(
                "the openai: generator needs the openai package: pip install 'polisum[llm]'"
            ) from exc
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
        self._context_length = context_length
        self.special_tokens = CHAT_TEMPLATE_MARKERS | frozenset(extra_special_tokens)
        url, user, password = _split_userinfo(self.base_url)
        key = api_key or os.environ.get("POLISUM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        # Sent with each request: basic auth from the URL, or no Authorization header at all
        # when there is no key (the client insists on one; Omit drops the header built from it).
        self._auth: dict[str, Any] = {}
        basic = ""
        if user or password:
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._auth["Authorization"] = f"Basic {basic}"
        elif not key:
            self._auth["Authorization"] = openai.Omit()
        self._secrets = [s for s in (key, password, basic) if s]
        self._client = openai.OpenAI(
            base_url=url,
            api_key=key or "unused",
            timeout=openai.Timeout(timeout, connect=connect_timeout),
            max_retries=self.max_retries,
        )
        # The server decides what a model name means: its address is part of the cache key.
        self.name = f"openai:{model}@{redact_url(self.base_url)}"

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
        """Text pieces as the server sends them. The client retries until the stream starts
        (a half-streamed answer cannot be taken back); after that, an error event, a broken
        connection, or an end without a ``finish_reason`` raises GeneratorError."""
        import openai

        config = config or GenerationConfig()
        finished = False
        try:
            with self._client.chat.completions.create(
                **self._body(conversation, config), stream=True
            ) as chunks:
                for chunk in chunks:
                    error = _payload_error(chunk)
                    if error:
                        raise GeneratorError(self._message(f"error in the stream: {error}"))
                    for choice in getattr(chunk, "choices", None) or []:
                        piece = choice.delta.content if choice.delta else None
                        if piece:
                            yield piece
                        finished = finished or bool(choice.finish_reason)
        except openai.OpenAIError as exc:
            # Not chained: the client's exception holds the server's unredacted error text,
            # and a printed traceback would show it. _describe keeps what matters.
            raise GeneratorError(self._describe(exc)) from None
        if not finished:
            raise GeneratorError(
                self._message("the stream ended before the server finished the answer")
            )

    # -- requests -----------------------------------------------------------------------------
    def _body(self, conversation: list[Message], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "extra_headers": self._auth,
            "model": self.model,
            "messages": neutralize_messages(conversation, self.special_tokens),
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
        import openai

        try:
            completion = self._client.chat.completions.create(**self._body(conversation, config))
        except openai.OpenAIError as exc:
            raise GeneratorError(self._describe(exc)) from None  # unchained: see stream()
        error = _payload_error(completion)
        choices = getattr(completion, "choices", None)
        if error or not choices:
            raise GeneratorError(self._message(error or "the answer holds no completion"))
        choice = choices[0]
        message = getattr(choice, "message", None)
        usage = getattr(completion, "usage", None)
        return GenerationResult(
            text=((message.content if message else None) or "").strip(),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=choice.finish_reason,
        )

    def _server_context_length(self) -> int | None:
        """vLLM reports ``max_model_len`` per model, llama.cpp ``meta.n_ctx`` (what it serves)."""
        import openai

        try:
            client = self._client.with_options(timeout=5.0, max_retries=0)
            page = client.models.list(extra_headers=self._auth)
            models = [m.model_dump() for m in page.data]
        except (openai.OpenAIError, AttributeError, TypeError, ValueError):
            return None
        for entry in models:
            if entry.get("id") == self.model or len(models) == 1:
                meta = entry.get("meta") or {}
                for value in (
                    entry.get("max_model_len"),
                    meta.get("n_ctx") if isinstance(meta, dict) else None,
                    meta.get("n_ctx_train") if isinstance(meta, dict) else None,
                    entry.get("context_length"),
                ):
                    if isinstance(value, int) and value > 0:
                        return value
        return None

    # -- errors -------------------------------------------------------------------------------
    def _message(self, text: str) -> str:
        """``name: text`` with URLs redacted and the credentials masked."""
        return redact(f"{self.name}: {text}", self._secrets)

    def _describe(self, exc: Exception) -> str:
        import openai

        attempts = f"after {self.max_retries + 1} attempts"
        if isinstance(exc, openai.APITimeoutError):
            return self._message(f"request timed out ({attempts})")
        if isinstance(exc, openai.APIConnectionError):
            return self._message(f"cannot connect to the server ({attempts}): {_cause(exc)}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retried = f" ({attempts})" if status in (408, 409, 429) or status >= 500 else ""
            return self._message(f"HTTP {status}: {_server_message(exc)}{retried}")
        if isinstance(exc, openai.APIError):  # an error event in the stream
            return self._message(f"error in the stream: {_server_message(exc)}")
        return self._message(str(exc))


def _split_userinfo(url: str) -> tuple[str, str, str]:
    """(url without ``user:password@``, user, password)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, "", ""
    host = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(parts.username or ""), unquote(parts.password or "")


def _payload_error(payload: Any) -> str | None:
    """The error a 200 answer or a stream chunk carries instead of a completion: vLLM's
    ``{"object": "error", "message": ...}`` or ``{"error": ...}`` (TGI sends a string)."""
    extra = getattr(payload, "model_extra", None) or {}
    error = extra.get("error")
    if error:
        return str(error.get("message") or error) if isinstance(error, dict) else str(error)
    if getattr(payload, "object", None) == "error":
        return str(extra.get("message") or "the server reported an error")
    return None


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    if isinstance(body, str) and body:
        return body[:300]
    response = getattr(exc, "response", None)
    if response is not None:
        return response.text[:300] or response.reason_phrase
    return str(getattr(exc, "message", "") or exc)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)
