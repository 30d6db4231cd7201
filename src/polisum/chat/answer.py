"""Answers with citations: retrieve, check relevance, then generate (or extract) and cite.

``Answerer(index, generator).answer(question)`` → :class:`Answer`; ``.stream(question)`` gives an
:class:`AnswerStream` that yields text pieces and holds the finished Answer afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polisum.chat.citations import check_citations
from polisum.chat.extractive import ExtractiveAnswerer
from polisum.chat.prompts import REFUSAL, assemble
from polisum.chat.relevance import RelevanceGate
from polisum.generate import GenerationConfig, Generator, Message
from polisum.generate.special_tokens import special_tokens_of
from polisum.text import detect_language
from polisum.types import Hit

if TYPE_CHECKING:
    from polisum.api import Index

# Flags an Answer can carry (``--json`` shows them; scripts should check them).
NO_VALID_CITATION = "no_valid_citation"  # no [n] naming a passage that was given
INVALID_CITATION = "invalid_citation"  # some [n] names a passage that was not given
LOW_CONFIDENCE = "low_confidence"  # retrieval found nothing relevant: refused, nothing generated
TRUNCATED_CONTEXT = "truncated_context"  # passages were cut to fit the model's context
TRUNCATED_ANSWER = "truncated_answer"  # the model hit max_new_tokens
LANGUAGE_MISMATCH = "language_mismatch"  # the answer is not in the question's language
EXTRACTIVE = "extractive"  # quoted sentences, no model involved

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


@dataclass(frozen=True)
class Citation:
    number: int
    source: str
    page: int | None
    section: str | None
    chunk_id: str

    def label(self) -> str:
        return f"[{self.number}] {self.source}" + (f" p.{self.page}" if self.page else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "source": self.source,
            "page": self.page,
            "section": self.section,
            "chunk_id": self.chunk_id,
        }


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]  # the valid ones, in order of first use
    passages: list[Hit]  # what the answer could cite: passage [n] is passages[n - 1]
    language: str
    query: str  # what was searched (the standalone rewrite in a chat)
    flags: list[str] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)
    generator: str | None = None

    @property
    def refused(self) -> bool:
        return LOW_CONFIDENCE in self.flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "query": self.query,
            "text": self.text,
            "language": self.language,
            "refused": self.refused,
            "flags": self.flags,
            "citations": [c.to_dict() for c in self.citations],
            "invalid_citations": self.invalid_citations,
            "passages": [{"number": i, **h.to_dict()} for i, h in enumerate(self.passages, 1)],
            "generator": self.generator,
        }


class AnswerStream:
    """Iterate for text pieces as they are produced; ``.answer`` holds the result afterwards.

    ``passages`` is known before the first piece, so a UI can show sources while tokens arrive."""

    def __init__(
        self, passages: list[Hit], pieces: Iterator[str], finish: Callable[[str], Answer]
    ) -> None:
        self.passages = passages
        self._pieces = pieces
        self._finish = finish
        self._text: list[str] = []
        self.answer: Answer | None = None
        self.on_done: list[Callable[[Answer], None]] = []

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self._text.append(piece)
            yield piece
        self.answer = self._finish("".join(self._text))
        for callback in self.on_done:
            callback(self.answer)

    def result(self) -> Answer:
        """Drain what is left and return the Answer."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer


class Answerer:
    """Question → retrieved passages → cited answer in the question's language.

    Without a generator, answers are extractive (best sentences of the top passages). When
    the best passage is below the calibrated relevance threshold (``polisum.chat.relevance``),
    the answer is a refusal and no model runs."""

    def __init__(
        self,
        index: Index,
        generator: Generator | None = None,
        *,
        k: int = 5,
        gate: RelevanceGate | None = None,
        config: GenerationConfig | None = None,
        extractive: ExtractiveAnswerer | None = None,
    ) -> None:
        self.index = index
        self.generator = generator
        self.k = k
        self.gate = gate or RelevanceGate.for_embedder(index.embedder_spec)
        self.config = config or GenerationConfig(max_new_tokens=384)
        self.extractive = extractive or ExtractiveAnswerer()

    # -- public -------------------------------------------------------------------------------
    def answer(
        self, question: str, *, query: str | None = None, history: Sequence[Message] = ()
    ) -> Answer:
        return self.stream(question, query=query, history=history).result()

    def stream(
        self, question: str, *, query: str | None = None, history: Sequence[Message] = ()
    ) -> AnswerStream:
        """Retrieve for ``query`` (default: the question) and answer ``question``.

        ``history`` holds earlier chat turns as messages; they go to the model before the
        passages (the caller bounds them, see ChatSession)."""
        if not question.strip():
            raise ValueError("empty question")
        query = query or question
        lang = detect_language(question)
        hits = self.index.search(query, k=self.k)
        base = dict(question=question, language=lang, query=query)
        gen_name = getattr(self.generator, "name", None)
        if not self.gate.relevant(hits):
            answer = Answer(
                text=REFUSAL.get(lang, REFUSAL["en"]),
                citations=[],
                passages=hits,
                flags=[LOW_CONFIDENCE],
                generator=gen_name,
                **base,
            )
            return AnswerStream(hits, iter([answer.text]), lambda _text: answer)
        if self.generator is None:
            # The standalone query: in a chat it holds the topic the follow-up leaves out.
            text, _ = self.extractive.answer(query, hits)
            used = hits[: self.extractive.max_passages]
            return AnswerStream(
                used, iter([text]), lambda t: self._finish(t, used, base, [EXTRACTIVE], None)
            )
        prompt = assemble(
            question,
            hits,
            lang,
            count_tokens=self.generator.count_tokens,
            context_length=self.generator.context_length,
            max_new_tokens=self.config.max_new_tokens,
            history=history,
            special_tokens=special_tokens_of(self.generator),
        )
        flags = [TRUNCATED_CONTEXT] if prompt.truncated else []
        pieces = self.generator.stream(prompt.messages, self.config)
        counter = _TokenCounter(pieces)
        return AnswerStream(
            prompt.passages,
            iter(counter),
            lambda t: self._finish(
                t, prompt.passages, base, flags + counter.flags(self.config), gen_name
            ),
        )

    # -- internals ----------------------------------------------------------------------------
    def _finish(
        self,
        raw: str,
        passages: list[Hit],
        base: dict[str, str],
        flags: list[str],
        generator: str | None,
    ) -> Answer:
        text = _THINK.sub("", raw).strip()
        check = check_citations(text, len(passages))
        flags = list(flags)
        if not check.valid:
            flags.append(NO_VALID_CITATION)
        if check.invalid:
            flags.append(INVALID_CITATION)
        if generator and text and detect_language(text) != base["language"]:
            flags.append(LANGUAGE_MISMATCH)
        citations = [
            Citation(n, passages[n - 1].source, passages[n - 1].page, passages[n - 1].section,
                     passages[n - 1].chunk_id)
            for n in check.valid
        ]  # fmt: skip
        return Answer(
            text=text,
            citations=citations,
            passages=passages,
            flags=flags,
            invalid_citations=check.invalid,
            generator=generator,
            **base,
        )


class _TokenCounter:
    """Counts streamed pieces so a stream that stops at max_new_tokens can be flagged."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self.n = 0

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self.n += 1
            yield piece

    def flags(self, config: GenerationConfig) -> list[str]:
        # Backends stream roughly one piece per token; reaching the cap means it was cut off.
        return [TRUNCATED_ANSWER] if self.n >= config.max_new_tokens else []
