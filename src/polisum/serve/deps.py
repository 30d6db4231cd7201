"""Dependencies of the routers: the service state (the one open Index and what goes with it),
the caller's role from its API key, generation slots and the configured limits."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polisum.serve.problems import ProblemError
from polisum.serve.settings import ApiKeys, Limits, Role, ServeSettings

if TYPE_CHECKING:
    from polisum.api import Index
    from polisum.generate import Generator
    from polisum.serve.chats import Conversations
    from polisum.serve.images import Images
    from polisum.serve.jobs import JobQueue

UPLOADS = "uploads"


class GenerationSlots:
    """At most ``n`` model generations at once; a caller waits ``wait`` seconds for a slot,
    then gets 503 with Retry-After (the model is the bottleneck: queueing more only adds
    latency to everyone)."""

    def __init__(self, n: int, wait: float) -> None:
        self.n = n
        self.wait = wait
        self._sem = threading.BoundedSemaphore(n)

    def acquire(self) -> None:
        if not self._sem.acquire(timeout=self.wait):
            raise ProblemError(
                503,
                f"all {self.n} generation slots are busy; try again in a few seconds",
                headers={"Retry-After": "5"},
            )

    def release(self) -> None:
        self._sem.release()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class SourceIds:
    """source → document id, read again only when the store's generation moved."""

    def __init__(self, index: Index) -> None:
        self._index = index
        self._lock = threading.Lock()
        self._generation = -1
        self._ids: dict[str, int] = {}

    def get(self) -> dict[str, int]:
        with self._index.store.read() as view:
            generation = view.generation
            with self._lock:
                if generation != self._generation:
                    self._ids = {d.source: d.id for d in view.documents()}
                    self._generation = generation
                return self._ids


@dataclass
class ServeState:
    settings: ServeSettings
    index: Index
    keys: ApiKeys
    jobs: JobQueue
    chats: Conversations
    slots: GenerationSlots
    images: Images
    generator: Generator | None
    extensions: frozenset[str]
    source_ids: SourceIds
    owns_index: bool = True

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    @property
    def uploads(self) -> Path:
        return self.index.path / UPLOADS


def get_state(request: Request) -> ServeState:
    return request.app.state.polisum


StateDep = Annotated[ServeState, Depends(get_state)]


# -- auth -----------------------------------------------------------------------------------------
bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `read` keys search and answer, `admin` keys also write.",
)


@dataclass(frozen=True)
class Caller:
    role: Role
    owner: str  # who owns server-side conversations: a key's digest, "open" without keys


def caller(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if not state.keys.required:
        return Caller("admin", "open")
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(
            401, "this API needs a key: send Authorization: Bearer <key>", headers=challenge
        )
    role = state.keys.role_of(credentials.credentials)
    if role is None:
        raise ProblemError(401, "the API key is not valid", headers=challenge)
    return Caller(role, ApiKeys.digest(credentials.credentials))


def require_read(who: Annotated[Caller, Depends(caller)]) -> Caller:
    return who


def require_admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if who.role != "admin":
        raise ProblemError(403, "this needs an admin key (uploads, ingests and deletes)")
    return who


ReadCaller = Annotated[Caller, Depends(require_read)]
AdminCaller = Annotated[Caller, Depends(require_admin)]


# -- limits ---------------------------------------------------------------------------------------
def over_limit(field_name: str, message: str, kind: str = "limit") -> RequestValidationError:
    """A 422 in the same shape as the schema's own validation errors."""
    return RequestValidationError([{"loc": ("body", field_name), "msg": message, "type": kind}])


def check_text(field_name: str, value: str, limits: Limits) -> None:
    if len(value) > limits.max_query_chars:
        raise over_limit(
            field_name, f"is longer than the limit of {limits.max_query_chars} characters"
        )


def check_k(k: int | None, limits: Limits) -> None:
    if k is not None and k > limits.max_k:
        raise over_limit("k", f"must be at most {limits.max_k}")


def check_tokens(max_tokens: int | None, limits: Limits) -> None:
    if max_tokens is not None and max_tokens > limits.max_answer_tokens:
        raise over_limit("max_tokens", f"must be at most {limits.max_answer_tokens}")
