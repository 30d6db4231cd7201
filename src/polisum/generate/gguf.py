"""llama.cpp backend for GGUF files on CPU (or GPU offload), through ``xllamacpp``.

xllamacpp ships prebuilt llama.cpp wheels with the server's request handlers as Python calls:
the model is loaded once, requests go in as OpenAI chat-completion dicts, and the server's
continuous batching runs up to ``n_parallel`` conversations at once (one slot each). It also
listens on a loopback port, which ``count_tokens`` uses for the model's own tokenizer.
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

    def close(self) -> None:
        self._server = None

    # -- Generator ----------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """The model's tokenizer, through the server's loopback ``/tokenize`` endpoint."""
        import httpx

        try:
            response = httpx.post(
                f"{self._server.listening_address}/tokenize", json={"content": text}, timeout=30
            )
            return len(response.json()["tokens"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise GeneratorError(f"{self.name}: tokenize failed: {exc}") from exc

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
                answer = self._server.handle_chat_completions(
                    {**self._body(conversation, config), "stream": True}, on_chunk
                )
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
        if self._server is None:
            raise GeneratorError(f"{self.name}: closed")
        try:
            answer = self._server.handle_chat_completions(self._body(conversation, config))
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
