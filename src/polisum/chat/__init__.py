"""Answers with citations on top of retrieval, the chat session, and image prompts.

- :class:`Answerer` — ``Answerer(index, generator=None).answer(question)`` → :class:`Answer`.
- :class:`ChatSession` — multi-turn, bounded history, follow-ups rewritten before retrieval.
- :mod:`polisum.chat.sdprompt` — Stable Diffusion 3.5 prompts (``SDPromptWriter``).
"""

from __future__ import annotations

from polisum.chat.answer import Answer, Answerer, AnswerStream, Citation
from polisum.chat.citations import check_citations, parse_citations
from polisum.chat.extractive import ExtractiveAnswerer
from polisum.chat.relevance import RelevanceGate
from polisum.chat.session import ChatSession
from polisum.components import DEFAULT_GENERATOR

__all__ = [
    "DEFAULT_GENERATOR",
    "Answer",
    "AnswerStream",
    "Answerer",
    "ChatSession",
    "Citation",
    "ExtractiveAnswerer",
    "RelevanceGate",
    "check_citations",
    "parse_citations",
]
