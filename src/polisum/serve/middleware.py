"""One pure-ASGI middleware for every request: a request id, the body size limit, and an access
line in the log.

The access line holds the method, the path (never the query string), the status, the time and
the request id — no header (keys), no body (questions, documents). The body limit is counted
as bytes arrive (a client may lie in Content-Length or send none), 413 as problem details.
Written as raw ASGI rather than BaseHTTPMiddleware, which buffers streamed responses (SSE).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("polisum.serve.access")


class RequestContext:
    def __init__(self, app: ASGIApp, body_limit: Callable[[str, str], int]) -> None:
        self.app = app
        self.body_limit = body_limit  # (method, path) -> bytes allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500
        limit = self.body_limit(scope["method"], scope["path"])

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _send_413(scope, send_with_id, rid, limit)
            else:
                await self.app(scope, receive_limited, send_with_id)
        finally:
            access_log.info(
                "%s %s %s %d %.1fms rid=%s",
                _client(scope), scope["method"], scope["path"], status,
                (time.perf_counter() - started) * 1000, rid,
            )  # fmt: skip


def _too_large(limit: int) -> str:
    size = f"{limit / 2**20:.1f} MiB" if limit >= 2**20 else f"{limit} bytes"
    return f"the request body is larger than the limit ({size})"


async def _send_413(scope: Scope, send: Send, rid: str, limit: int) -> None:
    body = json.dumps(
        {"type": "about:blank", "title": "Content Too Large", "status": 413,
         "detail": _too_large(limit), "instance": scope["path"], "request_id": rid,
         "errors": None}
    ).encode()  # fmt: skip
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
