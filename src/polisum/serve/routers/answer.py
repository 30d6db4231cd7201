"""``POST /v1/answer`` and ``POST /v1/chat``: cited answers, as JSON or Server-Sent Events.

Retrieval runs before the response starts, so its errors (and auth, validation, a busy model)
are ordinary problem responses; once streaming, a failure is an ``error`` event. With a model,
a generation slot is held for the whole answer; extractive answers (no model) take none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from polisum.chat import Answer, Answerer, AnswerStream
from polisum.errors import PolisumError
from polisum.generate import GenerationConfig
from polisum.serve.chats import session_from_history
from polisum.serve.deps import (
    ReadCaller,
    ServeState,
    StateDep,
    check_k,
    check_text,
    check_tokens,
    over_limit,
)
from polisum.serve.models import (
    AnswerRequest,
    AnswerResponse,
    ChatRequest,
    CitationModel,
    HitModel,
    PassageModel,
    Problem,
)
from polisum.serve.problems import ProblemError, problem, status_of

router = APIRouter(tags=["answer"])
log = logging.getLogger("polisum.serve")

DEFAULT_ANSWER_TOKENS = 384  # as `polisum query --answer`


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """One Server-Sent Event: its name and its JSON ``data`` (JSON Schema 2020-12 keywords)."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SSE_EVENT = {
    "oneOf": [
        _event(
            "passages",
            {
                "type": "object",
                "required": ["passages"],
                "properties": {"passages": {"type": "array", "items": _ref("PassageModel")}},
            },
        ),
        _event(
            "token",
            {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        ),
        _event("answer", _ref("AnswerResponse")),
        _event("error", _ref("Problem")),
    ]
}
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
        "description": "The answer as JSON, or (stream) events: passages, token..., then answer "
        "(or error)",
    }
}


@router.post("/answer", response_model=AnswerResponse, responses=SSE_RESPONSE)
def answer(body: AnswerRequest, request: Request, state: StateDep, who: ReadCaller) -> Any:
    """A cited answer to the question from the indexed documents."""
    check_text("question", body.question, state.limits)
    check_k(body.k, state.limits)
    check_tokens(body.max_tokens, state.limits)
    answerer = make_answerer(state, body.k, body.max_tokens)
    return respond(
        state, wants_stream(body.stream, request), lambda: answerer.stream(body.question), None
    )


@router.post("/chat", response_model=AnswerResponse, responses=SSE_RESPONSE)
def chat(body: ChatRequest, request: Request, state: StateDep, who: ReadCaller) -> Any:
    """One message of a conversation: follow-ups are rewritten into standalone queries (as
    ``polisum chat``). Continue with ``conversation_id`` (kept by the server, with a TTL) or
    send the earlier turns as ``history``; with neither, a new conversation starts."""
    limits = state.limits
    check_text("message", body.message, limits)
    check_k(body.k, limits)
    check_tokens(body.max_tokens, limits)
    answerer = make_answerer(state, body.k, body.max_tokens)
    if body.history is not None and body.conversation_id is not None:
        raise over_limit("history", "give a conversation_id or a history, not both", "conflict")
    if body.history is not None:
        if len(body.history) > limits.max_history_turns:
            raise over_limit("history", f"holds more than {limits.max_history_turns} turns")
        for turn in body.history:
            if max(len(turn.question), len(turn.answer)) > limits.max_history_chars:
                raise over_limit(
                    "history", f"a turn is longer than {limits.max_history_chars} characters"
                )
        session = session_from_history(
            answerer,
            [(t.question, t.answer, t.query) for t in body.history],
            max_turns=limits.chat_max_turns,
            max_history_tokens=limits.chat_max_history_tokens,
        )
        return respond(state, wants_stream(body.stream, request),
                       lambda: session.stream(body.message), None)  # fmt: skip
    if body.conversation_id is not None:
        conv = state.chats.get(body.conversation_id, who.owner)
        if conv is None:
            raise ProblemError(
                404,
                f"no conversation {body.conversation_id} (conversations end "
                f"{limits.chat_ttl_s:.0f} s after their last message); send the message "
                "without conversation_id to start a new one",
            )
    else:
        conv = state.chats.start(who.owner)
    if not conv.lock.acquire(blocking=False):
        raise ProblemError(409, "this conversation is still answering its previous message")
    conv.session.answerer = answerer
    unlock = _Once(conv.lock.release)
    try:
        return respond(
            state,
            wants_stream(body.stream, request),
            lambda: conv.session.stream(body.message),
            conv.id,
            on_end=unlock,
        )
    except BaseException:
        unlock()
        raise


@router.delete("/chat/{conversation_id}", status_code=204, response_class=Response)
def end_chat(conversation_id: str, state: StateDep, who: ReadCaller) -> Response:
    """Forget a conversation kept by the server."""
    if not state.chats.drop(conversation_id, who.owner):
        raise ProblemError(404, f"no conversation {conversation_id}")
    return Response(status_code=204)


# -- helpers --------------------------------------------------------------------------------------
def wants_stream(flag: bool, request: Request) -> bool:
    return flag or "text/event-stream" in request.headers.get("accept", "")


def make_answerer(state: ServeState, k: int | None, max_tokens: int | None) -> Answerer:
    tokens = max_tokens or min(DEFAULT_ANSWER_TOKENS, state.limits.max_answer_tokens)
    return Answerer(
        state.index,
        state.generator,
        k=k or state.index.config.k,
        config=GenerationConfig(max_new_tokens=tokens),
    )


def answer_model(state: ServeState, answer: Answer, conversation_id: str | None) -> AnswerResponse:
    ids = state.source_ids.get()
    data = answer.to_dict()
    data["passages"] = [
        PassageModel(number=n, **HitModel.of(h, ids.get(h.source)).model_dump())
        for n, h in enumerate(answer.passages, 1)
    ]
    data["citations"] = [
        CitationModel(**c.to_dict(), document_id=ids.get(c.source)) for c in answer.citations
    ]
    return AnswerResponse(**data, conversation_id=conversation_id)


def respond(
    state: ServeState,
    stream: bool,
    start: Any,
    conversation_id: str | None,
    on_end: Any = None,
) -> Any:
    """Run ``start()`` (→ AnswerStream) under a generation slot when a model answers, and
    give the answer as JSON or as events. ``on_end`` runs when the answer is over."""
    slots = state.slots if state.generator is not None else None
    deadline = time.monotonic() + state.limits.generation_timeout_s
    if slots is not None:
        slots.acquire()
    try:
        answer_stream: AnswerStream = start()
    except BaseException:
        if slots is not None:
            slots.release()
        raise
    if not stream:
        try:
            return answer_model(state, drain(answer_stream, deadline, state), conversation_id)
        finally:
            if slots is not None:
                slots.release()
            if on_end is not None:
                on_end()
    release = _Once(slots.release if slots is not None else None, on_end)
    body = _closing(sse_events(state, answer_stream, deadline, conversation_id), release)
    # A response dropped before its first chunk never runs the generator's ``finally``: the
    # finalizer releases then (when the generator object is collected).
    weakref.finalize(body, release)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _Once:
    """Release the slot and the conversation exactly once, from whichever path ends first."""

    def __init__(self, *actions: Callable[[], None] | None) -> None:
        self._actions = [a for a in actions if a is not None]
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            actions, self._actions = self._actions, []
        for action in actions:
            action()


def drain(answer_stream: AnswerStream, deadline: float, state: ServeState) -> Answer:
    for _ in answer_stream:
        if time.monotonic() > deadline:
            raise _timeout(state)
    assert answer_stream.answer is not None
    return answer_stream.answer


def _timeout(state: ServeState) -> ProblemError:
    return ProblemError(
        504,
        f"the answer took longer than {state.limits.generation_timeout_s:.0f} s "
        "(limit generation_timeout_s); ask for fewer tokens or try again",
    )


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_events(
    state: ServeState, answer_stream: AnswerStream, deadline: float, conversation_id: str | None
) -> Iterator[str]:
    ids = state.source_ids.get()
    passages = [
        {"number": n, **HitModel.of(h, ids.get(h.source)).model_dump()}
        for n, h in enumerate(answer_stream.passages, 1)
    ]
    yield sse("passages", {"passages": passages})
    try:
        for piece in answer_stream:
            yield sse("token", {"text": piece})
            if time.monotonic() > deadline:
                raise _timeout(state)
        assert answer_stream.answer is not None
        final = answer_model(state, answer_stream.answer, conversation_id)
        yield sse("answer", final.model_dump(mode="json"))
    except ProblemError as exc:
        yield sse("error", _problem(exc.status, exc.detail))
    except PolisumError as exc:
        yield sse("error", _problem(status_of(exc), str(exc)))
    except Exception:
        log.exception("answer stream failed")
        yield sse("error", _problem(500, "internal error while answering; see the server log"))


def _problem(status: int, detail: str) -> dict[str, Any]:
    body: Problem = problem(status, detail)
    return body.model_dump(mode="json")


async def _closing(events: Iterator[str], release: _Once) -> AsyncIterator[str]:
    """Stream ``events`` from a worker thread; the slot and the conversation are released
    however the stream ends (finished, failed, or the client went away)."""
    try:
        async for chunk in iterate_in_threadpool(events):
            yield chunk
    finally:
        release()
        with contextlib.suppress(ValueError):  # still running in its thread: it ends there
            events.close()  # type: ignore[attr-defined]
