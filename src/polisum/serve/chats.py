"""Conversations kept by the server for ``POST /v1/chat``: bounded in number and in time.

A conversation belongs to the key that started it (another key's caller gets 404 for its id:
questions can be private), lives ``ttl`` seconds after its last use, and the least recently
used one goes when ``cap`` are held. Each has a lock, so two requests on one conversation run
one after the other (their turns would otherwise interleave). A client that would rather keep
the state itself sends ``history`` instead of a conversation id.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from polisum.chat import Answerer, ChatSession
from polisum.chat.session import Turn


@dataclass
class Conversation:
    id: str
    owner: str
    session: ChatSession
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: float = field(default_factory=time.monotonic)


class Conversations:
    def __init__(
        self,
        make_session: Callable[[], ChatSession],
        *,
        cap: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = make_session
        self.cap = cap
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._held: OrderedDict[str, Conversation] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def start(self, owner: str) -> Conversation:
        conv = Conversation(secrets.token_urlsafe(16), owner, self._make(), used=self._clock())
        with self._lock:
            self._expire()
            self._held[conv.id] = conv
            while len(self._held) > self.cap:
                self._held.popitem(last=False)
        return conv

    def get(self, conv_id: str, owner: str) -> Conversation | None:
        """The conversation if it is alive and ``owner``'s (marked used)."""
        with self._lock:
            self._expire()
            conv = self._held.get(conv_id)
            if conv is None or conv.owner != owner:
                return None
            conv.used = self._clock()
            self._held.move_to_end(conv_id)
            return conv

    def drop(self, conv_id: str, owner: str) -> bool:
        with self._lock:
            conv = self._held.get(conv_id)
            if conv is None or conv.owner != owner:
                return False
            del self._held[conv_id]
            return True

    def _expire(self) -> None:
        now = self._clock()
        while self._held:
            oldest = next(iter(self._held.values()))
            if now - oldest.used <= self.ttl:
                break
            self._held.popitem(last=False)


def session_from_history(
    answerer: Answerer,
    history: Sequence[tuple[str, str, str | None]],
    *,
    max_turns: int,
    max_history_tokens: int,
) -> ChatSession:
    """A ChatSession holding the client's earlier turns (question, answer, query), bounded as
    ``polisum chat`` bounds its own: the same turn and token budgets."""
    session = ChatSession(answerer, max_turns=max_turns, max_history_tokens=max_history_tokens)
    for question, answer, query in history[-max(max_turns, 1) :] if max_turns else ():
        session.remember(Turn(question, query or question, answer))
    return session
