"""A chat over the index: bounded history and follow-ups rewritten into standalone queries.

Retrieval sees one query at a time, so "what about the amount?" after a question on rent
support must become "rent support amount" before it is searched. With a generator the model
rewrites the follow-up; without one, a heuristic carries the previous query's key terms over.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from polisum.chat.answer import Answer, Answerer, AnswerStream
from polisum.generate import GenerationConfig, Message
from polisum.text import kiwi_tokens, terms

REWRITE_SYSTEM = (
    "Rewrite the user's last question into one standalone search query that can be understood "
    "without the conversation. Resolve pronouns and ellipsis using the earlier turns. Keep the "
    "question's language. Output only the query, nothing else."
)
# Words that point back at an earlier turn: "그럼 금액은?", "what about it?"
_ANAPHORA = re.compile(
    r"(그것|그거|그게|이것|이거|이게|저것|거기|그곳|그럼|그러면|그리고|그 |이 |해당|"
    r"\b(it|its|that|this|those|these|they|them|there|what about|how about|and)\b)",
    re.IGNORECASE,
)
_KEY_TAGS = ("NNG", "NNP", "SL", "SH", "SN", "XR")


@dataclass(frozen=True)
class Turn:
    question: str
    query: str  # the standalone query that was searched
    answer: str


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (~3 characters per token for mixed Korean/English BPE)."""
    return len(text) // 3 + 1


def key_terms(text: str, limit: int = 6) -> list[str]:
    """Nouns, roots and foreign words of ``text`` in order: what a follow-up leaves implicit."""
    out: list[str] = []
    for tok in kiwi_tokens(text):
        if tok.tag.startswith(_KEY_TAGS) and tok.form not in out:
            out.append(tok.form)
    return out[:limit]


def is_follow_up(question: str) -> bool:
    """Short questions and ones with back-references depend on the conversation."""
    return bool(_ANAPHORA.search(question)) or len(terms(question)) <= 2


def heuristic_rewrite(question: str, previous_query: str) -> str:
    """Prepend the previous query's key terms that the follow-up does not already contain."""
    if not is_follow_up(question):
        return question
    present = set(terms(question))
    carried = [t for t in key_terms(previous_query) if t.lower() not in present]
    return " ".join([*carried, question]) if carried else question


class ChatSession:
    """Multi-turn question answering with history bounded by turns and by tokens."""

    def __init__(
        self,
        answerer: Answerer,
        *,
        max_turns: int = 4,
        max_history_tokens: int = 1024,
    ) -> None:
        self.answerer = answerer
        self.max_turns = max_turns
        self.max_history_tokens = max_history_tokens
        self.turns: deque[Turn] = deque()

    @property
    def _count(self) -> Callable[[str], int]:
        gen = self.answerer.generator
        return gen.count_tokens if gen is not None else approx_tokens

    def reset(self) -> None:
        self.turns.clear()

    def history_messages(self) -> list[Message]:
        messages: list[Message] = []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer})
        return messages

    def history_tokens(self) -> int:
        return sum(self._count(m["content"]) for m in self.history_messages())

    def rewrite(self, question: str) -> str:
        """The standalone query for ``question`` given the turns so far."""
        if not self.turns:
            return question
        gen = self.answerer.generator
        if gen is None:
            return heuristic_rewrite(question, self.turns[-1].query)
        convo = "\n".join(
            f"User: {t.question}\nAssistant: {t.answer[:300]}" for t in list(self.turns)[-2:]
        )
        messages: list[Message] = [
            {"role": "system", "content": REWRITE_SYSTEM},
            {"role": "user", "content": f"{convo}\n\nLast question: {question}\n\nQuery:"},
        ]
        out = gen.generate([messages], GenerationConfig(max_new_tokens=48))[0].text
        query = _first_line(out)
        # A rewrite that is empty, rambles, or lost every word of the question is worse than
        # the heuristic: small models sometimes answer instead of rewriting.
        if (
            not query
            or len(query) > 3 * len(question) + 120
            or not (set(terms(query)) & set(terms(question)))
        ):
            return heuristic_rewrite(question, self.turns[-1].query)
        return query

    def stream(self, question: str) -> AnswerStream:
        query = self.rewrite(question)
        stream = self.answerer.stream(question, query=query, history=self.history_messages())
        stream.on_done.append(lambda answer: self.remember(Turn(question, query, answer.text)))
        return stream

    def ask(self, question: str) -> Answer:
        return self.stream(question).result()

    def remember(self, turn: Turn) -> None:
        """Add a finished turn to the history, trimmed to the turn and token bounds (a
        service rebuilding a session from a client's history uses it too)."""
        self.turns.append(turn)
        while len(self.turns) > self.max_turns:
            self.turns.popleft()
        # Oldest turns go first; the last turn stays even if alone it is over the budget
        # (its answer is cut instead) so a follow-up can still be resolved.
        while len(self.turns) > 1 and self.history_tokens() > self.max_history_tokens:
            self.turns.popleft()
        if self.history_tokens() > self.max_history_tokens:
            last = self.turns.pop()
            room = max(0, self.max_history_tokens - self._count(last.question))
            self.turns.append(Turn(last.question, last.query, _cut(last.answer, room, self._count)))


def _first_line(text: str) -> str:
    text = re.sub(r"<think>.*?(</think>|$)", "", text, flags=re.DOTALL).strip()
    line = text.splitlines()[0] if text else ""
    line = re.sub(r"^(query|검색어|질문)\s*[:：]\s*", "", line.strip(), flags=re.IGNORECASE)
    return line.strip().strip("\"'“”‘’`")


def _cut(text: str, budget: int, count: Callable[[str], int]) -> str:
    while text and count(text) > budget:
        text = text[: int(len(text) * 0.8)]
    return text
