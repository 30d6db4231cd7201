"""llama.cpp backend for GGUF files on CPU (or GPU offload), through ``xllamacpp``.

xllamacpp ships prebuilt llama.cpp wheels with the server's request handlers as Python calls:
the model is loaded once, requests go in as OpenAI chat-completion dicts, and the server's
continuous batching runs up to ``n_parallel`` conversations at once (one slot each). It also
listens on a loopback port, which ``count_tokens`` uses for the model's own tokenizer.

The server applies the chat template and tokenizes with special tokens parsed, so control tokens
inside message contents are neutralised first (polisum.generate.special_tokens): the template's
markers, and any other control token of the vocabulary that the model's tokenizer finds in a
content (xllamacpp does not expose the vocabulary; comparing the ids with and without special
parsing finds exactly the control tokens a text contains).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polisum.generate import (
    GenerationConfig,
    GenerationResult,
    GeneratorError,
    Message,
    complete_concurrently,
)
from polisum.generate._fingerprint import fingerprint
from polisum.generate.special_tokens import (
    neutralize,
    neutralize_messages,
    template_markers,
    usable_tokens,
)


class GGUFGenerator:
    """``gguf:PATH``: a GGUF model file run by llama.cpp."""

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        chat_template: str | None = None,
        verbose: bool = False,
    ) -> None:
        model = Path(path).expanduser()
        if not model.is_file():
            raise GeneratorError(f"{model}: no such GGUF file")
        with open(model, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise GeneratorError(f"{model}: not a GGUF file (bad magic bytes)")
        try:
            import xllamacpp
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise GeneratorError(
                "the gguf: generator needs xllamacpp: pip install 'polisum[llm]'"
            ) from exc
        # On a small shared CPU, more threads than physical cores make llama.cpp much slower
        # (spinning OpenMP workers), so default to half the visible cores.
        threads = n_threads or max(1, min(8, (os.cpu_count() or 2) // 2))
        params = xllamacpp.CommonParams()
        params.model.path = str(model)
        self.n_parallel = max(1, n_parallel)
        # llama.cpp splits n_ctx between the slots; n_ctx here is per conversation.
        params.n_ctx = n_ctx * self.n_parallel
        params.n_parallel = self.n_parallel
        params.n_gpu_layers = n_gpu_layers
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        if chat_template:
            params.chat_template = chat_template
        if not verbose:
            params.verbosity = -1
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:
            raise GeneratorError(f"{model}: llama.cpp could not load it: {exc}") from exc
        self._n_ctx = n_ctx
        self.path = model
        self.name = f"gguf:{fingerprint(str(model))}"
        self._lock = threading.Lock()
        # Grows when a content turns out to hold a control token the template does not name.
        self.special_tokens: frozenset[str] = self._template_tokens()

    def close(self) -> None:
        self._server = None

    # -- Generator ----------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """The model's tokenizer, through the server's loopback ``/tokenize`` endpoint."""
        return len(self._tokenize(text))

    def generate(
        self, conversations: list[list[Message]], config: GenerationConfig | None = None
    ) -> list[GenerationResult]:
        config = config or GenerationConfig()
        return complete_concurrently(
            self.name, conversations, lambda c: self._complete(c, config), self.n_parallel
        )

    def stream(
        self, conversation: list[Message], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        config = config or GenerationConfig()
        body = {**self._body(conversation, config), "stream": True}
        pieces: queue.Queue[Any] = queue.Queue()
        done = object()
        failure: list[str] = []

        def on_chunk(chunk: dict[str, Any]) -> None:
            if "error" in chunk:
                failure.append(_error_message(chunk))
                return
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    pieces.put(piece)

        def run() -> None:
            try:
                answer = self._server.handle_chat_completions(body, on_chunk)
                if isinstance(answer, dict) and "error" in answer:
                    failure.append(_error_message(answer))
            except Exception as exc:  # surfaced in the consumer's thread
                failure.append(str(exc))
            finally:
                pieces.put(done)

        threading.Thread(target=run, daemon=True).start()
        while (piece := pieces.get()) is not done:
            yield piece
        if failure:
            raise GeneratorError(f"{self.name}: {failure[0]}")

    # -- helpers ------------------------------------------------------------------------------
    def _body(self, conversation: list[Message], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": self._inert(conversation),
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if config.seed is not None:
            body["seed"] = config.seed
        return body

    def _inert(self, conversation: list[Message]) -> list[Message]:
        """The conversation with every control token in its contents neutralised."""
        messages = neutralize_messages(conversation, self.special_tokens)
        for message in messages:
            found = self._control_tokens_in(message["content"])
            if not found:
                continue
            with self._lock:
                self.special_tokens = self.special_tokens | found
            message["content"] = neutralize(message["content"], self.special_tokens)
            if self._control_tokens_in(message["content"]):  # pragma: no cover - a look-alike
                raise GeneratorError(f"{self.name}: cannot neutralise control tokens {found}")
        return messages

    def _control_tokens_in(self, text: str) -> frozenset[str]:
        """The control tokens llama.cpp's tokenizer reads in ``text``: pieces that are one token
        only when special tokens are parsed (user-defined tokens are parsed either way)."""
        if not text:
            return frozenset()
        parsed = self._tokenize(text, parse_special=True, with_pieces=True)
        plain = self._tokenize(text, parse_special=False)
        if [t["id"] for t in parsed] == plain:
            return frozenset()
        plain_ids = set(plain)
        found = set()
        for token in parsed:
            piece = token["piece"]
            if token["id"] in plain_ids or not isinstance(piece, str) or not piece.strip():
                continue
            if self._tokenize(piece, parse_special=False) != [token["id"]]:
                found.add(piece)
        return frozenset(found)

    def _tokenize(
        self, text: str, *, parse_special: bool = True, with_pieces: bool = False
    ) -> list[Any]:
        import httpx

        if self._server is None:
            raise GeneratorError(f"{self.name}: closed")
        request = {"content": text, "parse_special": parse_special, "with_pieces": with_pieces}
        try:
            response = httpx.post(
                f"{self._server.listening_address}/tokenize", json=request, timeout=30
            )
            return list(response.json()["tokens"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise GeneratorError(f"{self.name}: tokenize failed: {exc}") from exc

    def _template_tokens(self) -> frozenset[str]:
        """BOS, EOS and the markers of the chat template the server applies (``/props``)."""
        import httpx

        try:
            props = httpx.get(f"{self._server.listening_address}/props", timeout=30).json()
        except (httpx.HTTPError, ValueError):
            return frozenset()
        bos_eos = [str(props.get("bos_token") or ""), str(props.get("eos_token") or "")]
        return usable_tokens(bos_eos) | template_markers(str(props.get("chat_template") or ""))

    def _complete(self, conversation: list[Message], config: GenerationConfig) -> GenerationResult:
        if self._server is None:
            raise GeneratorError(f"{self.name}: closed")
        body = self._body(conversation, config)
        try:
            answer = self._server.handle_chat_completions(body)
        except Exception as exc:
            raise GeneratorError(f"{self.name}: {exc}") from exc
        if "error" in answer:
            raise GeneratorError(f"{self.name}: {_error_message(answer)}")
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise GeneratorError(f"{self.name}: unexpected answer {str(answer)[:200]}") from exc
        usage = answer.get("usage") or {}
        return GenerationResult(
            text=text.strip(),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
        )


def _error_message(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
