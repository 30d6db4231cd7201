"""A scripted OpenAI-compatible server on 127.0.0.1 for the client tests: it records every request
(path, headers, JSON body) and answers each POST with the next step of its script (the last step
repeats): a completion, an HTTP error, or a server-sent-event stream that may break off with an
error event, as real servers (vLLM, llama.cpp, TGI) do when generation fails mid-answer."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Step = Callable[["_Handler"], None]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any] | None


@dataclass
class FakeOpenAI:
    script: list[Step]
    delay: float = 0.0  # before each answer (timeouts, concurrency)
    requests: list[Recorded] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step(self) -> Step:
        with self._lock:
            posts = sum(r.method == "POST" for r in self.requests)
        return self.script[min(posts - 1, len(self.script) - 1)]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _record(self, method: str) -> FakeOpenAI:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake._lock:
            fake.requests.append(
                Recorded(
                    method,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
            )
        return fake

    def do_GET(self) -> None:
        self._record("GET")
        self.send_json(200, {"object": "list", "data": [{"id": "fake", "max_model_len": 2048}]})

    def do_POST(self) -> None:
        fake = self._record("POST")
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            time.sleep(fake.delay)
            fake.next_step()(self)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: list[Any], done: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


# -- script steps -------------------------------------------------------------------------------
def completion(text: str, finish: str = "stop") -> Step:
    def step(h: _Handler) -> None:
        h.send_json(
            200,
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            },
        )

    return step


def error(status: int, message: str | Callable[[_Handler], str]) -> Step:
    def step(h: _Handler) -> None:
        text = message(h) if callable(message) else message
        h.send_json(status, {"error": {"message": text, "type": "server_error"}})

    return step


def payload(status: int, body: Any) -> Step:
    return lambda h: h.send_json(status, body)


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {
        "id": "s1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def stream(events: list[Any], done: bool = True) -> Step:
    return lambda h: h.send_events(events, done)


@contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[None]:
    """Run ``server`` on a daemon thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fake_openai(*script: Step, delay: float = 0.0) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(list(script), delay=delay)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with serving(server):
        yield fake
